"""Runs a resolved Workflow with Argo's semantics: the run's lifecycle, node records, and the dispatch of
each call through the node wrappers (locks, retries) to its node kind.

One ``Executor`` per run, the one implementation of ``KindContext`` (``engine/kinds/base.py``). A call
resolves its template (``template``/``templateRef``/``inline``) and inputs, goes through ``wrappers.CHAIN``
and is run by the kind the registry gives for its template (Argo's ``executeTemplate``,
``workflow/controller/operator.go``); the children of a steps group or a DAG run in threads, and pod
nodes take a slot of the run's parallelism. Every node is recorded in ``RunState`` (status.json) before
and after it runs — ``RunState.write`` is the one place the status is written — and on resume, nodes
that already finished are taken from the previous status instead of running again.
"""

from __future__ import annotations

import copy
import json
import sys
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from ..argoexpr.golang import go_json
from ..clock import Clock, iso
from ..errors import EngineError, InvalidWorkflow, NotSupportedLocally
from ..settings import Settings
from .core.configstore import CONFIGMAPS, missing, read_key
from .core.context import Call
from .core.durations import int_seconds, timeout_seconds
from .core.frame import Frame, resolve_args
from .core.inputs import param_value, resolve_inputs, template_vars
from .core.manifest import TemplateScope, TemplateStore, labels_from, resolve_ref, resolve_template
from .core.state import NodeDoc, RunState, node_id
from .core.subst import substitute
from .core.values import FAILED
from .features.artifacts import ArtifactRepo, resolve_repository
from .features.daemons import Daemons, contested_daemon_ports, reap_leftovers
from .features.estimation import Estimator
from .features.lifecycle import Lifecycle
from .features.podnet import PodNetworks, unavailable
from .features.run_hooks import RunHooks
from .features.sandbox import Sandbox
from .features.sync import HeldLocks, LockTable, RunLocks
from .features.volumes import RunVolumes
from .kinds import REGISTRY, Registry, ResourceApplier
from .wrappers import CHAIN
from .wrappers.memoize import memoization_status
from .wrappers.synchronization import hold_workflow_locks, release_workflow_locks

__all__ = ["MAX_DEPTH_MESSAGE", "MAX_STACK_DEPTH", "Executor"]

SCHEDULED_TIME = "workflows.argoproj.io/scheduled-time"
"""The annotation the cron controller sets, ``workflow.scheduledTime`` (``common.AnnotationKeyCronWfScheduledTime``)."""

MAX_STACK_DEPTH = 100
"""How deep templates may call templates (steps or DAG in steps or DAG…): Argo's ``maxStackDepth``
(``workflow/controller/operator.go``; ``executeTemplate`` errors the node past it, unless the controller runs
with ``DISABLE_MAX_RECURSION=true``)."""

MAX_DEPTH_MESSAGE = (
    "Maximum recursion depth exceeded. See https://argo-workflows.readthedocs.io/en/latest/scaling/#maximum-recursion-depth"
)
"""Argo's ``ErrMaxDepthExceeded`` (``workflow/controller/operator.go``), word for word."""

PYTHON_FRAMES_PER_LEVEL = 20
"""Python frames one template call takes through the wrappers and kinds (about 12 today, with margin): the
interpreter's recursion limit is raised so that ``MAX_STACK_DEPTH`` is reached before a ``RecursionError``."""


