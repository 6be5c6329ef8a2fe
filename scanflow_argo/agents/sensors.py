"""Sensors: read a number from Prometheus, MLflow or the platform — or say clearly why not.

Each reader is synchronous (the runtime calls it in a worker thread) and either returns samples
or raises ``SensorError``. It never turns "no data" into zero: an empty result, NaN, an error
answer or an unreachable server all raise, and the runtime marks the sensor stale and retries
with backoff. ``SensorTrack`` keeps a sensor's window of samples and its schedule.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
from croniter import croniter

from ..backoff import Backoff
from ..errors import AgentDefinitionError, ScanflowError, TrackingError
from ..spec.agent import ArgoRuns, MlflowQuery, PromQuery, Replicas, Sensor
from ..tracking import MlflowRest, missing
from .decide import Sample, SensorWindow

__all__ = [
    "ArgoRunsReader",
    "MlflowReader",
    "PrometheusReader",
    "ReplicasReader",
    "SensorError",
    "SensorTrack",
    "check_promql_online",
]


class SensorError(Exception):
    """A sensor read gave no usable number; the message says why (it goes to /status and the audit)."""


def _number(raw: Any, where: str) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError) as err:
        raise SensorError(f"{where}: {raw!r} is not a number") from err
    if math.isnan(value):
        raise SensorError(f"{where}: NaN (no data in the window)")
    return value


class PrometheusReader:
    """PromQL through prometheus-api-client; one series expected (aggregate in the query)."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        from prometheus_api_client import PrometheusConnect  # prometheus-api-client: PromQL sensors only
        from urllib3.util.retry import Retry  # with prometheus-api-client: PromQL sensors only

        self.url = url.rstrip("/")
        # No hidden retries in the client: the runtime's backoff decides when to try again.
        self._prom = PrometheusConnect(url=self.url, disable_ssl=True, retry=Retry(total=0, connect=0, read=0), timeout=timeout)

    def read(self, sensor: PromQuery, now: float) -> list[Sample]:
        import requests  # with prometheus-api-client: PromQL sensors only
        from prometheus_api_client import PrometheusApiClientException  # prometheus-api-client: PromQL sensors only

        try:
            if sensor.range is None:
                result = self._prom.custom_query(sensor.query, params={"time": f"{now:.3f}"})
            else:
                result = self._prom.custom_query_range(
                    sensor.query,
                    start_time=datetime.fromtimestamp(now - sensor.range, UTC),
                    end_time=datetime.fromtimestamp(now, UTC),
                    step=f"{sensor.step:g}",
                )
        except PrometheusApiClientException as err:
            raise SensorError(f"Prometheus refused the query of {sensor.name!r}: {str(err)[:300]}") from err
        except requests.RequestException as err:
            raise SensorError(f"Prometheus at {self.url} unreachable: {type(err).__name__}") from err
        return self._parse(sensor, result)

    @staticmethod
    def _parse(sensor: PromQuery, result: Any) -> list[Sample]:
        where = f"sensor {sensor.name!r}"
        if isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict):  # scalar
            return [Sample(float(result[0]), _number(result[1], where))]
        if not result:
            raise SensorError(f"{where}: no data (empty result)")
        if len(result) > 1:
            raise SensorError(f"{where}: {len(result)} series returned — aggregate the query to one (sum, max, avg …)")
        series = result[0]
        if "value" in series:
            ts, raw = series["value"]
            return [Sample(float(ts), _number(raw, where))]
        samples = []
        for ts, raw in series.get("values", []):
            try:
                samples.append(Sample(float(ts), _number(raw, where)))
            except SensorError:
                continue  # a NaN point inside a range is a gap, not a zero
        if not samples:
            raise SensorError(f"{where}: no data (only NaN in the range)")
        return samples


def check_promql_online(url: str, queries: Mapping[str, str], timeout: float = 3.0) -> list[str]:
    """Ask the real Prometheus to parse each query; raise ``AgentDefinitionError`` on a parse error.

    Uses ``/api/v1/query`` (Prometheus 2.42 has no ``parse_query``): a syntax error answers
    HTTP 400 ``bad_data``. Returns notes for the queries that could not be checked (unreachable).
    """
    notes: list[str] = []
    for field_name, query in queries.items():
        try:
            resp = httpx.get(f"{url.rstrip('/')}/api/v1/query", params={"query": query}, timeout=timeout)
        except httpx.HTTPError as err:
            notes.append(f"{field_name}: not checked, Prometheus at {url} unreachable ({type(err).__name__})")
            continue
        if resp.status_code == 400:
            try:
                body = resp.json()
            except ValueError:
                body = {}
            if body.get("errorType") == "bad_data":
                raise AgentDefinitionError(f"{field_name}: Prometheus rejects the query {query!r}: {body.get('error')}")
    return notes


