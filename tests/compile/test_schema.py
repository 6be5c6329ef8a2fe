"""Schema checks: MNIST and the demo pass; broken manifests fail with kind/name and path; absent schemas say so."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from _compile_helpers import build_app

from scanflow_argo.cli.compile import load_app
from scanflow_argo.compile import compile_app
from scanflow_argo.compile.schema import SchemaChecker
from scanflow_argo.errors import SchemaError, SetupError

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def checker(shared_dir: Path) -> SchemaChecker:
    return SchemaChecker(shared_dir / "schemas")


@pytest.fixture(scope="module")
def mnist() -> list[dict[str, Any]]:
    return compile_app(load_app("pipelines.mnist:app"))


def of(objs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return copy.deepcopy(next(o for o in objs if o["kind"] == kind))


def test_mnist_passes_every_schema(checker: SchemaChecker, mnist: list[dict[str, Any]]) -> None:
    kinds = {o["kind"] for o in mnist}
    assert {"WorkflowTemplate", "CronWorkflow", "SeldonDeployment", "ServiceAccount", "Role", "RoleBinding"} <= kinds
    checker.check(mnist)


def test_demo_passes_every_schema(checker: SchemaChecker) -> None:
    checker.check(compile_app(build_app()))


def test_broken_argo_manifest_fails(checker: SchemaChecker, mnist: list[dict[str, Any]]) -> None:
    wt = of(mnist, "WorkflowTemplate")
    wt["spec"]["templates"][1]["retryStrategy"] = {"limit": 2, "retryPolicy": 7}
    wt["spec"]["entrypoint"] = ["main"]
    with pytest.raises(SchemaError) as info:
        checker.check([wt])
    text = str(info.value)
    name = wt["metadata"]["name"]
    assert f"WorkflowTemplate/{name}: spec.entrypoint:" in text
    assert f"WorkflowTemplate/{name}: spec.templates[1].retryStrategy.retryPolicy:" in text
    assert len(info.value.problems) == 2


def test_broken_seldon_deployment_fails(checker: SchemaChecker, mnist: list[dict[str, Any]]) -> None:
    sd = of(mnist, "SeldonDeployment")
    del sd["spec"]["predictors"][0]["graph"]["name"]
    sd["spec"]["predictors"][0]["replicas"] = "two"
    problems = checker.problems(sd)
    assert any("SeldonDeployment/mnist: spec.predictors[0].graph: 'name' is a required property" in p for p in problems)
    assert any("spec.predictors[0].replicas" in p for p in problems)


def test_broken_kubernetes_objects_fail(checker: SchemaChecker, mnist: list[dict[str, Any]]) -> None:
    role = of(mnist, "Role")
    role["rules"][0]["verb"] = ["get"]  # typo: strict schemas refuse unknown fields
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "Bad_Name"}, "spec": {"replicas": "x"}}
    problems = checker.problems(role) + checker.problems(dep)
    assert any(p.startswith(f"Role/{role['metadata']['name']}: rules[0]") and "verb" in p for p in problems)
    assert any("Deployment/Bad_Name: metadata.name: 'Bad_Name' is not a DNS-1123 subdomain" in p for p in problems)
    assert any("Deployment/Bad_Name: spec.replicas" in p for p in problems)
    assert any("Deployment/Bad_Name: spec: 'selector' is a required property" in p for p in problems)
    unknown = {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}}
    assert "no schema for example.com/v1 Gadget" in checker.problems(unknown)[0]


def test_broken_pod_monitor_fails(checker: SchemaChecker, mnist: list[dict[str, Any]]) -> None:
    pm = of(mnist, "PodMonitor") if any(o["kind"] == "PodMonitor" for o in mnist) else of(compile_app(build_app()), "PodMonitor")
    assert checker.problems(pm) == []
    pm["spec"]["podMetricsEndpoints"] = [{"port": 8080, "path": "metrics", "bogus": 1}]
    pm["spec"]["selector"] = {}
    problems = checker.problems(pm)
    name = pm["metadata"]["name"]
    for needle in (
        "spec.selector: needs matchLabels",
        "[0].port: needs the container port's name",
        "[0].path: 'metrics' must start",
        "[0].bogus: unknown field",
    ):
        assert any(needle in p and p.startswith(f"PodMonitor/{name}") for p in problems), needle


def test_absent_schemas_are_named(tmp_path: Path) -> None:
    checker = SchemaChecker(tmp_path / "nowhere")
    assert not checker.available
    with pytest.raises(SetupError, match=r"schemas not found in .*nowhere.*--schemas DIR"):
        checker.check(compile_app(build_app()))
