"""The Python client and the Platform's run operations on the cluster, against the fake API servers (both backends):
the same calls as on the local engine (tests/platform/test_client.py)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from fakeapi import FakeCluster, node_status
from k8s_helpers import NAMESPACE, template

from scanflow_argo.client import Client
from scanflow_argo.errors import AlreadyExistsError, NotFoundError, PlatformError
from scanflow_argo.platform.kubernetes import KubernetesPlatform


def _hello(name: str | None = None) -> dict:
    meta = {"name": name} if name else {"generateName": "hello-"}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": meta,
        "spec": {
            "entrypoint": "main",
            "arguments": {"parameters": [{"name": "message", "value": "hi"}]},
            "templates": [
                {"name": "main", "container": {"image": "busybox", "command": ["echo", "{{workflow.parameters.message}}"]}}
            ],
        },
    }


def test_undeclared_parameters_are_refused_before_anything_is_created(platform: KubernetesPlatform, fake: FakeCluster) -> None:
    """Argo's ``overrideParameters`` (workflow/util/util.go) would add ``mesage`` silently and run with the default."""
    platform.apply_template(template())
    with pytest.raises(
        PlatformError, match=r"declares no parameter 'epoch' \(did you mean 'epochs'\?\) — its parameters: epochs, lr"
    ):
        platform.submit("train", {"epoch": "3"})
    with pytest.raises(PlatformError, match=r"'mesage' \(did you mean 'message'\?\) — its parameters: message"):
        platform.submit(_hello(), {"mesage": "bye"})
    assert not fake.calls("POST", "workflows") and not [o for o in fake.objects if o[0] == "workflows"]


def test_a_taken_name_is_already_exists_with_the_delete_command(platform: KubernetesPlatform) -> None:
    assert platform.submit(_hello("fixed")) == "fixed"
    with pytest.raises(AlreadyExistsError) as err:
        platform.submit(_hello("fixed"))
    assert 'workflows.argoproj.io "fixed" already exists' in str(err.value)
    assert "scanflow-argo --platform kubernetes delete fixed" in str(err.value)
    platform.delete_run("fixed")
    with pytest.raises(NotFoundError):
        platform.get_run("fixed")
    assert platform.submit(_hello("fixed")) == "fixed"


def test_resume_marks_the_suspended_node_succeeded(platform: KubernetesPlatform, fake: FakeCluster, backend: str) -> None:
    """``argo resume`` (workflow/util/util.go ResumeWorkflow): active suspend nodes Succeeded, through the Argo Server;
    without one, rewriting a run's status is left to Argo and the message says how."""
    name = platform.submit(_hello())
    node_id, node = node_status(name, "approve", "Running")
    node["type"] = "Suspend"
    fake.set_status("workflows", NAMESPACE, name, {"phase": "Running", "nodes": {node_id: node}})
    if backend == "crd":
        with pytest.raises(PlatformError, match=f"argo resume {name}"):
            platform.resume(name)
    else:
        platform.resume(name)
        assert fake.get("workflows", NAMESPACE, name)["status"]["nodes"][node_id]["phase"] == "Succeeded"
    fake.set_status("workflows", NAMESPACE, name, {"phase": "Succeeded"})
    with pytest.raises(PlatformError, match="already finished"):
        platform.resume(name)


def _tgz(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_client_reads_runs_outputs_and_artifacts(
    platform: KubernetesPlatform, fake: FakeCluster, backend: str, tmp_path: Path
) -> None:
    platform.apply_template(template())
    client = Client(platform.settings, platform=platform)
    run = client.submit("train", {"epochs": 2}, labels={"team": "ml"})
    artifact = {"name": "model", "path": "/tmp/model.txt", "s3": {"key": f"{run.name}/model.tgz"}}
    node_id, node = node_status(
        run.name, "fit", "Succeeded", outputs={"parameters": [{"name": "accuracy", "value": "0.97"}], "artifacts": [artifact]}
    )
    fake.set_status("workflows", NAMESPACE, run.name, {"phase": "Succeeded", "nodes": {node_id: node}})
    fake.artifacts[(run.name, node_id, "model")] = _tgz("model.txt", b"weights")
    client.submit(_hello(), labels={"team": "other"})

    assert [r.name for r in client.runs(workflow="train", phase="Succeeded")] == [run.name]
    assert [r.name for r in client.runs(labels={"team": "ml"})] == [run.name]
    got = client.latest("train")
    assert got.parameters == {"epochs": "2"}
    assert got.output("fit", "accuracy", as_json=True) == 0.97
    assert got.steps["fit"].artifacts == ("model",)
    if backend == "argo":
        path = got.artifact("fit", "model", tmp_path / "model.txt")
        assert path.read_bytes() == b"weights"
    else:
        with pytest.raises(PlatformError, match="needs the Argo Server"):
            got.artifact("fit", "model", tmp_path / "model.txt")
    with pytest.raises(NotFoundError, match="no Failed run of workflow 'train'"):
        client.latest("train", phase="Failed")
