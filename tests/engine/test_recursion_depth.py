"""A template that calls itself without a base case stops at Argo's depth, in Argo's words (issue #13).

Argo's controller counts the templates on its call stack (``workflow/controller/operator.go``
``executeTemplate``: ``currentStackDepth`` against ``maxStackDepth = 100``) and errors the node that would go
deeper with ``ErrMaxDepthExceeded``; the workflow then fails. Through steps the engine used to end in a raw
``RecursionError``, through a DAG it ran without limit.
"""

from __future__ import annotations

import pytest

from scanflow_argo.engine import run_workflow
from scanflow_argo.engine.scheduler import MAX_DEPTH_MESSAGE, MAX_STACK_DEPTH
from scanflow_argo.settings import Settings


def recursive(body: dict) -> dict:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "recurse-"},
        "spec": {"entrypoint": "main", "templates": [{"name": "main", **body}]},
    }


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"steps": [[{"name": "again", "template": "main"}]]}, id="steps"),
        pytest.param({"dag": {"tasks": [{"name": "again", "template": "main"}]}}, id="dag"),
    ],
)
def test_recursion_without_a_base_case_stops_at_argos_depth(body: dict, engine_settings: Settings) -> None:
    status = run_workflow(recursive(body), engine_settings)
    assert status.phase in ("Failed", "Error")
    errored = [n for n in status.nodes.values() if n.message == MAX_DEPTH_MESSAGE and n.phase == "Error"]
    assert len(errored) == 1  # the call past the depth; a step group above it repeats its message
    calls = [n for n in status.nodes.values() if n.type in ("Steps", "DAG")]
    assert len(calls) == MAX_STACK_DEPTH - 1  # the 100th call is the one refused
    assert MAX_DEPTH_MESSAGE.startswith("Maximum recursion depth exceeded. See https://argo-workflows")
