"""Leader election: a ``coordination.k8s.io`` Lease (against a fake API with the server's 404/409
semantics, since no API server runs here) and the local file lock."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from scanflow_argo.agents.leader import FileLeader, LeaseLeader
from scanflow_argo.clock import ManualClock
from scanflow_argo.errors import PlatformError


class FakeCoordination:
    """Leases through the custom-objects calls LeaseLeader makes (JSON in, JSON out), with the API server's
    resourceVersion checks, 404/409 and its MicroTime parsing (six fraction digits, else 400)."""

    def __init__(self) -> None:
        self.leases: dict[tuple[str, str], dict[str, Any]] = {}
        self.written: dict[str, Any] = {}

    @staticmethod
    def _check(body: dict[str, Any]) -> None:
        for key in ("acquireTime", "renewTime"):
            value = body["spec"].get(key)
            if value is not None and not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", value):
                raise ApiException(status=400, reason=f"parsing time {value!r}")

    def get_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str, name: str) -> Any:
        assert (group, version, plural) == ("coordination.k8s.io", "v1", "leases")
        if (namespace, name) not in self.leases:
            raise ApiException(status=404, reason="Not Found")
        return copy.deepcopy(self.leases[(namespace, name)])

    def create_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str, body: Any) -> Any:
        body = json.loads(json.dumps(body))
        self._check(body)
        key = (namespace, body["metadata"]["name"])
        if key in self.leases:
            raise ApiException(status=409, reason="AlreadyExists")
        body["metadata"]["resourceVersion"] = "1"
        self.leases[key] = self.written = body
        return copy.deepcopy(body)

    def replace_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str, body: Any
    ) -> Any:
        body = json.loads(json.dumps(body))
        self._check(body)
        current = self.leases[(namespace, name)]
        if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise ApiException(status=409, reason="Conflict")
        body["metadata"]["resourceVersion"] = str(int(current["metadata"]["resourceVersion"]) + 1)
        self.leases[(namespace, name)] = self.written = body
        return copy.deepcopy(body)


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
    assert lease["spec"]["holderIdentity"] == "pod-b" and lease["spec"]["leaseTransitions"] == 1


def test_lease_race_loses_cleanly() -> None:
    """Another replica renews between our read and our write: the 409 means "not leader", not an error."""

    class Racy(FakeCoordination):
        def get_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str, name: str) -> Any:
            lease = super().get_namespaced_custom_object(group, version, namespace, plural, name)
            current = self.leases[(namespace, name)]
            current["metadata"]["resourceVersion"] = str(int(current["metadata"]["resourceVersion"]) + 1)
            return lease

    api, clock = Racy(), ManualClock()
    assert LeaseLeader("l", "ns", "a", lease_seconds=5, api=api, clock=clock).acquire()  # created
    b = LeaseLeader("l", "ns", "b", lease_seconds=5, api=api, clock=clock)
    assert not b.acquire()  # b sees the record for the first time: valid for 5 s from now
    clock.advance(10)  # expired as b observed it: b may take over, but loses the race
    assert not b.acquire()


def _holder_writes(api: FakeCoordination, renew_time: str) -> None:
    """The holder renews with its own clock's time (its node's clock may be hours off)."""
    lease = api.leases[("ns", "l")]
    lease["spec"]["renewTime"] = renew_time
    lease["metadata"]["resourceVersion"] = str(int(lease["metadata"]["resourceVersion"]) + 1)


def test_expiry_is_judged_by_local_observation_not_the_holders_clock() -> None:
    """client-go's isLeaseValid: a record is valid for leaseDurationSeconds after *this* process saw it change
    (tools/leaderelection/leaderelection.go setObservedRecord/isLeaseValid), so clock skew cannot cut a lease."""
    api, clock = FakeCoordination(), ManualClock()
    assert LeaseLeader("l", "ns", "a", lease_seconds=15, api=api, clock=clock).acquire()
    b = LeaseLeader("l", "ns", "b", lease_seconds=15, api=api, clock=clock)
    _holder_writes(api, "2000-01-01T00:00:00.000000Z")  # a's clock is decades behind: renewTime looks ancient
    assert not b.acquire()
    for _ in range(5):  # a keeps renewing (every 10 s): b never takes over, whatever renewTime says
        clock.advance(10)
        _holder_writes(api, f"2000-01-01T00:00:{10 + _:02d}.000000Z")
        assert not b.acquire()
    _holder_writes(api, "2999-01-01T00:00:00.000000Z")  # then a's clock runs far ahead, and a dies
    assert not b.acquire()
    clock.advance(14)
    assert not b.acquire()  # 14 s after b saw the last change
    clock.advance(2)
    assert b.acquire()  # 16 s: taken over, though renewTime is centuries in the future


def test_a_leader_that_cannot_renew_stops_leading_after_the_renew_deadline() -> None:
    class Failing(FakeCoordination):
        down = False

        def get_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str, name: str) -> Any:
            if self.down:
                raise ApiException(status=503, reason="Service Unavailable")
            return super().get_namespaced_custom_object(group, version, namespace, plural, name)

    api, clock = Failing(), ManualClock()
    a = LeaseLeader("l", "ns", "a", api=api, clock=clock)
    assert (a.lease_seconds, a.renew_deadline, a.retry_period) == (15, 10, 2)  # client-go's usual figures
    assert a.acquire()
    api.down = True
    for _ in range(4):  # renewals fail every 2 s: still the leader within the 10 s deadline
        clock.advance(2)
        assert a.acquire()
    clock.advance(2)
    assert not a.acquire()  # 10 s without a renewal: stop acting before anyone else may take over (15 s)
    with pytest.raises(PlatformError, match="cannot read Lease ns/l: HTTP 503"):
        a.acquire()  # a follower sees the error itself


def test_release_hands_the_lease_over_at_once() -> None:
    """client-go's ReleaseOnCancel: an empty holder with a one-second duration, which anyone may take now."""
    api, clock = FakeCoordination(), ManualClock()
    a = LeaseLeader("l", "ns", "a", api=api, clock=clock)
    b = LeaseLeader("l", "ns", "b", api=api, clock=clock)
    assert a.acquire() and not b.acquire()
    a.release()
    lease = api.leases[("ns", "l")]
    assert "holderIdentity" not in lease["spec"] and lease["spec"]["leaseDurationSeconds"] == 1
    assert b.acquire()


