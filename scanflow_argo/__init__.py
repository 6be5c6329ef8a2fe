"""scanflow-argo: autonomic ML workflows on Argo Workflows, Seldon Core, Prometheus and MLflow.

The public API is curated here and loaded lazily, so ``import scanflow_argo`` stays cheap in
workflow steps and in the serving environment (which lacks the main environment's libraries).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # settings
    "Settings": "scanflow_argo.settings",
    # clock
    "Clock": "scanflow_argo.clock",
    "SystemClock": "scanflow_argo.clock",
    "ManualClock": "scanflow_argo.clock",
    # errors
    "ScanflowError": "scanflow_argo.errors",
    "ValidationError": "scanflow_argo.errors",
    "SpecError": "scanflow_argo.errors",
    "CompileError": "scanflow_argo.errors",
    "SchemaError": "scanflow_argo.errors",
    "EngineError": "scanflow_argo.errors",
    "NotSupportedLocally": "scanflow_argo.errors",
    "PlatformError": "scanflow_argo.errors",
    "NotFoundError": "scanflow_argo.errors",
    "ConflictError": "scanflow_argo.errors",
    "AlreadyExistsError": "scanflow_argo.errors",
    "UnavailableError": "scanflow_argo.errors",
    "ServingError": "scanflow_argo.errors",
    "TrackingError": "scanflow_argo.errors",
    "AgentError": "scanflow_argo.errors",
    "AgentDefinitionError": "scanflow_argo.errors",
    "SetupError": "scanflow_argo.errors",
    # spec
    "Application": "scanflow_argo.spec",
    "Workflow": "scanflow_argo.spec",
    "WorkflowTemplate": "scanflow_argo.spec",
    "CronWorkflow": "scanflow_argo.spec",
    "step": "scanflow_argo.spec",
    "container": "scanflow_argo.spec",
    "Param": "scanflow_argo.spec",
    "Output": "scanflow_argo.spec",
    "ArtifactIn": "scanflow_argo.spec",
    "ArtifactOut": "scanflow_argo.spec",
    "Retry": "scanflow_argo.spec",
    "Service": "scanflow_argo.spec",
    "Canary": "scanflow_argo.spec",
    "Shadow": "scanflow_argo.spec",
    "ITEM": "scanflow_argo.spec",
    "TrackingConfig": "scanflow_argo.spec",
    "DEFAULT_SERVING_IMAGE": "scanflow_argo.spec",
    # spec.agent
    "Agent": "scanflow_argo.spec.agent",
    "PromQuery": "scanflow_argo.spec.agent",
    "MlflowQuery": "scanflow_argo.spec.agent",
    "ArgoRuns": "scanflow_argo.spec.agent",
    "Replicas": "scanflow_argo.spec.agent",
    "Threshold": "scanflow_argo.spec.agent",
    "Hysteresis": "scanflow_argo.spec.agent",
    "RateOfChange": "scanflow_argo.spec.agent",
    "AnyOf": "scanflow_argo.spec.agent",
    "AllOf": "scanflow_argo.spec.agent",
    "OnMessage": "scanflow_argo.spec.agent",
    "Plan": "scanflow_argo.spec.agent",
    "SubmitWorkflow": "scanflow_argo.spec.agent",
    "ScaleDeployment": "scanflow_argo.spec.agent",
    "RollDeployment": "scanflow_argo.spec.agent",
    "SetModelAlias": "scanflow_argo.spec.agent",
    "SendMessage": "scanflow_argo.spec.agent",
    "agent_factory": "scanflow_argo.spec.agent",
    # compile
    "compile_app": "scanflow_argo.compile",
    "write_manifests": "scanflow_argo.compile",
    "check_manifests": "scanflow_argo.compile",
    # platform.base
    "Platform": "scanflow_argo.platform.base",
    "RunStatus": "scanflow_argo.platform.base",
    "NodeStatus": "scanflow_argo.platform.base",
    "DeploymentStatus": "scanflow_argo.platform.base",
    # platform
    "get_platform": "scanflow_argo.platform",
    # client
    "Client": "scanflow_argo.client",
    "Run": "scanflow_argo.client",
    # platform.local
    "LocalPlatform": "scanflow_argo.platform.local",
    # platform.kubernetes
    "KubernetesPlatform": "scanflow_argo.platform.kubernetes",
    # engine
    "run_workflow": "scanflow_argo.platform.local_engine",  # the engine wired to this machine: tracking, resources
    "resume": "scanflow_argo.platform.local_engine",
    "prepare_run": "scanflow_argo.engine",
    # engine.features.run_hooks
    "RunHooks": "scanflow_argo.engine.features.run_hooks",
    "NoHooks": "scanflow_argo.engine.features.run_hooks",
    # serving
    "LocalDeployments": "scanflow_argo.serving.controller",
    "DriftDetector": "scanflow_argo.serving.drift",
    "read_feedback": "scanflow_argo.serving.feedback",
    # monitoring.prometheus
    "PrometheusServer": "scanflow_argo.monitoring.prometheus",
    # tracking.server
    "MlflowServer": "scanflow_argo.tracking.server",
    # tracking.hooks
    "MlflowHooks": "scanflow_argo.tracking.hooks",
    # tracking.registry
    "register_model": "scanflow_argo.tracking.registry",
    "promote_if_better": "scanflow_argo.tracking.registry",
    "ModelVersion": "scanflow_argo.tracking.registry",
    "Promotion": "scanflow_argo.tracking.registry",
    # tracking.step
    "step_run": "scanflow_argo.tracking.step",
    "log_metrics": "scanflow_argo.tracking.step",
    "log_params": "scanflow_argo.tracking.step",
    # agents.runtime
    "AgentRuntime": "scanflow_argo.agents.runtime",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'scanflow_argo' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
