"""Decisions to MLflow: one run per agent, one record per decision — lazy, best effort, never blocking.

A daemon thread drains a bounded queue and talks to MLflow through the project's one MLflow client
(``tracking/_rest.py``: REST, credentials from MLflow's variables): it finds or creates the experiment
``scanflow-agents`` and the agent's run (tag ``scanflow.agent``; its id is kept in the agent state so
a restart appends to the same run), then
logs each decision as a tag ``decision.<seq>`` (compact JSON) and the metric ``decisions`` at step
``seq``. When MLflow is down the records wait in the queue (oldest dropped past ``maxsize``,
counted in ``dropped``, the reason in ``last_error``); the agent loop never waits for MLflow.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Mapping
from typing import Any

from ..backoff import Backoff
from ..clock import Clock, SystemClock
from ..errors import TrackingError
from ..tracking import MlflowRest, filter_value

__all__ = ["MlflowRecorder", "NullRecorder"]

EXPERIMENT = "scanflow-agents"

RESEND_BACKOFF = Backoff(0.5, factor=2.0, cap=30.0)
"""While MLflow fails, the next try waits 0.5 s, doubling up to 30 s."""


class NullRecorder:
    """Records nothing (tracking disabled)."""

    dropped = 0
    sent = 0

    def record(self, seq: int, decision: Mapping[str, Any]) -> None:
        return None

    def close(self, timeout: float = 0.0) -> None:
        return None


class MlflowRecorder:
    """Background writer of decisions to one MLflow run per agent."""

    def __init__(
        self,
        tracking_uri: str,
        agent: str,
        run_id: str | None = None,
        on_run: Callable[[str], None] | None = None,
        maxsize: int = 10_000,
        timeout: float = 5.0,
        clock: Clock | None = None,
    ) -> None:
        self.uri = tracking_uri.rstrip("/")
        self.agent = agent
        self.run_id = run_id
        self._on_run = on_run
        self._queue: queue.Queue[tuple[int, dict[str, Any]] | None] = queue.Queue(maxsize=maxsize)
        self._timeout = timeout
        self._clock = clock or SystemClock()
        self.dropped = 0
        self.sent = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._drain, name=f"mlflow-{agent}", daemon=True)
        self._thread.start()

    def record(self, seq: int, decision: Mapping[str, Any]) -> None:
        item = (seq, dict(decision))
        while True:
            try:
                self._queue.put_nowait(item)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def close(self, timeout: float = 2.0) -> None:
        """Flush what can be flushed within ``timeout``, then stop the thread."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    # -- the thread -----------------------------------------------------------------------------
    def _drain(self) -> None:
        failures = 0
        pending: tuple[int, dict[str, Any]] | None = None
        client: MlflowRest | None = None
        try:
            while True:
                if pending is None:
                    pending = self._queue.get()
                    if pending is None:
                        return
                try:
                    client = client or MlflowRest(self.uri, timeout=self._timeout)
                    self._send(client, *pending)
                    self.sent += 1
                    pending = None
                    failures = 0
                except TrackingError as err:
                    self.last_error = str(err)[:500]
                    failures += 1
                    self._clock.sleep(RESEND_BACKOFF.delay(failures - 1))
        finally:
            if client is not None:
                client.close()

    def _ensure_run(self, client: MlflowRest) -> str:
        if self.run_id:
            return self.run_id
        exp_id = client.experiment_id(EXPERIMENT)
        assert exp_id is not None  # created when missing
        found = client.search_runs([exp_id], f"tags.`scanflow.agent` = {filter_value(self.agent)}", max_results=1)
        if found:
            run_id = str(found[0]["info"]["run_id"])
        else:
            tags = {"scanflow.agent": self.agent, "mlflow.runName": f"agent-{self.agent}"}
            run_id = str(client.create_run(exp_id, f"agent-{self.agent}", tags, start_ms=int(self._clock.now() * 1000))["run_id"])
        self.run_id = run_id
        if self._on_run:
            self._on_run(run_id)
        return run_id

    def _send(self, client: MlflowRest, seq: int, decision: dict[str, Any]) -> None:
        run_id = self._ensure_run(client)
        text = json.dumps(decision, sort_keys=True, default=str, separators=(",", ":"))[:5000]
        ts = int(float(decision.get("t", self._clock.now())) * 1000)
        client.log_batch(run_id, metrics={"decisions": float(seq)}, tags={f"decision.{seq:06d}": text}, step=seq, timestamp_ms=ts)
