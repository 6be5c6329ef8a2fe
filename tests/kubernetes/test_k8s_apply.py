"""``scanflow-argo apply`` on the Kubernetes platform (the fake servers): the compiled manifests as a user applies them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from fakeapi import FakeCluster
from k8s_helpers import ARGO_TOKEN, NAMESPACE, seldon, template

from scanflow_argo.cli import main

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "manifests" / "generated"


@pytest.fixture(params=["crd", "argo"])
def cluster_env(request: pytest.FixtureRequest, fake: FakeCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The environment a user has: a kubeconfig, a namespace and (``argo``) the Argo Server and its token."""
    monkeypatch.setenv("SCANFLOW_PLATFORM", "kubernetes")
    monkeypatch.setenv("KUBECONFIG", str(fake.kubeconfig(tmp_path / "kubeconfig")))
    monkeypatch.setenv("SCANFLOW_NAMESPACE", NAMESPACE)
    monkeypatch.setenv("SCANFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SCANFLOW_ARGO_SERVER", raising=False)
    if request.param == "argo":
        monkeypatch.setenv("SCANFLOW_ARGO_SERVER", fake.url)
        monkeypatch.setenv("ARGO_TOKEN", ARGO_TOKEN)
    return str(request.param)


def _lines(out: str) -> dict[str, str]:
    return {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in out.splitlines() if line}


def test_apply_the_generated_folder(cluster_env: str, fake: FakeCluster, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apply", str(GENERATED)]) == 0
    lines = _lines(capsys.readouterr().out)
    assert lines["workflowtemplate/mnist-train"] == "configured"
    assert lines["workflowtemplate/mnist-retrain"] == "configured"
    assert lines["cronworkflow/mnist-weekly-retrain"] == "configured"
    # no MLflow reachable here, so no champion to serve: created without a model, at 0 replicas until the first roll
    assert lines["seldondeployment/mnist"].startswith("created (models:/mnist@champion not resolved (MLflow at ")
    assert lines["seldondeployment/mnist"].endswith("): 0 replicas until the first roll)")
    # RBAC, agent Deployments, ConfigMaps: the cluster admin's, through kubectl — named, never sent
    for ref in (
        "role/drift-supervisor",
        "deployment/drift-supervisor",
        "configmap/scanflow-mlflow",
        "podmonitor/drift-supervisor",
    ):
        assert lines[ref] == "skipped (cluster objects are installed with `kubectl apply -k manifests/`)"
    assert not fake.calls(contains="/configmaps") and not fake.calls(contains="/roles")
    train = fake.get("workflowtemplates", NAMESPACE, "mnist-train")
    assert train["spec"] == yaml.safe_load((GENERATED / "workflowtemplate-mnist-train.yaml").read_text())["spec"]
    assert fake.get("cronworkflows", NAMESPACE, "mnist-weekly-retrain")
    served = fake.get("seldondeployments", NAMESPACE, "mnist")
    assert served["spec"]["predictors"][0]["replicas"] == 0 and "modelUri" not in served["spec"]["predictors"][0]["graph"]
    assert served["metadata"]["annotations"]["scanflow.io/replicas"] == "1"

    # applying again updates in place; the deployment is now "configured", nothing is duplicated
    first_rv = train["metadata"]["resourceVersion"]
    assert (
        main(["apply", str(GENERATED / "workflowtemplate-mnist-train.yaml"), str(GENERATED / "seldondeployment-mnist.yaml")]) == 0
    )
    assert _lines(capsys.readouterr().out) == {
        "workflowtemplate/mnist-train": "configured",
        "seldondeployment/mnist": "configured",
    }
    assert fake.get("workflowtemplates", NAMESPACE, "mnist-train")["metadata"]["resourceVersion"] != first_rv


def test_apply_then_submit_by_name(
    cluster_env: str, fake: FakeCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump_all([template("train"), seldon("mnist")]))
    assert main(["apply", str(path)]) == 0
    assert "workflowtemplate/train configured" in capsys.readouterr().out
    assert main(["submit", "train", "-p", "epochs=3"]) == 0
    run = capsys.readouterr().out.strip()
    wf = fake.get("workflows", NAMESPACE, run)
    assert wf["spec"]["workflowTemplateRef"] == {"name": "train"}
    assert wf["spec"]["arguments"]["parameters"] == [{"name": "epochs", "value": "3"}]


def test_unknown_kind_applies_nothing(
    cluster_env: str, fake: FakeCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "a-train.yaml").write_text(yaml.safe_dump(template("train")))
    (folder / "b-odd.yaml").write_text(
        yaml.safe_dump({"apiVersion": "example.com/v1", "kind": "Gizmo", "metadata": {"name": "g"}})
    )
    assert main(["apply", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "nothing applied to the kubernetes platform" in err
    assert f"{folder / 'b-odd.yaml'}: kind Gizmo (g) cannot be applied" in err
    assert not fake.calls(method="POST") and not fake.calls(method="PUT")
