"""Argo's ``synchronization`` locally: mutexes and semaphores shared by every engine on one state folder.

``parse_synchronization`` validates a ``synchronization`` block (``mutex``/``mutexes``,
``semaphore``/``semaphores``) into ``LockSpec``s named as Argo keys them (``<ns>/Mutex/<name>``,
``<ns>/ConfigMap/<configmap>/<key>``, ``<ns>/Database/<name>``). ``LockTable`` takes and releases
them across runs and engine processes: a lock of limit N is N slot files under
``<home>/locks/<ns>/<Kind>/<name>[/<key>]/`` and a holder owns one by ``fcntl.flock`` (the kernel
drops it when the engine dies, even by ``kill -9``). Waiters queue in ``queue/`` there (one flocked
file each, named by Argo's order: higher workflow ``priority`` first, then older
``creationTimestamp``); only the front waiter of another workflow may take a free slot, as in Argo's
priority queue. ``record_*`` keep ``status.synchronization`` in Argo's shape.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from ...clock import Clock
from ...errors import EngineError, NotSupportedLocally
from ..core.configstore import CONFIGMAPS, missing, read_key
from ..core.paths import safe_join

__all__ = [
    "HeldLocks",
    "LockSpec",
    "LockTable",
    "RunLocks",
    "forget_waiting",
    "parse_synchronization",
    "record_acquired",
    "record_released",
    "record_waiting",
    "semaphore_limit",
]

_SYNC_KEYS = {"mutex", "mutexes", "semaphore", "semaphores"}
_MUTEX_KEYS = {"name", "namespace", "database"}
_SEMAPHORE_KEYS = {"configMapKeyRef", "namespace", "database"}


@dataclass(frozen=True)
class LockSpec:
    """One lock of a ``synchronization`` block."""

    kind: str  # "Mutex", "ConfigMap" (a semaphore) or "Database" (a database mutex, kept locally)
    namespace: str
    name: str  # the mutex name, or the ConfigMap name
    key: str = ""  # the ConfigMap key of a semaphore

    @property
    def semaphore(self) -> bool:
        return self.kind == "ConfigMap"

    @property
    def lock_name(self) -> str:
        """Argo's lock key (``workflow/sync/lock_name.go``)."""
        if self.semaphore:
            return f"{self.namespace}/{self.kind}/{self.name}/{self.key}"
        return f"{self.namespace}/{self.kind}/{self.name}"


def _items(sync: Mapping[str, Any], key: str, where: str) -> list[Any]:
    """The entries of ``mutex`` (one) or ``mutexes`` (a list) — Argo 3.6 accepts both forms."""
    value = sync.get(key)
    if value is None:
        return []
    if key in ("mutexes", "semaphores"):
        if not isinstance(value, list):
            raise EngineError(f"{where}: synchronization.{key} must be a list")
        return value
    return [value]


def parse_synchronization(sync: Any, namespace: str, where: str) -> list[LockSpec]:
    """Validate a ``synchronization`` block; its locks in Argo's order (semaphores, then mutexes)."""
    if not sync:
        return []
    if not isinstance(sync, Mapping):
        raise EngineError(f"{where}: synchronization must be a mapping with mutexes and/or semaphores")
    unknown = set(sync) - _SYNC_KEYS
    if unknown:
        raise EngineError(
            f"{where}: unknown synchronization field(s) {', '.join(sorted(map(str, unknown)))} (use mutex, mutexes, semaphore, semaphores)"
        )
    specs: list[LockSpec] = []
    for key in ("semaphore", "semaphores"):
        for item in _items(sync, key, where):
            specs.append(_semaphore(item, namespace, f"{where} synchronization.{key}"))
    for key in ("mutex", "mutexes"):
        for item in _items(sync, key, where):
            specs.append(_mutex(item, namespace, f"{where} synchronization.{key}"))
    if len(set(specs)) != len(specs):
        raise EngineError(f"{where}: duplicate synchronization item found (each lock once)")
    return specs


def _mutex(item: Any, namespace: str, where: str) -> LockSpec:
    if not isinstance(item, Mapping) or not item.get("name"):
        raise EngineError(f"{where}: a mutex needs a name (mutexes: [{{name: my-lock}}])")
    unknown = set(item) - _MUTEX_KEYS
    if unknown:
        raise EngineError(f"{where}: unknown mutex field(s) {', '.join(sorted(map(str, unknown)))}")
    # A database mutex is shared by every controller through Argo's database; here the state
    # folder plays that part for every engine, so it is the same lock under its Argo key.
    kind = "Database" if item.get("database") else "Mutex"
    return LockSpec(kind, str(item.get("namespace") or namespace), _name(item["name"], where))


