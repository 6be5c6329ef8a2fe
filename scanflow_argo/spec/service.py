"""``Service``: a model served through Seldon Core (compiled to a ``machinelearning.seldon.io/v1`` SeldonDeployment)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import SpecError

__all__ = ["Canary", "Service", "Shadow"]


@dataclass(frozen=True)
class Canary:
    """A second predictor taking ``traffic`` percent of the requests (Seldon's ``predictors[].traffic``);
    the stable predictor keeps the rest. A roll-out (``StartRollout``, ``scanflow-argo rollout``) moves it."""

    model_uri: str
    traffic: int = 10
    replicas: int = 1
    name: str = "canary"


@dataclass(frozen=True)
class Shadow:
    """A predictor that gets a copy of every request, its answers discarded (Seldon's ``predictors[].shadow``)."""

    model_uri: str
    replicas: int = 1
    name: str = "shadow"


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
    canary: Canary | None = None
    shadow: Shadow | None = None

    def __post_init__(self) -> None:
        names = [self.predictor]
        if self.canary is not None:
            traffic = self.canary.traffic
            if isinstance(traffic, bool) or not isinstance(traffic, int) or not 0 < traffic < 100:
                raise SpecError(
                    f"Service {self.name!r}: canary traffic {traffic!r} must be a whole percent 1..99 (the stable predictor keeps the rest)"
                )
            names.append(self.canary.name)
        if self.shadow is not None:
            names.append(self.shadow.name)
        if len(set(names)) != len(names):
            raise SpecError(f"Service {self.name!r}: predictor names {names} must be unique — rename the canary or shadow")
