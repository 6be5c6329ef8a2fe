"""Scheduler semantics in-process, with a fake node kind instead of processes — the way Argo's controller
tests run ``woc.operate`` with pods set to a phase (``workflow/controller/operator_test.go``,
``dag_test.go``). The fake kind is registered in the engine's node-kind registry (one ``NodeKind`` and a
``with_kind`` line: the same path a real new kind takes), so it drives checking and running alike.

A ``fake`` template's body says what its pod does: ``phase`` (or ``phases``, one per attempt),
``outputs`` (parameters), ``refuse`` (its check refuses it before anything runs), ``raise`` (an engine fault:
the kind raises while the pod runs).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest

from scanflow_argo.engine import REGISTRY, NodeKind, prepare_run, run_workflow
from scanflow_argo.engine.api import execute, resume
from scanflow_argo.engine.core.context import Call
from scanflow_argo.engine.core.state import NodeDoc, node_id, read_status
from scanflow_argo.engine.kinds.base import CheckContext, KindContext
from scanflow_argo.errors import NotSupportedLocally


class FakePods:
    """The fake kind and what it saw: the attempts it ran and how many ran at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ran: list[str] = []
        self.now = 0
        self.most = 0
        self.kinds = REGISTRY.with_kind(NodeKind("fake", "Pod", self.check, self.run))

    def check(self, tmpl: Mapping[str, Any], where: str, cc: CheckContext) -> None:
        if (tmpl.get("fake") or {}).get("refuse"):
            raise NotSupportedLocally("a fake pod that says so", where)

    def run(self, ctx: KindContext, call: Call) -> NodeDoc:
        reused = ctx.reuse(node_id(ctx.name, call.name), call.parent, call.template)
        if reused is not None:
            return reused
        spec = call.template.get("fake") or {}
        node = ctx.new_node(call.name, call.display, "Pod", call.parent, call.template)
        if spec.get("raise"):  # an engine fault while the pod runs
            raise RuntimeError(spec["raise"])
        with ctx.pod_slots:
            with self.lock:
                self.ran.append(call.display)
                self.now += 1
                self.most = max(self.most, self.now)
            time.sleep(float(spec.get("seconds", 0)))
            with self.lock:
                self.now -= 1
        phases = spec.get("phases") or [spec.get("phase", "Succeeded")]
        phase = phases[min(call.retries, len(phases) - 1)]
        params = [{"name": k, "value": str(v)} for k, v in (spec.get("outputs") or {}).items()]
        if params:
            node["outputs"] = {"parameters": params}
            ctx.register_globals(call.template, node["outputs"])
        return ctx.finish(node, phase, None if phase == "Succeeded" else f"fake pod {phase}")


def wf(templates: list[dict[str, Any]], entrypoint: str = "main", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "fake-"},
        "spec": {"entrypoint": entrypoint, "templates": templates, **spec},
    }


def pod(name: str, **fake: Any) -> dict[str, Any]:
    return {"name": name, "fake": fake}


def phases_of(run: Any) -> dict[str, str]:
    """Node phases by display name, the workflow's own node (and its attempts) called ``main``."""
    return {n.display_name.replace(run.name, "main", 1): n.phase for n in run.nodes.values()}


