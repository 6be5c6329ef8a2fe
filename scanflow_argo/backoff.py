"""Exponential backoff, in one place: the delay schedule and the retry loops, driven by the project's ``Clock``.

A ``Backoff`` holds the parameters of Kubernetes' ``wait.Backoff`` (k8s.io/apimachinery/pkg/util/wait,
``backoff.go``: ``Duration``, ``Factor``, ``Jitter``, ``Steps``, ``Cap``) under the names ``base``,
``factor``, ``jitter``, ``attempts`` and ``cap``, plus ``max_elapsed``. The delay before retry ``n``
(0 for the wait after the first failure) is, as ``delay()`` in ``backoff.go`` computes it::

    d = min(base * factor**n, cap)          (factor 1 or 0: a constant delay)
    d + uniform[0, jitter * d)              (wait.Jitter: the jitter is added after the cap)

``retry`` / ``aretry`` repeat a call that raises, like ``wait.ExponentialBackoff`` and client-go's
``retry.OnError`` (k8s.io/client-go/util/retry/util.go): the call runs at most ``attempts`` times,
and an error ``retry_on`` does not accept ends the loop at once; when the budget is spent the last
error is raised as it is (callers wrap it with what they were doing). Two deliberate differences
from ``wait.ExponentialBackoff``: reaching the cap does not end the loop (only ``attempts`` and
``max_elapsed`` do), and ``max_elapsed`` (the total time a caller may spend, as in cenkalti/backoff's
``MaxElapsedTime``) stops before a sleep that would pass it.

Components that schedule their next try themselves (a sensor, a supervisor, a queue drainer) keep a
failure count and ask ``Backoff.delay(failures - 1)``. Every sleep goes through the injected
``Clock``, so tests drive a loop with ``ManualClock`` and no real waiting.
"""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from .clock import Clock

__all__ = ["Backoff", "aretry", "retry"]

T = TypeVar("T")

RetryOn = tuple[type[BaseException], ...] | Callable[[BaseException], bool]
"""Which errors are worth another try: exception classes, or a predicate on the error."""

DelayOf = Callable[[BaseException, float], float]
"""``(error, scheduled delay) → delay to use``: lets a caller honour a server's ``Retry-After``."""


@dataclass(frozen=True)
class Backoff:
    """Parameters of an exponential backoff (seconds); see the module docstring for the formula."""

    base: float
    """The first delay (``wait.Backoff.Duration``)."""

    factor: float = 2.0
    """Each delay is the previous one times this (``Factor``); 1 (or 0) keeps it constant."""

    cap: float | None = None
    """No delay (before jitter) exceeds this (``Cap``); ``None``: no cap."""

    jitter: float = 0.0
    """Add up to ``jitter × delay`` at random (``Jitter``), so that many clients do not retry in step."""

    attempts: int | None = None
    """Calls at most, the first included (``Steps``); ``None``: no limit (for schedules)."""

    max_elapsed: float | None = None
    """Give up instead of sleeping past this many seconds since the first call; ``None``: no limit."""

    rand: Callable[[], float] = field(default=random.random, compare=False, repr=False)
    """Uniform [0, 1) source of the jitter (tests pass a fixed one)."""

    def __post_init__(self) -> None:
        if self.base < 0 or self.factor < 0 or self.jitter < 0 or (self.cap is not None and self.cap < 0):
            raise ValueError(f"{self}: base, factor, cap and jitter must not be negative")
        if self.attempts is not None and self.attempts < 1:
            raise ValueError(f"{self}: attempts must be at least 1 (the first call)")

    def delay(self, n: int) -> float:
        """Seconds to wait before retry ``n``; ``n = 0`` is the wait after the first failure."""
        n = max(0, n)
        growth = self.factor if self.factor else 1.0
        try:
            d = self.base * growth**n
        except OverflowError:  # a long-failing schedule: far past any cap
            d = math.inf
        if self.cap is not None:
            d = min(d, self.cap)
        if self.jitter > 0 and math.isfinite(d):
            d += self.rand() * self.jitter * d
        return d

    def gives_up(self, calls: int, elapsed: float, next_delay: float) -> bool:
        """True when, after ``calls`` calls and ``elapsed`` seconds, another try is out of budget."""
        if self.attempts is not None and calls >= self.attempts:
            return True
        return self.max_elapsed is not None and elapsed + next_delay > self.max_elapsed


def retry(
    fn: Callable[[], T],
    backoff: Backoff,
    clock: Clock,
    retry_on: RetryOn,
    *,
    before_retry: Callable[[BaseException], None] | None = None,
    delay_of: DelayOf | None = None,
) -> T:
    """Call ``fn`` until it returns; retry the errors ``retry_on`` accepts, within ``backoff``'s budget.

    ``before_retry(err)`` runs before each new try (to re-read a conflicting object, say);
    ``delay_of`` may change a delay. The last error is raised when the budget is spent.
    """
    start, calls = clock.monotonic(), 0
    while True:
        try:
            return fn()
        except Exception as err:
            calls += 1
            wait = _next_wait(backoff, clock, retry_on, delay_of, err, calls, start)
            if wait is None:
                raise
            if before_retry is not None:
                before_retry(err)
            clock.sleep(wait)


async def aretry(
    fn: Callable[[], Awaitable[T]],
    backoff: Backoff,
    clock: Clock,
    retry_on: RetryOn,
    *,
    before_retry: Callable[[BaseException], Awaitable[None]] | None = None,
    delay_of: DelayOf | None = None,
) -> T:
    """``retry`` for coroutines: ``fn()`` is awaited, sleeps are ``clock.asleep``."""
    start, calls = clock.monotonic(), 0
    while True:
        try:
            return await fn()
        except Exception as err:
            calls += 1
            wait = _next_wait(backoff, clock, retry_on, delay_of, err, calls, start)
            if wait is None:
                raise
            if before_retry is not None:
                await before_retry(err)
            await clock.asleep(wait)


def _next_wait(
    backoff: Backoff, clock: Clock, retry_on: RetryOn, delay_of: DelayOf | None, err: BaseException, calls: int, start: float
) -> float | None:
    """Seconds to wait before the next try after ``calls`` failed ones, or ``None``: give up, raise ``err``."""
    accepted = isinstance(err, retry_on) if isinstance(retry_on, tuple) else retry_on(err)
    if not accepted:
        return None
    wait = backoff.delay(calls - 1)
    if delay_of is not None:
        wait = max(0.0, delay_of(err, wait))
    return None if backoff.gives_up(calls, clock.monotonic() - start, wait) else wait
