"""What an agent remembers across restarts, and its audit log.

The state (rule states, cooldowns, idempotency keys, in-flight runs, scaling history, inbox,
paused flag) lives behind one small interface — ``snapshot()``, ``get()``, ``update()`` (a block
whose changes are persisted when it ends, *before* the action it guards is performed),
``next_seq()``, ``refresh()`` — with two stores:

- ``AgentState``: ``<home>/agents/<name>/state.json``, rewritten atomically (temporary file,
  fsync, rename). Used locally.
- ``ConfigMapState``: the ``state.json`` key of the ConfigMap ``<agent>-state`` through the
  Kubernetes API, written with its ``resourceVersion``; a 409 means another writer got there
  first: re-read, three-way merge our change onto theirs, retry. Used when
  ``settings.platform == "kubernetes"``: the pod's folder is an emptyDir, lost on restart. The
  compiler emits the ConfigMap (the agent may only get/update it, by name).

A failed write leaves the in-memory state as it was before the block, so nothing is acted on
that was not persisted. ``decisions.jsonl`` is the append-only audit log: one JSON object per
decision with the inputs seen, the rule, the action and its result. An agent that works for a team on
Kubernetes also appends each record to its key ``<agent>.jsonl`` of the team's ``scanflow-audit`` ConfigMap
(``ConfigMapAudit``), where a platform admin reads every team's trail (docs/teams.md).
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..compile.teams import AUDIT_CONFIG_MAP
from ..errors import AgentError, ConflictError, NotFoundError, RequestError, ScanflowError, UnavailableError
from ..platform._k8s.api import call, load_api_client

__all__ = [
    "MAX_INBOX",
    "MAX_INBOX_BYTES",
    "AgentState",
    "AuditLog",
    "ConfigMapAudit",
    "ConfigMapState",
    "admit_message",
    "atomic_write_json",
    "merge3",
]

_MAX_KEYS = 2000
MAX_INBOX = 500
"""Messages waiting in the inbox at most (a full inbox refuses new ones: 429)."""
MAX_INBOX_BYTES = 256 * 1024
"""Their JSON size at most, so the state stays far below a ConfigMap's 1 MiB."""


def atomic_write_json(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old or the new file, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _base() -> dict[str, Any]:
    return {
        "rules": {},
        "last_attempt": {},
        "keys": {},
        "inflight": {},
        "recommendations": {},
        "fallback": {},
        "inbox": [],
        "paused": False,
        "seq": 0,
        "meta": {},
    }


def _copy(data: Any) -> Any:
    return json.loads(json.dumps(data))


class AgentState:
    """The persisted knowledge of one agent in a local file; every mutation goes through ``update()``."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "state.json"
        self._lock = threading.RLock()
        self._data: dict[str, Any] = {**_base(), **self._load()}

    # -- the store (overridden by other backends) -------------------------------------------------
    def _load(self) -> dict[str, Any]:
        if not self.path.exists():
            return {}
        try:
            return dict(json.loads(self.path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as err:
            raise AgentError(
                f"agent state {self.path} cannot be read ({err}) — fix or move the file away; "
                "moving it away makes the agent forget cooldowns and in-flight actions"
            ) from err

    def _store(self, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
        """Persist ``after`` (``before`` is what the block started from); return what is now stored."""
        atomic_write_json(self.path, after)
        return after

    # -- the interface --------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read the stored state (a new leader takes over what the previous one wrote)."""
        with self._lock:
            self._data = {**_base(), **self._load()}

    def snapshot(self) -> dict[str, Any]:
        """A deep copy, for ``decide`` and ``/status``."""
        with self._lock:
            return _copy(self._data)

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            return _copy(self._data.get(key, default))

    @contextmanager
    def update(self) -> Iterator[dict[str, Any]]:
        """Mutate the state in the block; it is persisted when the block ends (or rolled back if that fails)."""
        with self._lock:
            before = _copy(self._data)
            try:
                yield self._data
                self._prune(self._data)
                if self._data != before:
                    self._data = {**_base(), **self._store(before, _copy(self._data))}
            except BaseException:
                self._data = before
                raise

    def next_seq(self) -> int:
        with self.update() as data:
            data["seq"] = int(data.get("seq", 0)) + 1
            return int(data["seq"])

    @staticmethod
    def _prune(data: dict[str, Any], max_keys: int = _MAX_KEYS) -> None:
        keys: dict[str, Any] = data["keys"]
        if len(keys) > max_keys:
            for k in sorted(keys, key=lambda k: keys[k].get("t", 0) or 0)[: len(keys) - max_keys]:
                del keys[k]
        if len(data["inbox"]) > MAX_INBOX:
            data["inbox"] = data["inbox"][-MAX_INBOX:]


def admit_message(inbox: list[dict[str, Any]], message: dict[str, Any]) -> None:
    """RequestError (429) when ``message`` would take ``inbox`` past ``MAX_INBOX`` messages or ``MAX_INBOX_BYTES``."""
    size = sum(len(json.dumps(m)) for m in inbox) + len(json.dumps(message))
    if len(inbox) >= MAX_INBOX or size > MAX_INBOX_BYTES:
        raise RequestError(
            f"the inbox is full ({len(inbox)} messages, {size // 1024} KiB with this one; at most {MAX_INBOX} and "
            f"{MAX_INBOX_BYTES // 1024} KiB): retry once the agent has consumed some — is a rule listening to "
            f"topic {message.get('topic')!r}?",
            429,
        )


def merge3(base: Any, ours: Any, theirs: Any) -> Any:
    """Our change (``base`` → ``ours``) re-applied onto ``theirs``: keys we did not touch keep their
    value; lists of objects with an ``id`` (the inbox) merge by id; otherwise our value wins."""
    if ours == base:
        return theirs
    if isinstance(ours, dict) and isinstance(theirs, dict):
        b = base if isinstance(base, dict) else {}
        out = dict(theirs)
        for key in set(b) | set(ours):
            if key not in ours:
                out.pop(key, None)  # we deleted it
            elif key not in b or ours[key] != b[key]:
                out[key] = merge3(b.get(key), ours[key], theirs.get(key)) if key in theirs else ours[key]
        return out
    if _id_list(ours) and _id_list(theirs) and _id_list(base or []):
        b_ids = {str(m["id"]) for m in base or []}
        o_ids = {str(m["id"]) for m in ours}
        removed = b_ids - o_ids
        kept = [m for m in theirs if str(m["id"]) not in removed]
        seen = {str(m["id"]) for m in kept}
        return kept + [m for m in ours if str(m["id"]) not in b_ids and str(m["id"]) not in seen]
    return ours


def _id_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(m, dict) and "id" in m for m in value)


