"""SeldonDeployments (``machinelearning.seldon.io/v1``) through the Kubernetes API.

Writes are read → modify → JSON merge patch carrying the ``resourceVersion`` read, so a concurrent
writer makes the API server answer 409; we then re-read and retry with bounded backoff. Replicas are
set at the level the deployment already uses (``componentSpecs[i].replicas`` over
``predictors[i].replicas`` over ``spec.replicas``, Seldon's own precedence); a roll-out sets the
predictor's ``graph.modelUri`` and Seldon's operator rolls the pods.

A SeldonDeployment is *applied* here, not by ``kubectl apply -k``: its model and replicas live inside
``spec.predictors``, a list the API server replaces whole, so re-applying a manifest would drop a rolled
``modelUri`` and scaled replicas. ``apply`` keeps both from the live object, and creates a deployment
whose model is a registry reference (``models:/NAME@ALIAS``) with the storage URI the reference resolves
to (the champion served from the start) or, while there is none, at 0 replicas with the desired count in
the ``scanflow.io/replicas`` annotation, which the first roll restores (no pod crash-loops without a model).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from typing import Any

from ...clock import Clock
from ...errors import NotFoundError, PlatformError, ScanflowError, SpecError
from ...serving.traffic import split_of
from ...status import DeploymentStatus, PredictorStatus
from .api import CustomObjects, ResourceRef, retry_conflicts

__all__ = ["REPLICAS_ANNOTATION", "SELDON", "SeldonDeployments", "deployment_status", "replicas_patch"]

SELDON = ResourceRef("machinelearning.seldon.io", "v1", "seldondeployments", "SeldonDeployment")
REPLICAS_ANNOTATION = "scanflow.io/replicas"
"""Replicas a deployment created without a model gets at its first roll."""
_REGISTRY = ("models:/", "runs:/")
_BUCKETS = ("s3://", "gs://")


def _predictor_index(obj: Mapping[str, Any]) -> int:
    predictors = (obj.get("spec") or {}).get("predictors") or []
    if not predictors:
        name = (obj.get("metadata") or {}).get("name")
        raise PlatformError(f"SeldonDeployment {name!r} has no predictors — its spec.predictors must list at least one")
    return 0


def effective_replicas(obj: Mapping[str, Any]) -> int:
    """Replicas Seldon runs for the first predictor's model (component over predictor over deployment)."""
    spec = obj.get("spec") or {}
    return _replicas_of(spec, spec["predictors"][_predictor_index(obj)])


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


def _replicas_of(spec: Mapping[str, Any], predictor: Mapping[str, Any]) -> int:
    """Replicas Seldon runs for one predictor (component over predictor over deployment; 1 when none is set)."""
    for component in predictor.get("componentSpecs") or []:
        if component.get("replicas") is not None:
            return int(component["replicas"])
    if predictor.get("replicas") is not None:
        return int(predictor["replicas"])
    if spec.get("replicas") is not None:
        return int(spec["replicas"])
    return 1


def _ready_of(name: str, predictor: str, status: Mapping[str, Any]) -> int | None:
    """Ready replicas of one predictor from ``status.deploymentStatus``: Seldon names each Kubernetes Deployment
    ``<sdep>-<predictor>-<i>-<containers>`` (componentSpecs index ``i``); the predictor is as ready as its least-ready
    Deployment (explainers aside). ``None`` when the status lists none of its Deployments."""
    own = re.compile(rf"{re.escape(name)}-{re.escape(predictor)}-\d+-")
    counts = [
        int(d.get("availableReplicas") or 0)
        for key, d in (status.get("deploymentStatus") or {}).items()
        if own.match(key) and isinstance(d, Mapping) and not d.get("explainerFor")
    ]
    return min(counts) if counts else None


