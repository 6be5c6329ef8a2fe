"""Fixtures for serving tests: tiny exported MNIST models (made once per session) and traffic helpers."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import pytest

from ._models import make_model_dir, mnist


@pytest.fixture(scope="session")
def model_v1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Version 1: torch.export archive + drift detector + meta.json."""
    return make_model_dir(tmp_path_factory.mktemp("models") / "v1", fmt="export", seed=0)


@pytest.fixture(scope="session")
def model_v2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Version 2: TorchScript, another seed (so its predictions differ a little)."""
    return make_model_dir(tmp_path_factory.mktemp("models") / "v2", fmt="script", seed=1)


def predict_body(start: int = 0, n: int = 1) -> bytes:
    x, _ = mnist()
    return json.dumps({"data": {"ndarray": x[start : start + n].reshape(n, -1).tolist()}}).encode()


class Traffic:
    """Continuous prediction requests from a few threads until stopped; records every outcome.

    Bounded: stops by itself after ``max_seconds``.
    """

    def __init__(self, url: str, threads: int = 2, max_seconds: float = 180.0) -> None:
        self.url = url.rstrip("/") + "/api/v1.0/predictions"
        self.outcomes: Counter[str] = Counter()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._deadline = time.monotonic() + max_seconds
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def __enter__(self) -> Traffic:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, seed: int) -> None:
        bodies = [predict_body(i, 1) for i in range(seed * 50, seed * 50 + 50)]
        with httpx.Client(timeout=30) as client:
            i = 0
            while not self._stop.is_set() and time.monotonic() < self._deadline:
                try:
                    resp = client.post(self.url, content=bodies[i % len(bodies)], headers={"Content-Type": "application/json"})
                    key = str(resp.status_code)
                    if resp.status_code != 200:
                        self._note(f"HTTP {resp.status_code}: {resp.text[:200]}")
                except httpx.HTTPError as err:
                    key = type(err).__name__
                    self._note(repr(err))
                with self._lock:
                    self.outcomes[key] += 1
                i += 1

    def _note(self, text: str) -> None:
        with self._lock:
            if len(self.errors) < 20:
                self.errors.append(text)

    def count(self) -> int:
        with self._lock:
            return sum(self.outcomes.values())

    def wait_for(self, n: int, timeout: float = 30.0) -> None:
        """Until at least ``n`` more requests have completed."""
        target = self.count() + n
        deadline = time.monotonic() + timeout
        while self.count() < target:
            assert time.monotonic() < deadline, f"traffic stalled: {self.outcomes}, errors {self.errors}"
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=35)

    @property
    def failed(self) -> int:
        return sum(v for k, v in self.outcomes.items() if k != "200")


@pytest.fixture
def traffic():
    """Factory: ``with traffic(url) as t: ...`` then check ``t.failed == 0``."""
    return Traffic


def probs(resp: httpx.Response) -> np.ndarray:
    assert resp.status_code == 200, resp.text
    return np.asarray(resp.json()["data"]["ndarray"])


def post_json(client: httpx.Client, url: str, body: bytes | dict) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(url, content=content, headers={"Content-Type": "application/json"})


def deployment_state(home: Path, name: str) -> dict:
    """The supervisor's ``status.json`` of a local deployment (replica pids, ports, model URIs)."""
    return json.loads((Path(home) / "deployments" / name / "status.json").read_text())


def deployment_processes(home: Path, name: str, endpoint: str) -> tuple[list[int], list[int]]:
    """(pids, ports) of a local deployment: supervisor and replicas; router, replica http and metrics ports."""
    state = deployment_state(home, name)
    supervisor = json.loads((Path(home) / "deployments" / name / "supervisor.json").read_text())["pid"]
    pids = [supervisor, *(r["pid"] for r in state["replicaProcesses"])]
    ports = [int(endpoint.rsplit(":", 1)[1])] + [
        p for r in state["replicaProcesses"] for p in (r["http_port"], r["metrics_port"])
    ]
    return pids, ports


@pytest.fixture(scope="module")
def prom(msettings, prometheus_binary: str):
    """A real Prometheus reading the file-SD targets the controller writes in the same home.

    Needs a module-scoped ``msettings`` fixture (the deployments' settings) in the test module.
    """
    from scanflow_argo import _proc
    from scanflow_argo.monitoring.prometheus import PrometheusServer

    server = PrometheusServer(msettings, port=_proc.free_port())
    server.start(timeout=30)
    try:
        yield server
    finally:
        server.stop()
