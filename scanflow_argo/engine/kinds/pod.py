"""The one way a pod is prepared and its outputs collected, for ``container``, ``script`` and ``containerSet``.

A container of a pod (Argo's executor, ``workflow/executor`` and ``cmd/argoexec``, and the pod Argo's
``workflowpod.go`` builds): every ``{{…}}`` resolved (one message for a tag left over), the image mapped to a
local runtime, its root prepared in the sandbox with the pod's volume mounts, its environment (``env``
values, ConfigMap/Secret keys of this machine's state folder, the ``ARGO_*`` variables Argo's pods carry) and
working directory (``workingDir``, else the image's ``/``). Inputs are placed before the main container runs
and outputs (parameters from files, expressions, values; artifacts into the local repository; global outputs)
collected after it, from the container Argo takes them from.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ...argoexpr.expr import eval_expr, render_param
from ...errors import EngineError, NotSupportedLocally, PodRefused
from ..core.configstore import missing
from ..core.envvars import expand
from ..core.paths import safe_join
from ..core.state import NodeDoc
from ..core.subst import Unresolved, leftover_tags, tag_body
from ..core.values import fmt_item
from ..features.artifacts import ArtifactNotFound, ArtifactRepo, http_load, http_location, http_save
from ..features.images import launch
from ..features.sandbox import NodeFS, ProcessResult
from ..features.volumes import PodVolumes
from .base import KindContext

__all__ = [
    "DEADLINE",
    "IGNORED_CONTAINER_FIELDS",
    "PreparedContainer",
    "argo_env",
    "check_resolved",
    "collect_outputs",
    "container_env",
    "finish_refused",
    "place_inputs",
    "pod_message",
    "prepare_container",
    "private_tops",
    "timed",
]

IGNORED_CONTAINER_FIELDS = (
    "resources",
    "securityContext",
    "imagePullPolicy",
    "ports",
    "livenessProbe",
    "readinessProbe",
    "lifecycle",
)
"""Container fields that matter only to Kubernetes: accepted, ignored, noted once."""
DEADLINE = "Pod was active on the node longer than the specified deadline"
"""Argo's message for a pod past its ``activeDeadlineSeconds``/``timeout``."""
_BODY_FIELDS = ("image", "command", "args", "source", "env", "workingDir")


def pod_message(container: str, result: ProcessResult) -> str:
    """Argo's message for a container that exited non-zero: ``<container>: Error (exit code N)``, and its
    termination message after a colon (``workflow/controller/operator.go`` ``inferFailedReason``)."""
    message = f"{container}: Error (exit code {result.exit_code})"
    return f"{message}: {result.message}" if result.message else message


def check_resolved(body: Mapping[str, Any], where: str) -> None:
    """Every ``{{…}}`` of a container's image, command, args, source, env and workingDir has a value now;
    the first one left is the error (``failed to resolve {{x}} in <where>``)."""
    left = leftover_tags({k: body.get(k) for k in _BODY_FIELDS})
    if left:
        raise Unresolved(tag_body(left[0]), where)


def argo_env(nid: str, pod_name: str, container: str, template: str | None) -> dict[str, str]:
    """The variables Argo's executor gives every container of a pod (``ARGO_NODE_ID``, ``ARGO_POD_NAME``…)."""
    return {
        "ARGO_NODE_ID": nid,
        "ARGO_POD_NAME": pod_name,
        "ARGO_CONTAINER_NAME": container,
        "ARGO_TEMPLATE": json.dumps({"name": template}),
    }


def container_env(ctx: KindContext, body: Mapping[str, Any], where: str) -> dict[str, str]:
    """A container's ``env``: values (their ``$(VAR)`` references to the variables before them expanded, as
    the kubelet does), and ConfigMap/Secret keys from this machine's state folder."""
    env: dict[str, str] = {}
    for item in body.get("env") or []:
        name = str(item.get("name", ""))
        if "value" in item:
            env[name] = expand(fmt_item(item["value"]), env)
            continue
        if name in ctx.hook_env:
            continue  # the hooks provide it locally (MLFLOW_TRACKING_URI from the local tracking server)
        vf = item.get("valueFrom") or {}
        for kind, folder in (("secretKeyRef", "secrets"), ("configMapKeyRef", "configmaps")):
            if kind in vf:
                value = ctx.local_ref(folder, vf[kind], f"{where} env {name}")
                if value is None and vf[kind].get("optional"):
                    break  # as Kubernetes does: a missing optional key leaves the variable unset
                if value is None:
                    ref = vf[kind]
                    why = missing(ctx.settings.home, folder, ctx.namespace, str(ref.get("name")), str(ref.get("key")))
                    raise EngineError(f"{where}: env {name} reads {kind} {ref.get('name')}/{ref.get('key')}: {why}")
                env[name] = value
                break
        else:
            if vf:
                raise NotSupportedLocally(f"env {name} from {next(iter(vf))}", where)
    return env


