"""Each namespace's artifacts under its own prefix of the local repository, as each team's artifact repository
has its own key prefix on a cluster (``compile/teams.py``'s ``artifact-repositories`` ConfigMap, read by Argo's
controller in the workflow's namespace: ``workflow/artifactrepositories/artifactrepositories.go``, ``Resolve``):
a run reads its own namespace's artifacts, never another's; artifacts stored before namespaces stay readable."""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Any

import pytest

from scanflow_argo.engine import run_workflow
from scanflow_argo.settings import Settings

A, B = "scanflow-mnist-science", "scanflow-mnist-engineering"


def _wf(namespace: str, template: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "art-", "namespace": namespace},
        "spec": {"entrypoint": "main", "templates": [{"name": "main", **template}]},
    }


def _writer(key: str) -> dict[str, Any]:
    return {
        "container": {"image": "busybox", "command": ["sh", "-c"], "args": ["echo weights > /tmp/w"]},
        "outputs": {"artifacts": [{"name": "w", "path": "/tmp/w", "s3": {"key": key}}]},
    }


def _reader(source: dict[str, Any]) -> dict[str, Any]:
    return {
        "container": {"image": "busybox", "command": ["sh", "-c"], "args": ["cat /in"]},
        "inputs": {"artifacts": [{"name": "in", "path": "/in", **source}]},
    }


@pytest.fixture
def written(engine_settings: Settings) -> Path:
    """Team A's run stored ``models/w.tgz``; returns where it lies."""
    run = run_workflow(_wf(A, _writer("models/w.tgz")), engine_settings)
    assert run.phase == "Succeeded", run.message
    stored = engine_settings.home / "artifacts" / ".namespaces" / A / "models" / "w.tgz"
    assert stored.is_file()  # under A's prefix, nowhere else
    assert not (engine_settings.home / "artifacts" / "models").exists()
    return stored


@pytest.mark.parametrize(
    ("namespace", "source", "phase", "says"),
    [
        (A, {"s3": {"key": "models/w.tgz"}}, "Succeeded", "weights"),  # its own namespace's key
        (B, {"s3": {"key": "models/w.tgz"}}, "Error", "missing from the local repository"),  # B's prefix has none
        (B, {"s3": {"key": f".namespaces/{A}/models/w.tgz"}}, "Error", "missing"),  # no way around the prefix
        (B, {"local": {"key": "models/w.tgz", "namespace": A}}, "Error", f"belongs to namespace {A!r}"),
    ],
)
def test_a_run_reads_only_its_own_namespaces_artifacts(
    engine_settings: Settings, written: Path, namespace: str, source: dict[str, Any], phase: str, says: str
) -> None:
    run = run_workflow(_wf(namespace, _reader(source)), engine_settings)
    node = run.node(run.name)
    assert run.phase == phase, run.message
    text = str(node.outputs.get("result", "")) if phase == "Succeeded" else f"{run.message} {node.message}"
    assert says in text, text


def test_artifacts_stored_before_namespaces_stay_readable(engine_settings: Settings, tmp_path: Path) -> None:
    """An engine before namespaces kept ``<home>/artifacts/<key>``: a run (or a resume) naming that key reads it."""
    legacy = engine_settings.home / "artifacts" / "old-run" / "w.tgz"
    legacy.parent.mkdir(parents=True)
    (tmp_path / "w").write_text("old weights\n")
    with tarfile.open(legacy, "w:gz") as tar:
        tar.add(tmp_path / "w", arcname="w")
    run = run_workflow(_wf(B, _reader({"s3": {"key": "old-run/w.tgz"}})), engine_settings)
    assert run.phase == "Succeeded", run.message
    assert run.node(run.name).outputs["result"] == "old weights"
