"""What a node kind is: ``NodeKind`` (the template field that selects it, Argo's node type, its ``check``
before anything runs and its ``run``), the ``Registry`` that lists them (Argo's ``executeTemplate`` switch
on ``tmpl.GetType()`` in ``workflow/controller/operator.go``, and the validator's per-type checks in
``workflow/validate/validate.go``, as one table), and ``KindContext``: the ``RunContext`` plus the pod
services (sandbox, volumes, artifact repository, daemons, lifecycle hooks, run hooks, resource applier).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ...settings import Settings
from ..core.context import Call, RunContext
from ..core.state import NodeDoc
from ..features.artifacts import ArtifactRepo
from ..features.daemons import Daemons
from ..features.lifecycle import Lifecycle
from ..features.run_hooks import RunHooks
from ..features.sandbox import Sandbox
from ..features.sync import RunLocks
from ..features.volumes import RunVolumes

__all__ = ["CheckContext", "KindContext", "NodeKind", "Registry", "ResourceApplier"]


class ResourceApplier(Protocol):
    """Applies a ``resource`` template's manifest where the run's platform keeps its objects (the local
    platform wires itself in: ``scanflow_argo.platform.local_engine``)."""

    def apply(self, action: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Carry out ``action`` (``create``/``apply``/``patch``) on ``manifest``; return the object as
        stored (its ``metadata.name`` filled in), which ``outputs.parameters[].valueFrom.jsonPath`` read."""
        ...

    def get(self, applied: Mapping[str, Any]) -> dict[str, Any] | None:
        """The object ``apply`` returned as it is now, its ``status`` included (None once it is gone): what
        ``successCondition``/``failureCondition`` are matched against (Argo's executor GETs its selfLink)."""
        ...


class KindContext(RunContext, Protocol):
    """The run as a node kind sees it: the ``RunContext`` and the services pods need."""

    run_hooks: RunHooks
    sandbox: Sandbox
    volumes: RunVolumes
    artifacts: ArtifactRepo
    daemons: Daemons
    lifecycle: Lifecycle
    locks: RunLocks
    kinds: Registry
    """The node kinds this run knows (a wrapper asks a template's node type of it)."""
    pythonpath: list[Path]
    applier: ResourceApplier | None
    home_env: str
    """``SCANFLOW_HOME`` of the nodes (this machine's "cluster": steps that roll deployments use it)."""


@dataclass
class CheckContext:
    """What a kind's ``check`` may use: the settings, the volumes the workflow declares, the notes
    (Kubernetes-only fields accepted and ignored) it adds to, and the workflow's namespace."""

    settings: Settings
    volumes: frozenset[str] = frozenset()
    notes: set[str] = field(default_factory=set)
    namespace: str = "default"


@dataclass(frozen=True)
class NodeKind:
    """One kind of template: ``key`` is the template field that selects it (``container``, ``steps``…)."""

    key: str
    node_type: str
    """Argo's node type for it (``Pod``, ``Steps``, ``DAG``, ``Suspend``, ``HTTP``)."""
    check: Callable[[Mapping[str, Any], str, CheckContext], None]
    """Refuse, before anything runs, what this kind cannot do here (``NotSupportedLocally``, ``EngineError``)."""
    run: Callable[[KindContext, Call], NodeDoc]
    """Run one attempt of ``call`` (template substituted, deadline set) and return its node."""


class Registry:
    """The node kinds the engine knows, in the order a template is matched against them."""

    def __init__(self, kinds: Iterable[NodeKind]) -> None:
        self._kinds: dict[str, NodeKind] = {}
        for kind in kinds:
            self._kinds[kind.key] = kind

    def with_kind(self, kind: NodeKind) -> Registry:
        """A copy with ``kind`` added (or replacing the kind of the same key): how tests add a fake kind."""
        return Registry([*(k for k in self._kinds.values() if k.key != kind.key), kind])

    def kind_of(self, tmpl: Mapping[str, Any]) -> NodeKind | None:
        """The kind of ``tmpl``: the first whose key the template has (None: not a template Argo knows)."""
        return next((k for k in self._kinds.values() if k.key in tmpl), None)

    def __iter__(self) -> Iterator[NodeKind]:
        return iter(self._kinds.values())
