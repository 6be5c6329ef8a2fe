"""Only one replica of an agent acts: a file lock locally, a ``coordination.k8s.io`` Lease on Kubernetes.

``FileLeader`` holds ``flock`` on ``<state dir>/leader.lock`` (released by the kernel when the
process dies, so a restarted agent takes over at once). ``LeaseLeader`` acquires and renews a
Lease named after the agent on client-go's cadence (see its docstring).
The holder writes the address its API answers on into the Lease's ``scanflow.io/leader-url``
annotation, so a follower can forward ``POST /messages``, ``/pause``, ``/resume``, ``/trigger``
to it (``holder`` and ``holder_url`` are what the last ``acquire`` saw).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import random
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from ..clock import Clock, SystemClock
from ..errors import PlatformError, ScanflowError, UnavailableError

__all__ = ["LEADER_URL_ANNOTATION", "FileLeader", "Leader", "LeaseLeader", "micro_time"]

log = logging.getLogger("scanflow_argo.agents")

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


def micro_time(ts: float) -> str:
    """A ``metav1.MicroTime`` as the API server parses it: RFC 3339 with exactly six fraction digits
    (``2006-01-02T15:04:05.000000Z07:00``). Python's ``isoformat()`` drops the fraction at a whole second,
    which the server refuses."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseLeader:
    """Leader election through a ``coordination.k8s.io/v1`` Lease, as client-go's ``leaderelection`` does it.

    ``tick()`` is client-go's ``tryAcquireOrRenew``: create the Lease when there is none; take it when its holder
    is empty or it has not changed for ``lease_seconds`` *as observed here* (the local monotonic clock since the
    record last changed, never the holder's ``renewTime``, so clock skew between nodes cannot cut a lease short);
    a leader renews it. A leader that cannot renew for ``renew_deadline`` stops leading. ``start()`` runs ticks
    in a thread on client-go's cadence — every ``retry_period`` while leading, with jitter (×1.2) while
    following — independently of how often the agent loop runs; ``acquire()`` then reports what that thread
    knows (without it, ``acquire()`` ticks). ``release()`` hands the Lease over at once (client-go's
    ``ReleaseOnCancel``: empty holder, one-second duration). Defaults: 15 s lease, 10 s renew deadline, 2 s
    retries (client-go's usual); a shorter ``lease_seconds`` scales the other two. Needs leases get/create/update.
    ``api`` is a ``kubernetes.client.CustomObjectsApi``: Leases are read and written as JSON through the generic
    endpoints (the same URLs as ``CoordinationV1Api``'s), because the typed client turns MicroTimes into datetimes
    and writes a whole second back without its fraction, which the API server refuses.
    Source: kubernetes/client-go ``tools/leaderelection/leaderelection.go`` (``tryAcquireOrRenew``, ``renew``,
    ``acquire``, ``release``, ``isLeaseValid``) and ``resourcelock/leaselock.go``.
    """

    JITTER = 1.2

    def __init__(
        self,
        name: str,
        namespace: str,
        identity: str,
        lease_seconds: int = 15,
        api: Any = None,
        clock: Clock | None = None,
        url: str | None = None,
        *,
        renew_deadline: float | None = None,
        retry_period: float | None = None,
        background: bool = False,
    ) -> None:
        self.name, self.namespace, self.identity, self.lease_seconds = name, namespace, identity, lease_seconds
        self.renew_deadline = renew_deadline if renew_deadline is not None else lease_seconds * 2 / 3
        self.retry_period = retry_period if retry_period is not None else lease_seconds * 2 / 15
        if not lease_seconds > self.renew_deadline > self.JITTER * self.retry_period > 0:
            raise PlatformError(
                f"Lease {name}: need lease ({lease_seconds}s) > renew deadline ({self.renew_deadline}s) > "
                f"1.2 × retry period ({self.retry_period}s) > 0, as client-go does"
            )
        self._api = api
        self._clock = clock or SystemClock()
        self.url = url
        """Where this replica's API answers (written into the Lease while it leads)."""
        self.holder: str | None = None
        self.holder_url: str | None = None
        self.leading = False
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._observed_duration = lease_seconds
        self._renewed_at: float | None = None
        self._background = background
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def _saw(self, holder: str | None, annotations: Any) -> None:
        self.holder = holder
        self.holder_url = (annotations or {}).get(LEADER_URL_ANNOTATION)

    def _body(self, spec: dict[str, Any], annotations: Any, resource_version: str | None = None) -> dict[str, Any]:
        """The Lease as JSON with MicroTimes as strings: the client would write a whole-second datetime without
        its fraction (``isoformat()``), which the API server refuses."""
        notes = dict(annotations or {})
        if self.url:
            notes[LEADER_URL_ANNOTATION] = self.url
        meta: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if notes:
            meta["annotations"] = notes
        if resource_version:
            meta["resourceVersion"] = resource_version
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec}

    def _client(self) -> Any:
        if self._api is None:
            from kubernetes import client, config  # Kubernetes client: ~1.5 s, cluster path only

            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            self._api = client.CustomObjectsApi()
        return self._api

    def _read(self) -> dict[str, Any]:
        return dict(self._network(lambda: self._client().get_namespaced_custom_object(*_LEASES(self.namespace), self.name)))

    def _write(self, body: dict[str, Any], create: bool = False) -> None:
        api = self._client()
        if create:
            self._network(lambda: api.create_namespaced_custom_object(*_LEASES(self.namespace), body))
        else:
            self._network(lambda: api.replace_namespaced_custom_object(*_LEASES(self.namespace), self.name, body))

    def _network(self, fn: Any) -> Any:
        """Run one API call; a connection that fails is ``UnavailableError`` (the API's own answers pass through)."""
        from urllib3.exceptions import HTTPError as Urllib3Error  # with the Kubernetes client, cluster path only

        try:
            return fn()
        except (Urllib3Error, OSError) as err:
            raise UnavailableError(
                f"Lease {self.namespace}/{self.name}: the Kubernetes API did not answer ({type(err).__name__})"
            ) from err

    def _observe(self, spec: Mapping[str, Any]) -> None:
        """client-go's ``setObservedRecord`` when the record changed: the time is this process's."""
        record = tuple(
            str(spec.get(k)) for k in ("holderIdentity", "renewTime", "acquireTime", "leaseDurationSeconds", "leaseTransitions")
        )
        if record != self._observed:
            self._observed = record
            self._observed_at = self._clock.monotonic()
            self._observed_duration = int(spec.get("leaseDurationSeconds") or self.lease_seconds)

    def _valid(self) -> bool:
        """client-go's ``isLeaseValid``: observed less than its lease duration ago (local monotonic time)."""
        return self._clock.monotonic() < self._observed_at + self._observed_duration

    # -- one attempt -----------------------------------------------------------------------------
    def acquire(self) -> bool:
        """True when this process may act: what the renewing thread knows, or one ``tick()`` without it."""
        if self._background and self._thread is None:
            self.tick()
            self.start()
            return self.leading
        if self._thread is not None:
            return self.leading
        return self.tick()

    def tick(self) -> bool:
        """client-go's ``tryAcquireOrRenew`` plus the renew deadline; returns whether this process leads."""
        with self._lock:
            try:
                ok = self._try_acquire_or_renew()
            except PlatformError:
                ok = False
                if not self.leading:
                    raise
            now = self._clock.monotonic()
            if ok:
                self.leading, self._renewed_at = True, now
            elif self.leading and (self._renewed_at is None or now - self._renewed_at >= self.renew_deadline):
                self.leading = False  # could not renew within the deadline: stop acting
            elif not self.leading:
                self.leading = False
            return self.leading

    def _try_acquire_or_renew(self) -> bool:
        from kubernetes.client.exceptions import ApiException  # Kubernetes client: ~1.5 s, cluster path only

        now = micro_time(self._clock.now())
        try:
            lease = self._read()
        except ApiException as err:
            if err.status != 404:
                raise PlatformError(f"cannot read Lease {self.namespace}/{self.name}: HTTP {err.status}") from err
            spec = {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.lease_seconds,
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            }
            body = self._body(spec, None)
            try:
                self._write(body, create=True)
            except ApiException as err2:
                if err2.status == 409:
                    return False  # another replica created it first
                raise PlatformError(f"cannot create Lease {self.namespace}/{self.name}: HTTP {err2.status}") from err2
            self._observe(spec)
            self._saw(self.identity, body["metadata"].get("annotations"))
            return True
        old = dict(lease.get("spec") or {})
        meta = dict(lease.get("metadata") or {})
        annotations = meta.get("annotations")
        self._observe(old)
        holder = old.get("holderIdentity")
        if holder and holder != self.identity and self._valid():
            self._saw(holder, annotations)
            return False
        mine = holder == self.identity and self.leading
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.lease_seconds,
            "acquireTime": old.get("acquireTime") if mine and old.get("acquireTime") else now,
            "renewTime": now,
            "leaseTransitions": int(old.get("leaseTransitions") or 0) + (0 if holder == self.identity else 1),
        }
        body = self._body(spec, annotations, meta.get("resourceVersion"))
        try:
            self._write(body)  # the resourceVersion read guards the race
        except ApiException as err:
            if err.status == 409:
                return False
            raise PlatformError(f"cannot renew Lease {self.namespace}/{self.name}: HTTP {err.status}") from err
        self._observe(spec)
        self._saw(self.identity, body["metadata"].get("annotations"))
        return True

    # -- the renewing thread ----------------------------------------------------------------------
    def start(self) -> None:
        """Run ``tick()`` on client-go's cadence in a daemon thread until ``release()``."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"lease-{self.name}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except ScanflowError as err:
                log.warning("Lease %s/%s: %s", self.namespace, self.name, err)
            # leader: renew every retry period (client-go's renew); follower: retry with jitter (its acquire)
            wait = self.retry_period if self.leading else self.retry_period * (1 + random.random() * self.JITTER)
            self._stop.wait(wait)

    def release(self) -> None:
        """Stop renewing; a leader hands the Lease over at once (empty holder, one-second duration)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(1.0, self.retry_period * 3))
            self._thread = None
        with self._lock:
            if not self.leading:
                return
            self.leading = False
            with contextlib.suppress(Exception):  # best effort: otherwise the Lease simply expires
                lease = self._read()
                old, meta = dict(lease.get("spec") or {}), dict(lease.get("metadata") or {})
                if old.get("holderIdentity") != self.identity:
                    return
                now = micro_time(self._clock.now())
                spec = {
                    "leaseDurationSeconds": 1,
                    "acquireTime": now,
                    "renewTime": now,
                    "leaseTransitions": int(old.get("leaseTransitions") or 0),
                }
                self._write(self._body(spec, meta.get("annotations"), meta.get("resourceVersion")))


def _LEASES(namespace: str) -> tuple[str, str, str, str]:
    """The custom-objects coordinates of Leases: ``/apis/coordination.k8s.io/v1/namespaces/<ns>/leases``."""
    return "coordination.k8s.io", "v1", namespace, "leases"
