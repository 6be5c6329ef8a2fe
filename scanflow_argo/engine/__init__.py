"""The local engine: runs Argo Workflow manifests on this machine with Argo's semantics.

Public entry points (loaded lazily so ``import scanflow_argo.engine`` stays cheap):
``run_workflow`` (foreground), ``prepare_run`` + ``python -m scanflow_argo.engine RUN_DIR``
(detached), ``execute`` (run a prepared folder), ``resume`` (continue after the engine died),
and the ``RunHooks`` protocol with ``NoHooks``, ``make_hooks`` and ``workflow_tracks``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "run_workflow": ".api",
    "prepare_run": ".api",
    "execute": ".api",
    "resume": ".api",
    "split_documents": ".api",
    "RunHooks": ".hooks",
    "NoHooks": ".hooks",
    "make_hooks": ".hooks",
    "workflow_tracks": ".hooks",
    "TemplateStore": ".model",
    "load_documents": ".model",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'scanflow_argo.engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
