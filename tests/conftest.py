"""Fixtures shared by every test area: a private state folder, ../shared, and real servers on 127.0.0.1."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from scanflow_argo.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SERVING_VENV = ROOT / ".venv-serving"
SERVER_FIXTURES = frozenset({"prometheus_server", "prometheus_binary", "mlflow_server", "serving_python"})
"""Fixtures that start a real server (Prometheus, MLflow, a seldon-core replica): a test using one is ``slow``."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``slow`` every test that needs a server, whether or not its module says so: the fast lane
    (``-m 'not slow'``) is everything that needs no server or training (the marker's definition)."""
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with a private state folder, so tests never share state."""
    return Settings.from_env(environ={}).with_home(tmp_path / "home")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` (schemas, Argo's examples); skips with a reason where a clone has none."""
    if not SHARED.is_dir():
        pytest.skip(f"../shared is absent ({SHARED}): schema and conformance checks need it beside the project")
    return SHARED


@pytest.fixture(scope="session")
def serving_python() -> Path:
    """Interpreter of the serving environment (seldon-core 1.18.2)."""
    py = SERVING_VENV / "bin" / "python"
    if not py.exists():
        pytest.fail(f"{SERVING_VENV} is missing: run scripts/setup (the README's test command does)")
    return py


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("the prometheus binary is missing: run scripts/setup as root, or apt-get install prometheus")
    return binary


@pytest.fixture
def prometheus_server(tmp_path: Path, prometheus_binary: str):
    """A real Prometheus on a free 127.0.0.1 port with its own state folder; stopped (by group) after the test.

    Add scrape targets with ``prometheus_server.set_targets(job, ["127.0.0.1:PORT"], labels)``;
    query with ``prometheus_server.query(promql)`` / ``.targets()``. Scrape interval 1 s, but a
    target change takes 4–6 s to go live (Prometheus's fixed 5 s discovery update): poll for it.
    """
    from scanflow_argo._proc import free_port
    from scanflow_argo.monitoring.prometheus import PrometheusServer

    home_settings = Settings.from_env(environ={}).with_home(tmp_path / "prometheus-home")
    server = PrometheusServer(home_settings, port=free_port())
    server.start(timeout=30)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    """A real MLflow tracking server (SQLite, proxied artifacts) for the whole session; ``.url`` is its URI.

    Session-scoped because it takes several seconds to start: tests must use unique experiment
    and model names (e.g. from ``uuid``) rather than expect an empty server.
    """
    from scanflow_argo._proc import free_port
    from scanflow_argo.tracking.server import MlflowServer

    home_settings = Settings.from_env(environ={}).with_home(tmp_path_factory.mktemp("mlflow-home"))
    server = MlflowServer(home_settings, port=free_port())
    server.start(timeout=90)
    try:
        yield server
    finally:
        server.stop()