def _semaphore(item: Any, namespace: str, where: str) -> LockSpec:
    if not isinstance(item, Mapping):
        raise EngineError(f"{where}: a semaphore must be a mapping with configMapKeyRef")
    unknown = set(item) - _SEMAPHORE_KEYS
    if unknown:
        raise EngineError(f"{where}: unknown semaphore field(s) {', '.join(sorted(map(str, unknown)))}")
    if item.get("configMapKeyRef") and item.get("database"):
        raise EngineError(f"{where}: invalid semaphore with both configMapKeyRef and database")
    if item.get("database"):
        raise NotSupportedLocally("database-backed semaphores (their limit lives in Argo's sync_limit table)", where)
    ref = item.get("configMapKeyRef")
    if not isinstance(ref, Mapping) or not ref.get("name") or not ref.get("key"):
        raise EngineError(f"{where}: a semaphore needs configMapKeyRef with name and key (its limit)")
    return LockSpec("ConfigMap", str(item.get("namespace") or namespace), _name(ref["name"], where), _name(ref["key"], where))


def _name(value: Any, where: str) -> str:
    text = str(value)
    if "{{" not in text and ("/" in text or text in (".", "..")):
        raise EngineError(f"{where}: lock name {text!r} may not contain '/' (nor be '.' or '..')")
    return text


def semaphore_limit(home: Path, spec: LockSpec, where: str) -> int:
    """A semaphore's limit: the key of the ConfigMap of the lock's namespace (``core/configstore.py``; Argo reads
    ``<namespace>/ConfigMap/<name>/<key>`` with ``ConfigMaps(namespace).Get``, ``workflow/sync``)."""
    value = read_key(home, CONFIGMAPS, spec.namespace, spec.name, spec.key)
    if value is None:
        raise EngineError(
            f"{where}: semaphore {spec.lock_name} takes its limit from ConfigMap {spec.name} key {spec.key}: "
            + missing(home, CONFIGMAPS, spec.namespace, spec.name, spec.key)
        )
    text = value.strip()
    try:
        limit = int(text)
    except ValueError:
        limit = 0
    if limit < 1:
        raise EngineError(
            f"{where}: semaphore {spec.lock_name}: ConfigMap {spec.name} key {spec.key} of namespace {spec.namespace!r} "
            f"holds {text!r}, not a positive integer (the number of holders at once)"
        )
    return limit


# -- status.synchronization, in Argo's shape (SynchronizationStatus) ------------------------------
def _section(status: dict[str, Any], spec: LockSpec) -> dict[str, Any]:
    sync = status.setdefault("synchronization", {})
    return sync.setdefault("semaphore" if spec.semaphore else "mutex", {})


def record_waiting(status: dict[str, Any], spec: LockSpec, holders: list[str]) -> None:
    """This run waits for ``spec``, currently held by ``holders``."""
    section = _section(status, spec)
    waiting = section.setdefault("waiting", [])
    if spec.semaphore:
        entry: dict[str, Any] = {"semaphore": spec.lock_name, "holders": list(holders)}
        field = "semaphore"
    else:
        if not holders:
            return  # Argo records a mutex wait only against a holder
        entry, field = {"mutex": spec.lock_name, "holder": holders[0]}, "mutex"
    for i, item in enumerate(waiting):
        if item.get(field) == spec.lock_name:
            waiting[i] = entry
            return
    waiting.append(entry)


def record_acquired(status: dict[str, Any], spec: LockSpec, holder: str, still_waiting: bool) -> None:
    section = _section(status, spec)
    holding = section.setdefault("holding", [])
    if spec.semaphore:
        entry = next((h for h in holding if h.get("semaphore") == spec.lock_name), None)
        if entry is None:
            holding.append({"semaphore": spec.lock_name, "holders": [holder]})
        elif holder not in entry["holders"]:
            entry["holders"] = [*entry["holders"], holder]
    else:
        holding.append({"mutex": spec.lock_name, "holder": holder})
    if not still_waiting:
        forget_waiting(status, spec)


