"""Argo's progress (``N/M``) of a run's nodes and of the workflow, kept up to date as nodes change.

The rules are Argo's ``UpdateProgress`` and ``sumProgress`` (``workflow/progress/updater.go``) over the
``Progress`` type (``pkg/apis/workflow/v1alpha1/progress.go``):

- an *executable* node (``Pod``, ``HTTP``, ``Plugin``, ``Container``, ``Suspend``) has its own progress:
  what its pod reported (``ARGO_PROGRESS_FILE``, the ``workflows.argoproj.io/progress`` annotation), else
  ``0/1``; once it Succeeded, was Skipped or Omitted it is complete (``M/M``);
- every other node's progress is the sum of the executable nodes it reaches through ``children`` (each
  once), written only when valid (``M > 0``);
- the workflow's ``status.progress`` is the sum over all executable nodes (``0/0`` before the first).

``ProgressTracker`` keeps these sums incrementally, so that a status write costs what changed, not the
whole run: a change of an executable node's own progress is added to each node that reaches it (found
through the reverse ``children`` edges), and a new edge adds the child's own progress to the nodes that
reach it only through that edge. Anything it cannot follow incrementally (a node put with children
already, on resume) makes the next update a whole recomputation, ``update_progress``, Argo's own pass.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

__all__ = ["COMPLETE_PHASES", "EXECUTABLE", "ProgressTracker", "own_progress", "parse_progress", "update_progress"]

EXECUTABLE = frozenset({"Pod", "HTTP", "Plugin", "Container", "Suspend"})
"""Node types whose progress is their own (updater.go ``executable``); the others sum their children."""
COMPLETE_PHASES = frozenset({"Succeeded", "Skipped", "Omitted"})
"""Phases in which an executable node's progress is complete (updater.go ``UpdateProgress``)."""
DEFAULT = (0, 1)
"""``wfv1.ProgressDefault``: an executable node that reported nothing."""

_INT = re.compile(r"[+-]?[0-9]+")


def _go_int(text: str) -> int:
    """Go's ``strconv.ParseInt(s, 10, 64)`` as progress.go uses it: 0 when it does not parse."""
    return int(text) if _INT.fullmatch(text) else 0


def parse_progress(text: Any) -> tuple[int, int] | None:
    """``N/M`` as ``(N, M)`` when Argo holds it valid (``Progress.IsValid``: ``0 <= N <= M``, ``M > 0``), else None."""
    if not isinstance(text, str) or "/" not in text:
        return None
    n_text, m_text = text.split("/", 1)
    n, m = _go_int(n_text), _go_int(m_text)
    return (n, m) if 0 <= n <= m and m > 0 else None


def _fmt(value: tuple[int, int]) -> str:
    return f"{value[0]}/{value[1]}"


def own_progress(node: Mapping[str, Any]) -> tuple[int, int]:
    """An executable node's own progress: reported (or ``0/1``), complete once it Succeeded, Skipped or Omitted."""
    n, m = parse_progress(node.get("progress")) or DEFAULT
    return (m, m) if node.get("phase") in COMPLETE_PHASES else (n, m)


def _executable(node: Mapping[str, Any] | None) -> bool:
    return node is not None and node.get("type") in EXECUTABLE


def _reach_sum(nodes: Mapping[str, Mapping[str, Any]], nid: str, own: Mapping[str, tuple[int, int]]) -> tuple[int, int]:
    """The sum of ``own`` over the nodes ``nid`` reaches through ``children``, each once (``sumProgress``)."""
    n = m = 0
    seen: set[str] = set()
    stack = list((nodes.get(nid) or {}).get("children") or [])
    while stack:
        cid = stack.pop()
        if cid in seen or cid == nid:
            continue
        seen.add(cid)
        child = nodes.get(cid)
        if child is None:
            continue  # a missing child is tolerated, as updater.go does
        stack.extend(child.get("children") or [])
        value = own.get(cid)
        if value is not None:
            n, m = n + value[0], m + value[1]
    return n, m


def update_progress(nodes: Mapping[str, MutableMapping[str, Any]]) -> str:
    """Argo's whole pass (``UpdateProgress``): every node's ``progress`` set, the workflow's returned."""
    return _whole_pass(nodes)[0]


