"""Acting through a failing platform: 409 → re-read and re-apply; outages → failed, retried under cooldown;
the concurrency limit comes from the platform, not memory; one leader acts. Driven step by step with a ManualClock."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from _agent_helpers import steps

from scanflow_argo.agents.leader import FileLeader
from scanflow_argo.agents.runtime import AgentRuntime
from scanflow_argo.agents.sensors import SensorTrack
from scanflow_argo.agents.testing import InMemoryPlatform
from scanflow_argo.clock import ManualClock
from scanflow_argo.settings import Settings
from scanflow_argo.spec.agent import Agent, Plan, PromQuery, Replicas, RollDeployment, SubmitWorkflow, Threshold


@pytest.fixture
def platform() -> InMemoryPlatform:
    p = InMemoryPlatform()
    p.apply_template({"metadata": {"name": "retrain"}})
    p.add_deployment("mnist", replicas=1)
    return p


@pytest.fixture
def quiet(settings: Settings) -> Settings:
    return replace(settings, tracking=replace(settings.tracking, enabled=False))


def make_agent(*actions: object) -> Agent:
    return Agent(
        "faulty",
        sensors=[Replicas("replicas", "mnist", interval=1)],
        rules=[Threshold("replicas", "<", 2, name="too-few")],
        plans=[Plan("too-few", list(actions), on="while")],  # type: ignore[arg-type]
        interval=1,
    )


def results(runtime: AgentRuntime) -> list[str]:
    return [r["status"] for r in runtime.audit.all() if r.get("kind") == "action"]


def test_conflict_rereads_and_reapplies(quiet: Settings, platform: InMemoryPlatform, tmp_path: Path) -> None:
    clock = ManualClock()
    runtime = AgentRuntime(
        make_agent(RollDeployment("mnist", "models:/mnist/2", cooldown=100)), quiet, platform=platform, clock=clock
    )
    platform.fail_next("roll", "conflict")
    steps(runtime, clock, 1)
    assert len(platform.calls("roll")) == 2 and results(runtime) == ["ok"]
    assert platform.get_deployment("mnist").model_uri == "models:/mnist/2"


def test_outage_is_recorded_failed_and_retried_after_cooldown(quiet: Settings, platform: InMemoryPlatform) -> None:
    clock = ManualClock()
    runtime = AgentRuntime(make_agent(SubmitWorkflow("retrain", cooldown=5)), quiet, platform=platform, clock=clock)
    platform.fail_next("submit", "unavailable", count=3)  # all three tries of one attempt
    steps(runtime, clock, 4)
    assert results(runtime) == ["failed"]
    assert "injected fault" in next(r for r in runtime.audit.all() if r.get("kind") == "action")["reason"]
    steps(runtime, clock, 2)  # 6 s after the failure: the cooldown (5 s) is over
    assert results(runtime) == ["failed", "ok"]
    assert len(platform.list_runs()) == 1


def test_concurrency_counted_on_platform_even_with_state_lost(
    quiet: Settings, platform: InMemoryPlatform, tmp_path: Path
) -> None:
    clock = ManualClock()
    agent = make_agent(SubmitWorkflow("retrain", cooldown=0))
    steps(AgentRuntime(agent, quiet, platform=platform, clock=clock, state_dir=tmp_path / "a"), clock, 3)
    assert len(platform.list_runs()) == 1
    fresh = AgentRuntime(agent, quiet, platform=platform, clock=clock, state_dir=tmp_path / "b")  # no memory at all
    steps(fresh, clock, 3)
    assert len(platform.list_runs()) == 1 and results(fresh) == ["skipped"]  # said once, not every evaluation
    platform.finish(platform.list_runs()[0].name)
    steps(fresh, clock, 1)
    assert len(platform.list_runs()) == 2


def test_only_the_leader_acts(quiet: Settings, platform: InMemoryPlatform, tmp_path: Path) -> None:
    lock = tmp_path / "leader.lock"
    first, second = FileLeader(lock), FileLeader(lock)
    assert first.acquire() and not second.acquire()
    clock = ManualClock()
    follower = AgentRuntime(
        make_agent(SubmitWorkflow("retrain", cooldown=0)), quiet, platform=platform, clock=clock, leader=second
    )
    steps(follower, clock, 2)
    assert platform.list_runs() == [] and follower.status()["leader"] is False
    first.release()
    steps(follower, clock, 1)
    assert len(platform.list_runs()) == 1
    second.release()


def test_cron_schedule_and_backoff() -> None:
    t0 = 1_700_000_000.0  # 22:13:20 UTC
    track = SensorTrack(PromQuery("x", "up", interval=1, schedule="*/5 * * * *"), keep=60, now=t0)
    track.record([], t0, False)
    assert track.next_due == 1_700_000_100.0  # the next 5-minute boundary
    plain = SensorTrack(PromQuery("y", "up", interval=1), keep=60, now=t0)
    delays = []
    for _ in range(5):
        plain.fail("unreachable", t0)
        delays.append(plain.next_due - t0)
    assert delays == [1, 2, 4, 4, 4]  # doubling, capped at 4 × interval


def test_second_agent_on_the_same_state_folder_is_refused(quiet: Settings, platform: InMemoryPlatform) -> None:
    from scanflow_argo.errors import AgentError

    agent = make_agent(SubmitWorkflow("retrain"))
    first = AgentRuntime(agent, quiet, platform=platform)
    asyncio.run(first.start(check_online=False))
    with pytest.raises(AgentError, match="already runs with the state folder"):
        asyncio.run(AgentRuntime(agent, quiet, platform=platform).start(check_online=False))
    first.leader.release()
