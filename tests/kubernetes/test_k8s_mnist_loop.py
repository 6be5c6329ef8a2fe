"""The MNIST loop on the Kubernetes platform, against the fakes, as far as fakes can honestly take it.

What runs for real: the rendered install (``kubectl kustomize manifests/`` and ``manifests/serving``: every object
the fakes serve is admitted against its CRD, strictly, as ``kubectl apply`` sends it); the CLI (``apply -``,
``submit``, ``status``, ``wait``, ``logs``, ``scale``, ``stop``, ``resume``) with the ``scanflow-cli`` identity; the
pipeline's ``register``, ``promote`` and ``deploy`` step functions with the environment the rendered
WorkflowTemplate gives their pods (ConfigMap keys, ``podSpecPatch``) and the ``mnist-workflows`` identity, against a
real MLflow registry; both agents rebuilt from their compiled ConfigMaps as their pods rebuild them, with the
environment of their rendered Deployments, their own identities, their state in the ``<agent>-state`` ConfigMaps and
their decisions recorded in MLflow; the feedback contract (the model pod's ``FEEDBACK_DIR`` on the state volume is
the retraining step's ``feedback/mnist`` under its ``SCANFLOW_HOME``); the admission policy of the drift supervisor,
evaluated (cel-python) on the Workflow it actually created; every request checked against the Roles of the install.

What the fakes stand in for, so what this does not prove: Argo's controller (this test plays it: it runs the three
step functions itself instead of scheduling pods, and skips ingest/train/evaluate, which ``tests/engine`` and
``tests/mnist`` run), Seldon's operator (no pods roll; the test writes ``Available``), Prometheus (the agents' PromQL
readers are replaced by fixed values — ``cluster_checks.check_promql`` checks the queries statically and
``tests/agents`` runs them against a real Prometheus), the storage (a folder plays the ReadWriteMany claim), the
in-cluster address of MLflow (the test's server stands in for ``mlflow.scanflow.svc``), and the identities
(each one's token names it; the fake authorizes nothing itself: ``check_rbac`` does, from the install's Roles).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from cluster_checks import KUBECTL, Call, call_of, check_rbac, pods, render
from fakeapi import FakeCluster, node_status

from scanflow_argo.agents.decide import Sample
from scanflow_argo.agents.loader import load_agent
from scanflow_argo.agents.runtime import AgentRuntime
from scanflow_argo.cli import main
from scanflow_argo.clock import ManualClock
from scanflow_argo.serving.feedback import write_shard
from scanflow_argo.settings import Settings
from scanflow_argo.tracking import registry

ROOT = Path(__file__).resolve().parents[2]
NS = "scanflow"
pytestmark = pytest.mark.slow

CONSUMERS = {
    # argoproj/argo-workflows docs/workflow-rbac.md: the executor in every step pod reports its outputs
    "mnist-workflows": [Call("mnist-workflows", "argoproj.io", "workflowtaskresults", v, None) for v in ("create", "patch")],
    # Prometheus' Kubernetes service discovery (role: pod) lists and watches pods for the PodMonitors
    "prometheus-k8s": [Call("prometheus-k8s", "", "pods", v, None) for v in ("list", "watch")],
    # the Argo Server in `client` auth mode acts with the CLI's token (server/workflow/workflow_server.go):
    # logs list the run's pods and read their logs; retry updates the run and deletes its failed pods; resume and
    # template updates write with update
    "scanflow-cli": [
        Call("scanflow-cli", "", "pods", "list", None),
        Call("scanflow-cli", "", "pods", "delete", None),
        Call("scanflow-cli", "argoproj.io", "workflows", "update", None),
    ],
}


@pytest.fixture(scope="module")
def install() -> dict[str, Any]:
    root = render(ROOT / "manifests")
    serving = subprocess.run(
        [str(KUBECTL), "kustomize", str(ROOT / "manifests" / "serving")], capture_output=True, text=True, timeout=120
    )
    return {"root": root, "serving_yaml": serving.stdout, "objs": root + [d for d in yaml.safe_load_all(serving.stdout) if d]}


def kubeconfig(fake: FakeCluster, path: Path, identity: str) -> Path:
    """A kubeconfig whose token names the ServiceAccount it stands for (in a pod: its mounted token)."""
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": fake.url}}],
                "users": [{"name": identity, "user": {"token": f"sa:{identity}"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": identity, "namespace": NS}}],
                "current-context": "c",
            }
        )
    )
    return path


def pod_env(objs: list[dict[str, Any]], where: str, overrides: dict[str, str]) -> dict[str, str]:
    """The environment a rendered pod gets (ConfigMap keys resolved, Argo's {{workflow.namespace}}), plus overrides
    for what only a cluster has (its MLflow Service, its ServiceAccount token)."""
    (pod,) = [p for p in pods(objs) if p.where == where]
    maps = {m["metadata"]["name"]: m.get("data") or {} for m in objs if m["kind"] == "ConfigMap"}
    env: dict[str, str] = {}
    for name, entry in pod.env.items():
        ref = entry.get("valueFrom") or {}
        if "value" in entry:
            env[name] = str(entry["value"]).replace("{{workflow.namespace}}", NS)
        elif "configMapKeyRef" in ref and ref["configMapKeyRef"]["key"] in maps.get(ref["configMapKeyRef"]["name"], {}):
            env[name] = maps[ref["configMapKeyRef"]["name"]][ref["configMapKeyRef"]["key"]]
        elif "fieldRef" in ref:
            env[name] = {"metadata.name": f"{where.split('/')[1]}-7d9f-abcde", "status.podIP": "10.0.0.7"}[
                ref["fieldRef"]["fieldPath"]
            ]
    return {**env, **overrides}


class Controller:
    """Plays Argo's controller for mnist-train/mnist-retrain: runs the register, promote and deploy step functions
    with their pods' environment (see the module docstring for what it skips), then writes the run's status."""

    def __init__(
        self, fake: FakeCluster, objs: list[dict[str, Any]], env: dict[str, str], volume: Path, monkeypatch: Any
    ) -> None:
        self.fake, self.objs, self.env, self.volume, self.mp = fake, objs, env, volume, monkeypatch

    def run(self, name: str, accuracy: float, drifted: float, tmp: Path) -> dict[str, str]:
        from pipelines.mnist import tasks

        wf = self.fake.get("workflows", NS, name)
        template = wf["spec"]["workflowTemplateRef"]["name"]
        wt = self.fake.get("workflowtemplates", NS, template)
        params = {p["name"]: p.get("value", "") for p in wt["spec"]["arguments"]["parameters"]}
        params.update({p["name"]: p["value"] for p in (wf["spec"].get("arguments") or {}).get("parameters") or []})
        outputs: dict[str, str] = {}
        for step in ("train", "register", "promote", "deploy"):
            env = pod_env(self.objs, f"WorkflowTemplate/{template} {step}", self.env)
            env["SCANFLOW_HOME"] = str(self.volume / Path(env["SCANFLOW_HOME"]).relative_to("/var/lib/scanflow"))
            for key, value in env.items():
                self.mp.setenv(key, value)
            if step == "train" and params.get("feedback_dir"):
                _, labels = tasks._load_feedback(params["feedback_dir"], params["feedback_window"])
                outputs["feedback"] = str(len(labels))
            elif step == "register":
                metrics = json.dumps({"accuracy": accuracy, "drifted_accuracy": drifted})
                outputs.update(tasks.register(make_model(tmp / f"{name}-model"), params["model_name"], metrics))
            elif step == "promote":
                outputs.update(tasks.promote(params["model_name"], outputs["version"], params["metric"], params["rollout"]))
            elif step == "deploy":
                outputs.update(tasks.deploy(params["deployment"], params["model_name"], outputs["promoted"], params["rollout"]))
        node_id, node = node_status(name, "deploy", "Succeeded", template="deploy")
        self.fake.set_status(
            "workflows", NS, name, {"phase": "Succeeded", "finishedAt": "2026-01-01T00:00:00Z", "nodes": {node_id: node}}
        )
        self.fake.pod_logs[f"{name}-deploy-{node_id.rsplit('-', 1)[1]}"] = f"rolled {params['deployment']}\n"
        return outputs


def make_model(folder: Path) -> Path:
    """A model folder as the train step writes it (TorchScript net, drift statistics, metadata)."""
    import torch

    folder.mkdir(parents=True)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10), torch.nn.Softmax(dim=-1))
    torch.jit.script(net).save(str(folder / "model.pt"))
    np.savez(folder / "drift.npz", mean=np.zeros(784), std=np.ones(784))
    (folder / "meta.json").write_text(json.dumps({"classes": list(range(10)), "input_shape": [1, 28, 28], "metrics": {}}))
    return folder


class Fixed:
    """The agents' PromQL reader replaced by values (no Prometheus scrapes pods here)."""

    def __init__(self, values: dict[str, float]) -> None:
        self.values = values

    def read(self, sensor: Any, now: float) -> list[Sample]:
        return [Sample(now, self.values[sensor.name])]


def agent(
    objs: list[dict[str, Any]],
    name: str,
    env: dict[str, str],
    readers: dict[str, Any],
    clock: ManualClock,
    factory_args: dict[str, Any] | None = None,
) -> AgentRuntime:
    """An agent as its pod starts it: `scanflow-argo agent run ENTRYPOINT` with SCANFLOW_AGENT_CONFIG from its ConfigMap
    (``factory_args``: arguments changed, as an edit of that ConfigMap would)."""
    (deployment,) = [o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == name]
    entrypoint = deployment["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    environ = pod_env(objs, f"Deployment/{name}", env)
    config = json.loads(environ["SCANFLOW_AGENT_CONFIG"])
    config["factory_args"] = {**config.get("factory_args", {}), **(factory_args or {})}
    settings = Settings.from_env(environ=environ)
    return AgentRuntime(load_agent(entrypoint, config=config), settings, clock=clock, readers=readers)


def identity_calls(fake: FakeCluster) -> list[Call]:
    calls = []
    for r in fake.requests:
        who = r.headers.get("authorization", "").removeprefix("Bearer sa:")
        call = call_of(who, r.method, r.path)
        if call is not None:  # authorization comes first: a 404 or a 409 was still a call the Role must allow
            calls.append(call)
    return calls


def test_the_mnist_loop_train_serve_drift_retrain_roll_scale(
    install: dict[str, Any],
    fake: FakeCluster,
    mlflow_server: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    objs, model = install["objs"], f"mnist-loop-{uuid.uuid4().hex[:8]}"
    volume = tmp_path / "scanflow-data"  # the ReadWriteMany claim model pods and steps mount at /var/lib/scanflow
    for obj in install["root"]:  # kubectl apply -k manifests/: the ConfigMaps, strictly validated
        if obj["kind"] == "ConfigMap":
            fake.put(obj)
    templates = yaml.safe_dump_all([o for o in install["root"] if o["kind"] in ("WorkflowTemplate", "CronWorkflow")])
    cluster_only = {"MLFLOW_TRACKING_URI": mlflow_server.url, "SCANFLOW_TRACKING": "1"}
    for var in ("SCANFLOW_ARGO_SERVER", "MLFLOW_TRACKING_URI", "SCANFLOW_ARTIFACTS_DESTINATION"):
        monkeypatch.delenv(var, raising=False)
    cli = {
        "SCANFLOW_PLATFORM": "kubernetes",
        "SCANFLOW_NAMESPACE": NS,
        "KUBECONFIG": str(kubeconfig(fake, tmp_path / "cli", "scanflow-cli")),
        "MLFLOW_TRACKING_URI": mlflow_server.url,
        "SCANFLOW_ARTIFACTS_DESTINATION": "pvc://mlflow-data/artifacts",
        "SCANFLOW_HOME": str(tmp_path / "cli-home"),
    }

    def as_cli(*args: str, stdin: str = "") -> str:
        with monkeypatch.context() as m:
            for key, value in cli.items():
                m.setenv(key, value)
            m.setattr("sys.stdin", io.StringIO(stdin))
            assert main(list(args)) == 0, capsys.readouterr().err
        return capsys.readouterr().out

    # the rendered templates through the CLI (kubectl applies them the same: created, then replaced)
    assert "workflowtemplate/mnist-retrain configured" in as_cli("apply", "-", stdin=templates)
    # serving, applied by scanflow-argo: no champion of this model yet → no model, 0 replicas, nothing crash-loops
    serving = install["serving_yaml"].replace("models:/mnist@champion", f"models:/{model}@champion")
    assert "seldondeployment/mnist created (no models:/" in as_cli("apply", "-", stdin=serving)
    sdep = fake.get("seldondeployments", NS, "mnist")
    assert sdep["spec"]["predictors"][0]["replicas"] == 0 and sdep["metadata"]["annotations"]["scanflow.io/replicas"] == "1"

    # train: submitted as the UI does; the controller runs its steps as the mnist-workflows ServiceAccount
    steps = {**cluster_only, "KUBECONFIG": str(kubeconfig(fake, tmp_path / "wf", "mnist-workflows"))}
    controller = Controller(fake, objs, steps, volume, monkeypatch)
    train = as_cli("submit", "mnist-train", "-p", f"model_name={model}").strip()
    first = controller.run(train, accuracy=0.97, drifted=0.60, tmp=tmp_path)
    assert first["promoted"] == "true" and first["rolled"] == "true"
    served = fake.get("seldondeployments", NS, "mnist")["spec"]["predictors"][0]
    assert (
        served["graph"]["modelUri"].startswith("pvc://mlflow-data/artifacts/") and served["replicas"] == 1
    )  # first roll: back to 1
    fake.set_status("seldondeployments", NS, "mnist", {"state": "Available", "replicas": 1})  # Seldon's operator
    assert f"{train}" in as_cli("status") and "Succeeded" in as_cli("wait", train)
    assert "rolled mnist" in as_cli("logs", train)

    # serve: a model pod records feedback where its FEEDBACK_DIR says (the state volume)
    (model_pod,) = [p for p in pods(objs) if p.role == "model"]
    feedback_dir = volume / Path(model_pod.env["FEEDBACK_DIR"]["value"]).relative_to("/var/lib/scanflow")
    rng = np.random.default_rng(0)
    write_shard(feedback_dir, rng.random((12, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 12), rng.integers(0, 10, 12))

    # drift: the drift supervisor, as its pod runs it, sees accuracy fall and drift rise for its `for` window
    clock = ManualClock(start=time.time())
    agent_env = {**cluster_only, "SCANFLOW_HOME": str(tmp_path / "agent-home")}
    supervisor = agent(
        objs,
        "drift-supervisor",
        {**agent_env, "KUBECONFIG": str(kubeconfig(fake, tmp_path / "ds", "drift-supervisor"))},
        {"prometheus": Fixed({"accuracy": 0.55, "drift": 0.8})},
        clock,
    )

    async def until_submitted(runtime: AgentRuntime, steps: int) -> None:
        await runtime.start(check_online=False)
        for _ in range(steps):
            await runtime.step()
            clock.advance(runtime.agent.interval)
        await runtime.close()

    asyncio.run(until_submitted(supervisor, 8))
    (retrain,) = [
        w
        for w in fake.objects
        if w[0] == "workflows" and fake.objects[w]["spec"]["workflowTemplateRef"]["name"] == "mnist-retrain"
    ]
    created = fake.get(*retrain)
    params = {p["name"]: p["value"] for p in created["spec"]["arguments"]["parameters"]}
    assert params["feedback_dir"] == "feedback/mnist" and ".." in params["feedback_window"]
    assert created["metadata"]["labels"]["scanflow.io/agent"] == "drift-supervisor"
    state = json.loads(fake.get("configmaps", NS, "drift-supervisor-state")["data"]["state.json"])
    assert any(r.get("result") == "ok" for r in state["keys"].values())  # the action, persisted
    _admitted_by_the_agents_policy(objs, fake, "drift-supervisor")

    # retrain on the feedback the model wrote; better on drifted accuracy, it becomes the candidate (the template's
    # rollout=canary): its deploy step rolls nothing
    fake.objects[retrain]["spec"]["arguments"]["parameters"].append({"name": "model_name", "value": model})
    second = controller.run(retrain[2], accuracy=0.95, drifted=0.90, tmp=tmp_path)
    assert second["feedback"] == "12" and second["promoted"] == "true" and second["rolled"] == "false"
    assert fake.get("seldondeployments", NS, "mnist")["spec"]["predictors"] == [served]

    # the supervisor, as its pod runs it, rolls the candidate out as a canary on the cluster: the stable predictor and
    # `v<version>` at 20 %, its registry reference resolved to the storage URI Seldon downloads
    version = second["version"]
    supervisor = agent(
        objs,
        "drift-supervisor",
        {**agent_env, "KUBECONFIG": str(kubeconfig(fake, tmp_path / "ds", "drift-supervisor"))},
        {"prometheus": Fixed({"accuracy": 0.95, "drift": 0.1})},
        clock,
        factory_args={"model": model},  # this test's registered model (the install's is `mnist`)
    )

    async def canary_then_promote(runtime: AgentRuntime) -> list[list[tuple[str, int]]]:
        """One evaluation starts the roll-out; a person then promotes it step by step (`scanflow-argo rollout
        promote`, before any analysis is due), as the agent's API does."""
        await runtime.start(check_online=False)
        await runtime.step()
        splits = []
        for _ in range(4):
            predictors = fake.get("seldondeployments", NS, "mnist")["spec"]["predictors"]
            splits.append([(p["name"], p.get("traffic", 100)) for p in predictors])
            if len(predictors) == 1 and predictors[0]["name"] != served["name"]:
                break
            runtime.rollouts.promote("mnist", clock.now())
        await runtime.close()
        return splits

    splits = asyncio.run(canary_then_promote(supervisor))
    stable, canary = served["name"], f"v{version}"
    assert splits == [[(stable, 80), (canary, 20)], [(stable, 50), (canary, 50)], [(stable, 0), (canary, 100)], [(canary, 100)]]
    (now_serving,) = fake.get("seldondeployments", NS, "mnist")["spec"]["predictors"]
    rolled = now_serving["graph"]["modelUri"]
    assert rolled != served["graph"]["modelUri"] and rolled.startswith("pvc://mlflow-data/artifacts/")
    champion = registry.get_alias(model, "champion", tracking_uri=mlflow_server.url)
    assert champion is not None and str(champion.version) == version

    # scale: the throughput scaler holds p95 under its SLO
    scaler = agent(
        objs,
        "throughput-scaler",
        {**agent_env, "KUBECONFIG": str(kubeconfig(fake, tmp_path / "ts", "throughput-scaler"))},
        {"prometheus": Fixed({"p95": 0.5, "rps": 30.0})},
        clock,
    )
    asyncio.run(until_submitted(scaler, 3))
    replicas = fake.get("seldondeployments", NS, "mnist")["spec"]["predictors"][0]["replicas"]
    assert replicas > 1

    # re-applying the install (kubectl apply -k) and the serving (scanflow-argo apply) keeps the roll and the scale
    assert "cronworkflow/mnist-weekly-retrain configured" in as_cli("apply", "-", stdin=templates)
    assert "seldondeployment/mnist configured" in as_cli("apply", "-", stdin=serving)
    kept = fake.get("seldondeployments", NS, "mnist")["spec"]["predictors"][0]
    assert (kept["graph"]["modelUri"], kept["replicas"]) == (rolled, replicas)

    # the rest of the CLI: scale by hand, stop a running run, resume a suspended one
    as_cli("scale", "mnist", "2")
    running = as_cli("submit", "mnist-train", "-p", f"model_name={model}").strip()
    fake.set_status("workflows", NS, running, {"phase": "Running"})
    as_cli("stop", running)
    fake.objects[("workflows", NS, running)]["spec"].pop("shutdown")
    fake.objects[("workflows", NS, running)]["spec"]["suspend"] = True
    assert as_cli("resume", running).strip() == f"resumed {running}"

    # every call each identity made is allowed by its Role in the install, and no Role grants more than is used
    assert check_rbac(objs, identity_calls(fake), CONSUMERS, people={"scanflow-cli"}) == []


def _admitted_by_the_agents_policy(objs: list[dict[str, Any]], fake: FakeCluster, agent_name: str) -> None:
    """The compiled ValidatingAdmissionPolicy, evaluated as the API server would on the Workflow the agent sent."""
    import celpy

    (policy,) = [o for o in objs if o["kind"] == "ValidatingAdmissionPolicy" and agent_name in o["metadata"]["name"]]
    (sent,) = [
        r.body
        for r in fake.requests
        if r.method == "POST" and r.path.endswith("/workflows") and "sa:" + agent_name in r.headers.get("authorization", "")
    ]
    env = celpy.Environment()
    activation = {
        "object": celpy.json_to_cel(sent),
        "request": celpy.json_to_cel({"namespace": NS, "userInfo": {"username": f"system:serviceaccount:{NS}:{agent_name}"}}),
    }
    for condition in policy["spec"]["matchConditions"]:
        assert env.program(env.compile(condition["expression"])).evaluate(activation) is not False
    for rule in policy["spec"]["validations"]:
        assert env.program(env.compile(rule["expression"])).evaluate(activation), rule["message"]
    forged = {**sent, "spec": {**sent["spec"], "serviceAccountName": "argo-server"}}
    activation["object"] = celpy.json_to_cel(forged)
    assert not all(env.program(env.compile(r["expression"])).evaluate(activation) for r in policy["spec"]["validations"])
    _ = os  # (the environment is set through monkeypatch)
