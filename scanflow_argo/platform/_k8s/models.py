"""Model URIs for roll-outs: from the MLflow registry (``models:/NAME@ALIAS``, ``models:/NAME/VERSION``)
to a storage URI that Seldon's storage initializer downloads (``s3://``, ``gs://``, ``pvc://``, ``http(s)://``).

The registry is read over MLflow's REST API (no ``import mlflow``): the alias gives the version, the
version's download URI gives where its files are. A server that proxies artifacts answers
``mlflow-artifacts:/PATH``; that path lives under the server's ``--artifacts-destination``, which the
platform learns from ``settings.kubernetes.artifacts_destination``.
"""

from __future__ import annotations

from ...errors import NotFoundError, PlatformError, TrackingError
from ...tracking import MlflowRest, missing

__all__ = ["STORAGE_SCHEMES", "resolve_model_uri"]

STORAGE_SCHEMES = ("s3://", "gs://", "pvc://", "https://", "http://")
"""URIs Seldon Core's storage initializer downloads as they are."""

_PROXIED = "mlflow-artifacts:"


def resolve_model_uri(model_uri: str, *, tracking_uri: str | None, artifacts_destination: str | None) -> str:
    """The storage URI of ``model_uri``; storage URIs pass unchanged. See the module docstring."""
    if model_uri.startswith(STORAGE_SCHEMES):
        return model_uri
    if not model_uri.startswith("models:/"):
        raise PlatformError(
            f"cannot roll to {model_uri!r}: use models:/NAME@ALIAS, models:/NAME/VERSION or a storage URI "
            f"({', '.join(STORAGE_SCHEMES)})"
        )
    if not tracking_uri:
        raise PlatformError(f"cannot resolve {model_uri}: set MLFLOW_TRACKING_URI to the cluster's MLflow server")
    ref = model_uri[len("models:/") :]
    rest = MlflowRest(tracking_uri)
    try:
        if "@" in ref:
            name, alias = ref.split("@", 1)
            found = rest.get_alias(name, alias)
            if found is None:
                raise NotFoundError(f"model {name!r} has no alias {alias!r} in the MLflow registry at {tracking_uri}")
            version = str(found["version"])
        else:
            name, _, version = ref.partition("/")
            if not version.isdigit():
                raise PlatformError(f"cannot resolve {model_uri!r}: use models:/NAME@ALIAS or models:/NAME/VERSION")
        try:
            where = rest.download_uri(name, version)
        except TrackingError as err:
            if missing(err):
                raise NotFoundError(f"model {name!r} has no version {version} in the MLflow registry at {tracking_uri}") from err
            raise
    finally:
        rest.close()
    return _storage_uri(model_uri, where, artifacts_destination)


def _storage_uri(model_uri: str, artifact_uri: str, artifacts_destination: str | None) -> str:
    if artifact_uri.startswith(_PROXIED):
        path = artifact_uri[len(_PROXIED) :]
        if path.startswith("//"):  # mlflow-artifacts://host:port/path
            path = "/" + path[2:].partition("/")[2]
        if not artifacts_destination:
            raise PlatformError(
                f"{model_uri} is stored at {artifact_uri}, behind the MLflow server: set SCANFLOW_ARTIFACTS_DESTINATION "
                "to the server's --artifacts-destination (e.g. s3://bucket/artifacts) so Seldon can download it"
            )
        artifact_uri = artifacts_destination.rstrip("/") + "/" + path.lstrip("/")
    if not artifact_uri.startswith(STORAGE_SCHEMES):
        raise PlatformError(
            f"{model_uri} resolves to {artifact_uri!r}, which Seldon cannot download: give the MLflow server an "
            "object-store artifact root (manifests/overlays/external-storage) or roll to an s3:// URI"
        )
    return artifact_uri
