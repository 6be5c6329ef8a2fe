"""Argo's enhanced ``depends`` for DAG tasks (``workflow/common/ancestry.go`` and ``dagContext.evaluateDependsLogic``).

A bare task name ``A`` expands to ``(A.Succeeded || A.Skipped || A.Daemoned)``, plus ``|| A.Errored`` /
``|| A.Failed`` when task A declares ``continueOn.error`` / ``continueOn.failed``. Every ``-`` becomes ``_`` and the
result is evaluated as an expr-lang boolean over one record per dependency::

    Succeeded  phase == Succeeded          Skipped   phase == Skipped
    Failed     phase == Failed             Omitted   phase == Omitted
    Errored    phase == Error              Daemoned  a daemoned node that is not Pending
    AnySucceeded  a fan-out (TaskGroup) with at least one child Succeeded
    AllFailed     a fan-out with children, every one of them Failed (Error does not count)

A fan-out task's own phase is Failed/Error when one of its children is (the last such child's phase wins),
else Succeeded; an expansion with no items is a Skipped node with no children.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .errors import Fail

__all__ = ["RESULTS", "depends_tasks", "expand_depends", "task_results"]

_TASK_NAME = re.compile(r"([a-zA-Z0-9][-a-zA-Z0-9]*?\.[A-Z][a-zA-Z]+)|([a-zA-Z0-9][-a-zA-Z0-9]*)")
RESULTS = ("Succeeded", "Failed", "Errored", "Skipped", "Omitted", "Daemoned", "AnySucceeded", "AllFailed")
_DONE = {"Succeeded", "Failed", "Error", "Errored", "Skipped", "Omitted"}
_PHASES = _DONE | {"Pending", "Running"}


def depends_tasks(source: str) -> dict[str, str]:
    """The tasks a depends expression names, each ``"task"`` or ``"items"`` (needs child results: AnySucceeded/AllFailed)."""
    out: dict[str, str] = {}
    for match in _TASK_NAME.finditer(source):
        if match.group(1):
            name, result = match.group(1).split(".", 1)
            if result not in RESULTS:
                raise Fail(
                    f"task result '{result}' for task '{name}' is invalid (use one of {', '.join(RESULTS)})", match.start(1)
                )
            if result in ("AnySucceeded", "AllFailed"):
                out[name] = "items"
            else:
                out.setdefault(name, "task")
        else:
            out[match.group(2)] = "task"
    return out


def expand_depends(source: str, continue_on: Mapping[str, Any] | None = None) -> str:
    """Replace each bare task name by its success condition (see the module docstring)."""
    continue_on = continue_on or {}
    pieces: list[str] = []
    last = 0
    for match in _TASK_NAME.finditer(source):
        if not match.group(2):
            continue
        name = match.group(2)
        results = ["Succeeded", "Skipped", "Daemoned"]
        policy = continue_on.get(name) or {}
        if _flag(policy, "error"):
            results.append("Errored")
        if _flag(policy, "failed"):
            results.append("Failed")
        pieces.append(source[last : match.start(2)])
        pieces.append("(" + " || ".join(f"{name}.{r}" for r in results) + ")")
        last = match.end(2)
    pieces.append(source[last:])
    return "".join(pieces)


def _flag(policy: Any, key: str) -> bool:
    if isinstance(policy, Mapping):
        return bool(policy.get(key))
    return bool(getattr(policy, key, False))


def task_results(name: str, state: Any) -> dict[str, bool]:
    """The record ``name.<Result>`` reads, from a phase, a list of child phases, or {phase, children, daemoned}."""
    children: list[str] | None = None
    daemoned = False
    if isinstance(state, str):
        phase = state
    elif isinstance(state, list | tuple):
        children = [str(c) for c in state]
        failed = [c for c in children if c in ("Failed", "Error", "Errored")]
        phase = (failed[-1] if failed else "Succeeded") if children else "Skipped"
    elif isinstance(state, Mapping):
        phase = str(state.get("phase", ""))
        raw = state.get("children")
        children = [str(c) for c in raw] if raw is not None else None
        daemoned = bool(state.get("daemoned", False))
        if not phase and children is not None:
            return task_results(name, children) | {"Daemoned": daemoned}
    else:
        raise Fail(f"the state of task {name!r} must be a phase, a list of child phases or a mapping, not {type(state).__name__}")
    if phase not in _PHASES:
        raise Fail(f"task {name!r} has an unknown phase {phase!r} (expected one of {', '.join(sorted(_PHASES))})")
    if phase not in _DONE and not (daemoned and phase != "Pending"):
        raise Fail(f"task {name!r} has not finished (phase {phase}); depends is evaluated once every dependency is done")
    any_succeeded = bool(children) and any(c == "Succeeded" for c in children or [])
    all_failed = bool(children) and all(c == "Failed" for c in children or [])
    return {
        "Succeeded": phase == "Succeeded",
        "Failed": phase == "Failed",
        "Errored": phase in ("Error", "Errored"),
        "Skipped": phase == "Skipped",
        "Omitted": phase == "Omitted",
        "Daemoned": daemoned and phase != "Pending",
        "AnySucceeded": any_succeeded,
        "AllFailed": all_failed,
    }
