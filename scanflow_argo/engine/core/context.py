"""The contract between the scheduler and what runs inside it: ``RunContext`` (what a node kind or a
feature may ask of the run) and ``Call`` (one invocation of a template as a node).

Argo's controller hands each template type the operation context (``woc``) and the node being executed
(``workflow/controller/operator.go`` ``executeTemplate``); here the scheduler's ``Executor`` is the one
implementation of ``RunContext``, and node kinds (``engine/kinds``) see it through this protocol (plus the
pod services of ``kinds.base.KindContext``), never its private members. Every node record is created,
finished or reused through it, and every write of the run's status goes through ``RunState.write``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from ...clock import Clock
from ...settings import Settings
from .frame import Frame
from .manifest import TemplateScope, TemplateStore
from .state import NodeDoc, RunState

__all__ = ["Call", "RunContext"]


@dataclass(frozen=True)
class Call:
    """One invocation of a template as node ``name``: what the wrappers (retries, locks) and the kind get.

    ``template`` is resolved (``templateDefaults`` applied); the kind gets it substituted with ``vars`` (the
    template's variables: globals, inputs, ``retries``, ``pod.name``…) and ``deadline`` set."""

    name: str
    display: str
    template: dict[str, Any]
    scope: TemplateScope
    inputs: dict[str, Any]
    parent: str | None
    retries: int = 0
    vars: Mapping[str, Any] | None = None
    deadline: float | None = None
    caller_scope: str = ""
    """Argo's ``templateScope`` of the node: the scope the template was resolved from (``local/<workflow>``,
    ``namespaced/<WorkflowTemplate>``, ``cluster/<ClusterWorkflowTemplate>``), which its attempts keep."""
    caller: tuple[str, str] = ("steps.name", "")
    """``steps.name`` (or ``tasks.name`` for a DAG task) and the name of the step or task that calls the template:
    Argo's ``executeTemplate`` sets it as a local parameter (``operator.go``: ``varkeys.StepsName``/``TasksName``
    = ``orgTmpl.GetName()``), empty for the entrypoint and exit handlers (a ``WorkflowStep`` with no name)."""
    locals: Mapping[str, str] | None = None
    """Further local parameters of an attempt: ``lastRetry.*`` under a retry strategy (see ``attempt``)."""

    @property
    def where(self) -> str:
        return f"template {self.template.get('name')!r}"

    @property
    def frame(self) -> Frame:
        """A fresh frame of the template's variables (steps and DAGs add to their own copy)."""
        return Frame(self.scope, dict(self.vars or {}))

    def attempt(self, index: int, parent: str, last_retry: Mapping[str, str] | None = None) -> Call:
        """Attempt ``index`` of a retried call: node ``name(index)`` under the Retry node, with ``last_retry``
        (``lastRetry.*``: the previous attempt's, Argo's defaults for the first) among its local parameters."""
        locals_ = {f"lastRetry.{k}": v for k, v in (last_retry or {}).items()}
        return replace(
            self,
            name=f"{self.name}({index})",
            display=f"{self.display}({index})",
            parent=parent,
            retries=index,
            locals={**(self.locals or {}), **locals_},
        )


class RunContext(Protocol):
    """What a node kind or a feature may ask of the run it belongs to."""

    name: str
    """The workflow's name (node ids derive from it: ``state.node_id``)."""
    namespace: str
    spec: dict[str, Any]
    """The workflow's ``spec`` (its workflow-level defaults: ``retryStrategy``…)."""
    run_dir: Path
    settings: Settings
    clock: Clock
    state: RunState
    """The status document; read under ``state.lock``; written only through ``state.write()``."""
    store: TemplateStore
    abort: threading.Event
    """Set when the run is stopped or passes its deadline; kinds stop their work and fail with ``abort_message``."""
    pod_slots: threading.Semaphore
    """Held while a pod's processes run (the run's ``parallelism``)."""
    hook_env: Mapping[str, str]
    """Environment the run hooks give every node (``MLFLOW_TRACKING_URI``…)."""

    @property
    def abort_message(self) -> str: ...

    def new_node(
        self, name: str, display: str, ntype: str, parent: str | None, tmpl: Mapping[str, Any] | None, phase: str = "Running"
    ) -> NodeDoc:
        """Record a node (written at once, except a Pending pod, written when it starts) under ``parent``."""
        ...

    def link(self, name: str, parents: list[str]) -> None:
        """Make the node called ``name``, when it is recorded, a child of ``parents`` (node ids) rather than of its
        boundary: a next StepGroup under the previous group's outbound nodes, a DAG task under its
        dependencies' (``core/graph.py``)."""
        ...

    def flag(self, name: str, **flags: bool) -> dict[str, bool]:
        """Add ``flags`` to the ``nodeFlag`` the node called ``name`` is recorded with (Argo's ``hooked``,
        ``retried``: ``executeTemplateOpts.nodeFlag`` in ``workflow/controller/operator.go``); returns all of its flags."""
        ...

    def finish(self, node: NodeDoc, phase: str, message: str | None = None) -> NodeDoc:
        """End ``node`` with ``phase`` (and ``message``); written and announced."""
        ...

    def reuse(self, nid: str, parent: str | None, tmpl: Mapping[str, Any]) -> NodeDoc | None:
        """Resume: the node as a previous engine finished it (None when it must run again)."""
        ...

    def changed(self, write: bool = True) -> None:
        """The status changed (a node's fields were set): write it (unless told not to) and tell the watchers."""
        ...

    def run_child(self, name: str, display: str, holder: Mapping[str, Any], frame: Frame, parent: str | None) -> NodeDoc:
        """Run the template ``holder`` names, with its (resolved) arguments, as node ``name``; an engine error
        becomes an Error node, as Argo marks a node whose template cannot be resolved."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait through the run's clock, waking early when the run is stopped."""
        ...

    def global_scope(self) -> dict[str, Any]:
        """The workflow's variables and the global outputs so far (``workflow.outputs.parameters.*``)."""
        ...

    def global_artifacts(self) -> dict[str, dict[str, Any]]:
        """Global output artifacts so far, as ``workflow.outputs.artifacts.<name>`` references."""
        ...

    def register_globals(self, tmpl: Mapping[str, Any], outputs: Mapping[str, Any]) -> None:
        """Outputs with a ``globalName`` become workflow outputs."""
        ...

    def failures(self) -> list[dict[str, Any]]:
        """``workflow.failures``: the failed pods so far."""
        ...

    def root_frame(self) -> Frame:
        """The workflow's own frame (global variables; the workflow's templates)."""
        ...

    def local_ref(self, kind: str, ref: Mapping[str, Any], what: str) -> str | None:
        """A ConfigMap (``configmaps``) or Secret (``secrets``) key of the run's namespace (``core/configstore.py``),
        or None."""
        ...
