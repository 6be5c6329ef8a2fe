"""The MNIST agents on Seldon's metric names, through a real Prometheus: retrain on low accuracy, scale for p95."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from _agent_helpers import Exporter, RuntimeThread, wait_for

from agents.mnist import drift_supervisor, make_drift_supervisor, make_throughput_scaler, throughput_scaler
from scanflow_argo.agents.decide import Sample, SensorWindow, decide
from scanflow_argo.agents.runtime import AgentRuntime
from scanflow_argo.agents.testing import InMemoryPlatform
from scanflow_argo.errors import AgentDefinitionError
from scanflow_argo.settings import Settings

pytestmark = pytest.mark.slow

SELDON = {"deployment_name": "mnist", "predictor_name": "default", "model_name": "classifier"}
PREDICTIONS = {**SELDON, "service": "predictions"}
"""Seldon's executor labels its requests by ``service``: the scaler reads prediction requests only."""


@pytest.fixture
def platform() -> InMemoryPlatform:
    p = InMemoryPlatform()
    p.apply_template({"metadata": {"name": "mnist-retrain"}})
    p.add_deployment("mnist", replicas=1, model_uri="models:/mnist@champion")
    return p


@pytest.fixture
def run_agent(settings: Settings, prom: Any, platform: InMemoryPlatform) -> Iterator[Any]:
    s = replace(
        settings, prometheus=replace(settings.prometheus, url=prom.url), tracking=replace(settings.tracking, enabled=False)
    )
    threads: list[RuntimeThread] = []

    def start(agent: Any) -> RuntimeThread:
        threads.append(RuntimeThread(AgentRuntime(agent, s, platform=platform)))
        return threads[-1]

    yield start
    for t in threads:
        t.close()


def test_defaults_are_production_shaped() -> None:
    assert drift_supervisor.name == "drift-supervisor" and drift_supervisor.interval == 30
    assert throughput_scaler.entrypoint == "agents.mnist:throughput_scaler"
    assert {
        "verbs": ["get", "patch"],
        "apiGroups": ["machinelearning.seldon.io"],
        "resources": ["seldondeployments"],
        "resourceNames": ["mnist"],
    } in throughput_scaler.rbac_rules()


def test_drift_supervisor_rolls_out_each_candidate_once_as_a_canary() -> None:
    """A retraining names a version ``candidate`` (``rollout=canary``): the supervisor starts one canary roll-out of
    it — steps of ``canary_steps`` percent, its p95 analysed against the SLO, the canary predictor named after the
    version (a promoted canary stays the deployment's predictor) — and none again for that version; a later
    candidate gets its own."""
    agent = make_drift_supervisor(interval=1, canary_steps=[20, 50, 100], slo=0.1, analysis_window="8s")
    state: dict[str, Any] = {"rules": {}, "last_attempt": {}, "keys": {}, "recommendations": {}, "inbox": []}
    now = 1_700_000_000.0

    def rollouts(version: float) -> list[Any]:
        nonlocal now
        now += 1
        windows = {"candidate": SensorWindow("candidate", (Sample(now, version),), None, 3.0)}
        decisions = decide(agent, windows, state, now)
        for d in decisions:
            if d.kind == "rule":
                state["rules"][d.rule] = dict(d.state or {})
            elif d.kind == "action":
                state["keys"][d.key] = {"result": "ok", "t": now}  # as the runtime records a done action
        return [d for d in decisions if d.kind == "action" and d.action == "canary-rollout"]

    first = rollouts(3.0)
    assert [(d.key, d.params["model_uri"], d.params["version"], d.params["canary"]) for d in first] == [
        ("rollout-mnist-3", "models:/mnist/3", "3", "v3")
    ]
    spec = next(a for a in agent.actions() if a.name == "canary-rollout").rollout_spec("v3")
    assert spec["steps"] == [{"setWeight": 20}, {"setWeight": 50}, {"setWeight": 100}]
    assert spec["model"] == "mnist" and spec["alias"] == "champion" and spec["canary"] == "v3"
    with pytest.raises(AgentDefinitionError, match="canary"):  # rendered into no predictor name: refused, not applied
        next(a for a in agent.actions() if a.name == "canary-rollout").rollout_spec("v3.5")
    (metric,) = spec["analysis"]
    assert metric["successCondition"] == "result[0] <= 0.1" and "[8s]" in metric["provider"]["prometheus"]["query"]
    assert rollouts(3.0) == [] and rollouts(3.0) == []  # once per version
    assert [d.params["canary"] for d in rollouts(4.0)] == ["v4"]
    # Without canary steps the supervisor only retrains (the team story's all-at-once roll-out).
    assert [a.name for a in make_drift_supervisor(canary_steps=None).actions()] == ["retrain"]


