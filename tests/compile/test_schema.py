"""Schema checks: MNIST and the demo pass; broken manifests fail as the API server refuses them (Argo 4.1's
full CRDs with their CEL rules); the CRDs shipped with the package are the reference copies in ../shared."""

from __future__ import annotations

import copy
import json
import lzma
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from _compile_helpers import build_app

from scanflow_argo.cli.compile import load_app
from scanflow_argo.compile import compile_app
from scanflow_argo.compile.crd import CrdSchema
from scanflow_argo.compile.schema import DIGESTED, SHIPPED, SchemaChecker, crd_text, digest_json, json_name, load_crd
from scanflow_argo.errors import SchemaError, SetupError


@pytest.fixture(scope="module")
def checker() -> SchemaChecker:
    """The CRDs shipped with the package (what a user without this repository gets)."""
    return SchemaChecker()


@pytest.fixture(scope="module")
def mnist() -> list[dict[str, Any]]:
    return compile_app(load_app("pipelines.mnist:app"))


def of(objs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return copy.deepcopy(next(o for o in objs if o["kind"] == kind))


@pytest.mark.shared
@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_crds_are_the_reference_copies_byte_for_byte(name: str, shared_dir: Path) -> None:
    """The package's copy of each CRD is ../shared/schemas' (the tests' oracle), unmodified."""
    reference = shared_dir / "schemas" / "crds" / name
    reference = reference if reference.is_file() else shared_dir / "schemas" / name
    shipped = lzma.decompress(resources.files("scanflow_argo.compile").joinpath("schemas", f"{name}.xz").read_bytes())
    assert shipped == reference.read_bytes()


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_each_shipped_crds_json_digest_is_its_yaml_document(name: str) -> None:
    """What ``load_crd`` reads (the JSON digest, fast) is the document of the shipped YAML (the upstream file):
    after replacing a CRD, ``scripts/digest-crds`` writes the digests and prints ``DIGESTED``'s lines."""
    assert set(DIGESTED) == set(SHIPPED)
    text = lzma.decompress(resources.files("scanflow_argo.compile").joinpath("schemas", f"{json_name(name)}.xz").read_bytes())
    document = yaml.load(crd_text(name), Loader=yaml.CSafeLoader)
    assert text.decode() == digest_json(document), f"{json_name(name)}.xz is stale: run scripts/digest-crds"
    assert json.loads(text) == document
    assert load_crd(name).schema == CrdSchema(document).schema


@pytest.mark.shared
def test_checks_against_the_reference_copies_agree(shared_dir: Path, mnist: list[dict[str, Any]]) -> None:
    """``--schemas ../shared/schemas`` and the shipped CRDs give the same verdicts."""
    oracle = SchemaChecker(shared_dir / "schemas")
    broken = of(mnist, "WorkflowTemplate")
    broken["spec"]["templates"][0]["timeout"] = "1m"
    for obj in [*mnist, broken]:
        assert SchemaChecker().problems(obj) == oracle.problems(obj)
    assert "from " + str(shared_dir / "schemas") in oracle.describe()


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
    assert (
        f'WorkflowTemplate/{name}: spec.entrypoint: Invalid value: "array": spec.entrypoint in body must be of type string: "array"'
        in text
    )
    assert f"WorkflowTemplate/{name}: spec.templates[1].retryStrategy.retryPolicy: Invalid value" in text
    # a type error stops the CEL rules, and the API server says so
    assert info.value.problems[-1].endswith(
        "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"
    )
    assert len(info.value.problems) == 3


def test_broken_seldon_deployment_fails(checker: SchemaChecker, mnist: list[dict[str, Any]]) -> None:
    sd = of(mnist, "SeldonDeployment")
    del sd["spec"]["predictors"][0]["graph"]["name"]
    sd["spec"]["predictors"][0]["replicas"] = "two"
    problems = checker.problems(sd)
    assert "SeldonDeployment/mnist: spec.predictors[0].graph.name: Required value" in problems
    assert any(p.startswith("SeldonDeployment/mnist: spec.predictors[0].replicas: Invalid value") for p in problems)


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
    with pytest.raises(SetupError, match=r"schemas not found in .*nowhere .*argoproj.io_workflows.yaml.*--schemas"):
        checker.check(compile_app(build_app()))
    assert SchemaChecker().available  # the shipped ones are always there


def _workflow(**template: Any) -> dict[str, Any]:
    main = {
        "name": "main",
        "dag": {"tasks": [{"name": "a", "template": "echo"}, {"name": "b", "template": "echo", "depends": "a"}]},
    }
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "argo4-"},
        "spec": {"entrypoint": "main", "templates": [{**main, **template}, {"name": "echo", "container": {"image": "alpine"}}]},
    }


