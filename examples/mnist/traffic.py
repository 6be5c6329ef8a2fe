"""The traffic generator: predictions (and feedback with the true label) to a Seldon endpoint at a set rate.

Open loop, as real users are: request *i* is due at ``start + i / rate`` whether or not earlier
ones have answered, bounded by ``max_in_flight`` concurrent requests (a request that would exceed
it is counted as ``dropped``, not sent, so a stalled server is never flooded). The rate, the pool
of digits and the phase label can change while it runs. Each prediction is recorded (time sent,
latency, HTTP code, predicted class, truth); for a ``feedback_share`` of them a feedback request
follows with the truth (Seldon's ``/api/v1.0/feedback``), as a labelling service would send it.
Only digits of the pools given are sent (the scenario gives held-out digits, never training ones).
Each pool deals its digits in a seeded shuffled order, every digit once before any repeats, so a
phase sends the same digits in every run whatever the machine's timing: online accuracy is then
measured on the same digits too.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from scanflow_argo.clock import Clock, SystemClock

__all__ = ["Pool", "RequestRecord", "Traffic"]


@dataclass(frozen=True)
class Pool:
    """Digits to send: images uint8 (n, 28, 28) and their labels."""

    images: np.ndarray
    labels: np.ndarray

    def payload(self, i: int) -> list[list[float]]:
        # Pixels in [0, 1] with 3 decimals: short JSON, and x*255 still rounds back to the same byte.
        return [np.round(self.images[i].reshape(-1) / 255.0, 3).tolist()]


@dataclass
class RequestRecord:
    """One prediction request as the client saw it."""

    t: float
    phase: str
    pool: str
    latency: float | None = None
    code: int = 0
    predicted: int | None = None
    truth: int = -1
    feedback_code: int | None = None

    @property
    def ok(self) -> bool:
        return self.code == 200

    def as_row(self) -> list[Any]:
        return [round(self.t, 4), self.phase, self.pool, None if self.latency is None else round(self.latency, 5),
                self.code, self.predicted, self.truth, self.feedback_code]  # fmt: skip


ROW_FIELDS = ["t", "phase", "pool", "latency", "code", "predicted", "truth", "feedback_code"]


@dataclass
class Traffic:
    """Sends traffic to ``endpoint`` (a Seldon deployment's base URL) until stopped."""

    endpoint: str
    pools: Mapping[str, Pool]
    rate: float
    pool: str
    phase: str = "start"
    feedback_share: float = 1.0
    seed: int = 0
    max_in_flight: int = 64
    timeout: float = 10.0
    clock: Clock = field(default_factory=SystemClock)
    records: list[RequestRecord] = field(default_factory=list)
    dropped: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.pool not in self.pools:
            raise ValueError(f"unknown pool {self.pool!r}: have {sorted(self.pools)}")
        self._rng = np.random.default_rng(self.seed)
        self._decks: dict[str, list[int]] = {}
        self._dealt: dict[str, int] = {}
        self._stop = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()

    def _deal(self, name: str) -> int:
        """The pool's next digit: a shuffled deck per pool and per pass, seeded by (seed, pool, pass)."""
        deck = self._decks.get(name)
        if not deck:
            rounds = self._dealt.get(name, 0)
            order = np.random.default_rng([self.seed, zlib.crc32(name.encode()), rounds]).permutation(
                len(self.pools[name].labels)
            )
            deck = self._decks[name] = order[::-1].tolist()  # popped from the end: the permutation's order
            self._dealt[name] = rounds + 1
        return int(deck.pop())

    def set(
        self, *, rate: float | None = None, pool: str | None = None, phase: str | None = None, feedback_share: float | None = None
    ) -> None:
        """Change the rate, the pool, the phase label or the feedback share from now on."""
        if feedback_share is not None:
            self.feedback_share = min(1.0, max(0.0, float(feedback_share)))
        if pool is not None:
            if pool not in self.pools:
                raise ValueError(f"unknown pool {pool!r}: have {sorted(self.pools)}")
            self.pool = pool
        if rate is not None:
            self.rate = max(0.01, float(rate))
        if phase is not None:
            self.phase = phase

    def stop(self) -> None:
        self._stop.set()

    async def run(self, max_requests: int | None = None) -> None:
        """Send until ``stop()`` (or ``max_requests``), then wait for the requests in flight."""
        limits = httpx.Limits(max_connections=self.max_in_flight, max_keepalive_connections=self.max_in_flight)
        async with httpx.AsyncClient(base_url=self.endpoint, timeout=self.timeout, limits=limits) as client:
            due = self.clock.monotonic()
            sent = 0
            while not self._stop.is_set() and (max_requests is None or sent < max_requests):
                wait = due - self.clock.monotonic()
                if wait > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), wait)
                    if self._stop.is_set():
                        break
                due += 1.0 / self.rate
                # Fell far behind (a paused loop): restart the schedule rather than burst to catch up.
                due = max(due, self.clock.monotonic() - 1.0)
                if len(self._in_flight) >= self.max_in_flight:
                    self.dropped += 1
                    continue
                task = asyncio.create_task(self._one(client))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
                sent += 1
            if self._in_flight:
                await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def _one(self, client: httpx.AsyncClient) -> None:
        pool = self.pools[self.pool]
        i = self._deal(self.pool)
        give_feedback = bool(self._rng.random() < self.feedback_share)
        truth = int(pool.labels[i])
        rec = RequestRecord(t=self.clock.now(), phase=self.phase, pool=self.pool, truth=truth)
        self.records.append(rec)
        data = {"data": {"ndarray": pool.payload(i)}}
        started = self.clock.monotonic()
        try:
            resp = await client.post("/api/v1.0/predictions", json=data)
            rec.latency = self.clock.monotonic() - started
            rec.code = resp.status_code
            if resp.status_code == 200:
                probs = resp.json()["data"]["ndarray"][0]
                rec.predicted = int(np.argmax(probs))
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as err:
            rec.latency = self.clock.monotonic() - started
            self._count(type(err).__name__)
            return
        if not (give_feedback and rec.ok):
            return
        feedback = {"request": data, "truth": {"data": {"ndarray": [truth]}}, "reward": 0}
        try:
            answer = await client.post("/api/v1.0/feedback", json=feedback)
            rec.feedback_code = answer.status_code
        except httpx.HTTPError as err:
            rec.feedback_code = 0
            self._count(f"feedback {type(err).__name__}")

    def _count(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1

    def rows(self) -> list[list[Any]]:
        """Every record as a row of ``ROW_FIELDS`` (for the JSON report)."""
        return [r.as_row() for r in self.records]
