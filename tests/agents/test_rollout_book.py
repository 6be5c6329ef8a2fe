"""Roll-outs in the agent's state file: resumed by a restarted agent, never started twice."""

from __future__ import annotations

import pytest

from scanflow_argo.agents.rollouts import RolloutBook
from scanflow_argo.agents.state import AgentState
from scanflow_argo.errors import AgentError, SpecError
from scanflow_argo.spec.analysis import FAILED, INCONCLUSIVE, SUCCESSFUL

SPEC = {"steps": [{"shadow": {}}, {"setWeight": 10}, {"setWeight": 100}]}


def test_a_restarted_agent_resumes_where_the_rollout_was(tmp_path):
    book = RolloutBook(AgentState(tmp_path))
    book.start("mnist", SPEC, now=1.0)
    book.record("mnist", SUCCESSFUL, run={"phase": SUCCESSFUL, "measurements": [{"value": 0.97}]})
    restarted = RolloutBook(AgentState(tmp_path))  # a new process reading the same state file
    assert restarted.active() == ["mnist"]
    entry = restarted.get("mnist")
    assert entry["state"]["step"] == 1 and entry["runs"][0]["measurements"] == [{"value": 0.97}]
    with pytest.raises(AgentError, match="already Progressing at step 1"):
        restarted.start("mnist", SPEC, now=2.0)
    assert restarted.record("mnist", SUCCESSFUL).step == 2
    assert restarted.record("mnist", SUCCESSFUL).phase == "Healthy"
    assert restarted.active() == []
    restarted.start("mnist", SPEC, now=3.0)  # a finished roll-out may be started again


@pytest.mark.parametrize(
    ("outcome", "then", "phase"),
    [
        (FAILED, None, "Degraded"),
        (INCONCLUSIVE, "promote", "Progressing"),
        (INCONCLUSIVE, "abort", "Degraded"),
    ],
)
def test_outcomes_and_a_person_taking_over(tmp_path, outcome, then, phase):
    book = RolloutBook(AgentState(tmp_path))
    book.start("mnist", SPEC, now=1.0)
    state = book.record("mnist", outcome, "p95 0.4 > 0.25")
    if then == "promote":
        state = RolloutBook(AgentState(tmp_path)).promote("mnist")
    elif then == "abort":
        state = RolloutBook(AgentState(tmp_path)).abort("mnist", "by alice")
    assert state.phase == phase
    assert RolloutBook(AgentState(tmp_path)).get("mnist")["state"]["phase"] == phase


def test_bad_input_writes_nothing(tmp_path):
    book = RolloutBook(AgentState(tmp_path))
    with pytest.raises(SpecError, match="without steps"):
        book.start("mnist", {}, now=1.0)
    with pytest.raises(AgentError, match="no roll-out named 'other'"):
        book.promote("other")
    assert not (tmp_path / "state.json").exists()
