"""Argo's three small languages, evaluated exactly as Argo evaluates them (the facade of ``scanflow_argo.argoexpr``).

* ``eval_expr`` — expr-lang (github.com/expr-lang/expr v1.17), the language of ``{{=...}}`` tags,
  ``valueFrom.expression``, ``fromExpression``, ``retryStrategy.expression`` and hooks, with Argo's environment
  additions: ``asInt``, ``asFloat``, ``jsonpath``, ``toJson`` and ``sprig.*``. Flat keys such as
  ``"inputs.parameters.foo"`` are expanded into nested maps, as Argo does, so ``inputs.parameters['foo-bar']`` works.
* ``eval_when`` — govaluate, for a ``when`` whose ``{{...}}`` tags were already substituted; bare words are strings.
* ``eval_depends`` — a DAG task's enhanced ``depends`` (``A && (B.Failed || C.AnySucceeded)``).
* ``render`` — the text Argo puts in place of a ``{{=...}}`` tag (JSON for numbers, lists and maps; strings as is);
  ``render_param`` — the text Argo stores for a ``valueFrom.expression`` output (Go's ``%v``).

Everything is pure Python (no ``eval``): a tokenizer and a parser per language, in this package. Every
failure is an ``ExprError`` naming the language, the expression, the position and the cause.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Protocol

from .builtins import BUILTIN_NAMES, argo_functions, builtins
from .depends import depends_tasks as _depends_tasks
from .depends import expand_depends, task_results
from .errors import ExprError, Fail
from .exprlang import Ctx, check_names, evaluate, parse
from .golang import go_json, go_str
from .govaluate import eval_govaluate

__all__ = [
    "ExprError",
    "depends_tasks",
    "eval_depends",
    "eval_expr",
    "eval_expr_bool",
    "eval_when",
    "expand_env",
    "render",
    "render_param",
    "replace_expressions",
]


class Clock(Protocol):
    """What the languages need of a clock (``scanflow_argo.clock.Clock`` is one): seconds since the epoch."""

    def now(self) -> float: ...


_NOW: ContextVar[Callable[[], datetime]] = ContextVar("scanflow_expr_now", default=lambda: datetime.now(UTC))


def _current_now() -> datetime:
    return _NOW.get()()


# Built once: the functions read the clock of the evaluation in progress through _NOW.
_BUILTINS = builtins(_current_now)
_ARGO = argo_functions(_current_now)


def expand_env(env: Mapping[str, Any]) -> dict[str, Any]:
    """Argo's ``expand.Expand``: ``{"a.b": 1}`` → ``{"a": {"b": 1}}``; a key that is a prefix of another is dropped.

    Nested mappings given as values are kept as they are (not copied).
    """
    keys = sorted(env)
    dropped = {k for k, nxt in itertools.pairwise(keys) if nxt.startswith(k + ".")}
    out: dict[str, Any] = {}
    for key in keys:
        if key in dropped:
            continue
        value = env[key]
        parts = key.split(".") if isinstance(key, str) else [key]
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
    return out


def _wrap(err: Fail, source: str, language: str) -> ExprError:
    return ExprError(err.cause, expression=source, position=err.position, language=language)


def _now_from(clock: Clock | None) -> Callable[[], datetime]:
    if clock is None:
        return lambda: datetime.now(UTC)
    return lambda: datetime.fromtimestamp(clock.now(), UTC)


def eval_expr(source: str, env: Mapping[str, Any], *, clock: Clock | None = None) -> Any:
    """Evaluate an expr-lang expression (the text inside ``{{= ... }}``) against ``env``.

    ``env`` maps names to values: strings, numbers, bools, None, lists, dicts, ``datetime``; dotted keys
    (``"workflow.parameters.x"``) are expanded into nested maps. Argo's ``asInt``, ``asFloat``, ``jsonpath``,
    ``toJson`` and ``sprig`` are always available; ``now()`` and ``sprig.now``/``sprig.date`` read ``clock``.
    Returns a Python value (int, float, str, bool, None, list, dict, datetime or ``Duration``).
    """
    if not isinstance(source, str):
        raise ExprError(f"an expression must be a string, not {type(source).__name__}", expression=str(source))
    token = _NOW.set(_now_from(clock))
    try:
        scope = expand_env(env) if any(isinstance(k, str) and "." in k for k in env) else dict(env)
        scope.update(_ARGO)
        tree = parse(source, BUILTIN_NAMES)
        check_names(tree, scope.__contains__)
        return evaluate(tree, Ctx(env=scope, builtins=_BUILTINS, now=_current_now))
    except Fail as err:
        raise _wrap(err, source, "expr") from None
    except RecursionError:
        raise ExprError("the expression nests too deeply", expression=source) from None
    finally:
        _NOW.reset(token)


def eval_expr_bool(source: str, env: Mapping[str, Any], *, clock: Clock | None = None) -> bool:
    """Argo's ``argoexpr.EvalBool`` (``retryStrategy.expression``, lifecycle hooks): the result must be a bool."""
    result = eval_expr(source, env, clock=clock)
    if type(result) is not bool:
        raise ExprError(f"unable to cast expression result '{go_str(result)}' to bool", expression=source)
    return result


