"""A manifest of the wrong shape is refused before a run folder exists, in one line naming the field and what
is allowed, as Argo's API server refuses it at submit against the Workflow CRD's schema (issue #13: each of these
used to end in a raw traceback or, for ``parallelism: 0``, run without limit; Argo v4's CRD sets
``spec.parallelism`` ``minimum: 1``).
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
