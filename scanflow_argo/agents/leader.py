"""Only one replica of an agent acts: a file lock locally, a ``coordination.k8s.io`` Lease on Kubernetes.

``FileLeader`` holds ``flock`` on ``<state dir>/leader.lock`` (released by the kernel when the
process dies, so a restarted agent takes over at once). ``LeaseLeader`` acquires and renews a
Lease named after the agent; it takes over an expired one (holder gone for ``lease_seconds``).
The holder writes the address its API answers on into the Lease's ``scanflow.io/leader-url``
annotation, so a follower can forward ``POST /messages``, ``/pause``, ``/resume``, ``/trigger``
to it (``holder`` and ``holder_url`` are what the last ``acquire`` saw).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from ..clock import Clock, SystemClock
from ..errors import PlatformError

__all__ = ["LEADER_URL_ANNOTATION", "FileLeader", "Leader", "LeaseLeader"]

LEADER_URL_ANNOTATION = "scanflow.io/leader-url"


class Leader(Protocol):
    def acquire(self) -> bool:
        """Try to be (or stay) the leader; True when this process may act."""
        ...

    def release(self) -> None: ...


class FileLeader:
    """Leader while holding an exclusive ``flock`` on ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class LeaseLeader:
    """Leader election through a ``coordination.k8s.io/v1`` Lease (needs leases get/create/update)."""

    def __init__(
        self,
        name: str,
        namespace: str,
        identity: str,
        lease_seconds: int = 15,
        api: Any = None,
        clock: Clock | None = None,
        url: str | None = None,
    ) -> None:
        self.name, self.namespace, self.identity, self.lease_seconds = name, namespace, identity, lease_seconds
        self._api = api
        self._clock = clock or SystemClock()
        self.url = url
        """Where this replica's API answers (written into the Lease while it leads)."""
        self.holder: str | None = None
        self.holder_url: str | None = None

    def _annotate(self, meta: Any) -> None:
        if self.url:
            meta.annotations = {**(meta.annotations or {}), LEADER_URL_ANNOTATION: self.url}

    def _saw(self, holder: str | None, meta: Any) -> None:
        self.holder = holder
        self.holder_url = (getattr(meta, "annotations", None) or {}).get(LEADER_URL_ANNOTATION)

    def _client(self) -> Any:
        if self._api is None:
            from kubernetes import client, config  # Kubernetes client: ~1.5 s, cluster path only

            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            self._api = client.CoordinationV1Api()
        return self._api

    def acquire(self) -> bool:
        from kubernetes import client  # Kubernetes client: ~1.5 s, cluster path only
        from kubernetes.client.exceptions import ApiException  # Kubernetes client: ~1.5 s, cluster path only

        api = self._client()
        now = datetime.fromtimestamp(self._clock.now(), UTC)
        try:
            lease = api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as err:
            if err.status != 404:
                raise PlatformError(f"cannot read Lease {self.namespace}/{self.name}: HTTP {err.status}") from err
            body = client.V1Lease(
                metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace),
                spec=client.V1LeaseSpec(
                    holder_identity=self.identity, lease_duration_seconds=self.lease_seconds, acquire_time=now, renew_time=now
                ),
            )
            self._annotate(body.metadata)
            try:
                api.create_namespaced_lease(self.namespace, body)
                self._saw(self.identity, body.metadata)
                return True
            except ApiException as err2:
                if err2.status == 409:
                    return False  # another replica created it first
                raise PlatformError(f"cannot create Lease {self.namespace}/{self.name}: HTTP {err2.status}") from err2
        spec = lease.spec
        holder = spec.holder_identity
        renewed = spec.renew_time or spec.acquire_time
        expired = renewed is None or renewed + timedelta(seconds=spec.lease_duration_seconds or self.lease_seconds) < now
        if holder != self.identity and not expired:
            self._saw(holder, lease.metadata)
            return False
        if holder != self.identity:
            spec.acquire_time = now
            spec.lease_transitions = (spec.lease_transitions or 0) + 1
        spec.holder_identity = self.identity
        spec.renew_time = now
        spec.lease_duration_seconds = self.lease_seconds
        self._annotate(lease.metadata)
        try:
            api.replace_namespaced_lease(self.name, self.namespace, lease)  # resourceVersion guards the race
            self._saw(self.identity, lease.metadata)
            return True
        except ApiException as err:
            if err.status == 409:
                return False
            raise PlatformError(f"cannot renew Lease {self.namespace}/{self.name}: HTTP {err.status}") from err

    def release(self) -> None:
        return None  # let the lease expire; a successor takes over after lease_seconds
