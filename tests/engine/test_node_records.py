"""Node records as Argo's operator writes them, in-process with the fake node kind of ``test_scheduler.py``:
``children`` that chain StepGroups and DAG tasks through the outbound nodes of what ran before them
(``workflow/controller/steps.go`` ``executeSteps``, ``dag.go`` ``executeDAGTask``), ``outboundNodes``
(``operator.go`` ``getOutboundNodes``, ``steps.go`` ``updateOutboundNodes``, ``dag.go``
``updateOutboundNodesForTargetTasks``), ``templateScope`` (``operator.go`` ``executeTemplate``:
``tmplCtx.GetTemplateScope()``), exit-hook nodes (``exit_handler.go`` ``runOnExitNode``) and the outputs of a
suspend node that timed out (``operator.go`` ``addRawOutputFields``, ``workflow/util/util.go``
``OverrideOutputParametersWithDefault``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scanflow_argo.engine import prepare_run
from scanflow_argo.engine.api import execute
from scanflow_argo.engine.core.graph import outbound_nodes
from scanflow_argo.engine.core.state import read_status
from scanflow_argo.engine.features.estimation import Estimator
from scanflow_argo.engine.kinds.suspend import timed_out_outputs
from scanflow_argo.engine.status import tree_lines
from scanflow_argo.errors import EngineError

from .test_scheduler import FakePods, pod, wf


def _run(manifest: dict[str, Any], settings: Any, templates: tuple[dict[str, Any], ...] = ()) -> tuple[str, dict[str, Any]]:
    """The run's name and status document."""
    fake = FakePods()
    run_dir = prepare_run(manifest, settings, kinds=fake.kinds, templates=templates)
    execute(run_dir, settings, kinds=fake.kinds)
    doc = read_status(run_dir)
    return doc["metadata"]["name"], doc


def _by_name(name: str, doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["name"].replace(name, "wf", 1): n for n in doc["status"]["nodes"].values()}


def _names(name: str, doc: dict[str, Any], ids: list[str]) -> list[str]:
    nodes = doc["status"]["nodes"]
    return sorted(nodes[i]["name"].replace(name, "wf", 1) for i in ids)


# (what, templates, {node name: (children names, outboundNodes names or None when absent)}, Argo's source)
CASES = [
    (
        "the next StepGroup hangs under the pods of the previous one; the Steps node's outbound nodes are the last group's",
        [
            {
                "name": "main",
                "steps": [[{"name": "a", "template": "ok"}, {"name": "b", "template": "ok"}], [{"name": "c", "template": "ok"}]],
            },
            pod("ok"),
        ],
        {
            "wf": (["wf[0]"], ["wf[1].c"]),
            "wf[0]": (["wf[0].a", "wf[0].b"], None),
            "wf[0].a": (["wf[1]"], None),
            "wf[0].b": (["wf[1]"], None),
            "wf[1]": (["wf[1].c"], None),
            "wf[1].c": ([], None),
        },
        "steps.go executeSteps (addChildNode of each outbound node), updateOutboundNodes",
    ),
    (
        "a nested steps template: the outer next group hangs under the inner template's last pod",
        [
            {"name": "main", "steps": [[{"name": "x", "template": "inner"}], [{"name": "y", "template": "ok"}]]},
            {"name": "inner", "steps": [[{"name": "p", "template": "ok"}]]},
            pod("ok"),
        ],
        {"wf[0].x": (["wf[0].x[0]"], ["wf[0].x[0].p"]), "wf[0].x[0].p": (["wf[1]"], None)},
        "e2e functional_test.go TestMissingStepsInUI (the pod node lists the next group)",
    ),
    (
        "a DAG task hangs under its dependencies; the DAG's outbound nodes are its leaf tasks'",
        [
            {
                "name": "main",
                "dag": {
                    "tasks": [
                        {"name": "A", "template": "ok"},
                        {"name": "B", "template": "ok", "dependencies": ["A"]},
                        {"name": "C", "template": "ok", "depends": "A"},
                    ]
                },
            },
            pod("ok"),
        ],
        {"wf": (["wf.A"], ["wf.B", "wf.C"]), "wf.A": (["wf.B", "wf.C"], None)},
        "dag.go executeDAGTask connectDependencies, updateOutboundNodesForTargetTasks",
    ),
    (
        "a failed DAG under continueOn still records its outbound nodes, and the next group hangs under them",
        [
            {
                "name": "main",
                "steps": [[{"name": "B", "template": "boom", "continueOn": {"failed": True}}], [{"name": "C", "template": "ok"}]],
            },
            {"name": "boom", "dag": {"tasks": [{"name": "B-1", "template": "bad"}]}},
            pod("bad", phase="Failed"),
            pod("ok"),
        ],
        {"wf[0].B": (["wf[0].B.B-1"], ["wf[0].B.B-1"]), "wf[0].B.B-1": (["wf[1]"], None)},
        "e2e functional_test.go TestContinueOnFail; dag.go executeDAG (NodeFailed: updateOutboundNodesForTargetTasks)",
    ),
    (
        "a retried step's outbound node is its last attempt",
        [
            {"name": "main", "steps": [[{"name": "a", "template": "flaky"}], [{"name": "b", "template": "ok"}]]},
            {"name": "flaky", "retryStrategy": {"limit": 2}, "fake": {"phases": ["Failed", "Succeeded"]}},
            pod("ok"),
        ],
        {"wf[0].a": (["wf[0].a(0)", "wf[0].a(1)"], None), "wf[0].a(1)": (["wf[1]"], None), "wf[0].a(0)": ([], None)},
        "operator.go getOutboundNodes (NodeTypeRetry: the last child)",
    ),
    (
        "a step's exit handler is a child of the step, not of its group",
        [
            {"name": "main", "steps": [[{"name": "a", "template": "ok", "onExit": "ok"}]]},
            pod("ok"),
        ],
        {"wf[0]": (["wf[0].a"], None), "wf[0].a": (["wf[0].a.onExit"], None)},
        "exit_handler.go runOnExitNode: addChildNode(parentNode.Name, onExitNodeName)",
    ),
]


