"""Engine hooks: the ``RunHooks`` protocol the engine calls around a run and each node.

The engine ships ``NoHooks``; ``scanflow_argo.tracking.hooks.MlflowHooks`` implements the same
protocol to record runs in MLflow. ``make_hooks(settings)`` picks one from the settings.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..settings import Settings

__all__ = ["NoHooks", "RunHooks", "make_hooks"]


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


def make_hooks(settings: Settings) -> RunHooks:
    """``MlflowHooks`` when tracking is enabled and a tracking URI is set, else ``NoHooks``."""
    if not (settings.tracking.enabled and settings.tracking.uri):
        return NoHooks()
    try:
        from ..tracking.hooks import MlflowHooks  # type: ignore[import-not-found]
    except ImportError:
        print("scanflow-argo: tracking hooks are not available; running without MLflow tracking", file=sys.stderr)
        return NoHooks()
    return MlflowHooks(settings.tracking.uri, experiment=settings.tracking.experiment)