def private_tops(tmpl: Mapping[str, Any], inputs: Mapping[str, Any], body: Mapping[str, Any]) -> set[str]:
    """Top-level folders the main container's own paths use: the node gets its own copy of them."""
    paths = [a.get("path") for a in inputs["artifacts"]]
    outs = tmpl.get("outputs") or {}
    paths += [(p.get("valueFrom") or {}).get("path") for p in outs.get("parameters") or []]
    paths += [a.get("path") for a in outs.get("artifacts") or []]
    paths += [body.get("workingDir"), "/argo/x"]
    paths += [m.get("mountPath") for m in body.get("volumeMounts") or []]
    tops = set()
    for p in paths:
        if p:
            parts = PurePosixPath("/", str(p)).parts
            if len(parts) > 1:
                tops.add(parts[1])
    return tops


@dataclass
class PreparedContainer:
    """A container ready to start: its sandboxed argv, environment (without the run's; ``PATH`` is its
    image's), working directory (None inside the sandbox, where ``--chdir`` sets it) and root, and the
    executor's error when its command is not in its image (``sandbox.not_started``)."""

    argv: list[str]
    env: dict[str, str]
    cwd: str | None
    fs: NodeFS
    missing: str | None = None


def prepare_container(
    ctx: KindContext,
    body: Mapping[str, Any],
    *,
    own_dir: Path,
    pod: PodVolumes,
    private: set[str],
    env: dict[str, str],
    where: str,
    stage: Any = None,
) -> PreparedContainer:
    """Prepare one container of a pod (see the module docstring): ``own_dir`` holds its root, ``private`` the
    top-level folders it replaces, ``env`` the variables it gets besides its ``env`` (``ARGO_*``).
    ``stage(fs)`` may add to the root and returns arguments to append (a script's source file)."""
    check_resolved(body, where)
    fs = ctx.sandbox.prepare(own_dir)
    pod.place(pod.mounts(body, ctx.sandbox), fs)  # before inputs: an artifact may land in a volume
    if stage is not None:
        extra_args = stage(fs)
        if extra_args:
            body = {**body, "args": [*(body.get("args") or []), *extra_args]}
    # as in a container: the image's working directory is "/" (the container's own root) unless workingDir says otherwise
    cwd = str(body.get("workingDir") or "/")
    if fs.root is None and not body.get("workingDir"):
        cwd = str(own_dir)
    fs.make_dir(cwd, f"{where} workingDir")  # the runtime makes a missing working directory (in the node's root)
    full_env = {**container_env(ctx, body, where), **env}
    started = launch(body, ctx.settings, ctx.sandbox, fs, private, cwd, {"SCANFLOW_HOME": ctx.home_env, **full_env}, where)
    full_env["PATH"] = started.path
    return PreparedContainer(started.argv, full_env, None if fs.root is not None else cwd, fs, started.missing)


def place_inputs(ctx: KindContext, inputs: Mapping[str, Any], fs: NodeFS, node_dir: Path, where: str) -> None:
    """Put the pod's input artifacts at their paths in the main container's root."""
    for a in inputs["artifacts"]:
        src, cpath = a.get("source"), a.get("path")
        if src is None or not cpath:
            continue
        what = f"{where} input artifact {a['name']!r}"
        cpath = str(PurePosixPath("/", cpath))
        if ".." in PurePosixPath(cpath).parts:
            raise EngineError(f"{what}: path {cpath!r} contains '..'")
        # in the node's root, also under a folder it shares with this machine (claimed: never this machine's file)
        try:
            _materialize(ctx, a, src, fs.writable(cpath, what), what)
        except ArtifactNotFound:
            if a.get("optional"):  # executor.go loadArtifact: an optional artifact its server does not have is skipped
                continue
            raise
        if a.get("mode") is not None:
            fs.host_path(cpath).chmod(int(a["mode"]))


