"""Clear errors before anything starts (unknown model, port in use, no serving venv, bad manifest) and the CLI."""

from __future__ import annotations

import json
import socket
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from scanflow_argo import _proc
from scanflow_argo.cli import main
from scanflow_argo.errors import NotFoundError, ServingError, SetupError, SpecError, TrackingError
from scanflow_argo.serving.controller import LocalDeployments, deployment_manifest, parse_manifest
from scanflow_argo.settings import Settings

from .conftest import predict_body, probs

ROOT = Path(__file__).resolve().parents[2]


def _nothing_started(home: Path) -> bool:
    return not list((home / "deployments").glob("*/supervisor.json")) if (home / "deployments").exists() else True


def test_an_unknown_model_fails_before_anything_starts(settings: Settings, tmp_path: Path) -> None:
    deployments = LocalDeployments(settings)
    with pytest.raises(NotFoundError, match="not found"):
        deployments.apply(deployment_manifest("ghost", str(tmp_path / "nowhere"), 1))
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotFoundError, match=r"needs model\.pt and meta\.json"):
        deployments.apply(deployment_manifest("ghost", f"file://{tmp_path / 'empty'}", 1))
    with pytest.raises(ServingError, match="cannot be served locally"):
        deployments.apply(deployment_manifest("ghost", "s3://bucket/model", 1))
    unreachable = replace(settings, tracking=replace(settings.tracking, uri=f"http://127.0.0.1:{_proc.free_port()}"))
    with pytest.raises(TrackingError, match="unreachable"):
        LocalDeployments(unreachable).apply(deployment_manifest("ghost", "models:/mnist@champion", 1))
    assert _nothing_started(Path(settings.home))
    with pytest.raises(NotFoundError, match="ghost"):
        deployments.scale("ghost", 2)


def test_a_port_in_use_and_a_missing_serving_venv_are_named(settings: Settings, model_v1: Path, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        taken = replace(settings, serving=replace(settings.serving, router_port=port, venv=ROOT / ".venv-serving"))
        with pytest.raises(SetupError, match=f"port {port}"):
            LocalDeployments(taken).apply(deployment_manifest("busy", str(model_v1), 1))
        assert not (Path(settings.home) / "deployments" / "busy").exists()
    novenv = replace(settings, serving=replace(settings.serving, venv=tmp_path / "no-venv"))
    with pytest.raises(SetupError, match="serving environment is missing"):
        LocalDeployments(novenv).apply(deployment_manifest("novenv", str(model_v1), 1))
    assert _nothing_started(Path(settings.home))


@pytest.mark.slow
def test_a_model_that_does_not_load_fails_apply_with_the_replicas_reason(
    tmp_path: Path, model_v1: Path, serving_python: Path
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "meta.json").write_text((model_v1 / "meta.json").read_text())
    (broken / "model.pt").write_text("not a model")
    settings = Settings.from_env(environ={}).with_home(tmp_path / "home")
    settings = replace(settings, serving=replace(settings.serving, venv=ROOT / ".venv-serving"))
    deployments = LocalDeployments(settings)
    try:
        with pytest.raises(ServingError, match=r"ModelLoadError: .*model\.pt is not a torch archive"):
            deployments.apply(deployment_manifest("broken", str(broken), 1))
        assert deployments.get("broken").ready_replicas == 0
    finally:
        deployments.delete("broken")


def test_manifest_errors_name_the_field() -> None:
    good = deployment_manifest("m", "/models/x", 2)
    spec = parse_manifest(good)
    assert (spec.name, spec.predictor, spec.model_name, spec.replicas) == ("m", "default", "classifier", 2)
    component = json.loads(json.dumps(good))
    env = [
        {"name": "MODEL_NAME", "value": "scanflow_argo.serving.model.TorchClassifier"},
        {"name": "MODEL_DIR", "value": "/mnt/models"},
        {"name": "TORCH_THREADS", "value": "2"},
        {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "secret"}}},
    ]
    component["spec"]["predictors"][0]["componentSpecs"] = [
        {"spec": {"containers": [{"name": "classifier", "env": env}]}, "replicas": 3}
    ]
    component["spec"]["predictors"][0]["graph"]["children"] = []  # as the compiler writes it
    parsed = parse_manifest(component)
    assert (parsed.replicas, parsed.model_class, dict(parsed.env)) == (
        3,
        "scanflow_argo.serving.model.TorchClassifier",
        {"TORCH_THREADS": "2"},
    )
    for mutate, message in [
        (lambda m: m.update(kind="Deployment"), "SeldonDeployment"),
        (lambda m: m["metadata"].update(name="Bad_Name"), "metadata.name"),
        (lambda m: m["spec"]["predictors"][0]["graph"].pop("modelUri"), "modelUri"),
        (lambda m: m["spec"]["predictors"].append({}), r"predictors\[1\].name is missing"),
        (lambda m: m["spec"]["predictors"][0].update(replicas=-1), "replicas"),
        (lambda m: m["spec"]["predictors"][0]["graph"].update(children=[{"name": "x"}]), "children"),
    ]:
        bad = json.loads(json.dumps(good))
        mutate(bad)
        with pytest.raises(SpecError, match=message):
            parse_manifest(bad)


@pytest.mark.slow
def test_cli_serve_then_unserve(tmp_path: Path, model_v1: Path, serving_python: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = str(tmp_path / "home")
    assert main(["--home", home, "serve", str(model_v1), "--replicas", "1", "--name", "cli-model"]) == 0
    out = capsys.readouterr().out
    assert "cli-model: 1/1 replicas ready" in out
    endpoint = out.split("POST ", 1)[1].split("/api/v1.0/predictions", 1)[0]
    try:
        resp = httpx.post(
            f"{endpoint}/api/v1.0/predictions", content=predict_body(0, 2), headers={"Content-Type": "application/json"}
        )
        assert probs(resp).shape == (2, 10)
    finally:
        assert main(["--home", home, "unserve", "cli-model"]) == 0
    assert "cli-model: stopped" in capsys.readouterr().out
    assert not _proc.port_in_use(int(endpoint.rsplit(":", 1)[1]))


def test_cli_errors_are_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = str(tmp_path / "home")
    assert main(["--home", home, "serve", str(tmp_path / "missing-model")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: model") and "not found" in err
    assert main(["--home", home, "unserve", "nothing"]) == 1
    assert "no SeldonDeployment 'nothing'" in capsys.readouterr().err
