"""SeldonDeployments (``machinelearning.seldon.io/v1``) through the Kubernetes API.

Writes are read → modify → JSON merge patch carrying the ``resourceVersion`` read, so a concurrent
writer makes the API server answer 409; we then re-read and retry with bounded backoff. Replicas are
set at the level the deployment already uses (``componentSpecs[i].replicas`` over
``predictors[i].replicas`` over ``spec.replicas``, Seldon's own precedence); a roll-out sets the
predictor's ``graph.modelUri`` and Seldon's operator rolls the pods.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from ...clock import Clock
from ...errors import NotFoundError, PlatformError
from ..base import DeploymentStatus
from .api import CustomObjects, ResourceRef, retry_conflicts

__all__ = ["SELDON", "SeldonDeployments", "deployment_status", "replicas_patch"]

SELDON = ResourceRef("machinelearning.seldon.io", "v1", "seldondeployments", "SeldonDeployment")


def _predictor_index(obj: Mapping[str, Any]) -> int:
    predictors = (obj.get("spec") or {}).get("predictors") or []
    if not predictors:
        name = (obj.get("metadata") or {}).get("name")
        raise PlatformError(f"SeldonDeployment {name!r} has no predictors — its spec.predictors must list at least one")
    return 0


def effective_replicas(obj: Mapping[str, Any]) -> int:
    """Replicas Seldon runs for the first predictor's model (component over predictor over deployment)."""
    spec = obj.get("spec") or {}
    predictor = spec["predictors"][_predictor_index(obj)]
    for component in predictor.get("componentSpecs") or []:
        if component.get("replicas") is not None:
            return int(component["replicas"])
    if predictor.get("replicas") is not None:
        return int(predictor["replicas"])
    if spec.get("replicas") is not None:
        return int(spec["replicas"])
    return 1


def replicas_patch(obj: Mapping[str, Any], replicas: int) -> dict[str, Any]:
    """The merge patch that sets ``replicas`` where the deployment sets them (lists are sent whole)."""
    spec = obj.get("spec") or {}
    index = _predictor_index(obj)
    predictors = copy.deepcopy(spec["predictors"])
    predictor = predictors[index]
    components = predictor.get("componentSpecs") or []
    if any(c.get("replicas") is not None for c in components):
        for component in components:
            if component.get("replicas") is not None:
                component["replicas"] = replicas
        return {"spec": {"predictors": predictors}}
    if predictor.get("replicas") is not None or spec.get("replicas") is None:
        predictor["replicas"] = replicas
        return {"spec": {"predictors": predictors}}
    return {"spec": {"replicas": replicas}}


def model_patch(obj: Mapping[str, Any], model_uri: str) -> dict[str, Any]:
    """The merge patch that points the predictor's graph at ``model_uri``."""
    predictors = copy.deepcopy((obj.get("spec") or {})["predictors"])
    predictors[_predictor_index(obj)].setdefault("graph", {})["modelUri"] = model_uri
    return {"spec": {"predictors": predictors}}


def deployment_status(obj: Mapping[str, Any]) -> DeploymentStatus:
    """A ``DeploymentStatus`` from a SeldonDeployment object (spec for desired, status for observed)."""
    meta = obj.get("metadata") or {}
    name = meta.get("name", "")
    predictor = (obj.get("spec") or {})["predictors"][_predictor_index(obj)]
    status = obj.get("status") or {}
    # Seldon names each k8s Deployment <sdep>-<predictor>-<i>-<container>; the predictor is ready as far
    # as its least-ready Deployment.
    prefix = f"{name}-{predictor.get('name', '')}-"
    ready_counts = [
        int(d.get("availableReplicas") or 0)
        for key, d in (status.get("deploymentStatus") or {}).items()
        if key.startswith(prefix) and not d.get("explainerFor")
    ]
    # Without per-Deployment detail, trust the scale subresource's count only once Seldon says Available.
    fallback = int(status.get("replicas") or 0) if status.get("state") == "Available" else 0
    ready = min(ready_counts) if ready_counts else fallback
    return DeploymentStatus(
        name=name,
        namespace=meta.get("namespace", ""),
        replicas=effective_replicas(obj),
        ready_replicas=ready,
        model_uri=(predictor.get("graph") or {}).get("modelUri"),
        state=status.get("state") or "Creating",
        predictor=predictor.get("name", "default"),
        endpoint=(status.get("address") or {}).get("url"),
    )


class SeldonDeployments:
    """Get, apply, scale, roll and delete SeldonDeployments in one namespace."""

    def __init__(self, api_client: Any, namespace: str, timeout: float, clock: Clock) -> None:
        self.namespace = namespace
        self._objects = CustomObjects(api_client, SELDON, namespace, timeout)
        self._clock = clock

    def get_object(self, name: str) -> dict[str, Any]:
        try:
            return self._objects.get(name)
        except NotFoundError as err:
            raise NotFoundError(
                f"SeldonDeployment {name!r} not found in namespace {self.namespace!r} — apply it first "
                f"(kubectl apply -k manifests/) or check SCANFLOW_NAMESPACE"
            ) from err

    def get(self, name: str) -> DeploymentStatus:
        return deployment_status(self.get_object(name))

    def apply(self, manifest: Mapping[str, Any]) -> None:
        if manifest.get("kind") != SELDON.kind:
            raise PlatformError(f"apply_deployment takes a SeldonDeployment, not kind {manifest.get('kind')!r}")
        body = copy.deepcopy(dict(manifest))
        meta = body.setdefault("metadata", {})
        meta["namespace"] = self.namespace
        name = meta.get("name")
        if not name:
            raise PlatformError("the SeldonDeployment has no metadata.name")

        def apply() -> None:
            try:
                current = self._objects.get(name)
            except NotFoundError:
                self._objects.create(body)
                return
            meta["resourceVersion"] = current["metadata"]["resourceVersion"]
            self._objects.replace(name, body)

        retry_conflicts(apply, self._clock, SELDON.describe(self.namespace, name))

    def _update(self, name: str, make_patch: Callable[[dict[str, Any]], dict[str, Any]]) -> DeploymentStatus:
        result: dict[str, Any] = {}

        def attempt() -> None:
            current = self.get_object(name)
            patch = make_patch(current)
            patch["metadata"] = {"resourceVersion": current["metadata"]["resourceVersion"]}
            result["obj"] = self._objects.patch(name, patch)

        retry_conflicts(attempt, self._clock, SELDON.describe(self.namespace, name))
        return deployment_status(result["obj"])

    def scale(self, name: str, replicas: int) -> DeploymentStatus:
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
            raise PlatformError(f"cannot scale SeldonDeployment {name!r} to {replicas!r}: replicas must be an integer ≥ 0")
        return self._update(name, lambda obj: replicas_patch(obj, replicas))

    def roll(self, name: str, storage_uri: str) -> DeploymentStatus:
        return self._update(name, lambda obj: model_patch(obj, storage_uri))

    def delete(self, name: str) -> None:
        try:
            self._objects.delete(name)
        except NotFoundError as err:
            raise NotFoundError(f"SeldonDeployment {name!r} not found in namespace {self.namespace!r}") from err
