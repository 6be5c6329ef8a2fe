"""Spec → manifests: ``compile_app`` (through Hera for Argo objects, plain dicts for the rest),
``write_manifests`` (deterministic YAML + kustomization), schema checks and lint of any Argo YAML.

Heavy libraries (hera, jsonschema, kubernetes_validate) are imported inside the functions that use them.

The package's names are imported on first use (``__getattr__``): the engine imports ``compile.schema``,
``compile.crd`` and ``compile.kubeyaml`` (the Kubernetes rules it shares with the compiler), and importing
them must not import the spec and the compiler as well (about 60 ms of every detached engine's start).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import compile_app
    from .graph import check_graph
    from .output import dump_yaml, file_name, write_manifests
    from .schema import SchemaChecker, check_manifests

_EXPORTS = {
    "SchemaChecker": ".schema",
    "check_graph": ".graph",
    "check_manifests": ".schema",
    "compile_app": ".app",
    "dump_yaml": ".output",
    "file_name": ".output",
    "write_manifests": ".output",
}

__all__ = [
    "SchemaChecker",
    "check_graph",
    "check_manifests",
    "compile_app",
    "dump_yaml",
    "file_name",
    "write_manifests",
]


def __getattr__(name: str) -> Any:
    """A re-exported name, from its module (imported now, once)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
