"""``LocalPlatform``: the embedded default — workflows through the local engine, models through local Seldon.

Declarative like Kubernetes: a submitted run is a folder ``<home>/runs/<name>/`` that a detached
engine process (``python -m scanflow_argo.platform.local_engine RUN_DIR``) works on; its status is read back from
``status.json``. WorkflowTemplates live in ``settings.templates_dir`` (``<home>/templates``).
Deployments are delegated to ``scanflow_argo.serving.controller.LocalDeployments``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .._proc import cmdline_of, spawn
from ..engine.api import prepare_run
from ..errors import EngineError, NotFoundError, PlatformError, UnavailableError
from ..serving.controller import LocalDeployments
from ..settings import Settings
from .base import DeploymentStatus, RunStatus

__all__ = ["LocalPlatform"]

TEMPLATE_KINDS = ("WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow")


class LocalPlatform:
    """The ``Platform`` on this machine (state in ``settings.home``)."""

    name = "local"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.namespace = settings.kubernetes.namespace

    # -- workflows --------------------------------------------------------------------------
    @property
    def runs_dir(self) -> Path:
        return self.settings.home / "runs"

    def _template_path(self, manifest: Mapping[str, Any]) -> Path:
        kind = manifest.get("kind")
        if kind not in TEMPLATE_KINDS:
            raise PlatformError(f"apply_template takes a {' or '.join(TEMPLATE_KINDS)}, not a {kind}")
        name = (manifest.get("metadata") or {}).get("name")
        if not name or "/" in name or name.startswith("."):
            raise PlatformError(f"the {kind} needs a valid metadata.name to be applied (got {name!r})")
        prefix = "cluster-" if kind == "ClusterWorkflowTemplate" else ""
        return self.settings.templates_dir / f"{prefix}{name}.yaml"

    def has_template(self, manifest: Mapping[str, Any]) -> bool:
        """True when a template of this kind and name is applied already."""
        return self._template_path(manifest).is_file()

    def apply_template(self, manifest: Mapping[str, Any], *, project_dir: Path | None = None) -> None:
        """Write the template to ``<templates>/<name>.yaml`` and record the project it belongs to.

        The project folder (default: the current one) is what script steps of runs from this
        template import from (``pipelines.*``), as the image holds the code on a cluster; it is
        kept beside the template in ``.<name>.project``, so ``submit(name, parameters)`` needs nothing more."""
        path = self._template_path(manifest)
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, yaml.safe_dump(dict(manifest), sort_keys=False))
        _atomic_write(_project_file(path), str((project_dir or Path.cwd()).resolve()))

    def project_dir(self, template: str, cluster: bool = False) -> Path | None:
        """The project folder recorded when ``template`` was applied (None when unknown)."""
        path = self.settings.templates_dir / f"{'cluster-' if cluster else ''}{template}.yaml"
        try:
            folder = Path(_project_file(path).read_text().strip())
        except OSError:
            return None
        return folder if folder.is_dir() else None

    def submit(
        self,
        workflow: Mapping[str, Any] | str,
        parameters: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> str:
        """Prepare the run (refusing what cannot run locally) and start its detached engine.

        Steps import the project's code from the folder recorded when the template was applied
        (``apply_template``), else from the current folder."""
        if isinstance(workflow, str):
            manifest: Mapping[str, Any] = {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "Workflow",
                "metadata": {"generateName": f"{workflow}-"},
                "spec": {"workflowTemplateRef": {"name": workflow}},
            }
        else:
            manifest = workflow
            if manifest.get("kind") in ("WorkflowTemplate", "ClusterWorkflowTemplate"):
                self.apply_template(manifest)
        run_dir = prepare_run(manifest, self.settings, parameters, labels=labels, source_dir=self._source_of(manifest))
        self.start_engine(run_dir)
        return run_dir.name

    def _source_of(self, manifest: Mapping[str, Any]) -> Path | None:
        spec = manifest.get("spec") or {}
        if manifest.get("kind") in ("WorkflowTemplate", "ClusterWorkflowTemplate"):
            ref = {"name": (manifest.get("metadata") or {}).get("name"), "clusterScope": manifest["kind"].startswith("Cluster")}
        else:
            ref = spec.get("workflowTemplateRef") or {}
        name = ref.get("name")
        return self.project_dir(str(name), bool(ref.get("clusterScope"))) if name else None

    def start_engine(self, run_dir: Path) -> int:
        """Start ``python -m scanflow_argo.platform.local_engine RUN_DIR`` in its own process group; returns its pid."""
        child = spawn(
            [self.settings.engine.python, "-m", "scanflow_argo.platform.local_engine", str(run_dir.resolve())],
            name=f"engine for {run_dir.name}",
            log=run_dir / "engine.log",
        )
        return child.pid

    def run_dir(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise NotFoundError(f"no run named {name!r}")
        path = self.runs_dir / name
        if not (path / "status.json").is_file():
            raise NotFoundError(f"no run named {name!r} in {self.runs_dir} (scanflow-argo list shows the runs)")
        return path

    def _read(self, name: str) -> dict[str, Any]:
        path = self.run_dir(name) / "status.json"
        for _ in range(5):  # the engine replaces the file atomically; retry a torn read of an older copy
            try:
                return json.loads(path.read_text())
            except json.JSONDecodeError:
                time.sleep(0.02)
        raise PlatformError(f"{path} cannot be read as JSON")

    def get_run(self, name: str) -> RunStatus:
        return RunStatus.from_workflow(self._read(name))

    def engine_alive(self, name: str) -> bool:
        """True while the run's engine process is running."""
        pid = self.engine_pid(self.run_dir(name))
        return pid is not None

    def engine_pid(self, run_dir: Path) -> int | None:
        try:
            pid = int((run_dir / "engine.pid").read_text())
        except (OSError, ValueError):
            return None
        argv = cmdline_of(pid)
        # only a process whose command line names this run folder is ours
        if argv is None or not any(str(run_dir.resolve()) in a or a.endswith(run_dir.name) for a in argv):
            return None
        return pid

    def list_runs(self, labels: Mapping[str, str] | None = None) -> list[RunStatus]:
        out: list[tuple[float, RunStatus]] = []
        if not self.runs_dir.is_dir():
            return []
        for entry in self.runs_dir.iterdir():
            if not (entry / "status.json").is_file():
                continue
            try:
                run = RunStatus.from_workflow(json.loads((entry / "status.json").read_text()))
            except (OSError, json.JSONDecodeError):
                continue
            if labels and any(run.labels.get(k) != v for k, v in labels.items()):
                continue
            out.append((entry.stat().st_mtime, run))
        return [r for _, r in sorted(out, key=lambda item: (item[1].started_at or "", item[0]), reverse=True)]

    def wait(self, name: str, timeout: float | None = None, poll: float = 0.5) -> RunStatus:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            run = self.get_run(name)
            if run.done:
                return run
            if deadline is not None and time.monotonic() >= deadline:
                raise UnavailableError(f"run {name!r} did not finish within {timeout:.0f}s (phase {run.phase})")
            if not self.engine_alive(name) and run.phase in ("Running", "Pending"):
                # the engine may be starting (no pid yet) or gone; give it a moment before deciding
                time.sleep(min(poll, 0.5))
                if self.get_run(name).done:
                    continue
                if (
                    not self.engine_alive(name)
                    and (self.run_dir(name) / "engine.log").exists()
                    and _engine_exited(self.run_dir(name))
                ):
                    raise EngineError(f"the engine of run {name!r} stopped before the run ended: scanflow-argo resume {name}")
            time.sleep(poll)

    def logs(self, name: str, node: str | None = None, container: str = "main") -> str:
        run = self.get_run(name)
        run_dir = self.run_dir(name)
        pods = [n for n in run.nodes.values() if n.type == "Pod"]
        pods.sort(key=lambda n: (n.started_at or "", n.id))
        if node is not None:
            chosen = [n for n in pods if n.display_name == node or n.id == node]
            if not chosen:
                # a retry, steps or DAG node: the logs of the pods under it, in the order of its children
                # (``deploy`` → ``deploy(0)``, ``deploy(1)``: attempts can start within the same second)
                chosen = _pods_under(run, run.node(node) if node not in run.nodes else run.nodes[node])
            pods = chosen
        parts = []
        for n in pods:
            log = _container_log(run_dir / "nodes" / n.id, container)
            if log is None:
                if node is None:
                    continue  # only the pods that have this container
                found = sorted(p.name for p in (run_dir / "nodes" / n.id).glob("*.log"))
                raise PlatformError(
                    f"pod {n.display_name!r} of run {name!r} has no container {container!r}: its logs are {', '.join(found) or 'none yet'}"
                )
            text = log.read_text(errors="replace") if log.exists() else ""
            if node is not None:
                parts.append(text)
            else:
                parts.extend(f"{n.display_name}: {line}" for line in text.splitlines())
        return "".join(parts) if node is not None else "\n".join(parts) + ("\n" if parts else "")

    def stop(self, name: str) -> None:
        """Ask the run's engine to stop (SIGTERM): running nodes are stopped, exit handlers still run."""
        run_dir = self.run_dir(name)
        pid = self.engine_pid(run_dir)
        if pid is None:
            if not self.get_run(name).done:
                raise PlatformError(f"run {name!r} has no engine running: resume it, or leave it")
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)

    # -- model deployments ------------------------------------------------------------------
    def _deployments(self) -> Any:
        return LocalDeployments(self.settings)

    def apply_deployment(self, manifest: Mapping[str, Any]) -> None:
        self._deployments().apply(manifest)

    def get_deployment(self, name: str) -> DeploymentStatus:
        return self._deployments().get(name)

    def scale(self, name: str, replicas: int) -> DeploymentStatus:
        return self._deployments().scale(name, replicas)

    def roll(self, name: str, model_uri: str) -> DeploymentStatus:
        return self._deployments().roll(name, model_uri)

    def delete_deployment(self, name: str) -> None:
        self._deployments().delete(name)


