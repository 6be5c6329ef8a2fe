"""What an agent remembers across restarts, and its audit log — both under ``<home>/agents/<name>/``.

``state.json`` (rule states, cooldowns, idempotency keys, in-flight runs, scaling history, inbox,
paused flag) is rewritten atomically (temporary file, fsync, rename) after every change that
matters, *before* the action it guards is performed, so a killed agent never repeats nor forgets
an action. ``decisions.jsonl`` is the append-only audit log: one JSON object per decision with
the inputs seen, the rule, the action and its result.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import AgentError

__all__ = ["AgentState", "AuditLog", "atomic_write_json"]

_MAX_KEYS = 2000
_MAX_INBOX = 500


def atomic_write_json(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old or the new file, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class AgentState:
    """The persisted knowledge of one agent; every mutation goes through ``update()``."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "state.json"
        self._lock = threading.RLock()
        self._data: dict[str, Any] = self._load()

    def _load(self) -> dict[str, Any]:
        base: dict[str, Any] = {
            "rules": {},
            "last_attempt": {},
            "keys": {},
            "inflight": {},
            "recommendations": {},
            "inbox": [],
            "paused": False,
            "seq": 0,
            "meta": {},
        }
        if not self.path.exists():
            return base
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise AgentError(
                f"agent state {self.path} cannot be read ({err}) — fix or move the file away; "
                "moving it away makes the agent forget cooldowns and in-flight actions"
            ) from err
        base.update(data)
        return base

    def snapshot(self) -> dict[str, Any]:
        """A deep copy, for ``decide`` and ``/status``."""
        with self._lock:
            return json.loads(json.dumps(self._data))

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            return json.loads(json.dumps(self._data.get(key, default)))

    @contextmanager
    def update(self) -> Iterator[dict[str, Any]]:
        """Mutate the state in the block; it is written atomically when the block ends."""
        with self._lock:
            yield self._data
            self._prune()
            atomic_write_json(self.path, self._data)

    def next_seq(self) -> int:
        with self.update() as data:
            data["seq"] = int(data.get("seq", 0)) + 1
            return int(data["seq"])

    def _prune(self) -> None:
        keys: dict[str, Any] = self._data["keys"]
        if len(keys) > _MAX_KEYS:
            for k in sorted(keys, key=lambda k: keys[k].get("t", 0))[: len(keys) - _MAX_KEYS]:
                del keys[k]
        if len(self._data["inbox"]) > _MAX_INBOX:
            self._data["inbox"] = self._data["inbox"][-_MAX_INBOX:]


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
