"""A roll-out's steps and its state machine: where a roll-out is, and where an analysis outcome or a person moves it.

Owns one thing: the pure transitions of a canary roll-out (no I/O, no clock), and the SeldonDeployment
``spec.predictors`` each state means. Steps use Argo Rollouts' canary step ``setWeight`` (percent of
traffic to the canary, pkg/apis/rollouts/v1alpha1/types.go ``CanaryStep``) plus ``shadow: {}`` — this
project's step for Seldon's shadow predictor (a mirror of the traffic, answers discarded), which
Argo Rollouts has no step for. An analysis runs after each step (``spec/analysis.py`` decides it):

* Successful → the next step; after the last one the canary takes all traffic and the roll-out is
  ``Healthy`` (the caller then moves the MLflow aliases: challenger → champion, old one → previous);
* Failed (or Error) → ``Degraded`` at once, as Argo Rollouts aborts on a failed or errored step
  AnalysisRun (rollout/analysis.go ``reconcileStepBasedAnalysisRun``: ``pauseContext.AddAbort``): all
  traffic back to stable, canary removed, reason kept;
* Inconclusive → ``Paused`` (the same function: ``AddPauseCondition(PauseReasonInconclusiveAnalysis)``):
  the split is held until ``promote`` (as Successful) or ``abort``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..errors import SpecError
from .analysis import FAILED, INCONCLUSIVE, SUCCESSFUL

__all__ = [
    "DEGRADED",
    "HEALTHY",
    "PAUSED",
    "PROGRESSING",
    "RolloutState",
    "Step",
    "abort",
    "decide",
    "parse_steps",
    "predictors",
    "promote",
]

PROGRESSING, PAUSED, DEGRADED, HEALTHY = "Progressing", "Paused", "Degraded", "Healthy"


@dataclass(frozen=True)
class Step:
    """One step: the canary's traffic share in percent, or a shadow (``weight`` 0, ``shadow`` True)."""

    weight: int = 0
    shadow: bool = False


@dataclass(frozen=True)
class RolloutState:
    """Where a roll-out is: the current step, its phase, and why it stopped (``message``)."""

    step: int = 0
    phase: str = PROGRESSING
    message: str = ""


def parse_steps(steps: Sequence[Mapping[str, Any]]) -> tuple[Step, ...]:
    """The steps of a roll-out spec; ``SpecError`` naming the step for an unknown kind, a bad weight or a lowering weight."""
    out: list[Step] = []
    for i, step in enumerate(steps):
        if set(step) == {"shadow"}:
            out.append(Step(shadow=True))
            continue
        if set(step) != {"setWeight"}:
            raise SpecError(f"roll-out step {i} {dict(step)!r}: use setWeight: PERCENT or shadow: {{}}")
        weight = step["setWeight"]
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 < weight <= 100:
            raise SpecError(f"roll-out step {i}: setWeight {weight!r} must be a whole percent 1..100")
        if out and weight < out[-1].weight:
            raise SpecError(
                f"roll-out step {i}: setWeight {weight} is below the step before ({out[-1].weight}) — weights only grow"
            )
        out.append(Step(weight=weight))
    if not out:
        raise SpecError("roll-out without steps — list e.g. shadow: {}, setWeight: 10, setWeight: 50, setWeight: 100")
    return tuple(out)


def decide(state: RolloutState, steps: Sequence[Step], outcome: str, reason: str = "") -> RolloutState:
    """The state after the analysis of the current step ended with ``outcome``."""
    if state.phase != PROGRESSING:
        return state
    if outcome == SUCCESSFUL:
        if state.step + 1 >= len(steps):
            return RolloutState(len(steps), HEALTHY, "every step passed its analysis: the canary is stable")
        return replace(state, step=state.step + 1, message="")
    if outcome == FAILED:
        return replace(state, phase=DEGRADED, message=f"analysis failed at step {state.step}: {reason}".rstrip(": "))
    if outcome == INCONCLUSIVE:
        return replace(state, phase=PAUSED, message=f"analysis inconclusive at step {state.step}: {reason}".rstrip(": "))
    return state


def promote(state: RolloutState, steps: Sequence[Step]) -> RolloutState:
    """A person's promote: a paused roll-out goes on as if its analysis had succeeded."""
    if state.phase not in (PAUSED, PROGRESSING):
        raise SpecError(f"roll-out is {state.phase}: only a paused or progressing roll-out can be promoted")
    return decide(replace(state, phase=PROGRESSING), steps, SUCCESSFUL)


def abort(state: RolloutState, reason: str) -> RolloutState:
    """A person's abort: traffic back to stable, canary removed."""
    if state.phase in (HEALTHY, DEGRADED):
        raise SpecError(f"roll-out is already {state.phase}: nothing to abort")
    return replace(state, phase=DEGRADED, message=f"aborted at step {state.step}: {reason}")


def predictors(
    state: RolloutState, steps: Sequence[Step], stable: Mapping[str, Any], canary: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The SeldonDeployment's ``spec.predictors`` in ``state`` (``traffic`` and ``shadow`` as the CRD has them)."""
    if state.phase == DEGRADED:
        return [{**stable, "traffic": 100}]
    if state.phase == HEALTHY:
        return [{**canary, "traffic": 100}]
    step = steps[state.step]
    if step.shadow:
        return [{**stable, "traffic": 100}, {**canary, "shadow": True}]
    if step.weight == 100:
        return [{**stable, "traffic": 0}, {**canary, "traffic": 100}]
    return [{**stable, "traffic": 100 - step.weight}, {**canary, "traffic": step.weight}]
