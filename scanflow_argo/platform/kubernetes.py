"""``KubernetesPlatform``: the ``Platform`` protocol on a cluster running Argo Workflows and Seldon Core.

Workflows go through the Argo Server API (Hera's ``WorkflowsService``) when
``settings.kubernetes.argo_server`` is set, else through ``Workflow`` custom objects; deployments are
SeldonDeployments read and merge-patched through the Kubernetes API. Configuration comes only from
``Settings`` (kubeconfig and context, else in-cluster); the Argo token is read from the environment
variable ``settings.kubernetes.argo_token_env`` names, never stored in settings or shown in messages.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..clock import Clock, SystemClock
from ..errors import AlreadyExistsError, NotFoundError, PlatformError, UnavailableError
from ..settings import Settings
from ..tracking.server import resolve_uri
from ._k8s.api import load_api_client
from ._k8s.argo import ArgoServerWorkflows, CrdWorkflows, WorkflowBackend, pod_name, with_arguments
from ._k8s.models import resolve_model_uri
from ._k8s.seldon import SeldonDeployments
from .base import (
    DeploymentStatus,
    NodeStatus,
    Pairs,
    RunStatus,
    SubmitTarget,
    already_exists,
    check_parameters,
    declared_parameters,
    unpack_artifact,
)

__all__ = ["KubernetesPlatform"]

_WAIT_ERRORS_TOLERATED = 3
"""Consecutive failed polls ``wait`` rides out (an API server restart) before it gives up."""


class KubernetesPlatform:
    """Workflows on Argo, models on Seldon Core, through their APIs; see the module docstring."""

    name = "kubernetes"

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        api_client: Any = None,
        environ: Mapping[str, str] | None = None,
        model_resolver: Callable[[str], str] | None = None,
    ) -> None:
        self.settings = settings
        self.namespace = settings.kubernetes.namespace
        self._clock = clock or SystemClock()
        self._api_client = api_client
        self._environ = os.environ if environ is None else environ
        self._resolve = model_resolver or self._registry_resolver
        self._workflows: WorkflowBackend | None = None
        self._deployments: SeldonDeployments | None = None

    # -- plumbing ---------------------------------------------------------------------------
    def _registry_resolver(self, model_uri: str) -> str:
        return resolve_model_uri(
            model_uri,
            tracking_uri=resolve_uri(self.settings, environ=dict(self._environ)),
            artifacts_destination=self.settings.kubernetes.artifacts_destination,
        )

    @property
    def api_client(self) -> Any:
        """The Kubernetes ``ApiClient``, configured on first use."""
        if self._api_client is None:
            self._api_client = load_api_client(self.settings.kubernetes)
        return self._api_client

    @property
    def workflows(self) -> WorkflowBackend:
        if self._workflows is None:
            kube = self.settings.kubernetes
            if kube.argo_server:
                token = self._environ.get(kube.argo_token_env) or None
                self._workflows = ArgoServerWorkflows(kube, token, self._clock)
            else:
                self._workflows = CrdWorkflows(self.api_client, self.namespace, kube.request_timeout, self._clock)
        return self._workflows

    @property
    def deployments(self) -> SeldonDeployments:
        if self._deployments is None:
            self._deployments = SeldonDeployments(
                self.api_client, self.namespace, self.settings.kubernetes.request_timeout, self._clock
            )
        return self._deployments

    # -- workflows --------------------------------------------------------------------------
    def apply_template(self, manifest: Mapping[str, Any]) -> None:
        self.workflows.apply_template(manifest)

    def submit(self, workflow: SubmitTarget, parameters: Pairs | None = None, labels: Pairs | None = None) -> str:
        params = {k: str(v) for k, v in (parameters or {}).items()}
        labels = dict(labels or {})
        if isinstance(workflow, str):
            if params:
                template = self.workflows.get_template(workflow)  # NotFoundError names it, as the submit would
                check_parameters(params, declared_parameters(template) or [], f"WorkflowTemplate {workflow}")
            created = self.workflows.submit_template(workflow, params, labels)
        else:
            if workflow.get("kind") != "Workflow":
                raise PlatformError(
                    f"submit takes a Workflow manifest or a WorkflowTemplate name, not kind {workflow.get('kind')!r} "
                    "(apply templates with apply_template, then submit them by name)"
                )
            meta = workflow.get("metadata") or {}
            if params:
                declared = declared_parameters(workflow, self._namespaced_template)
                if declared is not None:
                    check_parameters(params, declared, f"Workflow {meta.get('name') or meta.get('generateName')}")
            try:
                created = self.workflows.create(with_arguments(workflow, params, labels))
            except AlreadyExistsError as err:
                raise already_exists(str(meta.get("name")), self.name) from err
        return str(created["metadata"]["name"])

    def _namespaced_template(self, name: str, cluster_scope: bool) -> dict[str, Any]:
        """The WorkflowTemplate a Workflow references, to check its parameters before submitting; a
        ClusterWorkflowTemplate (another team's publication) is not read here — a team's Role cannot grant it —
        and Argo's controller checks the parameters against it (``NotFoundError``: no check here)."""
        if cluster_scope:
            raise NotFoundError(f"ClusterWorkflowTemplate {name!r} is resolved by Argo's controller, not read here")
        return self.workflows.get_template(name)

    def get_run(self, name: str) -> RunStatus:
        return RunStatus.from_workflow(self.workflows.get(name))

    def list_runs(self, labels: Mapping[str, str] | None = None) -> list[RunStatus]:
        items = self.workflows.list(labels)
        items.sort(key=lambda w: ((w.get("metadata") or {}).get("creationTimestamp") or "", w["metadata"]["name"]), reverse=True)
        return [RunStatus.from_workflow(w) for w in items]

    def wait(self, name: str, timeout: float | None = None, poll: float = 0.5) -> RunStatus:
        start = self._clock.monotonic()
        failures = 0
        last_phase = "unknown"
        while True:
            try:
                run = self.get_run(name)
                failures = 0
                last_phase = run.phase
                if run.done:
                    return run
            except UnavailableError as err:
                failures += 1
                if failures > _WAIT_ERRORS_TOLERATED:
                    raise UnavailableError(
                        f"lost the cluster while waiting for run {name!r} (last phase {last_phase}; "
                        f"{failures} polls failed): {err} — the run may still be going: `scanflow-argo status {name}`"
                    ) from err
            if timeout is not None and self._clock.monotonic() - start >= timeout:
                raise UnavailableError(f"run {name!r} is still {last_phase} after {timeout:g}s")
            self._clock.sleep(poll * (2 ** min(failures, 3)))

    def logs(self, name: str, node: str | None = None, container: str = "main") -> str:
        run = self.get_run(name)
        if node is not None:
            target = run.node(node)
            if target.type != "Pod":
                raise PlatformError(f"node {node!r} of run {name!r} is a {target.type} node: only Pod nodes have logs")
            return self.workflows.pod_log(name, self._pod(run.name, target), container)
        pods = sorted((n for n in run.nodes.values() if n.type == "Pod"), key=lambda n: (n.started_at or "", n.display_name))
        parts = []
        for pod in pods:
            try:
                text = self.workflows.pod_log(name, self._pod(run.name, pod), container)
            except NotFoundError:
                text = "(log no longer available: the pod was deleted)\n"
            parts.append(f"==> {pod.display_name} <==\n{text}")
        return "".join(parts)

    @staticmethod
    def _pod(run: str, node: NodeStatus) -> str:
        return pod_name(run, {"name": node.name, "id": node.id, "templateName": node.template_name})

    def stop(self, name: str) -> None:
        self.workflows.stop(name)

    def resume(self, name: str) -> str:
        """What ``scanflow-argo resume`` means on a cluster, where Argo's controller never dies with a run: a failed
        run is retried (Argo's ``retry``: its failed nodes run again, what succeeded is kept — as a local resume
        keeps them), a suspended one resumed (Argo's ``resume``). Returns what was done; a run that succeeded or is
        still running is a ``PlatformError`` saying so."""
        wf = self.workflows.get(name)
        run = RunStatus.from_workflow(wf)
        suspended = bool((wf.get("spec") or {}).get("suspend")) or any(
            n.type == "Suspend" and n.phase == "Running" for n in run.nodes.values()
        )
        if run.phase == "Succeeded":
            raise PlatformError(f"run {name!r} already finished (Succeeded): nothing to resume")
        if run.phase in ("Failed", "Error"):
            self.workflows.retry(name)
            return f"retrying {name} ({run.phase}): Argo re-runs its failed nodes and keeps what succeeded"
        if suspended:
            self.workflows.resume(name)
            return f"resumed {name}"
        raise PlatformError(
            f"run {name!r} is {run.phase} on the cluster, where Argo's controller carries it on: nothing to resume "
            f"(`scanflow-argo wait {name}` follows it)"
        )

    def delete_run(self, name: str) -> None:
        self.workflows.delete(name)

    def download_artifact(self, name: str, node: str, artifact: str, dest: Path) -> Path:
        target = self.get_run(name).node(node)
        if artifact not in target.artifacts():
            known = ", ".join(target.artifacts()) or "none"
            raise NotFoundError(f"node {node!r} of run {name!r} has no output artifact {artifact!r} (its artifacts: {known})")
        return unpack_artifact(self.workflows.output_artifact(name, target.id, artifact), Path(dest))

    # -- model deployments ------------------------------------------------------------------
    def apply_deployment(self, manifest: Mapping[str, Any]) -> str:
        """Create or update a SeldonDeployment, keeping a rolled model and scaled replicas (``_k8s/seldon.py``);
        returns a note when it was created without a model."""
        return self.deployments.apply(manifest, self._resolve, self.settings.kubernetes.seldon_storage_config)

    def get_deployment(self, name: str) -> DeploymentStatus:
        return self.deployments.get(name)

    def scale(self, name: str, replicas: int) -> DeploymentStatus:
        return self.deployments.scale(name, replicas)

    def roll(self, name: str, model_uri: str) -> DeploymentStatus:
        # Check the deployment exists before asking MLflow, so a typo fails fast and clearly.
        self.deployments.get_object(name)
        return self.deployments.roll(name, self._resolve(model_uri), self.settings.kubernetes.seldon_storage_config)

    def set_predictors(self, name: str, predictors: list[dict[str, Any]]) -> DeploymentStatus:
        # A roll-out's canary names the registry (models:/NAME/VERSION): resolved to its storage URI, as roll() does.
        return self.deployments.set_predictors(name, predictors, self._resolve, self.settings.kubernetes.seldon_storage_config)

    def delete_deployment(self, name: str) -> None:
        self.deployments.delete(name)
