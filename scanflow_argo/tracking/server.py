"""The local MLflow tracking server: SQLite backend and proxied artifacts under ``<home>/mlflow/``.

Layout: ``mlflow.db`` (runs, experiments, registry), ``artifacts/`` (served through the server with
``--serve-artifacts``, so clients upload over HTTP and need no shared filesystem), ``server.log`` and
``server.json`` (pid record, so ``scanflow-argo mlflow down`` in another process can stop it).
Also: which tracking URI to use (``resolve_uri``) and starting the local server on demand.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from .. import _proc
from ..errors import SetupError
from ..settings import Settings

__all__ = ["MlflowServer", "ensure_local_server", "mlflow_dir", "recorded_url", "resolve_uri", "stop_recorded"]


def mlflow_dir(settings: Settings) -> Path:
    """Folder of the local MLflow server (database, artifacts, log)."""
    return Path(settings.home).resolve() / "mlflow"


def _mlflow_executable() -> str:
    """The ``mlflow`` script of the running interpreter's venv (same MLflow version as the client)."""
    candidate = Path(sys.executable).parent / "mlflow"
    if candidate.exists():
        return str(candidate)
    raise SetupError(
        f"the mlflow command is missing beside {sys.executable} — install MLflow in this environment "
        "(`pip install 'scanflow-argo[tracking]'`) or point MLFLOW_TRACKING_URI at a running server"
    )


class MlflowServer(_proc.RecordedServer):
    """``mlflow server`` on 127.0.0.1 with ``sqlite:///<home>/mlflow/mlflow.db`` and proxied artifacts.

    ``port=None`` uses ``settings.tracking.port``. Start takes a few seconds (MLflow's import).
    ``app_name="basic-auth"`` serves MLflow's login-protected app (mlflow/server/auth): its users live in
    ``<home>/mlflow/basic_auth.db`` and the first admin comes from ``MLFLOW_AUTH_ADMIN_USERNAME`` and
    ``MLFLOW_AUTH_ADMIN_PASSWORD`` (or ``MLFLOW_AUTH_CONFIG_PATH``) in the environment, which must also
    hold ``MLFLOW_FLASK_SERVER_SECRET_KEY`` (its CSRF key) and needs ``Flask-WTF`` installed (``mlflow[auth]``).
    """

    def __init__(self, settings: Settings, port: int | None = None, app_name: str | None = None) -> None:
        self.settings = settings
        self.app_name = app_name
        chosen = port if port is not None else settings.tracking.port
        self.port = int(chosen) or _proc.free_port()  # 0: any free port
        self.dir = mlflow_dir(settings)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def record_path(self) -> Path:
        return self.dir / "server.json"

    def argv(self) -> list[str]:
        return [
            _mlflow_executable(),
            "server",
            "--backend-store-uri",
            f"sqlite:///{self.dir / 'mlflow.db'}",
            "--serve-artifacts",
            "--artifacts-destination",
            str(self.dir / "artifacts"),
            "--default-artifact-root",
            "mlflow-artifacts:/",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
            *(["--app-name", self.app_name] if self.app_name else []),
        ]

    def start(self, timeout: float = 60) -> MlflowServer:
        """Start the server and wait for ``/health``; SetupError (with the log tail) when it cannot."""
        if self._child is not None and self._child.alive():
            return self
        if _proc.port_in_use(self.port):
            raise SetupError(
                f"port {self.port} on 127.0.0.1 is already in use, so the MLflow server cannot listen there — "
                "stop what uses it (`scanflow-argo mlflow down` if it is ours) or set SCANFLOW_MLFLOW_PORT"
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "artifacts").mkdir(exist_ok=True)
        env = dict(os.environ)
        # The server must not inherit a client-side URI pointing elsewhere (or at itself).
        env.pop("MLFLOW_TRACKING_URI", None)
        # The job runner (GenAI scorers) starts six huey consumers we never use: leave it off.
        env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
        self._child = _proc.start_recorded(
            self.argv(),
            name="mlflow server",
            log=self.dir / "server.log",
            ready_url=f"{self.url}/health",
            record=self.record_path,
            timeout=timeout,
            env=env,
            cwd=self.dir,
            url=self.url,
            port=self.port,
        )
        return self


def stop_recorded(settings: Settings, timeout: float = 10.0) -> bool:
    """Stop an MLflow server that ``scanflow-argo mlflow up`` started for this home; True if one ran."""
    folder = mlflow_dir(settings)
    return _proc.stop_record(folder / "server.json", str(folder), timeout=timeout)


def recorded_url(settings: Settings) -> str | None:
    """URL of the running local MLflow server recorded for this home, if it is alive."""
    folder = mlflow_dir(settings)
    record = _proc.live_record(folder / "server.json", str(folder))
    return str(record["url"]) if record else None


def resolve_uri(settings: Settings, environ: dict[str, str] | None = None) -> str:
    """The tracking URI to use: ``MLFLOW_TRACKING_URI``, else ``settings.tracking.uri``, else the local server."""
    env = os.environ if environ is None else environ
    uri = env.get("MLFLOW_TRACKING_URI") or settings.tracking.uri
    return (uri or f"http://127.0.0.1:{settings.tracking.port}").rstrip("/")


def ensure_local_server(settings: Settings, timeout: float = 60) -> str:
    """Return the tracking URI, starting the local server (detached, recorded) when that is the one to use.

    A configured remote server is returned as is. The local one keeps running after this process
    exits; ``scanflow-argo mlflow down`` stops it.
    """
    uri = resolve_uri(settings)
    local = f"http://127.0.0.1:{settings.tracking.port}"
    if uri != local:
        return uri
    if _healthy(uri):
        return uri
    server = MlflowServer(settings).start(timeout=timeout)
    return server.url


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False