@pytest.mark.parametrize(("what", "templates", "expected", "source"), CASES, ids=[c[0][:60] for c in CASES])
def test_children_and_outbound_nodes(engine_settings: Any, what: str, templates: Any, expected: Any, source: str) -> None:
    name, doc = _run(wf(templates), engine_settings)
    nodes = _by_name(name, doc)
    for node_name, (children, outbound) in expected.items():
        node = nodes[node_name]
        assert _names(name, doc, node.get("children") or []) == sorted(children), (what, node_name, source)
        if outbound is None:
            assert "outboundNodes" not in node, (what, node_name)
        else:
            assert _names(name, doc, node["outboundNodes"]) == sorted(outbound), (what, node_name, source)
    # the tree (argo get) still shows every node once, each group under its own steps node
    lines = tree_lines(doc)
    shown = [n for n in nodes.values() if n["type"] != "StepGroup"]
    assert sum(1 for line in lines if "●" in line or "✔" in line or "✖" in line) == len(shown), lines


# (what, nodes, node id, outbound ids, Argo's source)
OUTBOUND = [
    ("a pod is its own", {"p": {"type": "Pod"}}, "p", ["p"], "getOutboundNodes: NodeTypePod"),
    ("a skipped node is its own", {"s": {"type": "Skipped"}}, "s", ["s"], "NodeTypeSkipped"),
    ("an empty TaskGroup is its own", {"g": {"type": "TaskGroup"}}, "g", ["g"], "NodeTypeTaskGroup without children"),
    (
        "a TaskGroup's are its children's",
        {"g": {"type": "TaskGroup", "children": ["a", "b"]}, "a": {"type": "Pod"}, "b": {"type": "Pod"}},
        "g",
        ["a", "b"],
        "NodeTypeTaskGroup",
    ),
    (
        "a memoization hit (steps node that did not run) is its own",
        {"m": {"type": "Steps", "memoizationStatus": {"hit": True}}},
        "m",
        ["m"],
        "NodeTypeSteps with MemoizationStatus.Hit (operator_test.go TestGetOutboundNodesFromCacheHitSteps)",
    ),
    (
        "a steps node that did run has those it recorded",
        {"m": {"type": "Steps", "outboundNodes": ["p"]}, "p": {"type": "Pod"}},
        "m",
        ["p"],
        "OutboundNodes",
    ),
    (
        "a containerSet pod's are its last containers; a container with a next step below it is its own",
        {
            "p": {"type": "Pod", "children": ["c1"], "boundaryID": "s"},
            "c1": {"type": "Container", "children": ["c2"], "boundaryID": "p"},
            "c2": {"type": "Container", "children": ["next"], "boundaryID": "p"},
            "next": {"type": "StepGroup", "boundaryID": "s"},
        },
        "p",
        ["c2"],
        "NodeTypePod of a containerSet falls through to NodeTypeContainer",
    ),
]


