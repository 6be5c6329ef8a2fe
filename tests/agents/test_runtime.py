"""The agent loop against a real Prometheus scraping a real exporter: rules fire and clear, staleness, recovery."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from _agent_helpers import Exporter, RuntimeThread, wait_for

from scanflow_argo.agents.runtime import AgentRuntime, key_label
from scanflow_argo.agents.testing import InMemoryPlatform
from scanflow_argo.errors import AgentDefinitionError
from scanflow_argo.settings import Settings
from scanflow_argo.spec.agent import (
    Agent,
    Hysteresis,
    Plan,
    PromQuery,
    RateOfChange,
    ScaleDeployment,
    SubmitWorkflow,
    Threshold,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def platform() -> InMemoryPlatform:
    p = InMemoryPlatform()
    p.apply_template({"metadata": {"name": "retrain"}})
    return p


@pytest.fixture
def agent_settings(settings: Settings, prom: Any) -> Settings:
    return replace(
        settings,
        prometheus=replace(settings.prometheus, url=prom.url),
        tracking=replace(settings.tracking, enabled=False),
    )


@pytest.fixture
def running(agent_settings: Settings, platform: InMemoryPlatform) -> Iterator[Any]:
    threads: list[RuntimeThread] = []

    def start(agent: Agent, **kw: Any) -> RuntimeThread:
        t = RuntimeThread(AgentRuntime(agent, agent_settings, platform=platform, **kw))
        threads.append(t)
        return t

    yield start
    for t in threads:
        t.close()


def gauge_agent(**plan_kw: Any) -> Agent:
    return Agent(
        "gauge-watch",
        sensors=[PromQuery("x", "max(test_gauge)", interval="300ms", stale_after="1s")],
        rules=[
            Threshold("x", ">", 5, for_="1s", name="high"),
            Hysteresis("x", fire=5, clear=2, name="band"),
            RateOfChange("x", ">", 1.0, per="1s", window="2s", name="rising"),
        ],
        plans=[
            Plan(
                "high",
                [SubmitWorkflow("retrain", {"level": "{sensor.x}", "window": "{window}"}, cooldown=0, name="act")],
                **plan_kw,
            )
        ],
        interval="300ms",
    )


def test_each_rule_kind_fires_and_clears(exporter: Exporter, running: Any, platform: InMemoryPlatform) -> None:
    exporter.set("test_gauge", 1)
    agent = running(gauge_agent())
    wait_for(lambda: agent.runtime.status()["sensors"]["x"]["value"] == 1, what="first sample of x")
    exporter.set("test_gauge", 8)
    wait_for(lambda: {"high:fire", "band:fire", "rising:fire"} <= set(agent.events()), what="all three rules to fire")
    run = wait_for(lambda: platform.calls("submit"), what="the action")[0]
    assert run[1] == "retrain" and run[2]["level"] == "8"
    wait_for(lambda: "rising:clear" in agent.events(), what="rate of change to clear once flat")
    exporter.set("test_gauge", 3)  # below 5: threshold clears; above 2: hysteresis holds
    wait_for(lambda: "high:clear" in agent.events(), what="threshold to clear")
    assert "band:clear" not in agent.events()
    exporter.set("test_gauge", 1)
    wait_for(lambda: "band:clear" in agent.events(), what="hysteresis to clear under its clear level")
    assert len(platform.calls("submit")) == 1  # once per firing
    assert agent.runtime.status()["rules"]["high"]["firing"] is False


def test_prometheus_down_means_stale_and_no_action_then_recovery(
    exporter: Exporter, prom: Any, running: Any, platform: InMemoryPlatform
) -> None:
    exporter.set("test_gauge", 1)
    agent = running(gauge_agent(on="while"))
    wait_for(lambda: agent.runtime.status()["sensors"]["x"]["value"] == 1, what="first sample")
    prom.stop()
    exporter.set("test_gauge", 9)
    wait_for(lambda: agent.runtime.status()["sensors"]["x"]["stale"], what="sensor stale")
    status = agent.runtime.status()
    assert "unreachable" in status["sensors"]["x"]["stale"]
    assert status["rules"]["high"]["unknown"] is True
    wait_for(lambda: agent.runtime.status()["sensors"]["x"]["errors"] >= 3, what="retries with backoff")
    assert platform.calls("submit") == []  # the last value seen was 1: never turned into anything else
    assert b"scanflow_agent_sensor_errors_total" in agent.runtime.metrics.render()
    prom.start(timeout=30)
    wait_for(lambda: platform.calls("submit"), timeout=30, what="action after Prometheus returned")
    assert agent.runtime.status()["sensors"]["x"]["stale"] is None


def test_empty_result_is_stale_not_zero(exporter: Exporter, running: Any, platform: InMemoryPlatform) -> None:
    agent = Agent(
        "empty",
        sensors=[PromQuery("x", "max(absent_metric_name)", interval="300ms")],
        rules=[Threshold("x", "<", 1, name="low")],
        plans=[Plan("low", [SubmitWorkflow("retrain", cooldown=0)])],
        interval="300ms",
    )
    t = running(agent)
    wait_for(lambda: t.runtime.status()["sensors"]["x"]["errors"] >= 2, what="reads")
    assert "no data" in t.runtime.status()["sensors"]["x"]["stale"]
    assert platform.calls("submit") == [] and t.events() == []


def test_bad_promql_refused_by_real_prometheus(agent_settings: Settings, platform: InMemoryPlatform) -> None:
    # Balanced and with known functions, so only the server can tell it is wrong.
    agent = Agent("bad", sensors=[PromQuery("x", "sum(rate(x[5m])) by by (le)", interval=1)])
    runtime = AgentRuntime(agent, agent_settings, platform=platform)
    import asyncio

    with pytest.raises(AgentDefinitionError, match=r"sensors\['x'\].query: Prometheus rejects"):
        asyncio.run(runtime.start())


def test_pending_action_settled_after_crash(agent_settings: Settings, platform: InMemoryPlatform, tmp_path: Path) -> None:
    """A key left *pending* (crash between intent and result) is adopted when the run exists, else retried."""
    import asyncio

    agent = gauge_agent()
    runtime = AgentRuntime(agent, agent_settings, platform=platform)
    run = platform.submit("retrain", {}, {"scanflow.io/idempotency-key": key_label("k1")})
    with runtime.state.update() as data:
        data["keys"]["k1"] = {"result": "pending", "action": "act", "kind": "submit_workflow", "t": 1.0}
        data["keys"]["k2"] = {"result": "pending", "action": "act", "kind": "submit_workflow", "t": 1.0}
    asyncio.run(runtime.start(check_online=False))
    keys = runtime.state.get("keys")
    assert keys["k1"]["result"] == "ok" and keys["k1"]["run"] == run
    assert keys["k2"]["result"] == "failed"  # never reached the platform: retried under the cooldown
    assert runtime.state.get("inflight")["act"][0]["run"] == run


def test_range_sensor_reads_a_window(exporter: Exporter, running: Any, platform: InMemoryPlatform) -> None:
    """A range query's result is the window: a slope is seen from one read, not built up over reads."""
    exporter.set("test_gauge", 1)
    agent = Agent(
        "ranged",
        sensors=[PromQuery("x", "max(test_gauge)", interval="500ms", range="4s", step="500ms")],
        rules=[RateOfChange("x", ">", 0.5, per="1s", window="4s", min_samples=3, name="rising")],
        plans=[Plan("rising", [SubmitWorkflow("retrain", cooldown=0)])],
        interval="500ms",
    )
    t = running(agent)
    wait_for(lambda: len(t.runtime.tracks["x"].samples) >= 4, what="a window of samples from one range query")
    assert platform.calls("submit") == []
    exporter.set("test_gauge", 9)
    wait_for(lambda: platform.calls("submit"), what="rising slope over the range")
    assert "rising:fire" in t.events()


