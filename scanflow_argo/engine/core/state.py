"""A run's state on disk: the Argo-shaped status document, written atomically, and resume.

``<run_dir>/workflow.yaml`` is the resolved Workflow; ``<run_dir>/status.json`` is
``{"apiVersion", "kind", "metadata", "spec", "status": {phase, startedAt, finishedAt, message,
nodes{id: {...}}, outputs}}``. Every change (before and after every node) is appended to
``<run_dir>/status.journal`` as one JSON line (``{"metadata", "status": {all but nodes}, "nodes":
{changed id: node}, "children": {id: [ids added]}, "patch": {id: {key: value}}}``), so a write costs what
changed, not the whole run: a node that only gained children is written as the ids it gained, and one whose
only change was a key set (a fan-out parent's ``progress``) as that key — a parent with 10,000 children
would otherwise be written whole for each of them — and a killed engine loses nothing; the journal is compacted into ``status.json`` (temp file + rename, then the journal is
emptied) at checkpoints: the first write of an engine (start, resume), every ``COMPACT_EVERY``
changes or ``COMPACT_SECONDS``, and when the run's phase is final. Each append also touches
``status.json``, so readers that watch its ``stat`` (the runs index, the events stream) notice.
This is the write-ahead log Argo's controller has no need of (it patches the Workflow object in
the API server; large node status is offloaded, workflow/controller/operator.go ``persistUpdates``).

``load_status`` is the one reader: ``status.json`` with the journal's lines applied in order; a torn
last line (a write cut by ``kill -9``) is ignored. Replaying lines already compacted is harmless (each
line holds whole nodes or keys set, the last value per key equals what was compacted, and a child id is
added once).
"""

from __future__ import annotations

import copy
import json
import os
import threading
from pathlib import Path
from typing import Any

from ...clock import Clock, iso
from ...errors import EngineError
from .progress import ProgressTracker

__all__ = ["JOURNAL", "NodeDoc", "RunState", "apply_journal", "load_status", "node_id", "read_status"]

JOURNAL = "status.journal"
COMPACT_EVERY = 2000
COMPACT_SECONDS = 10.0

_dumps = json.JSONEncoder(separators=(",", ":"), default=str).encode
_NODE_LOCK = threading.Lock()


def node_id(workflow_name: str, node_name: str) -> str:
    """Argo's node id: the workflow name and the FNV-1a hash of the node name (the root is the workflow name)."""
    if node_name == workflow_name:
        return workflow_name
    h = 0x811C9DC5
    for byte in node_name.encode():
        h ^= byte
        h = (h * 0x01000193) & 0xFFFFFFFF
    return f"{workflow_name}-{h}"


def read_status(run_dir: Path) -> dict[str, Any]:
    """The status document of a run folder (``status.json`` and its journal)."""
    path = run_dir / "status.json"
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise EngineError(f"{run_dir} is not a run folder (no status.json)") from err
    except json.JSONDecodeError as err:
        raise EngineError(f"{path} is damaged: {err}") from err
    return apply_journal(doc, run_dir)


def load_status(run_dir: Path) -> dict[str, Any] | None:
    """The status document of a run folder, or None when ``status.json`` is missing or cannot be read
    as JSON right now (callers that poll retry)."""
    try:
        doc = json.loads((run_dir / "status.json").read_text())
    except (OSError, ValueError):
        return None
    return apply_journal(doc, run_dir) if isinstance(doc, dict) else None


