"""The agent's roll-outs in its persisted state: start once, record each analysis, promote, abort, resume.

Owns one thing: the ``rollouts`` entry of an agent's state (``agents/state.py``), written through
``AgentState.update()`` — persisted *before* the traffic change it guards is made, so a restarted
agent reads where each roll-out was (step, phase, the analysis runs and their measurements) and
goes on from there. The transitions themselves are ``spec/rollout.py``'s pure functions; a
roll-out of a name that is still Progressing or Paused is never started a second time.

The book is the one record of a roll-out: readers outside the agent (the server's Deployments view,
``rollout status`` of an agent that is not running) read it from the agent's state file with
``home_rollouts``/``summary``, never from a copy kept elsewhere.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..errors import AgentError
from ..spec.analysis import Measurement
from ..spec.rollout import DEGRADED, HEALTHY, RolloutState, Step, abort, decide, parse_steps, predictors, promote
from .state import AgentState

__all__ = ["RolloutBook", "home_rollouts", "summary"]

_ACTIVE = ("Progressing", "Paused")


class RolloutBook:
    """Roll-outs kept in one agent's state, by name."""

    def __init__(self, state: AgentState) -> None:
        self.state = state

    def get(self, name: str) -> dict[str, Any]:
        """The stored roll-out ``name``; ``AgentError`` naming the known ones when there is none."""
        book = self.state.get("rollouts", {}) or {}
        if name not in book:
            known = ", ".join(sorted(book)) or "none"
            raise AgentError(f"no roll-out named {name!r} (known: {known}) — start one first")
        return dict(book[name])

    def active(self) -> list[str]:
        """The roll-outs still Progressing or Paused: the ones a restarted agent resumes."""
        book = self.state.get("rollouts", {}) or {}
        return sorted(n for n, r in book.items() if r["state"]["phase"] in _ACTIVE)

    def start(self, name: str, spec: Mapping[str, Any], *, now: float) -> dict[str, Any]:
        """Record a new roll-out at its first step; ``AgentError`` when one of that name is still active."""
        parse_steps(spec.get("steps") or [])  # refuse bad steps before anything is written
        with self.state.update() as data:
            book = data.setdefault("rollouts", {})
            old = book.get(name)
            if old is not None and old["state"]["phase"] in _ACTIVE:
                raise AgentError(
                    f"roll-out {name!r} is already {old['state']['phase']} at step {old['state']['step']} — "
                    f"promote or abort it before starting another"
                )
            book[name] = {
                "spec": dict(spec),
                "state": asdict(RolloutState()),
                "runs": [],
                "started_at": now,
                "measurements": {},
                "step_started_at": now,
            }
        return self.get(name)

    def unsettled(self) -> list[str]:
        """Roll-outs whose last change may not have reached the platform yet (active, or ended and not settled)."""
        book = self.state.get("rollouts", {}) or {}
        return sorted(n for n, r in book.items() if r["state"]["phase"] in _ACTIVE or not r.get("settled"))

    def applied(self, name: str, key: str, now: float, new_step: bool) -> None:
        """The platform now serves the split of state ``key``; a new step starts its analysis afresh."""
        with self.state.update() as data:
            entry = data["rollouts"][name]
            entry["applied"] = key
            if new_step:
                entry["step_started_at"] = now
                entry["measurements"] = {}

    def measure(self, name: str, metric: str, measurement: Measurement) -> None:
        """One more measurement of ``metric`` in the current step's analysis (persisted at once)."""
        with self.state.update() as data:
            entry = data["rollouts"][name]
            entry.setdefault("measurements", {}).setdefault(metric, []).append(asdict(measurement))

    def settle(self, name: str, now: float) -> None:
        """The ended roll-out's last change landed (split and aliases): nothing left to watch."""
        with self.state.update() as data:
            data["rollouts"][name]["settled"] = now

    def _move(self, name: str, change: Any, run: Mapping[str, Any] | None = None) -> RolloutState:
        with self.state.update() as data:
            entry = (data.get("rollouts") or {}).get(name)
            if entry is None:
                raise AgentError(f"no roll-out named {name!r} — start one first")
            steps: Sequence[Step] = parse_steps(entry["spec"].get("steps") or [])
            new = change(RolloutState(**entry["state"]), steps)
            if run is not None:
                entry["runs"].append({**run, "step": entry["state"]["step"]})
            entry["state"] = asdict(new)
        return new

    def record(self, name: str, outcome: str, reason: str = "", run: Mapping[str, Any] | None = None) -> RolloutState:
        """The analysis of the current step ended with ``outcome`` (its run and measurements kept in ``runs``)."""
        return self._move(name, lambda s, steps: decide(s, steps, outcome, reason), run)

    def promote(self, name: str) -> RolloutState:
        """A person (or the agent API) promotes a paused roll-out to its next step."""
        return self._move(name, lambda s, steps: promote(s, steps))

    def abort(self, name: str, reason: str) -> RolloutState:
        """A person (or the agent API) aborts: the roll-out is Degraded, traffic goes back to stable."""
        return self._move(name, lambda s, steps: abort(s, reason))

    def finished(self, name: str) -> bool:
        return self.get(name)["state"]["phase"] in (HEALTHY, DEGRADED)


