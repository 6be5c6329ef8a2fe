"""Engine hooks against a real MLflow server: parent run per workflow, nested run per pod node."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest

from scanflow_argo import _proc
from scanflow_argo.engine.features.run_hooks import RunHooks
from scanflow_argo.tracking.hooks import MlflowHooks, mlflow_status

pytestmark = pytest.mark.slow


def _workflow(run: str) -> dict:
    return {
        "metadata": {"name": run, "uid": f"uid-{run}", "labels": {"app": "mnist"}},
        "spec": {"workflowTemplateRef": {"name": "train"}, "arguments": {"parameters": [{"name": "epochs", "value": "3"}]}},
    }


def _node(name: str, phase: str = "Running", **extra: object) -> dict:
    return {"type": "Pod", "displayName": name, "name": f"wf.{name}", "templateName": name, "phase": phase, **extra}


def test_parent_and_nested_runs_with_params_outputs_and_log(mlflow_server, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    exp = f"hooks-{uuid.uuid4().hex[:8]}"
    run = f"train-{uuid.uuid4().hex[:6]}"
    hooks = MlflowHooks(mlflow_server.url, experiment=exp)
    assert isinstance(hooks, RunHooks)
    env = hooks.workflow_started(run, _workflow(run))
    assert env["MLFLOW_TRACKING_URI"] == mlflow_server.url
    parent_id = env["SCANFLOW_PARENT_RUN_ID"]

    inputs = {"parameters": [{"name": "lr", "value": "0.01"}, {"name": "data", "value": "mnist"}]}
    assert hooks.node_started(run, "n-dag", {"type": "DAG", "displayName": run}) == {}
    node_env = hooks.node_started(run, "n-train", _node("train", inputs=inputs))
    assert node_env["SCANFLOW_PARENT_RUN_ID"] == parent_id
    assert node_env["MLFLOW_EXPERIMENT_ID"] == env["MLFLOW_EXPERIMENT_ID"]
    nested_id = node_env["MLFLOW_RUN_ID"]
    log_file = tmp_path / "main.log"
    log_file.write_text("epoch 1 loss 0.5\nepoch 2 loss 0.2\n")
    outputs = {
        "parameters": [{"name": "accuracy", "value": "0.97"}, {"name": "model-uri", "value": "models:/mnist/1"}],
        "exitCode": "0",
        "artifacts": [
            {"name": "model", "path": "/tmp/model", "local": {"key": f"{run}/n-train/model.tgz", "archived": True}},
            {"name": "report", "path": "/tmp/report.txt", "s3": {"bucket": "ml", "key": "runs/report.txt"}},
        ],
    }
    hooks.node_finished(run, "n-train", _node("train", "Succeeded", inputs=inputs, outputs=outputs), log_file)

    bad_env = hooks.node_started(run, "n-eval", _node("evaluate"))
    hooks.node_finished(run, "n-eval", _node("evaluate", "Failed", message="exit code 1"), None)
    hooks.workflow_finished(run, {"metadata": {"name": run}, "status": {"phase": "Failed"}})

    client = MlflowClient(mlflow_server.url)
    parent = client.get_run(parent_id)
    assert parent.info.run_name == run
    assert parent.info.status == "FAILED"
    assert parent.data.tags["scanflow.run"] == run
    assert parent.data.tags["scanflow.workflow"] == "train"
    assert parent.data.tags["scanflow.label.app"] == "mnist"
    assert parent.data.tags["scanflow.workflow_uid"] == f"uid-{run}"
    assert parent.data.params == {"workflow.epochs": "3"}

    nested = client.get_run(nested_id)
    assert nested.info.run_name == "train"
    assert nested.info.status == "FINISHED"
    assert nested.data.tags["mlflow.parentRunId"] == parent_id
    assert nested.data.params["input.lr"] == "0.01"
    assert nested.data.params["output.accuracy"] == "0.97"
    assert nested.data.params["output.model-uri"] == "models:/mnist/1"
    assert nested.data.metrics == {"output.accuracy": 0.97}
    assert nested.data.tags["scanflow.output_artifacts"] == "model,report"
    assert nested.data.tags["scanflow.artifact.model"] == f"{run}/n-train/model.tgz"
    assert nested.data.tags["scanflow.artifact.report"] == "s3://ml/runs/report.txt"
    # Output artifacts are referenced, never uploaded: the log is the only file of the run.
    assert [a.path for a in client.list_artifacts(nested_id)] == ["logs"]
    assert [a.path for a in client.list_artifacts(nested_id, "logs")] == ["logs/main.log"]
    local = client.download_artifacts(nested_id, "logs/main.log", str(tmp_path / "dl"))
    assert Path(local).read_text() == log_file.read_text()

    failed = client.get_run(bad_env["MLFLOW_RUN_ID"])
    assert failed.info.status == "FAILED"
    children = client.search_runs([env["MLFLOW_EXPERIMENT_ID"]], f"tags.`mlflow.parentRunId` = '{parent_id}'")
    assert sorted(r.info.run_name for r in children) == ["evaluate", "train"]


def test_resumed_workflow_continues_the_same_runs(mlflow_server) -> None:
    from mlflow.tracking import MlflowClient

    exp, run = f"resume-{uuid.uuid4().hex[:8]}", "resume-run"
    first = MlflowHooks(mlflow_server.url, experiment=exp)
    env = first.workflow_started(run, _workflow(run))
    node_env = first.node_started(run, "n1", _node("step"))
    # The engine process dies; a new one resumes the run with fresh hooks.
    second = MlflowHooks(mlflow_server.url, experiment=exp)
    assert second.workflow_started(run, _workflow(run))["SCANFLOW_PARENT_RUN_ID"] == env["SCANFLOW_PARENT_RUN_ID"]
    second.node_finished(run, "n1", _node("step", "Succeeded"), None)
    second.workflow_finished(run, {"status": {"phase": "Succeeded"}})
    client = MlflowClient(mlflow_server.url)
    assert client.get_run(node_env["MLFLOW_RUN_ID"]).info.status == "FINISHED"
    assert client.get_run(env["SCANFLOW_PARENT_RUN_ID"]).info.status == "FINISHED"
    assert len(client.search_runs([env["MLFLOW_EXPERIMENT_ID"]], "")) == 2


def test_unreachable_server_never_fails_the_workflow(caplog: pytest.LogCaptureFixture) -> None:
    hooks = MlflowHooks(f"http://127.0.0.1:{_proc.free_port()}", timeout=2)
    with caplog.at_level(logging.WARNING, logger="scanflow_argo.tracking.hooks"):
        assert hooks.workflow_started("r", _workflow("r")) == {}
        assert hooks.node_started("r", "n", _node("a")) == {}
        hooks.node_finished("r", "n", _node("a", "Succeeded"), None)
        hooks.workflow_finished("r", {"status": {"phase": "Succeeded"}})
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "unreachable" in warnings[0].getMessage()
    assert "scanflow-argo mlflow up" in warnings[0].getMessage()


@pytest.mark.parametrize(
    ("phase", "message", "shutdown", "expected"),
    [
        ("Succeeded", None, None, "FINISHED"),
        ("Failed", "exit code 1", None, "FAILED"),
        ("Error", "pod deleted", None, "FAILED"),
        ("Failed", "Stopped with strategy 'Terminate'", None, "KILLED"),
        ("Failed", None, "Stop", "KILLED"),
        ("Running", None, None, "KILLED"),
    ],
)
def test_status_mapping(phase: str, message: str | None, shutdown: str | None, expected: str) -> None:
    assert mlflow_status(phase, message, shutdown) == expected
