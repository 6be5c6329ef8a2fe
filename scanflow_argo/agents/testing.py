"""An in-memory ``Platform`` that behaves like the real ones, for agent tests and dry experiments.

It keeps Argo's and Seldon's observable behaviour: ``submit`` of an unknown WorkflowTemplate is
``NotFoundError``; a submitted run gets a generated name at once and is ``Running`` until
``finish()``; ``list_runs`` filters by labels, newest first; ``scale``/``roll`` of an unknown
deployment is ``NotFoundError``. Faults are injected with ``fail_next(method, error)``.

With ``root`` the state lives in ``root/platform.json`` (guarded by ``flock``), so several
processes — an agent subprocess and the test that kills and restarts it — see the same runs.
``file_platform(settings)`` is the factory ``scanflow-argo agent run --platform-factory`` takes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import ConflictError, NotFoundError, PlatformError, UnavailableError
from ..platform.base import DeploymentStatus, Pairs, RunStatus, SubmitTarget
from ..serving.traffic import split_of
from ..status import PredictorStatus

__all__ = ["InMemoryPlatform", "file_platform"]


class InMemoryPlatform:
    """A ``Platform`` with no server behind it; optionally shared between processes through a file."""

    name = "memory"

    def __init__(self, root: Path | None = None, namespace: str = "scanflow") -> None:
        self.namespace = namespace
        self.root = Path(root) if root else None
        self._lock = threading.RLock()
        self._mem: dict[str, Any] = {"templates": {}, "runs": {}, "deployments": {}, "calls": [], "faults": {}}
        if self.root:
            self.root.mkdir(parents=True, exist_ok=True)

    # -- storage ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _state(self, write: bool = False) -> Iterator[dict[str, Any]]:
        with self._lock:
            if self.root is None:
                yield self._mem
                return
            path = self.root / "platform.json"
            with open(self.root / "platform.lock", "a+") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    data = (
                        json.loads(path.read_text())
                        if path.exists()
                        else {"templates": {}, "runs": {}, "deployments": {}, "calls": [], "faults": {}}
                    )
                    try:
                        yield data
                    finally:  # faults and calls are recorded even when the call raises
                        if write:
                            tmp = path.with_name(f".platform.{os.getpid()}.tmp")
                            tmp.write_text(json.dumps(data))
                            os.replace(tmp, path)
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)

    def _call(self, data: dict[str, Any], method: str, *args: Any) -> None:
        data["calls"].append([method, *args])
        fault = data["faults"].get(method)
        if fault:
            kind, message, count = fault
            if count <= 1:
                del data["faults"][method]
            else:
                data["faults"][method] = [kind, message, count - 1]
            raise {"unavailable": UnavailableError, "conflict": ConflictError, "error": PlatformError}[kind](message)

    # -- test helpers ----------------------------------------------------------------------------
    def fail_next(self, method: str, kind: str = "unavailable", message: str = "injected fault", count: int = 1) -> None:
        """Make the next ``count`` calls of ``method`` raise (``unavailable``, ``conflict`` or ``error``)."""
        with self._state(write=True) as data:
            data["faults"][method] = [kind, message, count]

    def calls(self, method: str | None = None) -> list[list[Any]]:
        with self._state() as data:
            return [c for c in data["calls"] if method is None or c[0] == method]

    def finish(self, name: str, phase: str = "Succeeded") -> None:
        with self._state(write=True) as data:
            if name not in data["runs"]:
                raise NotFoundError(f"workflow {self.namespace}/{name} not found")
            data["runs"][name]["status"]["phase"] = phase
            data["runs"][name]["status"]["finishedAt"] = _iso()

    def add_deployment(self, name: str, replicas: int = 1, model_uri: str | None = None) -> None:
        self.apply_deployment(
            {
                "metadata": {"name": name},
                "spec": {"predictors": [{"name": "default", "replicas": replicas, "graph": {"modelUri": model_uri}}]},
            }
        )

    # -- workflows -------------------------------------------------------------------------------
    def apply_template(self, manifest: Mapping[str, Any]) -> None:
        name = (manifest.get("metadata") or {}).get("name")
        if not name:
            raise PlatformError("template has no metadata.name")
        with self._state(write=True) as data:
            self._call(data, "apply_template", name)
            data["templates"][name] = dict(manifest)

    def submit(self, workflow: SubmitTarget, parameters: Pairs | None = None, labels: Pairs | None = None) -> str:
        with self._state(write=True) as data:
            template = workflow if isinstance(workflow, str) else (workflow.get("metadata") or {}).get("generateName", "wf-")
            self._call(data, "submit", template, dict(parameters or {}), dict(labels or {}))
            if isinstance(workflow, str) and workflow not in data["templates"]:
                raise NotFoundError(f"WorkflowTemplate {self.namespace}/{workflow} not found — apply it first")
            base = workflow if isinstance(workflow, str) else template.rstrip("-")
            name = f"{base}-{secrets.token_hex(3)}"
            data["runs"][name] = {
                "metadata": {"name": name, "namespace": self.namespace, "labels": dict(labels or {}), "created": time.time()},
                "spec": {"arguments": {"parameters": [{"name": k, "value": v} for k, v in (parameters or {}).items()]}},
                "status": {"phase": "Running", "startedAt": _iso()},
            }
            return name

    def get_run(self, name: str) -> RunStatus:
        with self._state() as data:
            if name not in data["runs"]:
                raise NotFoundError(f"workflow {self.namespace}/{name} not found")
            return RunStatus.from_workflow(data["runs"][name])

    def list_runs(self, labels: Mapping[str, str] | None = None) -> list[RunStatus]:
        with self._state(write=True) as data:
            self._call(data, "list_runs", dict(labels or {}))
            runs = [
                r
                for r in data["runs"].values()
                if all((r["metadata"].get("labels") or {}).get(k) == v for k, v in (labels or {}).items())
            ]
            runs.sort(key=lambda r: r["metadata"]["created"], reverse=True)
            return [RunStatus.from_workflow(r) for r in runs]

    def wait(self, name: str, timeout: float | None = None, poll: float = 0.5) -> RunStatus:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            run = self.get_run(name)
            if run.done:
                return run
            if deadline is not None and time.monotonic() > deadline:
                raise UnavailableError(f"workflow {name} did not finish within {timeout}s")
            time.sleep(poll)

    def logs(self, name: str, node: str | None = None) -> str:
        self.get_run(name)
        return ""

    def stop(self, name: str) -> None:
        self.finish(name, "Failed")

    def resume(self, name: str) -> None:
        if self.get_run(name).done:
            raise PlatformError(f"run {name!r} already finished: nothing to resume")

    def delete_run(self, name: str) -> None:
        with self._state(write=True) as data:
            self._call(data, "delete_run", name)
            if data["runs"].pop(name, None) is None:
                raise NotFoundError(f"workflow {self.namespace}/{name} not found")

    def download_artifact(self, name: str, node: str, artifact: str, dest: Path) -> Path:
        self.get_run(name).node(node)  # NotFoundError names the nodes (none: runs here have no pods)
        raise NotFoundError(f"run {name!r} has no artifacts (an in-memory platform runs nothing)")

    # -- deployments -----------------------------------------------------------------------------
    def apply_deployment(self, manifest: Mapping[str, Any]) -> None:
        meta = manifest.get("metadata") or {}
        pred = ((manifest.get("spec") or {}).get("predictors") or [{}])[0]
        with self._state(write=True) as data:
            self._call(data, "apply_deployment", meta.get("name"))
            data["deployments"][meta["name"]] = {
                "replicas": int(pred.get("replicas", 1)),
                "model_uri": (pred.get("graph") or {}).get("modelUri"),
                "predictor": pred.get("name", "default"),
                "predictors": [dict(p) for p in (manifest.get("spec") or {}).get("predictors") or []],
            }

    def get_deployment(self, name: str) -> DeploymentStatus:
        with self._state() as data:
            d = data["deployments"].get(name)
            if d is None:
                raise NotFoundError(f"SeldonDeployment {self.namespace}/{name} not found")
            split = d.get("predictors") or []
            return DeploymentStatus(
                name,
                self.namespace,
                d["replicas"],
                d["replicas"],
                d["model_uri"],
                "Available",
                d["predictor"],
                predictors=tuple(
                    PredictorStatus(
                        p.get("name", ""),
                        int(p.get("traffic", 100 if len(split) == 1 else 0)),
                        bool(p.get("shadow")),
                        int(p.get("replicas", 1)),
                        int(p.get("replicas", 1)),
                        (p.get("graph") or {}).get("modelUri"),
                        p,
                    )
                    for p in split
                ),
            )

    def scale(self, name: str, replicas: int) -> DeploymentStatus:
        with self._state(write=True) as data:
            self._call(data, "scale", name, replicas)
            if name not in data["deployments"]:
                raise NotFoundError(f"SeldonDeployment {self.namespace}/{name} not found")
            data["deployments"][name]["replicas"] = int(replicas)
        return self.get_deployment(name)

    def roll(self, name: str, model_uri: str) -> DeploymentStatus:
        with self._state(write=True) as data:
            self._call(data, "roll", name, model_uri)
            if name not in data["deployments"]:
                raise NotFoundError(f"SeldonDeployment {self.namespace}/{name} not found")
            data["deployments"][name]["model_uri"] = model_uri
        return self.get_deployment(name)

    def set_predictors(self, name: str, predictors: list[dict[str, Any]]) -> DeploymentStatus:
        split_of(name, predictors)  # refused as Seldon's webhook refuses it, before anything changes
        with self._state(write=True) as data:
            self._call(data, "set_predictors", name, predictors)
            if name not in data["deployments"]:
                raise NotFoundError(f"SeldonDeployment {self.namespace}/{name} not found")
            first = predictors[0]
            data["deployments"][name].update(
                predictors=[dict(p) for p in predictors],
                predictor=first.get("name", "default"),
                model_uri=(first.get("graph") or {}).get("modelUri"),
                replicas=int(first.get("replicas", data["deployments"][name]["replicas"])),
            )
        return self.get_deployment(name)

    def delete_deployment(self, name: str) -> None:
        with self._state(write=True) as data:
            self._call(data, "delete_deployment", name)
            data["deployments"].pop(name, None)


def _iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def file_platform(settings: Any) -> InMemoryPlatform:
    """The shared-file variant under ``<home>/fake-platform`` (for ``agent run --platform-factory``)."""
    return InMemoryPlatform(Path(settings.home) / "fake-platform", namespace=settings.kubernetes.namespace)
