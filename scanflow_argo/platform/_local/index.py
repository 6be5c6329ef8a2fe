"""The runs index: one small summary per run, so listing a thousand runs does not read a thousand status files.

A run's ``status.json`` is rewritten by its engine before and after every node; what a list needs
(metadata, phase, times, progress) is a few hundred bytes of it. The index keeps, per run folder, the
summary and the ``(mtime_ns, size)`` of the status file it was taken from. ``refresh()`` lists the
runs folder and stats each status file (no read): only files that changed since are read again, so
a refresh of 1,000 finished runs costs 1,000 ``stat`` calls. The same pass reports what was added,
changed and removed, which is what the Argo Server's watch streams send.

The index is a cache, never the truth: it lives in ``<home>/runs/.index.json`` (rewritten atomically
when something changed, by whichever process refreshed it), and a missing, damaged or foreign index
is simply rebuilt from the status files. Argo's controller labels every Workflow with
``workflows.argoproj.io/phase`` and ``workflows.argoproj.io/completed``; the summaries (and the
documents the platform serves) carry those labels too, so Argo's clients can select on them.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...engine.core.state import JOURNAL, load_status
from ..base import TERMINAL_PHASES

__all__ = [
    "CONTROL_FILE",
    "LABEL_COMPLETED",
    "LABEL_PHASE",
    "Change",
    "RunsIndex",
    "argo_view",
    "progress",
    "read_run",
    "summary_of",
]

LABEL_PHASE = "workflows.argoproj.io/phase"
LABEL_COMPLETED = "workflows.argoproj.io/completed"
INDEX_VERSION = 2
CONTROL_FILE = "control.json"
"""What the user asked of a run beside its engine (``{"suspend": true}``, ``{"shutdown": "Stop"}``): Argo keeps
these in the Workflow's spec; locally the engine owns ``status.json``, so they live beside it and are merged
into the spec of the documents served (whoever writes it touches ``status.json`` so indexes notice)."""
_FULFILLED = frozenset({"Succeeded", "Failed", "Error", "Skipped", "Omitted"})
_SPEC_KEYS = ("suspend", "shutdown", "arguments", "workflowTemplateRef", "entrypoint", "activeDeadlineSeconds")


@dataclass(frozen=True)
class Change:
    """One run added, modified or deleted since the previous refresh (Argo's watch event types)."""

    type: str
    """``ADDED``, ``MODIFIED`` or ``DELETED``."""
    name: str
    summary: Mapping[str, Any]


def progress(nodes: Mapping[str, Any]) -> str:
    """Fulfilled pods / pods (``0/0`` before the first pod): ``status.progress`` of a run recorded before the
    engine kept Argo's own (``engine/core/progress.py``)."""
    pods = [n for n in nodes.values() if isinstance(n, Mapping) and n.get("type") == "Pod"]
    done = sum(1 for n in pods if n.get("phase") in _FULFILLED)
    return f"{done}/{len(pods)}"


def argo_view(doc: Mapping[str, Any], resource_version: str | None = None) -> dict[str, Any]:
    """The document as Argo serves a Workflow: the controller's phase labels, a ``resourceVersion``,
    ``status.progress``, and no ``null`` fields (Go's ``omitempty``; typed clients refuse nulls)."""
    out = _drop_nulls(doc)
    meta = out.setdefault("metadata", {})
    status = out.setdefault("status", {})
    phase = status.get("phase") or "Pending"
    labels = dict(meta.get("labels") or {})
    labels[LABEL_PHASE] = phase
    labels[LABEL_COMPLETED] = "true" if phase in TERMINAL_PHASES else "false"
    meta["labels"] = labels
    if resource_version:
        meta["resourceVersion"] = resource_version
    if "nodes" in status and "progress" not in status:
        status["progress"] = progress(status.get("nodes") or {})
    return out


def summary_of(doc: Mapping[str, Any], resource_version: str | None = None) -> dict[str, Any]:
    """What a list shows of a run: metadata, a few spec fields, the status without its nodes."""
    view = argo_view(doc, resource_version)
    status = dict(view.get("status") or {})
    status.pop("nodes", None)
    status.pop("storedTemplates", None)
    spec = view.get("spec") or {}
    return {
        "apiVersion": view.get("apiVersion", "argoproj.io/v1alpha1"),
        "kind": "Workflow",
        "metadata": view.get("metadata") or {},
        "spec": {k: spec[k] for k in _SPEC_KEYS if k in spec},
        "status": status,
    }


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def resource_version(stat: os.stat_result, journal: int = 0) -> str:
    """A resource version that changes whenever the run's status does: ``status.json``'s mtime, and the size of
    its journal (``journal``), which the engine appends to, touching status.json, twice within one clock tick
    at times (the mtime alone then stays put)."""
    return f"{stat.st_mtime_ns}{journal:012d}" if journal else str(stat.st_mtime_ns)


def run_stat(run_dir: str | Path) -> tuple[os.stat_result, int] | None:
    """``status.json``'s stat and its journal's size (0 when none), or None when the run has no status file."""
    try:
        stat = os.stat(os.path.join(run_dir, "status.json"))
    except OSError:
        return None
    try:
        journal = os.stat(os.path.join(run_dir, JOURNAL)).st_size
    except OSError:
        journal = 0
    return stat, journal


class RunsIndex:
    """Summaries of the runs in ``runs_dir``, kept current by ``refresh()`` (thread-safe).

    Changes are reported against this object's own previous view (its first refresh reports every
    run as ``ADDED``), whatever other processes did to the shared index file meanwhile."""

    def __init__(self, runs_dir: Path, persist: bool = True) -> None:
        self.runs_dir = runs_dir
        self.persist = persist  # write the index file when something changed (a watch's own feed only reads it)
        self.path = runs_dir / ".index.json"
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, Any]] | None = None
        self._file: dict[str, dict[str, Any]] = {}
        self._file_stamp: tuple[int, int] | None = None

    # -- the shared file: a cache of summaries by status-file stamp ------------------------------
    def _read_file(self) -> dict[str, dict[str, Any]]:
        try:
            stat = self.path.stat()
        except OSError:
            return {}
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._file_stamp:
            try:
                doc = json.loads(self.path.read_text())
                if doc.get("version") != INDEX_VERSION or not isinstance(doc.get("runs"), dict):
                    raise ValueError("another version of the index")
                self._file = {k: v for k, v in doc["runs"].items() if isinstance(v, dict) and "stamp" in v and "summary" in v}
            except (OSError, ValueError, AttributeError):
                self._file = {}  # damaged or foreign: rebuilt from the status files
            self._file_stamp = stamp
        return self._file

    def _save(self, entries: dict[str, dict[str, Any]]) -> None:
        tmp = self.runs_dir / f".index.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            tmp.write_text(json.dumps({"version": INDEX_VERSION, "runs": entries}, separators=(",", ":")))
            os.replace(tmp, self.path)
            stat = self.path.stat()
            self._file, self._file_stamp = dict(entries), (stat.st_mtime_ns, stat.st_size)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()

    # -- refresh -----------------------------------------------------------------------------
    def refresh(self) -> list[Change]:
        """Bring the summaries up to date with the status files; returns what changed since the last call."""
        with self._lock:
            cache = self._read_file()
            before = self._entries or {}
            first = self._entries is None
            entries: dict[str, dict[str, Any]] = {}
            changes: list[Change] = []
            stale_file = False
            for name, (stat, journal) in _status_files(self.runs_dir):
                stamp = [stat.st_mtime_ns, stat.st_size, journal]
                old = before.get(name)
                if old is not None and old["stamp"] == stamp:
                    entries[name] = old
                    continue
                cached = cache.get(name)
                if cached is not None and cached["stamp"] == stamp:
                    entry = cached
                else:
                    doc = read_run(self.runs_dir / name)
                    if doc is None:  # torn or unreadable right now: the next refresh reads it
                        if old is not None:
                            entries[name] = old
                        continue
                    entry = {
                        "stamp": stamp,
                        "created": _created_ns(self.runs_dir / name),
                        "summary": summary_of(doc, resource_version(stat, journal)),
                    }
                    stale_file = True
                entries[name] = entry
                changes.append(Change("ADDED" if old is None else "MODIFIED", name, entry["summary"]))
            if not first:
                changes += [Change("DELETED", n, e["summary"]) for n, e in before.items() if n not in entries]
            self._entries = entries
            if self.persist and (stale_file or set(cache) != set(entries)):
                self._save(entries)
            return changes

    def summaries(self) -> list[dict[str, Any]]:
        """Every run's summary, newest first (refreshed first)."""
        self.refresh()
        with self._lock:
            entries = list((self._entries or {}).values())
        entries.sort(key=lambda e: _newest_first_key(e["summary"], int(e.get("created") or 0)), reverse=True)
        return [e["summary"] for e in entries]

    def summary(self, name: str) -> dict[str, Any] | None:
        """The last summary seen of ``name`` (None when unknown)."""
        with self._lock:
            entry = (self._entries or {}).get(name)
        return entry["summary"] if entry else None


