"""The platform admin's audit trail across teams on a cluster: each team's agents append their decisions to
the team's ``scanflow-audit`` ConfigMap (``agents.state.ConfigMapAudit``), and the admin reads every team's
with one ``get`` by name per namespace (``platform.teams.read_audit``) — what the read-only Role rendered by
``compile.teams`` allows (checked in ``tests/compile/test_teams.py``).

Against the fake Kubernetes API (``fakeapi.FakeCluster``) with the real ``kubernetes`` client: a 409 from
a concurrent writer is re-read and appended again, as the API server's optimistic concurrency asks."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
from fakeapi import FakeCluster

from scanflow_argo.agents.runtime import AgentRuntime
from scanflow_argo.agents.state import ConfigMapAudit
from scanflow_argo.agents.testing import InMemoryPlatform
from scanflow_argo.clock import ManualClock
from scanflow_argo.compile.teams import AUDIT_CONFIG_MAP, team_namespace
from scanflow_argo.errors import NotFoundError
from scanflow_argo.platform._k8s.api import load_api_client
from scanflow_argo.platform.teams import cluster_audit, create_team, read_audit, read_team_objects
from scanflow_argo.settings import Settings
from scanflow_argo.spec.agent import Agent, ArgoRuns, Plan, SubmitWorkflow, Threshold

TEAMS = ("engineering", "science")


def _agent() -> Agent:
    return Agent(
        "keeper",
        sensors=[ArgoRuns("runs", {"app": "mnist"}, interval=1)],
        rules=[Threshold("runs", ">=", 0, name="always")],
        plans=[Plan("always", [SubmitWorkflow("retrain", labels={"app": "mnist"}, cooldown=3600, name="retrain")], on="while")],
        interval=1,
    )


def _team_settings(settings: Settings, fake: FakeCluster, tmp_path: Path, team: str) -> Settings:
    ns = team_namespace("mnist", team)
    kube = dataclasses.replace(
        settings.kubernetes, kubeconfig=fake.kubeconfig(tmp_path / f"kubeconfig-{team}", ns), namespace=ns, request_timeout=5.0
    )
    return dataclasses.replace(
        settings, platform="kubernetes", kubernetes=kube, tracking=dataclasses.replace(settings.tracking, enabled=False)
    )


@pytest.fixture
def teams(settings: Settings, fake: FakeCluster) -> Settings:
    """Two teams of ``mnist`` created, and their objects an agent needs applied (as ``kubectl apply -k``)."""
    for team in TEAMS:
        created = create_team(settings, "mnist", team, schema_check=False)
        audit = next(
            o for o in read_team_objects(created) if o["kind"] == "ConfigMap" and o["metadata"]["name"] == AUDIT_CONFIG_MAP
        )
        fake.put(audit)
        fake.config_map("keeper-state", namespace=created.namespace)
    return settings


def _step(rt: AgentRuntime) -> None:
    async def go() -> None:
        await rt.start(check_online=False)
        await rt.step()
        await rt.close()

    asyncio.run(go())


def test_each_teams_agents_write_its_trail_and_the_admin_reads_every_team(
    teams: Settings, fake: FakeCluster, tmp_path: Path
) -> None:
    for team in TEAMS:
        s = _team_settings(teams, fake, tmp_path, team)
        platform = InMemoryPlatform(tmp_path / f"platform-{team}", namespace=s.kubernetes.namespace)
        platform.apply_template({"metadata": {"name": "retrain"}})
        rt = AgentRuntime(_agent(), s, platform=platform, clock=ManualClock(), team=team)
        assert isinstance(rt.audit, ConfigMapAudit)
        _step(rt)
        assert rt.audit.last_error is None
    for team in TEAMS:  # each team's trail holds its own agents' records only
        ns = team_namespace("mnist", team)
        text = fake.get("configmaps", ns, AUDIT_CONFIG_MAP)["data"]["keeper.jsonl"]
        assert f'"team": "{team}"' in text and f'"namespace": "{ns}"' in text
        assert all(f'"team": "{other}"' not in text for other in TEAMS if other != team)
    # the admin: one get by name per team namespace, nothing listed
    before = len(fake.calls())
    admin = dataclasses.replace(teams, kubernetes=_team_settings(teams, fake, tmp_path, "engineering").kubernetes)
    records = cluster_audit(admin, "mnist")
    reads = fake.calls()[before:]
    assert [(r.method, r.path) for r in reads] == [
        ("GET", f"/api/v1/namespaces/{team_namespace('mnist', t)}/configmaps/{AUDIT_CONFIG_MAP}") for t in TEAMS
    ]
    actions = [(r["team"], r["namespace"], r["agent"], r["status"]) for r in records if r.get("kind") == "action"]
    assert sorted(actions) == [(t, team_namespace("mnist", t), "keeper", "ok") for t in TEAMS]


def test_a_concurrent_append_is_merged_and_an_outage_waits_for_the_next(
    teams: Settings, fake: FakeCluster, tmp_path: Path
) -> None:
    from kubernetes import client  # the real client, as the agent's pod uses it

    s = _team_settings(teams, fake, tmp_path, "science")
    ns = s.kubernetes.namespace
    api = client.CoreV1Api(load_api_client(s.kubernetes))
    one, two = (ConfigMapAudit(tmp_path / name, name, ns, api, timeout=5.0) for name in ("a", "b"))
    one.append({"seq": 1, "time": "2026-12-05T10:00:00Z"})
    fake.fail_next(1, 409, method="PUT", path_contains=AUDIT_CONFIG_MAP)  # another agent wrote in between
    two.append({"seq": 1, "time": "2026-12-05T10:00:01Z"})
    fake.fail_next(5, 503, method="GET", path_contains=AUDIT_CONFIG_MAP)  # the API server is away
    one.append({"seq": 2, "time": "2026-12-05T10:00:02Z"})
    assert one.last_error is not None and [r["seq"] for r in one.all()] == [1, 2]  # kept in the pod's log
    one.append({"seq": 3, "time": "2026-12-05T10:00:03Z"})  # back: the waiting record goes first
    assert one.last_error is None
    got = [(r["agent"], r["seq"]) for r in read_audit(api, [ns])]
    assert got == [("a", 1), ("b", 1), ("a", 2), ("a", 3)]


def test_a_team_without_its_trail_is_named(teams: Settings, fake: FakeCluster, tmp_path: Path) -> None:
    from kubernetes import client  # the real client

    s = _team_settings(teams, fake, tmp_path, "science")
    api = client.CoreV1Api(load_api_client(s.kubernetes))
    with pytest.raises(NotFoundError, match=r"ConfigMap scanflow-mnist-data/scanflow-audit.*kubectl apply -k"):
        read_audit(api, [team_namespace("mnist", "data")])