# (what, templates, workflow phase, node phases expected, Argo's source)
CASES = [
    (
        "a failed step fails its group and the steps node; later groups do not run",
        [
            {"name": "main", "steps": [[{"name": "a", "template": "bad"}], [{"name": "b", "template": "ok"}]]},
            pod("bad", phase="Failed"),
            pod("ok"),
        ],
        "Failed",
        {"a": "Failed", "[0]": "Failed"},
        "steps.go executeStepGroup; operator_test.go TestWorkflowStepRetry",
    ),
    (
        "continueOn.failed lets the steps go on and the workflow succeed",
        [
            {
                "name": "main",
                "steps": [[{"name": "a", "template": "bad", "continueOn": {"failed": True}}], [{"name": "b", "template": "ok"}]],
            },
            pod("bad", phase="Failed"),
            pod("ok"),
        ],
        "Succeeded",
        {"a": "Failed", "b": "Succeeded"},
        "steps.go:373-380; e2e functional_test.go TestContinueOnFail",
    ),
    (
        "retries: the Retry node ends with the attempt that succeeded",
        [{"name": "main", "retryStrategy": {"limit": 2}, "fake": {"phases": ["Failed", "Failed", "Succeeded"]}}],
        "Succeeded",
        {"main(0)": "Failed", "main(1)": "Failed", "main(2)": "Succeeded"},
        "operator_test.go TestProcessNodeRetries",
    ),
    (
        "retries: limit reached, the Retry node fails as its last attempt",
        [{"name": "main", "retryStrategy": {"limit": 1}, "fake": {"phase": "Failed"}}],
        "Failed",
        {"main(0)": "Failed", "main(1)": "Failed"},
        "operator_test.go TestProcessNodeRetries",
    ),
    (
        "retryPolicy OnError does not retry a Failed attempt",
        [{"name": "main", "retryStrategy": {"limit": 3, "retryPolicy": "OnError"}, "fake": {"phase": "Failed"}}],
        "Failed",
        {"main(0)": "Failed"},
        "operator_test.go TestProcessNodeRetriesOnErrors",
    ),
    (
        "depends: A.Failed runs the handler, the plain dependant is omitted, the DAG fails on A",
        [
            {
                "name": "main",
                "dag": {
                    "tasks": [
                        {"name": "A", "template": "bad"},
                        {"name": "handler", "template": "ok", "depends": "A.Failed"},
                        {"name": "next", "template": "ok", "depends": "A"},
                    ]
                },
            },
            pod("bad", phase="Failed"),
            pod("ok"),
        ],
        "Failed",
        {"A": "Failed", "handler": "Succeeded", "next": "Omitted"},
        "dag_test.go TestEvaluateDependsLogic, TestEvaluateDependsLogicWhenTaskOmitted",
    ),
    (
        "failFast: false lets independent tasks run after a failure",
        [
            {
                "name": "main",
                "dag": {
                    "failFast": False,
                    "tasks": [
                        {"name": "A", "template": "bad"},
                        {"name": "B", "template": "ok", "depends": "C"},
                        {"name": "C", "template": "ok"},
                    ],
                },
            },
            pod("bad", phase="Failed"),
            pod("ok"),
        ],
        "Failed",
        {"A": "Failed", "B": "Succeeded", "C": "Succeeded"},
        "dag_test.go TestDagDisableFailFast",
    ),
]


@pytest.mark.parametrize(("what", "templates", "phase", "nodes", "source"), CASES, ids=[c[0] for c in CASES])
def test_phases_retries_and_depends(engine_settings, what, templates, phase, nodes, source) -> None:  # type: ignore[no-untyped-def]
    fake = FakePods()
    run = run_workflow(wf(templates), engine_settings, kinds=fake.kinds)
    assert run.phase == phase, (what, run.message)
    got = phases_of(run)
    assert {k: got.get(k) for k in nodes} == nodes, (what, source)


def test_an_engine_fault_in_a_dag_task_names_itself_and_the_other_branches_finish(engine_settings, capfd) -> None:  # type: ignore[no-untyped-def]
    """A fault of the engine's own (here the kind raises) in one fanned-out task fails that task and the DAG
    with the fault's text and its traceback in the engine's log; the DAG's other tasks still finish (CI once
    showed only "child 'c-loop' failed", the cause lost)."""
    fake = FakePods()
    templates = [
        {
            "name": "main",
            "dag": {
                "tasks": [
                    {
                        "name": "loop",
                        "template": "p",
                        "withItems": ["x", "y"],
                        "arguments": {"parameters": [{"name": "i", "value": "{{item}}"}]},
                    },
                    {"name": "other", "template": "ok"},
                ]
            },
        },
        {"name": "p", "inputs": {"parameters": [{"name": "i"}]}, "fake": {"raise": "boom"}},
        pod("ok", seconds=0.2),
    ]
    run = run_workflow(wf(templates), engine_settings, kinds=fake.kinds)
    assert run.phase in ("Failed", "Error")
    assert "child 'loop' failed: engine error in task 'loop': RuntimeError: boom (see engine.log)" in run.message, run.message
    assert phases_of(run)["other"] == "Succeeded"
    assert "RuntimeError: boom" in capfd.readouterr().err  # the traceback, for a bug report


def test_exit_handler_sees_the_workflow_status(engine_settings) -> None:  # type: ignore[no-untyped-def]
    """exit_handler.go / dag_test.go TestOnExitDAGPhase: onExit runs after a failure with workflow.status
    Failed, and the workflow keeps the entrypoint's phase."""
    fake = FakePods()
    templates = [
        pod("main", phase="Failed"),
        {
            "name": "exit",
            "inputs": {"parameters": [{"name": "s", "value": "{{workflow.status}}"}]},
            "fake": {"outputs": {"saw": "{{inputs.parameters.s}}"}},
        },
    ]
    run = run_workflow(wf(templates, onExit="exit"), engine_settings, kinds=fake.kinds)
    assert run.phase == "Failed"
    assert run.node(f"{run.name}.onExit").parameters()["saw"] == "Failed"
    assert fake.ran == [run.name, f"{run.name}.onExit"]


