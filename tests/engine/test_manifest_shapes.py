"""A manifest of the wrong shape is refused before a run folder exists, in one line naming the field and what
is allowed, as Argo's API server refuses it at submit against the Workflow CRD's schema (issue #13: each of these
used to end in a raw traceback or, for ``parallelism: 0``, run without limit; Argo v4's CRD sets
``spec.parallelism`` ``minimum: 1``; ``withItems`` that is no list fails to decode into Argo's ``[]Item``, which
the controller reports as ``cannot unmarshall spec``, workflow/controller/controller.go ``processNextItem``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scanflow_argo.engine import run_workflow
from scanflow_argo.errors import EngineError
from scanflow_argo.settings import Settings

ECHO = {"name": "main", "container": {"image": "busybox", "command": ["echo", "x"]}}


def wf(templates: list | None = None, metadata: object = None, **spec: object) -> dict:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "shape-"} if metadata is None else metadata,
        "spec": {"entrypoint": "main", "templates": [ECHO] if templates is None else templates, **spec},
    }


def _dag(*tasks: dict) -> dict:
    return wf([{"name": "main", "dag": {"tasks": list(tasks)}}, {**ECHO, "name": "e"}])


# Argo 4.1.2's Workflow CRD (manifests/base/crds/full/argoproj.io_workflows.yaml): its x-kubernetes-validations
# rules, each with the API server's message; before, the engine ran three of these and failed the fourth at run time
CEL_RULES = [
    pytest.param(
        wf([{"name": "main", "container": {"image": "busybox"}, "script": {"image": "busybox", "source": "true"}}]),
        "spec.templates",
        "template must have at most one template type",
        id="two template types",
    ),
    pytest.param(
        _dag({"name": "a", "template": "e"}, {"name": "b", "template": "e", "depends": "a", "dependencies": ["a"]}),
        "spec.templates[0].dag.tasks[1]",
        "cannot use both 'depends' and 'dependencies'",
        id="depends and dependencies",
    ),
    pytest.param(
        _dag({"name": "a", "template": "e"}, {"name": "b", "template": "e", "depends": "a", "continueOn": {"failed": True}}),
        "spec.templates[0].dag.tasks[1]",
        "cannot use 'continueOn' when using 'depends'",
        id="continueOn with depends",
    ),
    pytest.param(
        wf([{"name": "main", "timeout": "10s", "dag": {"tasks": [{"name": "a", "template": "e"}]}}, {**ECHO, "name": "e"}]),
        "spec.templates",
        "timeout cannot be applied to steps or dag templates",
        id="timeout on a dag",
    ),
    pytest.param(
        wf(
            [
                {"name": "main", "steps": [[{"name": "a", "template": "e", "withSequence": {"count": "2", "end": "3"}}]]},
                {**ECHO, "name": "e"},
            ]
        ),
        "spec.templates[0].steps[0][0].withSequence",
        "only one of count or end can be defined",
        id="count and end",
    ),
]


@pytest.mark.parametrize(("manifest", "field", "allowed"), CEL_RULES)
def test_what_the_crds_cel_rules_refuse_is_refused_before_anything_runs(
    manifest: dict, field: str, allowed: str, engine_settings: Settings, tmp_path: Path
) -> None:
    with pytest.raises(EngineError) as err:
        run_workflow(manifest, engine_settings)
    message = str(err.value)
    assert message.startswith("refused as Argo's API server refuses it: ") and f"{field}: Invalid value: {allowed}" in message
    assert not list(tmp_path.rglob("workflow.yaml"))


@pytest.mark.parametrize(
    ("manifest", "field", "allowed"),
    [
        pytest.param({**wf(), "spec": "hello"}, "spec", "must be of type object", id="spec string"),
        pytest.param(wf(metadata="hello"), "metadata", "must be a mapping", id="metadata string"),
        pytest.param(wf(["hello"]), "spec.templates[0]", "must be of type object", id="template string"),
        pytest.param(wf(parallelism=-1), "spec.parallelism", "greater than or equal to 1", id="parallelism -1"),
        pytest.param(wf(parallelism=0), "spec.parallelism", "greater than or equal to 1", id="parallelism 0"),
        pytest.param(wf(parallelism="abc"), "spec.parallelism", "must be of type integer", id="parallelism abc"),
        pytest.param(wf([{"name": "main", "steps": "hello"}]), "spec.templates[0].steps", "type array", id="steps string"),
        pytest.param(wf([{"name": "main", "dag": {"tasks": "x"}}]), "spec.templates[0].dag.tasks", "type array", id="tasks"),
        pytest.param(wf([{"name": "main", "container": "x"}]), "spec.templates[0].container", "type object", id="container"),
        pytest.param(
            wf([{"name": "main", "container": {"image": "busybox", "args": {"a": 1}}}]),
            "spec.templates[0].container.args",
            "must be of type array",
            id="args map",
        ),
        pytest.param(wf(metadata={"name": "a" * 300}), "metadata.name", "RFC 1123", id="300-character name"),
        pytest.param(  # the CRD keeps withItems unchecked, but it is []Item in Argo's Go types
            wf([{"name": "main", "steps": [[{"name": "a", "template": "e", "withItems": {"a": 1}}]]}, {**ECHO, "name": "e"}]),
            "spec.templates[0].steps[0][0].withItems",
            "must be a list of items",
            id="withItems map",
        ),
        pytest.param(
            wf([{"name": "main", "dag": {"tasks": [{"name": "a", "template": "e", "withItems": "abc"}]}}, {**ECHO, "name": "e"}]),
            "spec.templates[0].dag.tasks[0].withItems",
            "cannot unmarshal string into []v1alpha1.Item",
            id="withItems string",
        ),
    ],
)
def test_a_wrong_shape_is_refused_in_one_line_before_anything_runs(
    manifest: dict, field: str, allowed: str, engine_settings: Settings, tmp_path: Path
) -> None:
    with pytest.raises(EngineError) as err:
        run_workflow(manifest, engine_settings)
    message = str(err.value)
    assert "\n" not in message and field in message and allowed in message
    assert not list(tmp_path.rglob("workflow.yaml"))


@pytest.mark.parametrize(
    "templates",
    [
        pytest.param([{"name": "main", "container": {"image": "busybox", "command": ["echo"], "args": ["x", 1]}}], id="int arg"),
        pytest.param(
            [
                {
                    "name": "main",
                    "steps": [[{"name": "s", "template": "echo", "arguments": {"parameters": [{"name": "p", "value": 1.5}]}}]],
                },
                {
                    "name": "echo",
                    "inputs": {"parameters": [{"name": "p"}]},
                    "container": {"image": "busybox", "command": ["echo", "{{inputs.parameters.p}}"]},
                },
            ],
            id="number value",
        ),
    ],
)
def test_a_scalar_where_a_string_goes_runs_as_argo_submit_reads_it(templates: list, engine_settings: Settings) -> None:
    """``argo submit`` reads YAML through sigs.k8s.io/yaml into typed structs, which turns a number or a boolean
    into the string its field wants (yaml.go ``convertToJSONableObject`` with a ``jsonTarget``): Argo's e2e
    ``TestParametrizableLimit`` runs ``args: [exit, 1]``. The shape check must not refuse it."""
    run = run_workflow(wf(templates), engine_settings)
    assert run.phase == "Succeeded", run.message
