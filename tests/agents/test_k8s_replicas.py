"""Two replicas of one agent share a Lease on the (fake) Kubernetes API: only the leader acts, and a
write reaching the follower (``POST /messages``, ``/pause``, ``/resume``, ``/trigger``) is forwarded
to the leader — or answered 503 + ``Retry-After`` when the leader is gone, which ``SendMessage``
retries until a new leader takes the message."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from _agent_helpers import ServeThread, wait_for
from _kube import NAMESPACE, FakeCluster

from scanflow_argo.agents.leader import LEADER_URL_ANNOTATION, LeaseLeader
from scanflow_argo.agents.runtime import AgentRuntime
from scanflow_argo.agents.testing import InMemoryPlatform
from scanflow_argo.settings import Settings
from scanflow_argo.spec.agent import Agent, ArgoRuns, OnMessage, Plan, SubmitWorkflow

TOKEN = "replica-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def cluster() -> Iterator[FakeCluster]:
    fake = FakeCluster().start()
    fake.config_map("tester-state")
    try:
        yield fake
    finally:
        fake.drop()


@pytest.fixture
def kube_settings(settings: Settings, cluster: FakeCluster, tmp_path: Path) -> Settings:
    kube = replace(
        settings.kubernetes,
        kubeconfig=cluster.kubeconfig(tmp_path / "kubeconfig", NAMESPACE),
        namespace=NAMESPACE,
        request_timeout=5.0,
    )
    return replace(settings, platform="kubernetes", kubernetes=kube, tracking=replace(settings.tracking, enabled=False))


def make_tester() -> Agent:
    return Agent(
        "tester",
        replicas=2,
        sensors=[ArgoRuns("runs", {"app": "x"}, interval=0.3)],
        rules=[OnMessage("hello", name="on-hello")],
        plans=[Plan("on-hello", [SubmitWorkflow("retrain", {"who": "{message.who}"}, cooldown=0, max_concurrent=5, name="act")])],
        interval=0.3,
    )


@pytest.fixture
def replicas(kube_settings: Settings, tmp_path: Path) -> Iterator[Any]:
    from kubernetes import client

    from scanflow_argo.platform._k8s.api import load_api_client

    platform = InMemoryPlatform()
    platform.apply_template({"metadata": {"name": "retrain"}})
    started: list[ServeThread] = []

    def start(identity: str) -> ServeThread:
        api = client.CustomObjectsApi(load_api_client(kube_settings.kubernetes))
        leader = LeaseLeader("scanflow-agent-tester", NAMESPACE, identity, lease_seconds=2, api=api)
        s = replace(kube_settings, home=tmp_path / identity)
        runtime = AgentRuntime(make_tester(), s, platform=platform, leader=leader)  # state: the shared ConfigMap
        started.append(ServeThread(runtime, TOKEN, tmp_path))
        return started[-1]

    start.platform = platform  # type: ignore[attr-defined]
    yield start
    for t in started:
        t.close()


def whos(platform: InMemoryPlatform) -> list[str]:
    return [c[2]["who"] for c in platform.calls("submit")]


def test_follower_forwards_writes_to_the_leader(replicas: Any, cluster: FakeCluster) -> None:
    platform = replicas.platform
    a = replicas("pod-a")
    wait_for(lambda: a.runtime.is_leader, what="pod-a to lead")
    b = replicas("pod-b")
    wait_for(lambda: b.runtime.iterations > 1, what="pod-b to run")
    assert not b.runtime.is_leader
    assert (b.runtime.leader.holder, b.runtime.leader.holder_url) == ("pod-a", a.url)
    lease = cluster.get("leases", NAMESPACE, "scanflow-agent-tester")
    assert lease["metadata"]["annotations"][LEADER_URL_ANNOTATION] == a.url

    assert httpx.post(f"{b.url}/messages", json={"topic": "hello"}, timeout=5).status_code == 401  # auth first
    resp = httpx.post(
        f"{b.url}/messages", json={"topic": "hello", "payload": {"who": "one"}, "id": "m1"}, headers=AUTH, timeout=5
    )
    assert resp.status_code == 202 and resp.headers["X-Scanflow-Leader"] == "pod-a"
    wait_for(lambda: whos(platform) == ["one"], what="the leader to act on the forwarded message")

    assert httpx.post(f"{b.url}/pause", headers=AUTH, timeout=5).json() == {"paused": True}
    assert a.runtime.state.get("paused") is True
    assert json.loads(cluster.get("configmaps", NAMESPACE, "tester-state")["data"]["state.json"])["paused"] is True
    assert httpx.post(f"{b.url}/resume", headers=AUTH, timeout=5).json() == {"paused": False}
    assert a.runtime.state.get("paused") is False
    assert httpx.post(f"{b.url}/trigger/runs", headers=AUTH, timeout=5).status_code == 202
    missing = httpx.post(f"{b.url}/trigger/nope", headers=AUTH, timeout=5)
    assert missing.status_code == 404 and "runs" in missing.json()["error"]  # the leader's answer
    assert [r for r in b.runtime.audit.all() if r["kind"] in ("message", "pause")] == []  # the follower did nothing itself


def test_leader_gone_503_then_send_message_retries_until_a_new_leader(
    replicas: Any, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = replicas.platform
    a = replicas("pod-a")
    wait_for(lambda: a.runtime.is_leader, what="pod-a to lead")
    b = replicas("pod-b")
    wait_for(lambda: b.runtime.leader.holder == "pod-a", what="pod-b to see the leader")
    one = {"topic": "hello", "payload": {"who": "one"}, "id": "m1"}
    assert httpx.post(f"{b.url}/messages", json=one, headers=AUTH, timeout=5).status_code == 202
    wait_for(lambda: whos(platform) == ["one"], what="pod-a to act")
    a.runtime.leader.release = lambda: None  # type: ignore[method-assign]  # a crash: nothing hands the Lease over
    a.close()  # the leader's pod dies; its Lease runs out 2 s after b last saw it change

    resp = httpx.post(f"{b.url}/messages", json={"topic": "hello", "payload": {"who": "lost?"}}, headers=AUTH, timeout=5)
    assert resp.status_code == 503 and int(resp.headers["Retry-After"]) >= 1
    assert resp.json()["leader"] == "pod-a" and "did not answer" in resp.json()["error"]

    # Another agent sends through the follower (its Service address): it retries on 503.
    monkeypatch.setenv("SCANFLOW_AGENT_TOKEN", TOKEN)
    local = replace(settings, home=tmp_path / "sender-home")
    endpoint = local.home / "agents" / "tester" / "endpoint.json"
    endpoint.parent.mkdir(parents=True)
    endpoint.write_text(json.dumps({"url": b.url}))
    sender = AgentRuntime(Agent("sender"), local, state_dir=tmp_path / "sender")
    t0 = time.monotonic()
    asyncio.run(sender._send_message("tester", "hello", {"who": "two"}, "sender/k2"))
    assert time.monotonic() - t0 > 0.5, "it had to wait for the new leader"
    assert b.runtime.is_leader
    wait_for(lambda: whos(platform) == ["one", "two"], what="the new leader to act on the retried message")
    # The new leader took over the persisted state: a resent old message is recognised, not acted on again.
    assert httpx.post(f"{b.url}/messages", json=one, headers=AUTH, timeout=5).status_code == 202
    three = {"topic": "hello", "payload": {"who": "three"}, "id": "m3"}
    assert httpx.post(f"{b.url}/messages", json=three, headers=AUTH, timeout=5).status_code == 202
    wait_for(lambda: "three" in whos(platform), what="the new leader to act")
    assert whos(platform) == ["one", "two", "three"]


def test_default_lease_is_built_from_settings(
    kube_settings: Settings, cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("POD_NAME", "tester-7d9f-abcde")
    runtime = AgentRuntime(make_tester(), kube_settings, platform=InMemoryPlatform(), state_dir=tmp_path)
    assert isinstance(runtime.leader, LeaseLeader)
    runtime.advertise("http://10.1.2.3:8080")
    try:
        assert runtime.leader.acquire()
        lease = cluster.get("leases", NAMESPACE, "scanflow-agent-tester")
        assert lease["spec"]["holderIdentity"] == "tester-7d9f-abcde"
        assert lease["metadata"]["annotations"][LEADER_URL_ANNOTATION] == "http://10.1.2.3:8080"
        # the default Lease renews itself on client-go's cadence: 15 s lease, 10 s renew deadline, 2 s retries
        leader = runtime.leader
        assert (leader.lease_seconds, leader.renew_deadline, leader.retry_period) == (15, 10, 2)
        assert leader._thread is not None and leader._thread.is_alive()
    finally:
        runtime.leader.release()


def test_a_new_leader_takes_over_the_persisted_state(kube_settings: Settings, tmp_path: Path) -> None:
    """The follower's memory is from its start; on taking the Lease it re-reads the ConfigMap before deciding."""
    from kubernetes import client

    from scanflow_argo.clock import ManualClock
    from scanflow_argo.platform._k8s.api import load_api_client

    clock, platform = ManualClock(), InMemoryPlatform()

    def replica(identity: str) -> AgentRuntime:
        api = client.CustomObjectsApi(load_api_client(kube_settings.kubernetes))
        leader = LeaseLeader("scanflow-agent-tester", NAMESPACE, identity, lease_seconds=2, api=api, clock=clock)
        s = replace(kube_settings, home=tmp_path / identity)
        return AgentRuntime(make_tester(), s, platform=platform, leader=leader, clock=clock)

    async def scenario() -> tuple[AgentRuntime, AgentRuntime]:
        a, b = replica("pod-a"), replica("pod-b")
        await a.start(check_online=False)
        await b.start(check_online=False)
        await a.step()
        await b.step()
        assert a.is_leader and not b.is_leader
        a.receive("hello", {"who": "x"}, mid="m9")  # the leader persists a message
        assert "msg:m9" not in (b.state.get("keys") or {})
        clock.advance(5)  # pod-a is gone: its Lease expires
        await b.step()
        return a, b

    _, b = asyncio.run(scenario())
    assert b.is_leader
    assert "msg:m9" in (b.state.get("keys") or {}), "the new leader re-read the state when it took over"


