"""Roll-outs resolve registry URIs through a real MLflow server (REST, no ``import mlflow`` in the platform)
into the storage URI Seldon downloads; the URI points at the model's real files."""

from __future__ import annotations

import dataclasses
import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fakeapi import FakeCluster
from k8s_helpers import NAMESPACE, make_platform, seldon

from scanflow_argo.errors import NotFoundError, PlatformError
from scanflow_argo.platform._k8s.models import resolve_model_uri
from scanflow_argo.settings import Settings

DESTINATION = "pvc://mlflow-data/artifacts"


def _model_dir(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.pt").write_bytes(b"not loaded by the registry")
    np.savez(folder / "drift.npz", mean=np.zeros(4), std=np.ones(4))
    (folder / "meta.json").write_text(json.dumps({"classes": [0, 1], "input_shape": [4], "metrics": {"accuracy": 0.9}}))
    return folder


@pytest.fixture(scope="module")
def registered(mlflow_server: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    from scanflow_argo.tracking import registry

    name = f"mnist-{uuid.uuid4().hex[:8]}"
    version = registry.register_model(_model_dir(tmp_path_factory.mktemp("model") / "m"), name, tracking_uri=mlflow_server.url)
    registry.set_alias(name, "champion", version.version, tracking_uri=mlflow_server.url)
    return name


@pytest.mark.slow
def test_roll_to_an_alias_sets_the_storage_uri_of_the_models_files(
    kube_settings: Settings, fake: FakeCluster, mlflow_server: Any, registered: str
) -> None:
    settings = dataclasses.replace(
        kube_settings,
        tracking=dataclasses.replace(kube_settings.tracking, uri=mlflow_server.url),
        kubernetes=dataclasses.replace(kube_settings.kubernetes, artifacts_destination=DESTINATION),
    )
    platform = make_platform(settings, fake, "crd", environ={})
    fake.put(seldon())
    status = platform.roll("mnist", f"models:/{registered}@champion")
    assert status.model_uri and status.model_uri.startswith(DESTINATION + "/")
    stored = mlflow_server.dir / "artifacts" / status.model_uri[len(DESTINATION) + 1 :]
    assert (stored / "model.pt").is_file() and (stored / "MLmodel").is_file(), stored
    assert fake.get("seldondeployments", NAMESPACE, "mnist")["spec"]["predictors"][0]["graph"]["modelUri"] == status.model_uri
    by_version = resolve_model_uri(f"models:/{registered}/1", tracking_uri=mlflow_server.url, artifacts_destination=DESTINATION)
    assert by_version == status.model_uri


@pytest.mark.slow
def test_registry_errors_are_clear(mlflow_server: Any, registered: str) -> None:
    with pytest.raises(NotFoundError, match="has no alias 'nope'"):
        resolve_model_uri(f"models:/{registered}@nope", tracking_uri=mlflow_server.url, artifacts_destination=DESTINATION)
    with pytest.raises(NotFoundError, match="no version 7"):
        resolve_model_uri(f"models:/{registered}/7", tracking_uri=mlflow_server.url, artifacts_destination=DESTINATION)
    with pytest.raises(PlatformError, match="SCANFLOW_ARTIFACTS_DESTINATION"):
        resolve_model_uri(f"models:/{registered}@champion", tracking_uri=mlflow_server.url, artifacts_destination=None)


def test_uris_that_need_no_registry_or_cannot_work() -> None:
    assert resolve_model_uri("gs://b/m", tracking_uri=None, artifacts_destination=None) == "gs://b/m"
    with pytest.raises(PlatformError, match="models:/NAME@ALIAS"):
        resolve_model_uri("runs:/abc/model", tracking_uri=None, artifacts_destination=None)
    with pytest.raises(PlatformError, match="MLFLOW_TRACKING_URI"):
        resolve_model_uri("models:/m@champion", tracking_uri=None, artifacts_destination=None)
