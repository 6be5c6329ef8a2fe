"""``decide`` is a pure function: rules fire and clear on windows, stale data never acts, gates hold."""

from __future__ import annotations

from typing import Any

import pytest

from scanflow_argo.agents.decide import Decision, Sample, SensorWindow, decide
from scanflow_argo.errors import AgentDefinitionError
from scanflow_argo.spec.agent import (
    Agent,
    AllOf,
    AnyOf,
    Hysteresis,
    OnMessage,
    Plan,
    PromQuery,
    RateOfChange,
    ScaleDeployment,
    SubmitWorkflow,
    Threshold,
)

T0 = 1_700_000_000.0


class Sim:
    """Feeds samples one interval at a time and applies decisions to the state, as the runtime does."""

    def __init__(self, agent: Agent, stale_after: float = 3.0) -> None:
        self.agent = agent
        self.samples: dict[str, list[Sample]] = {s.name: [] for s in agent.sensors}
        self.errors: dict[str, str | None] = {}
        self.state: dict[str, Any] = {"rules": {}, "last_attempt": {}, "keys": {}, "recommendations": {}, "inbox": []}
        self.stale_after = stale_after
        self.now = T0

    def step(self, dt: float = 1.0, **values: float | None) -> list[Decision]:
        self.now += dt
        for name, v in values.items():
            if v is None:
                self.errors[name] = "unreachable"
            else:
                self.errors[name] = None
                self.samples[name].append(Sample(self.now, v))
        windows = {n: SensorWindow(n, tuple(s), self.errors.get(n), self.stale_after) for n, s in self.samples.items()}
        out = decide(self.agent, windows, self.state, self.now)
        for d in out:
            if d.kind == "rule":
                self.state["rules"][d.rule] = dict(d.state or {})
            elif d.kind == "recommend":
                self.state["recommendations"][d.action] = d.params["history"]
                self.state.setdefault("fallback", {})[d.action] = d.params["failures"]
            elif d.kind == "consume":
                self.state["inbox"] = [m for m in self.state["inbox"] if m["id"] != d.message_id]
            elif d.kind == "action":
                self.state["keys"][d.key] = {"result": "ok"}
                self.state["last_attempt"][d.action] = self.now
        return out


def events(out: list[Decision]) -> list[str]:
    return [f"{d.rule}:{d.event}" if d.kind == "rule" else f"{d.action}:{d.status}" for d in out if d.kind in ("rule", "action")]


def agent_with(rule: Any, cooldown: float = 0.0, on: str = "fire") -> Agent:
    return Agent(
        "t",
        sensors=[PromQuery("x", "up", interval=1)],
        rules=[rule],
        plans=[
            Plan(
                rule.name, [SubmitWorkflow("retrain", {"w": "{window}", "v": "{sensor.x}"}, cooldown=cooldown, name="act")], on=on
            )
        ],
        interval=1,
    )


def test_threshold_for_fires_after_duration_and_clears() -> None:
    sim = Sim(agent_with(Threshold("x", "<", 0.8, for_=2, name="low")))
    assert events(sim.step(x=0.9)) == []
    assert events(sim.step(x=0.7)) == ["low:pending"]
    assert events(sim.step(x=0.6)) == []  # held 1 s of 2
    out = sim.step(x=0.6)
    assert events(out) == ["low:fire", "act:planned"]
    action = out[-1]
    assert action.params["parameters.w"] == f"{int(T0 + 2)}..{int(T0 + 4)}"  # window since the onset
    assert action.params["parameters.v"] == "0.6"
    assert events(sim.step(x=0.5)) == []  # once per firing
    assert events(sim.step(x=0.85)) == ["low:clear"]
    # A dip shorter than ``for`` never fires.
    assert events(sim.step(x=0.7)) == ["low:pending"]
    assert events(sim.step(x=0.9)) == ["low:reset"]