def eval_when(source: str) -> bool:
    """Evaluate a substituted ``when`` the way Argo's ``shouldExecute`` does; an empty ``when`` is true."""
    if source == "":
        return True
    try:
        result = eval_govaluate(source)
    except Fail as err:
        raise _wrap(err, source, "when") from None
    except RecursionError:
        raise ExprError("the expression nests too deeply", expression=source, language="when") from None
    if type(result) is not bool:
        raise ExprError(f"expected a boolean, got {go_str(result)!r}", expression=source, language="when")
    return result


def depends_tasks(source: str) -> dict[str, str]:
    """Names of the tasks a ``depends`` expression refers to: ``{"A": "task", "B": "items"}``.

    ``"items"`` means the expression reads ``B.AnySucceeded``/``B.AllFailed`` (children of a fan-out).
    """
    try:
        return _depends_tasks(source)
    except Fail as err:
        raise _wrap(err, source, "depends") from None


def eval_depends(source: str, task_states: Mapping[str, Any], *, continue_on: Mapping[str, Any] | None = None) -> bool:
    """Decide whether a DAG task whose dependencies have all finished should run.

    ``task_states`` maps each dependency to its node phase (``"Succeeded"``, ``"Failed"``, ``"Error"``,
    ``"Skipped"``, ``"Omitted"``), to the list of its children's phases for a fan-out task, or to a mapping
    ``{"phase": ..., "children": [...], "daemoned": bool}``. ``continue_on`` maps a dependency to its
    ``continueOn`` (``{"failed": True}``), which widens what a bare name accepts. A dependency that has not
    finished, or is missing from ``task_states``, is an error (call this once all of them are done).
    """
    try:
        names = _depends_tasks(source)
        env: dict[str, Any] = {}
        for name in names:
            if name not in task_states:
                known = ", ".join(sorted(task_states)) or "none"
                raise Fail(f"task {name!r} is not a finished task of this DAG (known: {known})")
            env[name.replace("-", "_")] = task_results(name, task_states[name])
        logic = expand_depends(source, continue_on).replace("-", "_")
        tree = parse(logic, BUILTIN_NAMES)
        check_names(tree, env.__contains__)
        result = evaluate(tree, Ctx(env=env, builtins=_BUILTINS, now=_current_now))
    except Fail as err:
        raise _wrap(err, source, "depends") from None
    except RecursionError:
        raise ExprError("the expression nests too deeply", expression=source, language="depends") from None
    if type(result) is not bool:
        raise ExprError(f"unable to cast expression result '{go_str(result)}' to bool", expression=source, language="depends")
    return result


def render(value: Any) -> str:
    """The text Argo substitutes for a ``{{=...}}`` tag (``json.Marshal`` of the result, quotes dropped for strings).

    ``10`` → ``10``, ``35.8`` → ``35.8``, ``43.0`` → ``43``, ``True`` → ``true``, ``[1, 3]`` → ``[1,3]``,
    ``{"b": 1, "a": "x"}`` → ``{"a":"x","b":1}``, ``"hi"`` → ``hi``. A nil result is an error, as in Argo.
    """
    if value is None:
        raise ExprError("the expression evaluated to nil, which Argo refuses to substitute", expression="")
    if isinstance(value, str):
        return value
    try:
        return go_json(value)
    except Fail as err:
        raise ExprError(f"cannot substitute {go_str(value)}: {err.cause}", expression="") from None


def render_param(value: Any) -> str:
    """The text Argo stores for a ``valueFrom.expression`` output parameter: Go's ``fmt.Sprintf("%v")``.

    ``1`` → ``1``, ``2.5`` → ``2.5``, ``1e6`` → ``1e+06``, ``[1, 2]`` → ``[1 2]``, ``{"a": 1}`` → ``map[a:1]``.
    """
    if value is None:
        raise ExprError("the expression evaluated to nil (an absent optional with no default)", expression="")
    return go_str(value)


_TAG = re.compile(r"\{\{=(.*?)\}\}", re.DOTALL)


def replace_expressions(text: str, env: Mapping[str, Any], *, clock: Clock | None = None) -> str:
    """Replace every ``{{= expr }}`` tag in ``text`` by ``render(eval_expr(expr, env))``; other tags stay as they are.

    Like Argo's template, a tag ends at the first ``}}``.
    """
    return _TAG.sub(lambda m: render(eval_expr(m.group(1), env, clock=clock)), text)
