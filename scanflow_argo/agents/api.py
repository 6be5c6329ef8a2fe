"""The agent's HTTP API (aiohttp) and ``serve()``, which runs an agent with its API until stopped.

Endpoints: ``GET /healthz`` (the loop is alive), ``GET /readyz`` (at least one iteration done),
``GET /metrics`` (Prometheus text) — these three are open; ``GET /status``, ``GET /decisions?page=&size=``,
``POST /pause``, ``POST /resume``, ``POST /trigger/{sensor}``, ``POST /messages``, and the roll-outs
(``POST /rollouts/{deployment}`` starts one, ``GET`` shows it, ``POST …/promote`` and ``…/abort`` hand it
to a person's decision) need ``Authorization: Bearer <token>``, always (where the token comes from: ``auth.py``).
A paused agent holds its roll-outs' split: its loop moves none, and a start or promote is refused (409) until it
resumes; an abort still goes through (traffic back to stable). ``GET /rollouts/{deployment}`` says ``agent_paused``.

Refused before any handler runs: a request from another site's web page (``Origin``) and, when the
API listens on loopback, one naming another ``Host`` (DNS rebinding) — 403 (``httpguard.refusal``);
a body that is not ``application/json`` — 415. ``POST /messages`` takes ``{"topic", "payload", "from",
"id"}`` and nothing else: ``topic`` a non-empty string, ``payload`` an object, ``from`` and ``id``
strings (an id makes a resend harmless), the whole body at most ``MAX_MESSAGE_BYTES`` (413), JSON
nested at most ``httpguard.MAX_DEPTH`` levels with finite numbers only (400); a full inbox
(``state.MAX_INBOX`` messages or ``state.MAX_INBOX_BYTES``) answers 429 with ``Retry-After``.
Every refusal is one line, ``{"error": "..."}``.

With several replicas on Kubernetes only the Lease holder acts, so a write (``POST /messages``,
``/pause``, ``/resume``, ``/trigger``) reaching a follower is forwarded to the leader's address
recorded in the Lease (one hop, marked ``X-Scanflow-Forwarded``); when no leader is known or it
does not answer, the follower answers 503 with ``Retry-After`` and the leader's identity, and the
sender retries (``SendMessage`` does; messages are de-duplicated by id, so a resend is harmless).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import math
import os
import signal
import socket
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from ..errors import AgentError, NotFoundError, RequestError, ScanflowError, SpecError, redact
from ..httpguard import is_loopback, load_json, refusal
from ..monitoring.prometheus import register_scrape_target
from ..spec.analysis import Metric
from .runtime import AgentRuntime, agent_dir
from .state import atomic_write_json

__all__ = ["MAX_MESSAGE_BYTES", "build_app", "serve"]

log = logging.getLogger("scanflow_argo.agents")

_OPEN = frozenset({"/healthz", "/readyz", "/metrics"})
FORWARDED = "X-Scanflow-Forwarded"
MAX_MESSAGE_BYTES = 16 * 1024
"""Largest ``POST /messages`` body (a message's payload holds template values, not data)."""
_MESSAGE_FIELDS = ("topic", "payload", "from", "id")
_MAX_NAME = 200  # characters of a topic, sender or message id


def _message(raw: bytes) -> tuple[str, dict[str, Any], str, str | None]:
    """(topic, payload, sender, id) of a ``POST /messages`` body; RequestError names what is wrong."""
    body = load_json(raw, what="the message")
    if not isinstance(body, dict):
        raise RequestError('the message must be a JSON object: {"topic": "...", "payload": {...}, "from": "...", "id": "..."}')
    unknown = sorted(set(body) - set(_MESSAGE_FIELDS))
    if unknown:
        raise RequestError(f"unknown message field(s) {unknown}: a message has {', '.join(_MESSAGE_FIELDS)}")
    for name, required in (("topic", True), ("from", False), ("id", False)):
        value = body.get(name)
        if value is None and not required:
            continue
        if not isinstance(value, str) or not 0 < len(value) <= _MAX_NAME or not value.isprintable():
            need = "required: " if required else ""
            raise RequestError(f"'{name}' must be a string ({need}1 to {_MAX_NAME} printable characters), got {value!r:.60}")
    payload = body.get("payload") or {}
    if not isinstance(payload, dict):
        raise RequestError(f"'payload' must be an object, got {type(payload).__name__}")
    return body["topic"], payload, body.get("from") or "", body.get("id")


def build_app(runtime: AgentRuntime, token: str, host: str = "127.0.0.1") -> web.Application:
    """The aiohttp application serving ``runtime``, listening on ``host`` (for the ``Host`` check)."""
    if not token:
        raise AgentError("the agent API needs a token (see scanflow_argo.agents.auth)")
    loopback = is_loopback(host)
    retry_after = str(max(1, math.ceil(float(runtime.agent.interval))))  # an evaluation consumes messages

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        why = refusal(request.headers.get("Host"), request.headers.get("Origin"), loopback)
        if why is not None:
            return web.json_response({"error": why}, status=403)
        if request.path not in _OPEN:
            given = request.headers.get("Authorization", "")
            if not given.startswith("Bearer ") or not hmac.compare_digest(given[7:].encode(), token.encode()):
                return web.json_response(
                    {
                        "error": "unauthorized: send 'Authorization: Bearer <token>' (the agent's token variable, or its token file)"
                    },
                    status=401,
                )
        has_body = request.method == "POST" and (request.can_read_body or request.path == "/messages")
        if has_body and request.content_type != "application/json":
            return web.json_response(
                {"error": f"Content-Type {request.content_type!r} refused: send the body as application/json"}, status=415
            )
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge:
            return web.json_response({"error": f"the body is larger than {MAX_MESSAGE_BYTES} bytes: send less"}, status=413)
        except RequestError as err:
            headers = {"Retry-After": retry_after} if err.status == 429 else None
            return web.json_response({"error": str(err)}, status=err.status, headers=headers)
        except web.HTTPException:
            raise
        except Exception as err:  # an API bug answers 500 with a message, never kills the agent
            log.exception("API error on %s", request.path)
            return web.json_response({"error": redact(f"{type(err).__name__}: {err}")}, status=500)

    app = web.Application(middlewares=[guard], client_max_size=MAX_MESSAGE_BYTES)

    def not_leader(holder: str | None, url: str | None, why: str) -> web.Response:
        retry = retry_after
        return web.json_response(
            {"error": f"this replica is not the leader ({why}); retry in {retry}s", "leader": holder, "leader_url": url},
            status=503,
            headers={"Retry-After": retry},
        )

    async def to_leader(request: web.Request) -> web.StreamResponse | None:
        """``None`` when this process handles the write; else the leader's answer, or 503 + Retry-After."""
        target = runtime.leader_target()
        if target is None:
            return None
        holder, url = target
        if request.headers.get(FORWARDED):
            return not_leader(holder, url, f"forwarded by {request.headers[FORWARDED]}, but leadership moved")
        if not url:
            return not_leader(holder, url, "no leader known yet" if holder is None else f"leader {holder} has no address")

        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}
        headers[FORWARDED] = str(getattr(runtime.leader, "identity", "follower"))
        try:
            async with httpx.AsyncClient(timeout=5) as client:
                resp = await client.post(f"{url}{request.path_qs}", content=await request.read(), headers=headers)
        except httpx.HTTPError as err:
            return not_leader(holder, url, f"leader {holder} at {url} did not answer: {type(err).__name__}")
        out = {"Retry-After": resp.headers["Retry-After"]} if "Retry-After" in resp.headers else {}
        out["X-Scanflow-Leader"] = str(holder)
        return web.Response(
            body=resp.content, status=resp.status_code, headers=out, content_type="application/json", charset="utf-8"
        )

    async def healthz(_: web.Request) -> web.Response:
        now = runtime.clock.now()
        limit = 3 * runtime.agent.interval + 30
        if runtime.last_loop_end is not None and now - runtime.last_loop_end > limit:
            return web.json_response({"ok": False, "reason": f"no iteration for {now - runtime.last_loop_end:.0f}s"}, status=503)
        return web.json_response({"ok": True})

    async def readyz(_: web.Request) -> web.Response:
        if runtime.iterations == 0:
            return web.json_response({"ready": False, "reason": "first iteration not done"}, status=503)
        return web.json_response({"ready": True, "leader": runtime.is_leader})

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=runtime.metrics.render(), content_type="text/plain", charset="utf-8")

    async def status(_: web.Request) -> web.Response:
        body = runtime.status()
        body["auth"] = "bearer"
        return web.json_response(body)

    async def decisions(request: web.Request) -> web.Response:
        try:
            page = int(request.query.get("page", "1"))
            size = int(request.query.get("size", "50"))
        except ValueError:
            return web.json_response({"error": "page and size must be whole numbers, e.g. /decisions?page=2&size=50"}, status=400)
        return web.json_response(await asyncio.to_thread(runtime.audit.page, page, size))

    async def pause(request: web.Request) -> web.StreamResponse:
        if (forwarded := await to_leader(request)) is not None:
            return forwarded
        await asyncio.to_thread(runtime.set_paused, True)
        return web.json_response({"paused": True})

    async def resume(request: web.Request) -> web.StreamResponse:
        if (forwarded := await to_leader(request)) is not None:
            return forwarded
        await asyncio.to_thread(runtime.set_paused, False)
        return web.json_response({"paused": False})

    async def trigger(request: web.Request) -> web.StreamResponse:
        if (forwarded := await to_leader(request)) is not None:
            return forwarded
        name = request.match_info["sensor"]
        try:
            runtime.trigger(name)
        except KeyError:
            known = ", ".join(sorted(runtime.tracks))
            return web.json_response({"error": f"no sensor {name!r} (sensors: {known})"}, status=404)
        return web.json_response({"triggered": name}, status=202)

    async def messages(request: web.Request) -> web.StreamResponse:
        topic, payload, sender, mid = _message(await request.read())
        if (forwarded := await to_leader(request)) is not None:
            return forwarded
        accepted = await asyncio.to_thread(runtime.receive, topic, payload, sender, mid)
        return web.json_response({"accepted": accepted}, status=202)

    async def rollout(request: web.Request) -> web.Response:
        try:
            entry = await asyncio.to_thread(runtime.rollouts.book.get, request.match_info["name"])
        except AgentError as err:
            return web.json_response({"error": str(err)}, status=404)
        return web.json_response({**entry, "agent": runtime.agent.name, "agent_paused": bool(runtime.state.get("paused"))})

    def held(verb: str) -> web.Response | None:
        """A paused agent moves no roll-out: its loop holds the split, and a start or promote waits for resume.
        An abort still goes through: traffic back to stable is always safe, and a person can always take over."""
        if not runtime.state.get("paused"):
            return None
        return web.json_response(
            {
                "error": f"agent {runtime.agent.name!r} is paused: it holds its roll-outs' traffic split and will not "
                f"{verb} one — resume the agent first (POST /resume, or Resume on the UI's Agents page); "
                f"`scanflow-argo rollout abort` still sends all traffic back to stable"
            },
            status=409,
        )

    async def rollout_verb(request: web.Request) -> web.StreamResponse:
        if (forwarded := await to_leader(request)) is not None:
            return forwarded
        name, verb = request.match_info["name"], request.match_info["verb"]
        if verb == "promote" and (refused := held("promote")) is not None:
            return refused
        body = load_json(await request.read() or b"{}")
        reason = str((body or {}).get("reason") or "aborted by a person") if isinstance(body, dict) else "aborted by a person"
        now = runtime.clock.now()
        try:
            if verb == "promote":
                state = await asyncio.to_thread(runtime.rollouts.promote, name, now)
            else:
                state = await asyncio.to_thread(runtime.rollouts.abort, name, reason, now)
        except (AgentError, SpecError) as err:
            return web.json_response({"error": str(err)}, status=409 if isinstance(err, SpecError) else 404)
        runtime.wake()
        return web.json_response({"rollout": name, "step": state.step, "phase": state.phase, "message": state.message})

    async def rollout_start(request: web.Request) -> web.StreamResponse:
        if (forwarded := await to_leader(request)) is not None:
            return forwarded
        if (refused := held("start")) is not None:
            return refused
        body = load_json(await request.read() or b"{}")
        if not isinstance(body, dict) or not isinstance(body.get("model_uri"), str) or not body["model_uri"]:
            return web.json_response({"error": 'give {"model_uri": ..., "steps": [...], "analysis": [...]}'}, status=400)
        analysis = body.get("analysis") or []
        if not isinstance(analysis, list) or not all(isinstance(m, dict) for m in analysis):
            return web.json_response({"error": "analysis must be a list of metrics (objects)"}, status=400)
        spec = {
            "deployment": request.match_info["name"],
            "canary": str(body.get("canary") or "canary"),
            "steps": body.get("steps") or [{"setWeight": 10}, {"setWeight": 50}, {"setWeight": 100}],
            "analysis": analysis,
            "model": str(body.get("model") or ""),
            "alias": str(body.get("alias") or "champion"),
        }
        try:
            for metric in analysis:
                Metric.from_spec(metric)
            entry = await asyncio.to_thread(
                runtime.rollouts.start, spec, body["model_uri"], str(body.get("version") or ""), runtime.clock.now()
            )
        except ScanflowError as err:
            status = 409 if isinstance(err, AgentError) else 404 if isinstance(err, NotFoundError) else 400
            return web.json_response({"error": redact(str(err))}, status=status)
        runtime.wake()
        return web.json_response({"rollout": spec["deployment"], **entry["state"]}, status=201)

    app.router.add_post("/rollouts/{name}", rollout_start)
    app.router.add_get("/rollouts/{name}", rollout)
    app.router.add_post("/rollouts/{name}/{verb:promote|abort}", rollout_verb)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/status", status)
    app.router.add_get("/decisions", decisions)
    app.router.add_post("/pause", pause)
    app.router.add_post("/resume", resume)
    app.router.add_post("/trigger/{sensor}", trigger)
    app.router.add_post("/messages", messages)
    return app


