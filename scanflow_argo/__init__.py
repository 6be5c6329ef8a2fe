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
    "Settings": "scanflow_argo.settings",
    "Clock": "scanflow_argo.clock",
    "SystemClock": "scanflow_argo.clock",
    "ManualClock": "scanflow_argo.clock",
    "Platform": "scanflow_argo.platform.base",
    "RunStatus": "scanflow_argo.platform.base",
    "NodeStatus": "scanflow_argo.platform.base",
    "DeploymentStatus": "scanflow_argo.platform.base",
    "get_platform": "scanflow_argo.platform",
    "ScanflowError": "scanflow_argo.errors",
    "ValidationError": "scanflow_argo.errors",
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
