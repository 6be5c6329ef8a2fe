"""Hostile inputs to the agent's HTTP API: cross-site and DNS-rebinding requests, malformed and oversized
messages, a flooded inbox — each refused with a one-line error and nothing changed. One agent (``serve()``
in a thread, on 127.0.0.1) serves the whole module."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from _agent_helpers import ServeThread

from scanflow_argo.agents.runtime import AgentRuntime
from scanflow_argo.agents.testing import InMemoryPlatform
from scanflow_argo.settings import Settings
from scanflow_argo.spec.agent import Agent, OnMessage, Plan, SubmitWorkflow

TOKEN = "hostile-test-token-7f3a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeThread]:
    home = tmp_path_factory.mktemp("agent-home")
    settings = Settings.from_env(environ={}).with_home(home)
    settings = replace(settings, tracking=replace(settings.tracking, enabled=False))
    platform = InMemoryPlatform()
    platform.apply_template({"metadata": {"name": "retrain"}})
    definition = Agent(
        "listener",
        rules=[OnMessage("hello", name="on-hello")],
        plans=[Plan("on-hello", [SubmitWorkflow("retrain", {"who": "{message.who}"}, cooldown=0, name="act")])],
        interval=0.2,
    )
    served = ServeThread(AgentRuntime(definition, settings, platform=platform), TOKEN, home)
    try:
        yield served
    finally:
        served.close()


def _inbox(agent: ServeThread) -> list[dict[str, Any]]:
    return list(agent.runtime.state.snapshot().get("inbox") or [])


def _one_line_error(resp: httpx.Response, status: int) -> str:
    assert resp.status_code == status, f"HTTP {resp.status_code}: {resp.text[:300]}"
    error = resp.json()["error"]
    assert isinstance(error, str) and error and "\n" not in error
    return error


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status", "says"),
    [
        # A web page of another site, with or without the token (a page cannot read it, but be sure)
        ("POST", "/pause", {"Origin": "http://evil.example", "Content-Type": "text/plain"}, b"x", 403, "cross-site"),
        ("POST", "/pause", {"Origin": "http://evil.example", **AUTH}, b"", 403, "cross-site"),
        ("POST", "/messages", {"Origin": "null", "Content-Type": "text/plain"}, b'{"topic": "hello"}', 403, "cross-site"),
        # DNS rebinding: a page of evil.example, whose name now resolves to 127.0.0.1
        ("GET", "/status", {"Host": "evil.example:8080", **AUTH}, b"", 403, "Host"),
        ("GET", "/metrics", {"Host": "evil.example"}, b"", 403, "Host"),
        ("POST", "/resume", {"Host": "evil.example", "Origin": "http://evil.example", **AUTH}, b"", 403, "Host"),
        # A local program without the token: no development mode any more
        ("POST", "/pause", {}, b"", 401, "unauthorized"),
        ("GET", "/status", {}, b"", 401, "unauthorized"),
        # With the token, a body must be JSON
        ("POST", "/messages", {"Content-Type": "text/plain", **AUTH}, b'{"topic": "hello"}', 415, "application/json"),
        ("POST", "/pause", {"Content-Type": "application/x-www-form-urlencoded", **AUTH}, b"a=b", 415, "application/json"),
    ],
)
def test_cross_site_rebinding_and_anonymous_calls_change_nothing(
    agent: ServeThread, method: str, path: str, headers: dict[str, str], body: bytes, status: int, says: str
) -> None:
    before = _inbox(agent)
    resp = httpx.request(method, agent.url + path, headers=headers, content=body or None, timeout=5)
    assert says in _one_line_error(resp, status)
    assert agent.runtime.state.snapshot().get("paused") is False
    assert _inbox(agent) == before
    # The same origin (what a browser sends for the API's own page, if it had one) and plain programs pass.
    assert httpx.get(agent.url + "/status", headers={"Origin": agent.url, **AUTH}, timeout=5).status_code == 200


def _post(agent: ServeThread, body: bytes) -> httpx.Response:
    return httpx.post(agent.url + "/messages", content=body, headers={"Content-Type": "application/json", **AUTH}, timeout=5)


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b'{"topic": "hello", "id": 42}', 400, "'id' must be a string"),
        (b'{"topic": "hello", "id": ["a"]}', 400, "'id' must be a string"),
        (b'{"topic": "hello", "id": ""}', 400, "'id' must be a string"),
        (b'{"topic": "hello", "from": 7}', 400, "'from' must be a string"),
        (b'{"payload": {}}', 400, "'topic' must be a string (required"),
        (b'{"topic": "' + b"t" * 201 + b'"}', 400, "'topic' must be a string"),
        (b'{"topic": "hel\\u0000lo"}', 400, "printable"),
        (b'{"topic": "hello", "payload": [1, 2]}', 400, "'payload' must be an object"),
        (b'{"topic": "hello", "payload": {"who": NaN}}', 400, "NaN"),
        (b'{"topic": "hello", "payload": {"who": -Infinity}}', 400, "Infinity"),
        (b'{"topic": "hello", "payload": {"who": 1e400}}', 400, "1e400"),
        (b'{"topic": "hello", "payload": {"who": ' + b"[" * 5000 + b"]" * 5000 + b"}}", 400, "nested more than"),
        (b'{"topic": "hello", "payload": {"who": "' + b"x" * 20_000 + b'"}}', 413, "larger than"),
        (b'{"topic": "hello", "priority": 1}', 400, "unknown message field"),
        (b'["hello"]', 400, "JSON object"),
        (b'{"topic": "hello"', 400, "not JSON"),
    ],
)
def test_malformed_messages_are_refused_and_never_stored(agent: ServeThread, body: bytes, status: int, says: str) -> None:
    before = _inbox(agent)
    assert says in _one_line_error(_post(agent, body), status)
    assert _inbox(agent) == before


def test_a_full_inbox_refuses_new_messages_until_consumed(agent: ServeThread) -> None:
    from scanflow_argo.agents.state import MAX_INBOX_BYTES

    # No rule listens to this topic, so nothing consumes it: the inbox fills up.
    filler = json.dumps({"topic": "nobody-listens", "payload": {"blob": "x" * 12_000}}).encode()
    accepted = 0
    while (resp := _post(agent, filler)).status_code == 202:
        accepted += 1
        assert accepted * 12_000 <= MAX_INBOX_BYTES, "the inbox grew past its bound"
    error = _one_line_error(resp, 429)
    assert "inbox is full" in error and "'nobody-listens'" in error and resp.headers["Retry-After"] == "1"
    assert accepted >= MAX_INBOX_BYTES // 13_000
    assert sum(len(json.dumps(m)) for m in _inbox(agent)) <= MAX_INBOX_BYTES
    assert httpx.get(agent.url + "/status", headers=AUTH, timeout=5).json()["inbox"] == accepted
    with agent.runtime.state.update() as data:  # an operator drains the inbox
        data["inbox"] = []
    assert _post(agent, filler).status_code == 202


def test_without_a_given_token_one_is_generated_private_and_shared_by_the_home(tmp_path: Path) -> None:
    from scanflow_argo.agents.auth import api_token, client_token
    from scanflow_argo.errors import AgentError

    settings = Settings.from_env(environ={}).with_home(tmp_path / "home")
    token, path = api_token(settings, "127.0.0.1", environ={})
    assert path is not None and path.read_text().strip() == token and len(token) >= 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert api_token(settings, "localhost", environ={}) == (token, path), "one token per home, kept across restarts"
    assert client_token(settings, environ={}) == token
    assert api_token(settings, "127.0.0.1", environ={"SCANFLOW_AGENT_TOKEN": "given"}) == ("given", None)
    with pytest.raises(AgentError, match="no API token: set the environment variable SCANFLOW_AGENT_TOKEN"):
        api_token(settings, "0.0.0.0", environ={})
    os.chmod(path, 0o644)
    with pytest.raises(AgentError, match="chmod 600"):
        api_token(settings, "127.0.0.1", environ={})