def _newest_first_key(summary: Mapping[str, Any], created_ns: int = 0) -> tuple[str, int, str]:
    """Creation time (Kubernetes' ``creationTimestamp``: whole seconds), then the nanosecond one of the run's
    folder (two runs created within one second would otherwise come in name order), then the name."""
    meta = summary.get("metadata") or {}
    status = summary.get("status") or {}
    return (str(meta.get("creationTimestamp") or status.get("startedAt") or ""), created_ns, str(meta.get("name", "")))


def _created_ns(run_dir: Path) -> int:
    """When the run was prepared, in nanoseconds: ``run.json`` is written once then (``engine/api.prepare_run``)."""
    try:
        return (run_dir / "run.json").stat().st_mtime_ns
    except OSError:
        return 0


def _status_files(runs_dir: Path) -> Iterator[tuple[str, tuple[os.stat_result, int]]]:
    try:
        entries = list(os.scandir(runs_dir))
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
            continue
        found = run_stat(entry.path)
        if found is not None:
            yield entry.name, found


def read_run(run_dir: Path) -> dict[str, Any] | None:
    """The run's status document with the user's requests (``CONTROL_FILE``) merged into its spec;
    None when it cannot be read right now (the engine replaces it atomically: a retry reads it)."""
    doc = load_status(run_dir)
    if doc is None:
        return None
    control = _read_json(run_dir / CONTROL_FILE)
    if control:
        doc["spec"] = {**(doc.get("spec") or {}), **{k: v for k, v in control.items() if k in ("suspend", "shutdown")}}
    return doc


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None