def _tasks(wf: dict[str, Any]) -> list[dict[str, Any]]:
    return wf["spec"]["templates"][0]["dag"]["tasks"]


def _many_tasks(wf: dict[str, Any]) -> None:
    _tasks(wf)[:] = [{"name": f"t{i}", "template": "echo"} for i in range(201)]


def _many_templates(wf: dict[str, Any]) -> None:
    wf["spec"]["templates"] += [{"name": f"x{i}", "container": {"image": "alpine"}} for i in range(199)]


def _many_parameters(wf: dict[str, Any]) -> None:
    wf["spec"]["templates"][1]["inputs"] = {"parameters": [{"name": f"p{i}", "value": "1"} for i in range(501)]}


ARGO_4 = [
    # (what Argo 4's CRD refuses, how to break the workflow, the API server's field error)
    (
        "depends with dependencies",
        lambda wf: _tasks(wf)[1].update(dependencies=["a"]),
        "spec.templates[0].dag.tasks[1]: Invalid value: cannot use both 'depends' and 'dependencies'",
    ),
    (
        "continueOn with depends",
        lambda wf: _tasks(wf)[1].update(continueOn={"failed": True}),
        "spec.templates[0].dag.tasks[1]: Invalid value: cannot use 'continueOn' when using 'depends'",
    ),
    (
        "a task name starting with a digit, with dependencies",
        lambda wf: _tasks(wf)[1].update(name="2b"),
        "spec.templates[0].dag.tasks[1]: Invalid value: task name cannot begin with a digit when using 'depends' or 'dependencies'",
    ),
    (
        "timeout on a dag template",
        lambda wf: wf["spec"]["templates"][0].update(timeout="10m"),
        "spec.templates: Invalid value: timeout cannot be applied to steps or dag templates",
    ),
    ("more than 200 templates", _many_templates, "spec.templates: Too many: 201: must have at most 200 items"),
    ("more than 200 DAG tasks", _many_tasks, "spec.templates[0].dag.tasks: Too many: 201: must have at most 200 items"),
    (
        "more than 500 parameters",
        _many_parameters,
        "spec.templates[1].inputs.parameters: Too many: 501: must have at most 500 items",
    ),
    (
        "a template name outside the pattern",
        lambda wf: wf["spec"]["templates"][1].update(name="echo_1"),
        "spec.templates[1].name: Invalid value: \"echo_1\": spec.templates[1].name in body should match '^[a-zA-Z0-9][-a-zA-Z0-9]*$'",
    ),
    (
        "a task name over 128 characters",
        lambda wf: _tasks(wf)[0].update(name="a" * 129),
        "spec.templates[0].dag.tasks[0].name: Too long: may not be more than 128 bytes",
    ),
    (
        "a parameter name outside the pattern",
        lambda wf: wf["spec"].update(arguments={"parameters": [{"name": "a b", "value": "1"}]}),
        "spec.arguments.parameters[0].name: Invalid value: \"a b\": spec.arguments.parameters[0].name in body should match '^[-a-zA-Z0-9_]+$'",
    ),
    (
        "a sequence with count and end",
        lambda wf: _tasks(wf)[0].update(withSequence={"count": "3", "end": "5"}),
        "spec.templates[0].dag.tasks[0].withSequence: Invalid value: only one of count or end can be defined",
    ),
    # the points the rows above left without a case (shared/schemas/crds/argoproj.io_workflows.yaml):
    (
        "a step name outside the pattern",  # WorkflowStep.name: pattern ^[a-zA-Z0-9][-a-zA-Z0-9]*$, maxLength 128
        lambda wf: wf["spec"]["templates"].__setitem__(0, {"name": "main", "steps": [[{"name": "a_b", "template": "echo"}]]}),
        'spec.templates[0].steps[0][0].name: Invalid value: "a_b": spec.templates[0].steps[0][0].name in body should '
        "match '^[a-zA-Z0-9][-a-zA-Z0-9]*$'",
    ),
    (
        "a step name over 128 characters",
        lambda wf: wf["spec"]["templates"].__setitem__(0, {"name": "main", "steps": [[{"name": "s" * 129, "template": "echo"}]]}),
        "spec.templates[0].steps[0][0].name: Too long: may not be more than 128 bytes",
    ),
    (
        "a task name outside the pattern",  # DAGTask.name: pattern ^[a-zA-Z0-9][-a-zA-Z0-9]*$
        lambda wf: _tasks(wf)[0].update(name="-a"),
        'spec.templates[0].dag.tasks[0].name: Invalid value: "-a": spec.templates[0].dag.tasks[0].name in body should '
        "match '^[a-zA-Z0-9][-a-zA-Z0-9]*$'",
    ),
    (
        "a template name over 128 characters",
        lambda wf: wf["spec"]["templates"][1].update(name="e" * 129),
        "spec.templates[1].name: Too long: may not be more than 128 bytes",
    ),
    (
        "an artifact name outside the pattern",  # Artifact.name: pattern ^[-a-zA-Z0-9_{}.]+$
        lambda wf: wf["spec"]["templates"][1].update(outputs={"artifacts": [{"name": "a b", "path": "/tmp/x"}]}),
        'spec.templates[1].outputs.artifacts[0].name: Invalid value: "a b": spec.templates[1].outputs.artifacts[0].name '
        "in body should match '^[-a-zA-Z0-9_{}.]+$'",
    ),
    (
        "timeout on a steps template",  # rule: self.all(t, !(has(t.timeout) && t.timeout != "" && (has(t.steps) || has(t.dag))))
        lambda wf: wf["spec"]["templates"].__setitem__(
            0, {"name": "main", "timeout": "1m", "steps": [[{"name": "a", "template": "echo"}]]}
        ),
        "spec.templates: Invalid value: timeout cannot be applied to steps or dag templates",
    ),
    (
        "activeDeadlineSeconds on a dag template",  # rule: self.all(t, !(has(t.activeDeadlineSeconds) && (has(t.steps) || has(t.dag))))
        lambda wf: wf["spec"]["templates"][0].update(activeDeadlineSeconds=10),
        "spec.templates: Invalid value: activeDeadlineSeconds is only valid for leaf templates",
    ),
    (
        "two template types",
        lambda wf: wf["spec"]["templates"][1].update(script={"image": "alpine", "source": "true"}),
        "spec.templates: Invalid value: template must have at most one template type",
    ),
]


