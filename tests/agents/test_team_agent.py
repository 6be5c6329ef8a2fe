"""An agent that works for a team acts only in the team's namespace and its audit names the team
(``AgentRuntime(team=...)`` over ``platform.teams.NamespaceBound``)."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
from _agent_helpers import steps

from scanflow_argo.agents.runtime import AgentRuntime
from scanflow_argo.agents.testing import InMemoryPlatform
from scanflow_argo.cli import build_parser, settings_from_args
from scanflow_argo.clock import ManualClock
from scanflow_argo.compile.teams import team_namespace
from scanflow_argo.errors import PlatformError, SetupError
from scanflow_argo.settings import Settings
from scanflow_argo.spec.agent import Agent, OnMessage, Plan, SubmitWorkflow

ENG, SCIENCE = team_namespace("mnist", "engineering"), team_namespace("mnist", "science")


def _agent() -> Agent:
    return Agent(
        "supervisor",
        sensors=[],
        rules=[OnMessage("retrain", name="retrain")],
        plans=[Plan("retrain", [SubmitWorkflow("mnist-retrain", name="retrain")])],
        interval=1,
    )


def _settings(tmp_path: Path, namespace: str) -> Settings:
    s = Settings.from_env(environ={}).with_home(tmp_path / "home")
    s = replace(s, kubernetes=replace(s.kubernetes, namespace=namespace), tracking=replace(s.tracking, enabled=False))
    return s


def test_a_team_agent_is_bound_and_its_audit_names_the_team(tmp_path: Path) -> None:
    platform = InMemoryPlatform(tmp_path / "platform", namespace=ENG)
    rt = AgentRuntime(_agent(), _settings(tmp_path, ENG), platform=platform, clock=ManualClock(time.time()), team="engineering")
    with pytest.raises(PlatformError, match=f"{SCIENCE}.*{ENG}"):
        rt.platform.submit({"kind": "Workflow", "metadata": {"generateName": "x-", "namespace": SCIENCE}})
    assert platform.calls("submit") == []  # refused before the platform was asked
    rec = rt._record({"kind": "note"})
    assert (rec["team"], rec["namespace"]) == ("engineering", ENG)


def test_a_team_agent_refuses_a_platform_of_another_namespace(tmp_path: Path) -> None:
    with pytest.raises(PlatformError, match=f"bound to namespace '{ENG}'.*'{SCIENCE}'"):
        AgentRuntime(
            _agent(), _settings(tmp_path, ENG), platform=InMemoryPlatform(tmp_path / "p", namespace=SCIENCE), team="engineering"
        )


def test_an_agent_without_a_team_is_unchanged(tmp_path: Path) -> None:
    platform = InMemoryPlatform(tmp_path / "platform", namespace=ENG)
    clock = ManualClock(time.time())
    rt = AgentRuntime(_agent(), _settings(tmp_path, ENG), platform=platform, clock=clock)
    assert rt.platform is platform
    steps(rt, clock, 1)
    assert "team" not in rt._record({"kind": "note"})


def test_agent_run_takes_the_team() -> None:
    args = build_parser().parse_args(["--namespace", ENG, "agent", "run", "agents.mnist:supervisor", "--team", "engineering"])
    assert (args.team, args.namespace) == ("engineering", ENG)


@pytest.mark.parametrize(
    ("argv", "namespace"),
    [
        (["--team", "mnist/engineering"], ENG),
        (["--team", "mnist/engineering", "--namespace", ENG], ENG),
        (["--namespace", SCIENCE], SCIENCE),
    ],
)
def test_the_global_team_flag_sets_the_namespace(argv: list[str], namespace: str) -> None:
    args = build_parser().parse_args([*argv, "team", "list"])
    assert settings_from_args(args).kubernetes.namespace == namespace


def test_team_and_another_namespace_conflict() -> None:
    args = build_parser().parse_args(["--team", "mnist/engineering", "--namespace", SCIENCE, "team", "list"])
    with pytest.raises(SetupError, match=f"{ENG}.*{SCIENCE}"):
        settings_from_args(args)
