"""The local Seldon router: Seldon's external REST API in front of a deployment's replicas.

One ``Router`` per deployment, on 127.0.0.1 (aiohttp server + one pooled aiohttp client). It
runs inside the deployment's supervisor (``serving/controller.py``), which changes the replica
set live through ``add`` and ``remove`` — there is no admin endpoint to protect.

Routes (as Seldon's executor serves them, also under ``/seldon/<namespace>/<deployment>``):

* ``POST /api/v1.0/predictions``, ``POST /api/v1.0/feedback`` (and ``/api/v0.1/…``): forwarded
  unchanged, round-robin over the ready replicas. A replica that refuses the connection is
  skipped and the request goes to the next one (the request never reached it).
* ``GET /ready`` (200 while a replica is ready, else 503), ``GET /live``, ``GET /health/ping``.
* ``GET /metrics``: ``seldon_api_executor_server_requests_seconds_bucket|count|sum`` with Seldon's
  executor labels ``deployment_name``, ``predictor_name``, ``predictor_version``, ``service``
  (``predictions`` / ``feedback``), ``method`` (``post``), ``code`` — plus ``model_name``, the
  graph's unit, so PromQL written against the executor on the cluster works here unchanged — and
  ``seldon_api_executor_client_requests_seconds_*`` (router → replica, labels as the executor's
  client metric: … ``model_name``, ``model_image``, ``model_version``, ``method``, ``code``).
  Buckets are the executor's (``DefBuckets`` in executor/api/metric/constants.go).

Refused before any replica sees them, in Seldon's error shape (``httpguard`` decides): a request
from another site's web page (``Origin``) or, on loopback, under a foreign ``Host`` (DNS
rebinding) — 403; a body over ``MAX_BODY`` — 413; JSON nested deeper than ``httpguard.MAX_DEPTH``
or holding ``NaN``/``Infinity`` — 400 (scanned, not parsed: the model refuses ``null`` and
numbers beyond float32 in any payload format); a feedback ``reward`` that is not a finite number —
400, as seldon-core counts it in ``seldon_api_model_feedback_reward_total`` before the model sees it.

Several predictors (issue 17): with a ``TrafficSplit`` (``serving/traffic.py``) each prediction goes
to one predictor drawn from the router's seeded RNG (``seed``: the same seed, the same sequence of
predictors), round-robin over that predictor's ready replicas (``Replica.predictor``); when the drawn
predictor has no ready replica the request goes to another answering predictor rather than failing.
Every request carries a ``Seldon-Puid`` (the caller's, else one the router makes, returned in the
response header as the executor does); feedback naming a puid (header, or ``response.meta.puid`` in
its body) goes to the predictor that answered that prediction, remembered for the last
``PUID_MEMORY`` predictions. Shadow predictors get a copy of each prediction after the caller's
answer is on its way (a task, not awaited), at most ``SHADOW_INFLIGHT`` copies at a time — more are
dropped and counted in ``shadow_dropped``; their answers are discarded. Metrics carry the predictor
that answered in ``predictor_name``.

Starting (``hold_seconds``): a router that has not yet had a ready replica — its supervisor just started,
for a new deployment or after the previous supervisor was killed — holds a request up to ``hold_seconds``
for the first replica instead of answering 503 at once (0, the default: 503 at once, as with no replica later).

Draining: ``remove`` takes a replica out of the rotation at once, then waits until its in-flight
requests have finished (or ``drain_seconds`` passed) before returning; the caller stops it after.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ..clock import Clock, SystemClock
from ..errors import RequestError, ServingError
from ..httpguard import check_json, is_loopback, load_json, refusal
from .traffic import TrafficSplit

__all__ = ["EXECUTOR_BUCKETS", "MAX_BODY", "PUID_MEMORY", "SHADOW_INFLIGHT", "Replica", "Router"]

PUID_MEMORY = 100_000
"""How many predictions' puids the router remembers to send their feedback to the predictor that answered."""
SHADOW_INFLIGHT = 64
"""Most copies in flight to shadow predictors; a copy beyond it is dropped (the caller never waits for one)."""

MAX_BODY = 64 * 1024**2
"""Largest request body the router takes (bytes)."""
_FLOAT32_MAX = 3.4028234663852886e38  # a feedback reward is a proto float
_REASONS = {400: "INVALID_PAYLOAD", 403: "FORBIDDEN", 413: "PAYLOAD_TOO_LARGE"}

EXECUTOR_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
_LABELS = ("deployment_name", "predictor_name", "predictor_version", "model_name", "service", "method", "code")
_CLIENT_LABELS = (
    "deployment_name",
    "predictor_name",
    "predictor_version",
    "service",
    "model_name",
    "model_image",
    "model_version",
    "method",
    "code",
)
_SERVICES = {"predictions": "predictions", "feedback": "feedback"}


