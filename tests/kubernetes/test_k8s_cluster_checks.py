"""The install's pieces fit together on a cluster (``cluster_checks``): on every tree — the root, the
external-storage overlay (both with ``manifests/monitoring/network-policy``, which kube-prometheus needs), the root
with components/kube-prometheus-stack — each with ``manifests/serving``; and
each check fails on the defects the manifests had before (shown on the root tree with that defect put back)."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster_checks import (
    PROMETHEUSES,
    Call,
    check_artifact_repository,
    check_env,
    check_feedback,
    check_monitoring,
    check_promql,
    check_rbac,
    check_urls,
    env_reads,
    render,
)

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
DOCS = (ROOT / "docs" / "cluster.md").read_text()


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    copy_root = Path(shutil.copytree(MANIFESTS, tmp_path_factory.mktemp("m") / "manifests"))
    stack = copy_root / "kustomization.yaml"
    config = yaml.safe_load(stack.read_text())
    config["components"].append("components/kube-prometheus-stack")
    stack.write_text(yaml.safe_dump(config))
    serving = render(MANIFESTS / "serving")
    policy = render(MANIFESTS / "monitoring" / "network-policy")  # applied on its own (docs/cluster.md, step 4)
    return {
        "root": render(MANIFESTS) + serving + policy,
        "external-storage": render(MANIFESTS / "overlays" / "external-storage") + serving + policy,
        "kube-prometheus-stack": render(copy_root) + serving,
    }


CHECKS: dict[str, Callable[[list[dict[str, Any]]], list[str]]] = {
    "urls": lambda objs: check_urls(objs, DOCS),
    "env": check_env,
    "artifacts": check_artifact_repository,
    "promql": check_promql,
    "monitoring": check_monitoring,
    "feedback": check_feedback,
}


@pytest.mark.parametrize("check", sorted(CHECKS))
@pytest.mark.parametrize("tree", ["root", "external-storage", "kube-prometheus-stack"])
def test_every_tree_passes(trees: dict[str, list[dict[str, Any]]], tree: str, check: str) -> None:
    assert CHECKS[check](trees[tree]) == []


def test_the_stack_component_points_agents_and_monitors_at_the_stack(trees: dict[str, list[dict[str, Any]]]) -> None:
    objs = trees["kube-prometheus-stack"]
    prom = next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "scanflow-prometheus")
    assert prom["data"]["SCANFLOW_PROMETHEUS_URL"] == "http://kube-prometheus-stack-prometheus.monitoring.svc:9090"
    assert all(o["metadata"]["labels"]["release"] == "kube-prometheus-stack" for o in objs if o["kind"] == "PodMonitor")


# -- each check catches what the old manifests got wrong ---------------------------------------------------


def _agents(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        o for o in objs if o["kind"] == "Deployment" and o["metadata"]["labels"].get("app.kubernetes.io/component") == "agent"
    ]


def _drop_env(objs: list[dict[str, Any]], name: str) -> None:
    for dep in _agents(objs):
        c = dep["spec"]["template"]["spec"]["containers"][0]
        c["env"] = [e for e in c["env"] if e["name"] != name]


def _drop(objs: list[dict[str, Any]], kind: str, name: str) -> None:
    objs[:] = [o for o in objs if not (o["kind"] == kind and o["metadata"]["name"] == name)]


def _old_queries(objs: list[dict[str, Any]]) -> None:
    for cm in objs:
        if cm["kind"] == "ConfigMap" and "agent.json" in (cm.get("data") or {}):
            cm["data"]["agent.json"] = cm["data"]["agent.json"].replace(',service=\\"predictions\\"', "")


def _model_label_on_server_metrics(objs: list[dict[str, Any]]) -> None:
    """The local router labels its server metrics with model_name too; Seldon Core 1.18's executor does not."""
    for cm in objs:
        if cm["kind"] == "ConfigMap" and "agent.json" in (cm.get("data") or {}):
            cm["data"]["agent.json"] = cm["data"]["agent.json"].replace(
                'service=\\"predictions\\"', 'service=\\"predictions\\",model_name=\\"classifier\\"'
            )


def _no_state_volume(objs: list[dict[str, Any]]) -> None:
    for o in objs:
        if o["kind"] == "WorkflowTemplate":
            o["spec"].pop("podSpecPatch", None)
        if o["kind"] == "SeldonDeployment":
            c = o["spec"]["predictors"][0]["componentSpecs"][0]["spec"]["containers"][0]
            c["env"] = [e for e in c["env"] if e["name"] != "FEEDBACK_DIR"]


def _feedback_elsewhere(objs: list[dict[str, Any]]) -> None:
    for o in objs:
        if o["kind"] == "SeldonDeployment":
            c = o["spec"]["predictors"][0]["componentSpecs"][0]["spec"]["containers"][0]
            (env,) = [e for e in c["env"] if e["name"] == "FEEDBACK_DIR"]
            env["value"] = "/var/lib/scanflow/feedback"


