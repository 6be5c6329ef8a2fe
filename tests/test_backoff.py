"""The one backoff helper (``scanflow_argo/backoff.py``) and the loops that use it, driven by ``ManualClock``.

The schedule follows ``delay()`` and ``Jitter()`` of k8s.io/apimachinery/pkg/util/wait
(``backoff.go``, ``wait.go``); the retry loop follows client-go's ``retry.OnError``
(k8s.io/client-go/util/retry/util.go): the last retriable error is returned when the steps run out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from scanflow_argo.backoff import Backoff, aretry, retry
from scanflow_argo.clock import ManualClock
from scanflow_argo.errors import ConflictError, NotFoundError, UnavailableError


class RecordingClock(ManualClock):
    """A ManualClock that remembers every sleep."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        super().sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        await super().asleep(seconds)


# -- the schedule ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("backoff", "delays"),
    [
        # the policies of the loops this helper replaced
        (Backoff(0.05, factor=2, cap=1.0), [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]),  # Kubernetes conflicts
        (Backoff(1.0, factor=2, cap=4.0), [1, 2, 4, 4, 4]),  # a sensor with interval 1 (cap 4 × interval)
        (Backoff(1.0, factor=2, cap=30.0), [1, 2, 4, 8, 16, 30, 30]),  # the serving supervisor's reconcile
        (Backoff(0.2, factor=2, cap=5.0), [0.2, 0.4, 0.8, 1.6, 3.2, 5.0]),  # agent messages on 503
        (Backoff(0.5, factor=2, cap=30.0), [0.5, 1, 2, 4, 8, 16, 30]),  # decisions to MLflow
        # the edges of wait.Backoff: Factor 1 or 0 keeps Duration; no Cap means no limit
        (Backoff(0.01, factor=1.0), [0.01, 0.01, 0.01]),
        (Backoff(0.01, factor=0.0), [0.01, 0.01, 0.01]),
        (Backoff(0.01, factor=5.0), [0.01, 0.05, 0.25, 1.25]),  # client-go's retry.DefaultBackoff, unjittered
        (Backoff(0.0, factor=2.0), [0.0, 0.0]),
    ],
)
def test_delay_schedule(backoff: Backoff, delays: list[float]) -> None:
    assert [backoff.delay(n) for n in range(len(delays))] == pytest.approx(delays)


@pytest.mark.parametrize(
    ("backoff", "n", "expected"),
    [
        (Backoff(1.0, cap=10.0, jitter=0.5, rand=lambda: 0.5), 0, 1.25),  # d + rand × jitter × d
        (Backoff(1.0, cap=10.0, jitter=0.5, rand=lambda: 0.5), 5, 12.5),  # the jitter is added after the cap, as in client-go
        (Backoff(1.0, cap=10.0, jitter=0.5, rand=lambda: 0.0), 5, 10.0),
        (Backoff(1.0, cap=10.0), 5000, 10.0),  # a schedule that failed for days: no overflow
        (Backoff(1.0), 5000, float("inf")),
        (Backoff(1.0), -3, 1.0),
    ],
)
def test_delay_jitter_cap_and_overflow(backoff: Backoff, n: int, expected: float) -> None:
    assert backoff.delay(n) == pytest.approx(expected)


@pytest.mark.parametrize(
    "kwargs", [{"base": -1.0}, {"base": 1.0, "factor": -2.0}, {"base": 1.0, "jitter": -0.1}, {"base": 1.0, "attempts": 0}]
)
def test_bad_parameters_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must"):
        Backoff(**kwargs)


# -- the retry loops -----------------------------------------------------------------------------------


def _script(outcomes: list[Any]) -> tuple[Callable[[], Any], list[int]]:
    """A call that raises or returns ``outcomes`` in turn; ``calls[0]`` counts the calls."""
    calls = [0]

    def fn() -> Any:
        out = outcomes[min(calls[0], len(outcomes) - 1)]
        calls[0] += 1
        if isinstance(out, BaseException):
            raise out
        return out

    return fn, calls


UNAVAILABLE = UnavailableError("down")
CONFLICT = ConflictError("stale")

