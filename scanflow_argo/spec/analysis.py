"""A roll-out's analysis: metrics with Argo Rollouts' field names, and the pure decisions over their measurements.

Owns one thing: deciding, from measurements already taken, what Argo Rollouts would decide — no I/O,
no clock (times are passed in), so the decisions are tested table-driven. Field names and meanings
are Argo Rollouts' ``Metric`` (pkg/apis/rollouts/v1alpha1/analysis_types.go):

* ``interval`` (Go duration) between measurements; ``count`` measurements in all (unset or 0 with no
  ``interval``: one; unset or 0 with an interval: unbounded — ``(*Metric).EffectiveCount``);
  ``initialDelay`` before the first one;
* ``successCondition`` / ``failureCondition``: expr-lang over ``result`` (``argoexpr.eval_expr_bool``);
* ``failureLimit`` / ``inconclusiveLimit`` (default 0): the metric fails once more measurements than
  this failed (were inconclusive); ``consecutiveErrorLimit`` (default 4, utils/defaults/defaults.go
  ``DefaultConsecutiveErrorLimit``): errors in a row before Error.

``measurement_phase`` follows utils/evaluate/evaluate.go ``EvaluateResult``: no conditions → Successful;
only a success condition → Failed when it is false; only a failure condition → Successful when it is
false; both → Failed if the failure condition holds (it wins), Successful if only the success one
does, Inconclusive if neither; a condition that cannot be evaluated → Error. ``metric_phase`` follows
analysis/analysis.go ``assessMetricStatus`` and ``assessMetricFailureInconclusiveOrError``, whose checks
run in order and the last that holds wins: failed > failureLimit → Failed, inconclusive >
inconclusiveLimit → Inconclusive, consecutive errors > consecutiveErrorLimit → Error; else count
reached → Successful, else Running. ``run_phase`` is the worst metric phase in utils/analysis/helpers.go
``IsWorse`` order (Failed, Error, Inconclusive are worse than Running: one of them makes the run
terminate, ``IsTerminating``, so ``(*Controller).assessRunStatus`` ends it with that phase); the
rollout controller aborts on Failed or Error and pauses on Inconclusive (rollout/analysis.go
``reconcileStepBasedAnalysisRun``: ``pauseContext.AddAbort`` / ``AddPauseCondition``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..argoexpr.errors import ExprError, Fail
from ..argoexpr.expr import eval_expr_bool
from ..argoexpr.golang import parse_duration
from ..errors import SpecError

__all__ = [
    "ERROR",
    "FAILED",
    "INCONCLUSIVE",
    "RUNNING",
    "SUCCESSFUL",
    "Measurement",
    "Metric",
    "measurement_phase",
    "metric_phase",
    "next_due",
    "render_query",
    "run_phase",
]

SUCCESSFUL, FAILED, INCONCLUSIVE, ERROR, RUNNING = "Successful", "Failed", "Inconclusive", "Error", "Running"
_WORST = (FAILED, ERROR, INCONCLUSIVE, RUNNING, SUCCESSFUL)
_ARG = re.compile(r"\{\{\s*args\.([A-Za-z0-9_-]+)\s*\}\}")


@dataclass(frozen=True)
class Metric:
    """One analysis metric: a PromQL query and how its results are judged."""

    name: str
    query: str
    interval: float = 0.0
    """Seconds between measurements (``interval``, a Go duration in the spec)."""
    count: int | None = None
    initial_delay: float = 0.0
    success_condition: str = ""
    failure_condition: str = ""
    failure_limit: int = 0
    inconclusive_limit: int = 0
    consecutive_error_limit: int = 4

    @property
    def effective_count(self) -> int | None:
        """``(*Metric).EffectiveCount``: ``count``; unset or 0 → 1 without an ``interval``, None (unbounded) with one."""
        if not self.count:
            return None if self.interval else 1
        return self.count

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Metric:
        """A metric from Argo Rollouts' fields (``provider.prometheus.query`` or ``query``); ``SpecError`` naming the field."""
        name = spec.get("name")
        if not isinstance(name, str) or not name:
            raise SpecError("analysis metric without a name — give each metric a name")
        query = spec.get("query") or ((spec.get("provider") or {}).get("prometheus") or {}).get("query")
        if not isinstance(query, str) or not query.strip():
            raise SpecError(f"analysis metric {name!r} has no query — set provider.prometheus.query to a PromQL expression")

        def seconds(field: str) -> float:
            text = spec.get(field)
            if text in (None, ""):
                return 0.0
            try:
                return parse_duration(str(text)).ns / 1e9
            except Fail as err:  # golang.parse_duration fails with Go's message
                raise SpecError(
                    f"analysis metric {name!r}: {field} {text!r} is not a Go duration ({err}) — e.g. 30s, 1m"
                ) from err

        def whole(field: str, default: int | None) -> int | None:
            value = spec.get(field, default)
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise SpecError(f"analysis metric {name!r}: {field} {value!r} must be a whole number >= 0")
            return value

        return cls(
            name=name,
            query=query,
            interval=seconds("interval"),
            count=whole("count", None),
            initial_delay=seconds("initialDelay"),
            success_condition=str(spec.get("successCondition") or ""),
            failure_condition=str(spec.get("failureCondition") or ""),
            failure_limit=whole("failureLimit", 0) or 0,
            inconclusive_limit=whole("inconclusiveLimit", 0) or 0,
            consecutive_error_limit=whole("consecutiveErrorLimit", 4) or 0,
        )