@pytest.mark.parametrize(("where", "limit"), [("spec", 2), ("template", 3)])
def test_parallelism_limits_pods_at_once(engine_settings, where, limit) -> None:  # type: ignore[no-untyped-def]
    """operator_test.go TestWorkflowParallelismLimit / TestStepsTemplateParallelismLimit: no more pods run
    at once than the workflow's (or the template's) parallelism."""
    fake = FakePods()
    main: dict[str, Any] = {"name": "main", "steps": [[{"name": "p", "template": "p", "withSequence": {"count": "8"}}]]}
    spec: dict[str, Any] = {}
    if where == "spec":
        spec["parallelism"] = limit
    else:
        main["parallelism"] = limit
    run = run_workflow(wf([main, pod("p", seconds=0.05)], **spec), engine_settings, kinds=fake.kinds)
    assert run.phase == "Succeeded"
    assert len(fake.ran) == 8 and fake.most == limit


def test_with_sequence_formats_as_go_does(engine_settings) -> None:  # type: ignore[no-untyped-def]
    """operator.go expandSequence: fmt.Sprintf(format, i), so %% and %v are Go's."""
    fake = FakePods()
    seq = [
        {"name": "p", "template": "p", "withSequence": {"start": "9", "end": "10", "format": "%%%03d"}},
        {"name": "q", "template": "p", "withSequence": {"count": "1", "format": "v%v-%d"}},
    ]
    run = run_workflow(wf([{"name": "main", "steps": [seq]}, pod("p")]), engine_settings, kinds=fake.kinds)
    assert run.phase == "Succeeded", run.message
    assert sorted(fake.ran) == ["p(0:%009)", "p(1:%010)", "q(0:v0-%!d(MISSING))"]


def test_the_registered_kind_is_checked_before_anything_runs(engine_settings) -> None:  # type: ignore[no-untyped-def]
    fake = FakePods()
    with pytest.raises(NotSupportedLocally, match="a fake pod that says so"):
        run_workflow(wf([pod("main", refuse=True)]), engine_settings, kinds=fake.kinds)
    assert fake.ran == []
    # unknown to the default registry: a template without a type, which Argo's validator fails (validateTemplateType)
    run = run_workflow(wf([pod("main")]), engine_settings)
    assert run.phase == "Failed" and (run.message or "").startswith("invalid spec: templates.main template type unspecified")


def test_resume_runs_only_what_did_not_finish(engine_settings) -> None:  # type: ignore[no-untyped-def]
    """A run whose engine died after the first step: resuming it runs the second step only, and keeps
    the first step's outputs for it (state written before and after each node)."""
    fake = FakePods()
    main = {
        "name": "main",
        "steps": [
            [{"name": "a", "template": "a"}],
            [
                {
                    "name": "b",
                    "template": "b",
                    "arguments": {"parameters": [{"name": "x", "value": "{{steps.a.outputs.parameters.x}}"}]},
                }
            ],
        ],
    }
    b = {"name": "b", "inputs": {"parameters": [{"name": "x"}]}, "fake": {"outputs": {"got": "{{inputs.parameters.x}}"}}}
    run_dir = prepare_run(wf([main, pod("a", outputs={"x": "42"}), b]), engine_settings, kinds=fake.kinds)
    first = execute(run_dir, engine_settings, kinds=fake.kinds)
    assert first.phase == "Succeeded" and fake.ran == ["a", "b"]
    # as if the engine had died right after a: b and everything after it never happened
    status = read_status(run_dir)
    b_id = node_id(first.name, f"{first.name}[1].b")
    keep = {k: v for k, v in status["status"]["nodes"].items() if v["displayName"] in ("a", "[0]")}
    status["status"] = {**status["status"], "phase": "Running", "nodes": keep, "finishedAt": None}
    (run_dir / "status.json").write_text(__import__("json").dumps(status))
    fake.ran.clear()
    again = resume(run_dir, engine_settings, kinds=fake.kinds)
    assert again.phase == "Succeeded"
    assert fake.ran == ["b"]  # a was not run again
    assert again.nodes[b_id].parameters()["got"] == "42"
