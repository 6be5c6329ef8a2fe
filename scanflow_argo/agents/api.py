"""The agent's HTTP API (aiohttp) and ``serve()``, which runs an agent with its API until stopped.

Endpoints: ``GET /healthz`` (the loop is alive), ``GET /readyz`` (at least one iteration done),
``GET /metrics`` (Prometheus text) — these three are open; ``GET /status``, ``GET /decisions?page=&size=``,
``POST /pause``, ``POST /resume``, ``POST /trigger/{sensor}``, ``POST /messages`` need
``Authorization: Bearer <token>``, the token being read from the environment variable named by
``settings.agent.token_env`` (a Secret on the cluster).

Without a token the agent refuses to start, unless it listens on a loopback address: that is the
development mode, where the API is open to local processes only and ``/status`` says so.

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
import ipaddress
import json
import logging
import math
import os
import signal
import socket
from pathlib import Path
from typing import Any

from aiohttp import web

from ..errors import AgentError, redact
from .runtime import AgentRuntime, agent_dir
from .state import atomic_write_json

__all__ = ["build_app", "resolve_token", "serve"]

log = logging.getLogger("scanflow_argo.agents")

_OPEN = frozenset({"/healthz", "/readyz", "/metrics"})
FORWARDED = "X-Scanflow-Forwarded"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_token(token_env: str, host: str, environ: dict[str, str] | None = None) -> str | None:
    """The API token, ``None`` for the loopback-only development mode, or AgentError when unsafe."""
    env = os.environ if environ is None else environ
    token = env.get(token_env) or None
    if token is None and not _is_loopback(host):
        raise AgentError(
            f"no API token: set the environment variable {token_env} (from a Secret on the cluster) "
            f"before listening on {host}; without a token the agent only listens on 127.0.0.1 (development mode)"
        )
    return token


def build_app(runtime: AgentRuntime, token: str | None) -> web.Application:
    """The aiohttp application serving ``runtime``."""

    @web.middleware
    async def auth(request: web.Request, handler: Any) -> web.StreamResponse:
        if token is not None and request.path not in _OPEN:
            given = request.headers.get("Authorization", "")
            if not given.startswith("Bearer ") or not hmac.compare_digest(given[7:].encode(), token.encode()):
                return web.json_response(
                    {"error": "unauthorized: send 'Authorization: Bearer <token>' (the value of the agent's token variable)"},
                    status=401,
                )
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception as err:  # an API bug answers 500 with a message, never kills the agent
            log.exception("API error on %s", request.path)
            return web.json_response({"error": redact(f"{type(err).__name__}: {err}")}, status=500)

    app = web.Application(middlewares=[auth], client_max_size=1 << 20)

    def not_leader(holder: str | None, url: str | None, why: str) -> web.Response:
        retry = str(max(1, math.ceil(runtime.agent.interval)))
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
        import httpx

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
        body["auth"] = "bearer" if token is not None else "none (development mode, loopback only)"
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
        if (forwarded := await to_leader(request)) is not None:
            return forwarded
        try:
            body = await request.json()
        except (ValueError, json.JSONDecodeError):
            return web.json_response(
                {"error": 'body must be JSON: {"topic": "...", "payload": {...}, "from": "..."}'}, status=400
            )
        if not isinstance(body, dict) or not isinstance(body.get("topic"), str) or not body["topic"]:
            return web.json_response({"error": "'topic' (a non-empty string) is required"}, status=400)
        payload = body.get("payload") or {}
        if not isinstance(payload, dict):
            return web.json_response({"error": "'payload' must be an object"}, status=400)
        mid = await asyncio.to_thread(runtime.receive, body["topic"], payload, str(body.get("from", "")), body.get("id"))
        return web.json_response({"accepted": mid}, status=202)

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


async def serve(runtime: AgentRuntime, host: str, port: int, token: str | None, ready_file: Path | None = None) -> None:
    """Run the agent loop and its API until SIGTERM/SIGINT; writes ``endpoint.json`` for peers."""
    await runtime.start()
    app = build_app(runtime, token)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as err:
        await runner.cleanup()
        raise AgentError(f"agent {runtime.agent.name!r} cannot listen on {host}:{port} ({err}) — pick another --port") from err
    bound = port
    with contextlib.suppress(Exception):
        bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    runtime.advertise(f"http://{_advertised_host(host, runtime.settings.platform)}:{bound}")
    endpoint = agent_dir(runtime.settings, runtime.agent.name) / "endpoint.json"
    endpoint.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(endpoint, {"url": f"http://{shown}:{bound}", "pid": os.getpid()})
    if ready_file is not None:
        atomic_write_json(ready_file, {"url": f"http://{shown}:{bound}"})
    log.info("agent %s listening on http://%s:%s (dry_run=%s)", runtime.agent.name, host, bound, runtime.dry_run)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, runtime.stop)
    try:
        await runtime.run()
    finally:
        with contextlib.suppress(OSError):
            endpoint.unlink()
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
