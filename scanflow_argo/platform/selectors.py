"""Kubernetes label selectors and field selectors, parsed and matched as the API server does.

Label selectors follow ``k8s.io/apimachinery/pkg/labels/selector.go`` (``Parse``): comma-separated
requirements ``key``, ``!key``, ``key=value``, ``key==value``, ``key!=value``, ``key in (a,b)``,
``key notin (a,b)``, ``key>N``, ``key<N``; ``!=`` and ``notin`` also match objects without the key.
Field selectors follow ``k8s.io/apimachinery/pkg/fields/selector.go`` (``ParseSelector``):
``field=value``, ``field==value``, ``field!=value``, with ``\\,``, ``\\=`` and ``\\\\`` escapes.
A selector that does not parse is ``InvalidRequest`` naming the part that is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..errors import InvalidRequest

__all__ = ["FieldSelector", "LabelSelector", "Requirement"]

_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_KEY = re.compile(rf"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?{_NAME}$")
_VALUE = re.compile(rf"^({_NAME})?$")
_OPERATORS = ("==", "!=", "=", ">", "<")


@dataclass(frozen=True)
class Requirement:
    """One requirement of a label selector: ``key``, an operator and its values."""

    key: str
    op: str
    """``exists``, ``!``, ``=``, ``!=``, ``in``, ``notin``, ``>`` or ``<``."""
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        try:  # > and <: integers, as the API server compares them
            number = int(str(value))
        except ValueError:
            return False
        return number > int(self.values[0]) if self.op == ">" else number < int(self.values[0])


@dataclass(frozen=True)
class LabelSelector:
    """A parsed label selector; the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        """Parse ``text``; ``InvalidRequest`` names the requirement that is wrong."""
        out: list[Requirement] = []
        for part in _split_top_level(text or ""):
            out.append(_requirement(part))
        return cls(tuple(out))

    @classmethod
    def of(cls, labels: Mapping[str, str] | None) -> LabelSelector:
        """The selector ``k1=v1,k2=v2`` (every label must be present with that value)."""
        return cls(tuple(Requirement(k, "=", (str(v),)) for k, v in (labels or {}).items()))

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def __bool__(self) -> bool:
        return bool(self.requirements)


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside parentheses (``a in (x,y),b`` → two requirements)."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    tail = "".join(current).strip()
    if tail or parts:
        parts.append(tail)
    if any(not p for p in parts):
        raise InvalidRequest(f"label selector {text!r}: an empty requirement (two commas in a row, or a trailing comma)")
    return parts


def _requirement(part: str) -> Requirement:
    set_form = re.fullmatch(r"(\S+)\s+(in|notin)\s*\((.*)\)", part)
    if set_form:
        key, op, raw = set_form.groups()
        values = tuple(v.strip() for v in raw.split(","))
        _check_key(key, part)
        for v in values:
            _check_value(v, part)
        return Requirement(key, op, values)
    if part.startswith("!"):
        key = part[1:].strip()
        _check_key(key, part)
        return Requirement(key, "!")
    for op in _OPERATORS:
        if op in part:
            key, value = (s.strip() for s in part.split(op, 1))
            _check_key(key, part)
            if op in (">", "<"):
                if not re.fullmatch(r"-?\d+", value):
                    raise InvalidRequest(f"label selector requirement {part!r}: {op} needs an integer, e.g. {key}{op}3")
            else:
                _check_value(value, part)
            return Requirement(key, "=" if op == "==" else op, (value,))
    _check_key(part, part)
    return Requirement(part, "exists")


def _check_key(key: str, part: str) -> None:
    if not _KEY.match(key) or len(key) > 317:
        raise InvalidRequest(
            f"label selector requirement {part!r}: {key!r} is not a valid label key "
            "(an optional DNS prefix and '/', then up to 63 letters, digits, '-', '_' or '.')"
        )


def _check_value(value: str, part: str) -> None:
    if not _VALUE.match(value):
        raise InvalidRequest(
            f"label selector requirement {part!r}: {value!r} is not a valid label value "
            "(up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)"
        )


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
