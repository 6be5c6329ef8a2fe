"""The UI's Agents view: each agent's rules, decisions and audit log, and pause / resume / trigger.

Agents of this home are the folders ``<home>/agents/<name>/``; a running agent advertises its API in
``endpoint.json`` (``agents/api.py``). Everything goes through the agent's own HTTP API, server-side:
``GET /status`` (rules with ``firing``/``since``, sensors, pause state), ``GET /decisions``, ``POST
/pause``, ``/resume``, ``/trigger/{sensor}``, with ``Authorization: Bearer`` and the agents' token as
their callers find it (``agents.auth.client_token``: the variable ``settings.agent.token_env`` names, else
the home's token file) — read by this process, never put in a response, so it never reaches the browser. An agent that is not running still shows its audit log, read
from its folder. Each rule's state is summarised as Scanflow's: ``firing``, ``pending`` (its condition
holds, its ``for`` window has not passed) or ``ok``.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from aiohttp import web

from .._proc import cmdline_of
from ..agents.auth import client_token
from ..agents.runtime import agent_dir
from ..agents.state import AuditLog
from ..errors import redact
from ..httpguard import is_loopback
from ..settings import Settings
from .http import ApiError, Codes, json_response, name_param, query_int, valid_name

__all__ = ["AgentsApi", "rule_state"]

_TIMEOUT = 5.0


def rule_state(rule: Mapping[str, Any]) -> str:
    """``firing``, ``pending`` or ``ok`` from a rule of an agent's ``/status``."""
    if rule.get("firing"):
        return "firing"
    if rule.get("since") is not None:
        return "pending"
    return "ok"


class AgentsApi:
    """The handlers of ``/scanflow/api/agents``."""

    def __init__(self, settings: Settings, environ: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self._environ = os.environ if environ is None else environ

    def routes(self) -> list[web.RouteDef]:
        base = "/scanflow/api/agents"
        return [
            web.get(base, self.index),
            web.get(f"{base}/{{name}}/decisions", self.decisions),
            web.post(f"{base}/{{name}}/pause", self.pause),
            web.post(f"{base}/{{name}}/resume", self.resume),
            web.post(f"{base}/{{name}}/trigger/{{sensor}}", self.trigger),
        ]

    # -- finding agents ------------------------------------------------------------------------------
    def _names(self) -> list[str]:
        root = self.settings.home / "agents"
        return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []

    def _endpoint(self, name: str) -> str | None:
        """The URL of the agent's API while its process runs (its ``endpoint.json`` names a live pid)."""
        try:
            doc = json.loads((agent_dir(self.settings, name) / "endpoint.json").read_text())
            url, pid = str(doc["url"]), int(doc["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if cmdline_of(pid) is None or not url.startswith("http://") or not is_loopback(urlsplit(url).hostname or ""):
            return None  # only a live agent of this machine ever gets the token
        return url.rstrip("/")

    def _headers(self) -> dict[str, str]:
        token = client_token(self.settings, self._environ)
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def _call(self, method: str, url: str, what: str, params: Mapping[str, Any] | None = None) -> Any:
        try:
            async with httpx.AsyncClient(timeout=_TIMEOUT) as client:
                resp = await client.request(method, url, headers=self._headers(), params=params)
        except httpx.HTTPError as err:
            raise ApiError(Codes.UNAVAILABLE, f"{what}: the agent at {url} did not answer ({type(err).__name__})") from err
        try:
            body = resp.json()
        except ValueError:
            body = {"error": resp.text[:300]}
        if resp.status_code >= 400:
            message = body.get("error") if isinstance(body, dict) else None
            code = {401: Codes.PERMISSION_DENIED, 404: Codes.NOT_FOUND, 503: Codes.UNAVAILABLE}.get(
                resp.status_code, Codes.INTERNAL
            )
            hint = f" (give the server the agent's token: {self.settings.agent.token_env})" if resp.status_code == 401 else ""
            raise ApiError(code, redact(f"{what}: the agent answered HTTP {resp.status_code}: {message or ''}{hint}"))
        return body

    def _known(self, name: str) -> str:
        valid_name(name, "agent")
        if not (agent_dir(self.settings, name)).is_dir():
            raise ApiError(Codes.NOT_FOUND, f"no agent {name!r} in {self.settings.home / 'agents'}")
        return name

    # -- handlers ------------------------------------------------------------------------------------
    async def index(self, request: web.Request) -> web.Response:
        names = await asyncio.to_thread(self._names)
        items = await asyncio.gather(*(self._describe(n) for n in names))
        return json_response({"items": list(items)})

    async def _describe(self, name: str) -> dict[str, Any]:
        url = await asyncio.to_thread(self._endpoint, name)
        item: dict[str, Any] = {"name": name, "running": url is not None}
        if url is None:
            return item
        try:
            status = await self._call("GET", f"{url}/status", f"status of agent {name}")
        except ApiError as err:
            item["error"] = err.message
            return item
        for rule in (status.get("rules") or {}).values():
            rule["state"] = rule_state(rule)
        item["status"] = status
        return item

    async def decisions(self, request: web.Request) -> web.Response:
        name = self._known(name_param(request))
        page = query_int(request, "page") or 1
        size = query_int(request, "size") or 20
        url = await asyncio.to_thread(self._endpoint, name)
        if url is not None:
            return json_response(
                await self._call("GET", f"{url}/decisions", f"decisions of agent {name}", {"page": page, "size": size})
            )
        folder: Path = agent_dir(self.settings, name)
        return json_response(await asyncio.to_thread(AuditLog(folder).page, page, size))

    async def _write(self, request: web.Request, path: str) -> web.Response:
        name = self._known(name_param(request))
        url = await asyncio.to_thread(self._endpoint, name)
        if url is None:
            raise ApiError(Codes.UNAVAILABLE, f"agent {name!r} is not running: start it with `scanflow-argo agent run`")
        return json_response(await self._call("POST", f"{url}{path}", f"{path.strip('/')} agent {name}"))

    async def pause(self, request: web.Request) -> web.Response:
        return await self._write(request, "/pause")

    async def resume(self, request: web.Request) -> web.Response:
        return await self._write(request, "/resume")

    async def trigger(self, request: web.Request) -> web.Response:
        sensor = request.match_info.get("sensor", "")
        if not sensor or len(sensor) > 63 or not sensor.replace("-", "").replace("_", "").isalnum():
            raise ApiError(Codes.INVALID_ARGUMENT, f"sensor {sensor[:80]!r} is not a sensor name")
        return await self._write(request, f"/trigger/{sensor}")
