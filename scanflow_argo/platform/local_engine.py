"""The local platform's engine: the composition root that runs a prepared run folder with what this
platform provides — ``resource`` templates applied to the local platform (``LocalApplier``) and the run
hooks of this home (``make_hooks``: MLflow tracking, starting the local server only for runs that track).

``python -m scanflow_argo.platform.local_engine RUN_DIR`` is the detached engine ``LocalPlatform``
starts for each submitted run; ``execute``/``resume``/``run_workflow`` are the engine's entry points with
this wiring (the CLI's ``run`` and ``resume`` use them). The engine itself (``scanflow_argo.engine``)
imports nothing from the platform layer.
"""

from __future__ import annotations

import contextlib
import fcntl
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .._proc import port_in_use, wait_http
from ..engine import api
from ..engine.core.manifest import TemplateStore
from ..engine.core.state import RunState
from ..engine.features.run_hooks import TRACKING_ENV, NoHooks, RunHooks, workflow_tracks
from ..errors import EngineError, NotFoundError, PlatformError, ScanflowError
from ..settings import Settings
from ..status import RunStatus
from ..tracking import server as tracking_server
from ._local.claims import apply_claim

if TYPE_CHECKING:
    from .local import LocalPlatform

__all__ = ["LocalApplier", "execute", "main", "make_hooks", "resume", "run_workflow"]


class LocalApplier:
    """``ResourceApplier`` on the local platform: SeldonDeployments to local serving, Workflows to new runs,
    PersistentVolumeClaims to folders under ``<home>/volumes/`` (``_local/claims.py``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._platform: LocalPlatform | None = None

    @property
    def platform(self) -> LocalPlatform:
        """The local platform, made when a ``resource`` node first needs it."""
        if self._platform is None:
            # the platform brings local serving, Prometheus and HTTP clients: ~70 ms of start-up that only the
            # engines of runs with resource nodes pay
            from .local import LocalPlatform

            self._platform = LocalPlatform(self.settings)
        return self._platform

    def apply(self, action: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Apply ``manifest`` (the engine checked ``action`` before the run); the object as stored."""
        doc = dict(manifest)
        if doc.get("kind") == "SeldonDeployment":
            self.platform.apply_deployment(doc)
            return doc
        if doc.get("kind") == "PersistentVolumeClaim":
            return apply_claim(self.settings.home, action, doc)
        name = self.platform.submit(doc)
        stored = yaml.safe_load((self.platform.runs_dir / name / "workflow.yaml").read_text())
        return dict(stored) if isinstance(stored, Mapping) else {**doc, "metadata": {**(doc.get("metadata") or {}), "name": name}}

    def get(self, applied: Mapping[str, Any]) -> dict[str, Any] | None:
        """A Workflow as the local Argo Server serves it now (its status included); None once it is deleted."""
        if applied.get("kind") != "Workflow":
            raise PlatformError(f"reading a {applied.get('kind')} back is not supported locally (only Workflows)")
        try:
            return self.platform.get_workflow(str(applied["metadata"]["name"]))
        except NotFoundError:
            return None


@contextlib.contextmanager
def _start_lock(settings: Settings) -> Iterator[None]:
    """An exclusive lock on ``<home>/mlflow/start.lock`` while the local server is found or started."""
    folder = tracking_server.mlflow_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "start.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # released when the file closes
        yield


def _started_elsewhere(settings: Settings, timeout: float = 60.0) -> str | None:
    """The local server's URL once another engine that is starting it (port taken) has it answering."""
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
    """``MlflowHooks`` when tracking is enabled and there is a server to use, else ``NoHooks``: MLflow at
    ``settings.tracking.uri`` when one is configured; else the local MLflow server of this home — started on
    demand (``ensure_local_server``, ~10 s, detached; ``scanflow-argo mlflow down`` stops it) only when the
    workflow has a step that tracks (``workflow_tracks``), or used as is when it already runs; so trivial
    workflows never pay MLflow's start. Says in one line (through ``log``) where the run is tracked."""
    say = log or _say
    if not settings.tracking.enabled:
        return NoHooks()
    uri = settings.tracking.uri
    if not uri:
        uri = tracking_server.recorded_url(settings)
        if uri is None and workflow is not None and workflow_tracks(workflow, store):
            # One starter at a time: two servers migrating the same SQLite database both die.
            with _start_lock(settings):
                if (
                    tracking_server.resolve_uri(settings) == f"http://127.0.0.1:{settings.tracking.port}"
                    and tracking_server.recorded_url(settings) is None
                ):
                    say("the run has tracking steps: starting the local MLflow server (`scanflow-argo mlflow down` stops it)")
                try:
                    uri = tracking_server.ensure_local_server(settings)
                except ScanflowError as err:
                    uri = _started_elsewhere(settings)
                    if uri is None:
                        say(f"the local MLflow server did not start, so steps that read {TRACKING_ENV} have no server: {err}")
                        return NoHooks()
        if uri is None:
            return NoHooks()
    say(f"tracking in MLflow at {uri} (experiment {settings.tracking.experiment!r})")
    # the tracking hooks bring the spec (its tracking annotation) and MLflow's REST client: ~20 ms of start-up that
    # only the engines of runs that track pay
    from ..tracking.hooks import MlflowHooks

    return MlflowHooks(uri, experiment=settings.tracking.experiment)


def _hooks_for(settings: Settings, workflow: dict[str, Any], store: TemplateStore, log: Callable[[str], None]) -> RunHooks:
    return make_hooks(settings, workflow, store, log=log)


def execute(
    run_dir: Path,
    settings: Settings | None = None,
    *,
    on_change: Callable[[RunState], None] | None = None,
    handle_signals: bool = False,
) -> RunStatus:
    """``engine.execute`` with this platform's run hooks and resource applier."""
    run_settings = api.settings_for(Path(run_dir), settings)
    return api.execute(
        run_dir,
        settings,
        hooks=_hooks_for,
        on_change=on_change,
        handle_signals=handle_signals,
        applier=LocalApplier(run_settings),
    )


def resume(run_dir: Path | str, settings: Settings | None = None, **options: Any) -> RunStatus:
    """``engine.resume`` with this platform's run hooks and resource applier (``options`` may replace them)."""
    options.setdefault("hooks", _hooks_for)
    options.setdefault("applier", LocalApplier(api.settings_for(Path(run_dir), settings)))
    return api.resume(run_dir, settings, **options)


def run_workflow(
    manifest: Mapping[str, Any] | str | Path, settings: Settings, parameters: Mapping[str, str] | None = None, **options: Any
) -> RunStatus:
    """``engine.run_workflow`` with this platform's run hooks and resource applier (``options`` may replace them)."""
    options.setdefault("hooks", _hooks_for)
    options.setdefault("applier", LocalApplier(settings))
    return api.run_workflow(manifest, settings, parameters, **options)


def main(argv: list[str] | None = None) -> int:
    """``python -m scanflow_argo.platform.local_engine RUN_DIR``: run a prepared run folder (the detached engine)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m scanflow_argo.platform.local_engine RUN_DIR", file=sys.stderr)
        return 2
    try:
        result = execute(Path(args[0]), handle_signals=True)
    except EngineError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0 if result.phase == "Succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
