"""What an agent says in its log: one line per sensor that goes stale or comes back, per rule transition, per action
(done, dry-run, refused by the concurrency limit, held by the cooldown) — as text or JSON lines. Driven step by step
with a ManualClock through the in-memory platform (the Replicas sensor reads it)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from scanflow_argo import _proc
from scanflow_argo.agents.narrate import JsonFormatter
from scanflow_argo.agents.runtime import AgentRuntime
from scanflow_argo.agents.testing import InMemoryPlatform
from scanflow_argo.clock import ManualClock
from scanflow_argo.settings import Settings
from scanflow_argo.spec.agent import Agent

AGENT = """
from scanflow_argo.spec.agent import Agent, Plan, Replicas, SubmitWorkflow, Threshold

talker = Agent(
    "talker",
    sensors=[Replicas("replicas", "mnist", interval=1, stale_after=3)],
    rules=[Threshold("replicas", "<", 2, for_=1, name="too-few")],
    plans=[Plan("too-few", [SubmitWorkflow("retrain", cooldown=3, max_concurrent=1, name="retrain")], on="while")],
    interval=1,
)
"""


def talker() -> Agent:
    namespace: dict[str, object] = {}
    exec(AGENT, namespace)
    agent = namespace["talker"]
    assert isinstance(agent, Agent)
    return agent


@pytest.fixture
def platform() -> InMemoryPlatform:
    p = InMemoryPlatform()
    p.apply_template({"metadata": {"name": "retrain"}})
    p.add_deployment("mnist", replicas=1)
    return p


def run_steps(runtime: AgentRuntime, clock: ManualClock, platform: InMemoryPlatform, n: int) -> None:
    async def go() -> None:
        await runtime.start(check_online=False)
        for i in range(n):
            if i == 6:
                platform.delete_deployment("mnist")  # the sensor fails: stale
            if i == 10:
                platform.add_deployment("mnist", replicas=3)  # back, and enough replicas: the rule clears
            await runtime.step()
            clock.advance(1.0)

    asyncio.run(go())


def test_one_line_per_event(settings: Settings, platform: InMemoryPlatform, caplog: pytest.LogCaptureFixture) -> None:
    quiet = replace(settings, tracking=replace(settings.tracking, enabled=False))
    clock = ManualClock()
    runtime = AgentRuntime(talker(), quiet, platform=platform, clock=clock)
    with caplog.at_level(logging.INFO, logger="scanflow_argo.agents"):
        run_steps(runtime, clock, platform, 16)
    events = [r.fields["event"] for r in caplog.records if hasattr(r, "fields")]  # type: ignore[attr-defined]
    assert events == [
        "sensor.first",
        "rule.pending",
        "rule.fire",
        "action.done",
        "action.cooldown",  # the rule still fires (on="while"); the action waits out its 3 s
        "action.refused",  # cooldown over, but the run it started still runs: max_concurrent=1
        "sensor.stale",
        "sensor.recovered",
        "rule.clear",
    ]
    lines = {r.fields["event"]: r.getMessage() for r in caplog.records if hasattr(r, "fields")}  # type: ignore[attr-defined]
    assert lines["sensor.first"] == "agent talker: sensor replicas first value: 1"
    assert lines["rule.fire"] == "agent talker: rule too-few firing (replicas=1)"
    assert lines["action.done"].startswith("agent talker: action retrain done (submit_workflow): run=retrain-")
    assert lines["action.cooldown"] == "agent talker: action retrain held by its cooldown: 2.0s left (rule too-few)"
    assert "concurrency limit 1 reached" in lines["action.refused"]
    assert "SeldonDeployment scanflow/mnist not found" in lines["sensor.stale"]
    assert lines["sensor.recovered"] == "agent talker: sensor replicas recovered: 3"
    record = next(r for r in caplog.records if getattr(r, "fields", {}).get("event") == "rule.fire")
    doc = json.loads(JsonFormatter().format(record))
    assert doc["level"] == "warning" and doc["agent"] == "talker" and doc["rule"] == "too-few"
    assert doc["inputs"]["replicas"]["value"] == 1.0 and doc["time"].endswith("Z")


def test_dry_run_says_what_it_would_do(settings: Settings, platform: InMemoryPlatform, caplog: pytest.LogCaptureFixture) -> None:
    quiet = replace(settings, tracking=replace(settings.tracking, enabled=False))
    clock = ManualClock()
    runtime = AgentRuntime(talker(), quiet, platform=platform, clock=clock, dry_run=True)
    with caplog.at_level(logging.INFO, logger="scanflow_argo.agents"):
        run_steps(runtime, clock, platform, 3)
    said = [r.getMessage() for r in caplog.records if getattr(r, "fields", {}).get("event") == "action.dry_run"]
    assert said == ["agent talker: action retrain (submit_workflow) decided, not done (dry-run)"]
    assert platform.calls("submit") == []


@pytest.mark.slow
def test_agent_run_imports_from_its_folder_logs_json_and_is_scraped(
    tmp_path: Path, prometheus_binary: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``agent run talker_mod:talker`` from the project folder, no PYTHONPATH (as ``compile`` and ``run``); JSON
    lines on stderr; this home's Prometheus scrapes itself and the agent's /metrics (file service discovery)."""
    from scanflow_argo.monitoring.prometheus import PrometheusServer

    (tmp_path / "talker_mod.py").write_text(AGENT)
    home = tmp_path / "home"
    InMemoryPlatform(home / "fake-platform").add_deployment("mnist", replicas=1)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update({"SCANFLOW_HOME": str(home), "SCANFLOW_TRACKING": "0", "SCANFLOW_AGENT_LOG_FORMAT": "json"})
    ready = tmp_path / "ready.json"
    argv = [sys.executable, "-m", "scanflow_argo", "agent", "run", "talker_mod:talker", "--port", "0"]
    argv += ["--ready-file", str(ready), "--platform-factory", "scanflow_argo.agents.testing:file_platform"]
    agent = _proc.spawn(argv, name="agent", log=tmp_path / "agent.log", env=env, cwd=tmp_path)
    settings = Settings.from_env(environ={}).with_home(home)
    server = PrometheusServer(settings, port=_proc.free_port())
    try:
        server.start(timeout=30)
        deadline = time.monotonic() + 40
        up: dict[str, str] = {}
        while time.monotonic() < deadline and len(up) < 2:
            assert agent.alive(), agent.tail(40)
            up = {s["metric"].get("job", ""): s["value"][1] for s in server.query("up")}
            time.sleep(0.5)
        assert up == {"prometheus": "1", "scanflow-agents": "1"}, up
        fired = server.query('scanflow_agent_rule_firing{job="scanflow-agents", agent="talker"}')
        assert fired and fired[0]["metric"]["rule"] == "too-few"
        lines = [json.loads(x) for x in (tmp_path / "agent.log").read_text().splitlines() if x.startswith("{")]
        assert {"sensor.first", "rule.pending"} <= {x.get("event") for x in lines}
    finally:
        agent.stop(timeout=10)
        server.stop()
    assert not list((home / "prometheus" / "targets").glob("agent-talker-*.json"))  # gone with the agent
