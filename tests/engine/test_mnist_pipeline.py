"""The MNIST training pipeline end to end through ``scanflow-argo run pipelines.mnist:app`` (issue 3's done-when).

Real everything: the compiler, the engine with its sandbox, step processes that train with torch,
and a real MLflow server (the session's ``mlflow_server``) that records the run and registers the model.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from scanflow_argo.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_mnist_train_runs_end_to_end_and_registers_a_champion(mlflow_server, tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from scanflow_argo.tracking import registry
    from scanflow_argo.tracking._rest import MlflowRest

    suffix = uuid.uuid4().hex[:8]
    model, deployment, experiment = f"mnist-{suffix}", f"mnist-{suffix}", f"engine-mnist-{suffix}"
    monkeypatch.chdir(ROOT)  # as a user runs it: from the project root, so pipelines.* imports
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    monkeypatch.setenv("SCANFLOW_MLFLOW_EXPERIMENT", experiment)
    monkeypatch.delenv("SCANFLOW_TRACKING", raising=False)
    home = tmp_path / "home"
    argv = ["--home", str(home), "run", "pipelines.mnist:app", "--workflow", "mnist-train", "--output", "json"]
    argv += ["-p", "epochs=1", "-p", f"model_name={model}", "-p", f"deployment={deployment}"]
    code = cli_main(argv)
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    nodes = {n["displayName"]: n for n in doc["status"]["nodes"].values()}
    failed = {k: n.get("message") for k, n in nodes.items() if n.get("phase") != "Succeeded"}
    assert code == 0 and doc["status"]["phase"] == "Succeeded", (failed, captured.err[-2000:])
    assert f"tracking in MLflow at {mlflow_server.url} (experiment {experiment!r})" in captured.err

    outputs = {p["name"]: p["value"] for p in nodes["register(0)"]["outputs"]["parameters"]}
    champion = registry.get_alias(model, registry.CHAMPION, tracking_uri=mlflow_server.url)
    assert champion is not None and str(champion.version) == outputs["version"] and champion.uri == outputs["uri"]
    promoted = {p["name"]: p["value"] for p in nodes["promote(0)"]["outputs"]["parameters"]}
    assert promoted == {"promoted": "true", "champion": outputs["version"]}

    # Nothing serves the model yet locally: the deploy step says so and succeeds (serve it to start it).
    run = doc["metadata"]["name"]
    deploy_log = (home / "runs" / run / "nodes" / nodes["deploy(0)"]["id"] / "main.log").read_text()
    assert f"{deployment} is not deployed yet: nothing to roll" in deploy_log
    assert not (home / "deployments" / deployment).exists()
    assert "SeldonDeployment 'mnist' is not served on this machine" in captured.err
    assert "scanflow-argo serve models:/mnist@champion --name mnist" in captured.err

    rest = MlflowRest(mlflow_server.url)
    try:
        exp = rest.experiment_id(experiment, create=False)
        parents = rest.search_runs([exp], f"tags.`scanflow.run` = '{run}' and tags.`scanflow.role` = 'workflow'")
        assert len(parents) == 1 and parents[0]["info"]["status"] == "FINISHED"
    finally:
        rest.close()
