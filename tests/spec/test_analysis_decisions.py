"""Analysis decisions as Argo Rollouts makes them (utils/evaluate/evaluate.go EvaluateResult,
analysis/analysis.go assessMetricStatus / assessMetricFailureInconclusiveOrError / (*Controller).assessRunStatus,
utils/analysis/helpers.go IsWorse), table-driven."""

from __future__ import annotations

import pytest

from scanflow_argo.errors import SpecError
from scanflow_argo.spec.analysis import (
    ERROR,
    FAILED,
    INCONCLUSIVE,
    RUNNING,
    SUCCESSFUL,
    Measurement,
    Metric,
    measurement_phase,
    metric_phase,
    next_due,
    render_query,
    run_phase,
)

S, F, N, E = (Measurement(p) for p in (SUCCESSFUL, FAILED, INCONCLUSIVE, ERROR))  # N: inconclusive


@pytest.mark.parametrize(
    ("success", "failure", "result", "phase"),
    [
        ("", "", 0.1, SUCCESSFUL),
        ("result >= 0.9", "", 0.95, SUCCESSFUL),
        ("result >= 0.9", "", 0.5, FAILED),
        ("", "result > 0.25", 0.1, SUCCESSFUL),
        ("", "result > 0.25", 0.3, FAILED),
        ("result < 0.1", "result > 0.25", 0.05, SUCCESSFUL),
        ("result < 0.1", "result > 0.25", 0.2, INCONCLUSIVE),
        ("result < 0.1", "result > 0.25", 0.3, FAILED),
        ("result > 0", "result > 0", 1, FAILED),  # both hold: the failure wins
        ("result[0] >= 0.9", "", [0.95], SUCCESSFUL),  # a vector result, indexed as in Rollouts' examples
        ("result >= ", "", 1, ERROR),  # a condition that does not parse errors the measurement
    ],
)
def test_measurement_phase(success, failure, result, phase):
    got, _ = measurement_phase(Metric("m", "q", success_condition=success, failure_condition=failure), result)
    assert got == phase


@pytest.mark.parametrize(
    ("fields", "measurements", "phase"),
    [
        ({}, [], RUNNING),
        ({}, [S], SUCCESSFUL),  # no count, no interval: one measurement
        ({"interval": 1.0}, [S, S, S], RUNNING),  # an interval and no count: runs until stopped
        ({"count": 3, "interval": 1.0}, [S, S], RUNNING),
        ({"count": 3, "interval": 1.0}, [S, S, S], SUCCESSFUL),
        ({"count": 3, "interval": 1.0}, [S, F], FAILED),  # failureLimit 0: one failure fails at once
        ({"count": 3, "interval": 1.0, "failure_limit": 1}, [S, F], RUNNING),
        ({"count": 3, "interval": 1.0, "failure_limit": 1}, [F, S, S], SUCCESSFUL),
        ({"count": 3, "interval": 1.0, "failure_limit": 1}, [F, F], FAILED),
        ({"count": 3, "interval": 1.0}, [N], INCONCLUSIVE),
        ({"count": 3, "interval": 1.0, "inconclusive_limit": 1}, [N, S, S], SUCCESSFUL),
        ({"count": 3, "interval": 1.0, "failure_limit": 5}, [F, F, N], INCONCLUSIVE),
        ({"count": 9, "interval": 1.0}, [E, E, E, E], RUNNING),  # consecutiveErrorLimit 4
        ({"count": 9, "interval": 1.0}, [E, E, E, E, E], ERROR),
        ({"count": 9, "interval": 1.0}, [E, E, E, S, E, E], RUNNING),  # only errors in a row count
        # assessMetricFailureInconclusiveOrError: the later check wins — Inconclusive over Failed, Error over both
        ({"count": 9, "interval": 1.0}, [F, N], INCONCLUSIVE),
        ({"count": 9, "interval": 1.0}, [F, N, E, E, E, E, E], ERROR),
        # EffectiveCount: count 0 is unset — one measurement without an interval, unbounded with one
        ({"count": 0}, [S], SUCCESSFUL),
        ({"count": 0, "interval": 1.0}, [S, S, S], RUNNING),
    ],
)
def test_metric_phase(fields, measurements, phase):
    assert metric_phase(Metric("m", "q", **fields), measurements) == phase


@pytest.mark.parametrize(
    ("phases", "phase"),
    [
        ([SUCCESSFUL, SUCCESSFUL], SUCCESSFUL),
        ([SUCCESSFUL, RUNNING], RUNNING),
        ([RUNNING, INCONCLUSIVE], INCONCLUSIVE),
        ([INCONCLUSIVE, ERROR], ERROR),
        ([ERROR, FAILED, SUCCESSFUL], FAILED),
    ],
)
def test_run_phase(phases, phase):
    assert run_phase(phases) == phase


def test_timing_initial_delay_then_interval_then_done():
    metric = Metric("m", "q", interval=10.0, count=2, initial_delay=30.0)
    assert next_due(metric, 100.0, []) == 130.0
    assert next_due(metric, 100.0, [Measurement(SUCCESSFUL, finished_at=131.0)]) == 141.0
    assert next_due(metric, 100.0, [S, S]) is None


def test_from_spec_reads_argo_rollouts_fields():
    metric = Metric.from_spec(
        {
            "name": "p95",
            "interval": "30s",
            "count": 4,
            "initialDelay": "1m",
            "failureLimit": 1,
            "successCondition": "result[0] <= 0.25",
            "provider": {"prometheus": {"query": "histogram_quantile(0.95, x{predictor_name='{{args.canary}}'})"}},
        }
    )
    assert (metric.interval, metric.count, metric.initial_delay, metric.failure_limit) == (30.0, 4, 60.0, 1)
    assert render_query(metric.query, {"canary": "challenger"}).endswith("predictor_name='challenger'})")


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"query": "up"}, "without a name"),
        ({"name": "m"}, "has no query"),
        ({"name": "m", "query": "up", "interval": "1d"}, "not a Go duration"),
        ({"name": "m", "query": "up", "failureLimit": -1}, "whole number"),
    ],
)
def test_from_spec_refuses(spec, words):
    with pytest.raises(SpecError, match=words):
        Metric.from_spec(spec)


def test_render_query_names_a_missing_arg():
    with pytest.raises(SpecError, match=r"args\.stable"):
        render_query("x{p='{{args.stable}}'}", {"canary": "c"})
