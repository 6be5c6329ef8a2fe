"""``resource`` templates through an injected applier: outputs by ``valueFrom.jsonPath`` read from the object
as applied (Argo's executor runs ``kubectl get -o jsonpath=…``: workflow/executor/resource.go
``SaveResourceParameters``), and what cannot work refused before anything runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from scanflow_argo.clock import ManualClock
from scanflow_argo.engine import run_workflow
from scanflow_argo.errors import NotSupportedLocally, PlatformError

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
    tmpl = {"name": "main", "resource": {"action": "apply", "manifest": SD, **resource}, "outputs": {"parameters": outputs}}
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
