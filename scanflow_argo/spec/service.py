"""``Service``: a model served through Seldon Core (compiled to a ``machinelearning.seldon.io/v1`` SeldonDeployment)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Service"]


@dataclass
class Service:
    """A model served by Seldon.

    ``model_uri`` is the graph's ``modelUri``: a registry reference (``models:/name@alias``,
    ``models:/name/3``) or a storage URI Seldon's storage initializer downloads (``s3://``, ``gs://``,
    ``pvc://``, ``https://``). The local platform resolves registry references through MLflow. On a
    cluster Seldon cannot, so a registry reference is marked (annotation ``scanflow.io/model-source:
    registry``) and ``manifests/components/cluster`` removes it there; rolls (the deploy step, the
    agents) set the storage URI the registry resolves to (see docs/cluster.md).
    ``model_class`` is the seldon-core user model the container runs; ``env_from_secrets`` maps env
    names to ``(secret, key)`` (never values); ``resources`` is ``{"cpu": "500m", "memory": "1Gi",
    "cpu_limit": ..., "memory_limit": ...}``; ``image`` defaults to the Application's ``serving_image``."""

    name: str
    model_uri: str
    replicas: int = 1
    image: str | None = None
    resources: Mapping[str, str] = field(default_factory=dict)
    metrics_port: int = 6000
    env_from_secrets: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    model_class: str = "scanflow_argo.serving.model.TorchClassifier"
    predictor: str = "default"
    env: Mapping[str, str] = field(default_factory=dict)
