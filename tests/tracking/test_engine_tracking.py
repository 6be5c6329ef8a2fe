"""A real workflow run by the local engine, tracked in a real MLflow server through MlflowHooks."""

from __future__ import annotations

import json
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
    assert train.data.params["input.lr"] == "0.01"
    assert train.data.metrics["loss"] == 0.125  # logged by the step itself, into its nested run
    assert train.data.params["output.result"] == "trained with lr 0.01"
    assert train.data.tags["scanflow.output_artifacts"] == "model"
    assert train.data.tags["scanflow.artifact.model"].endswith("/model.tgz")  # the engine's artifact key
    assert nested["check"].info.status == "FAILED"
    log = client.download_artifacts(nested["check"].info.run_id, "logs", str(tmp_path / "logs"))
    assert "bad" in "".join(p.read_text() for p in Path(log).iterdir())


OWN = """
import mlflow
from scanflow_argo.tracking.step import step_run
with step_run():
    mlflow.log_param("lr", 1.0)  # the step's own param named like its input (logged as input.lr): no clash
    mlflow.log_metric("accuracy", 0.5)
print("only this")
"""


def test_own_logging_never_collides_and_result_is_what_the_step_printed(mlflow_server, tmp_path: Path) -> None:
    """MLflow refuses a param logged twice with another value (``Changing param values is not allowed``), so
    the engine's params live under ``input.``/``output.``/``workflow.``; MLflow prints "View run … at: URL" to
    stdout when a run ends (``_log_url``), which the hooks switch off so ``outputs.result`` is the step's own;
    ``scanflow.io/tracking: "false"`` on a template or on the workflow leaves no MLflow run there."""
    from mlflow.tracking import MlflowClient

    from scanflow_argo.engine import run_workflow

    settings = Settings.from_env(environ={}).with_home(tmp_path / "home")

    def manifest(off_workflow: bool) -> dict:
        quiet = {"annotations": {"scanflow.io/tracking": "false"}}
        return {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"generateName": "own-", **(quiet if off_workflow else {})},
            "spec": {
                "entrypoint": "main",
                "arguments": {"parameters": [{"name": "lr", "value": "0.01"}]},
                "templates": [
                    {
                        "name": "main",
                        "steps": [
                            [{"name": "fit", "template": "fit", "arguments": {"parameters": [{"name": "lr", "value": "0.01"}]}}],
                            [{"name": "quiet", "template": "quiet"}],
                        ],
                    },
                    {
                        "name": "fit",
                        "inputs": {"parameters": [{"name": "lr"}]},
                        "script": {"image": "python:3.11", "command": ["python"], "source": OWN},
                    },
                    {"name": "quiet", "metadata": quiet, "container": {"image": "busybox", "command": ["echo", "untracked"]}},
                ],
            },
        }

    experiment = f"own-{uuid.uuid4().hex[:8]}"
    run = run_workflow(manifest(False), settings, hooks=MlflowHooks(mlflow_server.url, experiment=experiment))
    assert run.phase == "Succeeded", run.message
    assert run.node("fit").outputs["result"] == "only this"

    client = MlflowClient(mlflow_server.url)
    exp_id = client.get_experiment_by_name(experiment).experiment_id
    parent = client.search_runs([exp_id], f"tags.`scanflow.run` = '{run.name}' and tags.`scanflow.role` = 'workflow'")
    assert parent[0].data.params == {"workflow.lr": "0.01"}
    nested = client.search_runs([exp_id], f"tags.`mlflow.parentRunId` = '{parent[0].info.run_id}'")
    assert [r.info.run_name for r in nested] == ["fit"]  # `quiet` opted out
    fit = nested[0].data
    assert fit.params == {"lr": "1.0", "input.lr": "0.01", "output.result": "only this"}
    assert fit.metrics == {"accuracy": 0.5}

    off = run_workflow(manifest(True), settings, hooks=MlflowHooks(mlflow_server.url, experiment=experiment))
    assert off.phase == "Succeeded"
    assert client.search_runs([exp_id], f"tags.`scanflow.run` = '{off.name}'") == []


def test_run_prints_its_mlflow_address_and_the_client_finds_its_runs(
    mlflow_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The workflow's MLflow run carries ``scanflow.run=<run name>``: ``run`` and ``status`` print its page, the
    client reads its id and its steps' nested runs."""
    from scanflow_argo import Client
    from scanflow_argo.cli import main

    experiment = f"client-{uuid.uuid4().hex[:8]}"
    for key, value in {
        "SCANFLOW_HOME": str(tmp_path / "home"),
        "MLFLOW_TRACKING_URI": mlflow_server.url,
        "SCANFLOW_MLFLOW_EXPERIMENT": experiment,
        "SCANFLOW_TRACKING": "1",
    }.items():
        monkeypatch.setenv(key, value)
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {generateName: seen-}\nspec:\n  entrypoint: main\n"
        "  templates:\n  - name: main\n    steps: [[{name: hello, template: say}]]\n"
        "  - {name: say, container: {image: busybox, command: [echo, hi]}}\n"
    )
    assert main(["run", str(flow)]) == 0
    out = capsys.readouterr().out
    run = Client().latest("seen")
    found = run.mlflow
    assert found is not None and set(found.nodes) == {"hello"}
    assert f"MLflow:     {mlflow_server.url}/#/experiments/{found.experiment_id}/runs/{found.run_id}" in out
    assert run.mlflow_run_id == found.run_id
    assert main(["status", run.name, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mlflow"]["nodes"] == {"hello": found.nodes["hello"]}
