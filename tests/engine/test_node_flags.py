"""Node flags, Retry nodes and failFast messages as Argo records them, in-process with the fake node kind
of ``test_scheduler.py``: ``nodeFlag`` (``retried`` on each attempt of a Retry node, ``hooked`` on exit
handlers and lifecycle hooks: ``executeTemplateOpts.nodeFlag`` in ``workflow/controller/operator.go``,
``exit_handler.go`` ``runOnExitNode``, ``hooks.go``), the workflow-level ``retryStrategy``
(``operator.go`` ``retryStrategy()``: a template without its own takes the workflow's), and a template's
``failFast`` (``operator.go`` ``checkParallelism``)."""

from __future__ import annotations

from typing import Any

import pytest

from scanflow_argo.engine import prepare_run
from scanflow_argo.engine.api import execute
from scanflow_argo.engine.core.state import read_status

from .test_scheduler import FakePods, pod, wf

FAIL_FAST = "template has failed or errored children and failFast enabled"


def _run(manifest: dict[str, Any], settings: Any) -> tuple[str, dict[str, Any], dict[str, dict[str, Any]]]:
    """The run's name, status, and its nodes by display name (the workflow's name written ``wf``)."""
    fake = FakePods()
    run_dir = prepare_run(manifest, settings, kinds=fake.kinds)
    execute(run_dir, settings, kinds=fake.kinds)
    doc = read_status(run_dir)
    name = doc["metadata"]["name"]
    nodes = {n["displayName"].replace(name, "wf", 1): n for n in doc["status"]["nodes"].values()}
    return name, doc["status"], nodes


# (what, templates, workflow spec, {node display: (type, phase, nodeFlag or None when absent)}, Argo's source)
CASES = [
    (
        "each attempt of a Retry node is flagged retried; the Retry node has no flag",
        [{"name": "main", "retryStrategy": {"limit": 1}, "fake": {"phase": "Failed"}}],
        {},
        {
            "wf": ("Retry", "Failed", None),
            "wf(0)": ("Pod", "Failed", {"retried": True}),
            "wf(1)": ("Pod", "Failed", {"retried": True}),
        },
        "e2e retry_test.go TestRetryLimit; operator.go executeTemplate: opts.nodeFlag.Retried = true",
    ),
    (
        "a workflow-level retryStrategy makes the root a Retry node (operator.go retryStrategy())",
        [pod("main", phases=["Failed", "Succeeded"])],
        {"retryStrategy": {"limit": 2}},
        {
            "wf": ("Retry", "Succeeded", None),
            "wf(0)": ("Pod", "Failed", {"retried": True}),
            "wf(1)": ("Pod", "Succeeded", {"retried": True}),
        },
        "e2e functional_test.go TestWorkflowLevelErrorRetryPolicy",
    ),
    (
        "a template's own retryStrategy wins over the workflow's",
        [{"name": "main", "retryStrategy": {"limit": 0}, "fake": {"phase": "Failed"}}],
        {"retryStrategy": {"limit": 3}},
        {"wf": ("Retry", "Failed", None), "wf(0)": ("Pod", "Failed", {"retried": True})},
        "operator.go retryStrategy(): tmpl.RetryStrategy first",
    ),
    (
        "the workflow's exit handler is flagged hooked, its entrypoint not",
        [pod("main"), pod("exit")],
        {"onExit": "exit"},
        {"wf": ("Pod", "Succeeded", None), "wf.onExit": ("Pod", "Succeeded", {"hooked": True})},
        "operator.go operate (onExitTemplate, NodeFlag{Hooked: true}); e2e hooks_test.go TestExitHandlerWithWorkflowLevelDeadline",
    ),
    (
        "a step's exit handler is flagged hooked",
        [
            {"name": "main", "steps": [[{"name": "a", "template": "ok", "onExit": "ok"}]]},
            pod("ok"),
        ],
        {},
        {"a": ("Pod", "Succeeded", None), "a.onExit": ("Pod", "Succeeded", {"hooked": True})},
        "exit_handler.go runOnExitNode; operator_test.go TestStepsOnExit",
    ),
    (
        "a retried exit handler: its Retry node hooked, its attempts hooked and retried",
        [pod("main"), {"name": "exit", "retryStrategy": {"limit": 1}, "fake": {"phases": ["Failed", "Succeeded"]}}],
        {"onExit": "exit"},
        {
            "wf.onExit": ("Retry", "Succeeded", {"hooked": True}),
            "wf.onExit(0)": ("Pod", "Failed", {"hooked": True, "retried": True}),
        },
        "operator.go executeTemplate: the Retry node takes opts.nodeFlag, then Retried is set on it for the attempts",
    ),
    (
        "a lifecycle hook's node is flagged hooked",
        [pod("main"), pod("hook")],
        {"hooks": {"done": {"template": "hook", "expression": 'workflow.status == "Succeeded"'}}},
        {"wf": ("Pod", "Succeeded", None), "wf.hooks.done": ("Pod", "Succeeded", {"hooked": True})},
        "hooks.go executeWfLifeCycleHook: NodeFlag{Hooked: true}; e2e hooks_test.go TestWorkflowLevelHooksWithRetry",
    ),
]


