"""Decisions to MLflow: one run per agent, one record per decision — lazy, best effort, never blocking.

A daemon thread drains a bounded queue and talks to MLflow's REST API (no ``import mlflow``, which
costs seconds): it finds or creates the experiment ``scanflow-agents`` and the agent's run (tag
``scanflow.agent``; its id is kept in the agent state so a restart appends to the same run), then
logs each decision as a tag ``decision.<seq>`` (compact JSON) and the metric ``decisions`` at step
``seq``. When MLflow is down the records wait in the queue (oldest dropped past ``maxsize``,
counted in ``dropped``); the agent loop never waits for MLflow.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from ..backoff import Backoff
from ..clock import Clock, SystemClock

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
        with httpx.Client(timeout=self._timeout) as client:
            while True:
                if pending is None:
                    pending = self._queue.get()
                    if pending is None:
                        return
                try:
                    self._send(client, *pending)
                    self.sent += 1
                    pending = None
                    failures = 0
                except (httpx.HTTPError, RuntimeError) as err:
                    self.last_error = f"{type(err).__name__}: {err}"[:300]
                    failures += 1
                    self._clock.sleep(RESEND_BACKOFF.delay(failures - 1))

    def _post(self, client: httpx.Client, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        resp = client.post(f"{self.uri}/api/2.0/mlflow/{path}", json=body)
        if resp.status_code != 200:
            raise RuntimeError(f"MLflow {path}: HTTP {resp.status_code} {resp.text[:200]}")
        return resp.json()

    def _ensure_run(self, client: httpx.Client) -> str:
        if self.run_id:
            return self.run_id
        resp = client.get(f"{self.uri}/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": EXPERIMENT})
        if resp.status_code == 200:
            exp_id = resp.json()["experiment"]["experiment_id"]
        else:
            try:
                exp_id = self._post(client, "experiments/create", {"name": EXPERIMENT})["experiment_id"]
            except RuntimeError:  # created by another agent meanwhile
                resp = client.get(f"{self.uri}/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": EXPERIMENT})
                exp_id = resp.json()["experiment"]["experiment_id"]
        found = self._post(
            client,
            "runs/search",
            {"experiment_ids": [exp_id], "filter": f"tags.`scanflow.agent` = '{self.agent}'", "max_results": 1},
        ).get("runs")
        if found:
            run_id = found[0]["info"]["run_id"]
        else:
            run = self._post(
                client,
                "runs/create",
                {
                    "experiment_id": exp_id,
                    "run_name": f"agent-{self.agent}",
                    "start_time": int(time.time() * 1000),
                    "tags": [
                        {"key": "scanflow.agent", "value": self.agent},
                        {"key": "mlflow.runName", "value": f"agent-{self.agent}"},
                    ],
                },
            )
            run_id = run["run"]["info"]["run_id"]
        self.run_id = run_id
        if self._on_run:
            self._on_run(run_id)
        return run_id

    def _send(self, client: httpx.Client, seq: int, decision: dict[str, Any]) -> None:
        run_id = self._ensure_run(client)
        text = json.dumps(decision, sort_keys=True, default=str, separators=(",", ":"))[:5000]
        ts = int(float(decision.get("t", time.time())) * 1000)
        self._post(
            client,
            "runs/log-batch",
            {
                "run_id": run_id,
                "tags": [{"key": f"decision.{seq:06d}", "value": text}],
                "metrics": [{"key": "decisions", "value": float(seq), "timestamp": ts, "step": seq}],
            },
        )
