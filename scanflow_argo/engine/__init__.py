"""The local engine: runs Argo Workflow manifests on this machine with Argo's semantics.

Layers, each importing only those below it (``[tool.importlinter]`` in pyproject.toml enforces them):
``api`` (entry points) and ``status`` (the tree printer) → ``scheduler`` (the run, the dispatch) and
``checks`` (the one pass before anything runs) → ``wrappers`` (locks and retries around a call) →
``kinds`` (one module per node kind, and ``REGISTRY``) → ``features`` (volumes, daemons, sync, lifecycle
hooks, artifacts, sandbox, images, run hooks) → ``core`` (``RunContext``, ``Frame``, state, manifests,
substitution, values, durations). Nothing here imports ``scanflow_argo.platform``.

Public entry points (loaded lazily so ``import scanflow_argo.engine`` stays cheap): ``run_workflow``
(foreground), ``prepare_run`` + ``execute`` (run a prepared folder; the local platform's detached engine
is ``python -m scanflow_argo.platform.local_engine RUN_DIR``), ``resume`` (continue after the engine
died), and the ``RunHooks`` protocol with ``NoHooks`` and ``workflow_tracks``.
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
    "RunHooks": ".features.run_hooks",
    "NoHooks": ".features.run_hooks",
    "workflow_tracks": ".features.run_hooks",
    "TemplateStore": ".core.manifest",
    "load_documents": ".core.manifest",
    "REGISTRY": ".kinds",
    "NodeKind": ".kinds",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'scanflow_argo.engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