@dataclass(frozen=True)
class Measurement:
    """One measurement of a metric: its phase, the query's result, when it was taken, why (an error's message)."""

    phase: str
    value: Any = None
    started_at: float = 0.0
    finished_at: float = 0.0
    message: str = ""


def render_query(query: str, args: Mapping[str, str]) -> str:
    """``query`` with each ``{{args.NAME}}`` replaced (Argo Rollouts' AnalysisTemplate args); ``SpecError`` for a missing one."""

    def one(match: re.Match[str]) -> str:
        if match.group(1) not in args:
            raise SpecError(f"query {query!r} uses args.{match.group(1)}, which is not given — pass it or fix the name")
        return args[match.group(1)]

    return _ARG.sub(one, query)


def measurement_phase(metric: Metric, result: Any) -> tuple[str, str]:
    """The phase of one measurement and a message (``EvaluateResult``); a condition that cannot be evaluated is an Error."""
    env = {"result": result, "isNaN": math.isnan, "isInf": math.isinf}
    try:
        success = eval_expr_bool(metric.success_condition, env) if metric.success_condition else False
        failure = eval_expr_bool(metric.failure_condition, env) if metric.failure_condition else False
    except (ExprError, TypeError) as err:
        return ERROR, f"metric {metric.name!r}: {err}"
    if not metric.success_condition and not metric.failure_condition:
        return SUCCESSFUL, ""
    if metric.success_condition and not metric.failure_condition:
        failure = not success
    elif metric.failure_condition and not metric.success_condition:
        success = not failure
    if failure:
        return FAILED, f"metric {metric.name!r}: result {result!r} meets the failure condition"
    if not success:
        return INCONCLUSIVE, f"metric {metric.name!r}: result {result!r} meets neither condition"
    return SUCCESSFUL, ""


def metric_phase(metric: Metric, measurements: Sequence[Measurement]) -> str:
    """The metric's phase after ``measurements`` (``assessMetricStatus``; the later of its failure checks wins)."""
    if not measurements:
        return RUNNING
    failed = sum(m.phase == FAILED for m in measurements)
    inconclusive = sum(m.phase == INCONCLUSIVE for m in measurements)
    errors_in_a_row = 0
    for m in reversed(measurements):
        if m.phase != ERROR:
            break
        errors_in_a_row += 1
    if errors_in_a_row > metric.consecutive_error_limit:
        return ERROR
    if inconclusive > metric.inconclusive_limit:
        return INCONCLUSIVE
    if failed > metric.failure_limit:
        return FAILED
    count = metric.effective_count
    if count is not None and len(measurements) >= count:
        return SUCCESSFUL
    return RUNNING


def run_phase(phases: Sequence[str]) -> str:
    """The analysis run's phase: Failed or Error as soon as one metric is; else Inconclusive, Running, Successful."""
    if not phases:
        return SUCCESSFUL
    return min(phases, key=_WORST.index)


def next_due(metric: Metric, started_at: float, measurements: Sequence[Measurement]) -> float | None:
    """When the next measurement is due (seconds, same clock as ``started_at``); None when the metric is done."""
    if metric_phase(metric, measurements) != RUNNING:
        return None
    if not measurements:
        return started_at + metric.initial_delay
    return measurements[-1].finished_at + metric.interval
