"""``scanflow-argo submit|status|wait|scale`` on the Kubernetes platform (the fake servers), as a user types them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fakeapi import FakeCluster, node_status
from k8s_helpers import ARGO_TOKEN, NAMESPACE, seldon, template

from scanflow_argo.cli import main


@pytest.fixture
def cluster_env(fake: FakeCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {
        "SCANFLOW_PLATFORM": "kubernetes",
        "KUBECONFIG": str(fake.kubeconfig(tmp_path / "kubeconfig")),
        "SCANFLOW_NAMESPACE": NAMESPACE,
        "SCANFLOW_ARGO_SERVER": fake.url,
        "ARGO_TOKEN": ARGO_TOKEN,
        "SCANFLOW_HOME": str(tmp_path / "home"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def _plan(wf: dict) -> list[dict]:
    name = wf["metadata"]["name"]
    node_id, node = node_status(name, "fit", "Succeeded", outputs={"parameters": [{"name": "accuracy", "value": "0.98"}]})
    return [{"phase": "Running"}, {"phase": "Succeeded", "nodes": {node_id: node}}]


def test_submit_file_then_wait_and_status(
    cluster_env: dict, fake: FakeCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(template()))
    fake.plan = _plan
    assert main(["submit", str(path), "-p", "epochs=4", "-l", "team=ml"]) == 0
    name = capsys.readouterr().out.strip()
    assert fake.get("workflowtemplates", NAMESPACE, "train")
    assert fake.get("workflows", NAMESPACE, name)["spec"]["arguments"]["parameters"] == [{"name": "epochs", "value": "4"}]

    assert main(["wait", name, "--poll", "0.01", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["phase"] == "Succeeded"
    assert result["nodes"]["fit"]["outputs"] == {"accuracy": "0.98"}

    assert main(["status", name]) == 0
    out = capsys.readouterr().out
    assert f"{name}  Succeeded" in out and "accuracy=0.98" in out
    assert main(["status", "-l", "team=ml"]) == 0
    assert name in capsys.readouterr().out


def test_submit_by_name_with_wait_fails_on_a_failed_run(
    cluster_env: dict, fake: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.put({**template(), "metadata": {"name": "train", "namespace": NAMESPACE}})
    fake.plan = lambda wf: [{"phase": "Failed", "message": "child failed"}]
    assert main(["submit", "train", "-p", "epochs=1", "--wait", "--timeout", "30"]) == 1
    assert "Failed  (child failed)" in capsys.readouterr().out


def test_scale_and_deployment_status(cluster_env: dict, fake: FakeCluster, capsys: pytest.CaptureFixture[str]) -> None:
    fake.put(seldon(replicas=1))
    assert main(["scale", "mnist", "3"]) == 0
    assert "replicas 0/3" in capsys.readouterr().out
    assert main(["status", "--deployment", "mnist", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["replicas"] == 3


def test_errors_are_one_clear_line(cluster_env: dict, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scale", "ghost", "2"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: SeldonDeployment 'ghost' not found in namespace 'scanflow'")
    with pytest.raises(SystemExit):
        main(["submit", "train", "-p", "no-equals-sign"])


def test_cli_in_a_subprocess(cluster_env: dict, fake: FakeCluster) -> None:
    fake.put(seldon(replicas=2))
    env = {**os.environ, **cluster_env}
    out = subprocess.run(
        [sys.executable, "-m", "scanflow_argo", "status", "--deployment", "mnist"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("scanflow/mnist  Creating  replicas 0/2")
    assert ARGO_TOKEN not in out.stdout + out.stderr
