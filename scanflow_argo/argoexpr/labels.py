"""Kubernetes label selectors, parsed and matched as ``k8s.io/apimachinery/pkg/labels/selector.go``
(``Parse``, ``Requirement.Matches``) does: comma-separated requirements ``key``, ``!key``, ``key=value``,
``key==value``, ``key!=value``, ``key in (a,b)``, ``key notin (a,b)``, ``key>N``, ``key<N``; ``!=`` and
``notin`` also match objects without the key. A selector that does not parse is ``InvalidRequest`` naming
the part that is wrong.

Two users: the API's ``labelSelector`` (``platform/selectors.py``) matches labels; a resource template's
``successCondition``/``failureCondition`` matches fields of an object, which Argo's executor reads with
gjson (``workflow/executor/resource.go`` ``gjsonLabels``): ``lookup`` below gives each requirement the
value and presence gjson would, so ``status.phase == Succeeded`` reads ``{"status": {"phase": …}}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidRequest

__all__ = ["LabelSelector", "Requirement", "gjson_lookup"]

_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_KEY = re.compile(rf"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?{_NAME}$")
_VALUE = re.compile(rf"^({_NAME})?$")
_OPERATORS = ("==", "!=", "=", ">", "<")


@dataclass(frozen=True)
class Requirement:
    """One requirement of a label selector: ``key``, an operator and its values."""

    key: str
    op: str
    """``exists``, ``!``, ``=``, ``==``, ``!=``, ``in``, ``notin``, ``>`` or ``<``."""
    values: tuple[str, ...] = ()

    def go_value_text(self) -> str:
        """The requirement as Go's ``%s`` prints a ``labels.Requirement`` value (its ``String`` has a pointer
        receiver, so the struct's fields are printed): ``{status.phase == [Failed]}``."""
        op = {"!": "!", ">": "gt", "<": "lt"}.get(self.op, self.op)
        return "{" + f"{self.key} {op} [{' '.join(sorted(self.values))}]" + "}"

    def matches(self, labels: Mapping[str, str]) -> bool:
        return self.matches_lookup(lambda key: (labels.get(key), key in labels))

    def matches_lookup(self, lookup: Callable[[str], tuple[str | None, bool]]) -> bool:
        """Match against ``lookup(key) -> (value, present)`` (labels.Labels' ``Lookup``)."""
        value, present = lookup(self.key)
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "==", "in"):
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
            return Requirement(key, op, (value,))
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


def gjson_lookup(doc: Any) -> Callable[[str], tuple[str | None, bool]]:
    """``gjsonLabels.Lookup`` over ``doc``: a dotted path (``\\.`` escapes a dot; a number indexes an array) gives gjson's ``String()`` of the value — a string as it is, ``true``/``false``,
    a number or an object as JSON text, ``null`` as empty — and whether it exists."""

    def lookup(path: str) -> tuple[str | None, bool]:
        value: Any = doc
        for part in (p.replace("\x00", ".") for p in path.replace("\\.", "\x00").split(".")):
            if isinstance(value, Mapping) and part in value:
                value = value[part]
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                return "", False
        if value is None:
            return "", True
        if isinstance(value, str):
            return value, True
        return json.dumps(value, separators=(",", ":")), True

    return lookup
