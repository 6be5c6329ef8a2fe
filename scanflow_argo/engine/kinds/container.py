"""``container`` templates (and, through ``run_pod``, ``script``): one pod with a main container, its init
containers before it and its sidecars beside it, or a daemon that stays up while its scope runs. The
node's phase is Argo's pod verdict: the main container's exit code, the deadline (``activeDeadlineSeconds``/
``timeout``), or the run being stopped (``workflow/controller/operator.go`` ``assessNodeStatus``).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ...errors import EngineError
from ..core.context import Call
from ..core.inputs import inputs_doc
from ..core.state import NodeDoc, node_id
from ..features.daemons import Probe, Sidecars
from ..features.images import check_image, container_argv, image_of
from ..features.progress_file import ENV, PROGRESS_PATH, ProgressFile, initial_progress
from ..features.sandbox import NodeFS, node_env, not_started, run_process
from ..features.volumes import init_containers, run_init_containers
from .base import CheckContext, KindContext, NodeKind
from .pod import (
    DEADLINE,
    IGNORED_CONTAINER_FIELDS,
    argo_env,
    collect_outputs,
    container_env,
    finish_refused,
    place_inputs,
    pod_message,
    prepare_container,
    private_tops,
    timed,
)

__all__ = ["KIND", "check", "check_body", "run", "run_pod"]

SCRIPT_PATH = "/argo/staging/script"
"""Where Argo's executor puts a script template's source (an executable file, so ``sh -c FILE`` works)."""


def check_body(tmpl: Mapping[str, Any], where: str, cc: CheckContext) -> None:
    """The main container (or script) has an image this machine maps, with the tools it uses."""
    body = tmpl.get("container") or tmpl.get("script") or {}
    for key in IGNORED_CONTAINER_FIELDS:
        if key in body and not (tmpl.get("daemon") and key in ("readinessProbe", "ports")):  # a daemon's are used
            cc.notes.add(f"container {key}")
    check_image(body, where, cc.settings)


check = check_body


def run_pod(ctx: KindContext, call: Call) -> NodeDoc:
    """Run one attempt of a container or script pod as node ``call.name``."""
    name, display, tmpl, inputs, parent = call.name, call.display, call.template, call.inputs, call.parent
    vars_ = call.vars or {}
    nid = node_id(ctx.name, name)
    reused = ctx.reuse(nid, parent, tmpl)
    if reused is not None:
        return reused
    where = call.where
    node = ctx.new_node(name, display, "Pod", parent, tmpl, phase="Pending")
    node["inputs"] = inputs_doc(inputs)
    node["podName"] = vars_["pod.name"]
    if initial_progress(tmpl):  # workflowpod.go: the pod's progress annotation is the node's first progress
        node["progress"] = initial_progress(tmpl)
    node_dir = ctx.run_dir / "nodes" / nid
    if node_dir.exists():  # a previous attempt's folder (resume): moved aside at once, then removed
        _discard(node_dir, ctx.run_dir)
    node_dir.mkdir(parents=True)
    log_path = node_dir / "main.log"
    is_script = "script" in tmpl
    body = tmpl["script"] if is_script else tmpl["container"]

    # where the pod reports its progress: Argo's path in the node's own root, its folder made as the executor does
    progress_path = PROGRESS_PATH if ctx.sandbox.isolated else str(node_dir / "progress")

    def stage(fs: NodeFS) -> list[str]:
        fs.make_dir(str(Path(progress_path).parent), where)
        place_inputs(ctx, inputs, fs, node_dir, where)
        if not is_script or not body.get("source"):  # operator.go executeScript: no source, no file argument
            return []
        host = fs.writable(SCRIPT_PATH, where) if fs.root is not None else node_dir / "script"
        host.parent.mkdir(parents=True, exist_ok=True)
        host.write_text(str(body.get("source", "")))
        host.chmod(0o755)  # Argo's script file is executable (``sh -c FILE`` works)
        return [SCRIPT_PATH if fs.root is not None else str(host)]  # appended to args, as operator.go does

    try:
        pod = ctx.volumes.pod(tmpl, node_dir, where, vars_)
        prepared = prepare_container(
            ctx,
            body,
            own_dir=node_dir,
            pod=pod,
            private=private_tops(tmpl, inputs, body),
            env={**argo_env(nid, str(vars_["pod.name"]), "main", tmpl.get("name")), ENV: progress_path},
            where=where,
            stage=stage,
        )
    except EngineError as err:
        return finish_refused(ctx, node, err)
    fs = prepared.fs
    with ctx.pod_slots:
        if ctx.abort.is_set():
            return ctx.finish(node, "Failed", ctx.abort_message or "Stopped")
        node["phase"] = "Running"
        node["startedAt"] = ctx.state.now()
        extra = dict(ctx.hook_env)
        extra.update(ctx.run_hooks.node_started(ctx.name, nid, node) or {})
        ctx.changed()
        t0 = ctx.clock.monotonic()
        try:
            base_env = {"SCANFLOW_HOME": ctx.home_env, **prepared.env, **extra}

            def env_of(c: Mapping[str, Any]) -> dict[str, str]:
                """What an init container or sidecar declares (its PATH is its own image's)."""
                shared = {k: v for k, v in base_env.items() if k != "PATH"}
                return {**shared, **container_env(ctx, c, where), "ARGO_CONTAINER_NAME": str(c["name"])}

            failed_init = run_init_containers(
                init_containers(tmpl),
                pod,
                ctx.sandbox,
                ctx.settings,
                node_dir,
                env_of,
                ctx.pythonpath,
                call.deadline,
                ctx.abort,
                ctx.clock.monotonic,
            )
            if failed_init is not None:
                pod.cleanup()
                init_name, init_result = failed_init
                init_message = {"deadline": DEADLINE}.get(str(init_result.reason), ctx.abort_message or "Stopped")
                if init_result.reason is None:
                    init_message = pod_message(init_name, init_result)
                node["outputs"] = {"exitCode": str(init_result.exit_code)}
                ctx.finish(node, "Failed", init_message)
                ctx.run_hooks.node_finished(ctx.name, nid, node, node_dir / f"init-{init_name}.log")
                return timed(node, t0, ctx.clock.monotonic())
            main_env = node_env(base_env, ctx.pythonpath)
            popen_cwd = prepared.cwd if prepared.cwd is None or Path(prepared.cwd).is_dir() else None
            sidecars = Sidecars(tmpl, pod, ctx.sandbox, ctx.settings, node_dir, env_of, ctx.pythonpath)
            daemon = bool(tmpl.get("daemon")) and prepared.missing is None
            # a daemon on a port another daemon of the run may hold gets its own network, which its sidecars join
            net = sidecars.net = ctx.daemons.network(tmpl, node_dir, where) if daemon else None
            try:
                sidecars.start()  # before the main container, as the pod starts them together
            except BaseException:
                if net is not None:
                    net.close()
                raise
            if daemon:
                cwd = str(body.get("workingDir") or "/") if fs.root is not None else str(prepared.cwd or node_dir)
                private = private_tops(tmpl, inputs, body)
                try:
                    image = image_of(str(body["image"]), ctx.settings.engine.image_map, where)
                except BaseException:  # nothing of the pod stays behind
                    sidecars.stop()
                    if net is not None:
                        net.close()
                    raise

                def probe_argv(cmd: Sequence[str]) -> list[str]:
                    argv = ctx.sandbox.wrap(container_argv({"command": list(cmd)}, image, ctx.settings, {})[0], fs, private, cwd)
                    return net.wrap(argv) if net is not None else argv

                probe = Probe(
                    body.get("readinessProbe") or {},
                    ports={str(p["name"]): int(p["containerPort"]) for p in body.get("ports") or [] if p.get("name")},
                    exec_argv=probe_argv,
                    env=main_env,
                    connect=net.connect if net is not None else None,
                )

                def ended() -> None:
                    pod.cleanup()
                    ctx.run_hooks.node_finished(ctx.name, nid, node, log_path)

                marker = str(node_dir) if fs.root is not None else max(prepared.argv, key=len)  # its most telling argument
                return ctx.daemons.start(
                    node, prepared.argv, main_env, popen_cwd, log_path, marker, probe, sidecars, call.deadline, ended, net
                )
            try:
                if prepared.missing is not None:
                    result = not_started(log_path, prepared.missing)
                else:

                    def report(progress: str) -> None:
                        node["progress"] = progress
                        ctx.changed()

                    with ProgressFile(fs.host_path(progress_path), report):
                        result = run_process(
                            prepared.argv,
                            main_env,
                            popen_cwd,
                            log_path,
                            call.deadline,
                            ctx.abort,
                            ctx.clock.monotonic,
                            tty=bool(body.get("tty")),
                        )
            finally:
                sidecars.stop()  # the main container ended: Argo's executor kills the sidecars
        except EngineError as err:
            return finish_refused(ctx, node, err)
        t1 = ctx.clock.monotonic()
        # the node is recorded finished before its slot is given back: Argo counts a pod toward parallelism
        # until its node completes (operator.go countActivePods), so no snapshot shows more than the limit Running
        outputs: dict[str, Any] = {"result": result.stdout.rstrip(), "exitCode": str(result.exit_code)}
        phase: str = "Succeeded"
        message: str | None = None
        if result.reason == "deadline":
            phase, message = "Failed", DEADLINE
        elif result.reason == "stopped":
            phase, message = "Failed", ctx.abort_message or "Stopped"
        elif result.exit_code != 0:
            phase, message = "Failed", pod_message("main", result)
        try:
            collect_outputs(ctx, tmpl, fs, nid, outputs, failed=phase != "Succeeded", where=where)
        except EngineError as err:
            if phase == "Succeeded":
                phase, message = "Error", str(err)
        pod.cleanup()
        node["outputs"] = outputs
        ctx.finish(node, phase, message)
    ctx.run_hooks.node_finished(ctx.name, nid, node, log_path)
    return timed(node, t0, t1)


run = run_pod

KIND = NodeKind("container", "Pod", check, run)


def _discard(folder: Path, run_dir: Path) -> None:
    """Remove ``folder``: renamed first (atomic), so a process of a killed engine still writing into it (its
    pod's log) cannot make it reappear under the node's name before the new attempt creates it."""
    aside = run_dir / ".discarded" / f"{folder.name}.{uuid.uuid4().hex}"
    aside.parent.mkdir(exist_ok=True)
    os.replace(folder, aside)
    shutil.rmtree(aside, ignore_errors=True)
