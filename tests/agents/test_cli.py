"""``scanflow-argo agent run`` as a real process: HTTP API with auth, dry-run, and restarts that
neither repeat nor forget an action (cooldown, concurrency limit, idempotency)."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _agent_helpers import Exporter, wait_for

from scanflow_argo import _proc
from scanflow_argo.agents.state import AuditLog
from scanflow_argo.agents.testing import InMemoryPlatform

pytestmark = pytest.mark.slow

TOKEN = "test-token-123"

AGENT_MODULE = """
from scanflow_argo.spec.agent import Agent, Plan, PromQuery, SubmitWorkflow, Threshold

def make(cooldown="3s", on="while"):
    return Agent(
        "restarter",
        sensors=[PromQuery("x", "max(test_gauge)", interval="300ms", stale_after="2s")],
        rules=[Threshold("x", ">", 5, name="high")],
        plans=[Plan("high", [SubmitWorkflow("retrain", {"level": "{sensor.x}"}, max_concurrent=1, cooldown=cooldown, name="retrain")], on=on)],
        interval="300ms",
    )

agent = make()
"""


class AgentProcess:
    """One ``scanflow-argo agent run`` subprocess (own process group)."""

    def __init__(self, tmp: Path, prom_url: str, *extra: str, token: str | None = TOKEN, ref: str = "testagents:agent") -> None:
        self.tmp = tmp
        self.ready = tmp / f"ready-{time.monotonic_ns()}.json"
        env = {
            **os.environ,
            "PYTHONPATH": f"{tmp}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "SCANFLOW_HOME": str(tmp / "home"),
            "SCANFLOW_TRACKING": "0",
            "SCANFLOW_PROMETHEUS_URL": prom_url,
        }
        env.pop("SCANFLOW_AGENT_TOKEN", None)
        if token:
            env["SCANFLOW_AGENT_TOKEN"] = token
        argv = [sys.executable, "-m", "scanflow_argo", "agent", "run", ref, "--port", "0", "--ready-file", str(self.ready)]
        argv += ["--platform-factory", "scanflow_argo.agents.testing:file_platform", *extra]
        self.child = _proc.spawn(argv, name="agent", log=tmp / "agent.log", env=env)
        try:
            self.url = wait_for(self._url, timeout=60, what=f"agent to listen (log: {tmp / 'agent.log'})")
            self.token_file = json.loads(self.ready.read_text()).get("token_file")
            # Without a given token the agent uses its home's generated one, as a local script would.
            self.headers = {"Authorization": f"Bearer {token or Path(self.token_file).read_text().strip()}"}
        except BaseException:
            self.child.stop(timeout=10)  # not yet known to the fixture: stop it here
            raise

    def _url(self) -> str | None:
        if not self.child.alive():
            raise AssertionError(f"agent exited: {self.child.tail(40)}")
        try:
            return json.loads(self.ready.read_text())["url"]
        except (OSError, ValueError, KeyError):
            return None

    def get(self, path: str, auth: bool = True) -> httpx.Response:
        return httpx.get(self.url + path, headers=self.headers if auth else {}, timeout=5)

    def post(self, path: str, auth: bool = True, **kw: Any) -> httpx.Response:
        return httpx.post(self.url + path, headers=self.headers if auth else {}, timeout=5, **kw)

    def kill(self) -> None:
        """SIGKILL, as a crash or an evicted pod: no chance to clean up."""
        os.killpg(self.child.pid, signal.SIGKILL)
        self.child.popen.wait(10)

    def stop(self) -> None:
        self.child.stop(timeout=10)


@pytest.fixture
def world(tmp_path: Path, prom: Any, exporter: Exporter) -> Iterator[dict[str, Any]]:
    (tmp_path / "testagents.py").write_text(textwrap.dedent(AGENT_MODULE))
    platform = InMemoryPlatform(tmp_path / "home" / "fake-platform")
    platform.apply_template({"metadata": {"name": "retrain"}})
    procs: list[AgentProcess] = []

    def start(*extra: str, **kw: Any) -> AgentProcess:
        p = AgentProcess(tmp_path, prom.url, *extra, **kw)
        procs.append(p)
        return p

    yield {"platform": platform, "start": start, "exporter": exporter, "home": tmp_path / "home"}
    for p in procs:
        if p.child.alive():
            p.stop()


def submissions(platform: InMemoryPlatform) -> list[str]:
    return [r.name for r in platform.list_runs({"scanflow.io/agent": "restarter"})]


def test_restart_neither_repeats_nor_forgets(world: dict[str, Any]) -> None:
    platform, exporter = world["platform"], world["exporter"]
    exporter.set("test_gauge", 8)
    agent = world["start"]()
    first = wait_for(lambda: submissions(platform), what="first retraining")
    time.sleep(1.0)  # several evaluations: the rule still fires, the run still runs
    assert len(submissions(platform)) == 1, "concurrency limit: one run at a time"

    agent.kill()
    agent = world["start"]()
    wait_for(lambda: agent.get("/status").json()["iterations"] > 5, what="restarted agent iterating")
    assert submissions(platform) == first, "restarted agent must count the running run on the platform"

    platform.finish(first[0])
    second = wait_for(lambda: [r for r in submissions(platform) if r not in first], what="second run after the first ended")
    t_second = time.time()
    agent.kill()
    agent = world["start"]()
    platform.finish(second[0])
    third = wait_for(lambda: [r for r in submissions(platform) if r not in first + second], timeout=20, what="third run")
    assert time.time() - t_second >= 3.0 - 0.3, "the 3 s cooldown must survive the restart"
    assert len(third) == 1
    audit = AuditLog(world["home"] / "agents" / "restarter").all()
    finished = [r for r in audit if r.get("kind") == "run-finished"]
    assert {r["run"] for r in finished} >= {first[0], second[0]}, "in-flight runs are remembered across restarts"


def test_once_per_firing_survives_restart(world: dict[str, Any]) -> None:
    platform, exporter = world["platform"], world["exporter"]
    exporter.set("test_gauge", 8)
    agent = world["start"]("--arg", "on=fire", "--arg", "cooldown=0", ref="testagents:make")
    first = wait_for(lambda: submissions(platform), what="first retraining")
    platform.finish(first[0])
    agent.kill()
    agent = world["start"]("--arg", "on=fire", "--arg", "cooldown=0", ref="testagents:make")
    wait_for(lambda: agent.get("/status").json()["iterations"] > 5, what="restarted agent iterating")
    assert submissions(platform) == first, "same firing episode: the idempotency key holds across the restart"
    exporter.set("test_gauge", 1)
    wait_for(lambda: not agent.get("/status").json()["rules"]["high"]["firing"], what="rule to clear")
    exporter.set("test_gauge", 8)
    wait_for(lambda: len(submissions(platform)) == 2, what="a new episode acts again")


def test_http_api_and_auth(world: dict[str, Any]) -> None:
    world["exporter"].set("test_gauge", 1)
    agent = world["start"]()
    assert agent.get("/healthz", auth=False).status_code == 200
    wait_for(lambda: agent.get("/readyz", auth=False).status_code == 200, what="ready")
    wait_for(lambda: agent.get("/status").json()["sensors"]["x"]["value"] == 1, what="first sample")
    metrics = agent.get("/metrics", auth=False).text
    assert "scanflow_agent_loop_seconds" in metrics and 'scanflow_agent_sensor_value{agent="restarter",sensor="x"}' in metrics
    for path in ("/status", "/decisions"):
        assert agent.get(path, auth=False).status_code == 401
    assert httpx.get(agent.url + "/status", headers={"Authorization": "Bearer wrong"}, timeout=5).status_code == 401
    assert agent.post("/pause", auth=False).status_code == 401
    status = agent.get("/status").json()
    assert status["auth"] == "bearer" and status["sensors"]["x"]["value"] == 1 and "high" in status["rules"]

    assert agent.post("/pause").json() == {"paused": True}
    world["exporter"].set("test_gauge", 8)
    wait_for(lambda: agent.get("/status").json()["rules"]["high"]["firing"], what="rule fires while paused")
    time.sleep(0.6)
    assert submissions(world["platform"]) == [], "paused: no action"
    assert agent.post("/resume").json() == {"paused": False}
    wait_for(lambda: submissions(world["platform"]), what="action after resume")

    assert agent.post("/trigger/x").status_code == 202
    assert agent.post("/trigger/nope").status_code == 404
    assert agent.post("/messages", content=b"not json").status_code == 415  # no Content-Type: application/json
    as_json = {**agent.headers, "Content-Type": "application/json"}
    assert httpx.post(agent.url + "/messages", content=b"not json", headers=as_json, timeout=5).status_code == 400
    assert agent.post("/messages", json={"topic": "hello", "payload": {"a": "b"}}).status_code == 202
    page = agent.get("/decisions?page=1&size=2").json()
    assert page["size"] == 2 and len(page["decisions"]) == 2 and page["total"] >= 4
    kinds = {r["kind"] for r in agent.get("/decisions?size=500").json()["decisions"]}
    assert {"start", "pause", "resume", "rule", "action", "message"} <= kinds
    assert agent.get("/decisions?page=x").status_code == 400


def test_no_token_refused_off_loopback_and_generated_on_loopback(world: dict[str, Any], tmp_path: Path, prom: Any) -> None:
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "SCANFLOW_HOME": str(tmp_path / "home2"), "SCANFLOW_TRACKING": "0"}
    env.pop("SCANFLOW_AGENT_TOKEN", None)
    child = _proc.spawn(
        [sys.executable, "-m", "scanflow_argo", "agent", "run", "testagents:agent", "--host", "0.0.0.0", "--port", "0"],
        name="agent-no-token",
        log=tmp_path / "no-token.log",
        env=env,
    )
    try:
        assert child.popen.wait(60) == 1
    finally:
        child.stop()
    assert "no API token: set the environment variable SCANFLOW_AGENT_TOKEN" in (tmp_path / "no-token.log").read_text()
    local = world["start"](token=None)
    token_file = Path(local.token_file)
    assert token_file == world["home"].resolve() / "agents" / ".token" and (token_file.stat().st_mode & 0o777) == 0o600
    assert str(token_file) in (tmp_path / "agent.log").read_text(), "the log says where the token is"
    assert local.get("/status", auth=False).status_code == 401, "no open development mode"
    assert local.get("/status").json()["auth"] == "bearer"
    assert httpx.post(local.url + "/pause", headers={"Content-Type": "text/plain"}, content=b"x", timeout=5).status_code == 401


def test_dry_run_decides_and_records_but_never_acts(world: dict[str, Any]) -> None:
    world["exporter"].set("test_gauge", 8)
    agent = world["start"]("--dry-run")
    wait_for(
        lambda: any(r.get("status") == "dry-run" for r in agent.get("/decisions").json()["decisions"]), what="a dry-run decision"
    )
    time.sleep(0.6)
    assert submissions(world["platform"]) == []
    assert agent.get("/status").json()["dry_run"] is True


MAPEK_MODULE = """
from scanflow_argo.spec.agent import Agent, OnMessage, Plan, PromQuery, SendMessage, SubmitWorkflow, Threshold

