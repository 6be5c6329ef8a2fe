"""The ``Platform`` interface: everything that acts on the world goes through it.

Two implementations share it: ``LocalPlatform`` (local engine + local Seldon serving, state in
``SCANFLOW_HOME``) and ``KubernetesPlatform`` (Argo Server / Workflow CRs + SeldonDeployments).
The CLI and the agents use only this interface, so the same code runs on both. The status records it
returns live in ``scanflow_argo.status`` (the engine and local serving fill them) and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from ..status import TERMINAL_PHASES, DeploymentStatus, NodeStatus, RunStatus

__all__ = [
    "TERMINAL_PHASES",
    "DeploymentStatus",
    "NodeStatus",
    "Platform",
    "RunStatus",
]


@runtime_checkable
class Platform(Protocol):
    """Acting on workflows and model deployments, locally or on Kubernetes."""

    name: str
    namespace: str

    # -- workflows --------------------------------------------------------------------------
    def apply_template(self, manifest: Mapping[str, Any]) -> None:
        """Create or update a WorkflowTemplate (or CronWorkflow); apply semantics."""
        ...

    def submit(
        self,
        workflow: Mapping[str, Any] | str,
        parameters: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> str:
        """Start a run and return its name at once. ``workflow`` is a Workflow manifest, or the
        name of an applied WorkflowTemplate (submitted as the Argo UI does: ``workflowTemplateRef``)."""
        ...

    def get_run(self, name: str) -> RunStatus:
        """The run's status now; ``NotFoundError`` when there is no such run."""
        ...

    def list_runs(self, labels: Mapping[str, str] | None = None) -> list[RunStatus]:
        """Runs whose labels include ``labels``, newest first."""
        ...

    def wait(self, name: str, timeout: float | None = None, poll: float = 0.5) -> RunStatus:
        """Block until the run ends (or ``timeout`` passes: ``UnavailableError``)."""
        ...

    def logs(self, name: str, node: str | None = None, container: str = "main") -> str:
        """Logs of a run, or of one node by display name; ``container`` as ``argo logs -c`` (init
        containers, sidecars, the containers of a containerSet)."""
        ...

    def stop(self, name: str) -> None:
        """Stop a running workflow (Argo's ``stop``: exit handlers still run)."""
        ...

    # -- model deployments ------------------------------------------------------------------
    def apply_deployment(self, manifest: Mapping[str, Any]) -> None:
        """Create or update a SeldonDeployment."""
        ...

    def get_deployment(self, name: str) -> DeploymentStatus:
        """``NotFoundError`` names namespace and name when it does not exist."""
        ...

    def scale(self, name: str, replicas: int) -> DeploymentStatus:
        """Set the replicas of the deployment's predictor."""
        ...

    def roll(self, name: str, model_uri: str) -> DeploymentStatus:
        """Roll the deployment to another model (replica by replica, no failed requests)."""
        ...

    def delete_deployment(self, name: str) -> None:
        """Remove a deployment and stop what serves it."""
        ...
