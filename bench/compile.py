"""Benchmark: build and compile a 1,000-step DAG Application; print seconds, peak memory and a ratio.

    .venv/bin/python bench/compile.py [--steps 1000]

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
    n = parser.parse_args().steps
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


if __name__ == "__main__":
    main()