class ConfigMapState(AgentState):
    """The agent's state in the ``state.json`` key of a ConfigMap, written with its resourceVersion.

    The ConfigMap must exist (the compiler emits ``<agent>-state``); the agent needs only ``get``
    and ``update`` on it. Kept under 1 MiB (the ConfigMap limit) by pruning the oldest keys.
    """

    KEY = "state.json"
    ATTEMPTS = 5
    LIMIT = 900_000

    def __init__(self, folder: Path, name: str, namespace: str, api: Any, timeout: float = 30.0) -> None:
        self.name, self.namespace, self._api, self._timeout = name, namespace, api, timeout
        self._rv: str | None = None
        self.conflicts = 0
        super().__init__(folder)

    @classmethod
    def from_settings(cls, folder: Path, name: str, settings: Any) -> ConfigMapState:
        from kubernetes import client  # Kubernetes client: ~1.5 s, cluster path only

        kube = settings.kubernetes
        api = client.CoreV1Api(load_api_client(kube))
        return cls(folder, name, kube.namespace, api, timeout=kube.request_timeout)

    @property
    def what(self) -> str:
        return f"ConfigMap {self.namespace}/{self.name}"

    def _read(self) -> tuple[Any, dict[str, Any]]:
        try:
            cm = call(
                lambda: self._api.read_namespaced_config_map(self.name, self.namespace, _request_timeout=self._timeout),
                self.what,
            )
        except NotFoundError as err:
            raise AgentError(
                f"{self.what} holding the agent's state does not exist — apply the compiled manifests "
                "(kubectl apply -k manifests/), which create it empty; the agent may not create it"
            ) from err
        raw = (cm.data or {}).get(self.KEY) or "{}"
        try:
            data = dict(json.loads(raw))
        except (ValueError, TypeError) as err:
            raise AgentError(
                f"{self.what}: key {self.KEY} is not a JSON object ({err}) — fix it, or delete the key to start afresh "
                "(the agent then forgets cooldowns and in-flight actions)"
            ) from err
        return cm, data

    def _load(self) -> dict[str, Any]:
        cm, data = self._read()
        self._cm = cm
        return data

    def _store(self, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
        cm, ours = self._cm, after
        for attempt in range(self.ATTEMPTS):
            text = self._fit(ours)
            cm.data = {**(cm.data or {}), self.KEY: text}
            try:
                self._cm = call(functools.partial(self._replace, cm), self.what)
                return json.loads(text)
            except ConflictError:
                if attempt == self.ATTEMPTS - 1:
                    raise
                self.conflicts += 1
                cm, theirs = self._read()  # another writer got there first: merge our change onto theirs
                ours = merge3(before, after, {**_base(), **theirs})
                self._prune(ours)
            except UnavailableError:
                if attempt == self.ATTEMPTS - 1:
                    raise
                time.sleep(0.1 * 2**attempt)
        raise AgentError("unreachable")  # pragma: no cover

    def _replace(self, cm: Any) -> Any:
        return self._api.replace_namespaced_config_map(self.name, self.namespace, cm, _request_timeout=self._timeout)

    def _fit(self, data: dict[str, Any]) -> str:
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        keep = len(data["keys"])
        while len(text) > self.LIMIT and keep > 10:
            keep //= 2
            self._prune(data, keep)
            text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return text


class AuditLog:
    """Append-only JSONL of decisions; read back newest first, by page."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / "decisions.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def append(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True, default=str)
        with self._lock, open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()

    def page(self, page: int = 1, size: int = 50) -> dict[str, Any]:
        """Page ``page`` (1 = newest) of ``size`` records, with the total count."""
        page, size = max(1, page), max(1, min(size, 500))
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            lines = []
        total = len(lines)
        end = total - (page - 1) * size
        chosen = lines[max(0, end - size) : max(0, end)]
        records = []
        for line in reversed(chosen):
            try:
                records.append(json.loads(line))
            except ValueError:
                continue  # a line cut by a crash: skip it, keep the rest
        return {"page": page, "size": size, "total": total, "pages": (total + size - 1) // size, "decisions": records}

    def all(self) -> list[dict[str, Any]]:
        """Every record, oldest first (tests, tools)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out


class ConfigMapAudit(AuditLog):
    """The audit log of an agent that works for a team on Kubernetes: every record is kept in the pod's
    ``decisions.jsonl`` (the agent's API pages it) and appended to the key ``<agent>.jsonl`` of the team's
    ``scanflow-audit`` ConfigMap, where the admins' Group reads it (``platform.teams.read_audit``).

    Written with the ConfigMap's ``resourceVersion``: a 409 (another agent of the team appended first) re-reads
    and appends again. The key keeps the newest records within ``LIMIT`` bytes, so a team's agents stay far
    below a ConfigMap's 1 MiB. A write that fails (the API unreachable) never stops the agent: its records wait
    and go with the next append, oldest first. The agent may only get and update that ConfigMap, by name
    (``compile.teams``); it never creates it."""

    ATTEMPTS = 5
    LIMIT = 200_000

    def __init__(self, folder: Path, agent: str, namespace: str, api: Any, timeout: float = 30.0) -> None:
        super().__init__(folder)
        self.key, self.namespace, self._api, self._timeout = f"{agent}.jsonl", namespace, api, timeout
        self._waiting: list[str] = []
        self.last_error: str | None = None

    @classmethod
    def from_settings(cls, folder: Path, agent: str, settings: Any) -> ConfigMapAudit:
        from kubernetes import client  # Kubernetes client: ~1.5 s, cluster path only

        kube = settings.kubernetes
        return cls(folder, agent, kube.namespace, client.CoreV1Api(load_api_client(kube)), timeout=kube.request_timeout)

    @property
    def what(self) -> str:
        return f"ConfigMap {self.namespace}/{AUDIT_CONFIG_MAP}"

    def append(self, record: Mapping[str, Any]) -> None:
        super().append(record)
        with self._lock:
            self._waiting.append(json.dumps(record, sort_keys=True, default=str))
            try:
                self._flush()
                self.last_error = None
            except ScanflowError as err:  # kept for the next append; the local log has the record
                self.last_error = str(err)

    def _flush(self) -> None:
        for attempt in range(self.ATTEMPTS):
            try:
                cm = call(
                    lambda: self._api.read_namespaced_config_map(
                        AUDIT_CONFIG_MAP, self.namespace, _request_timeout=self._timeout
                    ),
                    self.what,
                )
            except UnavailableError:
                if attempt == self.ATTEMPTS - 1:
                    raise
                time.sleep(0.1 * 2**attempt)
                continue
            except NotFoundError as err:
                raise AgentError(
                    f"{self.what}, the team's audit trail, does not exist — apply the team's manifests "
                    "(kubectl apply -k .scanflow/teams/APP/TEAM), which create it empty; the agent may not create it"
                ) from err
            lines = [*((cm.data or {}).get(self.key) or "").splitlines(), *self._waiting]
            text = "".join(f"{line}\n" for line in lines)
            while len(text.encode()) > self.LIMIT and len(lines) > 1:
                lines = lines[max(1, len(lines) // 10) :]  # the oldest tenth goes first
                text = "".join(f"{line}\n" for line in lines)
            cm.data = {**(cm.data or {}), self.key: text}
            try:
                call(functools.partial(self._replace, cm), self.what)
            except ConflictError:
                if attempt == self.ATTEMPTS - 1:
                    raise
                continue  # another agent of the team appended first: read theirs, append ours again
            except UnavailableError:
                if attempt == self.ATTEMPTS - 1:
                    raise
                time.sleep(0.1 * 2**attempt)
                continue
            self._waiting.clear()
            return

    def _replace(self, cm: Any) -> Any:
        return self._api.replace_namespaced_config_map(AUDIT_CONFIG_MAP, self.namespace, cm, _request_timeout=self._timeout)