@dataclass(eq=False)
class Replica:
    """One replica the router sends requests to."""

    id: str
    url: str
    """Base URL of the replica's REST port, e.g. ``http://127.0.0.1:9000``."""
    model_uri: str = ""
    model_image: str = ""
    model_version: str = ""
    """Labels of the executor's client metric (image name and tag on the cluster; locally the model)."""
    predictor: str = ""
    """The predictor this replica belongs to ("" is the router's own ``predictor``)."""
    inflight: int = 0
    draining: bool = False
    served: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)


def _error_body(code: int, reason: str, info: str) -> dict[str, Any]:
    """Seldon's error payload shape."""
    return {"status": {"code": code, "info": info, "reason": reason, "status": "FAILURE"}}


class Router:
    """Seldon's external API over a live set of replicas, with the executor's request metrics."""

    def __init__(
        self,
        deployment: str,
        *,
        predictor: str = "default",
        model_name: str = "classifier",
        predictor_version: str = "",
        namespace: str = "default",
        host: str = "127.0.0.1",
        port: int = 0,
        request_timeout: float = 60.0,
        clock: Clock | None = None,
        split: TrafficSplit | None = None,
        seed: int | None = None,
        hold_seconds: float = 0.0,
    ) -> None:
        self.deployment = deployment
        self.hold_seconds = hold_seconds
        self._first_ready = asyncio.Event()
        self.split = split
        self._rng = random.Random(seed)
        self._puids: OrderedDict[str, str] = OrderedDict()
        self._shadow_tasks: set[asyncio.Task[None]] = set()
        self.shadow_dropped = 0
        self.predictor = predictor
        self.model_name = model_name
        self.predictor_version = predictor_version
        self.versions: dict[str, str] = {}
        """``predictor_version`` label per predictor (the router's own ``predictor_version`` for one not listed)."""
        self.namespace = namespace
        self.host = host
        self.port = port
        self.request_timeout = request_timeout
        self.clock = clock or SystemClock()
        self.registry = CollectorRegistry()
        self._hist = Histogram(
            "seldon_api_executor_server_requests_seconds",
            "A histogram of latencies for executor server",
            _LABELS,
            buckets=EXECUTOR_BUCKETS,
            registry=self.registry,
        )
        self._client_hist = Histogram(
            "seldon_api_executor_client_requests_seconds",
            "A histogram of latencies for client calls from executor",
            _CLIENT_LABELS,
            buckets=EXECUTOR_BUCKETS,
            registry=self.registry,
        )
        self._replicas: dict[str, Replica] = {}
        self._active: list[Replica] = []
        self._rr = itertools.count()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._guard])
        prefix = f"/seldon/{self.namespace}/{self.deployment}"
        for base in ("", prefix):
            for version in ("v1.0", "v0.1"):
                for service in _SERVICES:
                    app.router.add_post(f"{base}/api/{version}/{service}", self._handler(service, version))
        for path, handler in (
            ("/ready", self._ready),
            ("/live", self._live),
            ("/health/ping", self._live),
            ("/metrics", self._metrics),
        ):
            app.router.add_get(path, handler)
        return app

    async def start(self) -> None:
        """Listen on ``host:port`` (port 0 picks a free one; ``self.port`` then tells which)."""
        connector = aiohttp.TCPConnector(limit=256, keepalive_timeout=30)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=self.request_timeout), auto_decompress=False
        )
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError as err:
            await self.stop()
            raise ServingError(
                f"router for {self.deployment!r} cannot listen on {self.host}:{self.port}: {err} — pick another port (SCANFLOW_SERVING_ROUTER_PORT or --port)"
            ) from err
        addresses = self._runner.addresses  # (host, port, …) of each listening socket: the port 0 picked
        if addresses:
            self.port = int(addresses[0][1])

    async def stop(self) -> None:
        for task in list(self._shadow_tasks):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- replica set ---------------------------------------------------------------------------

    def replicas(self) -> list[Replica]:
        """Every replica the router knows, draining ones included."""
        return list(self._replicas.values())

    def ready(self) -> list[Replica]:
        """Replicas that get new requests."""
        return list(self._active)

    def add(self, replica: Replica) -> None:
        """Put a ready replica into the rotation."""
        replica.draining = False
        self._replicas[replica.id] = replica
        self._active = [r for r in self._replicas.values() if not r.draining]
        self._first_ready.set()

    async def remove(self, replica_id: str, drain_seconds: float) -> bool:
        """Take a replica out of the rotation and wait for its in-flight requests; True if it drained."""
        replica = self._replicas.get(replica_id)
        if replica is None:
            return True
        replica.draining = True
        self._active = [r for r in self._replicas.values() if not r.draining]
        drained = True
        if replica.inflight > 0:
            replica.idle.clear()
            try:
                await asyncio.wait_for(replica.idle.wait(), timeout=max(0.0, drain_seconds))
            except TimeoutError:
                drained = replica.inflight == 0
        self._replicas.pop(replica_id, None)
        return drained

    def discard(self, replica_id: str) -> None:
        """Forget a replica at once (it died: nothing to drain)."""
        replica = self._replicas.pop(replica_id, None)
        if replica is not None:
            replica.draining = True
            self._active = [r for r in self._replicas.values() if not r.draining]

    def set_split(self, split: TrafficSplit | None) -> None:
        """Route by ``split`` from now on (None: every replica is the router's one predictor)."""
        self.split = split

    def _of(self, replica: Replica) -> str:
        return replica.predictor or self.predictor

    def _version(self, predictor: str) -> str:
        return self.versions.get(predictor, self.predictor_version)

    def _pick(self, tried: set[str], predictor: str) -> Replica | None:
        active = [r for r in self._active if r.id not in tried]
        own = [r for r in active if self._of(r) == predictor]
        if not own:
            shadows = set(self.split.shadows) if self.split else set()
            own = [r for r in active if self._of(r) not in shadows]
        if not own:
            return None
        return own[next(self._rr) % len(own)]

    def _predictor_for(self, service: str, puid: str, body: bytes) -> str:
        """The predictor of a request: drawn for a prediction; for feedback, the one that answered its puid."""
        if service == "feedback":
            if not puid:
                try:
                    meta = ((load_json(body) or {}).get("response") or {}).get("meta") or {}
                    puid = str(meta.get("puid") or "") if isinstance(meta, dict) else ""
                except (RequestError, AttributeError):
                    puid = ""
            if puid in self._puids:
                return self._puids[puid]
            return self.split.weights[0][0] if self.split else self.predictor
        return self.split.choose(self._rng) if self.split else self.predictor

    def _remember(self, puid: str, predictor: str) -> None:
        self._puids[puid] = predictor
        self._puids.move_to_end(puid)
        while len(self._puids) > PUID_MEMORY:
            self._puids.popitem(last=False)

    def _mirror(self, path: str, body: bytes, headers: dict[str, str]) -> None:
        """Send a copy to each shadow predictor's next replica, not awaited; dropped beyond ``SHADOW_INFLIGHT``."""
        if self.split is None or self._session is None:
            return
        for shadow in self.split.shadows:
            replicas = [r for r in self._active if self._of(r) == shadow]
            if not replicas:
                continue
            if len(self._shadow_tasks) >= SHADOW_INFLIGHT:
                self.shadow_dropped += 1
                continue
            task = asyncio.get_running_loop().create_task(
                self._shadow_send(replicas[next(self._rr) % len(replicas)], path, body, headers)
            )
            self._shadow_tasks.add(task)
            task.add_done_callback(self._shadow_tasks.discard)

    async def _shadow_send(self, replica: Replica, path: str, body: bytes, headers: dict[str, str]) -> None:
        assert self._session is not None, "router not started"
        replica.inflight += 1
        sent = self.clock.monotonic()
        try:
            async with self._session.post(replica.url + path, data=body, headers=headers) as resp:
                await resp.read()
                replica.served += 1
                self._client_hist.labels(
                    self.deployment,
                    self._of(replica),
                    self._version(self._of(replica)),
                    "predictions",
                    self.model_name,
                    replica.model_image,
                    replica.model_version,
                    "post",
                    str(resp.status),
                ).observe(self.clock.monotonic() - sent)
        except (aiohttp.ClientError, TimeoutError):
            pass  # a shadow's answer, or its failure, is discarded: the caller already has its answer
        finally:
            replica.inflight -= 1
            if replica.inflight == 0 and replica.draining:
                replica.idle.set()

    # -- handlers ------------------------------------------------------------------------------

    def _handler(self, service: str, version: str) -> Any:
        path = f"/api/{version}/{service}"

        async def handle(request: web.Request) -> web.StreamResponse:
            start = self.clock.monotonic()
            code = 500
            predictor = self.predictor
            try:
                try:
                    await self._check_body(request, service)
                except RequestError as err:
                    code = err.status
                    return web.json_response(_error_body(err.status, _REASONS[err.status], str(err)), status=err.status)
                body = await request.read()
                puid = request.headers.get("Seldon-Puid", "")
                predictor = self._predictor_for(service, puid, body)
                if service == "predictions" and not puid:
                    puid = uuid.uuid4().hex
                response, predictor = await self._forward(
                    request,
                    path,
                    _SERVICES[service],
                    retry_on_disconnect=service == "predictions",
                    predictor=predictor,
                    puid=puid,
                )
                code = response.status
                if service == "predictions":
                    self._remember(puid, predictor)
                    response.headers["Seldon-Puid"] = puid
                    self._mirror(
                        path, body, {"Content-Type": request.headers.get("Content-Type", "application/json"), "Seldon-Puid": puid}
                    )
                return response
            finally:
                self._hist.labels(
                    self.deployment,
                    predictor,
                    self._version(predictor),
                    self.model_name,
                    _SERVICES[service],
                    "post",
                    str(code),
                ).observe(self.clock.monotonic() - start)

        return handle

    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """403 for another site's web page and, on loopback, for a foreign ``Host``."""
        why = refusal(request.headers.get("Host"), request.headers.get("Origin"), is_loopback(self.host))
        if why is not None:
            return web.json_response(_error_body(403, _REASONS[403], why), status=403)
        return await handler(request)

    @staticmethod
    async def _check_body(request: web.Request, service: str) -> None:
        """RequestError for a body too large, too deep, with NaN/Infinity, or a non-finite feedback reward."""
        try:
            body = await request.read()  # aiohttp keeps it: _forward reads it again for free
        except web.HTTPRequestEntityTooLarge:
            raise RequestError(f"the body is larger than {MAX_BODY // 1024**2} MiB: send fewer inputs per request", 413) from None
        if request.content_type.startswith("multipart/"):
            return  # files (seldon-core's strData/binData uploads): no JSON to check
        if request.content_type == "application/x-www-form-urlencoded":  # seldon-core reads the form field "json"
            body = parse_qs(body).get(b"json", [b""])[0]
        if service != "feedback":
            check_json(body)
            return
        feedback = load_json(body)
        reward = feedback.get("reward", 0) if isinstance(feedback, dict) else 0
        if isinstance(reward, bool) or not isinstance(reward, int | float) or not abs(reward) <= _FLOAT32_MAX:
            raise RequestError(f"feedback reward {reward!r:.40} is not a finite float32 number: send one, or leave reward out")

    async def _forward(
        self, request: web.Request, path: str, service: str, retry_on_disconnect: bool, predictor: str, puid: str
    ) -> tuple[web.Response, str]:
        """The replica's answer and the predictor that gave it (``predictor`` when none did)."""
        body = await request.read()
        headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
        if puid:
            headers["Seldon-Puid"] = puid
        assert self._session is not None, "router not started"
        tried: set[str] = set()
        last_error = "no replica is ready"
        while True:
            replica = self._pick(tried, predictor)
            if replica is None and not tried and not self._first_ready.is_set() and self.hold_seconds > 0:
                with contextlib.suppress(TimeoutError):  # starting: wait for the first replica rather than fail
                    await asyncio.wait_for(self._first_ready.wait(), timeout=self.hold_seconds)
                replica = self._pick(tried, predictor)
            if replica is None:
                return web.json_response(
                    _error_body(503, "NO_READY_REPLICA", f"deployment {self.deployment!r}: {last_error}"), status=503
                ), predictor
            replica.inflight += 1
            sent = self.clock.monotonic()
            try:
                async with self._session.post(replica.url + path, data=body, headers=headers) as resp:
                    payload = await resp.read()
                    replica.served += 1
                    self._client_hist.labels(
                        self.deployment,
                        self._of(replica),
                        self._version(self._of(replica)),
                        service,
                        self.model_name,
                        replica.model_image,
                        replica.model_version,
                        "post",
                        str(resp.status),
                    ).observe(self.clock.monotonic() - sent)
                    answer = web.Response(body=payload, status=resp.status, content_type=resp.content_type or "application/json")
                    return answer, self._of(replica)
            except aiohttp.ClientConnectorError as err:
                # Never reached the replica (it is stopping or died): safe to send elsewhere.
                last_error = f"replica {replica.id} refused the connection ({err.os_error})"
            except aiohttp.ServerDisconnectedError as err:
                if not retry_on_disconnect:
                    return web.json_response(
                        _error_body(502, "REPLICA_DISCONNECTED", f"replica {replica.id}: {err}"), status=502
                    ), predictor
                last_error = f"replica {replica.id} closed the connection"
            except TimeoutError:
                return web.json_response(
                    _error_body(504, "REPLICA_TIMEOUT", f"replica {replica.id} took longer than {self.request_timeout:.0f}s"),
                    status=504,
                ), predictor
            except aiohttp.ClientError as err:
                return web.json_response(_error_body(502, "REPLICA_ERROR", f"replica {replica.id}: {err}"), status=502), predictor
            finally:
                replica.inflight -= 1
                if replica.inflight == 0 and replica.draining:
                    replica.idle.set()
            tried.add(replica.id)

    async def _ready(self, request: web.Request) -> web.Response:
        n = len(self._active)
        return web.json_response({"ready": n}, status=200 if n else 503)

    async def _live(self, request: web.Request) -> web.Response:
        return web.Response(text="pong")

    async def _metrics(self, request: web.Request) -> web.Response:
        resp = web.Response(body=generate_latest(self.registry))
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return resp