@pytest.mark.parametrize(("what", "nodes", "nid", "expected", "source"), OUTBOUND, ids=[c[0][:50] for c in OUTBOUND])
def test_outbound_nodes(what: str, nodes: Any, nid: str, expected: list[str], source: str) -> None:
    assert outbound_nodes(nodes, nid) == expected, (what, source)


WFT = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "WorkflowTemplate",
    "metadata": {"name": "wft-1"},
    "spec": {"templates": [{"name": "steps", "steps": [[{"name": "hello", "template": "ok"}]]}, pod("ok")]},
}


def test_template_scope_is_where_each_template_was_resolved_from(engine_settings: Any) -> None:
    """operator_template_scope_test.go TestTemplateScope: a node's ``templateScope`` is its caller's scope
    (``executeTemplate``: ``tmplCtx.GetTemplateScope()``); a StepGroup's, its steps template's own."""
    manifest = wf([{"name": "main", "steps": [[{"name": "step", "templateRef": {"name": "wft-1", "template": "steps"}}]]}])
    name, doc = _run(manifest, engine_settings, (WFT,))
    scopes = {n: node.get("templateScope") for n, node in _by_name(name, doc).items()}
    assert scopes == {
        "wf": f"local/{name}",
        "wf[0]": f"local/{name}",
        "wf[0].step": f"local/{name}",
        "wf[0].step[0]": "namespaced/wft-1",
        "wf[0].step[0].hello": "namespaced/wft-1",
    }


@pytest.mark.parametrize(
    ("what", "template", "expected"),
    [
        (
            "supplied outputs take the output's default, else the same-named input's default",
            {
                "inputs": {"parameters": [{"name": "input", "default": "Hello World"}, {"name": "select", "default": "default"}]},
                "outputs": {
                    "parameters": [
                        {"name": "input", "valueFrom": {"supplied": {}}},
                        {"name": "select", "valueFrom": {"supplied": {}, "default": "own"}},
                    ]
                },
            },
            [{"name": "input", "value": "Hello World"}, {"name": "select", "value": "own"}],
        ),
        (
            "a supplied output without any default fails the node with Argo's message",
            {"outputs": {"parameters": [{"name": "message", "valueFrom": {"supplied": {}}}]}},
            "raw output parameter 'message' has not been set and does not have a default value",
        ),
    ],
)
def test_suspend_outputs_when_the_duration_passed(what: str, template: dict[str, Any], expected: Any) -> None:
    """operator_test.go TestSuspendTimeoutWithInputDefaults; e2e suspend_test.go TestSuspendNodeTimeoutWithoutDefaultValue."""
    tmpl = {"name": "wait", "suspend": {"duration": "0"}, **template}
    if isinstance(expected, str):
        with pytest.raises(EngineError, match=expected):
            timed_out_outputs(tmpl)
    else:
        assert timed_out_outputs(tmpl) == expected, what


def test_exit_hook_arguments_keep_what_does_not_resolve(engine_settings: Any) -> None:
    """e2e functional_test.go TestWorkflowExitHandlerCrashEnsureNodeIsPresent: the exit hook of a failed step
    runs with the unresolved reference as its input (``resolveExitTmplArgument`` allows unresolved tags) and
    records its inputs; before, the hook node errored without inputs."""
    manifest = wf(
        [
            {
                "name": "main",
                "steps": [
                    [
                        {
                            "name": "step1",
                            "template": "bad",
                            "hooks": {
                                "exit": {
                                    "template": "hook",
                                    "arguments": {
                                        "parameters": [{"name": "p", "value": "{{steps.step1.outputs.parameters.out}}"}]
                                    },
                                }
                            },
                        }
                    ]
                ],
            },
            pod("bad", phase="Failed"),
            {"name": "hook", "inputs": {"parameters": [{"name": "p"}]}, "steps": [[{"name": "x", "template": "ok"}]]},
            pod("ok"),
        ]
    )
    name, doc = _run(manifest, engine_settings)
    hook = _by_name(name, doc)["wf[0].step1.onExit"]
    assert hook["phase"] == "Succeeded"
    assert hook["inputs"]["parameters"] == [{"name": "p", "value": "{{steps.step1.outputs.parameters.out}}"}]