def test_hysteresis_fires_high_clears_only_below_clear() -> None:
    sim = Sim(agent_with(Hysteresis("x", fire=0.5, clear=0.3, name="drift")))
    assert events(sim.step(x=0.4)) == []
    assert events(sim.step(x=0.6)) == ["drift:fire", "act:planned"]
    assert events(sim.step(x=0.4)) == []  # between the levels: still firing
    assert events(sim.step(x=0.2)) == ["drift:clear"]
    assert events(sim.step(x=0.4)) == []  # between the levels: still clear


def test_hysteresis_low_alarm() -> None:
    sim = Sim(agent_with(Hysteresis("x", fire=0.7, clear=0.8, name="acc")))
    assert events(sim.step(x=0.75)) == []
    assert events(sim.step(x=0.65)) == ["acc:fire", "act:planned"]
    assert events(sim.step(x=0.79)) == []
    assert events(sim.step(x=0.81)) == ["acc:clear"]


def test_rate_of_change() -> None:
    sim = Sim(agent_with(RateOfChange("x", "<", -0.05, per=1, window=3, name="falling")))
    assert events(sim.step(x=0.9)) == []  # one sample: unknown
    assert events(sim.step(x=0.9)) == []
    assert events(sim.step(x=0.8)) == []  # slope over 3 s: -0.05 — not below
    assert events(sim.step(x=0.6)) == ["falling:fire", "act:planned"]
    assert events(sim.step(x=0.6)) == []
    assert events(sim.step(x=0.6)) == []
    assert events(sim.step(x=0.6)) == ["falling:clear"]


def test_any_and_all_of() -> None:
    low = Threshold("x", "<", 0.5, name="low")
    very = Threshold("x", "<", 0.2, name="very-low")
    sim_any = Sim(agent_with(AnyOf(low, very, name="either")))
    assert "either:fire" in events(sim_any.step(x=0.4))
    sim_all = Sim(agent_with(AllOf(low, very, name="both")))
    assert events(sim_all.step(x=0.4)) == []
    assert events(sim_all.step(x=0.1)) == ["both:fire", "act:planned"]
    assert events(sim_all.step(x=0.3)) == ["both:clear"]


def test_a_firing_composite_holds_while_a_part_restarts_its_run() -> None:
    """A composite's parts keep no state: after a gap in a sensor's data its window restarts, so a part reads
    "holding, not for ``for`` yet" — the composite must stay firing (seen on the real drift supervisor: a clear
    and a new episode with accuracy 0.4 and drift 0.9, so a second retraining for one degradation)."""
    low = Threshold("x", "<", 0.5, for_=2, name="low")
    sim = Sim(agent_with(AnyOf(low, Threshold("x", "<", 0.1, name="very-low"), name="either")))
    assert events(sim.step(x=0.4)) == []
    assert events(sim.step(x=0.4)) == []
    assert events(sim.step(x=0.4)) == ["either:fire", "act:planned"]
    sim.samples["x"] = sim.samples["x"][-1:]  # the window after a gap: its newest sample only
    assert events(sim.step(x=0.4)) == []  # still firing, no second action
    assert events(sim.step(x=0.6)) == ["either:clear"]


def test_stale_sensor_neither_fires_nor_clears_nor_acts() -> None:
    sim = Sim(agent_with(Threshold("x", "<", 0.5, name="low"), on="while"))
    assert events(sim.step(x=0.4)) == ["low:fire", "act:planned"]
    assert events(sim.step(x=None)) == []  # unreachable: stale, no action, still firing
    assert sim.state["rules"]["low"]["firing"] is True
    assert events(sim.step(dt=5)) == []  # no new sample: too old
    assert events(sim.step(x=0.4)) == ["act:planned"]  # fresh again: acts (on="while")
    assert events(sim.step(x=0.9)) == ["low:clear"]


def test_cooldown_blocks_repeat_and_failed_action_retries_after_it() -> None:
    sim = Sim(agent_with(Threshold("x", "<", 0.5, name="low"), cooldown=5, on="while"))
    assert events(sim.step(x=0.4)) == ["low:fire", "act:planned"]
    for _ in range(4):
        assert events(sim.step(x=0.4)) == []
    assert events(sim.step(x=0.4)) == ["act:planned"]


