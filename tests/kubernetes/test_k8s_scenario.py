"""One platform-agnostic scenario, run against the Kubernetes platform (fake servers, both Argo backends)
and against the agents' in-memory stand-in: what an agent does must work the same on each.

A harness gives the scenario the few controls only a test has (finish a run as Argo's controller would,
make a write lose races as a busy cluster would); everything else goes through the ``Platform`` protocol.
The local platform can join by adding a harness here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import pytest
from fakeapi import FakeCluster
from k8s_helpers import NAMESPACE, make_platform, seldon, template

from scanflow_argo.errors import ConflictError, NotFoundError
from scanflow_argo.platform._k8s.api import CONFLICT_ATTEMPTS
from scanflow_argo.platform.base import Platform


class Harness(Protocol):
    platform: Platform

    def finish(self, run: str, phase: str) -> None: ...
    def conflict_next_write(self) -> None: ...


class KubeHarness:
    def __init__(self, platform: Platform, fake: FakeCluster) -> None:
        self.platform, self.fake = platform, fake

    def finish(self, run: str, phase: str) -> None:
        self.fake.set_status("workflows", NAMESPACE, run, {"phase": phase, "finishedAt": "2026-01-01T00:00:00Z"})

    def conflict_next_write(self) -> None:
        self.fake.fail_next(CONFLICT_ATTEMPTS, 409, method="PATCH")  # every retry loses: the write gives up


class MemoryHarness:
    def __init__(self) -> None:
        from scanflow_argo.agents.testing import InMemoryPlatform

        self.platform = InMemoryPlatform(namespace=NAMESPACE)

    def finish(self, run: str, phase: str) -> None:
        self.platform.finish(run, phase)

    def conflict_next_write(self) -> None:
        self.platform.fail_next("scale", "conflict")


@pytest.fixture(params=["kubernetes-crd", "kubernetes-argo", "memory"])
def harness(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryHarness()
        return
    kube_settings = request.getfixturevalue("kube_settings")
    fake = request.getfixturevalue("fake")
    yield KubeHarness(make_platform(kube_settings, fake, request.param.split("-")[1]), fake)


def _deploy(harness: Any) -> None:
    if isinstance(harness, MemoryHarness):
        harness.platform.add_deployment("mnist", replicas=1, model_uri="s3://models/mnist/1")
    else:
        harness.platform.apply_deployment(seldon(replicas=1))


def test_agent_scenario_is_the_same_on_every_platform(harness: Any) -> None:
    platform: Platform = harness.platform
    assert isinstance(platform, Platform)

    # Retraining: apply the template, submit it with parameters and the agent's labels, wait for it.
    platform.apply_template(template("retrain"))
    platform.apply_template(template("retrain"))  # apply semantics: a second apply is an update
    labels = {"scanflow.io/agent": "drift-supervisor"}
    first = platform.submit("retrain", {"epochs": "3"}, labels)
    second = platform.submit("retrain", {"epochs": "4"}, labels)
    other = platform.submit("retrain", {"epochs": "1"}, {"scanflow.io/agent": "someone-else"})
    assert len({first, second, other}) == 3 and all(n.startswith("retrain-") for n in (first, second, other))

    run = platform.get_run(first)
    assert run.parameters["epochs"] == "3" and not run.done
    mine = platform.list_runs(labels)
    assert {r.name for r in mine} == {first, second}
    assert all(r.labels["scanflow.io/agent"] == "drift-supervisor" for r in mine)
    assert len([r for r in mine if not r.done]) == 2  # the agent's concurrency check

    harness.finish(first, "Succeeded")
    harness.finish(second, "Failed")
    assert platform.wait(first, timeout=30, poll=0.01).phase == "Succeeded"
    assert platform.wait(second, timeout=30, poll=0.01).phase == "Failed"
    assert not [r for r in platform.list_runs(labels) if not r.done]

    with pytest.raises(NotFoundError):
        platform.submit("no-such-template")
    with pytest.raises(NotFoundError):
        platform.get_run("no-such-run")

    # Serving: scale and roll the deployment.
    _deploy(harness)
    assert platform.get_deployment("mnist").replicas == 1
    assert platform.scale("mnist", 3).replicas == 3
    assert platform.get_deployment("mnist").replicas == 3
    rolled = platform.roll("mnist", "s3://models/mnist/2")
    assert rolled.model_uri == "s3://models/mnist/2" and rolled.replicas == 3

    # A write that keeps losing races is a ConflictError and changes nothing; the next one works.
    harness.conflict_next_write()
    with pytest.raises(ConflictError):
        platform.scale("mnist", 5)
    assert platform.get_deployment("mnist").replicas == 3
    assert platform.scale("mnist", 2).replicas == 2

    with pytest.raises(NotFoundError, match="ghost"):
        platform.scale("ghost", 2)
