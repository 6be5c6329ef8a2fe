"""Serving a registered model: models:/NAME@champion resolved through a real MLflow server, then rolled to a new version."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from scanflow_argo.errors import NotFoundError
from scanflow_argo.serving.controller import LocalDeployments, deployment_manifest
from scanflow_argo.settings import Settings

from .conftest import predict_body, probs

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def test_serve_a_registered_champion_then_roll_to_a_version(
    mlflow_server, model_v1: Path, model_v2: Path, tmp_path: Path, serving_python: Path
) -> None:
    from scanflow_argo.tracking import registry

    name = f"mnist-{uuid.uuid4().hex[:8]}"
    first = registry.register_model(model_v1, name, tracking_uri=mlflow_server.url)
    registry.set_alias(name, registry.CHAMPION, first.version, tracking_uri=mlflow_server.url)
    second = registry.register_model(model_v2, name, tracking_uri=mlflow_server.url)
    settings = Settings.from_env(environ={}).with_home(tmp_path / "home")
    settings = replace(
        settings,
        tracking=replace(settings.tracking, uri=mlflow_server.url),
        serving=replace(settings.serving, venv=ROOT / ".venv-serving", start_timeout=120.0),
    )
    deployments = LocalDeployments(settings)
    with pytest.raises(NotFoundError, match="no alias 'nope'"):
        deployments.apply(deployment_manifest("reg", f"models:/{name}@nope", 1))
    try:
        status = deployments.apply(deployment_manifest("reg", f"models:/{name}@champion", 1))
        assert (status.state, status.model_uri) == ("Available", f"models:/{name}@champion")
        assert (tmp_path / "home" / "models" / "reg" / f"{name}-{first.version}").is_dir()
        resp = httpx.post(
            f"{status.endpoint}/api/v1.0/predictions", content=predict_body(0, 3), headers={"Content-Type": "application/json"}
        )
        assert probs(resp).shape == (3, 10)
        rolled = deployments.roll("reg", second.uri)
        assert (rolled.model_uri, rolled.ready_replicas) == (second.uri, 1)
    finally:
        deployments.delete("reg")
