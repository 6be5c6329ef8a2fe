"""``resource`` templates through an injected applier: outputs by ``valueFrom.jsonPath`` read from the object
as applied (Argo's executor runs ``kubectl get -o jsonpath=…``: workflow/executor/resource.go
``SaveResourceParameters``), and what cannot work refused before anything runs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pytest

from scanflow_argo.clock import ManualClock
from scanflow_argo.engine import run_workflow
from scanflow_argo.errors import NotSupportedLocally, PlatformError
from scanflow_argo.platform import local_engine
from scanflow_argo.platform.local import LocalPlatform

SD = """apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {name: mnist}
spec:
  predictors: [{name: default, replicas: 2, graph: {name: model}}]
"""


class MemoryApplier:
    """An in-memory platform: keeps what it applied (the local platform's is ``platform.local_engine.LocalApplier``);
    ``get`` answers the object with the next of ``phases`` as its ``status.phase`` (None: it is gone)."""

    def __init__(self, refuse: bool = False, phases: list[str | None] | None = None) -> None:
        self.applied: list[tuple[str, dict[str, Any]]] = []
        self.refuse = refuse
        self.phases = list(phases or [])
        self.gets = 0

    def get(self, applied: Mapping[str, Any]) -> dict[str, Any] | None:
        phase = self.phases[min(self.gets, len(self.phases) - 1)]
        self.gets += 1
        return None if phase is None else {**applied, "status": {"phase": phase, "progress": f"{self.gets}/3"}}

    def apply(self, action: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
        if self.refuse:
            raise PlatformError("the platform refused it")
        self.applied.append((action, dict(manifest)))
        return {**manifest, "status": {"state": "Available"}}


def wf(outputs: list[dict[str, Any]], **resource: Any) -> dict[str, Any]:
    body = {"action": "apply", **({} if "manifestFrom" in resource else {"manifest": SD}), **resource}  # one or the other (CRD)
    tmpl = {"name": "main", "resource": body, "outputs": {"parameters": outputs}}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "r-"},
        "spec": {"entrypoint": "main", "templates": [tmpl]},
    }


def test_json_path_outputs_come_from_the_applied_object(engine_settings) -> None:  # type: ignore[no-untyped-def]
    applier = MemoryApplier()
    outputs = [
        {"name": "name", "valueFrom": {"jsonPath": "{.metadata.name}"}},
        {"name": "replicas", "valueFrom": {"jsonPath": "{.spec.predictors[0].replicas}"}},
        {"name": "state", "valueFrom": {"jsonPath": "{.status.state}"}},
        {"name": "missing", "valueFrom": {"jsonPath": "{.status.nothing}"}},
        {"name": "graph", "valueFrom": {"jsonPath": "{.spec.predictors[0].graph}"}},
    ]
    run = run_workflow(wf(outputs), engine_settings, applier=applier)
    assert run.phase == "Succeeded", run.message
    assert run.node(run.name).parameters() == {
        "name": "mnist",
        "replicas": "2",
        "state": "Available",
        "missing": "",
        "graph": '{"name":"model"}',
    }
    assert [a for a, _ in applier.applied] == ["apply"]


def test_a_refused_object_is_a_node_error_and_no_applier_says_so(engine_settings) -> None:  # type: ignore[no-untyped-def]
    run = run_workflow(wf([]), engine_settings, applier=MemoryApplier(refuse=True))
    assert run.phase == "Error" and "resource apply of SeldonDeployment failed: the platform refused it" in (run.message or "")
    bare = run_workflow(wf([]), engine_settings)
    assert bare.phase == "Error" and "no platform to apply resources to" in (bare.message or "")


@pytest.mark.parametrize(
    ("outputs", "resource", "refused"),
    [
        ([{"name": "x", "valueFrom": {"jqFilter": ".metadata.name"}}], {}, r"output parameter 'x' from \['jqFilter'\]"),
        ([{"name": "x", "valueFrom": {"jsonPath": "{range .items[*]}{.name}{end}"}}], {}, "jsonPath"),
        ([], {"successCondition": "status.state == Available"}, "success/failure conditions"),
        ([], {"manifestFrom": {"artifact": {"name": "m"}}}, "resource manifestFrom"),
        ([], {"action": "delete"}, "resource action 'delete'"),
    ],
)
def test_what_cannot_work_is_refused_before_anything_runs(engine_settings, outputs, resource, refused) -> None:  # type: ignore[no-untyped-def]
    applier = MemoryApplier()
    with pytest.raises(NotSupportedLocally, match=refused):
        run_workflow(wf(outputs, **resource), engine_settings, applier=applier)
    assert applier.applied == []


PVC = """apiVersion: v1
kind: PersistentVolumeClaim
metadata: {%s}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
"""


def pvc_flow(meta: str, action: str = "create", owner: bool = True, namespace: str = "default") -> dict[str, Any]:
    """Argo's walk-through "volumes" example (Hera: examples/workflows/upstream... template_level_volume): a
    resource step creates a claim, the next steps mount it by the name it was given and share a file."""
    claim = [{"name": "work", "persistentVolumeClaim": {"claimName": "{{inputs.parameters.claim}}"}}]
    mount = [{"name": "work", "mountPath": "/mnt/vol"}]
    use = {"inputs": {"parameters": [{"name": "claim"}]}, "volumes": claim}
    arg = {"parameters": [{"name": "claim", "value": "{{steps.make.outputs.parameters.claim}}"}]}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "vol-", "namespace": namespace},
        "spec": {
            "entrypoint": "main",
            "templates": [
                {
                    "name": "main",
                    "steps": [
                        [{"name": "make", "template": "make"}],
                        [{"name": "write", "template": "write", "arguments": arg}],
                        [{"name": "read", "template": "read", "arguments": arg}],
                    ],
                },
                {
                    "name": "make",
                    "resource": {"action": action, "setOwnerReference": owner, "manifest": PVC % meta},
                    "outputs": {"parameters": [{"name": "claim", "valueFrom": {"jsonPath": "{.metadata.name}"}}]},
                },
                {
                    **use,
                    "name": "write",
                    "container": {"image": "alpine:3.20", "command": ["sh", "-c", "echo hi > /mnt/vol/f"], "volumeMounts": mount},
                },
                {
                    **use,
                    "name": "read",
                    "container": {"image": "alpine:3.20", "command": ["cat", "/mnt/vol/f"], "volumeMounts": mount},
                },
            ],
        },
    }


@pytest.mark.parametrize(
    ("meta", "action", "owner", "namespace", "claim", "kept"),
    [
        ("generateName: pvc-example-", "create", True, "default", r"pvc-example-[bcdfghjklmnpqrstvwxz2456789]{5}", False),
        ("name: shared", "apply", False, "default", "shared", True),
        ("name: shared", "create", True, "team", "shared", False),
        ("name: shared, namespace: team", "create", True, "team", "shared", False),
    ],
)
def test_a_claim_created_by_a_resource_step_is_mounted_by_the_next_and_goes_with_its_owner(
    engine_settings, meta: str, action: str, owner: bool, namespace: str, claim: str, kept: bool
) -> None:  # type: ignore[no-untyped-def]
    """The claim is a folder under ``<home>/volumes/<namespace>/`` (the run's namespace unless the manifest names
    one); with ``setOwnerReference`` deleting the run deletes it (Kubernetes' garbage collector), without it stays."""
    run = local_engine.run_workflow(pvc_flow(meta, action, owner, namespace), engine_settings)
    assert run.phase == "Succeeded", run.message
    name = run.node("make").parameters()["claim"]
    assert re.fullmatch(claim, name)
    assert (run.node("read").outputs.get("result") or "").strip() == "hi"
    folder = engine_settings.home / "volumes" / namespace / name
    assert (folder / "f").read_text() == "hi\n"
    LocalPlatform(engine_settings).delete_run(run.name)
    assert folder.is_dir() is kept


@pytest.mark.parametrize(
    ("meta", "action", "said"),
    [
        ("name: taken", "create", 'persistentvolumeclaims "taken" already exists'),
        ("generateName: pvc-", "apply", "cannot use generate name with apply"),  # kubectl apply refuses it
    ],
)
def test_a_claim_the_api_server_refuses_fails_the_step(engine_settings, meta: str, action: str, said: str) -> None:  # type: ignore[no-untyped-def]
    (engine_settings.home / "volumes" / "default" / "taken").mkdir(parents=True)
    run = local_engine.run_workflow(pvc_flow(meta, action), engine_settings)
    assert run.phase in ("Failed", "Error")
    assert said in (run.node("make").message or "")
    LocalPlatform(engine_settings).delete_run(run.name)
    assert sorted(p.name for p in (engine_settings.home / "volumes" / "default").iterdir()) == ["taken"]  # not owned: kept


CHILD = """apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: child}
spec: {entrypoint: main, templates: [{name: main, container: {image: alpine:3.23}}]}
"""
OK, FAIL = "status.phase == Succeeded", "status.phase == Failed"

# (what, conditions, phases the object goes through, node phase, node message contains, GETs made) —
# Argo's executor: workflow/executor/resource.go WaitResource / matchConditions (failure first, then every
# success requirement; no success requirement succeeds at once); resource_test.go TestResourceConditionsMatching
CONDITION_CASES = [
    (
        "success after polling",
        {"successCondition": OK, "failureCondition": FAIL},
        ["Running", "Running", "Succeeded"],
        "Succeeded",
        "",
        3,
    ),
    (
        "failure condition",
        {"successCondition": OK, "failureCondition": FAIL},
        ["Running", "Failed"],
        "Failed",
        "failure condition '{status.phase == [Failed]}' evaluated true",
        2,
    ),
    ("only a failure condition, not met", {"failureCondition": FAIL}, ["Running"], "Succeeded", "", 1),
    (
        "every success requirement",
        {"successCondition": "status.phase in (Succeeded),status.progress"},
        ["Running", "Succeeded"],
        "Succeeded",
        "",
        2,
    ),
    (
        "the object deleted",
        {"successCondition": OK},
        ["Running", None],
        "Failed",
        "has been deleted while its status was still being checked",
        2,
    ),
    (
        "a condition that does not parse",
        {"successCondition": "status.phase == a b"},
        ["Running"],
        "Failed",
        "success condition 'status.phase == a b' failed to parse",
        0,
    ),
]


@pytest.mark.parametrize(
    ("what", "conditions", "phases", "phase", "message", "gets"), CONDITION_CASES, ids=[c[0] for c in CONDITION_CASES]
)
def test_success_and_failure_conditions_of_a_workflow(engine_settings, what, conditions, phases, phase, message, gets) -> None:  # type: ignore[no-untyped-def]
    applier = MemoryApplier(phases=phases)
    outputs = [{"name": "phase", "valueFrom": {"jsonPath": "{.status.phase}"}}]
    run = run_workflow(
        wf(outputs, action="create", manifest=CHILD, **conditions), engine_settings, clock=ManualClock(), applier=applier
    )
    node = run.node(run.name)
    assert (node.phase, applier.gets) == (phase, gets), (what, node)
    assert message in (node.message or ""), (what, node.message)
    if phase == "Succeeded" and gets:  # SaveResourceParameters reads the object after the wait
        assert node.parameters()["phase"] == phases[gets - 1]
