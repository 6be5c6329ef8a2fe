"""Local WorkflowTemplates and CronWorkflows are namespaced as on the API server: one name in two namespaces
is two objects, read, listed, replaced and deleted by namespace; ClusterWorkflowTemplates stay cluster-scoped;
templates kept before (one shared folder) move to their namespace's folder, nothing lost.

The oracle: a WorkflowTemplate is a namespaced resource (Argo's CRD ``workflowtemplates.argoproj.io``,
``scope: Namespaced``), looked up by the workflow's namespace (``workflow/templateresolution/context.go``,
``WorkflowTemplateFromRef``); a ClusterWorkflowTemplate has ``scope: Cluster``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from scanflow_argo.errors import NotFoundError
from scanflow_argo.platform.local import LocalPlatform
from scanflow_argo.settings import Settings

A, B = "scanflow-mnist-science", "scanflow-mnist-engineering"


def _doc(kind: str, name: str, namespace: str | None, image: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name} | ({"namespace": namespace} if namespace else {})
    spec: dict[str, Any] = {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": image}}]}
    if kind == "CronWorkflow":
        spec = {"schedule": "0 * * * *", "workflowSpec": spec}
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": kind, "metadata": meta, "spec": spec}


def _platform(home: Path, namespace: str) -> LocalPlatform:
    s = Settings.from_env(environ={}).with_home(home)
    return LocalPlatform(replace(s, kubernetes=replace(s.kubernetes, namespace=namespace)))


def _image(doc: dict[str, Any]) -> str:
    spec = doc["spec"].get("workflowSpec") or doc["spec"]
    return str(spec["templates"][0]["container"]["image"])


@pytest.mark.parametrize("kind", ["WorkflowTemplate", "CronWorkflow"])
def test_one_name_in_two_namespaces_is_two_objects(tmp_path: Path, kind: str) -> None:
    a, b = _platform(tmp_path, A), _platform(tmp_path, B)
    a.apply_template(_doc(kind, "retrain", None, "a:1"))  # lands in A's namespace
    b.apply_template(_doc(kind, "retrain", None, "b:1"))  # does not overwrite A's
    assert _image(a.get_template(kind, "retrain", A)) == "a:1"
    assert _image(a.get_template(kind, "retrain", B)) == "b:1"
    assert _image(b.get_template(kind, "retrain")) == "b:1"  # default: the platform's own namespace
    assert [t["metadata"]["namespace"] for t in a.list_templates(kind, A)] == [A]
    assert sorted(t["metadata"]["namespace"] for t in a.list_templates(kind)) == sorted([A, B])
    assert a.get_template(kind, "retrain", A)["metadata"]["uid"] != a.get_template(kind, "retrain", B)["metadata"]["uid"]
    b.delete_template(kind, "retrain", B)
    with pytest.raises(NotFoundError, match="not found"):
        b.get_template(kind, "retrain", B)
    assert _image(b.get_template(kind, "retrain", A)) == "a:1"  # A's is still there


def test_cluster_templates_stay_cluster_scoped(tmp_path: Path) -> None:
    a, b = _platform(tmp_path, A), _platform(tmp_path, B)
    a.apply_template(_doc("ClusterWorkflowTemplate", "shared", None, "c:1"))
    assert _image(b.get_template("ClusterWorkflowTemplate", "shared", B)) == "c:1"
    assert [t["metadata"]["name"] for t in b.list_templates("ClusterWorkflowTemplate", B)] == ["shared"]
    assert "namespace" not in b.get_template("ClusterWorkflowTemplate", "shared")["metadata"]


def test_submit_reads_the_template_of_its_own_namespace(tmp_path: Path) -> None:
    a, b = _platform(tmp_path, A), _platform(tmp_path, B)
    a.apply_template(_doc("WorkflowTemplate", "retrain", None, "a:1"))
    with pytest.raises(NotFoundError, match=rf"not found in namespace '{B}' \(it is in '{A}'\)"):
        b.submit("retrain")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_templates_kept_in_the_shared_folder_move_to_their_namespace(tmp_path: Path) -> None:
    """A home written before templates were namespaced: every template at the top of the folder."""
    folder = tmp_path / "templates"
    folder.mkdir()
    legacy = {
        "plain.yaml": _doc("WorkflowTemplate", "plain", None, "p:1"),  # named no namespace: the platform's
        "owned.yaml": _doc("WorkflowTemplate", "owned", B, "o:1"),
        "nightly.yaml": _doc("CronWorkflow", "nightly", None, "n:1"),
        "cluster-shared.yaml": _doc("ClusterWorkflowTemplate", "shared", None, "c:1"),
    }
    for name, doc in legacy.items():
        (folder / name).write_text(yaml.safe_dump(doc))
    (folder / ".plain.project").write_text(str(tmp_path))
    a = _platform(tmp_path, A)
    assert [t["metadata"]["name"] for t in a.list_templates("WorkflowTemplate", A)] == ["plain"]
    assert _image(a.get_template("WorkflowTemplate", "owned", B)) == "o:1"
    assert _image(a.get_template("CronWorkflow", "nightly", A)) == "n:1"
    assert _image(a.get_template("ClusterWorkflowTemplate", "shared")) == "c:1"
    assert a.project_dir("plain") == tmp_path  # the project file moved with its template
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.yaml")) == sorted(
        [f"{A}/nightly.yaml", f"{A}/plain.yaml", f"{B}/owned.yaml", "cluster-shared.yaml"]
    )
    assert yaml.safe_load((folder / A / "plain.yaml").read_text())["metadata"]["namespace"] == A