def deployment_status(obj: Mapping[str, Any]) -> DeploymentStatus:
    """A ``DeploymentStatus`` from a SeldonDeployment object (spec for desired, status for observed).

    ``predictors`` lists every one of ``spec.predictors`` — its share of the traffic as Seldon's webhook reads the
    split (``serving/traffic.py`` ``split_of``: one serving predictor takes 100, shadows 0), its replicas, ready
    replicas and model, and the predictor as declared (what a roll-out copies for its canary)."""
    meta = obj.get("metadata") or {}
    name = meta.get("name", "")
    spec = obj.get("spec") or {}
    declared = spec["predictors"]
    predictor = declared[_predictor_index(obj)]
    status = obj.get("status") or {}
    # Without per-Deployment detail, trust the scale subresource's count only once Seldon says Available.
    fallback = int(status.get("replicas") or 0) if status.get("state") == "Available" else 0
    ready = _ready_of(name, str(predictor.get("name", "")), status)
    try:
        shares = dict(split_of(name, declared).weights)
    except SpecError:  # a split Seldon's webhook would refuse: shown as declared
        shares = {}
    predictors = []
    for p in declared:
        pname = str(p.get("name", ""))
        shadow = p.get("shadow") is True
        own_ready = _ready_of(name, pname, status)
        predictors.append(
            PredictorStatus(
                name=pname,
                traffic=0 if shadow else int(shares.get(pname, p.get("traffic") or 0)),
                shadow=shadow,
                replicas=_replicas_of(spec, p),
                ready_replicas=own_ready if own_ready is not None else (fallback if len(declared) == 1 else 0),
                model_uri=(p.get("graph") or {}).get("modelUri"),
                spec=copy.deepcopy(dict(p)),
            )
        )
    return DeploymentStatus(
        name=name,
        namespace=meta.get("namespace", ""),
        replicas=effective_replicas(obj),
        ready_replicas=ready if ready is not None else fallback,
        model_uri=(predictor.get("graph") or {}).get("modelUri"),
        state=status.get("state") or "Creating",
        predictor=predictor.get("name", "default"),
        endpoint=(status.get("address") or {}).get("url"),
        predictors=tuple(predictors),
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

    def apply(
        self, manifest: Mapping[str, Any], resolve: Callable[[str], str] | None = None, storage_secret: str | None = None
    ) -> str:
        """Create or update (see the module docstring); ``resolve`` turns a registry reference into a storage URI.
        Returns a note on what was served (empty when nothing needs saying)."""
        if manifest.get("kind") != SELDON.kind:
            raise PlatformError(f"apply_deployment takes a SeldonDeployment, not kind {manifest.get('kind')!r}")
        desired = copy.deepcopy(dict(manifest))
        desired.setdefault("metadata", {})["namespace"] = self.namespace
        name = desired["metadata"].get("name")
        if not name:
            raise PlatformError("the SeldonDeployment has no metadata.name")
        _predictor_index(desired)

        notes: list[str] = []

        def apply() -> None:
            notes.clear()
            try:
                current = self._objects.get(name)
            except NotFoundError:
                self._objects.create(_first(desired, resolve, storage_secret, notes))
                return
            body = _keep_live(desired, current)
            body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            self._objects.replace(name, body)

        retry_conflicts(apply, self._clock, SELDON.describe(self.namespace, name))
        return "; ".join(notes)

    def _update(self, name: str, make_patch: Callable[[dict[str, Any]], dict[str, Any]]) -> DeploymentStatus:
        result: dict[str, Any] = {}

        def attempt() -> None:
            current = self.get_object(name)
            patch = make_patch(current)
            patch["metadata"] = {**patch.get("metadata", {}), "resourceVersion": current["metadata"]["resourceVersion"]}
            result["obj"] = self._objects.patch(name, patch)

        retry_conflicts(attempt, self._clock, SELDON.describe(self.namespace, name))
        return deployment_status(result["obj"])

    def scale(self, name: str, replicas: int) -> DeploymentStatus:
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
            raise PlatformError(f"cannot scale SeldonDeployment {name!r} to {replicas!r}: replicas must be an integer ≥ 0")
        return self._update(name, lambda obj: replicas_patch(obj, replicas))

    def roll(self, name: str, storage_uri: str, storage_secret: str | None = None) -> DeploymentStatus:
        """Point the predictor at ``storage_uri``; a deployment waiting for its first model gets its replicas back."""

        def patch(obj: dict[str, Any]) -> dict[str, Any]:
            out = model_patch(obj, storage_uri)
            graph = out["spec"]["predictors"][_predictor_index(obj)]["graph"]
            if storage_secret and storage_uri.startswith(_BUCKETS) and not graph.get("envSecretRefName"):
                graph["envSecretRefName"] = storage_secret
            waiting = ((obj.get("metadata") or {}).get("annotations") or {}).get(REPLICAS_ANNOTATION)
            if waiting is not None and effective_replicas(obj) == 0:
                scaled = replicas_patch({**obj, "spec": {**obj["spec"], "predictors": out["spec"]["predictors"]}}, int(waiting))
                out["spec"].update(scaled["spec"])
                out["metadata"] = {"annotations": {REPLICAS_ANNOTATION: None}}
            return out

        return self._update(name, patch)

    def set_predictors(
        self,
        name: str,
        predictors: list[dict[str, Any]],
        resolve: Callable[[str], str] | None = None,
        storage_secret: str | None = None,
    ) -> DeploymentStatus:
        """Replace ``spec.predictors`` (a roll-out's traffic split, shadow, canary added or removed) by a merge patch.

        The list is checked first as Seldon's admission webhook checks it (``serving/traffic.split_of``),
        so a split the cluster would refuse is refused here with the predictor named, nothing patched. A
        predictor whose model is a registry reference (``models:/NAME/VERSION``: a roll-out's canary) gets its
        storage URI through ``resolve`` first, as ``roll`` does: Seldon's storage initializer downloads storage
        URIs, it cannot read MLflow's registry.
        """
        try:
            split_of(name, predictors)
        except SpecError as err:
            raise PlatformError(f"cannot set the predictors of SeldonDeployment {name!r}: {err}") from err
        wanted = [_with_storage_uri(name, p, resolve, storage_secret) for p in predictors]
        return self._update(name, lambda obj: {"spec": {"predictors": wanted}})

    def delete(self, name: str) -> None:
        try:
            self._objects.delete(name)
        except NotFoundError as err:
            raise NotFoundError(f"SeldonDeployment {name!r} not found in namespace {self.namespace!r}") from err


def _first(
    desired: dict[str, Any], resolve: Callable[[str], str] | None, storage_secret: str | None, notes: list[str]
) -> dict[str, Any]:
    """A new deployment: a registry model resolved to its storage URI, or no model and no replicas until a roll."""
    body = copy.deepcopy(desired)
    predictor = body["spec"]["predictors"][_predictor_index(body)]
    graph = predictor.setdefault("graph", {})
    uri = str(graph.get("modelUri") or "")
    if uri.startswith(_REGISTRY) or not uri:
        resolved = None
        if uri and resolve is not None:
            try:
                resolved = resolve(uri)
            except NotFoundError:
                notes.append(f"no {uri} yet: 0 replicas until the first roll")
            except ScanflowError as err:  # MLflow unreachable from here, no artifacts destination…
                notes.append(f"{uri} not resolved ({err}): 0 replicas until the first roll")
        if resolved:
            graph["modelUri"] = uri = resolved
        else:
            graph.pop("modelUri", None)  # Seldon cannot download a registry reference
            replicas = effective_replicas(body)
            body = {**body, "spec": {**body["spec"], **replicas_patch(body, 0)["spec"]}}
            annotations = body["metadata"].setdefault("annotations", {})
            annotations[REPLICAS_ANNOTATION] = str(replicas)
            return body
    if storage_secret and uri.startswith(_BUCKETS):
        graph.setdefault("envSecretRefName", storage_secret)
    return body


def _with_storage_uri(
    name: str, predictor: Mapping[str, Any], resolve: Callable[[str], str] | None, storage_secret: str | None
) -> dict[str, Any]:
    """A copy of ``predictor`` whose graph names a storage URI (and the storage Secret of a bucket URI)."""
    out = copy.deepcopy(dict(predictor))
    graph = out.get("graph") or {}
    uri = str(graph.get("modelUri") or "")
    if uri.startswith(_REGISTRY):
        if resolve is None:
            raise PlatformError(
                f"predictor {out.get('name')!r} of SeldonDeployment {name!r} names {uri}, which Seldon cannot download: "
                "give it a storage URI (s3://, gs://, pvc://) or set the tracking server to resolve it from"
            )
        graph["modelUri"] = uri = resolve(uri)
    if storage_secret and uri.startswith(_BUCKETS):
        graph.setdefault("envSecretRefName", storage_secret)
    return out


def _keep_live(desired: dict[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest with what rolls and scales changed on the live object kept: each predictor's ``modelUri``
    (unless the manifest names a storage URI of its own) and ``envSecretRefName``, the replicas, and the
    annotation of a deployment still waiting for its first model. A manifest of one predictor whose name the live
    object no longer has is the predictor serving now under the name a promoted roll-out gave it (its canary's,
    ``spec/rollout.predictors``): that one is kept, name included, so a re-apply neither drops the model nor makes
    Seldon's operator replace the serving pods."""
    body = copy.deepcopy(desired)
    live_list = [p for p in (current.get("spec") or {}).get("predictors") or [] if not p.get("shadow")]
    live_predictors = {p.get("name"): p for p in live_list}
    for predictor in body["spec"]["predictors"]:
        live = live_predictors.get(predictor.get("name"))
        if live is None and len(body["spec"]["predictors"]) == 1 and live_list:
            live = max(live_list, key=lambda p: 100 if p.get("traffic") is None else int(p["traffic"]))
            predictor["name"] = live.get("name")
        if live is None:
            continue
        graph, live_graph = predictor.setdefault("graph", {}), live.get("graph") or {}
        if str(graph.get("modelUri") or "").startswith(_REGISTRY) or not graph.get("modelUri"):
            if live_graph.get("modelUri"):
                graph["modelUri"] = live_graph["modelUri"]
            else:
                graph.pop("modelUri", None)
        if live_graph.get("envSecretRefName") and not graph.get("envSecretRefName"):
            graph["envSecretRefName"] = live_graph["envSecretRefName"]
    body = {**body, "spec": {**body["spec"], **replicas_patch(body, effective_replicas(current))["spec"]}}
    waiting = ((current.get("metadata") or {}).get("annotations") or {}).get(REPLICAS_ANNOTATION)
    if waiting is not None:
        body["metadata"].setdefault("annotations", {})[REPLICAS_ANNOTATION] = waiting
    return body
