"""``{{...}}`` substitution exactly where Argo does it: one pass, values never re-expanded.

A *scope* is a flat mapping from Argo variable names (``inputs.parameters.x``,
``tasks.A.outputs.result``, ``workflow.name``, ``item``…) to string values. ``{{=expr}}`` tags are
evaluated by ``argoexpr.expr.eval_expr`` with the scope expanded into nested dicts, as Argo's
expression environment is. Substitution works on the leaves of a parsed template, so a value can
never break out of the field it lands in, and nothing here ever touches a shell.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from ...argoexpr.expr import eval_expr, render
from ...errors import EngineError

__all__ = ["TAG", "Unresolved", "expand_scope", "leftover_tags", "substitute", "substitute_str", "tag_body"]

TAG = re.compile(r"\{\{\s*(=?)(.*?)\s*\}\}", re.DOTALL)
"""The one ``{{…}}`` pattern: group 1 is ``=`` for an expression tag, group 2 the body (ends at the first ``}}``)."""


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
        parts = key.split(".")
        node = root
        for part in parts[:-1]:
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                nxt = node[part] = {}
            node = nxt
        if not isinstance(node.get(parts[-1]), dict):
            node[parts[-1]] = scope[key]
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
    (for templates whose inner ``tasks.*``/``steps.*``/``item`` tags resolve later)."""
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
