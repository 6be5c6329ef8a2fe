"""Lifecycle hooks with expressions in the local engine, run as a user runs workflows: real engine, real
shell steps that append marker lines to a file under the engine's home. Argo's semantics
(``workflow/controller/hooks.go``): a hook runs once, when its expression becomes true, as node
``<parent>.hooks.<name>`` under the hooked node; the step (and the workflow) waits for its fired hooks;
``workflow.status == "Succeeded"`` is true after the entrypoint completed, before the exit handler; a failed
hook changes no phase."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from scanflow_argo import _proc
from scanflow_argo.engine import prepare_run, resume, run_workflow
from scanflow_argo.engine.core.state import read_status
from scanflow_argo.platform.base import NodeStatus, RunStatus
from scanflow_argo.settings import Settings


def wf(templates: list[dict], marks: Path, entrypoint: str = "main", **spec: object) -> dict:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "hooks-"},
        "spec": {
            "entrypoint": entrypoint,
            "arguments": {"parameters": [{"name": "marks", "value": str(marks)}]},
            "templates": templates,
            **spec,
        },
    }


def mark(name: str, extra: str = "") -> dict:
    """A step that appends its ``tag`` input to the marks file."""
    return {
        "name": name,
        "inputs": {"parameters": [{"name": "tag"}]},
        "container": {
            "image": "busybox",
            "command": ["sh", "-c"],
            "args": [f'echo "{{{{inputs.parameters.tag}}}}" >> "{{{{workflow.parameters.marks}}}}"{extra}'],
        },
    }


def work(name: str = "work", script: str = "sleep 0.3; echo done") -> dict:
    return {"name": name, "container": {"image": "busybox", "command": ["sh", "-c"], "args": [script]}}


def hook(expression: str, tag: str, template: str = "mark") -> dict:
    return {"expression": expression, "template": template, "arguments": {"parameters": [{"name": "tag", "value": tag}]}}


def lines(marks: Path) -> list[str]:
    return marks.read_text().split() if marks.exists() else []


def by_name(run: RunStatus, name: str) -> NodeStatus | None:
    found = [n for n in run.nodes.values() if n.name == name]
    return found[0] if found else None


@pytest.fixture
def marks(engine_settings: Settings) -> Path:
    folder = engine_settings.home / "marks"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "marks.txt"


def test_workflow_level_hooks_run_once_when_true_and_succeeded_runs_before_the_exit_handler(engine_settings, marks) -> None:  # type: ignore[no-untyped-def]
    manifest = wf(
        [
            {"name": "main", "steps": [[{"name": "one", "template": "work"}], [{"name": "two", "template": "work"}]]},
            work(),
            mark("mark"),
        ],
        marks,
        hooks={
            "exit": {"template": "mark", "arguments": {"parameters": [{"name": "tag", "value": "exit"}]}},
            "running": hook('workflow.status == "Running"', "running"),
            "succeeded": hook('workflow.status == "Succeeded"', "succeeded-{{workflow.status}}"),
            "failed": hook('workflow.status == "Failed"', "failed"),
        },
    )
    run = run_workflow(manifest, engine_settings)
    assert run.phase == "Succeeded", run.message
    # running fires once although the status changed many times; succeeded is seen before onExit runs
    assert lines(marks) == ["running", "succeeded-Succeeded", "exit"]
    root = by_name(run, run.name)
    assert root is not None
    for name in ("running", "succeeded"):
        node = by_name(run, f"{run.name}.hooks.{name}")
        assert node is not None and node.phase == "Succeeded"
        assert node.id in root.children  # a child of the workflow's node, as Argo's addChildNode(wf.Name, …)
    assert by_name(run, f"{run.name}.hooks.failed") is None  # its expression never became true
    status = read_status(engine_settings.home / "runs" / run.name)
    hooked = [n for n in status["status"]["nodes"].values() if ".hooks." in n["name"]]
    assert hooked and all(n.get("nodeFlag") == {"hooked": True} for n in hooked)


def test_step_hooks_on_running_and_succeeded_run_under_the_step_and_the_next_group_waits(engine_settings, marks) -> None:  # type: ignore[no-untyped-def]
    step_a = {
        "name": "a",
        "template": "work",
        "hooks": {
            "started": hook('steps.a.status == "Running"', "a-running"),
            "done": hook('steps.a.status == "Succeeded"', "a-done-{{steps.a.outputs.result}}"),
            "broke": hook('steps.a.status == "Failed"', "a-failed"),
        },
    }
    manifest = wf(
        [
            {"name": "main", "steps": [[step_a], [{"name": "b", "template": "after"}]]},
            work(),
            mark("mark", "; sleep 0.3"),
            work("after", 'echo b >> "{{workflow.parameters.marks}}"'),
        ],
        marks,
    )
    run = run_workflow(manifest, engine_settings)
    assert run.phase == "Succeeded", run.message
    assert lines(marks) == ["a-running", "a-done-done", "b"]  # the group of a completes after its hooks
    a = by_name(run, f"{run.name}[0].a")
    assert a is not None
    for name in ("started", "done"):
        node = by_name(run, f"{run.name}[0].a.hooks.{name}")
        assert node is not None and node.phase == "Succeeded"
        assert node.id in a.children
        assert node.display_name == f"a.hooks.{name}"
    assert by_name(run, f"{run.name}[0].a.hooks.broke") is None


def test_a_dag_task_hook_runs_under_its_task_and_a_failed_hook_changes_no_phase(engine_settings, marks) -> None:  # type: ignore[no-untyped-def]
    dag = {
        "name": "main",
        "dag": {
            "tasks": [
                {
                    "name": "t",
                    "template": "work",
                    "hooks": {
                        "done": hook('tasks.t.status == "Succeeded"', "t-done"),
                        "bad": hook('tasks.t.status == "Succeeded"', "t-bad", template="bad"),
                    },
                },
                {"name": "u", "template": "after", "depends": "t"},
            ]
        },
    }
    manifest = wf(
        [dag, work(), mark("mark"), mark("bad", "; exit 3"), work("after", 'echo u >> "{{workflow.parameters.marks}}"')],
        marks,
    )
    run = run_workflow(manifest, engine_settings)
    assert run.phase == "Succeeded", run.message  # Argo: the phase comes from the entrypoint (and onExit) only
    assert sorted(lines(marks)[:2]) == ["t-bad", "t-done"] and lines(marks)[2:] == ["u"]
    t = by_name(run, f"{run.name}.t")
    done, bad = by_name(run, f"{run.name}.t.hooks.done"), by_name(run, f"{run.name}.t.hooks.bad")
    assert t is not None and done is not None and bad is not None
    assert {done.id, bad.id} <= set(t.children)
    assert (done.phase, bad.phase) == ("Succeeded", "Failed")


def test_a_hook_without_an_expression_or_with_an_unknown_template_fails_the_workflow_as_argo(engine_settings, marks) -> None:  # type: ignore[no-untyped-def]
    """Argo's controller validates the workflow when it first operates it and fails it with ``invalid spec``
    (``workflow/validate/validate.go`` validateHooks, validateTemplateHolder; hooks_test.go TestWfHookNoExpression,
    TestStepHookNoExpression): the run is made and ends Failed at once, nothing runs."""
    templates = [{"name": "main", "steps": [[{"name": "a", "template": "work"}]]}, work(), mark("mark")]
    no_expr = wf(templates, marks, hooks={"running": {"template": "mark"}})
    run = run_workflow(no_expr, engine_settings)
    assert (run.phase, run.message, dict(run.nodes)) == ("Failed", "invalid spec: hooks.running Expression required", {})
    unknown = wf(templates, marks, hooks={"running": {"expression": "true", "template": "nope"}})
    run = run_workflow(unknown, engine_settings)
    assert (run.phase, run.message) == ("Failed", "invalid spec: template name 'nope' undefined")
    step_no_expr = [
        {"name": "main", "steps": [[{"name": "a", "template": "work", "hooks": {"x": {"template": "mark"}}}]]},
        work(),
        mark("mark"),
    ]
    run = run_workflow(wf(step_no_expr, marks), engine_settings)
    assert (run.phase, run.message) == ("Failed", "invalid spec: templates.main.steps[0].a.x Expression required")
    assert not marks.exists()


def test_an_expression_that_cannot_be_evaluated_makes_the_workflow_an_error(engine_settings, marks) -> None:  # type: ignore[no-untyped-def]
    manifest = wf(
        [{"name": "main", "steps": [[{"name": "a", "template": "work"}]]}, work(), mark("mark")],
        marks,
        hooks={"odd": hook('workflow.status + 1 == "x"', "odd")},
    )
    run = run_workflow(manifest, engine_settings)
    assert run.phase == "Error"
    assert "lifecycle hook 'odd'" in (run.message or "")
    assert lines(marks) == []


def slow_running(run_dir: Path) -> bool:
    try:
        nodes = read_status(run_dir)["status"].get("nodes") or {}
    except (OSError, ValueError, KeyError):
        return False  # not written yet, or caught mid-write
    return any(n["name"].endswith(".slow") and n["phase"] == "Running" for n in nodes.values())


def test_a_resumed_run_continues_its_recorded_hooks_without_running_them_again(engine_settings, marks) -> None:  # type: ignore[no-untyped-def]
    go = marks.parent / "go"
    step_a = {"name": "a", "template": "work", "hooks": {"started": hook('steps.a.status == "Running"', "a-running")}}
    manifest = wf(
        [
            {"name": "main", "steps": [[step_a], [{"name": "slow", "template": "slow"}]]},
            work(),
            work("slow", f'test -e "{go}" || sleep 60'),
            mark("mark"),
        ],
        marks,
    )
    run_dir = prepare_run(manifest, engine_settings)
    engine = _proc.spawn(
        [engine_settings.engine.python, "-m", "scanflow_argo.platform.local_engine", str(run_dir)],
        name="engine",
        log=run_dir / "engine.log",
    )
    try:
        deadline = time.monotonic() + 30
        while not slow_running(run_dir):
            assert time.monotonic() < deadline, "the slow step never started"
            time.sleep(0.05)
        os.killpg(engine.pid, signal.SIGKILL)  # kill -9: the run is left Running
        engine.popen.wait(timeout=10)
    finally:
        engine.stop(timeout=2)
    assert lines(marks) == ["a-running"]
    go.write_text("")
    run = resume(run_dir, engine_settings)
    assert run.phase == "Succeeded", run.message
    assert lines(marks) == ["a-running"]  # the hook's pod finished before: continued, not run again
    node = by_name(run, f"{run.name}[0].a.hooks.started")
    assert node is not None and node.phase == "Succeeded"


def test_a_looped_dag_task_hook_watches_its_task_group_once(engine_settings, marks) -> None:  # type: ignore[no-untyped-def]
    dag = {
        "name": "main",
        "dag": {
            "tasks": [
                {
                    "name": "l",
                    "template": "work",
                    "withItems": [1, 2, 3],
                    "hooks": {"done": hook('tasks.l.status == "Succeeded"', "l-done")},
                }
            ]
        },
    }
    run = run_workflow(wf([dag, work(script="echo hi"), mark("mark")], marks), engine_settings)
    assert run.phase == "Succeeded", run.message
    assert lines(marks) == ["l-done"]
    group = by_name(run, f"{run.name}.l")
    done = by_name(run, f"{run.name}.l.hooks.done")
    assert group is not None and group.type == "TaskGroup" and done is not None
    assert done.id in group.children
    assert not [n for n in run.nodes.values() if n.name.startswith(f"{run.name}.l(") and ".hooks." in n.name]
