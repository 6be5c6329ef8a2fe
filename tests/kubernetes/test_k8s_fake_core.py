"""The fake API server's built-in resources the agents use — core ``v1`` ConfigMaps and
``coordination.k8s.io/v1`` Leases — through the real ``kubernetes`` client, with the real server's rules:
resourceVersion conflicts, unconditional updates for ConfigMaps only, the 1 MiB ConfigMap limit, Status bodies."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fakeapi import FakeCluster
from k8s_helpers import NAMESPACE
from kubernetes import client
from kubernetes.client.exceptions import ApiException


@pytest.fixture
def api(fake: FakeCluster) -> Iterator[client.ApiClient]:
    with client.ApiClient(client.Configuration(host=fake.url)) as api_client:
        yield api_client


def status_of(err: ApiException) -> dict[str, Any]:
    return json.loads(err.body)


def test_config_maps_read_and_update_with_conflicts(fake: FakeCluster, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    fake.config_map("a-state")  # as applied from the compiled manifests: no data
    cm = core.read_namespaced_config_map("a-state", NAMESPACE)
    assert cm.data is None and cm.metadata.generation is None and cm.metadata.resource_version
    stale = core.read_namespaced_config_map("a-state", NAMESPACE)
    cm.data = {"state.json": "{}"}
    updated = core.replace_namespaced_config_map("a-state", NAMESPACE, cm)
    assert updated.data == {"state.json": "{}"} and updated.metadata.resource_version != stale.metadata.resource_version
    stale.data = {"state.json": '{"lost": true}'}
    with pytest.raises(ApiException) as info:
        core.replace_namespaced_config_map("a-state", NAMESPACE, stale)
    assert info.value.status == 409 and status_of(info.value)["reason"] == "Conflict"
    assert 'configmaps "a-state": the object has been modified' in status_of(info.value)["message"]
    # ConfigMaps allow an unconditional update (no resourceVersion), as the real registry does
    stale.metadata.resource_version = None
    assert core.replace_namespaced_config_map("a-state", NAMESPACE, stale).data == {"state.json": '{"lost": true}'}
    listed = core.list_namespaced_config_map(NAMESPACE)
    assert [c.metadata.name for c in listed.items] == ["a-state"]


def test_config_map_errors_are_the_servers(fake: FakeCluster, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    with pytest.raises(ApiException) as info:
        core.read_namespaced_config_map("nope", NAMESPACE)
    assert info.value.status == 404 and status_of(info.value)["message"] == 'configmaps "nope" not found'
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="big"), data={"k": "x" * (1024 * 1024)})
    with pytest.raises(ApiException) as info:
        core.create_namespaced_config_map(NAMESPACE, body)
    assert info.value.status == 422 and "must have at most 1048576 bytes" in status_of(info.value)["message"]
    body.data = {"k": "small"}
    core.create_namespaced_config_map(NAMESPACE, body)
    with pytest.raises(ApiException) as info:
        core.create_namespaced_config_map(NAMESPACE, body)
    assert info.value.status == 409 and status_of(info.value)["reason"] == "AlreadyExists"


def test_leases_need_their_resource_version(fake: FakeCluster, api: client.ApiClient) -> None:
    coord = client.CoordinationV1Api(api)
    now = dt.datetime.now(dt.UTC)
    body = client.V1Lease(
        metadata=client.V1ObjectMeta(name="leader"),
        spec=client.V1LeaseSpec(holder_identity="pod-a", lease_duration_seconds=5, acquire_time=now, renew_time=now),
    )
    coord.create_namespaced_lease(NAMESPACE, body)
    with pytest.raises(ApiException) as info:
        coord.create_namespaced_lease(NAMESPACE, body)  # the other replica lost the race
    assert info.value.status == 409 and 'leases.coordination.k8s.io "leader" already exists' in status_of(info.value)["message"]
    lease = coord.read_namespaced_lease("leader", NAMESPACE)
    assert lease.spec.holder_identity == "pod-a" and lease.spec.renew_time == now
    theirs = coord.read_namespaced_lease("leader", NAMESPACE)
    lease.spec.holder_identity = "pod-b"
    coord.replace_namespaced_lease("leader", NAMESPACE, lease)
    theirs.spec.renew_time = now
    with pytest.raises(ApiException) as info:
        coord.replace_namespaced_lease("leader", NAMESPACE, theirs)
    assert info.value.status == 409
    theirs.metadata.resource_version = None
    with pytest.raises(ApiException) as info:
        coord.replace_namespaced_lease("leader", NAMESPACE, theirs)  # Leases do not allow unconditional updates
    assert info.value.status == 422
    assert fake.get("leases", NAMESPACE, "leader")["spec"]["holderIdentity"] == "pod-b"
    assert coord.list_namespaced_lease(NAMESPACE).items[0].metadata.name == "leader"


WF = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Workflow",
    "metadata": {"generateName": "check-"},
    "spec": {
        "entrypoint": "main",
        "workflowTemplateRef": {"name": "train"},
        "templates": [
            {"name": "main", "dag": {"tasks": [{"name": "a", "template": "b", "depends": "x", "dependencies": ["x"]}]}}
        ],
    },
}


def test_custom_resources_are_admitted_against_their_crd(fake: FakeCluster, api: client.ApiClient) -> None:
    """What the API server does with a Workflow (Argo 4.1.2's CRD, CEL rules included): refuse with 422 and every
    field error; prune unknown fields unless the client asks for strict validation (kubectl does: 400)."""
    custom = client.CustomObjectsApi(api)
    args = ("argoproj.io", "v1alpha1", NAMESPACE, "workflows")
    with pytest.raises(ApiException) as info:
        custom.create_namespaced_custom_object(*args, WF)
    assert info.value.status == 422 and status_of(info.value)["reason"] == "Invalid"
    message = status_of(info.value)["message"]
    assert message.startswith('Workflow.argoproj.io "check-') and message.endswith(
        " is invalid: spec.templates[0].dag.tasks[0]: Invalid value: cannot use both 'depends' and 'dependencies'"
    )
    ok = json.loads(json.dumps(WF))
    del ok["spec"]["templates"][0]["dag"]["tasks"][0]["dependencies"]
    ok["spec"]["bogus"] = True
    created = custom.create_namespaced_custom_object(*args, ok)
    assert "bogus" not in created["spec"]  # pruned, as for any client that does not ask for strict validation
    assert "labels" not in created["metadata"]  # the API server adds none (Argo's controller labels it later)
    assert created["metadata"]["generation"] == 1
    with pytest.raises(ApiException) as info:
        custom.create_namespaced_custom_object(*args, ok, field_validation="Strict")
    assert info.value.status == 400 and 'strict decoding error: unknown field "spec.bogus"' in status_of(info.value)["message"]
    name = created["metadata"]["name"]
    fake.set_status("workflows", NAMESPACE, name, {"phase": "Running"})  # the controller's first update
    labelled = fake.get("workflows", NAMESPACE, name)
    assert labelled["metadata"]["labels"] == {"workflows.argoproj.io/workflow-template": "train"}


def test_generation_moves_only_when_the_spec_does(fake: FakeCluster, api: client.ApiClient) -> None:
    """metadata.generation counts changes outside metadata (and outside status, where that is a subresource)."""
    custom = client.CustomObjectsApi(api)
    sdep = ("machinelearning.seldon.io", "v1", NAMESPACE, "seldondeployments")
    body = {
        "apiVersion": "machinelearning.seldon.io/v1",
        "kind": "SeldonDeployment",
        "metadata": {"name": "m"},
        "spec": {"predictors": [{"name": "default", "graph": {"name": "c"}, "componentSpecs": []}]},
    }
    created = custom.create_namespaced_custom_object(*sdep, body)
    assert created["metadata"]["generation"] == 1
    labelled = custom.patch_namespaced_custom_object(*sdep, "m", {"metadata": {"labels": {"team": "a"}}})
    assert labelled["metadata"]["generation"] == 1
    same = custom.patch_namespaced_custom_object(*sdep, "m", {"spec": {"predictors": created["spec"]["predictors"]}})
    assert same["metadata"]["generation"] == 1  # a patch that changes nothing
    fake.set_status("seldondeployments", NAMESPACE, "m", {"state": "Available"})
    assert fake.get("seldondeployments", NAMESPACE, "m")["metadata"]["generation"] == 1  # status is a subresource
    scaled = json.loads(json.dumps(created["spec"]["predictors"]))
    scaled[0]["replicas"] = 2
    assert custom.patch_namespaced_custom_object(*sdep, "m", {"spec": {"predictors": scaled}})["metadata"]["generation"] == 2
