"""Driving the agent's roll-outs: each step's predictors on the platform, its analysis measured on Prometheus.

Owns one thing: ``RolloutDriver.tick(now)`` — one pass over the roll-outs of the agent's book
(``agents/rollouts.py``) that are not settled, called by the agent loop each iteration (leader only).
For each it makes the platform's ``spec.predictors`` those of the roll-out's state (``spec/rollout.py``
``predictors``) — again whenever the deployment lost them (its serving engine was killed and came
back with the manifest it had) — takes the analysis measurements that are due (``spec/analysis.py``
``next_due``) with Argo Rollouts' Prometheus provider's result shape (a vector is a list of values:
``result[0]``; a scalar a number; a failed query is an Error measurement), and once the run's phase
is known records the outcome: the state machine moves (Successful → next step, Failed/Error → abort,
Inconclusive → paused), and the new predictors are set. At Healthy the registered model's alias
moves to the canary's version (the old one kept as ``previous``). Every transition is persisted in
the book *before* the platform is changed, and a roll-out is settled only after its last change
landed, so a restarted agent finishes what a crash interrupted and never leaves a split unwatched.
"""

from __future__ import annotations

import copy
import math
import threading
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from ..errors import ScanflowError
from ..spec.analysis import (
    ERROR,
    FAILED,
    RUNNING,
    Measurement,
    Metric,
    measurement_phase,
    metric_phase,
    next_due,
    render_query,
    run_phase,
)
from ..spec.rollout import DEGRADED, HEALTHY, RolloutState, parse_steps, predictors
from .rollouts import RolloutBook

__all__ = ["RolloutDriver", "prometheus_result"]


def prometheus_result(url: str, query: str, now: float, timeout: float = 5.0) -> Any:
    """The value of an instant query as Argo Rollouts' Prometheus provider gives it to conditions:
    a vector → the list of its values, a scalar → the number. ``ScanflowError`` when it fails."""
    try:
        resp = httpx.get(f"{url.rstrip('/')}/api/v1/query", params={"query": query, "time": f"{now:.3f}"}, timeout=timeout)
    except httpx.HTTPError as err:
        raise ScanflowError(f"Prometheus at {url} unreachable: {type(err).__name__}") from err
    try:
        body = resp.json()
    except ValueError:
        body = {}
    if resp.status_code != 200 or body.get("status") != "success":
        raise ScanflowError(f"Prometheus refused {query!r}: HTTP {resp.status_code} {str(body.get('error', ''))[:200]}")
    data = body["data"]
    if data["resultType"] == "scalar":
        return float(data["result"][1])
    if data["resultType"] == "vector":
        return [float(series["value"][1]) for series in data["result"]]
    raise ScanflowError(f"query {query!r} returned a {data['resultType']}: use an instant vector or scalar")