def _metrics_path(objs: list[dict[str, Any]]) -> None:
    for o in objs:
        if o["kind"] == "PodMonitor" and o["metadata"]["name"] == "seldon-mnist":
            o["spec"]["podMetricsEndpoints"][0]["path"] = "/metrics"


def _unknown_prometheus(objs: list[dict[str, Any]]) -> None:
    for o in objs:
        if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "scanflow-prometheus":
            o["data"]["SCANFLOW_PROMETHEUS_URL"] = "http://prometheus.monitoring:9090"


OLD_DEFECTS = [
    # (the defect, how to put it back, the check, what it must report)
    (
        "agents without SCANFLOW_PROMETHEUS_URL",
        lambda o: _drop_env(o, "SCANFLOW_PROMETHEUS_URL"),
        "urls",
        "Deployment/drift-supervisor: SCANFLOW_PROMETHEUS_URL=http://127.0.0.1:9095 (unset: the default): the pod's own loopback",
    ),
    (
        "agents without SCANFLOW_PROMETHEUS_URL",
        lambda o: _drop_env(o, "SCANFLOW_PROMETHEUS_URL"),
        "env",
        "Deployment/throughput-scaler: SCANFLOW_PROMETHEUS_URL is read and must be set in this pod: not set",
    ),
    (
        "agents without MLFLOW_TRACKING_URI",
        lambda o: _drop_env(o, "MLFLOW_TRACKING_URI"),
        "urls",
        "Deployment/drift-supervisor: MLFLOW_TRACKING_URI=http://127.0.0.1:5005 (unset: the default): the pod's own loopback",
    ),
    (
        "a Prometheus that is neither in the install nor documented",
        _unknown_prometheus,
        "urls",
        "no Service monitoring/prometheus in the install",
    ),
    (
        "no artifact repository",
        lambda o: _drop(o, "ConfigMap", "artifact-repositories"),
        "artifacts",
        "WorkflowTemplate/mnist-train (templates evaluate, ingest, register, split, train, validate pass artifacts): no ConfigMap artifact-repositories",
    ),
    (
        "no home for feedback and the dataset cache",
        _no_state_volume,
        "env",
        "SeldonDeployment/mnist default/classifier: FEEDBACK_DIR is read and must be set in this pod: not set",
    ),
    (
        "no home for feedback and the dataset cache",
        _no_state_volume,
        "env",
        "WorkflowTemplate/mnist-retrain ingest: XDG_CACHE_HOME is read and must be set in this pod: not set",
    ),
    (
        "p95 and request rate over every executor call",
        _old_queries,
        "promql",
        "agent 'throughput-scaler' sensor 'p95': seldon_api_executor_server_requests_seconds_bucket without service=\"predictions\"",
    ),
    (
        "a label Seldon's executor puts only on its client metrics",
        _model_label_on_server_metrics,
        "promql",
        "agent 'throughput-scaler' sensor 'p95': seldon_api_executor_server_requests_seconds_bucket has no label 'model_name'",
    ),
    (
        "model metrics scraped at the wrong path",
        _metrics_path,
        "promql",
        "agent 'drift-supervisor' sensor 'drift': no PodMonitor scrapes the model pods of 'mnist' at /prometheus",
    ),
    (
        "no home for feedback and the dataset cache",
        _no_state_volume,
        "feedback",
        "agent 'drift-supervisor' action 'retrain' (feedback_dir=feedback/mnist to mnist-retrain): the template's steps have no one SCANFLOW_HOME on a claim",
    ),
    (
        "the model writes feedback beside where the retraining reads it",
        _feedback_elsewhere,
        "feedback",
        "the steps read scanflow-data:feedback/mnist, where no model pod writes feedback (SeldonDeployment/mnist default/classifier: scanflow-data:feedback)",
    ),
    (
        "kube-prometheus may not discover pods in the namespace",
        lambda o: _drop(o, "RoleBinding", "prometheus-k8s"),
        "monitoring",
        "monitoring/prometheus-k8s may not list and watch pods in scanflow: the PodMonitors there discover nothing",
    ),
    (
        "the old install: agents without a Prometheus, kube-prometheus blind to the namespace",
        lambda o: (_drop_env(o, "SCANFLOW_PROMETHEUS_URL"), _drop(o, "RoleBinding", "prometheus-k8s")),
        "monitoring",
        "monitoring/prometheus-k8s may not list and watch pods in scanflow",
    ),
    (
        "kube-prometheus's NetworkPolicy admits only its own clients",
        lambda o: _drop(o, "NetworkPolicy", "scanflow-agents-to-prometheus"),
        "monitoring",
        "Deployment/throughput-scaler: no NetworkPolicy in monitoring admits it to prometheus-k8s.monitoring.svc:9090",
    ),
]


@pytest.mark.parametrize(("defect", "put_back", "check", "expected"), OLD_DEFECTS, ids=[f"{d[2]}: {d[0]}" for d in OLD_DEFECTS])
def test_each_check_reports_what_the_old_manifests_got_wrong(
    trees: dict[str, list[dict[str, Any]]],
    defect: str,
    put_back: Callable[[list[dict[str, Any]]], None],
    check: str,
    expected: str,
) -> None:
    objs = copy.deepcopy(trees["root"])
    put_back(objs)
    problems = CHECKS[check](objs)
    assert any(expected in p for p in problems), "\n".join(problems)