def _whole_pass(
    nodes: Mapping[str, MutableMapping[str, Any]],
) -> tuple[str, dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
    own: dict[str, tuple[int, int]] = {}
    total = (0, 0)
    for nid, node in nodes.items():
        if _executable(node):
            value = own[nid] = own_progress(node)
            if node.get("progress") != _fmt(value):
                node["progress"] = _fmt(value)
            total = (total[0] + value[0], total[1] + value[1])
    sums: dict[str, tuple[int, int]] = {}
    for nid, node in nodes.items():
        if not _executable(node):
            value = sums[nid] = _reach_sum(nodes, nid, own)
            if value[1] > 0 and node.get("progress") != _fmt(value):
                node["progress"] = _fmt(value)
    return _fmt(total), own, sums


class ProgressTracker:
    """The progress of one run's nodes (see the module docstring); called under the run's lock."""

    def __init__(self, nodes: Mapping[str, MutableMapping[str, Any]]) -> None:
        self.nodes = nodes
        self.parents: dict[str, set[str]] = {}
        self.own: dict[str, tuple[int, int]] = {}
        self.sums: dict[str, tuple[int, int]] = {}
        self.total = (0, 0)
        self.full = True  # the first update computes everything
        self._touched: set[str] = set()
        # the summing nodes that reach a node, by node id: a next StepGroup hangs under every pod of a fan-out
        # (core/graph.py), so what reaches the nodes below it is looked up once, not walked per change
        self._reach: dict[str, frozenset[str]] = {}

    @property
    def workflow(self) -> str:
        """The workflow's ``status.progress``."""
        return _fmt(self.total)

    def node_put(self, node: Mapping[str, Any]) -> None:
        """A node recorded: one that comes with children (resume) is recomputed with the whole run."""
        if node.get("children"):
            self.full = True

    def edge(self, parent: str, child: str) -> None:
        """``child`` was added to ``parent``'s children."""
        parents = self.parents.setdefault(child, set())
        if parent in parents:
            return
        if self.full:
            parents.add(parent)
            return
        node = self.nodes.get(child)
        if node is not None and node.get("children"):
            parents.add(parent)
            self.full = True  # what the child reaches would be new to parent's side: recompute
            return
        own = self.own.get(child)
        if not own or own == (0, 0):
            parents.add(parent)
            self._reach.pop(child, None)  # a node without children: only its own entry changes
            return
        before = self._ancestors(child)
        parents.add(parent)
        self._reach.pop(child, None)
        for anc in self._ancestors(child) - before:
            self._add(anc, own)

    def update(self, changed: Iterable[str]) -> None:
        """Take the changes of ``changed`` (node ids) into the sums and write the nodes' ``progress``."""
        if self.full:
            self._recompute()
            return
        for nid in changed:
            node = self.nodes.get(nid)
            if not _executable(node):
                continue
            assert node is not None
            own = own_progress(node)
            if node.get("progress") != _fmt(own):
                node["progress"] = _fmt(own)
            old = self.own.get(nid, (0, 0))
            if own == old:
                continue
            self.own[nid] = own
            delta = (own[0] - old[0], own[1] - old[1])
            self.total = (self.total[0] + delta[0], self.total[1] + delta[1])
            for anc in self._ancestors(nid):
                self._add(anc, delta)
        self._flush()

    def _add(self, nid: str, delta: tuple[int, int]) -> None:
        if _executable(self.nodes.get(nid)):
            return
        old = self.sums.get(nid, (0, 0))
        self.sums[nid] = (old[0] + delta[0], old[1] + delta[1])
        self._touched.add(nid)

    def _flush(self) -> None:
        for nid in self._touched:
            node = self.nodes.get(nid)
            value = self.sums.get(nid, (0, 0))
            if node is not None and value[1] > 0 and 0 <= value[0] <= value[1] and node.get("progress") != _fmt(value):
                node["progress"] = _fmt(value)
        self._touched.clear()

    def _ancestors(self, nid: str) -> frozenset[str]:
        """The summing (non-executable) nodes that reach ``nid`` through ``children``; executable ones carry no
        sum (``_add`` skips them), so they are walked through but not kept."""
        cached = self._reach.get(nid)
        if cached is not None:
            return cached
        # the nodes above nid, each once, parents before their children, so each entry is made from its parents'
        order: list[str] = []
        visiting: set[str] = set()
        stack: list[tuple[str, bool]] = [(nid, False)]
        while stack:
            cur, expanded = stack.pop()
            if expanded:
                order.append(cur)
                continue
            if cur in visiting or (cur != nid and cur in self._reach):
                continue
            visiting.add(cur)
            stack.append((cur, True))
            stack.extend((pid, False) for pid in self.parents.get(cur, ()) if pid not in visiting and pid not in self._reach)
        for cur in order:
            out: set[str] = set()
            for pid in self.parents.get(cur, ()):
                if pid == cur:
                    continue
                if not _executable(self.nodes.get(pid)):
                    out.add(pid)
                out |= self._reach.get(pid, frozenset())
            out.discard(cur)
            self._reach[cur] = frozenset(out)
        return self._reach[nid]

    def _recompute(self) -> None:
        total, self.own, self.sums = _whole_pass(self.nodes)
        n, m = total.split("/")
        self.total = (int(n), int(m))
        self.parents = {}
        self._reach = {}
        for nid, node in self.nodes.items():
            for cid in node.get("children") or []:
                self.parents.setdefault(cid, set()).add(nid)
        self.full = False
        self._touched.clear()
