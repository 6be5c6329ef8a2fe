"""``{{...}}`` substitution exactly where Argo does it: one pass, values never re-expanded.

A *scope* is a flat mapping from Argo variable names (``inputs.parameters.x``,
``tasks.A.outputs.result``, ``workflow.name``, ``item``…) to string values. ``{{=expr}}`` tags are
evaluated by ``argoexpr.expr.eval_expr`` with the scope expanded into nested dicts, as Argo's
expression environment is. Substitution works on the leaves of a parsed template, so a value can
never break out of the field it lands in, and nothing here ever touches a shell.

A scope value may be ``ABSENT``: the output a skipped or omitted node declared but never produced, with no
``valueFrom.default`` (Argo 4.0.7/3.7.16's *absent optional*, ``workflow/controller/scope.go``
``addSkippedNodeOutputsToScope``). Expressions read it as ``nil`` (so ``?? 'fallback'`` works); a plain tag
that names it fails with ``AbsentOptional`` whether or not unknown tags are allowed, as
``util/template/simple_template.go`` ``simpleReplaceStrict`` does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from ...argoexpr.expr import eval_expr, render
from ...errors import EngineError

__all__ = [
    "ABSENT",
    "ABSENT_HINT",
    "TAG",
    "AbsentOptional",
    "Unresolved",
    "absent_ref",
    "expand_scope",
    "leftover_tags",
    "substitute",
    "substitute_str",
    "tag_body",
]

TAG = re.compile(r"\{\{\s*(=?)(.*?)\s*\}\}", re.DOTALL)
"""The one ``{{…}}`` pattern: group 1 is ``=`` for an expression tag, group 2 the body (ends at the first ``}}``)."""


class _Absent:
    """The type of ``ABSENT`` (one instance): a declared output that a skipped/omitted node never produced."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()
"""A scope value for an *absent optional* (see the module docstring): ``nil`` to expressions, an error to a tag."""

ABSENT_HINT = (
    "give the producer's output parameter a valueFrom.default, the consumer's input a default, "
    "or read it in an expression with ?? (e.g. {{=tasks.x.outputs.parameters.y ?? 'none'}})"
)
"""How to handle an absent optional: the three ways Argo offers."""


class AbsentOptional(EngineError):
    """A tag names an absent optional: Argo's terminal substitution error (``simple_template.go``), word for word
    up to the colon that precedes the local hint."""

    def __init__(self, tag: str, where: str = "") -> None:
        self.tag = tag
        super().__init__(
            f"{where + ': ' if where else ''}unable to substitute {{{{{tag}}}}}: output is an absent optional "
            f"(skipped/omitted node with no default): {ABSENT_HINT}"
        )


def absent_ref(text: str, scope: Mapping[str, Any]) -> bool:
    """Whether ``text`` is one pure reference (``{{tasks.x.outputs.parameters.y}}``, nothing around it) to an
    absent optional: Argo's ``wfScope.absentOptionalRef`` (``workflow/controller/scope.go``), whose argument
    is dropped so the consumer's input default applies (``markAbsentOptionalArgs``)."""
    match = TAG.fullmatch(text)
    return match is not None and not match.group(1) and "{{" not in match.group(2) and scope.get(match.group(2)) is ABSENT


class Unresolved(EngineError):
    """A ``{{...}}`` tag names a variable that has no value here."""

    def __init__(self, tag: str, where: str = "") -> None:
        self.tag = tag
        super().__init__(f"failed to resolve {{{{{tag}}}}}{' in ' + where if where else ''}: no such variable at this point")


def expand_scope(scope: Mapping[str, Any]) -> dict[str, Any]:
    """Flat ``a.b.c`` keys → nested dicts, for ``{{=expr}}`` (``inputs.parameters['x']``).

    Where a key is both a value and a prefix (``inputs.parameters`` is also a JSON list), the nested
    mapping wins, as in Argo's expression environment. Every ``tasks.X``/``steps.X`` gets an
    ``outputs`` mapping (empty for a skipped task), so ``tasks.X.outputs.parameters.p ?? 'default'``
    reads nil rather than failing."""
    root: dict[str, Any] = {}
    for key in sorted(scope, key=lambda k: k.count(".")):
        value = None if scope[key] is ABSENT else scope[key]  # nil: `?? 'fallback'` applies
        parts = key.split(".")
        node = root
        for part in parts[:-1]:
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                nxt = node[part] = {}
            node = nxt
        if not isinstance(node.get(parts[-1]), dict):
            node[parts[-1]] = value
    for group in ("tasks", "steps"):
        for entry in (root.get(group) or {}).values():
            if isinstance(entry, dict):
                outputs = entry.setdefault("outputs", {})
                if isinstance(outputs, dict):
                    outputs.setdefault("parameters", {})
                    outputs.setdefault("artifacts", {})
    return root


def _eval(source: str, scope: Mapping[str, Any]) -> str:
    """A ``{{=expr}}`` tag's text: expr-lang (argoexpr/expr.py), rendered as Argo renders it."""
    return render(eval_expr(source, expand_scope(scope)))


def _fmt(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    if value is None:
        return ""
    return str(value)


def substitute_str(text: str, scope: Mapping[str, Any], *, strict: bool = True, where: str = "") -> str:
    """Replace every tag in ``text`` once. ``strict=False`` leaves unknown tags as they are
    (for templates whose inner ``tasks.*``/``steps.*``/``item`` tags resolve later); a tag naming an
    ``ABSENT`` value raises ``AbsentOptional`` either way."""
    if "{{" not in text:
        return text

    def repl(match: re.Match[str]) -> str:
        is_expr, body = match.group(1), match.group(2)
        if is_expr:
            try:
                return _eval(body, scope)
            except EngineError:
                if strict:
                    raise
                return match.group(0)
        if body in scope:
            if scope[body] is ABSENT:
                raise AbsentOptional(body, where)
            return _fmt(scope[body])
        if strict:
            raise Unresolved(body, where)
        return match.group(0)

    return TAG.sub(repl, text)


def substitute(
    obj: Any, scope: Mapping[str, Any], *, strict: bool = True, where: str = "", skip: frozenset[str] = frozenset()
) -> Any:
    """Substitute in every string leaf of ``obj`` (dict keys untouched); ``skip`` names dict keys to leave alone."""
    if isinstance(obj, str):
        return substitute_str(obj, scope, strict=strict, where=where)
    if isinstance(obj, list):
        return [substitute(v, scope, strict=strict, where=where, skip=skip) for v in obj]
    if isinstance(obj, dict):
        return {k: (v if k in skip else substitute(v, scope, strict=strict, where=where, skip=skip)) for k, v in obj.items()}
    return obj


def leftover_tags(obj: Any) -> list[str]:
    """The ``{{…}}`` tags still in the string leaves of ``obj`` (in order), as written."""
    if isinstance(obj, str):
        return [m.group(0) for m in TAG.finditer(obj)] if "{{" in obj else []
    if isinstance(obj, Mapping):
        return [t for v in obj.values() for t in leftover_tags(v)]
    if isinstance(obj, list):
        return [t for v in obj for t in leftover_tags(v)]
    return []


def tag_body(text: str) -> str:
    """``{{ tasks.A.outputs.artifacts.x }}`` → ``tasks.A.outputs.artifacts.x`` (text without a tag is returned stripped)."""
    match = TAG.fullmatch(text.strip())
    return match.group(2) if match else text.strip()
