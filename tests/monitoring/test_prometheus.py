"""The local Prometheus: real server, real exporter, live file service discovery, clean stop, clear errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from scanflow_argo import _proc
from scanflow_argo.errors import SetupError, SpecError
from scanflow_argo.monitoring.prometheus import PrometheusServer, stop_recorded
from scanflow_argo.settings import Settings

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

EXPORTER = """
import sys, time
from prometheus_client import Counter, start_http_server
c = Counter("scanflow_test_ticks", "ticks of the test exporter", ["who"])
start_http_server(int(sys.argv[1]), addr="127.0.0.1")
c.labels(who=sys.argv[2]).inc(int(sys.argv[3]))
while True:
    time.sleep(1)
"""


def wait_for(predicate: Callable[[], object], timeout: float = 20.0, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def exporter(tmp_path: Path) -> Iterator[Callable[[str, int], int]]:
    """Start tiny prometheus_client exporters in subprocesses; returns their ports."""
    children: list[_proc.Child] = []

    def start(who: str, ticks: int) -> int:
        port = _proc.free_port()
        child = _proc.spawn(
            [sys.executable, "-c", EXPORTER, str(port), who, str(ticks)], name=f"exporter {who}", log=tmp_path / f"{who}.log"
        )
        children.append(child)
        _proc.wait_http(f"http://127.0.0.1:{port}/metrics", timeout=15, child=child)
        return port

    yield start
    for child in children:
        child.stop(timeout=5)


def _value(server: PrometheusServer, promql: str) -> float | None:
    result = server.query(promql)
    return float(result[0]["value"][1]) if result else None


def test_scrapes_a_real_exporter(prometheus_server: PrometheusServer, exporter: Callable[[str, int], int]) -> None:
    port = exporter("a", 7)
    prometheus_server.set_targets("demo", [f"127.0.0.1:{port}"], {"deployment_name": "mnist"})
    wait_for(
        lambda: _value(prometheus_server, 'scanflow_test_ticks_total{job="demo",who="a"}') == 7.0, what="the exporter's counter"
    )
    series = prometheus_server.query("scanflow_test_ticks_total")[0]["metric"]
    assert series["deployment_name"] == "mnist"
    assert series["instance"] == f"127.0.0.1:{port}"
    config = json.loads(prometheus_server.config_path.read_text())
    assert config["global"]["scrape_interval"] == "1000ms"


def test_targets_rewritten_live(prometheus_server: PrometheusServer, exporter: Callable[[str, int], int]) -> None:
    p1, p2 = exporter("one", 1), exporter("two", 2)

    def instances() -> set[str]:
        return {t["labels"]["instance"] for t in prometheus_server.targets() if t["labels"].get("job") == "replicas"}

    prometheus_server.set_targets("replicas", [f"127.0.0.1:{p1}", f"127.0.0.1:{p2}"])
    wait_for(lambda: instances() == {f"127.0.0.1:{p1}", f"127.0.0.1:{p2}"}, what="two targets")
    wait_for(lambda: _value(prometheus_server, 'sum(scanflow_test_ticks_total{job="replicas"})') == 3.0, what="both scraped")
    prometheus_server.set_targets("replicas", [f"127.0.0.1:{p2}"])
    wait_for(lambda: instances() == {f"127.0.0.1:{p2}"}, what="the removed target to go")
    prometheus_server.set_targets("replicas", [])
    wait_for(lambda: instances() == set(), what="an empty job")
    # Rewrites are atomic: no temporary files are left where Prometheus looks.
    assert sorted(p.name for p in prometheus_server.targets_dir.iterdir()) == ["replicas.json"]


def test_stop_frees_the_port_and_leaves_no_process(settings: Settings, prometheus_binary: str) -> None:
    server = PrometheusServer(settings, port=_proc.free_port())
    with server:
        pid = server._child.pid  # type: ignore[union-attr]
        assert _proc.port_in_use(server.port)
        assert server.record_path.exists()
    assert not _proc.port_in_use(server.port)
    assert not _proc._group_alive(pid)
    assert not server.record_path.exists()


def test_missing_binary_is_a_setup_error(settings: Settings) -> None:
    from dataclasses import replace

    settings = replace(settings, prometheus=replace(settings.prometheus, binary="/nonexistent/prometheus"))
    with pytest.raises(SetupError, match="apt-get install prometheus") as err:
        PrometheusServer(settings, port=_proc.free_port()).start()
    assert "SCANFLOW_PROMETHEUS_BINARY" in str(err.value)


def test_port_in_use_is_a_setup_error_naming_the_port(settings: Settings, prometheus_binary: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(SetupError, match=f"port {port}"):
            PrometheusServer(settings, port=port).start()


def test_bad_targets_are_refused(tmp_path: Path, settings: Settings) -> None:
    server = PrometheusServer(settings, port=1)
    with pytest.raises(SpecError, match="host:port"):
        server.set_targets("ok", ["http://127.0.0.1:80/metrics"])
    with pytest.raises(SpecError, match="job name"):
        server.set_targets("../evil", ["127.0.0.1:80"])
    with pytest.raises(SpecError, match="label name"):
        server.set_targets("ok", ["127.0.0.1:80"], {"bad-label": "x"})
    assert not server.targets_dir.exists() or not any(server.targets_dir.iterdir())


def test_cli_up_then_down_from_another_process(tmp_path: Path, prometheus_binary: str) -> None:
    home, port = tmp_path / "home", _proc.free_port()
    cli = [sys.executable, "-m", "scanflow_argo", "--home", str(home)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCANFLOW_")}
    try:
        up = subprocess.run([*cli, "prometheus", "up", "--port", str(port)], capture_output=True, text=True, env=env, timeout=60)
        assert up.returncode == 0, up.stderr
        assert f"127.0.0.1:{port}" in up.stdout
        assert _proc.port_in_use(port)
        again = subprocess.run([*cli, "prometheus", "up"], capture_output=True, text=True, env=env, timeout=60)
        assert "already running" in again.stdout
        down = subprocess.run([*cli, "prometheus", "down"], capture_output=True, text=True, env=env, timeout=60)
        assert down.returncode == 0, down.stderr
        assert "stopped" in down.stdout
        assert not _proc.port_in_use(port)
    finally:
        stop_recorded(Settings.from_env(environ={}).with_home(home))


def test_down_never_signals_a_foreign_pid(tmp_path: Path) -> None:
    """A stale record whose pid now belongs to another process is ignored, not signalled."""
    settings = Settings.from_env(environ={}).with_home(tmp_path / "home")
    stranger = _proc.spawn([sys.executable, "-c", "import time; time.sleep(30)"], name="stranger")
    try:
        record = tmp_path / "home" / "prometheus" / "server.json"
        record.parent.mkdir(parents=True)
        record.write_text(json.dumps({"pid": stranger.pid}))
        assert stop_recorded(settings) is False
        assert stranger.alive()
        assert not record.exists()
    finally:
        stranger.stop(timeout=5)


def test_cli_reports_a_missing_binary_clearly(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCANFLOW_")}
    env["SCANFLOW_PROMETHEUS_BINARY"] = str(tmp_path / "no-prometheus")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "scanflow_argo",
            "--home",
            str(tmp_path / "home"),
            "prometheus",
            "up",
            "--port",
            str(_proc.free_port()),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 1
    assert "apt-get install prometheus" in done.stderr
    assert "Traceback" not in done.stderr


def test_port_zero_means_any_free_port(settings) -> None:  # type: ignore[no-untyped-def]
    from scanflow_argo.tracking.server import MlflowServer

    assert PrometheusServer(settings, port=0).port > 0
    assert MlflowServer(settings, port=0).port > 0
