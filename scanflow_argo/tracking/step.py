"""Tracking from inside a workflow step: find this step's MLflow run and log to it.

Which run: ``MLFLOW_RUN_ID`` when set (the local engine's hooks created the nested run); otherwise,
on the cluster, the workflow's parent run is found — or created — by the tag
``scanflow.workflow_uid`` (from ``SCANFLOW_WORKFLOW_UID``, injected by the compiler) and a nested run
is created for this step. Without ``MLFLOW_TRACKING_URI`` the step is untracked: the helpers do nothing.

``log_metrics``/``log_params``/``log_artifact`` use the REST API (no ``import mlflow``, which costs
seconds); ``step_run()`` imports mlflow and yields an active MLflow run, for code that uses mlflow's
own API (autolog, ``mlflow.log_figure`` …).

On the cluster nothing else ends the workflow's parent run: an exit handler does, with
``python -m scanflow_argo.tracking.step end "{{workflow.status}}"`` (``end_workflow_run``).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ._rest import MlflowRest, filter_value, number
from .hooks import mlflow_status

__all__ = ["current_run_id", "end_workflow_run", "log_artifact", "log_metrics", "log_params", "step_run"]

_clients: dict[str, MlflowRest] = {}


def _client(uri: str) -> MlflowRest:
    if uri not in _clients:
        _clients[uri] = MlflowRest(uri)
    return _clients[uri]


def current_run_id(name: str | None = None, environ: dict[str, str] | None = None) -> str | None:
    """This step's run id, creating the cluster-side runs on first use; None when untracked.

    The id is remembered in ``environ`` (default ``os.environ``) as ``MLFLOW_RUN_ID``, so later calls,
    ``step_run()`` and subprocesses all log to the same run.
    """
    env: Any = os.environ if environ is None else environ
    uri = env.get("MLFLOW_TRACKING_URI")
    if not uri:
        return None
    if env.get("MLFLOW_RUN_ID"):
        return str(env["MLFLOW_RUN_ID"])
    uid = env.get("SCANFLOW_WORKFLOW_UID")
    if not uid:
        return None  # a tracking server but no workflow: nothing to attach to
    client = _client(uri)
    exp_id = env.get("MLFLOW_EXPERIMENT_ID") or client.experiment_id(env.get("MLFLOW_EXPERIMENT_NAME") or "scanflow")
    assert exp_id is not None
    parent = _parent_run(client, exp_id, uid, env.get("SCANFLOW_WORKFLOW_NAME") or uid)
    step = name or env.get("SCANFLOW_STEP_NAME") or socket.gethostname()
    tags = {
        "mlflow.parentRunId": parent,
        "scanflow.role": "node",
        "scanflow.workflow_uid": uid,
        "scanflow.node_id": socket.gethostname(),
    }
    run_id = str(client.create_run(exp_id, step, tags)["run_id"])
    env.update({"MLFLOW_RUN_ID": run_id, "SCANFLOW_PARENT_RUN_ID": parent, "MLFLOW_EXPERIMENT_ID": exp_id})
    return run_id


def _parent_run(client: MlflowRest, exp_id: str, uid: str, name: str) -> str:
    """Find or create the workflow's run; parallel steps racing to create it settle on the oldest."""
    query = f"tags.`scanflow.workflow_uid` = {filter_value(uid)} and tags.`scanflow.role` = 'workflow'"
    order = ["attributes.start_time ASC"]
    found = client.search_runs([exp_id], query, max_results=1, order_by=order)
    if found:
        return str(found[0]["info"]["run_id"])
    tags = {"scanflow.workflow_uid": uid, "scanflow.role": "workflow", "scanflow.run": name}
    mine = str(client.create_run(exp_id, name, tags)["run_id"])
    winners = client.search_runs([exp_id], query, max_results=1, order_by=order)
    winner = str(winners[0]["info"]["run_id"]) if winners else mine
    if winner != mine:
        client.delete_run(mine)
    return winner


def log_metrics(metrics: Mapping[str, float], step: int = 0) -> None:
    """Log numeric ``metrics`` to this step's run (no-op when untracked)."""
    run_id = current_run_id()
    if run_id is None:
        return
    values = {k: v for k, v in ((k, number(v)) for k, v in metrics.items()) if v is not None}
    _client(os.environ["MLFLOW_TRACKING_URI"]).log_batch(run_id, metrics=values, step=step)


def log_params(params: Mapping[str, Any]) -> None:
    """Log ``params`` (stringified) to this step's run (no-op when untracked)."""
    run_id = current_run_id()
    if run_id is None:
        return
    _client(os.environ["MLFLOW_TRACKING_URI"]).log_batch(run_id, params={k: str(v) for k, v in params.items()})


def log_artifact(path: str | Path, artifact_path: str | None = None) -> None:
    """Upload one file to this step's run, under ``artifact_path`` (no-op when untracked)."""
    run_id = current_run_id()
    if run_id is None:
        return
    client = _client(os.environ["MLFLOW_TRACKING_URI"])
    info = client.get_run(run_id)["info"]
    source = Path(path)
    rel = f"{artifact_path.strip('/')}/{source.name}" if artifact_path else source.name
    client.upload_artifact(info["artifact_uri"], rel, source)


@contextlib.contextmanager
def step_run(name: str | None = None) -> Iterator[Any]:
    """The active MLflow run of this step (``mlflow.ActiveRun``), or None when the step is untracked.

    On leaving the block mlflow ends the run (FINISHED, or FAILED when the block raises); locally the
    engine's hooks then set the node's final status, which may differ (e.g. a failing exit code).
    """
    run_id = current_run_id(name)
    if run_id is None:
        yield None
        return
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # the step's stdout is its `result`
    import mlflow  # seconds to import: only a step that tracks pays for it

    with mlflow.start_run(run_id=run_id) as active:
        yield active


def end_workflow_run(phase: str, environ: dict[str, str] | None = None) -> str | None:
    """End the cluster workflow's parent run with the status for Argo ``phase``; returns its id (None: untracked)."""
    env: Any = os.environ if environ is None else environ
    uri, uid = env.get("MLFLOW_TRACKING_URI"), env.get("SCANFLOW_WORKFLOW_UID")
    if not (uri and uid):
        return None
    client = _client(uri)
    exp_id = env.get("MLFLOW_EXPERIMENT_ID") or client.experiment_id(env.get("MLFLOW_EXPERIMENT_NAME") or "scanflow")
    assert exp_id is not None
    parent = _parent_run(client, exp_id, uid, env.get("SCANFLOW_WORKFLOW_NAME") or uid)
    client.log_batch(parent, tags={"scanflow.phase": phase})
    client.end_run(parent, mlflow_status(phase))
    return parent


def _main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "end":
        print("usage: python -m scanflow_argo.tracking.step end PHASE   (in an exit handler: {{workflow.status}})")
        return 2
    run_id = end_workflow_run(argv[1])
    print(f"ended MLflow run {run_id}" if run_id else "untracked: MLFLOW_TRACKING_URI or SCANFLOW_WORKFLOW_UID is unset")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(_main(sys.argv[1:]))
