"""What a fanned-out step or task (withItems/withParam) puts in its template's scope, as Argo's controller does:
aggregated outputs as the texts the children produced (``workflow/controller/operator.go``
``processAggregateNodeOutputs``, ``aggregatedJSONValueList``), ``{{steps.X.id}}``/``{{tasks.X.id}}`` of the
StepGroup/TaskGroup (``steps.go`` ``executeSteps``, ``dag.go`` ``buildLocalScopeFromTask`` → ``buildLocalScope``),
an empty loop as one Skipped node "Skipped, empty params" (``steps.go`` ``expandStepGroup``, ``dag.go``
``executeDAGTask``), and a script without ``source`` run without a file argument (``operator.go``
``executeScript``)."""

from __future__ import annotations

from typing import Any

import pytest

from scanflow_argo.engine import run_workflow
from scanflow_argo.engine.core.frame import aggregated_values
from scanflow_argo.settings import Settings


@pytest.mark.parametrize(
    ("values", "expected"),
    [  # workflow/controller/operator_aggregation_test.go TestAggregatedJsonValueList, case by case
        (["1"], '["1"]'),
        (["1", "2"], '["1","2"]'),
        (["foo"], '["foo"]'),
        (["foo", "bar"], '["foo","bar"]'),
        (['["1"]', "2"], '["[\\"1\\"]","2"]'),
        (['{"foo":"1"}', "2"], '["{\\"foo\\":\\"1\\"}","2"]'),
        (['["1"]', '["2"]'], '[["1"],["2"]]'),
        ([' ["1"]', '["2"] '], '[["1"],["2"]]'),
        (['\n["1"]  \n', '\t["2"]\t'], '[["1"],["2"]]'),
        (['{"number":"1"}', '{"number":"2"}'], '[{"number":"1"},{"number":"2"}]'),
        (['[{"foo":"apple", "bar":"pear"}]'], '[[{"bar":"pear","foo":"apple"}]]'),
        (["true", "null"], '["true","null"]'),  # scalars other than numbers stay texts too
        (["a<b"], '["a\\u003cb"]'),  # Go's json.Marshal escapes HTML characters
    ],
)
def test_aggregated_parameter_values_are_the_texts_unless_all_are_lists_or_maps(values: list[str], expected: str) -> None:
    assert aggregated_values(values) == expected


def _fanout(kind: str, loop: dict[str, Any], reads: tuple[str, ...]) -> dict[str, Any]:
    """A workflow whose `fan` step/task loops over `loop`, and whose `use` step/task reads `reads` of it."""
    ref = f"{kind}.fan"
    known = {
        "id": f"{{{{{ref}.id}}}}",
        "agg": f"{{{{{ref}.outputs.parameters.num}}}}",
        "all": f"{{{{{ref}.outputs.parameters}}}}",
        "status": f"{{{{{ref}.status}}}}",
    }
    uses = {k: known[k] for k in reads}
    fan = {"name": "fan", "template": "num", "arguments": {"parameters": [{"name": "n", "value": "{{item}}"}]}, **loop}
    use = {
        "name": "use",
        "template": "show",
        "arguments": {"parameters": [{"name": k, "value": v} for k, v in uses.items()]},
    }
    body: dict[str, Any]
    if kind == "steps":
        body = {"steps": [[{"name": "gen", "template": "gen"}], [fan], [use]]}
    else:
        body = {
            "dag": {
                "tasks": [
                    {"name": "gen", "template": "gen"},
                    {**fan, "dependencies": ["gen"]},
                    {**use, "dependencies": ["fan"]},
                ]
            }
        }
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": f"fan-{kind}"},
        "spec": {
            "entrypoint": "main",
            "templates": [
                {"name": "main", **body},
                # a script without source: argosay's `echo MSG` prints MSG (no script file appended to its args)
                {"name": "gen", "script": {"image": "argoproj/argosay:v2", "args": ["echo", "[]"]}},
                {
                    "name": "num",
                    "inputs": {"parameters": [{"name": "n"}]},
                    "container": {
                        "image": "busybox",
                        "command": ["sh", "-c", "echo {{inputs.parameters.n}} > /tmp/num; echo x > /tmp/x"],
                    },
                    "outputs": {
                        "parameters": [
                            {"name": "x", "valueFrom": {"path": "/tmp/x"}},
                            {"name": "num", "valueFrom": {"path": "/tmp/num"}},
                        ]
                    },
                },
                {
                    "name": "show",
                    "inputs": {"parameters": [{"name": k} for k in uses]},
                    "container": {"image": "busybox", "command": ["true"]},
                },
            ],
        },
    }


@pytest.mark.parametrize(("kind", "group_type"), [("steps", "StepGroup"), ("tasks", "TaskGroup")])
def test_a_fanout_publishes_its_group_id_and_the_texts_its_children_produced(
    engine_settings: Settings, kind: str, group_type: str
) -> None:
    run = run_workflow(_fanout(kind, {"withItems": [1, 2]}, ("id", "agg", "all", "status")), engine_settings)
    assert run.phase == "Succeeded", run.message
    used = {p["name"]: p["value"] for p in run.node("use").inputs["parameters"]}
    assert used["agg"] == '["1","2"]'  # never [1,2]: processAggregateNodeOutputs keeps Value.String()
    assert used["all"] == '[{"num":"1","x":"x"},{"num":"2","x":"x"}]'  # map[string]string: keys sorted
    assert used["status"] == "Succeeded"
    fan_children = [n for n in run.nodes.values() if n.display_name.startswith("fan(")]
    group = next(n for n in run.nodes.values() if n.type == group_type and set(n.children) & {c.id for c in fan_children})
    assert used["id"] == group.id


@pytest.mark.parametrize("kind", ["steps", "tasks"])
def test_an_empty_loop_is_one_skipped_node(engine_settings: Settings, kind: str) -> None:
    loop = {"withParam": f"{{{{{kind}.gen.outputs.result}}}}"}
    run = run_workflow(_fanout(kind, loop, ("id", "status")), engine_settings)
    assert run.phase == "Succeeded", run.message
    assert run.node("gen").outputs["result"] == "[]"
    fan = run.node("fan")
    assert (fan.type, fan.phase, fan.message) == ("Skipped", "Skipped", "Skipped, empty params")
    used = {p["name"]: p["value"] for p in run.node("use").inputs["parameters"]}
    assert used == {"id": fan.id, "status": "Skipped"}  # the Skipped node is the step's own node
    assert not [n for n in run.nodes.values() if n.display_name.startswith("fan(")]
