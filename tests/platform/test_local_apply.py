"""``scanflow-argo apply`` on the local platform: real files, then ``submit`` by name runs on the real engine."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from local_helpers import greet_config, greet_template

from scanflow_argo.cli import main

ROOT = Path(__file__).resolve().parents[2]
ROLE = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "greet"}, "rules": []}


def _manifests(project: Path) -> Path:
    folder = project / "manifests"
    folder.mkdir()
    (folder / "workflowtemplate-greet.yaml").write_text(yaml.safe_dump(greet_template()))
    (folder / "cluster.yaml").write_text(yaml.safe_dump_all([greet_config(), ROLE]))
    (folder / "kustomization.yaml").write_text("resources: [workflowtemplate-greet.yaml, cluster.yaml]\n")
    return folder


def test_apply_a_folder_then_submit_by_name_from_another_folder(
    local_env: Path, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _manifests(project)
    monkeypatch.chdir(project)
    assert main(["apply", "manifests"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "note: MLFLOW_TRACKING_URI in ConfigMaps points at the local MLflow here (http://127.0.0.1:5005)"
    assert out[1:] == [
        "role/greet skipped (cluster only: kubectl apply -k manifests/)",
        "configmap/greet-config created",
        "workflowtemplate/greet created",
    ]
    applied_cm = local_env / "configmaps" / ".namespaces" / "scanflow" / "greet-config"  # the platform's namespace
    assert (applied_cm / "greeting").read_text() == "hi"
    assert (applied_cm / "MLFLOW_TRACKING_URI").read_text() == "http://127.0.0.1:5005"
    assert not (local_env / "configmaps" / "greet-config").exists()  # never the older, un-namespaced folder
    applied = yaml.safe_load((local_env / "templates" / "scanflow" / "greet.yaml").read_text())  # its namespace's folder
    assert applied == {**greet_template(), "metadata": {**greet_template()["metadata"], "namespace": "scanflow"}}

    # steps import the project's package from where the template was applied, not from the current folder
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["submit", "greet", "-p", "who=ada", "-p", "epochs=3", "--wait", "--timeout", "120"]) == 0
    out = capsys.readouterr().out
    run = out.splitlines()[0]
    assert f"{run}  Succeeded" in out and "accuracy=0.88" in out
    assert main(["logs", run, "fit"]) == 0
    assert capsys.readouterr().out.strip() == "hello ada hi http://127.0.0.1:5005"

    monkeypatch.chdir(project)
    assert main(["apply", "manifests/workflowtemplate-greet.yaml", "manifests/cluster.yaml"]) == 0
    assert "workflowtemplate/greet configured" in capsys.readouterr().out


def test_an_unknown_kind_applies_nothing(local_env: Path, project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _manifests(project)
    odd = folder / "zz-odd.yaml"
    odd.write_text(yaml.safe_dump({"apiVersion": "example.com/v1", "kind": "Gizmo", "metadata": {"name": "g"}}))
    assert main(["apply", str(folder)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: nothing applied to the local platform:")
    assert f"{odd}: kind Gizmo (g) cannot be applied" in err
    assert not (local_env / "templates").exists() and not (local_env / "configmaps").exists()


def test_bad_sources_are_clear_errors(local_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apply", str(tmp_path / "missing.yaml")]) == 1
    assert "cannot read" in capsys.readouterr().err
    assert main(["apply", "no_such_module_xyz:app"]) == 1
    assert "cannot import module 'no_such_module_xyz'" in capsys.readouterr().err
    (tmp_path / "bad.yaml").write_text("just: a mapping\n")
    assert main(["apply", str(tmp_path / "bad.yaml")]) == 1
    assert "document 1 is not a Kubernetes object" in capsys.readouterr().err
    hostile = greet_config()
    hostile["data"] = {"../../escape": "x"}
    (tmp_path / "cm.yaml").write_text(yaml.safe_dump(hostile))
    assert main(["apply", str(tmp_path / "cm.yaml")]) == 1
    assert "'../../escape' cannot be a file name" in capsys.readouterr().err
    assert not (local_env / "configmaps").exists()


def test_a_module_app_records_its_project_root(local_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``pipelines.mnist:app`` compiles; its templates remember the folder ``pipelines`` imports from."""
    from scanflow_argo.platform.apply import TEMPLATE_KINDS, apply_objects, load_sources
    from scanflow_argo.platform.local import LocalPlatform
    from scanflow_argo.settings import Settings

    monkeypatch.chdir(tmp_path)
    sources = load_sources(["pipelines.mnist:app"], cwd=ROOT)
    assert {s.project_dir for s in sources} == {ROOT}
    kinds = {s.kind for s in sources}
    assert {"WorkflowTemplate", "SeldonDeployment", "ConfigMap", "Role"} <= kinds
    settings = Settings.from_env()
    platform = LocalPlatform(settings)
    lines: list[str] = []
    apply_objects(platform, [s for s in sources if s.kind in TEMPLATE_KINDS], settings, echo=lines.append)
    assert "workflowtemplate/mnist-train created" in lines
    assert platform.project_dir("mnist-train") == ROOT


