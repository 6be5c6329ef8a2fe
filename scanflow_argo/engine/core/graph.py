"""The node graph of a run as Argo links it: a node's *outbound nodes*, the nodes that what runs after it
hangs under.

Argo does not make every step or task a child of its ``Steps``/``DAG`` node: the first StepGroup is the
Steps node's child, each next StepGroup a child of the previous group's outbound nodes
(``workflow/controller/steps.go`` ``executeSteps``), a DAG task with dependencies a child of its
dependencies' outbound nodes (``workflow/controller/dag.go`` ``executeDAGTask``, ``connectDependencies``),
and a Steps/DAG node records its own outbound nodes when it ends (``updateOutboundNodes``,
``updateOutboundNodesForTargetTasks``). ``outbound_nodes`` is Argo's ``getOutboundNodes``
(``workflow/controller/operator.go``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["outbound_nodes"]

_SELF = frozenset({"Skipped", "Suspend", "HTTP", "Plugin"})


def outbound_nodes(nodes: Mapping[str, Mapping[str, Any]], nid: str) -> list[str]:
    """The ids of the nodes that follow-up nodes of ``nid`` become children of (``getOutboundNodes``):

    - a Skipped, Suspend, HTTP or Plugin node, and a Pod, is its own outbound node — except the Pod of a
      ``containerSet`` (its children are Container nodes), which counts as its containers;
    - a Container or TaskGroup node without children is its own; with children, theirs (a Container whose
      child lies in another boundary — a next step hung under it — is its own);
    - a Retry node's is its last attempt;
    - a memoization hit (a Steps/DAG node that did not run) is its own;
    - any other node's (Steps, DAG) are those of the nodes in its ``outboundNodes``.
    """
    return _outbound(nodes, nid, 0)


def _outbound(nodes: Mapping[str, Mapping[str, Any]], nid: str, depth: int) -> list[str]:
    node = nodes.get(nid)
    if node is None or depth > 1000:  # a missing node (or a cycle, which Argo's graph cannot have) ends the walk
        return []
    ntype = node.get("type")
    children = list(node.get("children") or [])
    if ntype in _SELF:
        return [nid]
    if ntype == "Pod" and not any((nodes.get(c) or {}).get("type") == "Container" for c in children):
        return [nid]
    if ntype in ("Pod", "Container", "TaskGroup"):
        if not children:
            return [nid]
        out: list[str] = []
        for cid in children:
            child = nodes.get(cid) or {}
            if ntype == "Container" and child.get("boundaryID") != node.get("boundaryID"):
                out.append(nid)
            else:
                out.extend(_outbound(nodes, cid, depth + 1))
        return out
    if ntype == "Retry" and children:
        return [children[-1]]
    if ntype in ("Steps", "DAG") and (node.get("memoizationStatus") or {}).get("hit"):
        return [nid]
    out = []
    for oid in node.get("outboundNodes") or []:
        out.extend(_outbound(nodes, oid, depth + 1))
    return out