def test_drift_supervisor_retrains_once_with_the_feedback_window(
    exporter: Exporter, run_agent: Any, platform: InMemoryPlatform
) -> None:
    exporter.set("seldon_api_model_feedback_total", rate=10, **SELDON)
    exporter.set("seldon_api_model_feedback_reward_total", rate=9.8, **SELDON)
    exporter.set("drift_score", 0.1, **SELDON)
    agent = make_drift_supervisor(
        interval="300ms", window="3s", for_="1s", accuracy_threshold=0.85, cooldown="1s", feedback_dir="fb/mnist"
    )
    t = run_agent(agent)
    wait_for(lambda: (t.runtime.status()["sensors"]["accuracy"]["value"] or 0) > 0.9, what="accuracy reading")
    assert platform.calls("submit") == []
    exporter.set("seldon_api_model_feedback_reward_total", rate=5, **SELDON)  # accuracy falls to 0.5
    exporter.set("drift_score", 0.9, **SELDON)
    call = wait_for(lambda: platform.calls("submit"), what="retraining")[0]
    _, template, params, labels = call
    assert template == "mnist-retrain" and params["feedback_dir"] == "fb/mnist"
    start, end = (int(x) for x in params["feedback_window"].split(".."))
    assert 0 < end - start < 30, "the window starts at the onset of the degradation"
    assert labels["scanflow.io/agent"] == "drift-supervisor" and labels["app"] == "mnist"
    wait_for(lambda: t.runtime.status()["iterations"] > 10, what="more evaluations")
    assert len(platform.calls("submit")) == 1, "max one retraining at a time, once per episode"


def test_throughput_scaler_holds_p95_under_slo(exporter: Exporter, run_agent: Any, platform: InMemoryPlatform) -> None:
    def latency(fast: float, slow: float) -> None:
        exporter.set("seldon_api_executor_server_requests_seconds_bucket", rate=fast, le="0.1", **PREDICTIONS)
        exporter.set("seldon_api_executor_server_requests_seconds_bucket", rate=fast + slow, le="0.5", **PREDICTIONS)
        exporter.set("seldon_api_executor_server_requests_seconds_bucket", rate=fast + slow, le="+Inf", **PREDICTIONS)
        exporter.set("seldon_api_executor_server_requests_seconds_count", rate=fast + slow, **PREDICTIONS)

    # slow feedback calls through the same executor: counted, they would keep p95 over the SLO and double the rate
    feedback = {**SELDON, "service": "feedback"}
    for le in ("0.5", "+Inf"):
        exporter.set("seldon_api_executor_server_requests_seconds_bucket", rate=10, le=le, **feedback)
    exporter.set("seldon_api_executor_server_requests_seconds_count", rate=10, **feedback)
    latency(0, 10)  # p95 ≈ 0.48 s, SLO 0.2 s
    agent = make_throughput_scaler(interval="300ms", window="3s", slo=0.2, max_replicas=4, down_stabilization="1s")
    t = run_agent(agent)
    wait_for(lambda: [c[2] for c in platform.calls("scale")][:2] == [3, 4], what="scale up 1 → 3 → 4 (max)")
    latency(10, 0)  # p95 ≈ 0.095 s
    wait_for(lambda: platform.get_deployment("mnist").replicas == 2, timeout=30, what="scale down after stabilisation")
    assert max(c[2] for c in platform.calls("scale")) == 4
    assert t.runtime.status()["sensors"]["rps"]["value"] == pytest.approx(10, rel=0.3)


