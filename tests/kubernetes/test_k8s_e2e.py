"""Opt-in end-to-end test against a real cluster running Argo Workflows (and, if installed, Seldon Core).

Skipped unless ``SCANFLOW_E2E_KUBECONFIG`` names a kubeconfig. Optional: ``SCANFLOW_E2E_NAMESPACE``
(default ``scanflow-e2e``, must exist, with Argo's executor allowed to run there), ``SCANFLOW_E2E_ARGO_SERVER``
(+ ``ARGO_TOKEN``) to go through the Argo Server instead of Workflow objects, ``SCANFLOW_E2E_IMAGE``
(default ``busybox:1.36``) for the step. It creates a WorkflowTemplate ``scanflow-e2e-echo`` and, where
the SeldonDeployment CRD exists, a SeldonDeployment ``scanflow-e2e`` (deleted at the end)."""

from __future__ import annotations

import dataclasses
import os
import uuid
from pathlib import Path

import pytest

from scanflow_argo.errors import NotFoundError, PlatformError
from scanflow_argo.platform.kubernetes import KubernetesPlatform
from scanflow_argo.settings import Settings

KUBECONFIG = os.environ.get("SCANFLOW_E2E_KUBECONFIG")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not KUBECONFIG, reason="opt-in: set SCANFLOW_E2E_KUBECONFIG to a kubeconfig of a cluster with Argo Workflows"
    ),
]


@pytest.fixture(scope="module")
def platform() -> KubernetesPlatform:
    settings = Settings.from_env(environ={})
    kube = dataclasses.replace(
        settings.kubernetes,
        kubeconfig=Path(str(KUBECONFIG)),
        namespace=os.environ.get("SCANFLOW_E2E_NAMESPACE", "scanflow-e2e"),
        argo_server=os.environ.get("SCANFLOW_E2E_ARGO_SERVER") or None,
    )
    return KubernetesPlatform(dataclasses.replace(settings, platform="kubernetes", kubernetes=kube))


def test_template_submit_wait_outputs_logs(platform: KubernetesPlatform) -> None:
    image = os.environ.get("SCANFLOW_E2E_IMAGE", "busybox:1.36")
    platform.apply_template(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "WorkflowTemplate",
            "metadata": {"name": "scanflow-e2e-echo"},
            "spec": {
                "entrypoint": "main",
                "arguments": {"parameters": [{"name": "msg", "value": "hello", "description": "what to echo"}]},
                "templates": [
                    {
                        "name": "main",
                        "dag": {
                            "tasks": [
                                {
                                    "name": "say",
                                    "template": "say",
                                    "arguments": {"parameters": [{"name": "msg", "value": "{{workflow.parameters.msg}}"}]},
                                }
                            ]
                        },
                    },
                    {
                        "name": "say",
                        "inputs": {"parameters": [{"name": "msg"}]},
                        "container": {
                            "image": image,
                            "command": ["sh", "-c", 'echo "$0"; echo -n "$0" > /tmp/out', "{{inputs.parameters.msg}}"],
                        },
                        "outputs": {"parameters": [{"name": "said", "valueFrom": {"path": "/tmp/out"}}]},
                    },
                ],
            },
        }
    )
    label = {"scanflow.io/e2e": uuid.uuid4().hex[:12]}
    name = platform.submit("scanflow-e2e-echo", {"msg": "from-scanflow"}, label)
    run = platform.wait(name, timeout=300, poll=2)
    assert run.phase == "Succeeded", run.message
    assert run.node("say").parameters()["said"] == "from-scanflow"
    assert [r.name for r in platform.list_runs(label)] == [name]
    assert "from-scanflow" in platform.logs(name, "say")


def test_seldon_scale_and_roll(platform: KubernetesPlatform) -> None:
    manifest = {
        "apiVersion": "machinelearning.seldon.io/v1",
        "kind": "SeldonDeployment",
        "metadata": {"name": "scanflow-e2e"},
        "spec": {
            "predictors": [
                {
                    "name": "default",
                    "replicas": 1,
                    "graph": {
                        "name": "classifier",
                        "type": "MODEL",
                        "implementation": "SKLEARN_SERVER",
                        "modelUri": "gs://seldon-models/v1.19.0-dev/sklearn/iris",
                    },
                }
            ]
        },
    }
    try:
        platform.apply_deployment(manifest)
    except (NotFoundError, PlatformError) as err:
        pytest.skip(f"no SeldonDeployment CRD on this cluster: {err}")
    try:
        assert platform.scale("scanflow-e2e", 2).replicas == 2
        assert platform.roll("scanflow-e2e", "gs://seldon-models/v1.19.0-dev/sklearn/iris").model_uri.startswith("gs://")
        assert platform.get_deployment("scanflow-e2e").replicas == 2
    finally:
        platform.delete_deployment("scanflow-e2e")
