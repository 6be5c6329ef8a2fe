"""Every use of a publication is recorded: a run says what it consumes in its labels — put there from its template's
``spec.workflowMetadata`` as Argo's controller does (``operator.go`` ``updateWorkflowMetadata``) — and the
engineering team's agent, submitting the science team's published ClusterWorkflowTemplate in its own namespace,
writes a use record for each reference into the trail ``scanflow-argo team log`` shows. On the real local platform."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from scanflow_argo.agents.decide import Decision
from scanflow_argo.agents.runtime import AgentRuntime
from scanflow_argo.cli import main
from scanflow_argo.compile.teams import team_app, team_namespace
from scanflow_argo.engine.core.manifest import apply_workflow_metadata
from scanflow_argo.errors import InvalidWorkflow, NotFoundError, SpecError
from scanflow_argo.platform import get_platform
from scanflow_argo.platform.publications import Publications, reference_labels, references
from scanflow_argo.platform.teams import NamespaceBound
from scanflow_argo.settings import Settings
from scanflow_argo.spec.agent import Agent, OnMessage, Plan, SubmitWorkflow

SCIENCE, ENG = team_namespace("mnist", "science"), team_namespace("mnist", "engineering")


def _template() -> dict[str, Any]:
    """The science team's retraining template: it consumes dataset mnist@3 (its workflowMetadata says so)."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": {"name": "mnist-retrain", "namespace": SCIENCE},
        "spec": {
            "entrypoint": "main",
            "workflowMetadata": {"labels": reference_labels("dataset", "mnist", "3")},
            "templates": [{"name": "main", "container": {"image": "python:3.11", "command": ["true"]}}],
        },
    }


def _settings(home: Path, namespace: str) -> Settings:
    s = Settings.from_env(environ={}).with_home(home)
    return replace(s, kubernetes=replace(s.kubernetes, namespace=namespace), tracking=replace(s.tracking, enabled=False))


METADATA = [
    ("labels over the workflow's", {"labels": {"a": "2"}}, {"labels": {"a": "1", "b": "1"}}, {"a": "2", "b": "1"}, {}),
    ("annotations too", {"annotations": {"note": "x y"}}, {}, {}, {"note": "x y"}),
    ("none: unchanged", {}, {"labels": {"a": "1"}}, {"a": "1"}, {}),
]


@pytest.mark.parametrize(("what", "md", "meta", "labels", "annotations"), METADATA, ids=[m[0] for m in METADATA])
def test_workflow_metadata_lands_on_the_run(what: str, md: Any, meta: Any, labels: Any, annotations: Any) -> None:
    wf = {"metadata": dict(meta), "spec": {"workflowMetadata": md}}
    apply_workflow_metadata(wf)
    assert (wf["metadata"].get("labels") or {}, wf["metadata"].get("annotations") or {}) == (labels, annotations), what


def test_a_bad_label_value_errors_the_workflow_in_argos_words() -> None:
    with pytest.raises(InvalidWorkflow, match="invalid label value 'not ok!' for label 'a'") as err:
        apply_workflow_metadata({"metadata": {}, "spec": {"workflowMetadata": {"labels": {"a": "not ok!"}}}})
    assert err.value.phase == "Error"


@pytest.mark.parametrize(
    ("kind", "name", "version", "error"),
    [("notebook", "x", "1", "consumes one of dataset"), ("dataset", "MNIST full", "1", "cannot be a label value"),
     ("dataset", "mnist", "v" * 64, "cannot be a label value")],
)  # fmt: skip
def test_references_that_cannot_be_labels_are_refused(kind: str, name: str, version: str, error: str) -> None:
    with pytest.raises(SpecError, match=error):
        reference_labels(kind, name, version)


def test_references_read_back() -> None:
    labels = {**reference_labels("template", "mnist-retrain", "1"), **reference_labels("dataset", "mnist", "3"), "x": "y"}
    assert references(labels) == [("dataset", "mnist", "3"), ("template", "mnist-retrain", "1")]


@pytest.mark.parametrize(
    ("namespace", "team", "app"),
    [(ENG, "engineering", "mnist"), ("scanflow-my-app-data", "data", "my-app"), ("scanflow", "data", None), (ENG, "data", None)],
)
def test_team_app_inverts_team_namespace(namespace: str, team: str, app: str | None) -> None:
    assert team_app(namespace, team) == app


def test_the_engineering_agent_runs_the_published_template_in_its_namespace_and_records_its_uses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    pubs = Publications(_settings(home, SCIENCE), "mnist")
    pubs.publish_dataset("data", "mnist", "3", "file:///datasets/mnist/3")
    pubs.publish_template("science", NamespaceBound(get_platform(_settings(home, SCIENCE)), SCIENCE), _template(), "1")

    agent = Agent(
        "supervisor",
        sensors=[],
        rules=[OnMessage("retrain", name="retrain")],
        plans=[Plan("retrain", [SubmitWorkflow("mnist-retrain", cluster_scope=True, name="retrain")])],
        interval=1,
    )
    rt = AgentRuntime(agent, _settings(home, ENG), team="engineering")
    decision = Decision("action", time.time(), action="retrain", action_kind="submit_workflow", status="planned", key="k1")
    rec = asyncio.run(rt._act(decision))
    assert rec is not None and rec["status"] == "ok", rec
    run = rec["result_detail"]["run"]
    status = rt.platform.wait(run, timeout=60)
    assert (status.namespace, status.phase) == (ENG, "Succeeded")
    # the run carries what it consumed, as Argo would label it
    assert references(status.labels) == [("dataset", "mnist", "3"), ("template", "mnist-retrain", "1")]
    assert status.labels["workflows.argoproj.io/cluster-workflow-template"] == "mnist-retrain"
    assert rec["result_detail"]["uses"] == ["dataset mnist@3", "template mnist-retrain@1"]
    uses = [(r.team, r.kind, r.name, r.version, r.namespace, r.detail) for r in pubs.log() if r.action == "use"]
    assert uses == [
        ("engineering", "dataset", "mnist", "3", ENG, f"run {ENG}/{run} by agent supervisor"),
        ("engineering", "template", "mnist-retrain", "1", ENG, f"run {ENG}/{run} by agent supervisor"),
    ]
    assert main(["--home", str(home), "team", "log", "mnist"]) == 0
    out = capsys.readouterr().out
    assert "engineering  use      dataset  mnist@3" in out and f"run {ENG}/{run} by agent supervisor" in out


def test_a_version_nobody_published_is_recorded_as_such(tmp_path: Path) -> None:
    home = tmp_path / "home"
    platform = get_platform(_settings(home, SCIENCE))
    platform.apply_template(_template())
    run = platform.submit("mnist-retrain")
    status = platform.wait(run, timeout=60)
    (rec,) = Publications(_settings(home, SCIENCE), "mnist").record_run("science", status)
    assert (rec.kind, rec.name, rec.version) == ("dataset", "mnist", "3")
    assert rec.detail.endswith("(not a published version)")


def test_another_namespaces_template_is_not_found_by_name(tmp_path: Path) -> None:
    # as on Argo: a WorkflowTemplate is read in the submitter's namespace; another team's is run through its publication
    home = tmp_path / "home"
    get_platform(_settings(home, SCIENCE)).apply_template(_template())
    with pytest.raises(NotFoundError, match=f'"mnist-retrain" not found in namespace {ENG!r}.*{SCIENCE!r}.*team publish'):
        get_platform(_settings(home, ENG)).submit("mnist-retrain")