class RolloutDriver:
    """One agent's roll-outs, moved on by ``tick``; ``start``, ``promote`` and ``abort`` for actions and people."""

    def __init__(
        self,
        book: RolloutBook,
        platform: Any,
        prometheus: str,
        *,
        set_alias: Callable[[str, str, str], None],
        get_alias: Callable[[str, str], str | None],
        record: Callable[[dict[str, Any]], Any],
        query: Callable[[str, str, float], Any] = prometheus_result,
    ) -> None:
        self.book = book
        self.platform = platform
        self.prometheus = prometheus
        self._set_alias = set_alias
        self._get_alias = get_alias
        self._record = record
        self._query = query
        self._lock = threading.RLock()  # the loop's tick and a person's API call never move a roll-out at once

    # -- people and actions ----------------------------------------------------------------------
    def start(self, spec: Mapping[str, Any], model_uri: str, version: str, now: float) -> dict[str, Any]:
        with self._lock:
            return self._start(spec, model_uri, version, now)

    def _start(self, spec: Mapping[str, Any], model_uri: str, version: str, now: float) -> dict[str, Any]:
        """Record a roll-out of ``spec['deployment']`` to ``model_uri`` and set its first step's predictors."""
        name = str(spec["deployment"])
        status = self.platform.get_deployment(name)
        own = status.predictors[0] if status.predictors else None
        stable = dict(own.spec) if own is not None and own.spec else {}
        stable = stable or {
            "name": status.predictor,
            "replicas": status.replicas,
            "graph": {"name": "classifier", "type": "MODEL", "modelUri": status.model_uri},
        }
        for key in ("traffic", "shadow"):
            stable.pop(key, None)
        canary = copy.deepcopy(stable)
        canary["name"] = spec.get("canary") or "canary"
        canary.setdefault("graph", {})["modelUri"] = model_uri
        entry = self.book.start(
            name,
            {**dict(spec), "stable": stable, "canary": canary, "version": version, "model_uri": model_uri},
            now=now,
        )
        self._record({"kind": "rollout", "t": now, "rollout": name, "event": "start", "model_uri": model_uri, "step": 0})
        self._settle(name, now)
        return entry

    def promote(self, name: str, now: float) -> RolloutState:
        with self._lock:
            return self._promote(name, now)

    def _promote(self, name: str, now: float) -> RolloutState:
        """A person's promote (a paused roll-out goes on as if its analysis had succeeded)."""
        state = self.book.promote(name)
        self._record({"kind": "rollout", "t": now, "rollout": name, "event": "promote", **_brief(state)})
        self._settle(name, now)
        return state

    def abort(self, name: str, reason: str, now: float) -> RolloutState:
        with self._lock:
            return self._abort(name, reason, now)

    def _abort(self, name: str, reason: str, now: float) -> RolloutState:
        """A person's abort: traffic back to stable, canary removed, aliases unchanged."""
        state = self.book.abort(name, reason)
        self._record({"kind": "rollout", "t": now, "rollout": name, "event": "abort", **_brief(state)})
        self._settle(name, now)
        return state

    # -- the loop ---------------------------------------------------------------------------------
    def tick(self, now: float, hold: Callable[[], bool] = lambda: False) -> None:
        """One pass, unless ``hold()`` says the agent is paused — asked once no other call is moving a roll-out,
        so a pause that ``wait_idle`` has returned from is never followed by a measurement or a change."""
        with self._lock:
            if not hold():
                self._tick(now)

    def wait_idle(self) -> None:
        """Return once no tick or person's call is moving a roll-out (the one in flight has finished)."""
        with self._lock:
            pass

    def _tick(self, now: float) -> None:
        """Move every unsettled roll-out on: predictors as its state says, due measurements, decisions."""
        for name in self.book.unsettled():
            self._settle(name, now)
            entry = self.book.get(name)
            if entry["state"]["phase"] != "Progressing":
                continue
            outcome, reason = self._measure(name, entry, now)
            if outcome == RUNNING:
                continue
            decided = FAILED if outcome == ERROR else outcome
            measured = self.book.get(name).get("measurements") or {}  # the ones this tick took included
            state = self.book.record(name, decided, reason, run={"phase": outcome, "finished_at": now, "measurements": measured})
            self._record(
                {"kind": "rollout", "t": now, "rollout": name, "event": "analysis", "outcome": outcome, "reason": reason}
                | _brief(state)
            )
            self._settle(name, now)

    def _settle(self, name: str, now: float) -> None:
        """Make the platform's predictors the state's; at the end move the alias and mark the roll-out settled."""
        entry = self.book.get(name)
        if entry.get("settled"):
            return
        spec = entry["spec"]
        state = RolloutState(**entry["state"])
        wanted = predictors(state, parse_steps(spec["steps"]), spec["stable"], spec["canary"])
        key = f"{state.step}/{state.phase}"
        if entry.get("applied") != key or not _same(self.platform.get_deployment(spec["deployment"]), wanted):
            self.platform.set_predictors(spec["deployment"], wanted)
            self.book.applied(name, key, now, new_step=entry.get("applied") != key)
            self._record(
                {
                    "kind": "rollout",
                    "t": now,
                    "rollout": name,
                    "event": "split",
                    "predictors": [
                        {"name": p["name"], "traffic": p.get("traffic", 0), "shadow": bool(p.get("shadow"))} for p in wanted
                    ],
                }
                | _brief(state)
            )
        if state.phase == HEALTHY and spec.get("model") and spec.get("version"):
            model, alias, version = spec["model"], spec.get("alias") or "champion", str(spec["version"])
            old = self._get_alias(model, alias)
            if old != version:
                if old:
                    self._set_alias(model, "previous", old)
                self._set_alias(model, alias, version)
                self._record(
                    {
                        "kind": "rollout",
                        "t": now,
                        "rollout": name,
                        "event": "promoted",
                        "alias": f"{model}@{alias}",
                        "version": version,
                        "previous": old,
                    }
                )
        if state.phase in (HEALTHY, DEGRADED):
            self.book.settle(name, now)

    def _measure(self, name: str, entry: Mapping[str, Any], now: float) -> tuple[str, str]:
        spec = entry["spec"]
        metrics = [Metric.from_spec(m) for m in spec.get("analysis") or []]
        args = {"deployment": spec["deployment"], "stable": spec["stable"]["name"], "canary": spec["canary"]["name"]}
        started = float(entry.get("step_started_at") or now)
        measured = entry.get("measurements") or {}
        phases, reasons = [], []
        for metric in metrics:
            taken = [Measurement(**m) for m in measured.get(metric.name, [])]
            due = next_due(metric, started, taken)
            if due is not None and due <= now:
                taken.append(self._one(metric, args, now))
                self.book.measure(name, metric.name, taken[-1])
            phase = metric_phase(metric, taken)
            phases.append(phase)
            if phase not in (RUNNING, "Successful"):
                last = next((m.message for m in reversed(taken) if m.message), "")
                reasons.append(f"{metric.name} {phase}" + (f" ({last})" if last else ""))
        return run_phase(phases), "; ".join(reasons)

    def _one(self, metric: Metric, args: Mapping[str, str], now: float) -> Measurement:
        query = render_query(metric.query, args)
        try:
            value = self._query(self.prometheus, query, now)
        except ScanflowError as err:
            return Measurement(ERROR, None, now, now, str(err))
        phase, message = measurement_phase(metric, value)
        return Measurement(phase, _json_safe(value), now, now, message)


def _same(status: Any, wanted: list[dict[str, Any]]) -> bool:
    """The deployment serves the wanted split: same predictors, shares and shadows, and it is available."""
    have = [(p.name, p.traffic, p.shadow) for p in status.predictors]
    want = [(p["name"], p.get("traffic", 0) if not p.get("shadow") else 0, bool(p.get("shadow"))) for p in wanted]
    if len(want) == 1:
        want = [(want[0][0], 100, False)]
    return status.state == "Available" and have == want


def _json_safe(value: Any) -> Any:
    """NaN (no data in a ratio) kept as None: the book is JSON."""
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def _brief(state: RolloutState) -> dict[str, Any]:
    return {"step": state.step, "phase": state.phase, **({"message": state.message} if state.message else {})}
