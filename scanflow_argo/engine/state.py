"""A run's state on disk: the Argo-shaped status document, written atomically, and resume.

``<run_dir>/workflow.yaml`` is the resolved Workflow; ``<run_dir>/status.json`` is
``{"apiVersion", "kind", "metadata", "spec", "status": {phase, startedAt, finishedAt, message,
nodes{id: {...}}, outputs}}``, rewritten (temp file + rename) before and after every node, so a
killed engine loses nothing: ``resume`` reads it back and skips nodes that already succeeded.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from ..clock import Clock, iso
from ..errors import EngineError

__all__ = ["RunState", "node_id", "read_status"]


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
    """The status document of a run folder."""
    path = run_dir / "status.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as err:
        raise EngineError(f"{run_dir} is not a run folder (no status.json)") from err
    except json.JSONDecodeError as err:
        raise EngineError(f"{path} is damaged: {err}") from err


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
        self.nodes: dict[str, dict[str, Any]] = self.status["nodes"]

    def now(self) -> str:
        return iso(self.clock.now())

    def reusable(self, nid: str) -> dict[str, Any] | None:
        """A node of the previous attempt that need not run again (resume)."""
        prev = self.previous_nodes.get(nid)
        if prev is None or prev.get("type") not in ("Pod", "Suspend", "Skipped"):
            return None
        if prev.get("phase") == "Succeeded":
            return prev
        if self.previous_phase == "Running" and prev.get("phase") in ("Failed", "Error") and prev.get("type") == "Pod":
            return prev  # a crash resume keeps what finished, failures included (retries move on)
        return None

    def put(self, node: dict[str, Any], write: bool = True) -> None:
        with self.lock:
            self.nodes[node["id"]] = node
            if write:
                self.write()

    def add_child(self, parent_id: str | None, child_id: str) -> None:
        if parent_id is None:
            return
        with self.lock:
            parent = self.nodes.get(parent_id)
            if parent is not None:
                children = parent.setdefault("children", [])
                if child_id not in children:
                    children.append(child_id)

    def write(self) -> None:
        """Atomically replace status.json with the current document."""
        with self.lock:
            data = json.dumps(self.doc, separators=(",", ":"), default=str)
            tmp = self.run_dir / f".status.{os.getpid()}.{threading.get_ident()}.tmp"
            tmp.write_text(data)
            os.replace(tmp, self.run_dir / "status.json")
