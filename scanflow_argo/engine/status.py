"""Reading a run's Argo-shaped status for people: the ``argo get``-like tree and a one-line summary."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

__all__ = ["ICONS", "duration", "summary_line", "tree_lines"]

ICONS = {
    "Succeeded": "✔",
    "Failed": "✖",
    "Error": "⚠",
    "Running": "●",
    "Pending": "◷",
    "Skipped": "○",
    "Omitted": "○",
}
# Nodes that group others; like ``argo get`` they are shown only through their children.
HIDDEN = {"StepGroup"}


def _ts(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return None


def duration(start: str | None, end: str | None) -> str:
    """``1m30s`` style, as ``argo get`` prints it (empty while unknown)."""
    a, b = _ts(start), _ts(end)
    if a is None:
        return ""
    b = b or datetime.utcnow()
    secs = int((b - a).total_seconds())
    if secs < 60:
        return f"{secs}s"
    if secs < 3600:
        return f"{secs // 60}m{secs % 60}s"
    return f"{secs // 3600}h{secs % 3600 // 60}m"


def tree_lines(doc: Mapping[str, Any]) -> list[str]:
    """The node tree of a run: ``STEP TEMPLATE DURATION MESSAGE`` rows under the run's header."""
    meta = doc.get("metadata") or {}
    status = doc.get("status") or {}
    nodes: Mapping[str, Mapping[str, Any]] = status.get("nodes") or {}
    lines = [
        f"Name:       {meta.get('name', '')}",
        f"Status:     {status.get('phase', 'Pending')}",
    ]
    if status.get("message"):
        lines.append(f"Message:    {status['message']}")
    lines.append(f"Duration:   {duration(status.get('startedAt'), status.get('finishedAt'))}")
    params = ((doc.get("spec") or {}).get("arguments") or {}).get("parameters") or []
    if params:
        lines.append("Parameters:")
        lines += [f"  {p.get('name')}: {p.get('value', '')}" for p in params]
    rows: list[tuple[str, str, str, str]] = []
    roots = [nid for nid, n in nodes.items() if not n.get("boundaryID")]
    below = tree_children(nodes)

    def walk(nid: str, prefix: str, last: bool, depth: int) -> None:
        node = nodes.get(nid)
        if node is None:
            return
        children = below.get(nid, [])
        if node.get("type") in HIDDEN:
            for i, child in enumerate(children):
                walk(child, prefix, last and i == len(children) - 1, depth)
            return
        branch = "" if depth == 0 else ("└─" if last else "├─")
        icon = ICONS.get(node.get("phase", ""), "?")
        label = f"{prefix}{branch}{icon} {node.get('displayName', nid)}"
        rows.append(
            (
                label,
                node.get("templateName") or "",
                duration(node.get("startedAt"), node.get("finishedAt")),
                node.get("message") or "",
            )
        )
        sub = prefix + ("" if depth == 0 else ("  " if last else "│ "))
        for i, child in enumerate(children):
            walk(child, sub, i == len(children) - 1, depth + 1)

    for i, root in enumerate(sorted(roots, key=lambda r: nodes[r].get("startedAt") or "")):
        walk(root, "", i == len(roots) - 1, 0)
    if rows:
        width = max(len(r[0]) for r in rows) + 2
        twidth = max(max(len(r[1]) for r in rows), 8) + 2
        lines.append("")
        lines.append(f"{'STEP'.ljust(width)}{'TEMPLATE'.ljust(twidth)}{'DURATION'.ljust(10)}MESSAGE")
        for label, tmpl, dur, msg in rows:
            lines.append(f"{label.ljust(width)}{tmpl.ljust(twidth)}{dur.ljust(10)}{msg}".rstrip())
    return lines


_GROUPS = frozenset({"StepGroup", "TaskGroup", "Retry"})


def tree_children(nodes: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    """The nodes each node shows below it in the tree, as ``argo get`` nests them: Argo's ``children`` form a
    graph (a next StepGroup hangs under the previous group's pods, a DAG task under the tasks it depends on:
    ``engine/core/graph.py``), so a node is shown under its boundary (its Steps/DAG node) or under the group
    whose member it is (StepGroup, TaskGroup, Retry), once, in the order the nodes were recorded."""
    parents: dict[str, list[str]] = {}
    for pid, node in nodes.items():
        for cid in node.get("children") or []:
            parents.setdefault(cid, []).append(pid)
    out: dict[str, list[str]] = {}
    for cid, child in nodes.items():
        boundary = child.get("boundaryID")
        if not boundary:
            continue
        name = str(child.get("name", ""))
        members_of = [
            pid
            for pid in parents.get(cid, [])
            if pid == boundary or (nodes[pid].get("type") in _GROUPS and name.startswith(str(nodes[pid].get("name", ""))))
        ]
        home = members_of[0] if members_of else (boundary if boundary in nodes else None)
        if home is not None:
            out.setdefault(home, []).append(cid)
    return out


def summary_line(doc: Mapping[str, Any]) -> str:
    """``name: Phase (3/5 pods done)`` for progress displays."""
    status = doc.get("status") or {}
    pods = [n for n in (status.get("nodes") or {}).values() if n.get("type") == "Pod"]
    done = sum(1 for n in pods if n.get("phase") in ("Succeeded", "Failed", "Error"))
    running = sum(1 for n in pods if n.get("phase") == "Running")
    return (
        f"{(doc.get('metadata') or {}).get('name', '')}: {status.get('phase', 'Pending')} — {done} pod(s) done, {running} running"
    )