def test_the_lease_is_renewed_on_client_gos_cadence_whatever_the_agent_interval(
    cluster: FakeCluster, kube_settings: Settings
) -> None:
    """The renewing thread keeps the Lease (every retry period) though nothing calls acquire() for longer than the
    lease lasts — an agent whose interval is 30 s would otherwise lose a 15 s lease between iterations — and every
    time it writes is a MicroTime the API server accepts (the fake refuses fewer than six fraction digits)."""
    from kubernetes import client

    from scanflow_argo.platform._k8s.api import load_api_client

    def replica(identity: str, background: bool) -> LeaseLeader:
        api = client.CustomObjectsApi(load_api_client(kube_settings.kubernetes))
        return LeaseLeader("scanflow-agent-cadence", NAMESPACE, identity, lease_seconds=1, api=api, background=background)

    a, b = replica("pod-a", True), replica("pod-b", False)
    try:
        assert a.acquire()
        time.sleep(2.5)  # 2.5 leases without a call from the agent loop
        assert not b.acquire() and b.holder == "pod-a"
        renewals = [r for r in cluster.calls("PUT", "/leases/scanflow-agent-cadence") if r.status == 200]
        assert len(renewals) >= 5  # about every 2/15 of the lease
        assert all(r.body["spec"]["renewTime"].endswith("Z") and len(r.body["spec"]["renewTime"]) == 27 for r in renewals)
        a.release()  # graceful: handed over at once
        assert b.acquire()
    finally:
        a.release()
