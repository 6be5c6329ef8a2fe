"""Engine hooks that record every workflow run in MLflow: one run per workflow, one nested run per pod node.

Implements the engine's ``RunHooks`` protocol (``scanflow_argo/engine/features/run_hooks.py``) over MLflow's REST
API — the engine never imports mlflow. What is logged automatically never collides with what a step logs
itself (MLflow refuses a param logged twice with another value): everything sits under its own prefix.

- the workflow's run: params ``workflow.<name>`` (its arguments); tags ``scanflow.run`` (the run's name:
  how to find it), ``scanflow.role=workflow``, ``scanflow.workflow``, ``scanflow.workflow_uid``,
  ``scanflow.namespace``, ``scanflow.label.<key>``, ``scanflow.phase`` at the end;
- each pod node's nested run (named after the node, tag ``mlflow.parentRunId``): params ``input.<name>``
  (its input parameters) and ``output.<name>`` (output parameters and ``result``, what it printed), metrics
  ``output.<name>`` for the numeric ones, tags ``scanflow.run``, ``scanflow.role=node``, ``scanflow.node_id``,
  ``scanflow.template``, ``scanflow.phase``, ``scanflow.exit_code``, ``scanflow.message``,
  ``scanflow.output_artifacts`` (names) and ``scanflow.artifact.<name>`` (where each is stored: a reference,
  no file is uploaded), the node's log as the artifact ``logs/<file>``; it ends FINISHED, FAILED or KILLED.

Each node's environment gets ``MLFLOW_TRACKING_URI``, ``MLFLOW_EXPERIMENT_ID``, ``MLFLOW_RUN_ID`` (its
nested run), ``SCANFLOW_PARENT_RUN_ID`` and ``MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT=true`` (MLflow prints
"View run … at: URL" to stdout when a run ends, which would land in ``outputs.result``), so a step that
tracks logs into its own nested run and its ``result`` is exactly what its code printed.

Turned off with the annotation ``scanflow.io/tracking: "false"`` on the workflow (no MLflow run at all)
or on a template's ``metadata.annotations`` (no nested run for its nodes; they keep the tracking
variables for their own use); ``SCANFLOW_TRACKING=0`` turns it off for every run of this machine.

Tracking never fails a workflow: errors are logged as warnings. An unreachable server is warned about
once and tracking stops for the rest of this hooks object's life (one timeout, not one per node).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ScanflowError
from ..spec.workflow import TRACKING_ANNOTATION
from ._rest import MlflowRest, filter_value, number

__all__ = ["QUIET_ENV", "RUN_TAG", "TRACKING_ANNOTATION", "MlflowHooks", "mlflow_status", "tracking_off"]

log = logging.getLogger(__name__)

ROLE_TAG = "scanflow.role"
RUN_TAG = "scanflow.run"
QUIET_ENV = {"MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}
"""MLflow's own switch for its "View run … at: URL" lines (``_log_url``): off, so stdout is the step's."""


def mlflow_status(phase: str | None, message: str | None = None, shutdown: str | None = None) -> str:
    """MLflow run status for an Argo phase: FINISHED, FAILED, KILLED (stopped/terminated), or RUNNING."""
    if phase == "Succeeded":
        return "FINISHED"
    if phase in ("Failed", "Error"):
        text = (message or "").lower()
        if shutdown or "terminated" in text or "stopped" in text or "shutdown" in text:
            return "KILLED"
        return "FAILED"
    if phase in ("Skipped", "Omitted"):
        return "KILLED"
    return "KILLED"  # still Pending/Running when the workflow ended: it was cut short


class MlflowHooks:
    """``RunHooks`` that write runs to the MLflow server at ``tracking_uri`` (REST, no mlflow import)."""

    def __init__(self, tracking_uri: str, experiment: str = "scanflow", timeout: float = 10.0) -> None:
        self.tracking_uri = tracking_uri.rstrip("/")
        self.experiment = experiment
        self._timeout = timeout
        self._client: MlflowRest | None = None
        self._lock = threading.Lock()
        self._disabled = False
        self._experiment_id: dict[str, str] = {}  # run -> experiment id
        self._parents: dict[str, str] = {}  # run -> parent run id
        self._nodes: dict[tuple[str, str], dict[str, Any]] = {}  # (run, node id) -> nested run info
        self._resumed: set[str] = set()  # runs whose parent existed already: nested runs may too
        self._untracked: dict[str, set[str]] = {}  # run -> templates whose nodes get no nested run

    # -- RunHooks --------------------------------------------------------------------------------

    def workflow_started(self, run: str, workflow: dict[str, Any]) -> dict[str, str]:
        return self._guard(f"recording workflow run {run}", {}, self._workflow_started, run, workflow)

    def node_started(self, run: str, node_id: str, node: dict[str, Any]) -> dict[str, str]:
        return self._guard(f"recording node {node_id} of {run}", {}, self._node_started, run, node_id, node)

    def node_finished(self, run: str, node_id: str, node: dict[str, Any], log_path: Path | None) -> None:
        self._guard(f"recording the end of node {node_id} of {run}", None, self._node_finished, run, node_id, node, log_path)

    def workflow_finished(self, run: str, status: dict[str, Any]) -> None:
        self._guard(f"recording the end of workflow run {run}", None, self._workflow_finished, run, status)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    # -- implementation ----------------------------------------------------------------------------

    def _guard(self, what: str, fallback: Any, fn: Any, *args: Any) -> Any:
        if self._disabled:
            return fallback
        try:
            return fn(*args)
        except (ScanflowError, OSError, ValueError, KeyError, TypeError) as err:
            if getattr(err, "unreachable", False):
                self._disabled = True
                log.warning("MLflow tracking stopped while %s (the workflow continues untracked): %s", what, err)
            else:
                log.warning("MLflow refused %s (the workflow continues): %s", what, err)
            return fallback

    @property
    def client(self) -> MlflowRest:
        if self._client is None:
            self._client = MlflowRest(self.tracking_uri, timeout=self._timeout)
        return self._client

    def _env(self, run: str) -> dict[str, str]:
        return {
            **QUIET_ENV,
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "MLFLOW_EXPERIMENT_ID": self._experiment_id[run],
            "SCANFLOW_PARENT_RUN_ID": self._parents[run],
        }

    def _workflow_started(self, run: str, workflow: dict[str, Any]) -> dict[str, str]:
        meta = workflow.get("metadata") or {}
        spec = workflow.get("spec") or {}
        if tracking_off(meta):
            return dict(QUIET_ENV)
        self._untracked[run] = {str(t.get("name")) for t in spec.get("templates") or [] if tracking_off(t.get("metadata"))}
        exp_id = self.client.experiment_id(self.experiment)
        assert exp_id is not None
        # A resumed run (new engine process) continues its parent run instead of starting another;
        # it is found by the workflow's uid (unique, kept across resumes), else by the run name.
        uid = meta.get("uid")
        key = f"tags.`scanflow.workflow_uid` = {filter_value(str(uid))}" if uid else f"tags.`{RUN_TAG}` = {filter_value(run)}"
        found = self.client.search_runs([exp_id], f"{key} and tags.`{ROLE_TAG}` = 'workflow'", max_results=1)
        if found:
            parent_id = found[0]["info"]["run_id"]
            self._resumed.add(run)
        else:
            tags = {RUN_TAG: run, ROLE_TAG: "workflow", "scanflow.workflow": _workflow_name(workflow, run)}
            if uid:
                tags["scanflow.workflow_uid"] = str(uid)
            if ns := meta.get("namespace"):
                tags["scanflow.namespace"] = str(ns)
            for key, value in (meta.get("labels") or {}).items():
                tags[f"scanflow.label.{key}"] = str(value)
            parent_id = self.client.create_run(exp_id, run, tags)["run_id"]
            params = _parameters((spec.get("arguments") or {}).get("parameters"))
            if params:
                self.client.log_batch(parent_id, params={f"workflow.{k}": v for k, v in params.items()})
        with self._lock:
            self._experiment_id[run] = exp_id
            self._parents[run] = parent_id
        return self._env(run)

    def _node_started(self, run: str, node_id: str, node: dict[str, Any]) -> dict[str, str]:
        if node.get("type", "Pod") != "Pod" or run not in self._parents:
            return {}
        if self._untracked_node(run, node):
            return self._env(run)
        info = self._nested(run, node_id, node, create=True)
        assert info is not None
        params = _parameters((node.get("inputs") or {}).get("parameters"))
        if params:
            self._part("the inputs", self.client.log_batch, info["run_id"], {f"input.{k}": v for k, v in params.items()})
        return {**self._env(run), "MLFLOW_RUN_ID": info["run_id"]}

    def _untracked_node(self, run: str, node: Mapping[str, Any]) -> bool:
        return str(node.get("templateName")) in self._untracked.get(run, set())

    def _node_finished(self, run: str, node_id: str, node: dict[str, Any], log_path: Path | None) -> None:
        if node.get("type", "Pod") != "Pod" or run not in self._parents or self._untracked_node(run, node):
            return
        info = self._nested(run, node_id, node, create=False)
        if info is None:
            return  # never started (skipped, omitted): nothing to close
        outputs = node.get("outputs") or {}
        values = _parameters(outputs.get("parameters"))
        if outputs.get("result") is not None:
            values.setdefault("result", str(outputs["result"]))  # a parameter named `result` wins (lint warns)
        metrics = {k: v for k, v in ((k, number(v)) for k, v in values.items()) if v is not None}
        tags = {"scanflow.phase": str(node.get("phase", ""))}
        if outputs.get("exitCode") is not None:
            tags["scanflow.exit_code"] = str(outputs["exitCode"])
        if node.get("message"):
            tags["scanflow.message"] = str(node["message"])
        tags.update(_artifact_tags(outputs.get("artifacts")))
        # A refused part (say, a parameter logged before with another value) must not keep the
        # log from being uploaded or the run from being ended: each part is tried on its own.
        self._part(
            "outputs",
            self.client.log_batch,
            info["run_id"],
            {f"output.{k}": v for k, v in values.items()},
            {f"output.{k}": v for k, v in metrics.items()},
            tags,
        )
        if log_path is not None and Path(log_path).is_file():
            self._part(
                "the log", self.client.upload_artifact, info["artifact_uri"], f"logs/{Path(log_path).name}", Path(log_path)
            )
        self.client.end_run(info["run_id"], mlflow_status(node.get("phase"), node.get("message")))

    def _part(self, what: str, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except ScanflowError as err:
            if getattr(err, "unreachable", False):
                raise
            log.warning("MLflow refused %s (carrying on): %s", what, err)

    def _workflow_finished(self, run: str, status: dict[str, Any]) -> None:
        parent = self._parents.get(run)
        if parent is None:
            return
        state = status.get("status", status) if isinstance(status.get("status"), Mapping) else status
        spec = status.get("spec") or {}
        phase = state.get("phase")
        self.client.log_batch(parent, tags={"scanflow.phase": str(phase or "")})
        self.client.end_run(parent, mlflow_status(phase, state.get("message"), spec.get("shutdown")))

    def _nested(self, run: str, node_id: str, node: dict[str, Any], create: bool) -> dict[str, Any] | None:
        key = (run, node_id)
        with self._lock:
            if key in self._nodes:
                return self._nodes[key]
        parent = self._parents[run]
        found = []
        if run in self._resumed:  # a fresh run has no nested runs yet: skip the search
            found = self.client.search_runs(
                [self._experiment_id[run]],
                f"tags.`mlflow.parentRunId` = {filter_value(parent)} and tags.`scanflow.node_id` = {filter_value(node_id)}",
                max_results=1,
            )
        if found:
            info = found[0]["info"]
        elif create:
            name = str(node.get("displayName") or node.get("name") or node_id)
            tags = {"mlflow.parentRunId": parent, RUN_TAG: run, ROLE_TAG: "node", "scanflow.node_id": node_id}
            if node.get("templateName"):
                tags["scanflow.template"] = str(node["templateName"])
            info = self.client.create_run(self._experiment_id[run], name, tags)
        else:
            return None
        with self._lock:
            self._nodes[key] = info
        return info


def tracking_off(metadata: Any) -> bool:
    """True when ``metadata.annotations`` says ``scanflow.io/tracking: "false"`` (or ``"0"``, ``"off"``, ``"no"``)."""
    annotations = (metadata or {}).get("annotations") if isinstance(metadata, Mapping) else None
    value = str((annotations or {}).get(TRACKING_ANNOTATION, "")).strip().lower()
    return value in ("false", "0", "off", "no")


def _workflow_name(workflow: dict[str, Any], run: str) -> str:
    meta = workflow.get("metadata") or {}
    spec = workflow.get("spec") or {}
    ref = (spec.get("workflowTemplateRef") or {}).get("name")
    labels = meta.get("labels") or {}
    return str(ref or labels.get("workflows.argoproj.io/workflow-template") or meta.get("generateName", "").rstrip("-") or run)


def _parameters(params: Any) -> dict[str, str]:
    """Argo ``parameters`` (a list of {name, value}, or a plain mapping) as name → string value."""
    if not params:
        return {}
    if isinstance(params, Mapping):
        return {str(k): str(v) for k, v in params.items() if v is not None}
    out: dict[str, str] = {}
    for p in params:
        if isinstance(p, Mapping) and p.get("name") is not None and p.get("value") is not None:
            out[str(p["name"])] = str(p["value"])
    return out


def _artifact_tags(artifacts: Any) -> dict[str, str]:
    """Tags naming a node's output artifacts and where each is stored (tags, not params: a resumed
    node may store an artifact again under the same name, and params cannot change)."""
    where: dict[str, str] = {}
    for art in artifacts or []:
        if isinstance(art, Mapping) and art.get("name"):
            where[str(art["name"])] = _artifact_location(art)
    if not where:
        return {}
    tags = {"scanflow.output_artifacts": ",".join(where)}
    tags.update({f"scanflow.artifact.{name}": loc for name, loc in where.items() if loc})
    return tags


def _artifact_location(art: Mapping[str, Any]) -> str:
    """The stored location of an Argo artifact: ``s3://bucket/key`` (or the key), the local engine's key, else its path."""
    for kind in ("s3", "gcs", "oss"):
        ref = art.get(kind)
        if isinstance(ref, Mapping) and ref.get("key"):
            return f"{kind}://{ref['bucket']}/{ref['key']}" if ref.get("bucket") else str(ref["key"])
    for kind, field in (("http", "url"), ("git", "repo"), ("local", "key")):
        ref = art.get(kind)
        if isinstance(ref, Mapping) and ref.get(field):
            return str(ref[field])
    return str(art.get("path") or "")