@pytest.mark.parametrize(("what", "breaks", "expected"), ARGO_4, ids=[c[0] for c in ARGO_4])
def test_argo_4_refusals_are_reported_as_the_api_server_words_them(
    checker: SchemaChecker, what: str, breaks: Any, expected: str
) -> None:
    """argoproj/argo-workflows v4.1.2 ``manifests/base/crds/full/argoproj.io_workflows.yaml``: its ``maxItems``,
    ``maxLength``, ``pattern`` and ``x-kubernetes-validations`` (CEL); kubernetes apiextensions-apiserver
    ``pkg/apiserver/schema/cel/validation.go`` and ``pkg/apiserver/validation/validation.go`` word the errors."""
    wf = _workflow()
    assert checker.problems(wf) == []
    breaks(wf)
    assert f"Workflow/argo4-: {expected}" in checker.problems(wf), checker.problems(wf)


def test_transition_rules_and_defaults_follow_the_api_server() -> None:
    """A rule reading ``oldSelf`` is only checked on updates; ``default`` fills a missing field before rules run."""
    from scanflow_argo.compile.crd import CrdSchema

    crd = {
        "spec": {
            "group": "example.com",
            "names": {"kind": "Gadget", "plural": "gadgets"},
            "versions": [
                {
                    "name": "v1",
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {"size": {"type": "integer", "default": 3}, "mode": {"type": "string"}},
                                    "x-kubernetes-validations": [
                                        {"rule": "self.size <= 5", "message": "too big"},
                                        {"rule": "self.mode == oldSelf.mode", "message": "mode is immutable"},
                                    ],
                                }
                            },
                        }
                    },
                }
            ],
        }
    }
    schema = CrdSchema(crd)
    obj = {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": {"mode": "a"}}
    assert schema.admit(obj)["spec"] == {"mode": "a", "size": 3}
    assert [str(e) for e in schema.errors({**obj, "spec": {"mode": "a", "size": 9}})] == ["spec: Invalid value: too big"]
    changed = {**obj, "spec": {"mode": "b"}}
    assert [str(e) for e in schema.errors(changed, old=obj)] == ["spec: Invalid value: mode is immutable"]
    assert schema.errors(changed) == []  # a create has no old object