@pytest.mark.parametrize(("what", "templates", "spec", "want", "source"), CASES, ids=[c[0] for c in CASES])
def test_node_flags_and_retry_nodes(engine_settings, what, templates, spec, want, source) -> None:  # type: ignore[no-untyped-def]
    _, _, nodes = _run(wf(templates, **spec), engine_settings)
    got = {k: (nodes[k]["type"], nodes[k]["phase"], nodes[k].get("nodeFlag")) for k in want if k in nodes}
    assert got == want, (what, source, sorted(nodes))


def test_retry_limit_message_and_progress(engine_settings) -> None:  # type: ignore[no-untyped-def]
    """e2e retry_test.go TestRetryLimit: limit 0, one failed attempt: 'No more retries left', progress 0/1."""
    _, status, nodes = _run(wf([{"name": "main", "retryStrategy": {"limit": 0}, "fake": {"phase": "Failed"}}]), engine_settings)
    assert (status["phase"], status["message"], status["progress"]) == ("Failed", "No more retries left", "0/1")
    assert nodes["wf"]["message"] == "No more retries left"


@pytest.mark.parametrize(
    ("what", "main", "phase", "message", "failed_node"),
    [
        (
            "steps: the template and its last StepGroup",
            {
                "name": "main",
                "failFast": True,
                "parallelism": 2,
                "steps": [[{"name": "a", "template": "bad"}, {"name": "b", "template": "ok"}]],
            },
            "Failed",
            FAIL_FAST,
            "[0]",
        ),
        (
            "dag: the template",
            {
                "name": "main",
                "failFast": True,
                "parallelism": 2,
                "dag": {"tasks": [{"name": "a", "template": "bad"}, {"name": "b", "template": "ok"}]},
            },
            "Failed",
            FAIL_FAST,
            "wf",
        ),
        (
            "without failFast the message names the failed child",
            {"name": "main", "steps": [[{"name": "a", "template": "bad"}, {"name": "b", "template": "ok"}]]},
            "Failed",
            "child '",
            "wf",
        ),
    ],
)
def test_fail_fast_message(engine_settings, what, main, phase, message, failed_node) -> None:  # type: ignore[no-untyped-def]
    """e2e functional_test.go TestWorkflowParallelismStepFailFast / TestWorkflowParallelismDAGFailFast:
    the other child still completes; the template fails with Argo's failFast message."""
    _, status, nodes = _run(wf([main, pod("bad", phase="Failed"), pod("ok")]), engine_settings)
    assert status["phase"] == phase, what
    assert status["message"].startswith(message), (what, status["message"])
    assert nodes[failed_node]["message"].startswith(message), what
    assert nodes["b"]["phase"] == "Succeeded", what


@pytest.mark.parametrize(
    ("main_phase", "want"),
    [("Succeeded", {"t": "Succeeded", "s": "Succeeded"}), ("Failed", {"t": "Failed", "s": "Failed"})],
)
def test_workflow_exit_hook_arguments_see_the_final_status(engine_settings, main_phase, want) -> None:  # type: ignore[no-untyped-def]
    """e2e functional_test.go TestWorkflowHookParameterTemplates: ``hooks.exit.arguments`` with
    ``{{= workflow.status … }}`` are resolved when the exit handler starts, with the workflow's final status."""
    exit_tmpl = {
        "name": "exit",
        "inputs": {"parameters": [{"name": "t"}, {"name": "s"}]},
        "fake": {"outputs": {"t": "{{inputs.parameters.t}}", "s": "{{inputs.parameters.s}}"}},
    }
    args = [
        {"name": "t", "value": '{{= workflow.status == "Succeeded" ? "Succeeded" : "Failed" }}'},
        {"name": "s", "value": "{{= workflow.status }}"},
    ]
    manifest = wf(
        [pod("main", phase=main_phase), exit_tmpl], hooks={"exit": {"template": "exit", "arguments": {"parameters": args}}}
    )
    _, _, nodes = _run(manifest, engine_settings)
    exit_node = nodes["wf.onExit"]
    assert exit_node["phase"] == "Succeeded", exit_node.get("message")
    assert {p["name"]: p["value"] for p in exit_node["outputs"]["parameters"]} == want
    assert exit_node["nodeFlag"] == {"hooked": True}