monitor = Agent(
    "monitor",
    role="monitor",
    sensors=[PromQuery("x", "max(test_gauge)", interval="300ms")],
    rules=[Threshold("x", ">", 5, name="high")],
    plans=[Plan("high", [SendMessage("executor", "retrain", {"window": "{window}", "level": "{sensor.x}"})])],
    interval="300ms",
)
executor = Agent(
    "executor",
    role="executor",
    rules=[OnMessage("retrain", name="on-retrain")],
    plans=[Plan("on-retrain", [SubmitWorkflow("retrain", {"window": "{message.window}", "level": "{message.level}"}, name="retrain")])],
    interval="300ms",
)
"""


@pytest.mark.parametrize("token", [TOKEN, None], ids=["given token", "the home's generated token"])
def test_mape_k_agents_hand_over_by_messages(world: dict[str, Any], tmp_path: Path, token: str | None) -> None:
    (tmp_path / "mapek.py").write_text(textwrap.dedent(MAPEK_MODULE))
    world["exporter"].set("test_gauge", 1)
    executor = world["start"](ref="mapek:executor", token=token)
    world["start"](ref="mapek:monitor", token=token)
    world["exporter"].set("test_gauge", 7)
    run = wait_for(lambda: world["platform"].list_runs({"scanflow.io/agent": "executor"}), what="executor to submit")[0]
    assert run.parameters["level"] == "7" and ".." in run.parameters["window"]
    received = [r for r in executor.get("/decisions").json()["decisions"] if r["kind"] == "message"]
    assert received and received[0]["from"] == "monitor"
