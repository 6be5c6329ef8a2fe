"""Pod volumes and init containers of the local engine, with Kubernetes/Argo semantics.

A pod's volumes resolve to host folders that become binds in the node's sandbox:

- ``emptyDir``: a fresh folder per pod (per node attempt), shared by its init and main containers,
  removed when the pod ends;
- ``spec.volumeClaimTemplates``: one folder per claim per run, ``<run>/volumes/<workflow>-<claim>``
  (the PVC name Argo gives it), shared by every pod of the run and removed when the run completes
  as ``spec.volumeClaimGC`` says (Argo's default ``OnWorkflowSuccess`` keeps it after a failure);
- ``persistentVolumeClaim`` of an existing claim: ``$SCANFLOW_HOME/volumes/<namespace>/<claim>/``,
  which must exist (Kubernetes leaves the pod Pending forever; here it is an error saying how to
  create it);
- ``configMap`` / ``secret``: the keys of the ConfigMap or Secret of the pod's namespace (where
  ``core/configstore.py`` says it lives), projected read-only into a per-pod folder (``items``, ``optional``,
  ``defaultMode``/``mode`` honoured).

Other volume kinds (hostPath, nfs, csi…) are refused. ``initContainers`` run in order before the
main container, each in its own root with the pod's volumes (``mirrorVolumeMounts`` gives them the
main container's mounts); the first that fails fails the node.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ...errors import EngineError, NotSupportedLocally, PodRefused
from ...settings import Settings
from ..core.configstore import CONFIGMAPS, SECRETS, find_object, missing
from ..core.paths import safe_join
from ..core.subst import substitute
from .images import launch
from .sandbox import NodeFS, ProcessResult, Sandbox, node_env, not_started, run_process

__all__ = [
    "GC_STRATEGIES",
    "SUPPORTED_KINDS",
    "Mount",
    "PodVolumes",
    "RunVolumes",
    "check_mounts",
    "check_volume",
    "claim_dir",
    "init_containers",
    "mount_tops",
    "run_init_containers",
    "volume_kind",
]

SUPPORTED_KINDS = ("emptyDir", "persistentVolumeClaim", "configMap", "secret")
GC_STRATEGIES = ("OnWorkflowSuccess", "OnWorkflowCompletion")
_NAME = "name"


@dataclass(frozen=True)
class Mount:
    """One volumeMount placed in a sandbox: the host folder (or file) behind a container path."""

    host: Path
    path: str
    read_only: bool


def volume_kind(vol: Mapping[str, Any]) -> str:
    """The source of a Kubernetes volume (``emptyDir``, ``persistentVolumeClaim``…)."""
    kinds = [k for k in vol if k != _NAME]
    return kinds[0] if kinds else ""


def check_volume(vol: Mapping[str, Any], where: str) -> None:
    """A declared volume is named and of a kind this machine can provide."""
    name = vol.get(_NAME)
    if not name:
        raise EngineError(f"{where}: a volume has no name: give each entry of volumes a name")
    kind = volume_kind(vol)
    if kind not in SUPPORTED_KINDS:
        raise NotSupportedLocally(f"{kind or 'source-less'} volume {name!r} (locally: {', '.join(SUPPORTED_KINDS)})", where)
    if kind == "persistentVolumeClaim" and not (vol[kind] or {}).get("claimName"):
        raise EngineError(f"{where}: volume {name!r} has no persistentVolumeClaim.claimName")


def claim_names(spec: Mapping[str, Any]) -> list[str]:
    """The names of ``spec.volumeClaimTemplates`` (each must have one)."""
    out = []
    for i, claim in enumerate(spec.get("volumeClaimTemplates") or []):
        name = ((claim or {}).get("metadata") or {}).get("name")
        if not name:
            raise EngineError(f"spec.volumeClaimTemplates[{i}] has no metadata.name: name the claim")
        out.append(str(name))
    return out


def gc_strategy(spec: Mapping[str, Any]) -> str:
    strategy = str((spec.get("volumeClaimGC") or {}).get("strategy") or "OnWorkflowSuccess")
    if strategy not in GC_STRATEGIES:
        raise EngineError(f"spec.volumeClaimGC.strategy {strategy!r} is unknown: use {' or '.join(GC_STRATEGIES)}")
    return strategy


def claim_dir(home: Path, namespace: str, claim: str, where: str) -> Path:
    """The folder of an existing claim; a missing one is an error that says how to create it."""
    folder = safe_join(home / "volumes", f"{namespace}/{claim}", f"{where}: claim {claim!r}")
    if not folder.is_dir():
        raise EngineError(
            f"{where}: persistentVolumeClaim {claim!r} not found in namespace {namespace!r} (a pod using it would stay "
            f"Pending on Kubernetes): create it first: `scanflow-argo apply` its PersistentVolumeClaim, or mkdir -p {folder}"
        )
    return folder


def check_mounts(mounts: Iterable[Mapping[str, Any]], declared: Iterable[str], where: str, container: str) -> None:
    """Each mount is well-formed and names a declared volume (unless the name is still a template tag). What
    Kubernetes refuses in a pod is ``PodRefused``: on Argo the node errors when it starts (the workflow is
    accepted); ``subPathExpr`` is refused before anything runs (``NotSupportedLocally``)."""
    known = sorted(set(declared))
    for m in mounts:
        if "subPathExpr" in m:
            raise NotSupportedLocally(f"volumeMount {m.get(_NAME)!r} subPathExpr", where)
    for m in mounts:
        name, path = m.get(_NAME), m.get("mountPath")
        if not name or not path:
            raise PodRefused(f"{where}: a volumeMount of container {container!r} needs both name and mountPath")
        if not PurePosixPath(str(path)).is_absolute() and "{{" not in str(path):
            raise PodRefused(f"{where}: volumeMount {name!r} mountPath {path!r} must be absolute")
        if "{{" not in str(name) and name not in known:
            raise PodRefused(
                f"{where}: volumeMount {name!r} of container {container!r} (at {path}) names no declared volume "
                f"(declared: {', '.join(known) or 'none'}): add {name!r} to spec.volumes, the template's volumes "
                "or spec.volumeClaimTemplates"
            )


def init_containers(tmpl: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The template's init containers, with ``mirrorVolumeMounts`` turned into the main container's mounts."""
    body = tmpl.get("container") or tmpl.get("script") or {}
    out = []
    for i, c in enumerate(tmpl.get("initContainers") or []):
        c = dict(c)
        c.setdefault(_NAME, f"init-{i}")
        if c.pop("mirrorVolumeMounts", False):
            own = {m.get("mountPath") for m in c.get("volumeMounts") or []}
            c["volumeMounts"] = [
                *(c.get("volumeMounts") or []),
                *(m for m in body.get("volumeMounts") or [] if m.get("mountPath") not in own),
            ]
        out.append(c)
    return out


