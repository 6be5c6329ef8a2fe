"""Helpers shared by the Kubernetes platform tests: names, a platform on the fake cluster, sample manifests.

(A uniquely named module, not ``conftest``: several test areas have a ``conftest.py``.)
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fakeapi import FakeCluster

from scanflow_argo.clock import ManualClock
from scanflow_argo.platform.kubernetes import KubernetesPlatform
from scanflow_argo.settings import Settings

NAMESPACE = "scanflow"
ARGO_TOKEN = "argo-test-token-7f3a"
TOKEN_ENV = "TEST_ARGO_TOKEN"


def make_platform(settings: Settings, fake: FakeCluster, backend: str, **kwargs: Any) -> KubernetesPlatform:
    """A platform on the fake cluster: ``crd`` (Workflow objects) or ``argo`` (through the Argo Server)."""
    if backend == "argo":
        settings = dataclasses.replace(settings, kubernetes=dataclasses.replace(settings.kubernetes, argo_server=fake.url))
    kwargs.setdefault("clock", ManualClock())
    kwargs.setdefault("environ", {TOKEN_ENV: ARGO_TOKEN})
    return KubernetesPlatform(settings, **kwargs)


def template(name: str = "train", params: dict[str, str] | None = None) -> dict[str, Any]:
    """A small WorkflowTemplate as the compiler writes them (parameters with descriptions)."""
    params = params if params is not None else {"epochs": "1", "lr": "0.01"}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": {"name": name, "annotations": {"workflows.argoproj.io/title": name}},
        "spec": {
            "entrypoint": "main",
            "arguments": {"parameters": [{"name": k, "value": v, "description": k} for k, v in params.items()]},
            "templates": [
                {
                    "name": "main",
                    "dag": {"tasks": [{"name": "fit", "template": "fit"}]},
                },
                {"name": "fit", "container": {"image": "scanflow-argo/runtime:0.1.0", "command": ["python", "-V"]}},
            ],
        },
    }


def seldon(name: str = "mnist", level: str = "predictor", replicas: int = 1, uri: str = "s3://models/mnist/1") -> dict[str, Any]:
    """A SeldonDeployment with replicas set at ``level``: ``spec``, ``predictor``, ``component`` or ``none``."""
    predictor: dict[str, Any] = {
        "name": "default",
        "graph": {"name": "classifier", "type": "MODEL", "modelUri": uri},
        "componentSpecs": [{"spec": {"containers": [{"name": "classifier", "image": "scanflow-argo/serving:0.1.0"}]}}],
    }
    spec: dict[str, Any] = {"predictors": [predictor]}
    if level == "spec":
        spec["replicas"] = replicas
    elif level == "predictor":
        predictor["replicas"] = replicas
    elif level == "component":
        predictor["componentSpecs"][0]["replicas"] = replicas
    return {
        "apiVersion": "machinelearning.seldon.io/v1",
        "kind": "SeldonDeployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
    }