class MlflowReader:
    """The version an alias points to, or a metric of that version's run (through the project's MLflow client)."""

    def __init__(self, tracking_uri: str, timeout: float = 5.0) -> None:
        self.uri = tracking_uri.rstrip("/")
        self.timeout = timeout
        self._client: MlflowRest | None = None

    def read(self, sensor: MlflowQuery, now: float) -> list[Sample]:
        where = f"sensor {sensor.name!r}"
        try:
            self._client = self._client or MlflowRest(self.uri, timeout=self.timeout)
            mv = self._client.get_alias(sensor.model, sensor.alias)
            if mv is None:
                raise SensorError(f"{where}: MLflow has no {sensor.model}@{sensor.alias}: no data")
            if sensor.metric is None:
                return [Sample(now, _number(mv.get("version"), where))]
            run_id = mv.get("run_id")
            if not run_id:
                raise SensorError(f"{where}: {sensor.model}@{sensor.alias} has no run: no data")
            metrics = self._client.get_run(run_id).get("data", {}).get("metrics", [])
        except TrackingError as err:
            if missing(err):
                raise SensorError(f"{where}: MLflow has no {sensor.model}@{sensor.alias} or its run: no data") from err
            raise SensorError(f"{where}: {err}") from err
        for m in metrics:
            if m.get("key") == sensor.metric:
                return [Sample(now, _number(m.get("value"), where))]
        raise SensorError(f"{where}: run {run_id} has no metric {sensor.metric!r}: no data")


class ArgoRunsReader:
    """How many runs with the sensor's labels are in its phases, from the platform."""

    def __init__(self, platform: Any) -> None:
        self.platform = platform

    def read(self, sensor: ArgoRuns, now: float) -> list[Sample]:
        try:
            runs = self.platform.list_runs(sensor.labels)
        except ScanflowError as err:
            raise SensorError(f"platform did not list runs: {err}") from err
        return [Sample(now, float(sum(1 for r in runs if r.phase in sensor.phases)))]


class ReplicasReader:
    """Desired replicas of a deployment, from the platform."""

    def __init__(self, platform: Any) -> None:
        self.platform = platform

    def read(self, sensor: Replicas, now: float) -> list[Sample]:
        try:
            return [Sample(now, float(self.platform.get_deployment(sensor.deployment).replicas))]
        except ScanflowError as err:
            raise SensorError(f"deployment {sensor.deployment!r}: {err}") from err


class SensorTrack:
    """One sensor's window, schedule and failure count (runtime bookkeeping, not persisted)."""

    def __init__(self, sensor: Sensor, keep: float, now: float, max_backoff: float | None = None) -> None:
        self.sensor = sensor
        self.keep = keep
        self.samples: deque[Sample] = deque()
        self.error: str | None = "never read"
        self.failures = 0
        self.errors_total = 0
        self.next_due = now  # wall time
        self.last_read: float | None = None
        self.max_backoff = max_backoff if max_backoff is not None else max(4 * sensor.interval, 2.0)
        self.backoff = Backoff(sensor.interval, factor=2.0, cap=self.max_backoff)
        """After a failure: the interval, doubling per failure up to ``max_backoff``."""

    def window(self) -> SensorWindow:
        return SensorWindow(self.sensor.name, tuple(self.samples), self.error, self.sensor.stale_after)

    def record(self, samples: list[Sample], now: float, range_query: bool) -> None:
        if range_query:
            self.samples = deque(samples)  # the range result is the window
        else:
            for s in samples:
                if not self.samples or s.t > self.samples[-1].t:
                    self.samples.append(s)
        while self.samples and self.samples[0].t < now - self.keep:
            self.samples.popleft()
        self.error = None
        self.failures = 0
        self.last_read = now
        self.next_due = self._next(now)

    def fail(self, why: str, now: float) -> None:
        self.error = why
        self.failures += 1
        self.errors_total += 1
        self.last_read = now
        backoff = self.backoff.delay(self.failures - 1)
        self.next_due = min(self._next(now), now + backoff) if self.sensor.schedule else now + backoff

    def _next(self, now: float) -> float:
        if self.sensor.schedule:
            return float(croniter(self.sensor.schedule, now).get_next(float))
        return now + self.sensor.interval


Reader = Callable[[Sensor, float], list[Sample]]
