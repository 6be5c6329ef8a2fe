"""Benchmark: build and compile a 1,000-step DAG Application; print seconds, peak memory and a ratio.

    .venv/bin/python bench/compile.py [--steps 1000]

Argo 4 allows at most 200 tasks per DAG template: the compiler nests the 1,000 steps into five groups of
200 (``compile/nesting.py``), so the figures include the nesting; ``--check`` also times the schema check
(the full CRD with its CEL rules) that ``scanflow-argo compile`` runs on the result.

Target (issue 2): build + compile (validation, Hera, graph checks, key normalisation) under 2 s on one
core. The baseline, measured in the same run, writes the same DAG as plain dicts (no spec, no
validation, no Hera): the ratio is what the authoring layer costs on top of the bare manifest.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from typing import Any

from scanflow_argo.compile import compile_app, dump_yaml
from scanflow_argo.spec import Application, ArtifactIn, ArtifactOut, Output, Param, Workflow, container, step


@step(outputs={"score": float})
def work(x: int, data: ArtifactOut) -> dict:
    return {"score": x / 2}


@step(outputs={"score": float})
def combine(a: float, b: float, data: ArtifactIn) -> dict:
    return {"score": a + b}


KINDS = [
    container(
        f"tool-{i}",
        "alpine:3.20",
        ["sh", "-c"],
        ["echo {{inputs.parameters.v}} > /tmp/v"],
        inputs=[Param("v", float, 0.0)],
        outputs=[Output("score", float, path="/tmp/v")],
    )
    for i in range(8)
]


def build(n: int) -> Application:
    """A layered DAG: each task takes outputs of one or two earlier tasks (data-flow dependencies)."""
    with Workflow("bench", parameters=[Param("x", int, 1)]) as wf:
        tasks: list[Any] = []
        for i in range(n):
            if i == 0:
                t = work(x=wf.params.x)
            elif i % 10 == 0:
                t = combine(a=tasks[i - 1].out.score, b=tasks[i // 2].out.score, data=tasks[0].out.data)
            else:
                t = KINDS[i % len(KINDS)](v=tasks[(i - 1) // 2].out.score)
            tasks.append(t.named(f"t-{i}"))
    return Application("bench", workflows=[wf])


def baseline(n: int) -> dict[str, Any]:
    """The same DAG's shape as plain dicts (what a hand-written manifest costs to produce)."""
    tasks = []
    for i in range(n):
        dep = f"t-{(i - 1) // 2}" if i else None
        task: dict[str, Any] = {"name": f"t-{i}", "template": f"tool-{i % 8}"}
        if dep:
            task["depends"] = dep
            task["arguments"] = {"parameters": [{"name": "v", "value": f"{{{{tasks.{dep}.outputs.parameters.score}}}}"}]}
        tasks.append(task)
    templates = [{"name": "main", "dag": {"tasks": tasks}}] + [
        {"name": f"tool-{i}", "inputs": {"parameters": [{"name": "v", "default": "0.0"}]}, "container": {"image": "alpine:3.20"}}
        for i in range(8)
    ]
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "bench"},
        "spec": {"templates": templates},
    }


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    gc.collect()
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--check", action="store_true", help="also time the schema check against Argo's CRD")
    args = parser.parse_args()
    n = args.steps
    compile_app(build(10))  # warm imports (hera, pydantic models) outside the measurement

    t_build, app = timed(build, n)
    t_compile, objs = timed(compile_app, app)
    t_yaml, text = timed(lambda: "".join(dump_yaml(o) for o in objs))
    t_base, _ = timed(lambda: dump_yaml(baseline(n)))

    tracemalloc.start()
    compile_app(build(n))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    total = t_build + t_compile
    print(f"steps:                  {n}")
    print(f"build (spec objects):   {t_build:.3f} s")
    print(f"compile (validate+Hera): {t_compile:.3f} s")
    print(f"build + compile:        {total:.3f} s   (target < 2 s: {'OK' if total < 2 else 'MISSED'})")
    print(f"YAML dump:              {t_yaml:.3f} s   ({len(text) / 1e6:.1f} MB)")
    print(f"peak memory (tracemalloc, build+compile): {peak / 2**20:.1f} MiB")
    print(
        f"baseline (plain dicts + YAML dump): {t_base:.3f} s; ratio build+compile+dump / baseline = {(total + t_yaml) / t_base:.1f}x"
    )
    dags = [t for o in objs for t in (o.get("spec") or {}).get("templates") or [] if "dag" in t]
    print(f"DAG templates (nested for Argo 4): {len(dags)}, largest {max(len(t['dag']['tasks']) for t in dags)} tasks")
    if args.check:
        from scanflow_argo.compile.schema import SchemaChecker

        checker = SchemaChecker()
        checker.crd("Workflow")  # load the CRD outside the measurement
        t_check, problems = timed(lambda: [p for o in objs for p in checker.problems(o)])
        print(f"schema check (CRD + CEL): {t_check:.3f} s, {len(problems)} problem(s)")


if __name__ == "__main__":
    main()
