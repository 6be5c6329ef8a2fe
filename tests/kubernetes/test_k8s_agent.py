"""A real agent runtime (``scanflow_argo.agents``) acting on the Kubernetes platform over the fake servers:
its platform sensors read the cluster, its actions submit a WorkflowTemplate with labels (concurrency
counted on the cluster) and roll the SeldonDeployment — the same code that runs on the local platform."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from fakeapi import FakeCluster
from k8s_helpers import NAMESPACE, make_platform, seldon, template

from scanflow_argo.clock import ManualClock
from scanflow_argo.settings import Settings


def test_agent_acts_through_the_kubernetes_platform(kube_settings: Settings, fake: FakeCluster, tmp_path: Path) -> None:
    from scanflow_argo.agents.runtime import AgentRuntime
    from scanflow_argo.spec.agent import Agent, ArgoRuns, Plan, Replicas, RollDeployment, SubmitWorkflow, Threshold

    settings = dataclasses.replace(kube_settings, tracking=dataclasses.replace(kube_settings.tracking, enabled=False))
    clock = ManualClock()
    platform = make_platform(settings, fake, "argo", clock=clock)
    platform.apply_template(template("retrain"))
    platform.apply_deployment(seldon(replicas=1))

    agent = Agent(
        name="tester",
        interval=1.0,
        sensors=[Replicas("mnist-replicas", "mnist", interval=1.0), ArgoRuns("retraining", {"app": "mnist"}, interval=1.0)],
        rules=[Threshold("mnist-replicas", "<", 2, name="too-few")],
        plans=[
            Plan(
                "too-few",
                [
                    SubmitWorkflow("retrain", parameters={"epochs": "2"}, labels={"app": "mnist"}, cooldown=0),
                    RollDeployment("mnist", "s3://models/mnist/9", cooldown=0),
                ],
            )
        ],
    )
    runtime = AgentRuntime(agent, settings, platform=platform, clock=clock, state_dir=tmp_path / "agent")

    async def run_steps(n: int) -> None:
        await runtime.start(check_online=False)
        for _ in range(n):
            await runtime.step()
            clock.advance(1.0)

    asyncio.run(run_steps(3))

    submits = fake.calls("POST", f"/api/v1/workflows/{NAMESPACE}/submit")
    assert len(submits) == 1  # once per firing, and the run is still unfinished on the cluster
    assert submits[0].body["submitOptions"]["parameters"] == ["epochs=2"]
    assert "app=mnist" in submits[0].body["submitOptions"]["labels"]
    assert fake.calls("GET", f"/api/v1/workflows/{NAMESPACE}")  # runs listed by label on the cluster
    sdep = fake.get("seldondeployments", NAMESPACE, "mnist")
    assert sdep["spec"]["predictors"][0]["graph"]["modelUri"] == "s3://models/mnist/9"