def _materialize(ctx: KindContext, art: Mapping[str, Any], src: Mapping[str, Any], dest: Path, what: str) -> None:
    if src.get("subPath"):
        staging = dest.parent / f".{dest.name}.whole"
        _materialize(ctx, art, {k: v for k, v in src.items() if k != "subPath"}, staging, what)
        part = safe_join(staging, str(src["subPath"]), what)
        if not part.exists():
            raise EngineError(f"{what}: subPath {src['subPath']!r} is not in the artifact")
        shutil.move(str(part), str(dest))
        shutil.rmtree(staging, ignore_errors=True)
        return
    location = http_location(src)
    if "raw" in src:
        ArtifactRepo.write_raw(src["raw"], dest)
    elif "local" in src:
        ctx.artifacts.load(src["local"], dest, what)
    elif location is not None:
        http_load(art, location, dest, lambda ref, why: ctx.local_ref("secrets", ref, why), what)
    else:
        raise EngineError(f"{what}: unknown artifact location {sorted(src)}")


def collect_outputs(
    ctx: KindContext, tmpl: Mapping[str, Any], fs: NodeFS, nid: str, outputs: dict[str, Any], failed: bool, where: str
) -> None:
    """The pod's output parameters and artifacts into ``outputs`` (which has ``result``/``exitCode``);
    global outputs registered. A missing output of a failed pod is not an error."""
    outs = tmpl.get("outputs") or {}
    params = []
    for p in outs.get("parameters") or []:
        vf = p.get("valueFrom") or {}
        value: str | None = None
        if "path" in vf:
            host = fs.host_path(str(vf["path"]))
            if host.is_file():
                value = host.read_text(errors="replace").rstrip()
            elif "default" in vf:
                value = fmt_item(vf["default"])
            elif not failed:
                raise EngineError(f"{where}: output parameter {p['name']!r}: no file at {vf['path']}")
        elif "expression" in vf:
            env = {f"outputs.{k}": v for k, v in outputs.items() if isinstance(v, str)}
            value = render_param(eval_expr(str(vf["expression"]), env, clock=ctx.clock))
        elif "value" in p:
            value = fmt_item(p["value"])
        elif "default" in vf:
            value = fmt_item(vf["default"])
        if value is not None:
            entry = {"name": p["name"], "value": value}
            if p.get("globalName"):
                entry["globalName"] = p["globalName"]
            params.append(entry)
    if params:
        outputs["parameters"] = params
    arts = []
    for a in outs.get("artifacts") or []:
        what = f"{where} output artifact {a.get('name')!r}"
        if "path" not in a:
            continue
        host = fs.host_path(str(a["path"]))
        if not host.exists():
            if a.get("optional") or failed:
                continue
            raise EngineError(f"{what}: nothing at {a['path']}")
        if not re.fullmatch(r"[A-Za-z0-9][-A-Za-z0-9_.]*", str(a.get("name", ""))):
            raise EngineError(f"{what}: artifact names may use letters, digits, '-', '_' and '.'")
        stored: dict[str, Any] = {"name": a["name"], "path": a["path"]}
        location = http_location(a)
        if location is not None:  # uploaded where the template says, as Argo's executor does (PUT)
            http_save(host, location, a.get("archive"), lambda ref, why: ctx.local_ref("secrets", ref, why), what)
            stored.update(location)
        else:
            key = str((a.get("s3") or {}).get("key") or f"{ctx.name}/{nid}/{a['name']}.tgz")
            stored["local"] = ctx.artifacts.save(host, key, a.get("archive"), what)
        if a.get("globalName"):
            stored["globalName"] = a["globalName"]
        arts.append(stored)
    if arts:
        outputs["artifacts"] = arts
    ctx.register_globals(tmpl, outputs)


def finish_refused(ctx: KindContext, node: NodeDoc, err: EngineError) -> NodeDoc:
    """End ``node`` in Error with ``err``; when Kubernetes would have refused its pod (``PodRefused``) the
    returned copy says so (``_pod_refused``, not recorded): Argo's controller then reports the workflow's entry or
    exit template as failing to execute (``operator.go``: "error in entry template execution: …")."""
    ended = ctx.finish(node, "Error", str(err))
    if not isinstance(err, PodRefused):
        return ended
    out = NodeDoc(ended)
    out["_pod_refused"] = True
    return out


def timed(node: NodeDoc, t0: float, t1: float) -> NodeDoc:
    """The node with when its pod ran (monotonic ``_t0``/``_t1``, for ``lastRetry.duration``); not recorded."""
    out = NodeDoc(node)
    out["_t0"], out["_t1"] = t0, t1
    return out
