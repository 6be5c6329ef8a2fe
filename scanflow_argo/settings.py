"""The one settings object: grouped, every field with a default and a docstring.

Settings are passed explicitly to whatever needs them; nothing reads a global.
``Settings.from_env()`` is the single place that reads ``SCANFLOW_*`` environment variables
(plus ``MLFLOW_TRACKING_URI``); each group documents the variable of each field.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

__all__ = [
    "AgentSettings",
    "EngineSettings",
    "KubernetesSettings",
    "PrometheusSettings",
    "ServingSettings",
    "Settings",
    "TeamSettings",
    "TrackingSettings",
]


def _default_python() -> str:
    return sys.executable


@dataclass(frozen=True)
class EngineSettings:
    """The local engine that runs Argo manifests on this machine."""

    parallelism: int = field(default_factory=lambda: os.cpu_count() or 2)
    """Most nodes running at once (Argo's workflow-level ``parallelism`` can lower it). Env: SCANFLOW_ENGINE_PARALLELISM."""

    sandbox: str = "auto"
    """Per-node filesystem isolation: ``auto`` (bubblewrap when present), ``bwrap`` (required) or ``none``. Env: SCANFLOW_ENGINE_SANDBOX."""

    python: str = field(default_factory=_default_python)
    """Interpreter used for Python images and ``script`` templates. Env: SCANFLOW_ENGINE_PYTHON."""

    image_map: Mapping[str, str] = field(default_factory=dict)
    """Extra image mappings, matched on the full image name, then without registry and tag: ``RUNTIME[;OPTION...]``
    with RUNTIME ``python``, ``shell``, ``argosay`` or an executable path and OPTIONs ``path=/dir``, ``entrypoint=…``,
    ``cmd=…``, ``/container/path=/host/path``, ``tool=COMMAND[:PACKAGE]`` (``engine/features/images.py``,
    docs/local-engine.md). Env: SCANFLOW_ENGINE_IMAGE_MAP as ``image=mapping,...``."""

    templates_dir: Path | None = None
    """Folder of WorkflowTemplates that ``templateRef``/``workflowTemplateRef`` resolve against; default ``<home>/templates``. Env: SCANFLOW_ENGINE_TEMPLATES."""


@dataclass(frozen=True)
class ServingSettings:
    """Local Seldon serving: the router and the replicas of each deployment."""

    venv: Path = Path(".venv-serving")
    """The serving environment (seldon-core 1.18.2), the local twin of the serving image. Env: SCANFLOW_SERVING_VENV."""

    host: str = "127.0.0.1"
    """Address the router listens on (replicas always listen on 127.0.0.1, behind it). Env: SCANFLOW_SERVING_HOST."""

    router_port: int = 0
    """Router port; 0 picks a free one. Env: SCANFLOW_SERVING_ROUTER_PORT."""

    drain_seconds: float = 2.0
    """Longest wait for in-flight requests before a replica is stopped. Env: SCANFLOW_SERVING_DRAIN_SECONDS."""

    start_timeout: float = 90.0
    """Longest wait for a new replica to answer its readiness check. Env: SCANFLOW_SERVING_START_TIMEOUT."""

    workers: int = 1
    """Gunicorn workers per replica. Env: SCANFLOW_SERVING_WORKERS."""


@dataclass(frozen=True)
class TrackingSettings:
    """MLflow tracking and model registry."""

    uri: str | None = None
    """Tracking server to use; unset means the local server this project starts. Env: MLFLOW_TRACKING_URI."""

    port: int = 5005
    """Port of the local MLflow server on 127.0.0.1. Env: SCANFLOW_MLFLOW_PORT."""

    enabled: bool = True
    """Record workflow runs and steps in MLflow. Env: SCANFLOW_TRACKING (``0`` disables)."""

    experiment: str = "scanflow"
    """Default experiment for workflow runs without one. Env: SCANFLOW_MLFLOW_EXPERIMENT."""


@dataclass(frozen=True)
class PrometheusSettings:
    """The Prometheus server agents query."""

    url: str | None = None
    """An existing Prometheus to query; unset means the local one this project starts. Env: SCANFLOW_PROMETHEUS_URL."""

    port: int = 9095
    """Port of the local Prometheus on 127.0.0.1. Env: SCANFLOW_PROMETHEUS_PORT."""

    binary: str = "prometheus"
    """The Prometheus executable (Debian's ``prometheus`` package). Env: SCANFLOW_PROMETHEUS_BINARY."""

    scrape_interval: float = 1.0
    """Seconds between scrapes of the local Prometheus. Env: SCANFLOW_PROMETHEUS_SCRAPE_INTERVAL."""


@dataclass(frozen=True)
class KubernetesSettings:
    """The cluster side: Kubernetes API and Argo Server."""

    namespace: str = "scanflow"
    """Namespace of workflows, deployments and agents. Env: SCANFLOW_NAMESPACE."""

    kubeconfig: Path | None = None
    """Kubeconfig file; unset means in-cluster config, then ``~/.kube/config``. Env: KUBECONFIG."""

    context: str | None = None
    """Kubeconfig context. Env: SCANFLOW_KUBE_CONTEXT."""

    argo_server: str | None = None
    """Argo Server base URL; unset means create Workflow objects through the Kubernetes API. Env: SCANFLOW_ARGO_SERVER."""

    argo_token_env: str = "ARGO_TOKEN"
    """Name of the environment variable holding the Argo Server bearer token (never the token itself). Env: SCANFLOW_ARGO_TOKEN_ENV."""

    verify_tls: bool = True
    """Verify the Argo Server's TLS certificate. Env: SCANFLOW_ARGO_VERIFY_TLS (``0`` disables)."""

    request_timeout: float = 30.0
    """Seconds before one API request gives up. Env: SCANFLOW_KUBE_TIMEOUT."""

    artifacts_destination: str | None = None
    """Object store the cluster's MLflow server proxies ``mlflow-artifacts:/`` to (its ``--artifacts-destination``,
    e.g. ``s3://bucket/artifacts``): roll-outs turn a registry model into a URI under it that Seldon downloads.
    Env: SCANFLOW_ARTIFACTS_DESTINATION."""

    seldon_storage_config: str | None = None
    """Secret (rclone ``RCLONE_CONFIG_*`` keys) Seldon's storage initializer downloads bucket models with; set as
    ``graph.envSecretRefName`` when a deployment is applied or rolled to an object-store URI. Env: SCANFLOW_SELDON_STORAGE_CONFIG."""


@dataclass(frozen=True)
class AgentSettings:
    """The agent runtime."""

    host: str = "127.0.0.1"
    """Address of the agent's HTTP API (``0.0.0.0`` in a pod). Env: SCANFLOW_AGENT_HOST."""

    port: int = 8080
    """Port of the agent's HTTP API and metrics. Env: SCANFLOW_AGENT_PORT."""

    token_env: str = "SCANFLOW_AGENT_TOKEN"
    """Environment variable holding the bearer token of the agent API. Env: SCANFLOW_AGENT_TOKEN_ENV."""

    dry_run: bool = False
    """Decide and record, never act. Env: SCANFLOW_AGENT_DRY_RUN."""

    log_level: str = "INFO"
    """Level of the agent's log (``DEBUG``, ``INFO``, ``WARNING``…). Env: SCANFLOW_AGENT_LOG_LEVEL."""

    log_format: str = "text"
    """``text`` lines or ``json`` lines (one object per event, for log stacks). Env: SCANFLOW_AGENT_LOG_FORMAT."""


@dataclass(frozen=True)
class TeamSettings:
    """Defaults of a team's environment on the cluster (``scanflow-argo team create``): its ResourceQuota and
    LimitRange. Sized for one team's training steps, one served model with a few replicas and two agents."""

    quota_cpu: str = "16"
    """ResourceQuota ``requests.cpu`` of the team's namespace."""

    quota_memory: str = "32Gi"
    """ResourceQuota ``requests.memory`` of the team's namespace."""

    quota_pods: str = "50"
    """ResourceQuota ``pods``: workflow steps, replicas and agents together."""

    default_cpu: str = "500m"
    """LimitRange default CPU limit of a container that names none (its default request is half)."""

    default_memory: str = "1Gi"
    """LimitRange default memory limit of a container that names none (its default request is half)."""

    mlflow_secret: str = "mlflow-credentials"
    """Name of the team's Secret holding ``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` (created by the admin, never rendered)."""

    artifacts_bucket: str = "scanflow-artifacts"
    """S3 bucket of the team's Argo artifact repository (its keys under ``argo/<namespace>/``)."""

    artifacts_endpoint: str = "s3.amazonaws.com"
    """S3 endpoint of that bucket (MinIO: ``minio.minio:9000``)."""

    audit_readers: str = "scanflow-audit-readers"
    """The Group (as the cluster's authentication names it) of the platform admins who read every team's audit
    trail: bound in each team's namespace to get its ``scanflow-audit`` ConfigMap, and nothing else."""

    artifacts_secret: str = "argo-artifacts-s3"
    """Name of the team's Secret with the bucket's ``accesskey``/``secretkey`` (created by the admin, never rendered)."""


@dataclass(frozen=True)
class Settings:
    """Everything configurable, grouped by the part it configures."""

    home: Path = Path(".scanflow")
    """State folder of the local platform (runs, templates, deployments, servers). Env: SCANFLOW_HOME."""

    platform: str = "local"
    """``local`` (embedded default) or ``kubernetes``. Env: SCANFLOW_PLATFORM."""

    engine: EngineSettings = field(default_factory=EngineSettings)
    """Local engine settings."""

    serving: ServingSettings = field(default_factory=ServingSettings)
    """Local serving settings."""

    tracking: TrackingSettings = field(default_factory=TrackingSettings)
    """MLflow settings."""

    prometheus: PrometheusSettings = field(default_factory=PrometheusSettings)
    """Prometheus settings."""

    kubernetes: KubernetesSettings = field(default_factory=KubernetesSettings)
    """Cluster settings."""

    agent: AgentSettings = field(default_factory=AgentSettings)
    """Agent runtime settings."""

    teams: TeamSettings = field(default_factory=TeamSettings)
    """Defaults of team environments."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``environ`` (default ``os.environ``), then apply ``overrides``."""
        env = os.environ if environ is None else environ
        s = cls()

        def get(name: str) -> str | None:
            value = env.get(name)
            return value if value not in (None, "") else None

        def flag(value: str) -> bool:
            return value.strip().lower() not in ("0", "false", "no", "off")

        top: dict[str, Any] = {}
        if v := get("SCANFLOW_HOME"):
            top["home"] = Path(v)
        if v := get("SCANFLOW_PLATFORM"):
            top["platform"] = v
        eng: dict[str, Any] = {}
        if v := get("SCANFLOW_ENGINE_PARALLELISM"):
            eng["parallelism"] = int(v)
        if v := get("SCANFLOW_ENGINE_SANDBOX"):
            eng["sandbox"] = v
        if v := get("SCANFLOW_ENGINE_PYTHON"):
            eng["python"] = v
        if v := get("SCANFLOW_ENGINE_IMAGE_MAP"):
            eng["image_map"] = dict(pair.split("=", 1) for pair in v.split(",") if "=" in pair)
        if v := get("SCANFLOW_ENGINE_TEMPLATES"):
            eng["templates_dir"] = Path(v)
        srv: dict[str, Any] = {}
        for var, key, conv in [
            ("SCANFLOW_SERVING_VENV", "venv", Path),
            ("SCANFLOW_SERVING_HOST", "host", str),
            ("SCANFLOW_SERVING_ROUTER_PORT", "router_port", int),
            ("SCANFLOW_SERVING_DRAIN_SECONDS", "drain_seconds", float),
            ("SCANFLOW_SERVING_START_TIMEOUT", "start_timeout", float),
            ("SCANFLOW_SERVING_WORKERS", "workers", int),
        ]:
            if v := get(var):
                srv[key] = conv(v)
        trk: dict[str, Any] = {}
        if v := get("MLFLOW_TRACKING_URI"):
            trk["uri"] = v
        if v := get("SCANFLOW_MLFLOW_PORT"):
            trk["port"] = int(v)
        if v := get("SCANFLOW_TRACKING"):
            trk["enabled"] = flag(v)
        if v := get("SCANFLOW_MLFLOW_EXPERIMENT"):
            trk["experiment"] = v
        prom: dict[str, Any] = {}
        if v := get("SCANFLOW_PROMETHEUS_URL"):
            prom["url"] = v
        if v := get("SCANFLOW_PROMETHEUS_PORT"):
            prom["port"] = int(v)
        if v := get("SCANFLOW_PROMETHEUS_BINARY"):
            prom["binary"] = v
        if v := get("SCANFLOW_PROMETHEUS_SCRAPE_INTERVAL"):
            prom["scrape_interval"] = float(v)
        kube: dict[str, Any] = {}
        if v := get("SCANFLOW_NAMESPACE"):
            kube["namespace"] = v
        if v := get("KUBECONFIG"):
            kube["kubeconfig"] = Path(v)
        if v := get("SCANFLOW_KUBE_CONTEXT"):
            kube["context"] = v
        if v := get("SCANFLOW_ARGO_SERVER"):
            kube["argo_server"] = v
        if v := get("SCANFLOW_ARGO_TOKEN_ENV"):
            kube["argo_token_env"] = v
        if v := get("SCANFLOW_ARGO_VERIFY_TLS"):
            kube["verify_tls"] = flag(v)
        if v := get("SCANFLOW_KUBE_TIMEOUT"):
            kube["request_timeout"] = float(v)
        if v := get("SCANFLOW_ARTIFACTS_DESTINATION"):
            kube["artifacts_destination"] = v
        if v := get("SCANFLOW_SELDON_STORAGE_CONFIG"):
            kube["seldon_storage_config"] = v
        agt: dict[str, Any] = {}
        if v := get("SCANFLOW_AGENT_HOST"):
            agt["host"] = v
        if v := get("SCANFLOW_AGENT_PORT"):
            agt["port"] = int(v)
        if v := get("SCANFLOW_AGENT_TOKEN_ENV"):
            agt["token_env"] = v
        if v := get("SCANFLOW_AGENT_DRY_RUN"):
            agt["dry_run"] = flag(v)
        if v := get("SCANFLOW_AGENT_LOG_LEVEL"):
            agt["log_level"] = v.upper()
        if v := get("SCANFLOW_AGENT_LOG_FORMAT"):
            agt["log_format"] = v.lower()
        s = replace(
            s,
            **top,
            engine=replace(s.engine, **eng),
            serving=replace(s.serving, **srv),
            tracking=replace(s.tracking, **trk),
            prometheus=replace(s.prometheus, **prom),
            kubernetes=replace(s.kubernetes, **kube),
            agent=replace(s.agent, **agt),
        )
        return replace(s, **overrides) if overrides else s

    def with_home(self, home: Path | str) -> Settings:
        """A copy with another state folder (tests give each their own)."""
        return replace(self, home=Path(home))

    @property
    def templates_dir(self) -> Path:
        """Where local WorkflowTemplates live."""
        return self.engine.templates_dir or self.home / "templates"


def describe(settings: Settings) -> dict[str, Any]:
    """A JSON-able view of ``settings`` (paths as strings), for ``scanflow-argo config``."""
    out: dict[str, Any] = {}
    for f in fields(settings):
        value = getattr(settings, f.name)
        if hasattr(value, "__dataclass_fields__"):
            out[f.name] = {g.name: _plain(getattr(value, g.name)) for g in fields(value)}
        else:
            out[f.name] = _plain(value)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value
