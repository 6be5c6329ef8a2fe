"""The agent runtime: sensors, the pure ``decide`` function, the loop, its HTTP API, persisted knowledge.

Declarations live in ``scanflow_argo.spec.agent``; ``scanflow-argo agent run MODULE:AGENT``
(``scanflow_argo.cli.agent``) runs one with ``AgentRuntime`` + ``serve``. Heavy modules are
imported lazily so importing this package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AgentRuntime": "scanflow_argo.agents.runtime",
    "Decision": "scanflow_argo.agents.decide",
    "RuleState": "scanflow_argo.agents.decide",
    "Sample": "scanflow_argo.agents.decide",
    "SensorWindow": "scanflow_argo.agents.decide",
    "decide": "scanflow_argo.agents.decide",
    "load_agent": "scanflow_argo.agents.loader",
    "serve": "scanflow_argo.agents.api",
    "build_app": "scanflow_argo.agents.api",
    "InMemoryPlatform": "scanflow_argo.agents.testing",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'scanflow_argo.agents' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
