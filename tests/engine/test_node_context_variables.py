"""Variables Argo's controller gives a template's body (``docs/variables.md``; Argo's ``examples/variables-showcase.yaml``
uses each of them):

- ``steps.name`` / ``tasks.name``: ``workflow/controller/operator.go`` ``executeTemplate`` sets them as local
  parameters to ``orgTmpl.GetName()``, the name of the step or task that calls the template (a looped one's
  expanded name; empty for the entrypoint);
- ``lastRetry.exitCode/status/duration/message`` in a retried template's attempts: ``executeTemplate`` (``"0"``,
  ``""``, ``"0"``, ``""`` for the first attempt, then the previous attempt's exit code, phase, duration and message);
- ``workflow.creationTimestamp.RFC3339``, ``workflow.scheduledTime`` (from the cron controller's
  ``workflows.argoproj.io/scheduled-time`` annotation), ``workflow.annotations`` / ``workflow.labels`` (all of them
  as JSON, deprecated forms of ``.json``): ``setGlobalParameters``; ``workflow.duration`` while the workflow runs
  (``setGlobalRuntimeParameters``: ``fmt.Sprintf("%f", seconds)``);
- ``steps.<name>.hostNodeName``: ``buildLocalScope``, the node's ``hostNodeName`` (the pod's ``spec.nodeName``):
  every pod runs on this machine here.
"""

from __future__ import annotations

import json
import re
import socket
from typing import Any

from scanflow_argo.engine import run_workflow
from scanflow_argo.engine.core.state import read_status
from scanflow_argo.settings import Settings


def _wf(templates: list[dict[str, Any]], **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "vars-", **metadata},
        "spec": {"entrypoint": "main", "templates": templates},
    }


def _sh(name: str, script: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "container": {"image": "busybox", "command": ["sh", "-c"], "args": [script]}, **extra}


def test_global_variables_of_the_creation_time_metadata_and_duration(engine_settings: Settings) -> None:
    script = (
        "echo '{{workflow.creationTimestamp.RFC3339}}'; echo '{{workflow.scheduledTime}}'; "
        "echo '{{workflow.annotations}}'; echo '{{workflow.labels}}'; echo '{{workflow.duration}}'"
    )
    annotations = {"workflows.argoproj.io/scheduled-time": "2026-04-29T00:00:00Z", "owner": "ada"}
    run = run_workflow(_wf([_sh("main", script)], labels={"app": "demo"}, annotations=annotations), engine_settings)
    assert run.phase == "Succeeded", run.message
    created, scheduled, anns, labels, duration = run.node(run.name).outputs["result"].splitlines()
    meta = read_status(engine_settings.home / "runs" / run.name)["metadata"]
    assert created == meta["creationTimestamp"] and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", created)
    assert scheduled == "2026-04-29T00:00:00Z"
    assert json.loads(anns) == annotations and json.loads(labels) == {"app": "demo"}
    assert re.fullmatch(r"\d+\.\d{6}", duration) and 0 <= float(duration) < 60


def test_steps_name_and_tasks_name_are_the_name_of_the_calling_step_or_task(engine_settings: Settings) -> None:
    templates = [
        {
            "name": "main",
            "steps": [
                [{"name": "hello", "template": "say-step"}, {"name": "again", "template": "say-step"}],
                [{"name": "graph", "template": "graph"}],
            ],
        },
        {
            "name": "graph",
            "dag": {
                "tasks": [
                    {"name": "t1", "template": "say-task"},
                    {"name": "t2", "template": "say-task", "withItems": ["x"]},
                ]
            },
        },
        _sh("say-step", "echo '{{steps.name}}'", retryStrategy={"limit": 1}),
        _sh("say-task", "echo '{{tasks.name}}'"),
    ]
    run = run_workflow(_wf(templates), engine_settings)
    assert run.phase == "Succeeded", run.message
    out = {n: run.node(n).outputs["result"] for n in ("hello", "again", "t1", "t2(0:x)")}
    # a retried step's attempts are the same step: its name, without the attempt's (0)
    assert out == {"hello": "hello", "again": "again", "t1": "t1", "t2(0:x)": "t2(0:x)"}


def test_an_attempt_sees_the_last_retry(engine_settings: Settings) -> None:
    script = (
        "echo '{{retries}}|{{lastRetry.exitCode}}|{{lastRetry.status}}|{{lastRetry.message}}|{{lastRetry.duration}}'; "
        "[ {{retries}} -ge 1 ] || exit 3"
    )
    run = run_workflow(_wf([_sh("main", script, retryStrategy={"limit": 2})]), engine_settings)
    assert run.phase == "Succeeded", run.message
    first, second = run.node(f"{run.name}(0)"), run.node(f"{run.name}(1)")
    assert first.outputs["result"] == "0|0|||0"  # Argo's values for the first attempt
    retries, code, status, message, duration = second.outputs["result"].split("|")
    assert (retries, code, status, message) == ("1", "3", "Failed", first.message)
    assert first.message and duration.isdigit()


def test_a_steps_host_node_name_is_this_machine(engine_settings: Settings) -> None:
    host = {"parameters": [{"name": "host", "value": "{{steps.a.hostNodeName}}"}]}
    main = {"name": "main", "steps": [[{"name": "a", "template": "a"}], [{"name": "b", "template": "b", "arguments": host}]]}
    b = _sh("b", "echo '{{inputs.parameters.host}}'", inputs={"parameters": [{"name": "host"}]})
    run = run_workflow(_wf([main, _sh("a", "true"), b]), engine_settings)
    assert run.phase == "Succeeded", run.message
    assert run.node("b").outputs["result"] == socket.gethostname()