def mount_tops(mounts: Iterable[Mapping[str, Any]]) -> set[str]:
    """Top-level folders the mounts land in (the node makes them its own)."""
    tops = set()
    for m in mounts:
        parts = PurePosixPath("/", str(m.get("mountPath") or "")).parts
        if len(parts) > 1:
            tops.add(parts[1])
    return tops


class RunVolumes:
    """The volumes of one run: declared ``spec.volumes`` and the claims its templates create."""

    def __init__(self, spec: Mapping[str, Any], workflow: str, namespace: str, run_dir: Path, home: Path) -> None:
        self.spec_volumes = {str(v.get(_NAME)): dict(v) for v in spec.get("volumes") or []}
        self._lock = threading.Lock()
        self.workflow = workflow
        self.namespace = namespace
        self.run_dir = run_dir
        self.home = home
        self.strategy = gc_strategy(spec)
        # as Argo names the PVC of a claim template: <workflow>-<claim>
        self.claims = {name: f"{workflow}-{name}" for name in claim_names(spec)}

    def claim_folder(self, pvc: str) -> Path:
        return self.run_dir / "volumes" / pvc

    def create_claims(self) -> list[dict[str, Any]]:
        """Make the run's claim folders (kept on resume); the ``status.persistentVolumeClaims`` entries."""
        out = []
        for name, pvc in self.claims.items():
            self.claim_folder(pvc).mkdir(parents=True, exist_ok=True)
            out.append({"name": name, "persistentVolumeClaim": {"claimName": pvc}})
        return out

    def collect(self, phase: str) -> bool:
        """Delete the claims of a completed run as ``volumeClaimGC`` says; True when they were deleted."""
        if not self.claims or (self.strategy == "OnWorkflowSuccess" and phase != "Succeeded"):
            return False  # Argo keeps them for a retry of the failed run
        for pvc in self.claims.values():
            shutil.rmtree(self.claim_folder(pvc), ignore_errors=True)
        return True

    def resolve_references(self, variables: Mapping[str, Any]) -> None:
        """Fill ``spec.volumes``' tags that a step or task's scope knows (``{{tasks.x.outputs.parameters.y}}``),
        for every pod from now on, leaving the rest for each pod's own variables: Argo's
        ``substituteParamsInVolumes`` (``workflow/controller/operator.go``), run as each step group or task
        resolves its references (``steps.go`` ``resolveReferences``, ``dag.go`` ``resolveDependencyReferences``).
        A tag naming an absent optional fails it (``subst.AbsentOptional``)."""
        if not self.spec_volumes or "{{" not in repr(self.spec_volumes):
            return
        with self._lock:
            self.spec_volumes = substitute(self.spec_volumes, variables, strict=False, where="spec.volumes")

    def declared(self, tmpl: Mapping[str, Any], variables: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
        """The volumes a pod of ``tmpl`` can mount: the workflow's (tags such as ``{{workflow.name}}``
        resolved with ``variables``), its claims', its own (already resolved with the template)."""
        out = dict(self.spec_volumes)
        if variables is not None:
            out = substitute(out, variables, where="spec.volumes")
        for name, pvc in self.claims.items():
            out.setdefault(name, {_NAME: name, "persistentVolumeClaim": {"claimName": pvc}})
        for v in tmpl.get("volumes") or []:
            out[str(v.get(_NAME))] = dict(v)
        return out

    def pod(self, tmpl: Mapping[str, Any], node_dir: Path, where: str, variables: Mapping[str, Any] | None = None) -> PodVolumes:
        return PodVolumes(self, self.declared(tmpl, variables), node_dir, where)


class PodVolumes:
    """The volumes of one pod (one node attempt): resolved once, shared by its containers."""

    def __init__(self, run: RunVolumes, declared: dict[str, dict[str, Any]], node_dir: Path, where: str) -> None:
        self.run = run
        self.declared = declared
        self.folder = node_dir / "volumes"
        self.where = where
        self._sources: dict[str, tuple[Path, bool]] = {}

    def source(self, name: str) -> tuple[Path, bool]:
        """(host folder, read-only) behind the volume ``name``."""
        if name in self._sources:
            return self._sources[name]
        vol = self.declared.get(name)
        if vol is None:
            raise EngineError(
                f"{self.where}: volume {name!r} is not declared (declared: {', '.join(sorted(self.declared)) or 'none'})"
            )
        check_volume(vol, self.where)
        kind = volume_kind(vol)
        src = vol[kind] or {}
        if kind == "emptyDir":
            host, ro = safe_join(self.folder, name, f"{self.where}: volume {name!r}"), False
            host.mkdir(parents=True, exist_ok=True)
        elif kind == "persistentVolumeClaim":
            claim = str(src["claimName"])
            if claim in self.run.claims.values():
                host = self.run.claim_folder(claim)
                host.mkdir(parents=True, exist_ok=True)
            else:
                host = claim_dir(self.run.home, self.run.namespace, claim, self.where)
            ro = bool(src.get("readOnly"))
        else:
            host, ro = self._project(name, kind, src), True
        self._sources[name] = (host, ro)
        return host, ro

    def _project(self, name: str, kind: str, src: Mapping[str, Any]) -> Path:
        """A configMap/secret's keys as files in a per-pod folder (Kubernetes projects them read-only)."""
        ref = str(src.get("secretName" if kind == "secret" else _NAME) or "")
        folder = SECRETS if kind == "secret" else CONFIGMAPS
        what = f"{self.where}: {kind} volume {name!r}"
        store = find_object(self.run.home, folder, self.run.namespace, ref)  # in the pod's namespace, as the kubelet
        dest = safe_join(self.folder, name, what)
        dest.mkdir(parents=True, exist_ok=True)
        if store is None:
            if src.get("optional"):
                return dest  # an optional missing source mounts empty, as on Kubernetes
            why = missing(self.run.home, folder, self.run.namespace, ref)
            raise EngineError(f"{what}: {why} (or mark the volume optional)")
        default_mode = int(src.get("defaultMode", 0o644))
        items = src.get("items")
        pairs = [(str(i["key"]), str(i.get("path") or i["key"]), i.get("mode")) for i in items] if items else None
        if pairs is None:
            pairs = [(p.name, p.name, None) for p in sorted(store.iterdir()) if p.is_file() and not p.name.startswith(".")]
        for key, path, mode in pairs:
            key_file = safe_join(store, key, what)
            if not key_file.is_file():
                if src.get("optional"):
                    continue
                raise EngineError(f"{what}: {missing(self.run.home, folder, self.run.namespace, ref, key)}")
            target = safe_join(dest, path, what)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(key_file, target)
            target.chmod(int(mode) if mode is not None else default_mode)
        return dest

    def mounts(self, container: Mapping[str, Any], sandbox: Sandbox) -> list[Mount]:
        """The container's volumeMounts as host binds, parents before what they contain."""
        name = str(container.get(_NAME) or "main")
        where = self.where
        mounts = list(container.get("volumeMounts") or [])
        check_mounts(mounts, self.declared, where, name)
        out = []
        for m in mounts:
            host, ro = self.source(str(m[_NAME]))
            cpath = str(PurePosixPath("/", str(m["mountPath"])))
            if ".." in PurePosixPath(cpath).parts:
                raise EngineError(f"{where}: mountPath {cpath!r} contains '..'")
            top = PurePosixPath(cpath).parts[1] if len(PurePosixPath(cpath).parts) > 1 else ""
            if not top:
                raise EngineError(f"{where}: volumeMount {m[_NAME]!r} cannot be mounted at /")
            # what nodes need from this machine (the interpreter, the project, the run's state) is bound back over the
            # mount (Sandbox.wrap), its mount points made in the volume: not possible in a read-only one
            hidden = [p for p in sandbox.needed if p.is_relative_to(cpath)]
            if hidden and (ro or m.get("readOnly")):
                raise EngineError(
                    f"{where}: read-only volumeMount {m[_NAME]!r} at {cpath} would hide {hidden[0]}, which nodes need from "
                    "this machine (the interpreter, the project or the run's state): mount it elsewhere (e.g. /mnt/...)"
                )
            if m.get("subPath"):
                host = safe_join(host, str(m["subPath"]), f"{where}: volumeMount {m[_NAME]!r} subPath")
                if not host.exists():
                    if ro:
                        raise EngineError(f"{where}: volumeMount {m[_NAME]!r} subPath {m['subPath']!r} is not in the volume")
                    host.mkdir(parents=True)  # the kubelet creates a missing subPath folder
            out.append(Mount(host, cpath, ro or bool(m.get("readOnly"))))
        return sorted(out, key=lambda mt: len(PurePosixPath(mt.path).parts))

    def place(self, mounts: Sequence[Mount], fs: NodeFS) -> None:
        """Add ``mounts`` to a node's sandbox binds."""
        if mounts and fs.root is None:
            raise EngineError(
                f"{self.where}: volumeMounts need the node sandbox: install bubblewrap (apt-get install bubblewrap)"
            )
        for mt in mounts:
            fs.binds.append((mt.host, mt.path))
            if mt.read_only:
                fs.read_only.add(mt.path)

    def cleanup(self) -> None:
        """The pod is over: its emptyDirs and projected files go (claims stay)."""
        shutil.rmtree(self.folder, ignore_errors=True)


def run_init_containers(
    containers: Sequence[Mapping[str, Any]],
    pod: PodVolumes,
    sandbox: Sandbox,
    settings: Settings,
    node_dir: Path,
    env_of: Callable[[Mapping[str, Any]], dict[str, str]],
    pythonpath: Sequence[Path],
    deadline: float | None,
    stopped: threading.Event,
    monotonic: Callable[[], float],
) -> tuple[str, ProcessResult] | None:
    """Run the pod's init containers in order, each in its own root with its mounts and the environment
    ``env_of`` declares for it; logs go to ``init-<name>.log``. Returns the first that failed (its name
    and result), or None."""
    for c in containers:
        name = str(c[_NAME])
        where = f"{pod.where} init container {name!r}"
        cdir = safe_join(node_dir / "init", name, where)
        fs = sandbox.prepare(cdir)
        pod.place(pod.mounts(c, sandbox), fs)
        cwd = str(c.get("workingDir") or "/")
        if fs.root is None and not c.get("workingDir"):
            cwd = str(cdir)
        fs.make_dir(cwd, f"{where} workingDir")
        private = mount_tops([*(c.get("volumeMounts") or []), {"mountPath": c.get("workingDir") or "/argo"}])
        declared = env_of(c)
        started = launch(c, settings, sandbox, fs, private, cwd, declared, where)
        log = node_dir / f"init-{name}.log"
        if started.missing is not None:
            result = not_started(log, started.missing)
        else:
            env = node_env({**declared, "PATH": started.path}, pythonpath)
            result = run_process(started.argv, env, None if fs.root is not None else cwd, log, deadline, stopped, monotonic)
        if result.reason is not None or result.exit_code != 0:
            return name, result
    return None