def apply_journal(doc: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """``doc`` (read from ``status.json`` first) with the journal's complete lines applied in order."""
    try:
        data = (run_dir / JOURNAL).read_bytes()
    except OSError:
        return doc
    for line in data.split(b"\n"):
        if not line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a torn line: the write a kill cut short, never acknowledged
        if not isinstance(entry, dict):
            continue
        if isinstance(entry.get("metadata"), dict):
            doc["metadata"] = entry["metadata"]
        status = doc.get("status")
        if not isinstance(status, dict):
            status = doc["status"] = {}
        nodes = status.get("nodes")
        if not isinstance(nodes, dict):
            nodes = {}
        status.clear()
        status.update(entry.get("status") or {})
        nodes.update(entry.get("nodes") or {})
        for pid, fields in (entry.get("patch") or {}).items():
            target = nodes.get(pid)
            if isinstance(target, dict) and isinstance(fields, dict):
                target.update(fields)
        for pid, ids in (entry.get("children") or {}).items():
            parent = nodes.get(pid)
            if isinstance(parent, dict) and isinstance(ids, list):
                children = parent.setdefault("children", [])
                known = set(children)
                children.extend(i for i in ids if i not in known)
        status["nodes"] = nodes
    return doc


class NodeDoc(dict[str, Any]):
    """A node of the status document that keeps its JSON until one of its keys changes.

    Every way of changing a key drops the cached JSON; the engine replaces nested values
    (``node["outputs"] = …``) rather than editing them in place, and ``RunState.add_child`` calls
    ``touch`` on the node whose ``children`` it extends. One lock orders changes and dumps, so a
    change made while the node is being serialised is never hidden behind a stale cache."""

    __slots__ = ("_json", "_keys", "_sink")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._json: str | None = None
        self._sink: set[str] | None = None  # the ids changed since the last write, of the RunState holding it
        self._keys: set[str] | None = None  # the keys set since the last write; None: write the node whole

    def _changed(self, key: str | None = None) -> None:
        """Called under ``_NODE_LOCK``: drop the cached JSON and mark the node (or only ``key`` of it) for the
        next journal line."""
        self._json = None
        if key is None:
            self._keys = None
        elif self._keys is not None:
            self._keys.add(key)
        if self._sink is not None:
            self._sink.add(self.get("id") or "")

    def take_patch(self) -> dict[str, Any] | None:
        """The keys set since the last write with their values (None: the node must be written whole), and
        from now on nothing is pending."""
        with _NODE_LOCK:
            keys, self._keys = self._keys, set()
            if keys is None or any(k not in self for k in keys):
                return None
            return {k: self[k] for k in keys}

    def touch(self) -> None:
        """Drop the cached JSON (after an in-place change of a nested value)."""
        with _NODE_LOCK:
            self._changed()

    def stale(self) -> None:
        """Drop the cached JSON without marking the node for the next journal line (``RunState.add_child``
        journals the ids it adds on their own)."""
        with _NODE_LOCK:
            self._json = None

    def to_json(self) -> str:
        with _NODE_LOCK:
            if self._json is None:
                self._json = _dumps(self)
            return self._json

    def __setitem__(self, key: str, value: Any) -> None:
        with _NODE_LOCK:
            super().__setitem__(key, value)
            self._changed(key)

    def __delitem__(self, key: str) -> None:
        with _NODE_LOCK:
            super().__delitem__(key)
            self._changed()

    def __ior__(self, other: Any) -> NodeDoc:  # type: ignore[override,misc]  # typeshed's dict.__ior__ is generic over its own K, V
        self.update(other)
        return self

    def setdefault(self, key: str, default: Any = None) -> Any:
        with _NODE_LOCK:
            self._changed()
            return super().setdefault(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        with _NODE_LOCK:
            super().update(*args, **kwargs)
            self._changed()

    def pop(self, key: str, *default: Any) -> Any:
        with _NODE_LOCK:
            self._changed()
            return super().pop(key, *default)

    def popitem(self) -> tuple[str, Any]:
        with _NODE_LOCK:
            self._changed()
            return super().popitem()

    def clear(self) -> None:
        with _NODE_LOCK:
            super().clear()
            self._changed()

    def copy(self) -> NodeDoc:
        return NodeDoc(self)

    def __copy__(self) -> NodeDoc:
        return NodeDoc(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> NodeDoc:
        return NodeDoc(copy.deepcopy(dict(self), memo))

    def __reduce__(self) -> tuple[Any, ...]:
        return (NodeDoc, (dict(self),))


class RunState:
    """The status document of one run, shared by the engine's threads."""

    def __init__(self, run_dir: Path, workflow: dict[str, Any], clock: Clock, previous: dict[str, Any] | None = None) -> None:
        self.run_dir = run_dir
        self.clock = clock
        self.lock = threading.RLock()
        meta = workflow["metadata"]
        self.name: str = meta["name"]
        prev_status = (previous or {}).get("status") or {}
        self.previous_nodes: dict[str, dict[str, Any]] = dict(prev_status.get("nodes") or {})
        self.previous_phase = prev_status.get("phase")
        self.doc: dict[str, Any] = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": meta,
            "spec": workflow["spec"],
            "status": {
                "phase": "Running",
                "startedAt": prev_status.get("startedAt") or iso(clock.now()),
                "finishedAt": None,
                "nodes": {},
            },
        }
        self.status: dict[str, Any] = self.doc["status"]
        self.nodes: dict[str, NodeDoc] = self.status["nodes"]
        self.progress = ProgressTracker(self.nodes)  # status.progress and each node's, updated before every write
        self._spec_json: str | None = None
        self._quoted: dict[str, str] = {}
        self._status_path = str(run_dir / "status.json")
        self._tmp_prefix = str(run_dir / f".status.{os.getpid()}.")
        self._journal_path = str(run_dir / JOURNAL)
        self._journal_fd: int | None = None  # opened by the first write, which compacts
        self._dirty: set[str] = set()
        self._new_children: dict[str, list[str]] = {}  # ids added to a node since the last write
        self._child_sets: dict[str, tuple[list[str], set[str]]] = {}  # a node's children list and its ids as a set
        self._appended = 0
        self._compacted_at = 0.0

    def now(self) -> str:
        return iso(self.clock.now())

    def reusable(self, nid: str) -> dict[str, Any] | None:
        """A node of the previous attempt that need not run again (resume)."""
        prev = self.previous_nodes.get(nid)
        if prev is None or prev.get("type") not in ("Pod", "HTTP", "Suspend", "Skipped"):
            return None
        if prev.get("phase") == "Succeeded":
            return prev
        if self.previous_phase == "Running" and prev.get("phase") in ("Failed", "Error") and prev.get("type") == "Pod":
            return prev  # a crash resume keeps what finished, failures included (retries move on)
        return None

    def put(self, node: dict[str, Any], write: bool = True) -> NodeDoc:
        """Record ``node`` (kept as the same object when it is a ``NodeDoc``); returns the recorded node."""
        doc = node if isinstance(node, NodeDoc) else NodeDoc(node)
        with self.lock:
            self.nodes[doc["id"]] = doc
            self.progress.node_put(doc)
            with _NODE_LOCK:
                doc._sink = self._dirty
                doc._keys = None  # recorded: written whole
                self._dirty.add(doc["id"])
            if write:
                self.write()
        return doc

    def add_child(self, parent_id: str | None, child_id: str) -> None:
        if parent_id is None:
            return
        with self.lock:
            parent = self.nodes.get(parent_id)
            if parent is None:
                return
            children = parent.get("children")
            if children is None:
                parent["children"] = [child_id]  # its first child: the node is written whole
                self._dirty.add(parent_id)
                self.progress.edge(parent_id, child_id)
            elif child_id not in self._known_children(parent_id, children):
                children.append(child_id)
                self._child_sets[parent_id][1].add(child_id)
                self.progress.edge(parent_id, child_id)
                if isinstance(parent, NodeDoc):
                    parent.stale()  # the next journal line holds the new id, not the whole node again
                    self._new_children.setdefault(parent_id, []).append(child_id)
                else:
                    self._dirty.add(parent_id)

    def _known_children(self, parent_id: str, children: list[str]) -> set[str]:
        """The ids of ``children`` as a set, kept beside the list (a fan-out's parent has 10,000: a membership test
        of the list would cost that many comparisons per new child)."""
        known = self._child_sets.get(parent_id)
        if known is None or known[0] is not children or len(known[1]) != len(children):
            known = self._child_sets[parent_id] = (children, set(children))
        return known[1]

    def render(self) -> str:
        """The document as ``json.dumps(doc, separators=(",", ":"), default=str)`` writes it, from
        cached pieces: only nodes changed since the last render are serialised again."""
        with self.lock:
            parts = []
            for key, value in self.doc.items():
                if key == "status":
                    text = self._render_status()
                elif key == "spec":
                    if self._spec_json is None:
                        self._spec_json = _dumps(value)  # the spec is fixed once the run starts
                    text = self._spec_json
                else:
                    text = _dumps(value)
                parts.append(f"{_dumps(key)}:{text}")
            return "{" + ",".join(parts) + "}"

    def _render_status(self) -> str:
        parts = []
        for key, value in self.status.items():
            if key == "nodes" and value is self.nodes:
                quoted = self._quoted
                frags = []
                for nid, node in self.nodes.items():
                    q = quoted.get(nid)
                    if q is None:
                        q = quoted[nid] = _dumps(nid)
                    frags.append(f"{q}:{node.to_json() if isinstance(node, NodeDoc) else _dumps(node)}")
                text = "{" + ",".join(frags) + "}"
            else:
                text = _dumps(value)
            parts.append(f"{_dumps(key)}:{text}")
        return "{" + ",".join(parts) + "}"

    def write(self) -> None:
        """Record the changes since the last write: one journal line, or a compaction at a checkpoint."""
        with self.lock:
            self._update_progress()
            if (
                self._journal_fd is None
                or self._appended >= COMPACT_EVERY
                or self.status.get("phase") not in ("Running", "Pending")
                or self.clock.monotonic() - self._compacted_at >= COMPACT_SECONDS
            ):
                self.compact()
                return
            with _NODE_LOCK:
                changed = list(self._dirty)
                self._dirty.clear()
            added, self._new_children = self._new_children, {}
            frags = []
            patches: dict[str, dict[str, Any]] = {}
            for nid in changed:
                node = self.nodes.get(nid)
                if node is None:
                    continue
                patch = node.take_patch() if isinstance(node, NodeDoc) else None
                if patch is not None:  # only some keys were set (a fan-out parent's progress): those alone
                    if patch:
                        patches[nid] = patch
                    continue
                frags.append(f"{_dumps(nid)}:{node.to_json() if isinstance(node, NodeDoc) else _dumps(node)}")
                added.pop(nid, None)  # written whole, its new children with it
            rest = _dumps({k: v for k, v in self.status.items() if k != "nodes"})
            kids = f',"children":{_dumps(added)}' if added else ""
            keys = f',"patch":{_dumps(patches)}' if patches else ""
            line = f'{{"metadata":{_dumps(self.doc["metadata"])},"status":{rest},"nodes":{{{",".join(frags)}}}{kids}{keys}}}\n'
            _write_all(self._journal_fd, line.encode())
            os.utime(self._status_path)  # readers watch status.json's stat
            self._appended += 1

    def _update_progress(self) -> None:
        """Progress (``core/progress.py``) of the nodes changed since the last write; the nodes whose progress
        it changes join them."""
        with _NODE_LOCK:
            changed = list(self._dirty)
        self.progress.update(changed)
        self.status["progress"] = self.progress.workflow

    def compact(self) -> None:
        """Atomically replace status.json with the current document, then empty the journal."""
        with self.lock:
            self._update_progress()
            with _NODE_LOCK:
                self._dirty.clear()
                for node in self.nodes.values():
                    if isinstance(node, NodeDoc):
                        node._keys = set()  # all on disk now
            self._new_children.clear()
            data = self.render().encode()
            tmp = f"{self._tmp_prefix}{threading.get_ident()}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
            try:
                _write_all(fd, data)
            finally:
                os.close(fd)
            os.replace(tmp, self._status_path)
            if self._journal_fd is None:
                self._journal_fd = os.open(self._journal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.ftruncate(self._journal_fd, 0)
            if self.status.get("phase") not in ("Running", "Pending"):  # the run's end: nothing more to append
                os.close(self._journal_fd)
                self._journal_fd = None
            self._appended = 0
            self._compacted_at = self.clock.monotonic()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
