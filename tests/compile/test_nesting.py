"""DAGs past Argo 4's 200 tasks compile to nested DAGs that the API server accepts and that compute the same
results (argoproj/argo-workflows v4.1.2 CRDs: ``dag.tasks`` and ``templates`` have ``maxItems: 200``)."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from scanflow_argo.compile import compile_app
from scanflow_argo.compile.nesting import MAX_TASKS, nest_dags
from scanflow_argo.compile.schema import SchemaChecker
from scanflow_argo.errors import CompileError
from scanflow_argo.settings import Settings
from scanflow_argo.spec import Application, Output, Param, Workflow, container

add = container(
    "add",
    "alpine:3.20",
    ["sh", "-c"],
    ["echo $(( {{inputs.parameters.a}} + {{inputs.parameters.b}} )) > /tmp/sum"],
    inputs=[Param("a", int, 0), Param("b", int, 0)],
    outputs=[Output("sum", int, path="/tmp/sum")],
)


def _chain(n: int) -> Application:
    """t-0 .. t-(n-1): each adds the two tasks before it (a Fibonacci chain), so every value crosses tasks."""
    with Workflow("chain") as wf:
        tasks: list[Any] = []
        for i in range(n):
            a = tasks[i - 1].out.sum if i >= 1 else 1
            b = tasks[i - 2].out.sum if i >= 2 else 0
            tasks.append(add(a=a, b=b).named(f"t-{i}"))
    return Application("nesting", workflows=[wf])


def _workflow(objs: list[dict[str, Any]]) -> dict[str, Any]:
    return next(o for o in objs if o["kind"] == "Workflow")


def test_a_dag_past_200_tasks_is_nested_and_the_api_server_accepts_it() -> None:
    wf = _workflow(compile_app(_chain(MAX_TASKS + 50)))
    dags = {t["name"]: t["dag"]["tasks"] for t in wf["spec"]["templates"] if "dag" in t}
    assert set(dags) == {"main", "main-part-1", "main-part-2"}
    assert all(len(tasks) <= MAX_TASKS for tasks in dags.values())
    assert dags["main"][1]["depends"] == "main-part-1"
    first = dags["main-part-2"][0]  # t-200 = t-199 + t-198, both in the first group
    values = {p["name"]: p["value"] for p in first["arguments"]["parameters"]}
    assert values == {"a": "{{inputs.parameters.t-199--sum}}", "b": "{{inputs.parameters.t-198--sum}}"}
    part1 = next(t for t in wf["spec"]["templates"] if t["name"] == "main-part-1")
    assert {"name": "t-199--sum", "valueFrom": {"parameter": "{{tasks.t-199.outputs.parameters.sum}}"}} in part1["outputs"][
        "parameters"
    ]
    assert SchemaChecker().problems(wf) == []
    unnested = copy.deepcopy(wf)
    unnested["spec"]["templates"] = [
        {"name": "main", "dag": {"tasks": [{"name": f"t-{i}", "template": "add"} for i in range(250)]}}
    ]
    assert "Workflow/chain: spec.templates[0].dag.tasks: Too many: 250: must have at most 200 items" in SchemaChecker().problems(
        unnested
    )


def test_a_nested_dag_computes_what_the_flat_one_does(tmp_path: Path) -> None:
    """Nested three levels deep (groups of 2), the chain's last sum is the flat chain's, on the local engine."""
    from scanflow_argo.engine import run_workflow

    flat = _workflow(compile_app(_chain(7)))
    nested = {**flat, "spec": nest_dags(flat["spec"], max_tasks=2)}
    assert max(len(t["dag"]["tasks"]) for t in nested["spec"]["templates"] if "dag" in t) <= 2
    base = Settings.from_env(environ={})
    results = []
    for i, manifest in enumerate((flat, nested)):
        settings = replace(base.with_home(tmp_path / f"home-{i}"), tracking=replace(base.tracking, enabled=False))
        run = run_workflow(manifest, settings)
        assert run.phase == "Succeeded", run.message
        results.append(run.node("t-6").parameters()["sum"])
    assert results == ["13", "13"]  # fib: 1 1 2 3 5 8 13


def test_references_the_nesting_cannot_route_are_named() -> None:
    spec = {
        "templates": [
            {
                "name": "main",
                "dag": {
                    "tasks": [
                        {"name": "a", "template": "x"},
                        {"name": "b", "template": "x"},
                        {"name": "c", "template": "x", "when": "{{tasks.a.status}} == Succeeded"},
                    ]
                },
            }
        ]
    }
    with pytest.raises(CompileError, match=r"task 'c' refers to task\(s\) \['a'\].*split the workflow"):
        nest_dags(spec, max_tasks=2)


def test_a_step_that_continues_on_failure_compiles_to_what_argo_4_accepts(tmp_path: Path) -> None:
    """Argo 4's CRD refuses ``continueOn`` beside ``depends``: such a DAG lists ``dependencies`` (which
    ``continueOn`` works with), and the step after a tolerated failure still runs (on the local engine)."""
    from scanflow_argo.engine import run_workflow

    fail = container("fail", "alpine:3.20", ["sh", "-c"], ["exit 3"])
    with Workflow("tolerant") as wf:
        first = fail().continue_on_failure()
        add(a=1, b=2).named("after").after(first)
    flow = _workflow(compile_app(Application("nesting", workflows=[wf])))
    tasks = {t["name"]: t for t in flow["spec"]["templates"][0]["dag"]["tasks"]}
    assert tasks["after"]["dependencies"] == ["fail"] and "depends" not in tasks["after"]
    assert tasks["fail"]["continueOn"] == {"failed": True}
    assert SchemaChecker().problems(flow) == []
    base = Settings.from_env(environ={})
    run = run_workflow(flow, replace(base.with_home(tmp_path / "home"), tracking=replace(base.tracking, enabled=False)))
    assert run.node("after").phase == "Succeeded" and run.node("fail").phase == "Failed"


def test_a_step_name_starting_with_a_digit_that_waits_for_others_is_refused() -> None:
    from scanflow_argo.errors import ValidationError

    with Workflow("digits") as wf:
        first = add(a=1, b=2).named("1st")
        add(a=first.out.sum, b=1).named("2nd")
    with pytest.raises(ValidationError, match=r"step '2nd': name begins with a digit and the step waits for others"):
        compile_app(Application("nesting", workflows=[wf]))
