"""``scanflow-argo server`` and ``scanflow-argo server token`` as a user runs them: a real process, its token,
its refusals (listening beyond this machine without a token, a port taken, the Kubernetes platform)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from scanflow_argo import _proc

pytestmark = pytest.mark.slow


def cli(home: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SCANFLOW_HOME": str(home), "SCANFLOW_TRACKING": "0"}
    return subprocess.run(
        [sys.executable, "-m", "scanflow_argo", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def test_server_runs_until_stopped_and_its_token_is_printed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = cli(home, "server", "token")
    assert first.returncode == 1 and "start the server once" in first.stderr
    env = {**os.environ, "SCANFLOW_HOME": str(home), "SCANFLOW_TRACKING": "0"}
    child = _proc.spawn(
        [sys.executable, "-m", "scanflow_argo", "server", "--port", "0"], name="server", log=tmp_path / "server.log", env=env
    )
    endpoint = home / "server" / "endpoint.json"
    try:
        deadline = time.monotonic() + 60
        while not endpoint.exists():
            assert child.alive(), child.tail()
            assert time.monotonic() < deadline, child.tail()
            time.sleep(0.1)
        url = json.loads(endpoint.read_text())["url"]
        token = cli(home, "server", "token").stdout.strip()
        assert httpx.get(f"{url}/api/v1/workflows/scanflow", headers={"Authorization": f"Bearer {token}"}).json()["items"] == []
        assert httpx.get(f"{url}/api/v1/workflows/scanflow").status_code == 401
        assert f"UI and Argo Server API at {url}" in child.tail() and token not in child.tail()
    finally:
        os.killpg(child.pid, signal.SIGTERM)
        child.popen.wait(15)
    assert child.popen.returncode == 0 and not endpoint.exists()


def test_refusals_are_one_clear_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    open_beyond = cli(home, "server", "--host", "0.0.0.0", "--auth-mode", "server", "--port", "0")
    assert open_beyond.returncode == 1 and "refusing to listen on 0.0.0.0 without a token" in open_beyond.stderr
    cluster = cli(home, "--platform", "kubernetes", "server")
    assert cluster.returncode == 1 and "the cluster's Argo Server serves this API" in cluster.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = cli(home, "server", "--port", str(taken.getsockname()[1]))
    assert busy.returncode == 1 and "pick another --port" in busy.stderr
    assert len(busy.stderr.strip().splitlines()) == 1
