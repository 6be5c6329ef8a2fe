"""``scanflow-argo submit|status|wait|scale`` on the local platform, with the syntax of the Kubernetes CLI tests
(tests/kubernetes/test_k8s_cli.py): the real engine runs the workflow, a real seldon-core replica serves the model."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from local_helpers import greet_config, greet_template

from scanflow_argo.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny exported MNIST model, made by the serving tests' helper (one definition of the model directory)."""
    spec = importlib.util.spec_from_file_location("serving_models", ROOT / "tests" / "serving" / "_models.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return Path(module.make_model_dir(tmp_path_factory.mktemp("model") / "m", epochs=1))


@pytest.fixture
def served(local_env: Path, model_dir: Path, tmp_path: Path, serving_python: Path) -> Iterator[str]:
    """A SeldonDeployment ``mnist`` applied with the CLI (one replica); deleted, with its processes, after the test."""
    from scanflow_argo.platform.local import LocalPlatform
    from scanflow_argo.serving.controller import deployment_manifest
    from scanflow_argo.settings import Settings

    path = tmp_path / "mnist.yaml"
    path.write_text(yaml.safe_dump(deployment_manifest("mnist", str(model_dir), 1, "scanflow")))
    try:
        assert main(["apply", str(path)]) == 0
        yield "mnist"
    finally:
        platform = LocalPlatform(Settings.from_env())
        if "mnist" in platform._deployments().list():
            platform.delete_deployment("mnist")


def _predict(endpoint: str) -> httpx.Response:
    body = {"data": {"ndarray": [[[0.0] * 28] * 28]}}
    return httpx.post(f"{endpoint}/api/v1.0/predictions", json=body, timeout=30)


@pytest.mark.slow  # serves real replicas
def test_scale_and_deployment_status(served: str, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["scale", "mnist", "2"]) == 0
    assert "replicas 2/2" in capsys.readouterr().out
    assert main(["status", "--deployment", "mnist", "--json"]) == 0
    dep = json.loads(capsys.readouterr().out)
    assert (dep["replicas"], dep["ready_replicas"], dep["state"]) == (2, 2, "Available")
    assert dep["endpoint"].startswith("http://127.0.0.1:")
    resp = _predict(dep["endpoint"])
    assert resp.status_code == 200, resp.text
    assert len(resp.json()["data"]["ndarray"][0]) == 10

    assert main(["scale", "mnist", "1"]) == 0
    assert "replicas 1/1" in capsys.readouterr().out
    assert main(["status", "--deployment", "mnist"]) == 0
    assert capsys.readouterr().out.startswith("scanflow/mnist  Available  replicas 1/1")


def test_submit_file_then_wait_and_status(
    local_env: Path, project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(project)
    path = project / "greet.yaml"
    path.write_text(yaml.safe_dump_all([greet_config(), greet_template()]))
    assert main(["apply", str(path)]) == 0  # the ConfigMap the step reads
    capsys.readouterr()
    assert main(["submit", str(path), "-p", "epochs=4", "-l", "team=ml"]) == 0
    name = capsys.readouterr().out.strip()

    assert main(["wait", name, "--poll", "0.05", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["phase"] == "Succeeded"
    outputs = result["nodes"]["fit"]["outputs"]
    assert (outputs["accuracy"], outputs["result"]) == ("0.90", "hello world hi http://127.0.0.1:5005")
    assert result["parameters"]["epochs"] == "4"

    assert main(["status", name]) == 0
    out = capsys.readouterr().out
    assert f"{name}  Succeeded" in out and "accuracy=0.90" in out
    assert main(["status", "-l", "team=ml"]) == 0
    assert name in capsys.readouterr().out
    assert main(["status", "-l", "team=other"]) == 0
    assert name not in capsys.readouterr().out


def test_submit_by_name_with_wait_fails_on_a_failed_run(
    local_env: Path, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from scanflow_argo.platform.local import LocalPlatform
    from scanflow_argo.settings import Settings

    doc = greet_template("train")
    doc["spec"]["templates"][1]["script"].update(source="import sys\nsys.exit(3)\n", env=[])
    LocalPlatform(Settings.from_env()).apply_template(doc, project_dir=project)
    assert main(["submit", "train", "-p", "epochs=1", "--wait", "--timeout", "60"]) == 1
    out = capsys.readouterr().out
    assert "  Failed  (" in out
    assert "fit" in out and "exit code 3" in out


def test_errors_are_one_clear_line(local_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scale", "ghost", "2"]) == 1
    assert capsys.readouterr().err.startswith("error: no SeldonDeployment 'ghost' in scanflow")
    assert main(["submit", "ghost"]) == 1
    assert "WorkflowTemplate 'ghost' not found" in capsys.readouterr().err
    assert main(["wait", "ghost"]) == 1
    assert "no run named 'ghost'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["submit", "train", "-p", "no-equals-sign"])
