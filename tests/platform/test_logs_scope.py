"""Which pods ``LocalPlatform.logs`` reads for a steps/DAG node: those inside its boundary (``boundaryID``), as
Argo's children are a graph that leads on out of a template (``workflow/controller/steps.go``
``executeSteps``: the next StepGroup hangs under the previous group's outbound nodes)."""

from __future__ import annotations

from scanflow_argo.platform.local import _pods_under
from scanflow_argo.status import RunStatus


def test_logs_of_a_nested_steps_node_stay_inside_it() -> None:
    """The pods of a steps node are those inside its boundary: Argo's children lead on out of it (the outer next
    group hangs under the nested template's last pod), so ``logs`` of ``x`` must not collect ``y``'s pod."""
    nodes = {
        "wf": {"name": "wf", "type": "Steps", "children": ["g0"]},
        "g0": {"name": "wf[0]", "type": "StepGroup", "boundaryID": "wf", "children": ["x"]},
        "x": {"name": "wf[0].x", "displayName": "x", "type": "Steps", "boundaryID": "wf", "children": ["xg"]},
        "xg": {"name": "wf[0].x[0]", "type": "StepGroup", "boundaryID": "x", "children": ["p"]},
        "p": {"name": "wf[0].x[0].p", "type": "Pod", "boundaryID": "x", "children": ["g1"]},
        "g1": {"name": "wf[1]", "type": "StepGroup", "boundaryID": "wf", "children": ["y"]},
        "y": {"name": "wf[1].y", "type": "Pod", "boundaryID": "wf"},
    }
    run = RunStatus.from_workflow({"metadata": {"name": "wf"}, "status": {"phase": "Succeeded", "nodes": nodes}})
    assert [n.id for n in _pods_under(run, run.nodes["x"])] == ["p"]
    assert sorted(n.id for n in _pods_under(run, run.nodes["wf"])) == ["p", "y"]