RETRY_CASES = [
    # (id, backoff, retry_on, outcomes, expected result or error class, calls, sleeps)
    ("first-try", Backoff(0.2, attempts=3), (UnavailableError,), ["ok"], "ok", 1, []),
    ("recovers", Backoff(0.2, attempts=3), (UnavailableError,), [UNAVAILABLE, UNAVAILABLE, "ok"], "ok", 3, [0.2, 0.4]),
    ("attempts-spent", Backoff(0.2, attempts=3), (UnavailableError,), [UNAVAILABLE], UnavailableError, 3, [0.2, 0.4]),
    ("not-retriable", Backoff(0.2, attempts=3), (UnavailableError,), [NotFoundError("gone")], NotFoundError, 1, []),
    ("subclass", Backoff(0.2, attempts=3), (UnavailableError,), [CONFLICT], ConflictError, 1, []),
    ("predicate", Backoff(0.1, attempts=5), lambda e: "stale" in str(e), [CONFLICT, CONFLICT, 7], 7, 3, [0.1, 0.2]),
    ("capped", Backoff(0.05, cap=0.1, attempts=5), (ConflictError,), [CONFLICT], ConflictError, 5, [0.05, 0.1, 0.1, 0.1]),
    # max_elapsed: 0.2 + 0.4 + 0.8 = 1.4 would pass 1.0, so the third wait is not taken
    ("max-elapsed", Backoff(0.2, max_elapsed=1.0), (UnavailableError,), [UNAVAILABLE], UnavailableError, 3, [0.2, 0.4]),
    ("unbounded", Backoff(0.1, factor=1.0), (UnavailableError,), [UNAVAILABLE] * 9 + ["ok"], "ok", 10, [0.1] * 9),
]


@pytest.mark.parametrize(
    ("backoff", "retry_on", "outcomes", "expected", "calls", "sleeps"),
    [c[1:] for c in RETRY_CASES],
    ids=[c[0] for c in RETRY_CASES],
)
def test_retry(backoff: Backoff, retry_on: Any, outcomes: list[Any], expected: Any, calls: int, sleeps: list[float]) -> None:
    clock = RecordingClock()
    fn, count = _script(outcomes)
    if isinstance(expected, type):
        with pytest.raises(expected):
            retry(fn, backoff, clock, retry_on)
    else:
        assert retry(fn, backoff, clock, retry_on) == expected
    assert (count[0], clock.sleeps) == (calls, pytest.approx(sleeps))


@pytest.mark.parametrize(
    ("backoff", "retry_on", "outcomes", "expected", "calls", "sleeps"),
    [c[1:] for c in RETRY_CASES],
    ids=[c[0] for c in RETRY_CASES],
)
def test_aretry(backoff: Backoff, retry_on: Any, outcomes: list[Any], expected: Any, calls: int, sleeps: list[float]) -> None:
    clock = RecordingClock()
    fn, count = _script(outcomes)

    async def call() -> Any:
        return fn()

    if isinstance(expected, type):
        with pytest.raises(expected):
            asyncio.run(aretry(call, backoff, clock, retry_on))
    else:
        assert asyncio.run(aretry(call, backoff, clock, retry_on)) == expected
    assert (count[0], clock.sleeps) == (calls, pytest.approx(sleeps))


def test_before_retry_and_delay_of() -> None:
    """``before_retry`` sees each error before the next try; ``delay_of`` may replace a delay (a Retry-After)."""
    clock = RecordingClock()
    seen: list[str] = []
    fn, _ = _script([CONFLICT, UNAVAILABLE, "ok"])
    result = retry(
        fn,
        Backoff(0.2, attempts=3),
        clock,
        (ConflictError, UnavailableError),
        before_retry=lambda err: seen.append(type(err).__name__),
        delay_of=lambda err, d: 0.0 if isinstance(err, ConflictError) else d,
    )
    assert (result, seen, clock.sleeps) == ("ok", ["ConflictError", "UnavailableError"], [0.0, 0.4])


# -- the loops that use it -------------------------------------------------------------------------------


def test_kubernetes_conflicts_back_off_on_the_clock_and_then_say_why() -> None:
    from scanflow_argo.platform._k8s.api import CONFLICT_ATTEMPTS, retry_conflicts

    clock = RecordingClock()
    fn, count = _script([CONFLICT])
    with pytest.raises(ConflictError, match=f"still conflicting after {CONFLICT_ATTEMPTS} attempts"):
        retry_conflicts(fn, clock, "SeldonDeployment ns/x")
    assert (count[0], clock.sleeps) == (CONFLICT_ATTEMPTS, [0.05, 0.1, 0.2, 0.4])


def test_agent_action_retries_wait_on_the_agents_clock(settings: Any) -> None:
    """The agent's platform retries sleep on its ``Clock`` (they slept in real time before)."""
    from scanflow_argo.agents.runtime import AgentRuntime
    from scanflow_argo.agents.testing import InMemoryPlatform
    from scanflow_argo.spec.agent import Agent

    platform = InMemoryPlatform()
    platform.add_deployment("d")
    platform.fail_next("scale", "unavailable", count=2)
    clock = RecordingClock()
    runtime = AgentRuntime(Agent("a"), settings, platform=platform, clock=clock)
    t0 = time.perf_counter()
    asyncio.run(runtime._retry(lambda: platform.scale("d", 3)))
    assert clock.sleeps == [0.2, 0.4] and time.perf_counter() - t0 < 0.3
    assert platform.get_deployment("d").replicas == 3
    runtime.leader.release()