def test_idempotency_key_blocks_same_episode() -> None:
    sim = Sim(agent_with(Threshold("x", "<", 0.5, name="low")))
    out = sim.step(x=0.4)
    key = out[-1].key
    assert key == f"t/low/act/{int(T0 + 1)}"
    sim.state["last_attempt"].clear()  # even without a cooldown, the key holds
    assert events(sim.step(x=0.4)) == []
    sim.state["keys"][key] = {"result": "failed"}  # a failure is retried
    assert events(sim.step(x=0.4)) == ["act:planned"]


def test_pause_keeps_rules_but_plans_nothing() -> None:
    sim = Sim(agent_with(Threshold("x", "<", 0.5, name="low")))
    sim.state["paused"] = True
    assert events(sim.step(x=0.4)) == ["low:fire"]


def scaler(**kw: Any) -> Agent:
    scale = ScaleDeployment("mnist", "p95", target=0.2, **{"min_replicas": 1, "max_replicas": 5, "name": "scale", **kw})
    return Agent("s", sensors=[PromQuery("p95", "up", interval=1)], plans=[Plan(None, [scale])], interval=1)


def test_scale_ratio_bounds_and_stabilisation() -> None:
    sim = Sim(scaler(up_stabilization=0, down_stabilization=3), stale_after=100)
    sim.samples["mnist-replicas"] = [Sample(T0, 1)]

    def go(p95: float, replicas: int) -> int | None:
        sim.samples["mnist-replicas"].append(Sample(sim.now + 1, replicas))
        acts = [d for d in sim.step(p95=p95) if d.kind == "action"]
        return acts[0].params["replicas"] if acts else None

    assert go(0.5, 1) == 3  # ceil(1 × 0.5/0.2)
    assert go(2.0, 3) == 5  # bounded by max
    assert go(0.21, 5) is None  # within tolerance
    assert go(0.05, 5) is None  # down: waits for the 3 s window's highest recommendation
    assert go(0.05, 5) is None
    assert go(0.05, 5) is None
    assert go(0.05, 5) == 2  # ceil(5 × 0.25) after the window
    assert [go(0.01, 2) for _ in range(4)] == [None, None, None, 1]  # again the highest of the last 3 s


def test_scale_on_capacity_follows_the_load_not_the_latency() -> None:
    """policy="capacity": ceil(rate / per-replica capacity), HPA's AverageValue target with its tolerance;
    a ramp up and down gives the same steps every time (1 → 2 → 3, then 3 → 2 → 1 after the down window)."""
    scale = ScaleDeployment(
        "mnist", "rps", target=30.0, policy="capacity", min_replicas=1, max_replicas=3, down_stabilization=3, name="scale"
    )
    sim = Sim(Agent("s", sensors=[PromQuery("rps", "up", interval=1)], plans=[Plan(None, [scale])], interval=1), stale_after=100)
    replicas = 1

    def go(rps: float) -> int | None:
        nonlocal replicas
        sim.samples["mnist-replicas"].append(Sample(sim.now + 1, replicas))
        acts = [d for d in sim.step(rps=rps) if d.kind == "action"]
        if acts:
            replicas = acts[0].params["replicas"]
            return replicas
        return None

    assert go(20.0) is None  # 20/30: one replica is enough (and it is never scaled below min)
    assert go(32.0) is None  # 32/30 is within the 10% tolerance
    assert [go(r) for r in (40.0, 55.0, 70.0, 125.0, 125.0)] == [2, None, 3, None, None]  # 125/30 → 5, bounded by max
    # Down: the highest recommendation of the last 3 s, so the 2 seen on the way down comes first.
    assert [go(r) for r in (90.0, 50.0, 20.0, 20.0, 20.0, 20.0, 20.0)] == [None, None, None, None, 2, 1, None]
    assert go(0.0) is None  # at min already: no traffic asks for min_replicas, nothing below it


def test_scale_never_acts_on_stale_metric() -> None:
    sim = Sim(scaler(), stale_after=3)
    sim.samples["mnist-replicas"] = [Sample(T0 + 1, 1)]
    assert [d for d in sim.step(p95=None) if d.kind == "action"] == []