def test_scaler_holds_fallback_while_prometheus_is_down_then_scales_on_data(
    exporter: Exporter, prom: Any, running: Any, platform: InMemoryPlatform
) -> None:
    """KEDA's fallback (pkg/fallback/fallback.go): beyond ``failure_threshold`` failed reads hold
    ``fallback_replicas``; when data returns scale on it again — both scales in the audit trail."""
    platform.add_deployment("mnist", replicas=1)
    exporter.set("test_gauge", 2)
    scale = ScaleDeployment(
        "mnist", "x", target=1.0, policy="capacity", min_replicas=1, max_replicas=5, down_stabilization=0,
        fallback_replicas=4, failure_threshold=3, name="scale",
    )  # fmt: skip
    agent = running(
        Agent(
            "scaler",
            sensors=[PromQuery("x", "max(test_gauge)", interval="300ms", stale_after="1s")],
            plans=[Plan(None, [scale])],
            interval="300ms",
        )
    )

    def scales() -> list[dict[str, Any]]:
        return [r for r in agent.records("action") if r.get("action") == "scale" and r.get("status") == "ok"]

    wait_for(lambda: platform.get_deployment("mnist").replicas == 2, what="scale on data to ceil(2/1)")
    prom.stop()
    wait_for(lambda: platform.get_deployment("mnist").replicas == 4, timeout=30, what="fallback replicas")
    fallback = [r for r in scales() if (r.get("params") or {}).get("fallback")]
    assert fallback and fallback[-1]["params"]["fallback"] == "static" and fallback[-1]["params"]["failures"] > 3
    prom.start(timeout=30)
    wait_for(lambda: platform.get_deployment("mnist").replicas == 2, timeout=30, what="normal scaling with data back")
    assert "fallback" not in (scales()[-1].get("params") or {})