def _project_file(template: Path) -> Path:
    """``.<name>.project`` beside ``<name>.yaml`` (a dot file: the engine's template store skips it)."""
    return template.with_name(f".{template.stem}.project")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _pods_under(run: RunStatus, top: Any) -> list[Any]:
    """The pod nodes below ``top`` (children followed transitively)."""
    out, todo, seen = [], list(top.children), set()
    while todo:
        nid = todo.pop(0)
        if nid in seen or nid not in run.nodes:
            continue
        seen.add(nid)
        child = run.nodes[nid]
        if child.type == "Pod":
            out.append(child)
        todo.extend(child.children)
    return out


def _engine_exited(run_dir: Path) -> bool:
    """True when the run has been started before (a log exists) and no engine holds its lock."""
    import fcntl

    lock = run_dir / "engine.lock"
    if not lock.exists():
        return False
    with open(lock) as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(fh, fcntl.LOCK_UN)
    return True


def _container_log(node_dir: Path, container: str) -> Path | None:
    """The log file of one container of a pod: ``main.log``, a containerSet's ``<name>.log``, an init
    container's ``init-<name>.log`` or a sidecar's ``sidecar-<name>.log`` (None: no such container)."""
    if container == "main":
        return node_dir / "main.log"  # may not exist yet: the pod has not started
    for name in (f"{container}.log", f"init-{container}.log", f"sidecar-{container}.log"):
        if "/" not in container and (node_dir / name).is_file():
            return node_dir / name
    return None
