"""Status records shared by every layer that reads runs and deployments: ``RunStatus`` and ``NodeStatus``
(a workflow run as Argo's ``status`` describes it), ``DeploymentStatus`` (a SeldonDeployment as a platform
sees it) and ``TERMINAL_PHASES``. Plain data, no behaviour beyond reading: the engine returns them, the
local serving controller fills them, and ``platform.base`` re-exports them as part of the Platform contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import NotFoundError

__all__ = [
    "CLUSTER_TEMPLATE_LABEL",
    "CRON_LABEL",
    "TEMPLATE_LABEL",
    "TERMINAL_PHASES",
    "DeploymentStatus",
    "NodeStatus",
    "PredictorStatus",
    "RunStatus",
]

TEMPLATE_LABEL = "workflows.argoproj.io/workflow-template"
"""Label Argo puts on a Workflow submitted from a WorkflowTemplate."""
CLUSTER_TEMPLATE_LABEL = "workflows.argoproj.io/cluster-workflow-template"
"""Label Argo puts on a Workflow submitted from a ClusterWorkflowTemplate."""
CRON_LABEL = "workflows.argoproj.io/cron-workflow"
"""Label Argo puts on a Workflow a CronWorkflow started."""

TERMINAL_PHASES = frozenset({"Succeeded", "Failed", "Error"})
"""Workflow phases after which nothing changes (Argo's)."""


@dataclass(frozen=True)
class NodeStatus:
    """One node of a run, as Argo's ``status.nodes[id]`` describes it."""

    id: str
    name: str
    display_name: str
    type: str
    phase: str
    template_name: str | None = None
    message: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    inputs: Mapping[str, Any] = field(default_factory=dict)
    outputs: Mapping[str, Any] = field(default_factory=dict)
    children: tuple[str, ...] = ()
    boundary_id: str | None = None
    """The steps/DAG (or Retry) node this node is inside (Argo's ``boundaryID``)."""

    @classmethod
    def from_argo(cls, node_id: str, node: Mapping[str, Any]) -> NodeStatus:
        return cls(
            id=node_id,
            name=node.get("name", node_id),
            display_name=node.get("displayName", node.get("name", node_id)),
            type=node.get("type", ""),
            phase=node.get("phase", "Pending"),
            template_name=node.get("templateName"),
            message=node.get("message"),
            started_at=node.get("startedAt"),
            finished_at=node.get("finishedAt"),
            inputs=node.get("inputs") or {},
            outputs=node.get("outputs") or {},
            children=tuple(node.get("children") or ()),
            boundary_id=node.get("boundaryID"),
        )

    def parameters(self) -> dict[str, str]:
        """Output parameters by name (plus ``result`` and ``exitCode`` when present)."""
        out = {p["name"]: p.get("value") for p in self.outputs.get("parameters", []) if "name" in p}
        for key in ("result", "exitCode"):
            if key in self.outputs:
                out[key] = self.outputs[key]
        return out

    def input_parameters(self) -> dict[str, str]:
        """Input parameters by name, as the node received them."""
        return {p["name"]: p.get("value") for p in self.inputs.get("parameters", []) if "name" in p}

    def artifacts(self) -> dict[str, Mapping[str, Any]]:
        """Output artifacts by name: Argo's artifact objects (path and where each is stored)."""
        return {a["name"]: a for a in self.outputs.get("artifacts", []) if isinstance(a, Mapping) and "name" in a}


@dataclass(frozen=True)
class RunStatus:
    """A workflow run as Argo reports it: the manifest's metadata and its ``status``."""

    name: str
    namespace: str
    phase: str
    labels: Mapping[str, str] = field(default_factory=dict)
    workflow: str = ""
    """What it is a run of: its WorkflowTemplate (``workflowTemplateRef`` or Argo's label), else its
    ``generateName`` without the trailing ``-``, else its own name."""
    uid: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    message: str | None = None
    parameters: Mapping[str, str] = field(default_factory=dict)
    nodes: Mapping[str, NodeStatus] = field(default_factory=dict)
    outputs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.phase in TERMINAL_PHASES

    @classmethod
    def from_workflow(cls, workflow: Mapping[str, Any]) -> RunStatus:
        """Build from a whole Workflow object (``metadata`` + ``spec`` + ``status``)."""
        meta = workflow.get("metadata") or {}
        status = workflow.get("status") or {}
        spec = workflow.get("spec") or {}
        params = {p["name"]: str(p.get("value", "")) for p in (spec.get("arguments") or {}).get("parameters", []) if "name" in p}
        labels = dict(meta.get("labels") or {})
        ref = (spec.get("workflowTemplateRef") or {}).get("name")
        of = ref or labels.get(TEMPLATE_LABEL) or str(meta.get("generateName") or "").rstrip("-") or meta.get("name", "")
        return cls(
            name=meta.get("name", ""),
            namespace=meta.get("namespace", ""),
            phase=status.get("phase") or "Pending",
            labels=labels,
            workflow=str(of),
            uid=meta.get("uid"),
            started_at=status.get("startedAt"),
            finished_at=status.get("finishedAt"),
            message=status.get("message"),
            parameters=params,
            nodes={k: NodeStatus.from_argo(k, v) for k, v in (status.get("nodes") or {}).items()},
            outputs=status.get("outputs") or {},
        )

    def reason(self) -> str | None:
        """Why the run is where it is, in one line: its own message, unless that only says a child failed
        (Argo's ``child 'x-123' failed``): then the first node that failed by itself, as ``name: message``."""
        own = (self.message or "").strip()
        if self.phase in ("Failed", "Error") and (not own or own.startswith("child ")):
            leaves = [
                n
                for n in self.nodes.values()
                if n.phase in ("Failed", "Error") and n.message and not n.message.startswith("child ")
            ]
            ids = {n.id for n in leaves}
            leaves = [n for n in leaves if not set(n.children) & ids]  # the node itself, not the group that says so too
            if leaves:
                first = sorted(leaves, key=lambda n: (n.finished_at or "", n.started_at or "", n.display_name))[0]
                return f"{first.display_name}: {first.message}"
        return own.splitlines()[0] if own else None

    def node(self, display_name: str) -> NodeStatus:
        """The node with this display name (Argo keys nodes by hashed ids; users think in names)."""
        matches = [n for n in self.nodes.values() if n.display_name == display_name]
        if not matches:
            known = ", ".join(sorted({n.display_name for n in self.nodes.values()})) or "none"
            raise NotFoundError(f"run {self.name!r} has no node named {display_name!r} (nodes: {known})")
        # A retried or looped name can appear more than once: the last to finish wins.
        return sorted(matches, key=lambda n: n.finished_at or "")[-1]


@dataclass(frozen=True)
class PredictorStatus:
    """One predictor of a SeldonDeployment: its share of the traffic (``traffic``), ``shadow``, replicas, model."""

    name: str
    traffic: int
    shadow: bool
    replicas: int
    ready_replicas: int
    model_uri: str | None
    spec: Mapping[str, Any] = field(default_factory=dict)
    """The predictor as the SeldonDeployment declares it (what a roll-out copies for its canary)."""


@dataclass(frozen=True)
class DeploymentStatus:
    """A SeldonDeployment as the platform sees it: desired vs. ready, and the model it serves."""

    name: str
    namespace: str
    replicas: int
    ready_replicas: int
    model_uri: str | None
    state: str
    """Seldon's ``status.state``: ``Creating``, ``Available`` or ``Failed``."""
    predictor: str = "default"
    endpoint: str | None = None
    """Base URL of Seldon's external API for this deployment (router locally)."""
    predictors: tuple[PredictorStatus, ...] = ()
    """Every predictor (the first is the deployment's own, whose replicas and model the fields above are)."""
