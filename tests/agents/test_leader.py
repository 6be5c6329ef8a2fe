"""Leader election: a ``coordination.k8s.io`` Lease (against a fake API with the server's 404/409
semantics, since no API server runs here) and the local file lock."""

from __future__ import annotations

import copy
from typing import Any

from kubernetes.client.exceptions import ApiException

from scanflow_argo.agents.leader import FileLeader, LeaseLeader
from scanflow_argo.clock import ManualClock


class FakeCoordination:
    """read/create/replace of Leases with resourceVersion checks, as the API server does."""

    def __init__(self) -> None:
        self.leases: dict[tuple[str, str], Any] = {}

    def read_namespaced_lease(self, name: str, namespace: str) -> Any:
        if (namespace, name) not in self.leases:
            raise ApiException(status=404, reason="Not Found")
        return copy.deepcopy(self.leases[(namespace, name)])

    def create_namespaced_lease(self, namespace: str, body: Any) -> Any:
        key = (namespace, body.metadata.name)
        if key in self.leases:
            raise ApiException(status=409, reason="AlreadyExists")
        body.metadata.resource_version = "1"
        self.leases[key] = copy.deepcopy(body)
        return body

    def replace_namespaced_lease(self, name: str, namespace: str, body: Any) -> Any:
        current = self.leases[(namespace, name)]
        if body.metadata.resource_version != current.metadata.resource_version:
            raise ApiException(status=409, reason="Conflict")
        body.metadata.resource_version = str(int(current.metadata.resource_version) + 1)
        self.leases[(namespace, name)] = copy.deepcopy(body)
        return body


def test_lease_one_leader_renewal_and_takeover() -> None:
    api, clock = FakeCoordination(), ManualClock()
    a = LeaseLeader("scanflow-agent-x", "ns", "pod-a", lease_seconds=10, api=api, clock=clock)
    b = LeaseLeader("scanflow-agent-x", "ns", "pod-b", lease_seconds=10, api=api, clock=clock)
    assert a.acquire() and not b.acquire()
    clock.advance(8)
    assert a.acquire() and not b.acquire()  # renewed
    clock.advance(8)
    assert not b.acquire()  # 8 s after the renewal: still a's
    clock.advance(3)
    assert b.acquire()  # a stopped renewing 11 s ago: b takes over
    assert not a.acquire()
    lease = api.leases[("ns", "scanflow-agent-x")]
    assert lease.spec.holder_identity == "pod-b" and lease.spec.lease_transitions == 1


def test_lease_race_loses_cleanly() -> None:
    """Another replica renews between our read and our write: the 409 means "not leader", not an error."""

    class Racy(FakeCoordination):
        def read_namespaced_lease(self, name: str, namespace: str) -> Any:
            lease = super().read_namespaced_lease(name, namespace)
            current = self.leases[(namespace, name)]
            current.metadata.resource_version = str(int(current.metadata.resource_version) + 1)
            return lease

    api, clock = Racy(), ManualClock()
    assert LeaseLeader("l", "ns", "a", lease_seconds=5, api=api, clock=clock).acquire()  # created
    clock.advance(10)  # expired: b may take over, but loses the race
    assert not LeaseLeader("l", "ns", "b", lease_seconds=5, api=api, clock=clock).acquire()


def test_file_leader_released_when_the_holder_goes(tmp_path: Any) -> None:
    a, b = FileLeader(tmp_path / "lock"), FileLeader(tmp_path / "lock")
    assert a.acquire() and a.acquire() and not b.acquire()
    a.release()
    assert b.acquire()
    b.release()