def forget_waiting(status: dict[str, Any], spec: LockSpec) -> None:
    """No holder of this run waits for ``spec`` any more."""
    section = _section(status, spec)
    field = "semaphore" if spec.semaphore else "mutex"
    section["waiting"] = [w for w in section.get("waiting") or [] if w.get(field) != spec.lock_name]
    _tidy(status, spec)


def _tidy(status: dict[str, Any], spec: LockSpec) -> None:
    """Drop empty lists and sections, so a run that holds and waits for nothing has no record."""
    sync = status.get("synchronization") or {}
    section = sync.get("semaphore" if spec.semaphore else "mutex") or {}
    for key in ("holding", "waiting"):
        if key in section and not section[key]:
            del section[key]
    if not section:
        sync.pop("semaphore" if spec.semaphore else "mutex", None)
    if not sync:
        status.pop("synchronization", None)


def record_released(status: dict[str, Any], spec: LockSpec, holder: str) -> None:
    section = _section(status, spec)
    holding = section.get("holding") or []
    if spec.semaphore:
        for entry in holding:
            if entry.get("semaphore") == spec.lock_name:
                entry["holders"] = [h for h in entry["holders"] if h != holder]
        holding = [e for e in holding if e.get("holders")]
    else:
        holding = [e for e in holding if not (e.get("mutex") == spec.lock_name and e.get("holder") == holder)]
    section["holding"] = holding
    _tidy(status, spec)


# -- the locks themselves ------------------------------------------------------------------------
def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class HeldLocks:
    """Slots this holder owns; ``release`` frees them (idempotent)."""

    def __init__(self, holder: str, slots: list[tuple[LockSpec, int]]) -> None:
        self.holder = holder
        self.slots = slots
        self._gone = False

    @property
    def specs(self) -> list[LockSpec]:
        return [spec for spec, _ in self.slots]

    def release(self) -> None:
        if self._gone:
            return
        self._gone = True
        for _spec, fd in self.slots:
            os.close(fd)  # closing drops the flock (what the slot says matters only while it is taken)