@pytest.mark.parametrize(
    ("behavior", "replicas", "reads", "expected"),
    [
        # KEDA pkg/fallback/fallback.go (GetMetricsWithFallback: NumberOfFailures > FailureThreshold,
        # doFallback's behaviours): with failureThreshold 3 the 4th failed read holds the fallback;
        # data back → normal scaling; None = no action planned.
        ("static", 4, [None, None, None], [None, None, None]),  # 3 failures: not beyond the threshold yet
        ("static", 4, [None, None, None, None], [None, None, None, 2]),
        ("static", 2, [None, None, None, None], [None, None, None, None]),  # already at the fallback
        ("currentReplicas", 4, [None] * 5, [None] * 5),  # never moves
        ("currentReplicasIfHigher", 4, [None] * 4, [None] * 4),  # 4 > 2: keeps 4
        ("currentReplicasIfHigher", 1, [None] * 4, [None, None, None, 2]),  # 1 < 2: raises to 2
        ("currentReplicasIfLower", 4, [None] * 4, [None, None, None, 2]),  # 4 > 2: lowers to 2
        ("currentReplicasIfLower", 1, [None] * 4, [None] * 4),  # 1 < 2: keeps 1
        ("static", 4, [None, None, 0.2, None, None], [None] * 5),  # data resets the count
        ("static", 2, [None, None, None, None, 0.6], [None, None, None, None, 5]),  # back to normal: ceil(2 × 3), max 5
    ],
)
def test_scale_fallback_after_failure_threshold(
    behavior: str, replicas: int, reads: list[float | None], expected: list[int | None]
) -> None:
    sim = Sim(scaler(fallback_replicas=2, failure_threshold=3, fallback_behavior=behavior), stale_after=100)
    got: list[int | None] = []
    for p95 in reads:
        sim.samples["mnist-replicas"].append(Sample(sim.now + 1, replicas))
        acts = [d for d in sim.step(p95=p95) if d.kind == "action"]
        got.append(acts[0].params["replicas"] if acts else None)
        if acts and p95 is None:  # audited: the action says it is the fallback, after how many failures
            assert acts[0].params["fallback"] == behavior and acts[0].params["failures"] == 4
            assert "fallback" in acts[0].reason
    assert got == expected


@pytest.mark.parametrize(
    ("activation", "p95", "current", "expected"),
    [
        (0.0, 0.05, 2, 1),  # no threshold: ceil(2 × 0.25) = 1
        (0.0, 0.05, 1, None),  # ceil(1 × 0.25) = 1: near-zero load never reaches 0
        (0.1, 0.05, 1, 0),  # at most the activation threshold: inactive → min_replicas (0)
        (0.1, 0.05, 0, None),  # inactive at 0 stays at 0
        (0.1, 0.5, 1, 3),  # above activation: normal scaling
    ],
)
def test_scale_activation_threshold(activation: float, p95: float, current: int, expected: int | None) -> None:
    sim = Sim(scaler(activation_threshold=activation, min_replicas=0, down_stabilization=0), stale_after=100)
    sim.samples["mnist-replicas"].append(Sample(sim.now + 1, current))
    acts = [d for d in sim.step(p95=p95) if d.kind == "action"]
    assert (acts[0].params["replicas"] if acts else None) == expected


def test_scale_fallback_declaration_is_checked() -> None:
    # KEDA's own spellings only (scaledobject_types.go): the short "current" is refused, naming them.
    for bad in (
        {"fallback_behavior": "current"},
        {"fallback_behavior": "currentIfHigher"},
        {"failure_threshold": -1},
        {"fallback_replicas": -1},
    ):
        with pytest.raises(AgentDefinitionError):
            scaler(**bad)


