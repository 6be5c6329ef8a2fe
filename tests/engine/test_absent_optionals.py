"""Outputs of skipped and omitted nodes (issue #12 kind 6), with Argo 4.0.7/3.7.16's semantics: a skipped or
omitted producer's declared output is its ``valueFrom.default``, else an *absent optional* — ``nil`` to
expressions (``??`` applies), a dropped argument (the consumer input's ``default`` applies), and otherwise
the node fails with Argo's terminal error naming the absent optional; the same for an artifact's ``subPath``
and ``spec.volumes``. Argo's sources: ``workflow/controller/scope.go`` (``addSkippedNodeOutputsToScope``,
``markAbsentOptionalArgs``, ``resolveParameter``), ``util/template/simple_template.go``
(``simpleReplaceStrict``), ``workflow/common/util.go`` (``ProcessArgs``), ``workflow/controller/operator.go``
(``getTemplateOutputsFromScope``, ``substituteParamsInVolumes``). In-process, with the fake pods of
``test_scheduler``; ``test_argo_corpus`` runs Argo's own cases with real processes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scanflow_argo.engine import run_workflow
from scanflow_argo.engine.core.frame import Frame, resolve_args
from scanflow_argo.engine.core.manifest import TemplateScope
from scanflow_argo.engine.core.subst import ABSENT, AbsentOptional, expand_scope, substitute_str
from scanflow_argo.engine.features.volumes import RunVolumes
from scanflow_argo.errors import EngineError

from .test_scheduler import FakePods, phases_of, pod, wf

ABSENT_ERROR = "absent optional"

PRODUCE = {"name": "produce", "outputs": {"parameters": [{"name": "msg", "valueFrom": {"path": "/tmp/out"}}]}, "fake": {}}
PRODUCE_DEFAULT = {
    "name": "produce",
    "outputs": {"parameters": [{"name": "msg", "valueFrom": {"path": "/tmp/out", "default": "from-producer"}}]},
    "fake": {},
}


def consume(default: str | None = None) -> dict[str, Any]:
    """A pod that reports the input it got as its output ``got``."""
    param: dict[str, Any] = {"name": "in"}
    if default is not None:
        param["default"] = default
    return {"name": "consume", "inputs": {"parameters": [param]}, "fake": {"outputs": {"got": "{{inputs.parameters.in}}"}}}


def dag(value: str, producer: dict[str, Any] | None = None) -> dict[str, Any]:
    """A DAG whose producer is skipped (``when: false``) and whose consumer passes ``value`` on as ``in``."""
    return {
        "name": "main",
        "dag": {
            "tasks": [
                producer or {"name": "producer", "template": "produce", "when": "false"},
                {
                    "name": "consumer",
                    "template": "consume",
                    "depends": "producer.Succeeded || producer.Skipped || producer.Omitted",
                    "arguments": {"parameters": [{"name": "in", "value": value}]},
                },
            ]
        },
    }


REF = "{{tasks.producer.outputs.parameters.msg}}"
OMITTED = {"name": "producer", "template": "produce", "depends": "gate.Failed"}

# (what, templates, workflow phase, consumer phase, consumer's `got` or a text its message contains, Argo's source)
CASES: list[tuple[str, list[dict[str, Any]], str, str, str, str]] = [
    (
        "no default anywhere: the consumer errors on the absent optional",
        [dag(REF), PRODUCE, consume()],
        "Error",
        "Error",
        "inputs.parameters.in: argument references an absent optional",
        "common/util.go ProcessArgs",
    ),
    (
        "the producer's valueFrom.default is the output",
        [dag(REF), PRODUCE_DEFAULT, consume("from-consumer")],
        "Succeeded",
        "Succeeded",
        "from-producer",
        "scope.go addSkippedNodeOutputsToScope",
    ),
    (
        "without one, the dropped argument leaves the consumer input's default",
        [dag(REF), PRODUCE, consume("from-consumer")],
        "Succeeded",
        "Succeeded",
        "from-consumer",
        "scope.go markAbsentOptionalArgs",
    ),
    (
        "an expression reads nil, so ?? applies",
        [dag("{{= tasks.producer.outputs.parameters.msg ?? 'fallback'}}"), PRODUCE, consume()],
        "Succeeded",
        "Succeeded",
        "fallback",
        "scope.go getParametersAny",
    ),
    (
        "a reference inside other text is no pure reference: the input default does not rescue it",
        [dag(f"x-{REF}"), PRODUCE, consume("from-consumer")],
        "Error",
        "Error",
        "unable to substitute {{tasks.producer.outputs.parameters.msg}}: output is an absent optional",
        "simple_template.go simpleReplaceStrict",
    ),
    (
        "an omitted producer is the same",
        [
            {
                "name": "main",
                "dag": {
                    "tasks": [
                        {"name": "gate", "template": "ok"},
                        *dag(REF, OMITTED)["dag"]["tasks"],
                    ]
                },
            },
            pod("ok"),
            PRODUCE,
            consume(),
        ],
        "Error",
        "Error",
        "argument references an absent optional",
        "scope.go addSkippedNodeOutputsToScope (NodeOmitted)",
    ),
]


@pytest.mark.parametrize(("what", "templates", "phase", "consumer", "expect", "source"), CASES, ids=[c[0] for c in CASES])
def test_a_skipped_producers_output_reaches_its_consumer(
    engine_settings, what, templates, phase, consumer, expect, source
) -> None:  # type: ignore[no-untyped-def]
    fake = FakePods()
    run = run_workflow(wf(templates), engine_settings, kinds=fake.kinds)
    node = run.node("consumer")
    assert (run.phase, node.phase) == (phase, consumer), (what, source, run.message, node.message)
    if consumer == "Succeeded":
        assert node.parameters()["got"] == expect, (what, source)
    else:
        assert expect in (node.message or ""), (what, source, node.message)
    assert not run.node("producer").outputs, "Argo's skipped node records no outputs (scope only)"


# (what, the step that reads the skipped step's output, Argo's source)
STEPS_CASES = [
    (
        "in a when",
        {"name": "reader", "template": "ok", "when": '"{{steps.producer.outputs.parameters.msg}}" == "x"'},
        "steps.go resolveReferences",
    ),
    (
        "in a withParam",
        {"name": "reader", "template": "ok", "withParam": "{{steps.producer.outputs.parameters.msg}}"},
        "steps.go resolveReferences",
    ),
]


@pytest.mark.parametrize(("what", "reader", "source"), STEPS_CASES, ids=[c[0] for c in STEPS_CASES])
def test_steps_fail_on_an_unhandled_absent_optional(engine_settings, what, reader, source) -> None:  # type: ignore[no-untyped-def]
    templates = [
        {"name": "main", "steps": [[{"name": "producer", "template": "produce", "when": "false"}], [reader]]},
        PRODUCE,
        pod("ok"),
    ]
    run = run_workflow(wf(templates), engine_settings, kinds=FakePods().kinds)
    assert run.phase == "Failed", (what, source)
    errored = [n for n in run.nodes.values() if n.phase == "Error"]
    assert errored and ABSENT_ERROR in (errored[0].message or ""), (what, source, [n.message for n in errored])
    assert phases_of(run)["producer"] == "Skipped"


# (what, the DAG's output parameter's valueFrom, its value or a text of the DAG node's message, Argo's source)
OUTPUT_CASES = [
    (
        "expression over the absent optional takes the aggregator's default",
        {"expression": "tasks.producer.outputs.parameters.msg", "default": "from-aggregator"},
        "from-aggregator",
        "operator.go getTemplateOutputsFromScope; dag_test.go TestDAGSkippedOutputExprDefaultAggregate",
    ),
    (
        "parameter over the absent optional takes the aggregator's default",
        {"parameter": REF, "default": "from-aggregator"},
        "from-aggregator",
        "operator.go getTemplateOutputsFromScope",
    ),
    (
        "parameter over the absent optional without a default errors the DAG",
        {"parameter": REF},
        "is an absent optional",
        "operator.go getTemplateOutputsFromScope",
    ),
]


@pytest.mark.parametrize(("what", "value_from", "expect", "source"), OUTPUT_CASES, ids=[c[0] for c in OUTPUT_CASES])
def test_a_dags_outputs_over_a_skipped_task(engine_settings, what, value_from, expect, source) -> None:  # type: ignore[no-untyped-def]
    main = {
        "name": "main",
        "dag": {"tasks": [{"name": "producer", "template": "produce", "when": "false"}]},
        "outputs": {"parameters": [{"name": "result", "valueFrom": value_from}]},
    }
    run = run_workflow(wf([main, PRODUCE]), engine_settings, kinds=FakePods().kinds)
    root = run.node(run.name)
    if "default" in value_from:
        assert (run.phase, root.parameters().get("result")) == ("Succeeded", expect), (what, source, root.message)
    else:
        assert run.phase == "Error" and expect in (root.message or ""), (what, source, root.message)


@pytest.mark.parametrize(
    ("text", "scope", "outcome"),
    [
        ("{{a}}", {"a": ABSENT}, AbsentOptional),
        ("{{= a ?? 'b'}}", {"a": ABSENT}, "b"),
        ("{{a}}", {"a": ""}, ""),  # an empty output is a value, not an absent one
    ],
)
def test_substitution_of_an_absent_optional(text: str, scope: dict[str, Any], outcome: Any) -> None:
    """simple_template.go simpleReplaceStrict: a nil value fails a plain tag even where unknown tags are allowed."""
    for strict in (True, False):
        if outcome is AbsentOptional:
            with pytest.raises(AbsentOptional, match="output is an absent optional"):
                substitute_str(text, scope, strict=strict)
        else:
            assert substitute_str(text, scope, strict=strict) == outcome
    assert expand_scope({"a.b": ABSENT}) == {"a": {"b": None}}


def test_an_artifacts_subpath_from_an_absent_optional_fails_the_call() -> None:
    """dag.go resolveDependencyReferences substitutes the whole task, an artifact's subPath included
    (e2e functional_test.go TestDAGSkippedArtifactSubPathRef)."""
    frame = Frame(
        TemplateScope("workflow", {}),
        {"tasks.p.outputs.parameters.dir": ABSENT, "tasks.q.outputs.parameters.dir": "sub"},
        {"tasks.a.outputs.artifacts.out": {"local": {"key": "k"}}},
    )

    def args(sub: str) -> dict[str, Any]:
        return {"artifacts": [{"name": "data", "from": "{{tasks.a.outputs.artifacts.out}}", "subPath": sub}]}

    with pytest.raises(AbsentOptional, match="absent optional"):
        resolve_args(args("{{tasks.p.outputs.parameters.dir}}"), frame, "task 'consumer'")
    assert resolve_args(args("{{tasks.q.outputs.parameters.dir}}"), frame, "t")["artifacts"][0]["subPath"] == "sub"


def test_spec_volumes_take_a_skipped_producers_default(tmp_path: Path) -> None:
    """operator.go substituteParamsInVolumes, run as each task resolves its references (e2e functional_test.go
    TestDAGSkippedVolumeRefProducerDefault); an absent optional there fails it."""
    spec = {"volumes": [{"name": "cfg", "configMap": {"name": "{{tasks.producer.outputs.parameters.cm}}", "optional": True}}]}
    vols = RunVolumes(spec, "wf", "default", tmp_path, tmp_path)
    with pytest.raises(EngineError, match=r"spec\.volumes: unable to substitute .* absent optional"):
        vols.resolve_references({"tasks.producer.outputs.parameters.cm": ABSENT})
    vols.resolve_references({"workflow.name": "wf"})  # a scope without it leaves the tag for later
    vols.resolve_references({"tasks.producer.outputs.parameters.cm": "rescued-config"})
    assert vols.declared({})["cfg"]["configMap"]["name"] == "rescued-config"
