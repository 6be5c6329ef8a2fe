"""Benchmark: Argo expression evaluation (expr-lang, govaluate ``when``, ``depends``); prints µs per call and a ratio.

    .venv/bin/python bench/expr.py [--rounds 2000]

Target (issue 3): a few ms per expression at most, so that expressions never show in a run's time.
The baseline, measured in the same run, is the same computation written by hand in Python (what an
expression costs with no language at all): the ratio is what interpreting Argo's languages adds.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from scanflow_argo.argoexpr.expr import eval_depends, eval_expr, eval_when, render
from scanflow_argo.argoexpr.exprlang import parse
from scanflow_argo.argoexpr.govaluate import _plan

ENV: dict[str, Any] = {
    "inputs.parameters.foo": "3",
    "workflow.parameters.config": '{"employees": [{"name": "Baris", "age": 43}, {"name": "Mo", "age": 42}]}',
    "steps.flip-coin.outputs.result": "heads",
    "steps.heads.outputs.result": "H",
    "steps.tails.outputs.result": "T",
}
NESTED = {
    "inputs": {"parameters": {"foo": "3"}},
    "steps": {
        "flip-coin": {"outputs": {"result": "heads"}},
        "heads": {"outputs": {"result": "H"}},
        "tails": {"outputs": {"result": "T"}},
    },
}

STATES = {"A": "Succeeded", "B": "Failed", "C": "Skipped"}
DONE_OK = ("Succeeded", "Skipped", "Daemoned")

CASES: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = [
    (
        "asInt(inputs.parameters.foo) * 10",
        lambda: render(eval_expr("asInt(inputs.parameters.foo) * 10", ENV)),
        lambda: str(int(NESTED["inputs"]["parameters"]["foo"]) * 10),
    ),
    (
        "steps['flip-coin'].outputs.result == 'heads' ? … : …",
        lambda: eval_expr(
            "steps['flip-coin'].outputs.result == 'heads' ? steps.heads.outputs.result : steps.tails.outputs.result", ENV
        ),
        lambda: (
            NESTED["steps"]["heads"]["outputs"]["result"]
            if NESTED["steps"]["flip-coin"]["outputs"]["result"] == "heads"
            else NESTED["steps"]["tails"]["outputs"]["result"]
        ),
    ),
    (
        "toJson(filter(1..20, # % 2 == 0))",
        lambda: eval_expr("toJson(filter(1..20, # % 2 == 0))", {}),
        lambda: "[" + ",".join(str(i) for i in range(1, 21) if i % 2 == 0) + "]",
    ),
    (
        "jsonpath(config, '$.employees[?(@.age>42)].name')",
        lambda: eval_expr("jsonpath(workflow.parameters.config, '$.employees[?(@.age>42)].name')", ENV),
        lambda: [e["name"] for e in __import__("json").loads(ENV["workflow.parameters.config"])["employees"] if e["age"] > 42],
    ),
    ("when: heads == heads && 5 > 3", lambda: eval_when("heads == heads && 5 > 3"), lambda: "heads" == "heads" and 5.0 > 3.0),
    (
        "depends: A && (B.Failed || C)",
        lambda: eval_depends("A && (B.Failed || C)", {"A": "Succeeded", "B": "Failed", "C": "Skipped"}),
        lambda: STATES["A"] in DONE_OK and (STATES["B"] == "Failed" or STATES["C"] in DONE_OK),
    ),
]


def _per_call(fn: Callable[[], Any], rounds: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(rounds):
        fn()
    return (time.perf_counter() - start) / rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    print(f"{'expression':58} {'ours µs':>9} {'cold µs':>9} {'python µs':>10} {'ratio':>7}")
    worst = 0.0
    for label, ours, native in CASES:
        warm = _per_call(ours, args.rounds)
        parse.cache_clear()
        _plan.cache_clear()
        start = time.perf_counter()
        ours()  # first evaluation of a new expression: parse + evaluate
        cold = time.perf_counter() - start
        base = _per_call(native, args.rounds)
        worst = max(worst, warm, cold)
        print(f"{label:58} {warm * 1e6:9.1f} {cold * 1e6:9.1f} {base * 1e6:10.2f} {warm / base:7.0f}x")
    print(f"slowest: {worst * 1e3:.3f} ms per expression (target: a few ms)")


if __name__ == "__main__":
    main()
