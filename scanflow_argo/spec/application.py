"""``Application``: what a team deploys — workflows, model services, agents and plain Hera objects.

    app = Application("mnist", namespace="scanflow", team="vision")
    app.add(train_template, retrain_template, weekly_retrain, Service("mnist", "models:/mnist@champion"))

``app.validate()`` raises ``ValidationError`` listing every issue; ``scanflow_argo.compile.compile_app``
turns it into manifests.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import SpecError
from .service import Service
from .validate import check_app
from .workflow import Workflow

TEAM_NAMESPACE_FORMAT = "scanflow-{app}-{team}"
"""The namespace of team ``team`` of application ``app`` (``compile.teams.team_namespace`` checks it)."""

__all__ = [
    "DEFAULT_IMAGE",
    "DEFAULT_SERVING_IMAGE",
    "Application",
    "ClusterStorage",
    "MonitoringConfig",
    "TrackingConfig",
    "is_hera_workflow",
    "workflow_name",
]

DEFAULT_IMAGE = "scanflow-argo/runtime:0.1.0"
"""The runtime image (project + ML libraries: workflow steps, agents); kustomize ``images:`` maps it to a registry."""

DEFAULT_SERVING_IMAGE = "scanflow-argo/serving:0.1.0"
"""The serving image (seldon-core 1.18.2 + the model class, ``docker/serving.Dockerfile``) that Services run."""


@dataclass(frozen=True)
class TrackingConfig:
    """Where workflow steps find MLflow on the cluster: the tracking URI is a key of a ConfigMap
    (compiled with ``uri`` as its value) and credentials are keys of a Secret the cluster admin
    creates (referenced, optional, never inline).

    Steps that roll deployments (``@step(deploys=True)``) also read two optional keys of the same
    ConfigMap, which the cluster's kustomization adds (``manifests/components/cluster``, the
    external-storage overlay) and the compiler never writes, so a local run stays local:
    ``platform_key`` (``kubernetes``), ``artifacts_destination_key`` (the MLflow server's
    ``--artifacts-destination``, to turn ``models:/`` into a URI Seldon downloads) and
    ``seldon_storage_key`` (the Secret Seldon's storage initializer downloads a bucket's models with).
    Agents read the same keys."""

    uri: str = "http://mlflow.scanflow.svc.cluster.local:5000"
    config_map: str = "scanflow-mlflow"
    uri_key: str = "MLFLOW_TRACKING_URI"
    secret: str = "scanflow-mlflow-credentials"
    username_key: str = "MLFLOW_TRACKING_USERNAME"
    password_key: str = "MLFLOW_TRACKING_PASSWORD"
    platform_key: str = "SCANFLOW_PLATFORM"
    artifacts_destination_key: str = "SCANFLOW_ARTIFACTS_DESTINATION"
    seldon_storage_key: str = "SCANFLOW_SELDON_STORAGE_CONFIG"


@dataclass(frozen=True)
class MonitoringConfig:
    """Where agents query Prometheus on the cluster: a key of a ConfigMap the compiler emits with ``prometheus_url``
    (kube-prometheus's ``prometheus-k8s`` Service in ``monitoring``; ``manifests/components/kube-prometheus-stack``
    points it at that chart's Service instead)."""

    prometheus_url: str = "http://prometheus-k8s.monitoring.svc:9090"
    config_map: str = "scanflow-prometheus"
    url_key: str = "SCANFLOW_PROMETHEUS_URL"


@dataclass(frozen=True)
class ClusterStorage:
    """The volume that is the state folder (``SCANFLOW_HOME``) of pods on the cluster, as ``.scanflow`` is locally:
    model pods write feedback to ``<mount>/feedback/<deployment>`` and workflow steps, whose home it is, read it
    there as ``feedback/<deployment>`` — the same contract as on one machine. A ReadWriteMany claim (several model
    replicas write while a training step reads), installed by ``manifests/base``."""

    claim: str = "scanflow-data"
    mount: str = "/var/lib/scanflow"
    volume: str = "scanflow-data"


def is_hera_workflow(obj: Any) -> bool:
    """True for a Hera ``Workflow`` of any kind (``WorkflowTemplate``, ``CronWorkflow`` … subclass it)."""
    from hera.workflows import Workflow as HeraWorkflow  # Hera (pydantic models) loads in ~1 s: only when asked

    return isinstance(obj, HeraWorkflow)


def workflow_name(wf: Any) -> str:
    """The name a workflow goes by: ``name``, else its ``generate_name`` prefix without the trailing ``-``
    (Hera's usual ``Workflow(generate_name="hello-")`` is ``hello``); ``""`` when it has neither."""
    name = getattr(wf, "name", None)
    if name:
        return str(name)
    return str(getattr(wf, "generate_name", None) or "").rstrip("-")


class Application:
    """Holds workflows (ours or Hera's), services and agents; compiled as one unit into one namespace.

    ``image`` runs workflow steps and agents; ``serving_image`` runs Services (a step or Service may
    name its own). Both are names without a registry: kustomize ``images:`` maps them on the cluster.
    """

    def __init__(
        self,
        name: str,
        namespace: str = "scanflow",
        team: str | None = None,
        *,
        image: str = DEFAULT_IMAGE,
        serving_image: str = DEFAULT_SERVING_IMAGE,
        workflows: Iterable[Any] = (),
        services: Iterable[Service] = (),
        agents: Iterable[Any] = (),
        tracking: TrackingConfig | None = None,
        monitoring: MonitoringConfig | None = None,
        storage: ClusterStorage | None = None,
    ) -> None:
        self.name = name
        self.namespace = namespace
        self.team = team
        self.image = image
        self.serving_image = serving_image
        self.tracking = tracking or TrackingConfig()
        self.monitoring = monitoring or MonitoringConfig()
        self.storage = storage or ClusterStorage()
        self.workflows: list[Any] = []
        self.services: list[Service] = []
        self.agents: list[Any] = []
        self.add(*workflows, *services, *agents)

    @property
    def in_team_environment(self) -> bool:
        """Whether the application lives in its team's environment (``team`` set and ``namespace`` the team's
        ``scanflow-<app>-<team>``, see docs/teams.md): its workflows then run as the team's ServiceAccount
        ``scanflow-team-workflows``, which that environment holds. ``team`` alone is a label."""
        return bool(self.team) and self.namespace == TEAM_NAMESPACE_FORMAT.format(app=self.name, team=self.team)

    def add(self, *objs: Any) -> Application:
        """Add workflows (``Workflow``/``WorkflowTemplate``/``CronWorkflow``, ours or Hera's), services or agents."""
        for obj in objs:
            if isinstance(obj, Workflow) or is_hera_workflow(obj):
                self.workflows.append(obj)
            elif isinstance(obj, Service):
                self.services.append(obj)
            elif all(hasattr(obj, a) for a in ("name", "entrypoint", "rbac_rules", "config")):
                self.agents.append(obj)
            else:
                raise SpecError(
                    f"application {self.name!r}: cannot add {obj!r} — expected a Workflow, WorkflowTemplate, "
                    "CronWorkflow (scanflow_argo.spec or hera.workflows), a Service or an agent"
                )
        return self

    def workflow(self, name: str) -> Any:
        """The workflow with this name; ``SpecError`` lists the names when there is none."""
        for wf in self.workflows:
            if workflow_name(wf) == name:
                return wf
        raise SpecError(
            f"application {self.name!r} has no workflow {name!r} (workflows: {', '.join(map(workflow_name, self.workflows))})"
        )

    @classmethod
    def of(cls, obj: Any, where: str = "") -> Application:
        """``obj`` as an Application: itself, or an application holding one workflow (ours or Hera's, of any
        kind) named after it, in the workflow's own namespace when it sets one. ``SpecError`` otherwise."""
        if isinstance(obj, Application):
            return obj
        if isinstance(obj, Workflow) or is_hera_workflow(obj):
            name = workflow_name(obj) or "workflow"
            namespace = getattr(obj, "namespace", None) or "scanflow"
            return cls(name, namespace=str(namespace), workflows=[obj])
        raise SpecError(
            f"{where or repr(obj)} is a {type(obj).__name__}, not a scanflow_argo Application nor a Workflow, "
            "WorkflowTemplate or CronWorkflow (of scanflow_argo.spec or hera.workflows)"
        )

    def validate(self) -> None:
        """Raise ``ValidationError`` with every issue found (see ``scanflow_argo.spec.validate``)."""
        check_app(self)

    def __repr__(self) -> str:
        return f"Application({self.name!r}, workflows={len(self.workflows)}, services={len(self.services)}, agents={len(self.agents)})"