def home_rollouts(home: Path) -> dict[str, dict[str, Any]]:
    """The roll-out of each deployment in the books of this home's agents (``<home>/agents/*/state.json``), read only.

    Each entry is the book's, with ``agent`` (who drives it) and ``agent_paused`` (a paused agent holds the split).
    Where several agents rolled out one deployment, the active roll-out wins, else the one started last.
    """
    found: dict[str, dict[str, Any]] = {}
    root = Path(home) / "agents"
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
    for folder in folders:
        try:
            data = json.loads((folder / "state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # an agent that never ran (or a state being replaced) has no roll-outs to show
        book = data.get("rollouts") if isinstance(data, dict) else None
        for name, entry in (book or {}).items():
            if not isinstance(entry, dict) or not isinstance(entry.get("state"), dict):
                continue
            entry = {**entry, "agent": folder.name, "agent_paused": bool(data.get("paused"))}
            old = found.get(name)
            if old is None or _rank(entry) > _rank(old):
                found[name] = entry
    return found


def _rank(entry: Mapping[str, Any]) -> tuple[bool, float]:
    return entry["state"].get("phase") in _ACTIVE, float(entry.get("started_at") or 0)


def summary(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A roll-out as people read it: step (of how many), the canary's traffic weight, phase, canary, agent, why.

    The weight is the canary's ``traffic`` in the predictors its state means (``spec/rollout.py`` ``predictors``):
    what the agent makes the deployment serve. ``held`` says the split is held by a paused agent."""
    spec, state = entry["spec"], RolloutState(**entry["state"])
    steps = parse_steps(spec.get("steps") or [])
    canary = spec.get("canary") or {}
    wanted = predictors(state, steps, spec.get("stable") or {"name": "stable"}, {"name": "canary", **canary})
    mine = next((p for p in wanted if p.get("name") == canary.get("name", "canary")), None)
    out: dict[str, Any] = {
        "step": f"{state.step}/{len(steps)}",
        "weight": 0 if mine is None or mine.get("shadow") else int(mine.get("traffic", 0)),
        "phase": state.phase,
    }
    if mine is not None and mine.get("shadow"):
        out["shadow"] = "mirrored"
    out["canary"] = spec.get("model_uri") or canary.get("name")
    if entry.get("agent"):
        out["agent"] = entry["agent"]
    if entry.get("agent_paused") and state.phase in _ACTIVE:
        out["held"] = "the agent is paused: the split is held until it resumes"
    if state.message:
        out["message"] = state.message
    return out
