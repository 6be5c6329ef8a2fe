"""Loop and retry fields given values a careful tester tries (issue #13), handled as Argo's controller handles them.

Sources (argo-workflows f016ad89): ``workflow/controller/operator.go`` ``expandSequence`` (``end = start + count - 1``:
a negative count counts down past ``start``; text that ``strconv.Atoi`` refuses errors the step group) and
``processNodeRetries`` (``intstr.Int32(retryStrategy.Limit)`` from ``util/intstr/parametrizable.go``: "value 'abc'
cannot be resolved to an int" errors the Retry node once an attempt failed; a limit under the attempts made ends it
with "No more retries left").
"""

from __future__ import annotations

from typing import Any

import pytest

from scanflow_argo.engine import run_workflow
from scanflow_argo.settings import Settings


def wf(templates: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "hostile-"},
        "spec": {"entrypoint": "main", "templates": templates},
    }


ECHO = {
    "name": "echo",
    "inputs": {"parameters": [{"name": "x"}]},
    "container": {"image": "busybox", "command": ["echo", "{{inputs.parameters.x}}"]},
}


def sequence(**seq: object) -> dict[str, Any]:
    step = {"name": "a", "template": "echo", "arguments": {"parameters": [{"name": "x", "value": "{{item}}"}]}}
    return wf([{"name": "main", "steps": [[{**step, "withSequence": seq}]]}, ECHO])


@pytest.mark.parametrize(
    ("seq", "items"),
    [
        ({"count": -1}, ["0", "-1", "-2"]),  # end = 0 + (-1) - 1 = -2: counted down (was: nothing ran)
        ({"count": "-1", "start": "5"}, ["5", "4", "3"]),
        ({"count": 0}, []),
        ({"count": "3", "start": "-1"}, ["-1", "0", "1"]),
    ],
)
def test_with_sequence_counts_as_argos_expand_sequence(seq: dict, items: list[str], engine_settings: Settings) -> None:
    run = run_workflow(sequence(**seq), engine_settings)
    assert run.phase == "Succeeded", run.message
    pods = sorted((n for n in run.nodes.values() if n.type == "Pod"), key=lambda n: n.display_name)
    assert [n.outputs["result"] for n in pods] == items


def test_a_with_sequence_count_that_is_no_number_errors_its_step_group_naming_the_field(engine_settings: Settings) -> None:
    run = run_workflow(sequence(count="abc"), engine_settings)
    assert run.phase == "Failed"
    group = next(n for n in run.nodes.values() if n.type == "StepGroup")
    assert group.message == "step 'a' withSequence.count: 'abc' is not a whole number"
    assert not [n for n in run.nodes.values() if n.type == "Pod"]


def retried(limit: object, command: str) -> dict[str, Any]:
    return wf([{"name": "main", "retryStrategy": {"limit": limit}, "container": {"image": "busybox", "command": [command]}}])


@pytest.mark.parametrize(
    ("limit", "command", "phase", "message", "attempts"),
    [
        (  # was: a raw ValueError from int('abc') before anything ran
            "abc",
            "false",
            "Error",
            "retryStrategy.limit: value 'abc' cannot be resolved to an int (a whole number, or a variable that gives one)",
            1,
        ),
        ("abc", "true", "Succeeded", None, 1),  # Argo reads the limit only when an attempt failed
        (-1, "false", "Failed", "No more retries left", 1),  # was: no attempt at all, the Retry node in Error
        ("-1", "false", "Failed", "No more retries left", 1),
        ("1", "false", "Failed", "No more retries left", 2),
    ],
)
def test_retry_limits_are_read_as_argos_intstr(
    limit: object, command: str, phase: str, message: str | None, attempts: int, engine_settings: Settings
) -> None:
    run = run_workflow(retried(limit, command), engine_settings)
    retry = next(n for n in run.nodes.values() if n.type == "Retry")
    assert (run.phase, retry.phase, retry.message) == (phase, phase, message)
    assert len([n for n in run.nodes.values() if n.type == "Pod"]) == attempts