async def serve(
    runtime: AgentRuntime, host: str, port: int, token: str, ready_file: Path | None = None, token_file: Path | None = None
) -> None:
    """Run the agent loop and its API until SIGTERM/SIGINT; writes ``endpoint.json`` for peers.

    ``token_file``: where the token came from when it was not given (``auth.api_token``): said in the
    log, ``endpoint.json`` and ``ready_file``.
    """
    app = build_app(runtime, token, host)
    await runtime.start()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as err:
        await runner.cleanup()
        raise AgentError(f"agent {runtime.agent.name!r} cannot listen on {host}:{port} ({err}) — pick another --port") from err
    addresses = runner.addresses  # (host, port, …) of the listening socket: the port that port 0 picked
    bound = int(addresses[0][1]) if addresses else port
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    runtime.advertise(f"http://{_advertised_host(host, runtime.settings.platform)}:{bound}")
    endpoint = agent_dir(runtime.settings, runtime.agent.name) / "endpoint.json"
    endpoint.parent.mkdir(parents=True, exist_ok=True)
    where = {"token_file": str(token_file)} if token_file is not None else {}
    atomic_write_json(endpoint, {"url": f"http://{shown}:{bound}", "pid": os.getpid(), **where})
    scrape = None
    if runtime.settings.platform == "local":  # on Kubernetes its PodMonitor does this
        scrape = register_scrape_target(runtime.settings, runtime.agent.name, f"{shown}:{bound}")
    log.info("agent %s listening on http://%s:%s (dry_run=%s)", runtime.agent.name, host, bound, runtime.dry_run)
    if token_file is not None:
        log.info(
            "API token: in %s (no %s given): send Authorization: Bearer <its content>",
            token_file,
            runtime.settings.agent.token_env,
        )
    if ready_file is not None:  # last: whoever waits on it finds the log lines above already written
        atomic_write_json(ready_file, {"url": f"http://{shown}:{bound}", **where})
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, runtime.stop)
    try:
        await runtime.run()
    finally:
        with contextlib.suppress(OSError):
            endpoint.unlink()
        if scrape is not None:
            with contextlib.suppress(OSError):
                scrape.unlink()
        await runner.cleanup()
        await runtime.close()


def _advertised_host(host: str, platform: str) -> str:
    """The address other replicas reach this one on: ``$POD_IP`` in a pod, else the bound host."""
    if os.environ.get("POD_IP"):
        return os.environ["POD_IP"]
    if host in ("0.0.0.0", "::"):
        if platform == "kubernetes":
            with contextlib.suppress(OSError):
                return socket.gethostbyname(socket.gethostname())  # a pod's hostname resolves to its IP
        return "127.0.0.1"
    return host