def test_idle_scales_down_to_min_after_the_down_window_but_no_data_never_does() -> None:
    """p95 of no requests is NaN (stale); a request rate of 0 is data: idle for the whole down window → min."""
    scale = ScaleDeployment(
        "mnist", "p95", target=0.2, min_replicas=1, max_replicas=5, down_stabilization=3, idle_sensor="rps", idle_below=0.01
    )
    agent = Agent(
        "s",
        sensors=[PromQuery("p95", "up", interval=1), PromQuery("rps", "up", interval=1)],
        rules=[Threshold("p95", ">", 0.2, name="slo")],
        plans=[Plan(None, [scale])],
        interval=1,
    )
    sim = Sim(agent, stale_after=100)

    def go(p95: float | None, rps: float | None) -> int | None:
        sim.samples["mnist-replicas"].append(Sample(sim.now + 1, 4))
        out = sim.step(p95=p95, rps=rps)
        assert not [d for d in out if d.kind == "rule" and d.event == "fire"], "a NaN p95 never fires the SLO rule"
        acts = [d for d in out if d.kind == "action"]
        return acts[0].params["replicas"] if acts else None

    assert go(0.2, 5.0) is None  # traffic within the SLO
    assert [go(None, 0.0) for _ in range(3)] == [None, None, None]  # idle, not yet for 3 s
    assert go(None, 0.0) == 1  # idle 3 s: to min
    sim.state["recommendations"] = {}
    assert [go(None, None) for _ in range(5)] == [None] * 5  # no traffic data at all (Prometheus down): no action
    assert [go(None, 2.0) for _ in range(5)] == [None] * 5  # traffic but no p95: no action either
    plain = Sim(scaler(down_stabilization=0), stale_after=100)  # without an idle sensor nothing changes
    plain.samples["mnist-replicas"] = [Sample(T0 + 1, 4)]
    assert [d for d in plain.step(p95=None) if d.kind == "action"] == []


def test_idle_sensor_must_be_declared() -> None:
    import pytest

    with pytest.raises(AgentDefinitionError, match=r"\.idle_sensor: unknown sensor 'rps'"):
        scaler(idle_sensor="rps")


def test_on_message_once_per_message() -> None:
    agent = Agent(
        "executor",
        rules=[OnMessage("retrain", name="on-retrain")],
        plans=[
            Plan("on-retrain", [SubmitWorkflow("mnist-retrain", {"feedback_window": "{message.window}"}, cooldown=0, name="act")])
        ],
    )
    sim = Sim(agent)
    sim.state["inbox"] = [
        {"id": "m1", "topic": "retrain", "payload": {"window": "1..2"}, "t": T0},
        {"id": "m2", "topic": "other", "t": T0},
    ]
    out = sim.step()
    assert [d.params["parameters.feedback_window"] for d in out if d.kind == "action"] == ["1..2"]
    assert [m["id"] for m in sim.state["inbox"]] == ["m2"]
    assert [d for d in sim.step() if d.kind == "action"] == []


def test_message_missing_a_field_is_dropped_with_a_reason() -> None:
    agent = Agent(
        "executor",
        rules=[OnMessage("retrain", name="on-retrain")],
        plans=[Plan("on-retrain", [SubmitWorkflow("mnist-retrain", {"feedback_window": "{message.window}"}, name="act")])],
    )
    sim = Sim(agent)
    sim.state["inbox"] = [{"id": "m1", "topic": "retrain", "payload": {}, "t": T0}]
    out = sim.step()
    assert [d.kind for d in out] == ["consume"] and "dropped" in out[0].reason and "message.window" in out[0].reason
    assert sim.state["inbox"] == []


def test_template_without_a_value_is_skipped_not_crashed() -> None:
    agent = Agent(
        "t",
        sensors=[PromQuery("x", "up", interval=1), PromQuery("y", "up", interval=1)],
        rules=[Threshold("x", ">", 1, name="hi")],
        plans=[Plan("hi", [SubmitWorkflow("w", {"p": "{sensor.y}"}, name="act")])],
    )
    out = Sim(agent).step(x=2)
    assert [(d.kind, d.status) for d in out if d.kind == "action"] == [("action", "skipped")]
    assert "sensor.y" in next(d for d in out if d.kind == "action").reason
