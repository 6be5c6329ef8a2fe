"""Estimated durations: ``status.estimatedDuration`` of a run and ``estimatedDuration`` of its nodes, taken
from the previous run of the same template, as Argo's ``workflow/controller/estimation`` package does.

``estimatorFactory.NewEstimator`` (``estimator_factory.go``) picks the baseline: for the first of the labels
``workflows.argoproj.io/workflow-template``, ``cluster-workflow-template`` and ``cron-workflow`` the run carries,
the newest run (by ``creationTimestamp``) in its namespace with the same label value whose phase label is
``Succeeded``; none is no estimate. ``estimator.EstimateWorkflowDuration``/``EstimateNodeDuration``
(``estimator.go``) give the baseline's duration, and that of the baseline's node of the same name (the run's
name replaced by the baseline's), in whole seconds (``wfv1.NewEstimatedDuration``); a zero estimate is not
written (``omitempty``). Locally the baselines are the run folders beside this run's (``<home>/runs``).

One difference of scale: timestamps have Argo's one-second precision, and a local pod often starts and ends
within one second, which no pod on a cluster does; so a baseline run or node that ran (it ended Succeeded,
Failed or Error) estimates at least 1 s, where the truncated difference would read as no estimate at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...clock import from_iso
from ..core.state import load_status

__all__ = ["ESTIMATION_LABELS", "Estimator"]

ESTIMATION_LABELS = (
    "workflows.argoproj.io/workflow-template",
    "workflows.argoproj.io/cluster-workflow-template",
    "workflows.argoproj.io/cron-workflow",
)
"""The labels ``NewEstimator`` looks a baseline up by (``common.LabelKeyWorkflowTemplate`` …)."""


_RAN = frozenset({"Succeeded", "Failed", "Error"})


def _seconds(doc: Mapping[str, Any]) -> int:
    """``GetDuration`` as ``NewEstimatedDuration`` keeps it: whole seconds, 0 while unfinished; at least 1 for
    what ran (see the module docstring)."""
    started, finished = doc.get("startedAt"), doc.get("finishedAt")
    if not started or not finished:
        return 0
    try:
        seconds = max(0, int(from_iso(str(finished)) - from_iso(str(started))))
    except ValueError:
        return 0
    return max(seconds, 1) if doc.get("phase") in _RAN else seconds


class Estimator:
    """The estimates of one run (``estimator``), from its baseline run's status document (or none)."""

    def __init__(self, name: str, baseline: Mapping[str, Any] | None) -> None:
        self.name = name
        self.baseline = baseline
        base_status = (baseline or {}).get("status") or {}
        self._base_name = str(((baseline or {}).get("metadata") or {}).get("name", ""))
        self._nodes = {str(n.get("name", "")): n for n in (base_status.get("nodes") or {}).values()}
        self._workflow = _seconds(base_status)

    @classmethod
    def for_run(cls, runs_dir: Path, workflow: Mapping[str, Any]) -> Estimator:
        """The estimator of ``workflow`` with its baseline looked up among the runs in ``runs_dir``."""
        meta = workflow.get("metadata") or {}
        name = str(meta.get("name", ""))
        labels = meta.get("labels") or {}
        label = next((k for k in ESTIMATION_LABELS if k in labels), None)
        if label is None or not runs_dir.is_dir():
            return cls(name, None)
        namespace = str(meta.get("namespace") or "default")
        newest: dict[str, Any] | None = None
        for folder in sorted(runs_dir.iterdir()):
            if folder.name == name or not (folder / "status.json").is_file():
                continue
            doc = load_status(folder)
            other = (doc or {}).get("metadata") or {}
            other_labels = other.get("labels") or {}
            if (
                doc is None
                or str(other.get("namespace") or "default") != namespace
                or other_labels.get(label) != labels[label]
                or other_labels.get("workflows.argoproj.io/phase") != "Succeeded"
            ):
                continue
            created = str(other.get("creationTimestamp", ""))
            if newest is None or created > str(newest["metadata"].get("creationTimestamp", "")):
                newest = doc
        return cls(name, newest)

    def workflow(self) -> int:
        """``EstimateWorkflowDuration``: the baseline's duration in seconds (0: none)."""
        return self._workflow

    def node(self, node_name: str) -> int:
        """``EstimateNodeDuration``: the duration of the baseline's node of the same name (0: none)."""
        if self.baseline is None:
            return 0
        old = self._nodes.get(node_name.replace(self.name, self._base_name, 1))
        return _seconds(old) if old else 0