def _baseline(runs: Path, name: str, created: str, phase: str, seconds: int, namespace: str = "default") -> None:
    """A finished run of template ``basic`` in ``runs``: the workflow ``seconds`` long, its root node 2 s."""
    folder = runs / name
    folder.mkdir(parents=True)
    doc = {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "creationTimestamp": created,
            "labels": {"workflows.argoproj.io/workflow-template": "basic", "workflows.argoproj.io/phase": phase},
        },
        "status": {
            "phase": phase,
            "startedAt": "2026-01-01T00:00:00Z",
            "finishedAt": f"2026-01-01T00:00:{seconds:02d}Z",
            "nodes": {
                f"{name}-1": {
                    "name": name,
                    "phase": phase,
                    "startedAt": "2026-01-01T00:00:01Z",
                    "finishedAt": "2026-01-01T00:00:03Z",
                },
                f"{name}-2": {
                    "name": f"{name}.quick",
                    "phase": "Succeeded",
                    "startedAt": "2026-01-01T00:00:01Z",
                    "finishedAt": "2026-01-01T00:00:01Z",
                },
                f"{name}-3": {
                    "name": f"{name}.skipped",
                    "phase": "Skipped",
                    "startedAt": "2026-01-01T00:00:01Z",
                    "finishedAt": "2026-01-01T00:00:01Z",
                },
            },
        },
    }
    (folder / "status.json").write_text(json.dumps(doc))


# (what, baselines (name, created, phase, seconds, namespace), this run's labels, workflow estimate, node estimates)
ESTIMATES = [
    (
        "the newest Succeeded run of the same template is the baseline",
        [("old", "2026-01-01T00:00:00Z", "Succeeded", 7, "default"), ("new", "2026-01-02T00:00:00Z", "Succeeded", 9, "default")],
        {"workflows.argoproj.io/workflow-template": "basic"},
        9,
        {"run": 2, "run.quick": 1, "run.skipped": 0, "run.absent": 0},
    ),
    (
        "runs that did not succeed and runs of other namespaces are no baseline",
        [
            ("ok", "2026-01-01T00:00:00Z", "Succeeded", 7, "default"),
            ("failed", "2026-01-02T00:00:00Z", "Failed", 9, "default"),
            ("elsewhere", "2026-01-03T00:00:00Z", "Succeeded", 11, "other"),
        ],
        {"workflows.argoproj.io/workflow-template": "basic"},
        7,
        {"run": 2},
    ),
    (
        "a run without a template label has no estimate",
        [("ok", "2026-01-01T00:00:00Z", "Succeeded", 7, "default")],
        {},
        0,
        {"run": 0},
    ),
]


@pytest.mark.parametrize(("what", "baselines", "labels", "workflow", "nodes"), ESTIMATES, ids=[c[0][:50] for c in ESTIMATES])
def test_estimated_durations(tmp_path: Path, what: str, baselines: Any, labels: Any, workflow: int, nodes: Any) -> None:
    """estimation/estimator_factory.go NewEstimator (the baseline), estimator.go EstimateWorkflowDuration and
    EstimateNodeDuration (the node of the same name, the run's name replaced); e2e estimated_duration_test.go."""
    for base in baselines:
        _baseline(tmp_path, *base)
    est = Estimator.for_run(tmp_path, {"metadata": {"name": "run", "labels": labels}})
    assert est.workflow() == workflow, what
    assert {n: est.node(n) for n in nodes} == nodes, what


def test_a_run_records_its_estimates(engine_settings: Any) -> None:
    """operator.go operate (status.estimatedDuration) and initializeNode (each node's estimatedDuration)."""
    runs = engine_settings.home / "runs"
    _baseline(runs, "basic-prev", "2026-01-01T00:00:00Z", "Succeeded", 5)
    manifest = wf([pod("main")])
    manifest["metadata"]["labels"] = {"workflows.argoproj.io/workflow-template": "basic"}
    name, doc = _run(manifest, engine_settings)
    assert doc["status"]["estimatedDuration"] == 5
    assert _by_name(name, doc)["wf"]["estimatedDuration"] == 2  # the baseline's root node (its name, renamed)
