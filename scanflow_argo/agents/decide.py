"""The agent's brain as a pure function: sensor windows + persisted state + now → decisions.

``decide`` does no I/O and reads no clock; the driver (``runtime.py``) feeds it what the
sensors saw and applies what it returns: rule transitions (``kind="rule"``), scaling
recommendations (``kind="recommend"``), consumed messages (``kind="consume"``) and planned
actions (``kind="action"``, ``status="planned"``) that the executor then performs.

Staleness is decided here too: a sensor whose last read failed, returned nothing (or NaN), or
whose newest sample is older than its ``stale_after`` is stale; a rule over a stale sensor is
*unknown* — it neither fires nor clears, and no action is planned on it.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..clock import iso
from ..errors import AgentDefinitionError
from ..spec.agent import (
    Action,
    Agent,
    AllOf,
    AnyOf,
    Hysteresis,
    OnMessage,
    Plan,
    RateOfChange,
    Rule,
    ScaleDeployment,
    Threshold,
    render,
)

__all__ = ["Decision", "RuleState", "Sample", "SensorWindow", "cooldown_left", "decide", "is_stale", "rule_key_vars"]

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True)
class Sample:
    """One observation: epoch seconds and value."""

    t: float
    v: float


@dataclass(frozen=True)
class SensorWindow:
    """What a sensor has seen recently, oldest sample first, and how its last read went."""

    name: str
    samples: tuple[Sample, ...] = ()
    error: str | None = None
    """Why the last read failed (unreachable, query error, empty, NaN); ``None`` when it worked."""
    stale_after: float = math.inf

    @property
    def latest(self) -> Sample | None:
        return self.samples[-1] if self.samples else None


def is_stale(window: SensorWindow | None, now: float) -> str | None:
    """Why ``window`` cannot be trusted at ``now``, or ``None`` when it is fresh."""
    if window is None:
        return "never read"
    if window.error:
        return window.error
    latest = window.latest
    if latest is None:
        return "no data"
    if now - latest.t > window.stale_after:
        return f"newest sample is {now - latest.t:.1f}s old (stale after {window.stale_after:.1f}s)"
    return None


@dataclass(frozen=True)
class RuleState:
    """Persisted state of one rule: whether its condition holds since when, and if it fired."""

    firing: bool = False
    since: float | None = None
    """When the condition started to hold (pending, then firing); ``None`` when it does not."""
    fired_at: float | None = None
    """When it last started firing (the episode id used in idempotency keys)."""
    cleared_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"firing": self.firing, "since": self.since, "fired_at": self.fired_at, "cleared_at": self.cleared_at}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RuleState:
        return cls(
            firing=bool(data.get("firing")),
            since=data.get("since"),
            fired_at=data.get("fired_at"),
            cleared_at=data.get("cleared_at"),
        )


@dataclass(frozen=True)
class Decision:
    """One thing the agent decided; recorded in the audit log and applied to the state."""

    kind: str
    """``rule`` (transition), ``action`` (planned/skipped), ``recommend`` (scaling history), ``consume`` (message)."""
    t: float
    rule: str | None = None
    event: str | None = None
    """For ``rule``: ``pending``, ``fire``, ``clear``, ``reset``."""
    action: str | None = None
    action_kind: str | None = None
    status: str | None = None
    """For ``action``: ``planned`` or ``skipped``; the executor adds ``ok``/``failed``/``dry-run``."""
    reason: str = ""
    key: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    inputs: Mapping[str, Any] = field(default_factory=dict)
    state: Mapping[str, Any] | None = None
    message_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if v not in (None, "", {}) or k in ("kind", "t")}
        out["time"] = iso(self.t)
        return out


@dataclass
class _Eval:
    """Result of evaluating one rule at ``now``: True/False, or None when unknown."""

    value: bool | None
    since: float | None = None
    reason: str = ""


# -- rule evaluation -----------------------------------------------------------------------------------


def _run_start(samples: Sequence[Sample], cond: Callable[[float], bool]) -> float | None:
    """Time of the first sample of the trailing run of samples satisfying ``cond``."""
    start = None
    for s in reversed(samples):
        if not cond(s.v):
            break
        start = s.t
    return start


def _eval_rule(rule: Rule, windows: Mapping[str, SensorWindow], states: Mapping[str, RuleState], now: float) -> _Eval:
    if isinstance(rule, AnyOf | AllOf):
        parts = [_eval_rule(r, windows, states, now) for r in rule.rules]
        values = [p.value for p in parts]
        decisive = isinstance(rule, AnyOf)
        own = states.get(rule.name, RuleState())
        holding = [p.value is True or p.since is not None for p in parts]  # holds now, long enough or not yet
        if own.firing and (any(holding) if decisive else all(holding)):
            # a firing composite stays firing while its condition holds: its parts keep no state of their own, so
            # a part whose samples restarted (a gap in the sensor's data) is "holding, not for long enough yet",
            # which must not clear the composite and start a new episode (a second run for one degradation)
            return _Eval(True, own.since)
        if decisive in values:
            hits = [p.since for p in parts if p.value is decisive and p.since is not None]
            since = (min(hits) if isinstance(rule, AnyOf) else max(hits)) if hits else now
            return _Eval(decisive, since if decisive else None)
        if None in values:
            return _Eval(None, reason="; ".join(p.reason for p in parts if p.value is None))
        if isinstance(rule, AllOf):
            return _Eval(True, max(p.since or now for p in parts))
        return _Eval(False)

    for name in rule.sensors():
        why = is_stale(windows.get(name), now)
        if why:
            return _Eval(None, reason=f"sensor {name!r} stale: {why}")
    prev = states.get(rule.name, RuleState())

    if isinstance(rule, Threshold):
        samples = windows[rule.sensor].samples
        op = _OPS[rule.op]
        start = _run_start(samples, lambda v: op(v, rule.value))
        if start is None:
            return _Eval(False)
        since = min(start, prev.since) if prev.since is not None else start
        return _Eval(now - since >= rule.for_, since)

    if isinstance(rule, Hysteresis):
        samples = windows[rule.sensor].samples
        latest = samples[-1].v
        beyond_fire = (lambda v: v >= rule.fire) if rule.high else (lambda v: v <= rule.fire)
        past_clear = latest <= rule.clear if rule.high else latest >= rule.clear
        if prev.firing:
            return _Eval(False) if past_clear else _Eval(True, prev.since)
        start = _run_start(samples, beyond_fire)
        if start is None:
            return _Eval(False)
        since = min(start, prev.since) if prev.since is not None else start
        return _Eval(now - since >= rule.for_, since)

    if isinstance(rule, RateOfChange):
        recent = [s for s in windows[rule.sensor].samples if s.t >= now - rule.window]
        if len(recent) < rule.min_samples:
            return _Eval(
                None, reason=f"sensor {rule.sensor!r}: {len(recent)} sample(s) in {rule.window:g}s, need {rule.min_samples}"
            )
        slope = _slope(recent) * rule.per
        ok = _OPS[rule.op](slope, rule.value)
        return _Eval(ok, (prev.since or now) if ok else None, reason=f"slope {slope:.4g}/{rule.per:g}s")

    raise TypeError(f"unknown rule type {type(rule).__name__}")


def _slope(samples: Sequence[Sample]) -> float:
    n = len(samples)
    mt = sum(s.t for s in samples) / n
    mv = sum(s.v for s in samples) / n
    den = sum((s.t - mt) ** 2 for s in samples)
    if den == 0:
        return 0.0
    return sum((s.t - mt) * (s.v - mv) for s in samples) / den


# -- the decision function ------------------------------------------------------------------------------


def rule_key_vars(
    agent: Agent, rule: str | None, state: RuleState | None, now: float, windows: Mapping[str, SensorWindow]
) -> dict[str, Any]:
    """Values templates can use (see ``spec.agent.TEMPLATE_VARS``)."""
    since = state.since if state and state.since is not None else now
    fired = state.fired_at if state and state.fired_at is not None else now
    out: dict[str, Any] = {
        "agent": agent.name,
        "rule": rule or "always",
        "now": int(now),
        "now_iso": iso(now),
        "since": int(since),
        "since_iso": iso(since),
        "fired_at": int(fired),
        "date": datetime.fromtimestamp(now, UTC).strftime("%Y%m%d"),
        "window": f"{int(since)}..{int(now)}",
    }
    for name, w in windows.items():
        if w.latest is not None:
            out[f"sensor.{name}"] = round(w.latest.v, 6)
    return out


def decide(
    agent: Agent,
    windows: Mapping[str, SensorWindow],
    state: Mapping[str, Any],
    now: float,
) -> list[Decision]:
    """Everything the agent decides at ``now`` — pure: same inputs, same decisions.

    ``state`` is the persisted knowledge (``AgentState.snapshot()``): ``rules`` (name →
    RuleState JSON), ``last_attempt`` (action → epoch), ``keys`` (idempotency key → record with
    ``result``), ``recommendations`` (action → [[t, replicas]]), ``fallback`` (action → consecutive
    failed/stale reads of its sensor), ``inbox`` (messages), ``paused``.
    """
    rule_states = {k: RuleState.from_json(v) for k, v in (state.get("rules") or {}).items()}
    out: list[Decision] = []
    evals: dict[str, _Eval] = {}
    new_states: dict[str, RuleState] = {}

    for rule in agent.rules:
        if isinstance(rule, OnMessage):
            continue
        ev = _eval_rule(rule, windows, rule_states, now)
        evals[rule.name] = ev
        prev = rule_states.get(rule.name, RuleState())
        new, event = _transition(prev, ev, now)
        new_states[rule.name] = new
        if event:
            out.append(
                Decision(
                    kind="rule",
                    t=now,
                    rule=rule.name,
                    event=event,
                    reason=ev.reason,
                    inputs=_inputs(rule.sensors(), windows, now),
                    state=new.to_json(),
                )
            )

    if state.get("paused"):
        return out

    for plan in agent.plans:
        if plan.when is None:
            out.extend(_plan_actions(agent, plan, None, None, windows, state, now))
            continue
        rule = agent.rule(plan.when)
        if isinstance(rule, OnMessage):
            out.extend(_message_actions(agent, plan, rule, windows, state, now))
            continue
        rs = new_states[rule.name]
        ev = evals[rule.name]
        if ev.value is None or not rs.firing:
            continue  # unknown or not firing: never act on stale data
        out.extend(_plan_actions(agent, plan, rule.name, rs, windows, state, now))
    return out


def _transition(prev: RuleState, ev: _Eval, now: float) -> tuple[RuleState, str | None]:
    if ev.value is None:
        return prev, None  # unknown: keep what we knew, decide nothing
    if ev.value:
        if prev.firing:
            return prev, None
        return RuleState(firing=True, since=ev.since, fired_at=now, cleared_at=prev.cleared_at), "fire"
    if ev.since is not None:  # condition holds but not long enough yet (``for``)
        if prev.since == ev.since:
            return prev, None
        return RuleState(firing=False, since=ev.since, fired_at=prev.fired_at, cleared_at=prev.cleared_at), "pending"
    if prev.firing:
        return RuleState(firing=False, since=None, fired_at=prev.fired_at, cleared_at=now), "clear"
    if prev.since is not None:
        return RuleState(firing=False, since=None, fired_at=prev.fired_at, cleared_at=prev.cleared_at), "reset"
    return prev, None


def _inputs(sensors: Sequence[str], windows: Mapping[str, SensorWindow], now: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in dict.fromkeys(sensors):
        w = windows.get(name)
        latest = w.latest if w else None
        out[name] = {
            "value": latest.v if latest else None,
            "age": round(now - latest.t, 3) if latest else None,
            "stale": is_stale(w, now),
        }
    return out


def cooldown_left(action: Action, state: Mapping[str, Any], now: float) -> float | None:
    """Seconds ``action`` must still wait since its last attempt, or ``None`` when it may act."""
    last = (state.get("last_attempt") or {}).get(action.name)
    if last is not None and now - last < action.cooldown:
        return float(action.cooldown - (now - last))
    return None


def _gate(action: Action, key: str, state: Mapping[str, Any], now: float) -> str | None:
    """Why ``action`` with ``key`` must not be planned now, or ``None``."""
    record = (state.get("keys") or {}).get(key)
    if record and record.get("result") in ("ok", "pending", "dry-run"):
        return f"idempotency key {key!r} already {record['result']}"
    left = cooldown_left(action, state, now)
    if left is not None:
        return f"cooldown: {left:.1f}s left"
    return None


def _plan_actions(
    agent: Agent,
    plan: Plan,
    rule: str | None,
    rs: RuleState | None,
    windows: Mapping[str, SensorWindow],
    state: Mapping[str, Any],
    now: float,
    extra: Mapping[str, Any] | None = None,
) -> list[Decision]:
    values = {**rule_key_vars(agent, rule, rs, now, windows), **(extra or {})}
    out: list[Decision] = []
    for action in plan.actions:
        values["action"] = action.name
        if isinstance(action, ScaleDeployment):
            out.extend(_scale(_Scaling(agent, action, rule, windows, state, now)))
            continue
        template = action.idempotency_key
        if template == Action.DEFAULT_KEY and "message.id" in values:
            template = "{agent}/{rule}/{action}/{message.id}"  # once per message
        elif template == Action.DEFAULT_KEY and plan.on == "while":
            template += "/{now}"  # every evaluation, under the cooldown
        try:
            key = render(template, values)
            params = {name: render(t, values) for name, t in action.templates().items() if name != "idempotency_key"}
        except AgentDefinitionError as err:  # e.g. {sensor.y} with no sample yet, {message.f} not sent
            out.append(
                Decision(
                    kind="action",
                    t=now,
                    rule=rule,
                    action=action.name,
                    action_kind=action.kind,
                    status="skipped",
                    reason=str(err),
                )
            )
            continue
        if _gate(action, key, state, now):
            continue  # done already, or waiting out its cooldown: the audit log has the attempt
        out.append(
            Decision(
                kind="action",
                t=now,
                rule=rule,
                action=action.name,
                action_kind=action.kind,
                status="planned",
                key=key,
                params=params,
                inputs=_inputs(agent.rule(rule).sensors() if rule else (), windows, now),
            )
        )
    return out


def _message_actions(
    agent: Agent,
    plan: Plan,
    rule: OnMessage,
    windows: Mapping[str, SensorWindow],
    state: Mapping[str, Any],
    now: float,
) -> list[Decision]:
    out: list[Decision] = []
    for msg in state.get("inbox") or []:
        if msg.get("topic") != rule.topic:
            continue
        mid = str(msg.get("id"))
        extra = {f"message.{k}": v for k, v in (msg.get("payload") or {}).items()}
        extra["message.from"] = msg.get("from", "")
        extra["message.id"] = mid
        received = float(msg.get("t", now))
        rs = RuleState(firing=True, since=received, fired_at=received)
        planned = _plan_actions(agent, plan, rule.name, rs, windows, state, now, extra)
        bad = [d for d in planned if d.status == "skipped"]
        if bad:  # the message lacks what the plan needs: drop it, saying why, rather than retry forever
            out.append(Decision(kind="consume", t=now, rule=rule.name, message_id=mid, reason=f"dropped: {bad[0].reason}"))
            continue
        # Consume the message only when no action is waiting on its cooldown: nothing is dropped.
        waiting = any(_gate(a, "", state, now) for a in plan.actions if not isinstance(a, ScaleDeployment))
        if planned or not waiting:
            out.extend(planned)
            out.append(Decision(kind="consume", t=now, rule=rule.name, message_id=mid, reason=f"topic {rule.topic!r}"))
    return out


@dataclass(frozen=True)
class _Scaling:
    """What one ``ScaleDeployment`` decision reads at ``now``: the agent, the action, the rule that
    planned it (``None`` for an unconditional plan), the sensor windows and the persisted state.

    Passed whole to ``_scale``, ``_fallback`` and ``_recommend`` (which read it and never change it),
    so the decision stays a pure function of these six values."""

    agent: Agent
    action: ScaleDeployment
    rule: str | None
    windows: Mapping[str, SensorWindow]
    state: Mapping[str, Any]
    now: float


def _scale(ctx: _Scaling) -> list[Decision]:
    action, windows, now = ctx.action, ctx.windows, ctx.now
    metric, replicas = windows.get(action.sensor), windows.get(action.replicas_sensor)
    if is_stale(replicas, now):
        return []  # no action on stale data
    assert replicas is not None and replicas.latest
    current = int(replicas.latest.v)
    failures = int((ctx.state.get("fallback") or {}).get(action.name, 0))
    if is_stale(metric, now):
        idle = _idle_for(action, windows, now)
        if idle is not None and idle >= action.down_stabilization:
            # No requests (p95 of nothing is NaN) for the whole down window: real data, scale toward min.
            reason = f"idle for {idle:.0f}s"
            return _recommend(ctx, current, action.min_replicas, reason, 0)
        return _fallback(ctx, current, failures + 1, is_stale(metric, now) or "")
    assert metric is not None and metric.latest
    value = metric.latest.v
    if value <= action.activation_threshold:
        reason = f"{action.sensor}={value:.4g} at most activation threshold {action.activation_threshold:g}: inactive"
        return _recommend(ctx, current, action.min_replicas, reason, 0)
    if action.policy == "target":
        ratio = value / action.target
        if abs(ratio - 1) <= action.tolerance:
            raw = current
        else:
            raw = math.ceil(max(current, 1) * ratio) if ratio > 1 else math.ceil(current * ratio)
    elif action.policy == "capacity":
        # The load per replica against what one serves; within tolerance of it, nothing moves.
        within = current > 0 and abs(value / (current * action.target) - 1) <= action.tolerance
        raw = current if within else math.ceil(value / action.target)
    else:
        raw = (
            current + action.step
            if value > action.target
            else current - action.step
            if value < action.target * action.low
            else current
        )
    reason = f"{action.sensor}={value:.4g} target {action.target:g}"
    if failures > action.failure_threshold and action.fallback_replicas is not None:
        reason += f" (data is back after {failures} failed reads: fallback ends)"
    return _recommend(ctx, current, raw, reason, 0)


def fallback_replicas(behavior: str, fallback: int, current: int) -> int:
    """The replicas KEDA's fallback holds (keda pkg/fallback/fallback.go, ``doFallback``): ``static``
    the configured ones, ``currentReplicas`` the current ones, ``currentReplicasIfHigher`` the larger,
    ``currentReplicasIfLower`` the smaller; anything else the configured ones, as its ``default`` case."""
    if behavior == "currentReplicas":
        return current
    if behavior == "currentReplicasIfHigher":
        return max(current, fallback)
    if behavior == "currentReplicasIfLower":
        return min(current, fallback)
    return fallback


def _fallback(ctx: _Scaling, current: int, failures: int, why: str) -> list[Decision]:
    """Count one more failed/stale read; beyond ``failure_threshold`` hold the fallback (KEDA's
    ``NumberOfFailures > FailureThreshold`` in ``GetMetricsWithFallback``)."""
    action, state, now = ctx.action, ctx.state, ctx.now
    history = [(t, n) for t, n in (state.get("recommendations") or {}).get(action.name, [])]
    counted = Decision(kind="recommend", t=now, action=action.name, params={"history": history, "failures": failures})
    if action.fallback_replicas is None or failures <= action.failure_threshold:
        return [counted]  # no data, no fallback (yet): no action
    raw = fallback_replicas(action.fallback_behavior, action.fallback_replicas, current)
    reason = f"fallback {action.fallback_behavior} after {failures} failed reads of {action.sensor} ({why})"
    return _recommend(ctx, current, raw, reason, failures, stabilise=False)


def _idle_for(action: ScaleDeployment, windows: Mapping[str, SensorWindow], now: float) -> float | None:
    """Seconds the idle sensor has read at most ``idle_below`` without a break, or ``None`` (not idle / unknown)."""
    if not action.idle_sensor:
        return None
    traffic = windows.get(action.idle_sensor)
    if is_stale(traffic, now) or traffic is None:
        return None  # no data about traffic is not "no traffic"
    start = _run_start(traffic.samples, lambda v: v <= action.idle_below)
    return None if start is None else now - start


def _recommend(ctx: _Scaling, current: int, raw: int, reason: str, failures: int, *, stabilise: bool = True) -> list[Decision]:
    """Bound ``raw``, stabilise it over the recommendation history and plan the scale when it moves.

    ``failures``: consecutive failed/stale reads so far (0 with data); a fallback is not stabilised,
    as KEDA's replaces the metric the HPA reads, and is not added to the history."""
    action, state, now, windows = ctx.action, ctx.state, ctx.now, ctx.windows
    raw = max(action.min_replicas, min(action.max_replicas, raw))
    history = [(t, n) for t, n in (state.get("recommendations") or {}).get(action.name, [])]
    if stabilise:
        history.append((now, raw))
    horizon = max(action.up_stabilization, action.down_stabilization)
    history = [(t, n) for t, n in history if t >= now - horizon]
    params: dict[str, Any] = {"history": history, "failures": failures}
    out = [Decision(kind="recommend", t=now, action=action.name, params=params)]
    if not stabilise:
        desired = raw
    elif raw > current:
        desired = min([n for t, n in history if t >= now - action.up_stabilization] or [raw])
        desired = max(desired, current)
    elif raw < current:
        desired = max([n for t, n in history if t >= now - action.down_stabilization] or [raw])
        desired = min(desired, current)
    else:
        desired = current
    if desired == current:
        return out
    last = (state.get("last_attempt") or {}).get(action.name)
    if last is not None and now - last < action.cooldown:
        return out
    values = rule_key_vars(ctx.agent, ctx.rule, None, now, windows) | {"action": action.name}
    out.append(
        Decision(
            kind="action",
            t=now,
            rule=ctx.rule,
            action=action.name,
            action_kind=action.kind,
            status="planned",
            key=render(action.idempotency_key, values),
            params={
                "deployment": action.deployment,
                "replicas": desired,
                "from": current,
                "raw": raw,
                **({"fallback": action.fallback_behavior, "failures": failures} if not stabilise else {}),
            },
            inputs=_inputs(
                [action.sensor, action.replicas_sensor, *([action.idle_sensor] if action.idle_sensor else [])], windows, now
            ),
            reason=f"{reason}: {current} → {desired}",
        )
    )
    return out
