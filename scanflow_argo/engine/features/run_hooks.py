"""Run hooks: the ``RunHooks`` protocol the engine calls around a run and each of its pod nodes (not to be
confused with Argo's lifecycle ``hooks:``, which are ``features/lifecycle.py``).

The engine ships ``NoHooks``; ``scanflow_argo.tracking.hooks.MlflowHooks`` implements the same protocol
to record runs in MLflow, and the local platform's composition root (``scanflow_argo.platform.local_engine``
``make_hooks``) picks one for a run, using ``workflow_tracks`` to start MLflow only for runs that track.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ...errors import ScanflowError
from ..core.manifest import TemplateStore

__all__ = ["TRACKING_ENV", "NoHooks", "RunHooks", "workflow_tracks"]

TRACKING_ENV = "MLFLOW_TRACKING_URI"
"""A step that tracks reads this variable: compiled ``@step(tracking=True)`` steps get it from the
``scanflow-mlflow`` ConfigMap, hand-written ones set it however they like — either way it is in the
template's ``env``, which makes it the one marker that holds for both."""


@runtime_checkable
class RunHooks(Protocol):
    """Called by the engine; the dicts returned are added to the nodes' environment."""

    def workflow_started(self, run: str, workflow: dict[str, Any]) -> dict[str, str]: ...

    def node_started(self, run: str, node_id: str, node: dict[str, Any]) -> dict[str, str]: ...

    def node_finished(self, run: str, node_id: str, node: dict[str, Any], log_path: Path | None) -> None: ...

    def workflow_finished(self, run: str, status: dict[str, Any]) -> None: ...


class NoHooks:
    """Hooks that do nothing (tracking disabled)."""

    def workflow_started(self, run: str, workflow: dict[str, Any]) -> dict[str, str]:
        return {}

    def node_started(self, run: str, node_id: str, node: dict[str, Any]) -> dict[str, str]:
        return {}

    def node_finished(self, run: str, node_id: str, node: dict[str, Any], log_path: Path | None) -> None:
        return None

    def workflow_finished(self, run: str, status: dict[str, Any]) -> None:
        return None


def _templates(workflow: Mapping[str, Any], store: TemplateStore | None) -> Iterator[Mapping[str, Any]]:
    """The workflow's templates and those of every WorkflowTemplate it references (transitively)."""
    spec = workflow.get("spec") or {}
    pending: list[Mapping[str, Any]] = [spec]
    seen: set[tuple[bool, str]] = set()
    while pending:
        body = pending.pop()
        if body.get("templateDefaults"):
            yield body["templateDefaults"]
        for tmpl in body.get("templates") or []:
            yield tmpl
            if store is None:
                continue
            refs = [
                holder.get("templateRef")
                for group in tmpl.get("steps") or []
                for holder in (group if isinstance(group, list) else [group])
            ] + [task.get("templateRef") for task in (tmpl.get("dag") or {}).get("tasks") or []]
            for ref in refs:
                key = (bool((ref or {}).get("clusterScope")), str((ref or {}).get("name", "")))
                if ref and key not in seen:
                    seen.add(key)
                    try:
                        pending.append(store.get(key[1], key[0]).get("spec") or {})
                    except ScanflowError:
                        continue  # check_supported reports a missing template; this is only a hint


def workflow_tracks(workflow: Mapping[str, Any], store: TemplateStore | None = None) -> bool:
    """True when a template of the run sets ``MLFLOW_TRACKING_URI`` in its env (a step that tracks)."""
    for tmpl in _templates(workflow, store):
        bodies = [tmpl.get("container"), tmpl.get("script"), *((tmpl.get("containerSet") or {}).get("containers") or [])]
        for body in bodies:
            if isinstance(body, Mapping) and any(
                isinstance(e, Mapping) and e.get("name") == TRACKING_ENV for e in body.get("env") or []
            ):
                return True
    return False
