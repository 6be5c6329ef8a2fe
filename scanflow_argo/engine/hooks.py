"""Engine hooks: the ``RunHooks`` protocol the engine calls around a run and each node.

The engine ships ``NoHooks``; ``scanflow_argo.tracking.hooks.MlflowHooks`` implements the same
protocol to record runs in MLflow. ``make_hooks(settings, workflow, store)`` picks one: MLflow at
``settings.tracking.uri`` when one is configured; else the local MLflow server of this home — started
on demand (``ensure_local_server``, ~10 s, detached; ``scanflow-argo mlflow down`` stops it) only
when the workflow has a step that tracks (``workflow_tracks``), or used as is when it already runs;
else ``NoHooks``, so trivial workflows never pay MLflow's start.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..errors import ScanflowError
from ..settings import Settings

if TYPE_CHECKING:
    from .model import TemplateStore

__all__ = ["TRACKING_ENV", "NoHooks", "RunHooks", "make_hooks", "workflow_tracks"]

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


@contextlib.contextmanager
def _start_lock(settings: Settings) -> Iterator[None]:
    """An exclusive lock on ``<home>/mlflow/start.lock`` while the local server is found or started."""
    import fcntl

    from ..tracking.server import mlflow_dir

    folder = mlflow_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "start.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # released when the file closes
        yield


def _started_elsewhere(settings: Settings, timeout: float = 60.0) -> str | None:
    """The local server's URL once another engine that is starting it (port taken) has it answering."""
    from .._proc import port_in_use, wait_http

    url = f"http://127.0.0.1:{settings.tracking.port}"
    if not port_in_use(settings.tracking.port):
        return None  # nobody is starting it: the error was something else (say, mlflow missing)
    try:
        wait_http(f"{url}/health", timeout=timeout)
    except ScanflowError:
        return None
    return url


def _say(message: str) -> None:
    print(f"scanflow-argo: {message}", file=sys.stderr)


def make_hooks(
    settings: Settings,
    workflow: Mapping[str, Any] | None = None,
    store: TemplateStore | None = None,
    log: Callable[[str], None] | None = None,
) -> RunHooks:
    """``MlflowHooks`` when tracking is enabled and there is a server to use (see the module docstring), else ``NoHooks``.

    Says in one line (through ``log``) where the run is tracked."""
    say = log or _say
    if not settings.tracking.enabled:
        return NoHooks()
    uri = settings.tracking.uri
    if not uri:
        from ..tracking.server import ensure_local_server, recorded_url, resolve_uri

        uri = recorded_url(settings)
        if uri is None and workflow is not None and workflow_tracks(workflow, store):
            # One starter at a time: two servers migrating the same SQLite database both die.
            with _start_lock(settings):
                if resolve_uri(settings) == f"http://127.0.0.1:{settings.tracking.port}" and recorded_url(settings) is None:
                    say("the run has tracking steps: starting the local MLflow server (`scanflow-argo mlflow down` stops it)")
                try:
                    uri = ensure_local_server(settings)
                except ScanflowError as err:
                    uri = _started_elsewhere(settings)
                    if uri is None:
                        say(f"the local MLflow server did not start, so steps that read {TRACKING_ENV} have no server: {err}")
                        return NoHooks()
        if uri is None:
            return NoHooks()
    try:
        from ..tracking.hooks import MlflowHooks
    except ImportError:
        say("tracking hooks are not available; running without MLflow tracking")
        return NoHooks()
    say(f"tracking in MLflow at {uri} (experiment {settings.tracking.experiment!r})")
    return MlflowHooks(uri, experiment=settings.tracking.experiment)
