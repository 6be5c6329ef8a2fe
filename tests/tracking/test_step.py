"""Step helpers in real step processes: local (engine hooks' run), cluster (find-or-create by uid), untracked."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from scanflow_argo.tracking.hooks import MlflowHooks

pytestmark = pytest.mark.slow

REST_STEP = """
import sys
from scanflow_argo.tracking.step import log_artifact, log_metrics, log_params, current_run_id
log_params({"batch_size": 64})
log_metrics({"loss": 0.25, "skipped": "not-a-number"}, step=3)
log_artifact(sys.argv[1], "reports")
print(current_run_id())
print("mlflow imported:", "mlflow" in sys.modules)
"""

MLFLOW_STEP = """
import mlflow
from scanflow_argo.tracking.step import step_run
with step_run() as run:
    mlflow.log_metric("accuracy", float(sys.argv[1]))
    print(run.info.run_id)
"""


def run_step(code: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SCANFLOW_"))}
    return subprocess.run(
        [sys.executable, "-c", "import sys\n" + code, *args], env={**clean, **env}, capture_output=True, text=True, timeout=120
    )


def test_local_step_logs_to_the_hooks_run_without_importing_mlflow(mlflow_server, tmp_path) -> None:
    from mlflow.tracking import MlflowClient

    hooks = MlflowHooks(mlflow_server.url, experiment=f"step-{uuid.uuid4().hex[:8]}")
    hooks.workflow_started("wf", {"metadata": {"name": "wf"}})
    env = hooks.node_started("wf", "n1", {"type": "Pod", "displayName": "train"})
    report = tmp_path / "confusion.txt"
    report.write_text("0 1\n1 0\n")
    done = run_step(REST_STEP, env, str(report))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split("\n")
    assert lines[0] == env["MLFLOW_RUN_ID"]
    assert lines[1] == "mlflow imported: False"
    client = MlflowClient(mlflow_server.url)
    data = client.get_run(env["MLFLOW_RUN_ID"]).data
    assert data.params == {"batch_size": "64"}
    assert data.metrics == {"loss": 0.25}
    assert client.get_metric_history(env["MLFLOW_RUN_ID"], "loss")[0].step == 3
    assert [a.path for a in client.list_artifacts(env["MLFLOW_RUN_ID"], "reports")] == ["reports/confusion.txt"]


def test_cluster_steps_share_one_parent_found_by_workflow_uid(mlflow_server) -> None:
    from mlflow.tracking import MlflowClient

    exp = f"cluster-{uuid.uuid4().hex[:8]}"
    uid = str(uuid.uuid4())
    env = {
        "MLFLOW_TRACKING_URI": mlflow_server.url,
        "MLFLOW_EXPERIMENT_NAME": exp,
        "SCANFLOW_WORKFLOW_UID": uid,
        "SCANFLOW_WORKFLOW_NAME": "train-x1",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", "import sys\n" + MLFLOW_STEP, acc],
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SCANFLOW_"))},
                **env,
                "SCANFLOW_STEP_NAME": f"step-{i}",
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, acc in enumerate(["0.5", "0.7"])
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    client = MlflowClient(mlflow_server.url)
    exp_id = client.get_experiment_by_name(exp).experiment_id
    parents = client.search_runs([exp_id], f"tags.`scanflow.workflow_uid` = '{uid}' and tags.`scanflow.role` = 'workflow'")
    assert len(parents) == 1
    assert parents[0].info.run_name == "train-x1"
    children = client.search_runs([exp_id], f"tags.`mlflow.parentRunId` = '{parents[0].info.run_id}'")
    assert sorted(r.info.run_name for r in children) == ["step-0", "step-1"]
    assert sorted(r.data.metrics["accuracy"] for r in children) == [0.5, 0.7]
    assert {r.info.status for r in children} == {"FINISHED"}

    # The exit handler ends the parent run with the workflow's status.
    done = run_step("from scanflow_argo.tracking.step import _main; sys.exit(_main(sys.argv[1:]))", env, "end", "Failed")
    assert done.returncode == 0, done.stderr
    assert parents[0].info.run_id in done.stdout
    assert client.get_run(parents[0].info.run_id).info.status == "FAILED"


def test_untracked_step_does_nothing_and_imports_nothing() -> None:
    code = """
from scanflow_argo.tracking.step import log_metrics, step_run
log_metrics({"x": 1})
with step_run() as run:
    print(run)
print("mlflow imported:", "mlflow" in sys.modules)
"""
    done = run_step(code, {})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["None", "mlflow", "imported:", "False"]
