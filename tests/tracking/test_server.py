"""The local MLflow server: CLI up/down across processes, port in use, which URI is used."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from scanflow_argo import _proc
from scanflow_argo.errors import SetupError
from scanflow_argo.settings import Settings
from scanflow_argo.tracking.server import MlflowServer, ensure_local_server, resolve_uri, stop_recorded

pytestmark = pytest.mark.slow


def test_session_server_is_sqlite_with_proxied_artifacts(mlflow_server) -> None:
    assert httpx.get(f"{mlflow_server.url}/health").status_code == 200
    assert (mlflow_server.dir / "mlflow.db").is_file()
    created = httpx.post(f"{mlflow_server.url}/api/2.0/mlflow/experiments/create", json={"name": f"srv-{os.getpid()}"}).json()
    got = httpx.get(
        f"{mlflow_server.url}/api/2.0/mlflow/experiments/get", params={"experiment_id": created["experiment_id"]}
    ).json()
    assert got["experiment"]["artifact_location"].startswith("mlflow-artifacts:/")
    record = json.loads(mlflow_server.record_path.read_text())
    assert record["pid"] == mlflow_server._child.pid


def test_cli_up_then_down_from_another_process(tmp_path: Path) -> None:
    home, port = tmp_path / "home", _proc.free_port()
    cli = [sys.executable, "-m", "scanflow_argo", "--home", str(home)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCANFLOW_", "MLFLOW_"))}
    try:
        up = subprocess.run([*cli, "mlflow", "up", "--port", str(port)], capture_output=True, text=True, env=env, timeout=120)
        assert up.returncode == 0, up.stderr
        assert f"http://127.0.0.1:{port}" in up.stdout
        assert httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200
        pid = json.loads((home / "mlflow" / "server.json").read_text())["pid"]
        down = subprocess.run([*cli, "mlflow", "down"], capture_output=True, text=True, env=env, timeout=60)
        assert down.returncode == 0, down.stderr
        assert "MLflow stopped" in down.stdout
        assert not _proc.port_in_use(port)
        assert not _proc._group_alive(pid)
        again = subprocess.run([*cli, "mlflow", "down"], capture_output=True, text=True, env=env, timeout=60)
        assert "no MLflow server" in again.stdout
    finally:
        stop_recorded(Settings.from_env(environ={}).with_home(home))


def test_port_in_use_is_a_setup_error(settings: Settings) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(SetupError, match=f"port {port}.*SCANFLOW_MLFLOW_PORT"):
            MlflowServer(settings, port=port).start()


def test_which_uri(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_uri(settings, environ={}) == f"http://127.0.0.1:{settings.tracking.port}"
    configured = replace(settings, tracking=replace(settings.tracking, uri="http://mlflow.example:5000/"))
    assert resolve_uri(configured, environ={}) == "http://mlflow.example:5000"
    assert resolve_uri(configured, environ={"MLFLOW_TRACKING_URI": "http://other:1"}) == "http://other:1"
    # A remote server is used as is; nothing is started for it.
    assert ensure_local_server(replace(configured, home=Path("/nonexistent"))) == "http://mlflow.example:5000"


def test_ensure_local_server_reuses_a_running_one(mlflow_server, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    local = replace(settings, tracking=replace(settings.tracking, port=mlflow_server.port))
    assert ensure_local_server(local) == mlflow_server.url
    assert not (local.home / "mlflow" / "server.json").exists()  # nothing new was started


def test_ensure_local_server_starts_one_on_demand(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    local = replace(settings, tracking=replace(settings.tracking, port=_proc.free_port()))
    try:
        uri = ensure_local_server(local)
        assert uri == f"http://127.0.0.1:{local.tracking.port}"
        assert httpx.get(f"{uri}/health").status_code == 200
        assert ensure_local_server(local) == uri  # second call reuses it
    finally:
        assert stop_recorded(local)
    assert not _proc.port_in_use(local.tracking.port)