def test_throughput_scaler_on_capacity_follows_the_request_rate(
    exporter: Exporter, run_agent: Any, platform: InMemoryPlatform
) -> None:
    """With ``capacity`` the replicas follow the request rate, whatever the latency says (here: fast)."""

    def load(rps: float) -> None:
        for le in ("0.1", "+Inf"):
            exporter.set("seldon_api_executor_server_requests_seconds_bucket", rate=rps, le=le, **PREDICTIONS)
        exporter.set("seldon_api_executor_server_requests_seconds_count", rate=rps, **PREDICTIONS)

    load(50)  # p95 ≈ 0.095 s, under the SLO: a latency scaler would do nothing
    agent = make_throughput_scaler(interval="300ms", window="3s", slo=0.2, capacity=30, max_replicas=3, down_stabilization="1s")
    assert agent.config()["factory_args"]["capacity"] == 30  # the pod rebuilds the same agent
    t = run_agent(agent)
    wait_for(lambda: platform.get_deployment("mnist").replicas == 2, what="ceil(50 / 30) = 2 replicas")
    assert not t.runtime.status()["rules"]["slo-breached"]["firing"]
    load(125)
    wait_for(lambda: platform.get_deployment("mnist").replicas == 3, what="ceil(125 / 30) = 5, bounded by max 3")
    load(10)
    wait_for(lambda: platform.get_deployment("mnist").replicas == 1, timeout=30, what="back to one after the down window")
    steps = [c[2] for c in platform.calls("scale")]
    assert steps[:2] == [2, 3] and steps[-1] == 1 and max(steps) == 3


def test_throughput_scaler_scales_an_idle_deployment_down(exporter: Exporter, run_agent: Any, platform: InMemoryPlatform) -> None:
    """No requests: p95 is NaN (no data — the SLO rule stays unknown) but the request rate of 0 is data:
    after the down-stabilisation window at ~0 requests/s the scaler goes to min_replicas."""
    for le in ("0.1", "0.5", "+Inf"):  # counters that exist but no longer move: an idle deployment
        exporter.set("seldon_api_executor_server_requests_seconds_bucket", rate=0, le=le, **PREDICTIONS)
    exporter.set("seldon_api_executor_server_requests_seconds_count", rate=0, **PREDICTIONS)
    platform.scale("mnist", 3)
    agent = make_throughput_scaler(interval="300ms", window="3s", slo=0.2, min_replicas=1, down_stabilization="2s")
    t = run_agent(agent)
    first_zero = wait_for(
        lambda: time.time() if t.runtime.status()["sensors"]["rps"]["value"] == 0 else None, what="a request rate of 0"
    )
    status = t.runtime.status()
    assert status["sensors"]["p95"]["stale"] and status["rules"]["slo-breached"]["unknown"], "NaN p95 is no data"
    wait_for(lambda: platform.get_deployment("mnist").replicas == 1, timeout=20, what="scale down to min while idle")
    assert [c[2] for c in platform.calls("scale") if c[2] != 3] == [1]
    assert time.time() - first_zero >= 1.5, "only after the down-stabilisation window of idleness"
    action = [r for r in t.records("action") if r.get("status") == "ok"][-1]
    assert "idle for" in action["reason"]


def test_drift_supervisor_acts_on_the_local_platform(exporter: Exporter, prom: Any, settings: Settings) -> None:
    """The same agent on the real local platform: the engine runs the submitted retraining template."""
    from scanflow_argo.platform import get_platform

    s = replace(
        settings, prometheus=replace(settings.prometheus, url=prom.url), tracking=replace(settings.tracking, enabled=False)
    )
    local = get_platform(s)
    local.apply_template(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "WorkflowTemplate",
            "metadata": {"name": "mnist-retrain"},
            "spec": {
                "entrypoint": "main",
                "arguments": {"parameters": [{"name": "feedback_window", "value": ""}, {"name": "feedback_dir", "value": ""}]},
                "templates": [{"name": "main", "container": {"image": "argoproj/argosay:v2", "args": ["sleep", "2s"]}}],
            },
        }
    )
    exporter.set("seldon_api_model_feedback_total", rate=10, **SELDON)
    exporter.set("seldon_api_model_feedback_reward_total", rate=4, **SELDON)
    exporter.set("drift_score", 0.9, **SELDON)
    agent = make_drift_supervisor(interval="300ms", window="3s", for_="1s", cooldown="0s")
    t = RuntimeThread(AgentRuntime(agent, s))  # platform from settings.platform, as `agent run` does
    try:
        runs = wait_for(lambda: local.list_runs({"scanflow.io/agent": "drift-supervisor"}), what="a retraining run")
        assert runs[0].parameters["feedback_dir"] == "feedback/mnist" and ".." in runs[0].parameters["feedback_window"]
        assert local.wait(runs[0].name, timeout=60).phase == "Succeeded"
        finished = wait_for(lambda: t.records("run-finished"), what="the agent to see the run end")
        assert finished[0]["phase"] == "Succeeded" and finished[0]["run"] == runs[0].name
        assert len(local.list_runs({"scanflow.io/agent": "drift-supervisor"})) == 1, "once per episode"
    finally:
        t.close()
