"""A real workflow run by the local engine, tracked in a real MLflow server through MlflowHooks."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from scanflow_argo.settings import Settings
from scanflow_argo.tracking.hooks import MlflowHooks

pytestmark = pytest.mark.slow

TRAIN = """
from scanflow_argo.tracking.step import log_metrics
log_metrics({"loss": 0.125})
print("trained with lr {{inputs.parameters.lr}}")
import pathlib
out = pathlib.Path("{{outputs.artifacts.model.path}}")
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text("weights")
"""


@pytest.mark.parametrize("sandbox", ["none", "auto"])
def test_engine_run_becomes_parent_and_nested_runs(mlflow_server, tmp_path: Path, sandbox: str) -> None:
    from mlflow.tracking import MlflowClient

    from scanflow_argo.engine import run_workflow

    settings = Settings.from_env(environ={}).with_home(tmp_path / "home")
    settings = replace(settings, engine=replace(settings.engine, sandbox=sandbox))
    manifest = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "tracked-", "labels": {"team": "ml"}},
        "spec": {
            "entrypoint": "main",
            "templates": [
                {
                    "name": "main",
                    "dag": {
                        "tasks": [
                            {
                                "name": "train",
                                "template": "train",
                                "arguments": {"parameters": [{"name": "lr", "value": "0.01"}]},
                            },
                            {"name": "check", "template": "check", "depends": "train"},
                        ]
                    },
                },
                {
                    "name": "train",
                    "inputs": {"parameters": [{"name": "lr"}]},
                    "outputs": {"artifacts": [{"name": "model", "path": str(tmp_path / "out" / "model.txt")}]},
                    "script": {"image": "python:3.11", "command": ["python"], "source": TRAIN},
                },
                {"name": "check", "container": {"image": "busybox", "command": ["sh", "-c"], "args": ["echo bad; exit 2"]}},
            ],
        },
    }
    experiment = f"engine-{uuid.uuid4().hex[:8]}"
    run = run_workflow(manifest, settings, hooks=MlflowHooks(mlflow_server.url, experiment=experiment))
    assert run.phase == "Failed"

    client = MlflowClient(mlflow_server.url)
    exp_id = client.get_experiment_by_name(experiment).experiment_id
    parent = client.search_runs([exp_id], "tags.`scanflow.role` = 'workflow'")
    assert [p.info.run_name for p in parent] == [run.name]
    assert parent[0].info.status == "FAILED"
    assert parent[0].data.tags["scanflow.label.team"] == "ml"
    nested = {r.info.run_name: r for r in client.search_runs([exp_id], f"tags.`mlflow.parentRunId` = '{parent[0].info.run_id}'")}
    assert set(nested) == {"train", "check"}
    train = nested["train"]
    assert train.info.status == "FINISHED"
    assert train.data.params["lr"] == "0.01"
    assert train.data.metrics["loss"] == 0.125  # logged by the step itself, into its nested run
    assert train.data.params["output.result"] == "trained with lr 0.01"
    assert train.data.tags["scanflow.output_artifacts"] == "model"
    assert train.data.tags["scanflow.artifact.model"].endswith("/model.tgz")  # the engine's artifact key
    assert nested["check"].info.status == "FAILED"
    log = client.download_artifacts(nested["check"].info.run_id, "logs", str(tmp_path / "logs"))
    assert "bad" in "".join(p.read_text() for p in Path(log).iterdir())
