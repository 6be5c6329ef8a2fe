"""The admission policy of an agent that submits a published ClusterWorkflowTemplate (``SubmitWorkflow(cluster_scope=True)``),
evaluated with cel-python as the API server evaluates a ValidatingAdmissionPolicy: ``clusterScope: true`` admits only the
ClusterWorkflowTemplates the agent names so, a namespaced reference only its namespaced templates."""

from __future__ import annotations

from typing import Any

import celpy
import pytest

from scanflow_argo.compile.kube import agent_admission_policy
from scanflow_argo.spec.agent import Agent, OnMessage, Plan, SubmitWorkflow
from scanflow_argo.spec.application import Application

NS = "scanflow-mnist-engineering"


def _policy() -> dict[str, Any]:
    agent = Agent(
        "supervisor",
        sensors=[],
        rules=[OnMessage("retrain", name="retrain")],
        plans=[
            Plan(
                "retrain",
                [
                    SubmitWorkflow("mnist-retrain", cluster_scope=True, name="retrain"),
                    SubmitWorkflow("mnist-train", name="train"),
                ],
            )
        ],
        interval=1,
    )
    (policy,) = [o for o in agent_admission_policy(agent, Application("mnist", NS)) if o["kind"] == "ValidatingAdmissionPolicy"]
    return policy


CASES = [
    ("the published template, cluster-scoped", {"name": "mnist-retrain", "clusterScope": True}, True),
    ("its own template, namespaced", {"name": "mnist-train"}, True),
    ("the published name, namespaced", {"name": "mnist-retrain"}, False),
    ("its own name, cluster-scoped", {"name": "mnist-train", "clusterScope": True}, False),
    ("another cluster template", {"name": "anything", "clusterScope": True}, False),
    ("clusterScope false is namespaced", {"name": "mnist-train", "clusterScope": False}, True),
]


@pytest.mark.parametrize(("what", "ref", "admitted"), CASES, ids=[c[0] for c in CASES])
def test_the_policy_admits_only_the_named_scope(what: str, ref: dict[str, Any], admitted: bool) -> None:
    policy = _policy()
    env = celpy.Environment()
    workflow = {"metadata": {"generateName": "x-", "namespace": NS}, "spec": {"workflowTemplateRef": ref}}
    activation = {"object": celpy.json_to_cel(workflow)}
    rule = policy["spec"]["validations"][0]
    assert bool(env.program(env.compile(rule["expression"])).evaluate(activation)) is admitted, what
