"""Find the MLflow runs of a workflow run, and their addresses in MLflow's UI.

Every workflow run is one MLflow run tagged ``scanflow.run=<run name>`` and ``scanflow.role=workflow`` (by
the local engine's hooks, ``tracking.hooks``, and on a cluster by the first step that tracks,
``tracking.step``); each pod node that ran is a nested run (tag ``mlflow.parentRunId``) named after the
node's display name. ``find_workflow_runs`` reads them back with two searches; ``run_url`` is the address
MLflow's own "View run" link uses (``mlflow/tracking/_tracking_service/client.py`` ``_log_url``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import TrackingError
from ._rest import MlflowRest, filter_value

__all__ = ["WorkflowRuns", "find_workflow_runs", "run_url", "safe_find"]

_ATTEMPT = re.compile(r"^(.*)\((\d+)\)$")
"""A retry attempt's display name: ``train(0)``, ``fit(1:1.0)(2)`` (Argo names attempts ``<node>(<n>)``)."""


def run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """``http://host:port/#/experiments/<id>/runs/<run>``: the run's page in MLflow's UI."""
    return f"{tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


@dataclass(frozen=True)
class WorkflowRuns:
    """The MLflow runs of one workflow run."""

    tracking_uri: str
    experiment_id: str
    run_id: str
    """The workflow's own run (params: the workflow's arguments)."""
    nodes: Mapping[str, str] = field(default_factory=dict)
    """Node display name → its nested run's id (steps that ran; a retried step also by its own name: its last attempt)."""

    @property
    def url(self) -> str:
        return run_url(self.tracking_uri, self.experiment_id, self.run_id)

    def node_url(self, node: str) -> str:
        return run_url(self.tracking_uri, self.experiment_id, self.nodes[node])


def find_workflow_runs(client: MlflowRest, run: str, experiment: str = "scanflow") -> WorkflowRuns | None:
    """The MLflow runs of workflow run ``run`` in ``experiment`` (None when it was not tracked there)."""
    exp_id = client.experiment_id(experiment, create=False)
    if exp_id is None:
        return None
    found = client.search_runs(
        [exp_id],
        f"tags.`scanflow.run` = {filter_value(run)} and tags.`scanflow.role` = 'workflow'",
        max_results=1,
        order_by=["attributes.start_time ASC"],
    )
    if not found:
        return None
    parent = str(found[0]["info"]["run_id"])
    nodes: dict[str, str] = {}
    children = client.search_runs(
        [exp_id], f"tags.`mlflow.parentRunId` = {filter_value(parent)}", max_results=1000, order_by=["attributes.start_time ASC"]
    )
    for item in children:
        info = item.get("info") or {}
        name = info.get("run_name") or next(
            (t.get("value") for t in (item.get("data") or {}).get("tags") or [] if t.get("key") == "mlflow.runName"), None
        )
        if name:
            nodes[str(name)] = str(info["run_id"])
            attempt = _ATTEMPT.match(str(name))
            if attempt:  # `fit(1)`, a retried step's attempt, also answers to `fit`: the later attempt wins
                nodes[attempt.group(1)] = str(info["run_id"])
    return WorkflowRuns(client.uri, exp_id, parent, nodes)


def safe_find(tracking_uri: str, run: str, experiment: str = "scanflow", timeout: float = 5.0) -> WorkflowRuns | None:
    """``find_workflow_runs`` against ``tracking_uri`` that never raises: None when the server is away."""
    try:
        client = MlflowRest(tracking_uri, timeout=timeout)
    except TrackingError:
        return None
    try:
        return find_workflow_runs(client, run, experiment)
    except TrackingError:
        return None
    finally:
        client.close()
