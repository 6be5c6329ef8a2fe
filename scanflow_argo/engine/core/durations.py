"""Argo's duration fields, each parsed as Argo parses it, through the one Go-semantics module
(``scanflow_argo.argoexpr.golang``); a bad value is an ``EngineError`` naming the field.

- ``suspend.duration``, ``retryStrategy.backoff.duration|cap|maxDuration``: ``wfv1.ParseStringToDuration``
  (pkg/apis/workflow/v1alpha1/utils.go: a whole number is seconds, else ``time.ParseDuration``);
- a template's ``timeout``: ``time.ParseDuration`` only — Argo's validator refuses a whole number
  (workflow/validate/validate.go: "has invalid duration format in timeout");
- ``containerSet.retryStrategy.duration``: ``time.ParseDuration`` (container_set_template_types.go);
- ``activeDeadlineSeconds``: an int or a string holding one (``intstr.Int64`` in workflowpod.go).
"""

from __future__ import annotations

from typing import Any

from ...argoexpr.errors import Fail
from ...argoexpr.golang import argo_duration, go_atoi, parse_duration
from ...errors import EngineError

__all__ = ["argo_seconds", "go_seconds", "int_seconds", "timeout_seconds"]

_HINT = "use a Go duration such as 30s, 5m, 1h30m or 300ms"


def _text(value: Any) -> str:
    return str(value)


def argo_seconds(value: Any, where: str) -> float:
    """Seconds of an Argo duration: whole seconds (``"30"``) or a Go duration (``"1m30s"``, ``"300ms"``)."""
    try:
        return argo_duration(_text(value)).ns / 1e9
    except Fail as err:
        raise EngineError(f"{where}: {err.cause} ({_HINT}, or whole seconds)") from None


def go_seconds(value: Any, where: str) -> float:
    """Seconds of a Go ``time.ParseDuration`` value (``"500ms"``, ``"2h"``); a unit is required."""
    try:
        return parse_duration(_text(value)).ns / 1e9
    except Fail as err:
        raise EngineError(f"{where}: {err.cause} ({_HINT})") from None


def timeout_seconds(value: Any, where: str) -> float:
    """A template's ``timeout``: a Go duration; a whole number is refused, as Argo's validator does."""
    text = _text(value)
    try:
        go_atoi(text)
    except ValueError:
        return go_seconds(text, where)
    raise EngineError(f"{where}: {text!r} has invalid duration format in timeout ({_HINT}: a unit is required)")


def int_seconds(value: Any, where: str) -> int:
    """``activeDeadlineSeconds``: an integer (or a string holding one), as Kubernetes' IntOrString gives it."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return go_atoi(_text(value))
    except ValueError:
        raise EngineError(f"{where}: value {_text(value)!r} cannot be resolved to an int (whole seconds)") from None
