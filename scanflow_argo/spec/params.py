"""Values that flow through a workflow: parameters, outputs, artifacts, references, retries.

A ``Param`` is a typed parameter (of a workflow or of a step) with default, enum and description;
an ``Output`` is a typed output parameter of a step; ``ArtifactIn``/``ArtifactOut`` mark step
arguments that are artifacts (the function receives a local path). References (``ParamRef``,
``OutputRef``) render as Argo expressions (``{{workflow.parameters.x}}``,
``{{tasks.t.outputs.parameters.y}}``) and remember their type for validation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .step import Task

__all__ = [
    "ITEM",
    "NO_DEFAULT",
    "ArtifactIn",
    "ArtifactOut",
    "Output",
    "OutputRef",
    "Param",
    "ParamRef",
    "Retry",
    "render_value",
    "type_name",
]


class _NoDefault:
    """Marks a parameter without default (``None`` is a valid default)."""

    def __repr__(self) -> str:
        return "NO_DEFAULT"


NO_DEFAULT: Any = _NoDefault()
"""Sentinel: the parameter has no default and must be given a value."""

ITEM = "{{item}}"
"""The current element of a fan-out (``withItems``/``withParam``)."""

_TYPE_NAMES = {str: "str", int: "int", float: "float", bool: "bool", list: "json", dict: "json"}


def type_name(tp: Any) -> str:
    """The short type name used in messages and by the generated script (``str``, ``int``, ``json``…)."""
    if isinstance(tp, str):
        return tp
    origin = getattr(tp, "__origin__", None)
    if origin in (list, dict):
        return "json"
    return _TYPE_NAMES.get(tp, "str")


def compatible(src: str | None, dst: str | None) -> bool:
    """Can a value of type ``src`` feed an input of type ``dst``? Unknown types always can."""
    if src is None or dst is None or src == dst or dst == "str":
        return True
    return src == "int" and dst == "float"


def render_value(value: Any) -> str:
    """A Python value as the string Argo passes around (booleans as ``true``/``false``, JSON for containers)."""
    if isinstance(value, (ParamRef, OutputRef)):
        return str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Param:
    """A typed parameter: of a workflow (``spec.arguments``) or an input of a step.

    ``type`` is ``str``, ``int``, ``float``, ``bool``, ``list`` or ``dict``; ``enum`` becomes a
    dropdown in the Argo UI; ``description`` is required on WorkflowTemplate parameters.
    """

    name: str
    type: Any = str
    default: Any = NO_DEFAULT
    enum: tuple[Any, ...] | None = None
    description: str | None = None

    def __post_init__(self) -> None:
        if self.enum is not None and not isinstance(self.enum, tuple):
            object.__setattr__(self, "enum", tuple(self.enum))

    @property
    def required(self) -> bool:
        return self.default is NO_DEFAULT

    @property
    def type_name(self) -> str:
        return type_name(self.type)

    def rendered_default(self) -> str | None:
        return None if self.required else render_value(self.default)

    def rendered_enum(self) -> list[str] | None:
        return None if self.enum is None else [render_value(v) for v in self.enum]


@dataclass(frozen=True)
class Output:
    """A typed output parameter of a step; ``path`` is where a container step writes it."""

    name: str
    type: Any = str
    path: str | None = None
    description: str | None = None

    @property
    def type_name(self) -> str:
        return type_name(self.type)


class ArtifactIn(str):
    """Annotation for a step argument that receives an input artifact (the function gets its local path)."""


class ArtifactOut(str):
    """Annotation for a step argument naming an output artifact (the function gets a folder to fill)."""


@dataclass(frozen=True)
class Retry:
    """Argo ``retryStrategy``: ``limit`` attempts more, on ``policy`` (OnFailure, OnError, Always, OnTransientError),
    with exponential backoff (``backoff`` like ``"10s"``, ``factor``, ``max_duration``)."""

    limit: int = 2
    policy: str = "OnFailure"
    backoff: str | None = None
    factor: int | None = None
    max_duration: str | None = None


@dataclass(frozen=True, eq=False)
class ParamRef:
    """A reference to a workflow parameter; renders as ``{{workflow.parameters.<name>}}``."""

    param: Param

    @property
    def type_name(self) -> str:
        return self.param.type_name

    def __str__(self) -> str:
        return f"{{{{workflow.parameters.{self.param.name}}}}}"

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


@dataclass(frozen=True, eq=False)
class OutputRef:
    """A reference to an output of a task: ``kind`` is ``parameter``, ``artifact`` or ``result``."""

    task: Task
    name: str
    kind: str = "parameter"

    @property
    def type_name(self) -> str | None:
        if self.kind == "parameter" and self.task.fanned_out:
            return "json"  # Argo gives later steps a fan-out's outputs as one JSON list (of strings)
        if self.kind != "parameter":
            return None
        for out in self.task.step.outputs:
            if out.name == self.name:
                return out.type_name
        return None

    def __str__(self) -> str:
        if self.kind == "result":
            return f"{{{{tasks.{self.task.name}.outputs.result}}}}"
        plural = "artifacts" if self.kind == "artifact" else "parameters"
        return f"{{{{tasks.{self.task.name}.outputs.{plural}.{self.name}}}}}"

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)