class Executor:
    """Executes one run of a resolved Workflow (see the module docstring)."""

    def __init__(
        self,
        run_dir: Path,
        workflow: dict[str, Any],
        settings: Settings,
        hooks: RunHooks,
        clock: Clock,
        store: TemplateStore,
        previous: dict[str, Any] | None = None,
        pythonpath: list[Path] | None = None,
        log: Callable[[str], None] | None = None,
        on_change: Callable[[RunState], None] | None = None,
        applier: ResourceApplier | None = None,
        kinds: Registry = REGISTRY,
    ) -> None:
        self.run_dir = run_dir
        self.wf = workflow
        self.spec: dict[str, Any] = workflow["spec"]
        self.settings = settings
        self.run_hooks = hooks
        self.clock = clock
        self.store = store
        self.kinds = kinds
        self.applier = applier
        self.log = log or (lambda msg: None)
        self.on_change = on_change
        self.state = RunState(run_dir, workflow, clock, previous)
        self.name = self.state.name
        # the run's namespace's repository: each namespace's artifacts under its own prefix
        self.artifacts = ArtifactRepo(settings.home / "artifacts", str(workflow["metadata"].get("namespace") or "default"))
        self.pythonpath = pythonpath or []
        # the home is this machine's "cluster": steps that roll deployments read and write its state
        self.home_env = str(settings.home.resolve())
        # Nodes need the interpreter's whole environment (a venv's root holds pyvenv.cfg and its
        # site-packages) and this package, even when they live under /tmp, which nodes get privately.
        interpreter_env = Path(settings.engine.python).parent.parent
        needed = [run_dir, settings.home, interpreter_env, *self.pythonpath, Path(__file__).parents[1]]
        self.sandbox = Sandbox(settings, needed, warn=self.log)
        self.namespace = str(workflow["metadata"].get("namespace") or "default")
        self.volumes = RunVolumes(self.spec, self.name, self.namespace, run_dir, settings.home)
        limit = max(1, int(settings.engine.parallelism))
        if self.spec.get("parallelism"):
            limit = min(limit, int(self.spec["parallelism"]))
        self.pod_slots: threading.Semaphore = threading.BoundedSemaphore(limit)
        self.abort = threading.Event()
        self.abort_message = ""
        self.global_outputs: dict[str, Any] = {"parameters": {}, "artifacts": {}}
        self.global_vars: dict[str, Any] = {}
        self.hook_env: Mapping[str, str] = {}
        self.node_flags: dict[str, dict[str, bool]] = {}  # by node name: the nodeFlag it is recorded with
        self.node_links: dict[str, list[str]] = {}  # by node name: the nodes it becomes a child of (``link``)
        self.node_scopes: dict[str, str] = {}  # by node name: the templateScope of the call it records
        self.own_scopes: dict[str, str] = {}  # by node id: the scope of the steps/DAG template it runs
        self.root_scope = TemplateScope(
            "workflow", {t.get("name", ""): t for t in self.spec.get("templates") or []}, self.spec.get("templateDefaults") or {}
        )
        self._t0 = clock.monotonic()
        self.deadline: float | None = None
        self.locks = RunLocks(LockTable(settings.home, clock), _lock_order(workflow))
        self.wf_locks: HeldLocks | None = None
        self.lifecycle = Lifecycle(self, self.spec)  # expression hooks, re-evaluated on every change
        self.estimator = Estimator.for_run(run_dir.parent, workflow)  # the template's previous run, if any
        reap_leftovers(run_dir)  # sidecars/daemons a dead engine of this run left behind (resume)
        # daemons on a port another daemon may hold at once get their own network (checked before the run)
        contested = contested_daemon_ports(self.spec, lambda sc, holder: resolve_ref(sc, holder, store), self.root_scope)
        self.daemons = Daemons(
            self.state.nodes,
            self.changed,
            self.finish,
            self.abort,
            lambda: self.abort_message,
            clock.monotonic,
            PodNetworks(contested, enabled=bool(contested) and unavailable(settings) is None),  # asked only when needed
        )

    # -- the run ---------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        needed = MAX_STACK_DEPTH * PYTHON_FRAMES_PER_LEVEL + 1000
        if sys.getrecursionlimit() < needed:  # process-wide, only ever raised: 3,000 frames fit an 8 MiB stack
            sys.setrecursionlimit(needed)
        try:
            return self._run_workflow()
        finally:
            self.daemons.stop_all()  # also when the run breaks: no process is left behind
            release_workflow_locks(self, self.wf_locks)  # also when the run breaks: another run may be waiting
            self.wf_locks = None

    def _run_workflow(self) -> dict[str, Any]:
        meta = self.wf["metadata"]
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", iso(self.clock.now()))
        self.locks.order = _lock_order(self.wf)  # waiters queue by creation time, known from now on
        try:
            self.global_vars = self._workflow_vars()
        except InvalidWorkflow as err:  # operator.go operate: updateWorkflowMetadata's error errors the workflow
            with self.state.lock:
                self.state.status.update(phase=err.phase, message=str(err), finishedAt=self.state.now())
                self.state.write()
            return self.state.doc
        _phase_labels(meta, "Running")
        if self.spec.get("synchronization"):
            held = hold_workflow_locks(self, self.spec["synchronization"], self.global_vars)
            if isinstance(held, str):
                return self.state.doc
            self.wf_locks = held
        if self.spec.get("activeDeadlineSeconds"):
            self.deadline = self.clock.monotonic() + int_seconds(self.spec["activeDeadlineSeconds"], "spec.activeDeadlineSeconds")
            threading.Thread(target=self._watch_deadline, daemon=True).start()
        estimate = self.estimator.workflow()  # operator.go operate: a workflow that starts gets its estimate
        if estimate:
            self.state.status["estimatedDuration"] = estimate
        claims = self.volumes.create_claims()
        if claims:
            self.state.status["persistentVolumeClaims"] = claims
        # the repository its artifacts go to (artifactrepositories.go Resolve): here always the local one
        try:
            self.state.status["artifactRepositoryRef"] = resolve_repository(
                self.spec.get("artifactRepositoryRef"), self.namespace, self.settings.home
            )
        except EngineError as err:  # its ConfigMap went away since the run was prepared: operator.go errors the run
            with self.state.lock:
                self.state.status.update(phase="Error", message=str(err), finishedAt=self.state.now())
                self.state.write()
            return self.state.doc
        self.state.write()
        self.hook_env = dict(self.run_hooks.workflow_started(self.name, self.state.doc) or {})
        entry = {"template": self.spec["entrypoint"], "arguments": self.spec.get("arguments") or {}}
        wf_hooks = self.lifecycle.for_workflow()
        main = self.run_child(self.name, self.name, entry, self.root_frame(), None)
        self.daemons.stop_all()  # an entrypoint that is itself a daemon ends with the workflow's main part
        phase = main["phase"] if main["phase"] in FAILED else "Succeeded"
        message = main.get("message") if phase != "Succeeded" else None
        if main.get("_pod_refused"):  # operator.go operate: the entry template's pod could not be created
            message = f"error in entry template execution: {message}"
        if self.abort.is_set() and self.abort_message:
            phase, message = "Failed", self.abort_message
        exit_tmpl = self.spec.get("onExit") or ((self.spec.get("hooks") or {}).get("exit") or {}).get("template")
        with self.state.lock:  # lifecycle hooks read them from other threads
            self.global_vars["workflow.status"] = phase
            self.global_vars["workflow.failures"] = json.dumps(self.failures(), separators=(",", ":"))
            self.global_vars["workflow.duration"] = f"{self.clock.monotonic() - self._t0:.6f}"
        if wf_hooks is not None:  # Argo runs the hooks true for the final status, and waits for all, before onExit
            self.lifecycle.finish(wf_hooks)
            self.global_vars["workflow.failures"] = json.dumps(self.failures(), separators=(",", ":"))
        if self.lifecycle.errors and phase not in FAILED:
            phase, message = "Error", self.lifecycle.errors[0]
        if exit_tmpl:
            self.abort.clear()
            self.deadline = None  # the exit handler runs even after the workflow's deadline, as on Argo
            self.flag(f"{self.name}.onExit", hooked=True)  # operator.go: the exit handler runs with NodeFlag{Hooked: true}
            exit_node = self._run_exit_handler(exit_tmpl)
            if exit_node.get("_pod_refused"):  # operator.go marks the workflow Error: "error in exit template execution : …"
                phase, message = "Error", f"error in exit template execution : {exit_node.get('message')}"
            elif exit_node["phase"] in FAILED and phase == "Succeeded":
                phase, message = exit_node["phase"], exit_node.get("message")
        self.daemons.stop_all()
        release_workflow_locks(self, self.wf_locks)
        self.wf_locks = None
        status = self.state.status
        with self.state.lock:
            status["phase"] = phase
            _phase_labels(meta, phase)
            status["finishedAt"] = self.state.now()
            if message:
                status["message"] = message
            outputs = self._global_outputs_doc()
            if outputs:
                status["outputs"] = outputs
            if self.volumes.collect(phase):
                status.pop("persistentVolumeClaims", None)  # as Argo does once it deleted them
        # the tracking run ends before the final phase is written: whoever waits for the phase
        # (platform.wait, the CLI) then finds the MLflow run FINISHED too, never still RUNNING
        self.run_hooks.workflow_finished(self.name, self.state.doc)
        with self.state.lock:
            self.state.write()
        return self.state.doc

    def _run_exit_handler(self, template: Any) -> NodeDoc:
        """The workflow's exit handler as node ``<name>.onExit``; ``hooks.exit.arguments`` resolved now, over the
        global variables with the final ``workflow.status`` (``{{= workflow.status == "Succeeded" ? … }}``
        included: e2e functional_test.go ``TestWorkflowHookParameterTemplates``)."""
        name = f"{self.name}.onExit"
        arguments = ((self.spec.get("hooks") or {}).get("exit") or {}).get("arguments") or {}
        frame = self.root_frame()
        try:
            resolved = resolve_args(arguments, frame, f"{name} exit hook")
        except EngineError as err:  # as a step's exit hook with arguments that cannot be resolved: an Error node
            return self.finish(self.new_node(name, name, "Pod", None, None), "Error", str(err))
        return self.run_child(name, name, {"template": template, "arguments": resolved}, frame, None)

    def stop(self, message: str = "Stopped with strategy 'Stop'") -> None:
        """Stop running nodes (Argo's ``stop``: exit handlers still run)."""
        self.abort_message = message
        self.abort.set()

    def _watch_deadline(self) -> None:
        while not self.abort.is_set() and self.deadline is not None:
            left = self.deadline - self.clock.monotonic()
            if left <= 0:
                self.stop("Max duration limit exceeded")
                return
            self.abort.wait(min(left, 0.5))

    def _workflow_vars(self) -> dict[str, Any]:
        """``workflow.*`` variables (Argo's ``setGlobalParameters``, ``workflow/controller/operator.go``)."""
        meta = self.wf["metadata"]
        out: dict[str, Any] = {
            "workflow.name": meta["name"],
            "workflow.namespace": meta.get("namespace", "default"),
            "workflow.uid": meta["uid"],
            "workflow.creationTimestamp": meta["creationTimestamp"],
            "workflow.mainEntrypoint": self.spec["entrypoint"],
            "workflow.serviceAccountName": self.spec.get("serviceAccountName", "default"),
            "workflow.status": "Running",
            "workflow.priority": str(self.spec.get("priority", 0)),
        }
        created = datetime.strptime(meta["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ")
        for letter in "aAbBcCdDeFgGhHIjkmMnprRsStTuUVwWxXyYzZ":
            try:
                out[f"workflow.creationTimestamp.{letter}"] = created.strftime(f"%{letter}")
            except ValueError:
                continue
        out["workflow.creationTimestamp.s"] = str(int(created.timestamp()))
        out["workflow.creationTimestamp.RFC3339"] = meta["creationTimestamp"]  # WorkflowCreationTimestampRFC3339
        scheduled = (meta.get("annotations") or {}).get(SCHEDULED_TIME)
        if scheduled is not None:  # only with the cron controller's annotation (WorkflowScheduledTime)
            out["workflow.scheduledTime"] = str(scheduled)
        for key, value in (meta.get("labels") or {}).items():
            out[f"workflow.labels.{key}"] = str(value)
        for key, value in (meta.get("annotations") or {}).items():
            out[f"workflow.annotations.{key}"] = str(value)
        # operator.go setGlobalParameters: all labels/annotations as JSON (json.Marshal of the maps; null if none)
        out["workflow.annotations.json"] = go_json(meta.get("annotations"))
        out["workflow.annotations"] = out["workflow.annotations.json"]  # WorkflowAnnotationsAll (deprecated)
        params = []
        for p in (self.spec.get("arguments") or {}).get("parameters") or []:
            try:
                value = param_value(p, f"workflow parameter {p.get('name')!r}", False, self)
            except EngineError as err:
                ref = (p.get("valueFrom") or {}).get("configMapKeyRef")
                if not isinstance(ref, Mapping):
                    raise
                # operator.go setGlobalParameters: the ConfigMap of the workflow's namespace; missing, the workflow errors
                raise InvalidWorkflow(
                    f"failed to set global parameter {p.get('name')} from configmap with name {ref.get('name')} and key "
                    f"{ref.get('key')}: {self.ref_missing(CONFIGMAPS, ref)}",
                    "Error",
                ) from err
            if "enum" in p and value not in [str(e) for e in p["enum"]]:
                raise EngineError(f"workflow parameter {p['name']!r} = {value!r} is not one of {p['enum']}")
            out[f"workflow.parameters.{p['name']}"] = value
            params.append({"name": p["name"], "value": value})
        out["workflow.parameters"] = json.dumps(params, separators=(",", ":"))
        out["workflow.parameters.json"] = out["workflow.parameters"]  # all of them as JSON (Argo's WorkflowParametersJSON)
        # operator.go updateWorkflowMetadata, once the global parameters are set: labels from expressions
        added = labels_from(self.wf, out)
        if added:
            meta["labels"] = {**(meta.get("labels") or {}), **added}
            out.update({f"workflow.labels.{key}": value for key, value in added.items()})
        out["workflow.labels.json"] = go_json(meta.get("labels"))
        out["workflow.labels"] = out["workflow.labels.json"]  # WorkflowLabelsAll (deprecated)
        return out

    def _global_outputs_doc(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.global_outputs["parameters"]:
            out["parameters"] = [{"name": k, "value": v} for k, v in self.global_outputs["parameters"].items()]
        if self.global_outputs["artifacts"]:
            out["artifacts"] = list(self.global_outputs["artifacts"].values())
        return out

    # -- RunContext: what kinds and features ask of the run ----------------------------------------
    def local_ref(self, kind: str, ref: Mapping[str, Any], what: str) -> str | None:
        """A ConfigMap/Secret key of the run's namespace (``core/configstore.py``: the local stand-in for the
        cluster's, where a Pod's refs resolve in its namespace)."""
        return read_key(self.settings.home, kind, self.namespace, str(ref.get("name", "")), str(ref.get("key", "")))

    def ref_missing(self, kind: str, ref: Mapping[str, Any]) -> str:
        """Why ``local_ref`` found nothing, naming the run's namespace, and how to put the key there."""
        return missing(self.settings.home, kind, self.namespace, str(ref.get("name", "")), str(ref.get("key", "")))

    def failures(self) -> list[dict[str, Any]]:
        out = []
        for node in self.state.nodes.values():
            if node.get("type") == "Pod" and node.get("phase") in FAILED:
                out.append(
                    {
                        "displayName": node.get("displayName"),
                        "message": node.get("message", ""),
                        "templateName": node.get("templateName", ""),
                        "phase": node.get("phase"),
                        "podName": node.get("podName", ""),
                        "finishedAt": node.get("finishedAt"),
                    }
                )
        return out

    def global_scope(self) -> dict[str, Any]:
        with self.state.lock:
            out = dict(self.global_vars)
            # operator.go setGlobalRuntimeParameters: the elapsed seconds while it runs (its final value once it ended)
            out.setdefault("workflow.duration", f"{self.clock.monotonic() - self._t0:.6f}")
            out.update({f"workflow.outputs.parameters.{k}": v for k, v in self.global_outputs["parameters"].items()})
        return out

    def global_artifacts(self) -> dict[str, dict[str, Any]]:
        with self.state.lock:
            return {
                f"workflow.outputs.artifacts.{k}": {x: v[x] for x in ("local", "http", "artifactory") if x in v}
                for k, v in self.global_outputs["artifacts"].items()
            }

    def register_globals(self, tmpl: Mapping[str, Any], outputs: Mapping[str, Any]) -> None:
        with self.state.lock:
            for p in outputs.get("parameters") or []:
                if p.get("globalName"):
                    self.global_outputs["parameters"][p["globalName"]] = p["value"]
            for a in outputs.get("artifacts") or []:
                if a.get("globalName"):
                    self.global_outputs["artifacts"][a["globalName"]] = {**a, "name": a["globalName"]}

    def root_frame(self) -> Frame:
        return Frame(self.root_scope, dict(self.global_vars))

    def new_node(
        self, name: str, display: str, ntype: str, parent: str | None, tmpl: Mapping[str, Any] | None, phase: str = "Running"
    ) -> NodeDoc:
        nid = node_id(self.name, name)
        # resumed: a node that holds others (root, groups, Retry) keeps the time it first started, as Argo's
        # node does across controller restarts; a pod that runs again starts now
        before = self.state.previous_nodes.get(nid) if ntype != "Pod" else None
        node: dict[str, Any] = {
            "id": nid,
            "name": name,
            "displayName": display,
            "type": ntype,
            "phase": phase,
            "startedAt": (before or {}).get("startedAt") or self.state.now(),
            "finishedAt": None,
        }
        if tmpl is not None and tmpl.get("name"):
            node["templateName"] = tmpl["name"]
        with self.state.lock:
            # operator.go initializeNode: a called template's node carries the scope it was resolved from, a
            # node a steps/DAG template makes itself (StepGroup, TaskGroup, Skipped) that template's own
            scope = self.node_scopes.get(name) or (self.own_scopes.get(parent) if parent is not None else None)
            links = self.node_links.pop(name, None)
        if scope:
            node["templateScope"] = scope
        estimate = self.estimator.node(name)  # operator.go initializeNode: EstimatedDuration
        if estimate:
            node["estimatedDuration"] = estimate
        if parent is not None:
            node["boundaryID"] = parent
        memo = memoization_status(tmpl)  # operator.go initializeExecutableNode: every node of a memoized template
        if memo is not None:
            node["memoizationStatus"] = memo
        with self.state.lock:
            flags = self.node_flags.get(name)
        if flags:
            node["nodeFlag"] = dict(flags)
        doc = self.state.put(node, write=False)
        for above in [parent] if links is None else links:
            self.state.add_child(above, nid)
        if ntype != "Pod" or phase != "Pending":  # a pod is written when it starts running
            self.changed()
        return doc

    def link(self, name: str, parents: list[str]) -> None:
        with self.state.lock:
            self.node_links[name] = list(parents)

    def flag(self, name: str, **flags: bool) -> dict[str, bool]:
        with self.state.lock:
            mine = self.node_flags.setdefault(name, {})
            mine.update(flags)
            return dict(mine)

    def finish(self, node: NodeDoc, phase: str, message: str | None = None) -> NodeDoc:
        with self.state.lock:
            node["phase"] = phase
            node["finishedAt"] = self.state.now()
            if message:
                node["message"] = message
            self.state.write()
        self.changed(write=False)
        return node

    def changed(self, write: bool = True) -> None:
        if write:
            self.state.write()
        self.lifecycle.poke()
        if self.on_change is not None:
            self.on_change(self.state)

    def reuse(self, nid: str, parent: str | None, tmpl: Mapping[str, Any]) -> NodeDoc | None:
        reused = self.state.reusable(nid)
        if reused is None:
            return None
        self.state.put(copy.deepcopy(reused))
        with self.state.lock:
            links = self.node_links.pop(str(reused.get("name", "")), None)
        for above in [parent] if links is None else links:
            self.state.add_child(above, nid)
        self.register_globals(tmpl, reused.get("outputs") or {})
        return self.state.nodes[nid]

    def sleep(self, seconds: float) -> None:
        end = self.clock.monotonic() + seconds
        while not self.abort.is_set():
            left = end - self.clock.monotonic()
            if left <= 0:
                return
            self.clock.sleep(min(left, 0.1))

    def run_child(self, name: str, display: str, holder: Mapping[str, Any], frame: Frame, parent: str | None) -> NodeDoc:
        try:
            return self._call(name, display, holder, frame, parent)
        except NotSupportedLocally:
            raise
        except EngineError as err:  # Argo's behaviour for bad references: the node errors, the run goes on
            nid = node_id(self.name, name)
            node = self.state.nodes.get(nid) or self.new_node(name, display, "Pod", parent, None)
            return self.finish(node, "Error", str(err))

    # -- dispatch --------------------------------------------------------------------------------
    def _call(self, name: str, display: str, holder: Mapping[str, Any], frame: Frame, parent: str | None) -> NodeDoc:
        """Run the template ``holder`` names (with its arguments) as node ``name``, through the wrappers."""
        where = f"node {display!r}"
        caller_scope = frame.scope.argo_scope(self.name)  # operator.go executeTemplate: tmplCtx.GetTemplateScope()
        with self.state.lock:
            self.node_scopes[name] = caller_scope
        if self.stack_depth(parent) >= MAX_STACK_DEPTH:
            raise EngineError(MAX_DEPTH_MESSAGE)
        tmpl, scope = resolve_template(holder, frame.scope, self.store, where)
        inputs = resolve_inputs(tmpl, holder.get("arguments") or {}, frame, where, self.global_scope, self)
        with self.state.lock:
            parent_node: Mapping[str, Any] = (self.state.nodes.get(parent) if parent is not None else None) or {}
            parent_type = parent_node.get("type")
        caller = ("tasks.name" if parent_type in ("DAG", "TaskGroup") else "steps.name", display if holder.get("name") else "")
        call = Call(name, display, tmpl, scope, inputs, parent, caller_scope=caller_scope, caller=caller)

        def through(i: int) -> Callable[[Call], NodeDoc]:
            if i == len(CHAIN):
                return self._run_once
            return lambda c: CHAIN[i](self, c, through(i + 1))

        return through(0)(call)

    def stack_depth(self, parent: str | None) -> int:
        """Argo's ``currentStackDepth`` for a template called under ``parent``: the template itself and every
        steps/DAG template around it (step groups, task groups and retry nodes are no template call of their own)."""
        depth = 1
        with self.state.lock:
            while parent is not None:
                node = self.state.nodes.get(parent)
                if node is None:
                    break
                depth += node.get("type") in ("Steps", "DAG")
                parent = node.get("boundaryID")
        return depth

    def _run_once(self, call: Call) -> NodeDoc:
        """One attempt: the template substituted with its variables, its deadline set, run by its kind."""
        tmpl, where = call.template, call.where
        vars_ = template_vars(self.global_scope(), tmpl, call.inputs, self.name, call.name, call.retries)
        vars_[call.caller[0]] = call.caller[1]
        vars_.update(call.locals or {})
        # inner steps/tasks keep their own tags (tasks.*, item) for later; pod bodies are checked by kinds/pod.py
        tmpl = substitute(tmpl, vars_, strict=False, where=where, skip=frozenset({"retryStrategy"}))
        kind = self.kinds.kind_of(tmpl)
        if kind is None:
            raise NotSupportedLocally("this kind of template", where)
        with self.state.lock:  # an attempt is resolved from where its Retry node was; what it makes is in its own scope
            self.node_scopes.setdefault(call.name, call.caller_scope)
            self.own_scopes[node_id(self.name, call.name)] = call.scope.argo_scope(self.name)
        return kind.run(
            self,
            replace(call, template=tmpl, vars=vars_, deadline=self._deadline(tmpl, where)),
        )

    def _deadline(self, tmpl: Mapping[str, Any], where: str) -> float | None:
        limits: list[float] = []
        if tmpl.get("activeDeadlineSeconds") is not None:
            limits.append(int_seconds(tmpl["activeDeadlineSeconds"], f"{where} activeDeadlineSeconds"))
        if tmpl.get("timeout"):
            limits.append(timeout_seconds(tmpl["timeout"], f"{where} timeout"))
        dl = self.clock.monotonic() + min(limits) if limits else None
        if self.deadline is not None:
            dl = self.deadline if dl is None else min(dl, self.deadline)
        return dl


def _phase_labels(meta: dict[str, Any], phase: str) -> None:
    """The labels Argo's controller keeps on a Workflow (``operator.go`` ``markWorkflowPhase``):
    ``workflows.argoproj.io/phase`` and ``workflows.argoproj.io/completed`` (``"true"`` once it ended)."""
    labels = dict(meta.get("labels") or {})
    labels["workflows.argoproj.io/phase"] = phase
    labels["workflows.argoproj.io/completed"] = "true" if phase in ("Succeeded", "Failed", "Error") else "false"
    meta["labels"] = labels


def _lock_order(workflow: Mapping[str, Any]) -> tuple[int, str]:
    """Argo's waiting order for locks: the workflow's priority, then its creation time."""
    try:
        priority = int(workflow["spec"].get("priority") or 0)
    except (TypeError, ValueError):
        priority = 0
    return priority, str(workflow["metadata"].get("creationTimestamp", ""))
