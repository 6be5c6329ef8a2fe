"""Agent state on Kubernetes lives in the ``<agent>-state`` ConfigMap (the pod's folder is an emptyDir):
a restarted pod neither repeats nor forgets an action; concurrent writers are merged on 409.

Against the fake API server (``_kube.FakeCluster``) with the real ``kubernetes`` client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from _kube import NAMESPACE, FakeCluster

from scanflow_argo.agents.runtime import AgentRuntime
from scanflow_argo.agents.state import ConfigMapState, merge3
from scanflow_argo.agents.testing import InMemoryPlatform
from scanflow_argo.clock import ManualClock
from scanflow_argo.errors import AgentError, UnavailableError
from scanflow_argo.settings import Settings
from scanflow_argo.spec.agent import Agent, ArgoRuns, Plan, SubmitWorkflow, Threshold


@pytest.fixture
def cluster() -> Iterator[FakeCluster]:
    fake = FakeCluster().start()
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


def stored(cluster: FakeCluster, name: str) -> dict:
    return json.loads(cluster.get("configmaps", NAMESPACE, name)["data"]["state.json"])


def keeper() -> Agent:
    return Agent(
        "keeper",
        sensors=[ArgoRuns("runs", {"app": "mnist"}, interval=1)],
        rules=[Threshold("runs", ">=", 0, name="always")],
        plans=[Plan("always", [SubmitWorkflow("retrain", labels={"app": "mnist"}, cooldown=3600, name="retrain")], on="while")],
        interval=1,
    )


def test_state_survives_a_pod_restart(kube_settings: Settings, cluster: FakeCluster, tmp_path: Path) -> None:
    cluster.config_map("keeper-state")  # emitted by the compiler, empty
    platform, clock = InMemoryPlatform(), ManualClock()
    platform.apply_template({"metadata": {"name": "retrain"}})

    async def pod(folder: str) -> AgentRuntime:
        # A new runtime in a new, empty folder: what a restarted pod with an emptyDir has.
        pod_settings = replace(kube_settings, home=tmp_path / folder)
        runtime = AgentRuntime(keeper(), pod_settings, platform=platform, clock=clock)
        assert isinstance(runtime.state, ConfigMapState)
        await runtime.start(check_online=False)
        await runtime.step()
        await runtime.close()
        return runtime

    asyncio.run(pod("pod-1"))
    submits = platform.calls("submit")
    assert len(submits) == 1
    state = stored(cluster, "keeper-state")
    assert "retrain" in state["last_attempt"] and [k for k, v in state["keys"].items() if v["result"] == "ok"]
    run = state["inflight"]["retrain"][0]["run"]
    platform.finish(run)  # the run ended: only the cooldown can stop a second one now

    clock.advance(60)
    second = asyncio.run(pod("pod-2"))
    assert len(platform.calls("submit")) == 1, "the restarted pod remembered the cooldown"
    assert second.status()["cooldowns"]["retrain"] > 3000
    assert [r["run"] for r in second.audit.all() if r["kind"] == "run-finished"] == [run], "and the in-flight run"


def test_concurrent_writers_are_merged_on_conflict(kube_settings: Settings, cluster: FakeCluster, tmp_path: Path) -> None:
    cluster.config_map("a-state")
    one = ConfigMapState.from_settings(tmp_path / "1", "a-state", kube_settings)
    two = ConfigMapState.from_settings(tmp_path / "2", "a-state", kube_settings)  # read before one writes
    with one.update() as data:
        data["paused"] = True
        data["inbox"].append({"id": "m1", "topic": "t"})
    with two.update() as data:  # stale resourceVersion → 409 → re-read, merge, retry
        data["last_attempt"]["scale"] = 5.0
        data["inbox"].append({"id": "m2", "topic": "t"})
    assert two.conflicts == 1
    state = stored(cluster, "a-state")
    assert state["paused"] is True and state["last_attempt"] == {"scale": 5.0}
    assert [m["id"] for m in state["inbox"]] == ["m1", "m2"]
    assert two.get("paused") is True  # the merged state is what it now works with
    puts = cluster.calls("PUT", "/configmaps/a-state")
    assert all(p.body["metadata"]["resourceVersion"] for p in puts)
    assert [p.status for p in puts] == [200, 409, 200]

    cluster.fail_next(2, 409, "PUT", "/configmaps/a-state")  # conflicts injected by the server
    with one.update() as data:
        data["inbox"] = [m for m in data["inbox"] if m["id"] != "m1"]  # consumed
    assert [m["id"] for m in stored(cluster, "a-state")["inbox"]] == ["m2"]


def test_a_failed_write_is_rolled_back(kube_settings: Settings, cluster: FakeCluster, tmp_path: Path) -> None:
    """Nothing is acted on that was not persisted: the in-memory state stays as it was."""
    cluster.config_map("a-state")
    state = ConfigMapState.from_settings(tmp_path, "a-state", kube_settings)
    cluster.fail_next(5, 503, "PUT", "/configmaps/a-state")
    with pytest.raises(UnavailableError), state.update() as data:
        data["keys"]["k"] = {"result": "pending"}
    assert state.get("keys") == {}
    with state.update() as data:  # the API is back
        data["keys"]["k"] = {"result": "pending"}
    assert stored(cluster, "a-state")["keys"] == {"k": {"result": "pending"}}


def test_missing_config_map_is_a_clear_error(kube_settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(AgentError, match=r"ConfigMap scanflow/nope-state .* does not exist — apply the compiled manifests"):
        ConfigMapState.from_settings(tmp_path, "nope-state", kube_settings)


def test_rbac_names_only_its_own_config_map() -> None:
    rules = [r for r in keeper().rbac_rules() if r["resources"] == ["configmaps"]]
    assert rules == [
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["keeper-state"], "verbs": ["get", "update"]}
    ]


def test_merge3_keeps_their_changes_and_ours() -> None:
    base = {"a": 1, "keys": {"x": 1}, "inbox": [{"id": "1"}]}
    ours = {"a": 2, "keys": {"x": 1, "y": 2}, "inbox": []}
    theirs = {"a": 1, "keys": {"x": 1, "z": 3}, "inbox": [{"id": "1"}, {"id": "2"}], "b": 9}
    assert merge3(base, ours, theirs) == {"a": 2, "keys": {"x": 1, "y": 2, "z": 3}, "inbox": [{"id": "2"}], "b": 9}