def test_a_claim_applied_here_is_the_folder_a_workflow_mounts(
    local_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "scratch"}, "spec": {}}
    (tmp_path / "pvc.yaml").write_text(yaml.safe_dump(claim))
    assert main(["apply", str(tmp_path / "pvc.yaml")]) == 0
    assert capsys.readouterr().out.strip() == "persistentvolumeclaim/scratch created"
    assert main(["apply", str(tmp_path / "pvc.yaml")]) == 0
    assert capsys.readouterr().out.strip() == "persistentvolumeclaim/scratch unchanged"
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed: mounts need the sandbox")
    mount = {"name": "data", "mountPath": "/data"}
    wf = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "claim-"},
        "spec": {
            "entrypoint": "main",
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "scratch"}}],
            "templates": [
                {
                    "name": "main",
                    "container": {"image": "busybox", "command": ["sh", "-c", "echo kept > /data/x"], "volumeMounts": [mount]},
                }
            ],
        },
    }
    (tmp_path / "wf.yaml").write_text(yaml.safe_dump(wf))
    assert main(["run", str(tmp_path / "wf.yaml")]) == 0
    assert (local_env / "volumes" / "default" / "scratch" / "x").read_text() == "kept\n"
    hostile = {**claim, "metadata": {"name": "scratch", "namespace": "../up"}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(hostile))
    assert main(["apply", str(tmp_path / "bad.yaml")]) == 1
    assert "namespace must be a plain name" in capsys.readouterr().err


def test_apply_puts_a_configmap_in_its_namespace_and_each_namespaces_runs_read_their_own(
    local_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``kubectl apply`` puts an object in its manifest's namespace, else in ``-n``'s (else the context's): so does
    ``scanflow-argo apply`` of a ConfigMap (``--namespace``/``--team``, else the platform's ``scanflow``), and a
    Pod's ``configMapKeyRef`` reads its own namespace's (docs/teams.md, Honest boundaries)."""
    science, engineering = "scanflow-mnist-science", "scanflow-mnist-engineering"
    cases = [  # (global options, the manifest's metadata.namespace, value, where it lands, what apply says)
        ([], None, "platform-default", "scanflow", "configmap/shared created"),
        (["--namespace", science], None, "science", science, "configmap/shared created"),  # one name: another object
        (["--team", "mnist/engineering"], None, "engineering", engineering, "configmap/shared created"),
        ([], "team-c", "c", "team-c", "configmap/shared created"),  # the manifest's own namespace
        (["--namespace", science], None, "science-2", science, "configmap/shared configured"),
    ]
    for i, (options, namespace, value, lands, line) in enumerate(cases):
        meta = {"name": "shared", **({"namespace": namespace} if namespace else {})}
        (tmp_path / f"cm{i}.yaml").write_text(
            yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"who": value}})
        )
        assert main([*options, "apply", str(tmp_path / f"cm{i}.yaml")]) == 0
        assert capsys.readouterr().out.strip() == line
        assert (local_env / "configmaps" / ".namespaces" / lands / "shared" / "who").read_text() == value
    assert not (local_env / "configmaps" / "shared").exists()  # never the older, un-namespaced folder

    env = [{"name": "WHO", "valueFrom": {"configMapKeyRef": {"name": "shared", "key": "who"}}}]
    template = {"name": "main", "container": {"image": "busybox", "command": ["sh", "-c", "echo who=$WHO"], "env": env}}
    wf = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"generateName": "who-"}}
    (tmp_path / "wf.yaml").write_text(yaml.safe_dump({**wf, "spec": {"entrypoint": "main", "templates": [template]}}))
    for options, value in (
        ([], "platform-default"),
        (["--namespace", science], "science-2"),
        (["--team", "mnist/engineering"], "engineering"),
    ):
        assert main([*options, "submit", str(tmp_path / "wf.yaml"), "--wait", "--timeout", "60"]) == 0
        run = capsys.readouterr().out.splitlines()[0]
        assert main([*options, "logs", run]) == 0
        assert capsys.readouterr().out.strip() == f"{run}: who={value}"
    hostile = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared", "namespace": "../up"}, "data": {"k": "v"}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(hostile))
    assert main(["apply", str(tmp_path / "bad.yaml")]) == 1
    assert "configmap/shared: namespace '../up' is no Kubernetes namespace name" in capsys.readouterr().err
    assert not (local_env / "configmaps" / "up").exists() and not (local_env / "up").exists()