class _Queue:
    """This holder's place in one lock's queue: a flocked file named by Argo's priority order."""

    def __init__(self, folder: Path, order: str, holder: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.name = f"{order}~{quote(holder, safe='')}"
        tmp = folder / f".tmp-{uuid.uuid4().hex}"
        self.fd = os.open(tmp, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        os.replace(tmp, folder / self.name)  # visible only once locked: a live waiter is never taken for dead

    def ahead(self, workflow: str) -> list[str]:
        """Live waiters of other workflows before this one (stale entries of dead engines are removed)."""
        out = []
        for entry in sorted(os.listdir(self.folder)):
            if entry.startswith(".") or entry >= self.name:
                continue
            holder = unquote(entry.split("~", 1)[-1])
            if _workflow_of(holder) == workflow:
                continue  # Argo lets the nodes of the front workflow take the lock in any order
            if _alive(self.folder / entry):
                out.append(holder)
        return out

    def leave(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.folder / self.name)
        with contextlib.suppress(OSError):
            os.close(self.fd)


def _workflow_of(holder: str) -> str:
    return "/".join(holder.split("/")[:2])


def _alive(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        if _try_flock(fd):
            with contextlib.suppress(OSError):
                os.unlink(path)  # its engine died while waiting
            return False
        return True
    finally:
        os.close(fd)


class LockTable:
    """The locks of one state folder (``<home>/locks``), shared by every engine process using it."""

    def __init__(self, home: Path, clock: Clock, poll: float = 0.1) -> None:
        self.home = home
        self.root = home / "locks"
        self.clock = clock
        self.poll = poll

    def _folder(self, spec: LockSpec) -> Path:
        parts = [spec.namespace, spec.kind, spec.name] + ([spec.key] if spec.semaphore else [])
        return safe_join(self.root, "/".join(quote(p, safe="") for p in parts), f"lock {spec.lock_name}")

    def limit(self, spec: LockSpec, where: str) -> int:
        return semaphore_limit(self.home, spec, where) if spec.semaphore else 1

    def acquire(
        self,
        specs: list[LockSpec],
        holder: str,
        order: tuple[int, str],
        abort: threading.Event,
        where: str,
        on_wait: Callable[[LockSpec, str, list[str]], None] | None = None,
    ) -> HeldLocks | None:
        """Wait until ``holder`` owns every lock of ``specs`` at once; ``None`` when ``abort`` is set first.

        ``order`` is (workflow priority, creationTimestamp); ``on_wait(spec, message, holders)`` is
        called when the lock waited for, or its holders, change."""
        priority, created = order
        rank = f"{(2**31 - 1 - int(priority)):010d}-{created}"
        queues = [_Queue(self._folder(s) / "queue", rank, holder) for s in specs]
        last: tuple[str, str] | None = None
        try:
            while True:
                got, blocked, message, holders = self._try_all(specs, queues, holder, where)
                if got is not None:
                    return HeldLocks(holder, got)
                assert blocked is not None
                if on_wait is not None and (blocked.lock_name, message + "|".join(holders)) != last:
                    last = (blocked.lock_name, message + "|".join(holders))
                    on_wait(blocked, message, holders)
                end = self.clock.monotonic() + self.poll
                while not abort.is_set() and self.clock.monotonic() < end:
                    self.clock.sleep(min(0.05, end - self.clock.monotonic()))
                if abort.is_set():
                    return None
        finally:
            for q in queues:
                q.leave()

    def _try_all(
        self, specs: list[LockSpec], queues: list[_Queue], holder: str, where: str
    ) -> tuple[list[tuple[LockSpec, int]] | None, LockSpec | None, str, list[str]]:
        """All locks or none (as Argo's ``tryAcquireImpl``); else the first lock that blocks."""
        got: list[tuple[LockSpec, int]] = []
        try:
            return self._try_each(specs, queues, holder, where, got)
        except BaseException:
            for _s, fd in got:
                os.close(fd)  # a limit that cannot be read: give back what this attempt took
            raise

    def _try_each(
        self, specs: list[LockSpec], queues: list[_Queue], holder: str, where: str, got: list[tuple[LockSpec, int]]
    ) -> tuple[list[tuple[LockSpec, int]] | None, LockSpec | None, str, list[str]]:
        workflow = _workflow_of(holder)
        for spec, queue in zip(specs, queues, strict=True):
            limit = self.limit(spec, where)
            fd, holders = None, []
            if queue.ahead(workflow):
                holders = self._holders(spec, limit)  # a free slot goes to the waiter in front
            else:
                fd, holders = self._take_slot(spec, limit, holder)
            if fd is None:
                for _s, held_fd in got:
                    os.close(held_fd)
                got.clear()
                free = max(0, limit - len(holders))
                return None, spec, f"Waiting for {spec.lock_name} lock. Lock status: {free}/{limit}", holders
            got.append((spec, fd))
        return got, None, "", []

    def _take_slot(self, spec: LockSpec, limit: int, holder: str) -> tuple[int | None, list[str]]:
        """A free slot of ``spec`` (its flocked fd, the holder written in), or None and the holders seen."""
        folder = self._folder(spec)
        folder.mkdir(parents=True, exist_ok=True)
        holders: list[str] = []
        for i in range(limit):
            fd = os.open(folder / f"slot-{i}", os.O_RDWR | os.O_CREAT, 0o644)
            if _try_flock(fd):
                os.ftruncate(fd, 0)
                os.pwrite(fd, holder.encode(), 0)
                return fd, holders
            holders.append(self._holder_of(fd))
            os.close(fd)
        return None, holders

    def _holder_of(self, fd: int) -> str:
        """The holder written in a taken slot (a holder writes it just after taking the flock)."""
        for _ in range(20):
            text = os.pread(fd, 4096, 0).decode(errors="replace")
            if text:
                return text
            self.clock.sleep(0.005)
        return "?"

    def _holders(self, spec: LockSpec, limit: int) -> list[str]:
        """Who holds ``spec`` now (slots whose flock is taken)."""
        folder = self._folder(spec)
        out = []
        for i in range(limit):
            try:
                fd = os.open(folder / f"slot-{i}", os.O_RDONLY)
            except OSError:
                continue
            try:
                if _try_flock(fd):
                    continue
                out.append(self._holder_of(fd))
            finally:
                os.close(fd)
        return out


@dataclass
class RunLocks:
    """One run's view of the lock table: its waiting order (Argo's: the workflow's ``priority``, then its
    creation time) and which of its holders wait for which lock (``status.synchronization.waiting``)."""

    table: LockTable
    order: tuple[int, str]
    waiters: dict[str, set[str]] = field(default_factory=dict)
