"""Kubernetes label selectors and field selectors, parsed and matched as the API server does.

Label selectors are ``argoexpr/labels.py``'s (re-exported here: ``k8s.io/apimachinery/pkg/labels/selector.go``).
Field selectors follow ``k8s.io/apimachinery/pkg/fields/selector.go`` (``ParseSelector``):
``field=value``, ``field==value``, ``field!=value``, with ``\\,``, ``\\=`` and ``\\\\`` escapes.
A selector that does not parse is ``InvalidRequest`` naming the part that is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..argoexpr.labels import LabelSelector, Requirement
from ..errors import InvalidRequest

__all__ = ["FieldSelector", "LabelSelector", "Requirement"]


@dataclass(frozen=True)
class FieldSelector:
    """A parsed field selector: ``(field, operator, value)`` terms, all of which must hold."""

    terms: tuple[tuple[str, str, str], ...] = ()

    @classmethod
    def parse(cls, text: str | None, allowed: Callable[[str], bool] | None = None) -> FieldSelector:
        """Parse ``text``; ``allowed(field)`` false is ``InvalidRequest`` (Argo: ``unsupported requirement``)."""
        terms = []
        for part in _split_escaped(text or "", ","):
            if not part:
                continue
            for op in ("==", "!=", "="):
                idx = _find_unescaped(part, op)
                if idx >= 0:
                    field, value = part[:idx], _unescape(part[idx + len(op) :])
                    break
            else:
                raise InvalidRequest(f"field selector {part!r}: expected FIELD=VALUE, FIELD==VALUE or FIELD!=VALUE")
            if not field:
                raise InvalidRequest(f"field selector {part!r}: the field name is missing")
            if allowed is not None and not allowed(field):
                raise InvalidRequest(f"unsupported requirement {part}")
            terms.append((field, "!=" if op == "!=" else "=", value))
        return cls(tuple(terms))

    def matches(self, fields: Mapping[str, str]) -> bool:
        for field, op, value in self.terms:
            equal = fields.get(field, "") == value
            if equal != (op == "="):
                return False
        return True

    def value(self, field: str) -> str | None:
        """The value an ``=`` term gives ``field`` (None when there is none)."""
        return next((v for f, op, v in self.terms if f == field and op == "="), None)

    def __bool__(self) -> bool:
        return bool(self.terms)


def _split_escaped(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def _find_unescaped(text: str, op: str) -> int:
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text.startswith(op, i):
            return i
        i += 1
    return -1


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)
