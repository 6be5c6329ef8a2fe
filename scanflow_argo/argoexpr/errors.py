"""The one error the expression languages raise, and the internal failure that becomes it.

Evaluators raise ``Fail(cause, position)`` deep inside; the public functions in
``scanflow_argo.argoexpr.expr`` catch it and raise ``ExprError`` naming the language, the
expression, the position and the cause, so every message reads the same way.
"""

from __future__ import annotations

from scanflow_argo.errors import EngineError

__all__ = ["ExprError", "Fail"]

_MAX_SHOWN = 300


class Fail(Exception):
    """An evaluation or parse failure at a character offset of the source (None when unknown)."""

    def __init__(self, cause: str, position: int | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.position = position


def _where(source: str, position: int | None) -> str:
    if position is None:
        return ""
    position = max(0, min(position, len(source)))
    line = source.count("\n", 0, position) + 1
    column = position - (source.rfind("\n", 0, position) + 1) + 1
    if "\n" in source:
        return f" at line {line}, column {column}"
    return f" at column {column}"


class ExprError(EngineError):
    """An Argo expression (expr-lang ``{{=...}}``, govaluate ``when``, or ``depends``) is invalid or failed.

    ``language`` is ``"expr"``, ``"when"`` or ``"depends"``; ``expression`` the source text;
    ``position`` a 0-based character offset into it (or None); ``cause`` what went wrong.
    """

    def __init__(self, cause: str, *, expression: str, position: int | None = None, language: str = "expr") -> None:
        self.cause = cause
        self.expression = expression
        self.position = position
        self.language = language
        if not expression:
            super().__init__(f"{language} result: {cause}")
            return
        shown = expression if len(expression) <= _MAX_SHOWN else expression[:_MAX_SHOWN] + "…"
        super().__init__(f"{language} expression {shown!r}{_where(expression, position)}: {cause}")
