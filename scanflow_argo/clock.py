"""Time, in one injectable place: every component that waits or stamps takes a ``Clock``.

``SystemClock`` is the real one; ``ManualClock`` is for tests and for replaying decisions.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock", "from_iso", "iso"]


class Clock(Protocol):
    """Wall time for stamps, monotonic time for intervals, and sleeping."""

    def now(self) -> float:
        """Seconds since the epoch (wall clock), for timestamps and Prometheus queries."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never goes back, for intervals."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block the calling thread."""
        ...

    async def asleep(self, seconds: float) -> None:
        """Suspend the calling coroutine."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ManualClock:
    """A clock that moves only when told to; sleeping advances it instantly."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._mono = 0.0

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now += seconds
        self._mono += seconds

    def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))

    async def asleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)


def iso(ts: float) -> str:
    """RFC 3339 UTC timestamp with second precision, as Argo writes them."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_iso(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 timestamp as ``iso`` writes it (``2026-01-02T03:04:05Z``)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
