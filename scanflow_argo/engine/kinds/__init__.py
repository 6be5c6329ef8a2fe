"""Node kinds: one module per kind of template, each exposing ``check`` (before anything runs) and
``run(ctx, call)``, listed in ``REGISTRY`` — the one table that drives both checking (``engine/checks.py``)
and running (``engine/scheduler.py``), as Argo's ``executeTemplate`` switches on the template type.

A new node kind is one module (a ``NodeKind(key, node_type, check, run)``) plus one line here.
``pod`` is the one way a pod's containers are prepared and its outputs collected; ``calls`` holds what
``steps`` and ``dag`` share (loops, ``when``, arguments, hooks around each call).
"""

from __future__ import annotations

from . import container, container_set, dag, http, refused, resource, script, steps, suspend
from .base import CheckContext, KindContext, NodeKind, Registry, ResourceApplier

__all__ = ["REGISTRY", "CheckContext", "KindContext", "NodeKind", "Registry", "ResourceApplier"]

REGISTRY = Registry(
    [
        steps.KIND,
        dag.KIND,
        container.KIND,
        script.KIND,
        container_set.KIND,
        suspend.KIND,
        resource.KIND,
        http.KIND,
        *refused.KINDS,
    ]
)