def test_the_stack_selects_only_podmonitors_with_its_release_label(trees: dict[str, list[dict[str, Any]]]) -> None:
    """kube-prometheus-stack's Prometheus selects PodMonitors by its release label (its podMonitorSelector), which
    the old manifests never set; and a policy that admits the agents' pods from another namespace admits nothing."""
    objs = copy.deepcopy(trees["kube-prometheus-stack"])
    monitor = next(o for o in objs if o["kind"] == "PodMonitor" and o["metadata"]["name"] == "seldon-mnist")
    del monitor["metadata"]["labels"]["release"]
    assert check_monitoring(objs) == [
        "PodMonitor/seldon-mnist: no label release=kube-prometheus-stack, so kube-prometheus-stack-prometheus.monitoring.svc:9090 "
        f"never scrapes it ({PROMETHEUSES['kube-prometheus-stack-prometheus.monitoring.svc:9090'].source})"
    ]
    objs = copy.deepcopy(trees["root"])
    policy = next(o for o in objs if o["kind"] == "NetworkPolicy")
    policy["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] = "other"
    assert len(check_monitoring(objs)) == 2  # neither agent is admitted


def test_a_new_environment_read_must_be_classified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The scan finds the variables the code reads; one nobody classified is a problem until someone does."""
    import cluster_checks

    module = tmp_path / "scanflow_argo" / "agents" / "extra.py"
    module.parent.mkdir(parents=True)
    module.write_text('import os\nos.environ.get("SCANFLOW_BRAND_NEW")\n')
    monkeypatch.setattr(cluster_checks, "ROOT", tmp_path)
    assert env_reads("agent") == {"SCANFLOW_BRAND_NEW"}
    assert check_env([]) == [
        "agent pods: the code reads SCANFLOW_BRAND_NEW, which tests/kubernetes/cluster_checks.py does not classify"
    ]


def test_rbac_check_refuses_a_call_without_a_rule_and_a_rule_without_a_call(trees: dict[str, list[dict[str, Any]]]) -> None:
    """The old drift-supervisor Role granted `watch`, which nothing calls; a CLI with no Role of its own could call
    nothing (the RBAC calls the code makes are recorded in test_k8s_mnist_loop)."""
    objs = copy.deepcopy(trees["root"])
    role = next(o for o in objs if o["kind"] == "Role" and o["metadata"]["name"] == "drift-supervisor")
    role["rules"][0]["verbs"].append("watch")
    _drop(objs, "RoleBinding", "scanflow-cli")
    calls = [Call("drift-supervisor", "argoproj.io", "workflows", v, None) for v in ("create", "get", "list")] + [
        Call("scanflow-cli", "argoproj.io", "workflows", "get", "x")
    ]
    problems = check_rbac(objs, calls, {})
    assert "drift-supervisor: its Role grants watch argoproj.io/workflows, which no code path uses" in problems
    assert "scanflow-cli: get argoproj.io/workflows/x is not allowed by its Role" in problems


@pytest.mark.parametrize("identity", ["throughput-scaler", "mnist-workflows"])
def test_rbac_check_asks_for_resource_names_where_every_call_names_an_object_of_the_install(
    trees: dict[str, list[dict[str, Any]]], identity: str
) -> None:
    """The deploy step's Role once granted get/patch on every SeldonDeployment in the namespace though it only rolls
    the application's own: a rule like that is reported, and so is an agent's once it loses its resourceNames; the
    CLI, which acts on whatever a person names, is not narrowed."""
    objs = copy.deepcopy(trees["root"])
    calls = [Call(identity, "machinelearning.seldon.io", "seldondeployments", v, "mnist") for v in ("get", "patch")]

    def about(problems: list[str]) -> list[str]:
        return [p for p in problems if p.startswith(identity) and "seldondeployments" in p]

    assert not about(check_rbac(objs, calls, {}))
    role = next(o for o in objs if o["kind"] == "Role" and o["metadata"]["name"] == identity)
    rule = next(r for r in role["rules"] if r["resources"] == ["seldondeployments"])
    del rule["resourceNames"]
    assert about(check_rbac(objs, calls, {})) == [
        f"{identity}: its Role grants {v} machinelearning.seldon.io/seldondeployments on every object in the namespace, "
        "but it only ever names mnist, which the install defines: list them in resourceNames"
        for v in ("get", "patch")
    ]
    assert not about(check_rbac(objs, calls, {}, people={identity}))


def test_external_inputs_are_documented() -> None:
    """Each address outside the install that pods use is named in docs/cluster.md (where the admin sets it)."""
    from cluster_checks import EXTERNAL

    for address in EXTERNAL:
        assert address.split(":")[0] in DOCS, address
    assert set(PROMETHEUSES) == {a for a in EXTERNAL if "prometheus" in a}  # each Prometheus with what it needs
    assert json.dumps(sorted(EXTERNAL))  # (a table, not a guess)