def test_micro_times_always_carry_six_fraction_digits() -> None:
    """metav1.MicroTime is parsed with "2006-01-02T15:04:05.000000Z07:00": isoformat() at a whole second is refused."""
    from scanflow_argo.agents.leader import micro_time

    assert micro_time(1_700_000_000.0) == "2023-11-14T22:13:20.000000Z"
    assert micro_time(1_700_000_000.25) == "2023-11-14T22:13:20.250000Z"
    api, clock = FakeCoordination(), ManualClock(start=1_700_000_000.0)
    a = LeaseLeader("l", "ns", "a", api=api, clock=clock)
    a.acquire()
    assert api.written["spec"]["renewTime"] == api.written["spec"]["acquireTime"] == "2023-11-14T22:13:20.000000Z"
    clock.advance(2)
    a.acquire()  # a renewal writes back the acquireTime it read, as it read it
    assert api.written["spec"]["acquireTime"] == "2023-11-14T22:13:20.000000Z"
    assert api.written["spec"]["renewTime"] == "2023-11-14T22:13:22.000000Z"


def test_file_leader_released_when_the_holder_goes(tmp_path: Any) -> None:
    a, b = FileLeader(tmp_path / "lock"), FileLeader(tmp_path / "lock")
    assert a.acquire() and a.acquire() and not b.acquire()
    a.release()
    assert b.acquire()
    b.release()
