"""The roll-out state machine: outcomes, a person's promote/abort, and the predictors each state means."""

from __future__ import annotations

import pytest

from scanflow_argo.errors import SpecError
from scanflow_argo.serving.traffic import split_of
from scanflow_argo.spec.analysis import FAILED, INCONCLUSIVE, SUCCESSFUL
from scanflow_argo.spec.rollout import (
    DEGRADED,
    HEALTHY,
    PAUSED,
    PROGRESSING,
    RolloutState,
    abort,
    decide,
    parse_steps,
    predictors,
    promote,
)

STEPS = parse_steps([{"shadow": {}}, {"setWeight": 10}, {"setWeight": 50}, {"setWeight": 100}])
STABLE, CANARY = {"name": "stable"}, {"name": "canary"}


@pytest.mark.parametrize(
    ("outcomes", "step", "phase"),
    [
        ([SUCCESSFUL], 1, PROGRESSING),
        ([SUCCESSFUL] * 4, 4, HEALTHY),
        ([SUCCESSFUL, FAILED], 1, DEGRADED),
        ([SUCCESSFUL, SUCCESSFUL, INCONCLUSIVE], 2, PAUSED),
        ([FAILED, SUCCESSFUL], 0, DEGRADED),  # nothing moves an aborted roll-out
        ([INCONCLUSIVE, SUCCESSFUL], 0, PAUSED),  # nor a paused one, but a person
    ],
)
def test_outcomes(outcomes, step, phase):
    state = RolloutState()
    for outcome in outcomes:
        state = decide(state, STEPS, outcome, "p95 0.4 > 0.25")
    assert (state.step, state.phase) == (step, phase)


def test_failed_records_the_reason_and_inconclusive_waits_for_a_person():
    failed = decide(RolloutState(step=2), STEPS, FAILED, "p95 0.4 > 0.25")
    assert "step 2" in failed.message and "p95 0.4" in failed.message
    paused = decide(RolloutState(step=1), STEPS, INCONCLUSIVE)
    assert promote(paused, STEPS) == RolloutState(step=2)
    assert abort(paused, "by alice").phase == DEGRADED
    with pytest.raises(SpecError, match="already Degraded"):
        abort(failed, "again")
    with pytest.raises(SpecError, match="only a paused"):
        promote(failed, STEPS)


@pytest.mark.parametrize(
    ("state", "weights", "shadows"),
    [
        (RolloutState(step=0), (("stable", 100),), ("canary",)),
        (RolloutState(step=1), (("stable", 90), ("canary", 10)), ()),
        (RolloutState(step=2, phase=PAUSED), (("stable", 50), ("canary", 50)), ()),  # paused holds the split
        (RolloutState(step=3), (("stable", 0), ("canary", 100)), ()),
        (RolloutState(step=2, phase=DEGRADED), (("stable", 100),), ()),
        (RolloutState(step=4, phase=HEALTHY), (("canary", 100),), ()),
    ],
)
def test_predictors_of_each_state_are_a_valid_split(state, weights, shadows):
    split = split_of("mnist", predictors(state, STEPS, STABLE, CANARY))
    assert (split.weights, split.shadows) == (weights, shadows)


@pytest.mark.parametrize(
    ("steps", "words"),
    [
        ([], "without steps"),
        ([{"pause": {}}], "setWeight: PERCENT or shadow"),
        ([{"setWeight": 0}], "1..100"),
        ([{"setWeight": 50}, {"setWeight": 10}], "only grow"),
    ],
)
def test_parse_steps_refuses(steps, words):
    with pytest.raises(SpecError, match=words):
        parse_steps(steps)
