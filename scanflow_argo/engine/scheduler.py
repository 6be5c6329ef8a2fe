"""Runs a resolved Workflow with Argo's semantics: steps, DAGs, loops, conditions, retries, exit handlers.

One ``Executor`` per run. Templates are executed recursively; the children of a steps group or a
DAG run in threads, and pod nodes take a slot of the run's parallelism. Every node is recorded in
``RunState`` (status.json) before and after it runs; on resume, pod nodes that already finished are
taken from the previous status instead of running again.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..argoexpr.golang import go_atoi, sprintf
from ..clock import Clock, iso
from ..errors import EngineError, NotSupportedLocally
from ..settings import Settings
from .artifacts import ArtifactRepo, safe_join
from .core.durations import argo_seconds, int_seconds, timeout_seconds
from .daemons import DAEMON_IP, Daemons, Probe, Sidecars, reap_leftovers
from .hooks import RunHooks
from .lifecycle import HookSet, Lifecycle
from .model import TemplateScope, TemplateStore, image_runtime
from .runtime import NodeFS, Sandbox, build_argv, node_env, run_process
from .state import RunState, node_id
from .subst import Unresolved, substitute, substitute_str
from .sync import (
    HeldLocks,
    LockSpec,
    LockTable,
    forget_waiting,
    parse_synchronization,
    record_acquired,
    record_released,
    record_waiting,
)
from .volumes import RunVolumes, init_containers, run_init_containers

__all__ = ["Executor"]

FAILED = ("Failed", "Error")
DONE = ("Succeeded", "Failed", "Error", "Skipped", "Omitted")
ANY_TAG = re.compile(r"\{\{.*?\}\}", re.DOTALL)


def _fmt_item(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), sort_keys=isinstance(value, dict))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _item_label(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}:{_fmt_item(v)}" for k, v in sorted(value.items()))
    return _fmt_item(value)


def _json_or_str(value: str) -> Any:
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


@dataclass
class Frame:
    """What a template invocation sees: its template scope and variables."""

    scope: TemplateScope
    vars: dict[str, Any]
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Artifact references by variable name (``tasks.A.outputs.artifacts.x``) → artifact record."""


class Executor:
    """Executes one run of a resolved Workflow."""

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
    ) -> None:
        self.run_dir = run_dir
        self.wf = workflow
        self.spec: dict[str, Any] = workflow["spec"]
        self.settings = settings
        self.hooks = hooks
        self.clock = clock
        self.store = store
        self.log = log or (lambda msg: None)
        self.on_change = on_change
        self.state = RunState(run_dir, workflow, clock, previous)
        self.name = self.state.name
        self.repo = ArtifactRepo(settings.home / "artifacts")
        self.pythonpath = pythonpath or []
        self.home_env = str(settings.home.resolve())
        # the home is this machine's "cluster": steps that roll deployments read and write its state
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
        self.pod_slots = threading.BoundedSemaphore(limit)
        self.abort = threading.Event()
        self.abort_message = ""
        self.global_outputs: dict[str, Any] = {"parameters": {}, "artifacts": {}}
        self.global_vars: dict[str, Any] = {}
        self.hook_env: dict[str, str] = {}
        self.lifecycle = Lifecycle(self)  # expression hooks, re-evaluated on every change
        self.root_scope = TemplateScope(
            "workflow", {t.get("name", ""): t for t in self.spec.get("templates") or []}, self.spec.get("templateDefaults") or {}
        )
        self._t0 = clock.monotonic()
        self.deadline: float | None = None
        self.locks = LockTable(settings.home, clock)
        self.wf_locks: HeldLocks | None = None
        self._lock_waiters: dict[str, set[str]] = {}  # lock name → holders of this run waiting for it
        reap_leftovers(run_dir)  # sidecars/daemons a dead engine of this run left behind (resume)
        self.daemons = Daemons(
            self.state.nodes, self._write_changed, self._finish, self.abort, lambda: self.abort_message, clock.monotonic
        )

    # -- the run ---------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        try:
            return self._run_workflow()
        finally:
            self.daemons.stop_all()  # also when the run breaks: no process is left behind
            self._release_workflow_locks()  # also when the run breaks: another run may be waiting

    def _run_workflow(self) -> dict[str, Any]:
        meta = self.wf["metadata"]
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", iso(self.clock.now()))
        self.global_vars = self._workflow_vars()
        if self.spec.get("synchronization") and not self._hold_workflow_locks():
            return self.state.doc
        if self.spec.get("activeDeadlineSeconds"):
            self.deadline = self.clock.monotonic() + int_seconds(self.spec["activeDeadlineSeconds"], "spec.activeDeadlineSeconds")
            threading.Thread(target=self._watch_deadline, daemon=True).start()
        claims = self.volumes.create_claims()
        if claims:
            self.state.status["persistentVolumeClaims"] = claims
        self.state.write()
        self.hook_env = dict(self.hooks.workflow_started(self.name, self.state.doc) or {})
        entry = {"template": self.spec["entrypoint"], "arguments": self.spec.get("arguments") or {}}
        wf_hooks = self.lifecycle.for_workflow()
        main = self._safe_run(self.name, self.name, entry, Frame(self.root_scope, dict(self.global_vars)), None, top=True)
        self.daemons.stop_all()  # an entrypoint that is itself a daemon ends with the workflow's main part
        phase = main["phase"] if main["phase"] in FAILED else "Succeeded"
        message = main.get("message") if phase != "Succeeded" else None
        if self.abort.is_set() and self.abort_message:
            phase, message = "Failed", self.abort_message
        exit_tmpl = self.spec.get("onExit") or ((self.spec.get("hooks") or {}).get("exit") or {}).get("template")
        with self.state.lock:  # lifecycle hooks read them from other threads
            self.global_vars["workflow.status"] = phase
            self.global_vars["workflow.failures"] = json.dumps(self._failures(), separators=(",", ":"))
            self.global_vars["workflow.duration"] = f"{self.clock.monotonic() - self._t0:.6f}"
        if wf_hooks is not None:  # Argo runs the hooks true for the final status, and waits for all, before onExit
            self.lifecycle.finish(wf_hooks)
            self.global_vars["workflow.failures"] = json.dumps(self._failures(), separators=(",", ":"))
        if self.lifecycle.errors and phase not in FAILED:
            phase, message = "Error", self.lifecycle.errors[0]
        if exit_tmpl:
            self.abort.clear()
            self.deadline = None  # the exit handler runs even after the workflow's deadline, as on Argo
            holder = {
                "template": exit_tmpl,
                "arguments": ((self.spec.get("hooks") or {}).get("exit") or {}).get("arguments") or {},
            }
            exit_node = self._safe_run(
                f"{self.name}.onExit", f"{self.name}.onExit", holder, Frame(self.root_scope, dict(self.global_vars)), None
            )
            if exit_node["phase"] in FAILED and phase == "Succeeded":
                phase, message = exit_node["phase"], exit_node.get("message")
        self.daemons.stop_all()
        self._release_workflow_locks()
        status = self.state.status
        with self.state.lock:
            status["phase"] = phase
            status["finishedAt"] = self.state.now()
            if message:
                status["message"] = message
            outputs = self._global_outputs_doc()
            if outputs:
                status["outputs"] = outputs
            if self.volumes.collect(phase):
                status.pop("persistentVolumeClaims", None)  # as Argo does once it deleted them
            self.state.write()
        self.hooks.workflow_finished(self.name, self.state.doc)
        return self.state.doc

    def stop(self, message: str = "Stopped with strategy 'Stop'") -> None:
        """Stop running nodes (Argo's ``stop``: exit handlers still run)."""
        self.abort_message = message
        self.abort.set()

    def _watch_deadline(self) -> None:
        assert self.deadline is not None
        while not self.abort.is_set():
            left = self.deadline - self.clock.monotonic()
            if left <= 0:
                self.stop("Max duration limit exceeded")
                return
            self.abort.wait(min(left, 0.5))

    def _workflow_vars(self) -> dict[str, Any]:
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
        from datetime import datetime

        created = datetime.strptime(meta["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ")
        for letter in "aAbBcCdDeFgGhHIjkmMnprRsStTuUVwWxXyYzZ":
            try:
                out[f"workflow.creationTimestamp.{letter}"] = created.strftime(f"%{letter}")
            except ValueError:
                continue
        out["workflow.creationTimestamp.s"] = str(int(created.timestamp()))
        for key, value in (meta.get("labels") or {}).items():
            out[f"workflow.labels.{key}"] = str(value)
        for key, value in (meta.get("annotations") or {}).items():
            out[f"workflow.annotations.{key}"] = str(value)
        params = []
        for p in (self.spec.get("arguments") or {}).get("parameters") or []:
            value = self._param_value(p, f"workflow parameter {p.get('name')!r}", allow_missing=False)
            if "enum" in p and value not in [str(e) for e in p["enum"]]:
                raise EngineError(f"workflow parameter {p['name']!r} = {value!r} is not one of {p['enum']}")
            out[f"workflow.parameters.{p['name']}"] = value
            params.append({"name": p["name"], "value": value})
        out["workflow.parameters"] = json.dumps(params, separators=(",", ":"))
        return out

    def _param_value(self, p: Mapping[str, Any], what: str, allow_missing: bool) -> str | None:
        if "value" in p:
            return _fmt_item(p["value"])
        vf = p.get("valueFrom") or {}
        if "configMapKeyRef" in vf:
            found = self._local_ref("configmaps", vf["configMapKeyRef"], what)
            if found is not None:
                return found
            if vf["configMapKeyRef"].get("optional") and "default" not in p and "default" not in vf:
                return ""
        if "default" in p:
            return _fmt_item(p["default"])
        if "default" in vf:
            return _fmt_item(vf["default"])
        if allow_missing:
            return None
        raise EngineError(f"{what} has no value: pass it with -p {p.get('name')}=VALUE")

    def _local_ref(self, kind: str, ref: Mapping[str, Any], what: str) -> str | None:
        """A ConfigMap/Secret key from ``<home>/<kind>/<name>/<key>`` (the local stand-in for the cluster's)."""
        name, key = str(ref.get("name", "")), str(ref.get("key", ""))
        path = safe_join(self.settings.home / kind, f"{name}/{key}", what)
        if path.is_file():
            return path.read_text()
        return None

    def _failures(self) -> list[dict[str, Any]]:
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

    def _global_outputs_doc(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.global_outputs["parameters"]:
            out["parameters"] = [{"name": k, "value": v} for k, v in self.global_outputs["parameters"].items()]
        if self.global_outputs["artifacts"]:
            out["artifacts"] = list(self.global_outputs["artifacts"].values())
        return out

    # -- nodes -----------------------------------------------------------------------------------
    def _new_node(
        self, name: str, display: str, ntype: str, parent: str | None, tmpl: Mapping[str, Any] | None, phase: str = "Running"
    ) -> dict[str, Any]:
        nid = node_id(self.name, name)
        node: dict[str, Any] = {
            "id": nid,
            "name": name,
            "displayName": display,
            "type": ntype,
            "phase": phase,
            "startedAt": self.state.now(),
            "finishedAt": None,
        }
        if tmpl is not None and tmpl.get("name"):
            node["templateName"] = tmpl["name"]
        if parent is not None:
            node["boundaryID"] = parent
        node = self.state.put(node, write=False)
        self.state.add_child(parent, nid)
        if ntype != "Pod" or phase != "Pending":  # a pod is written when it starts running
            self.state.write()
            self._changed()
        return node

    def _finish(self, node: dict[str, Any], phase: str, message: str | None = None) -> dict[str, Any]:
        with self.state.lock:
            node["phase"] = phase
            node["finishedAt"] = self.state.now()
            if message:
                node["message"] = message
            self.state.write()
        self._changed()
        return node

    def _changed(self) -> None:
        lifecycle = getattr(self, "lifecycle", None)  # None while __init__ runs
        if lifecycle is not None:
            lifecycle.poke()
        if self.on_change is not None:
            self.on_change(self.state)

    def _write_changed(self) -> None:
        self.state.write()
        self._changed()

    def _safe_run(
        self, name: str, display: str, holder: Mapping[str, Any], frame: Frame, parent: str | None, top: bool = False
    ) -> dict[str, Any]:
        """``_run`` with engine errors turned into an Error node (Argo's behaviour for bad references)."""
        try:
            return self._run(name, display, holder, frame, parent)
        except NotSupportedLocally:
            raise
        except EngineError as err:
            nid = node_id(self.name, name)
            node = self.state.nodes.get(nid) or self._new_node(name, display, "Pod", parent, None)
            return self._finish(node, "Error", str(err))

    def _resolve_template(self, holder: Mapping[str, Any], frame: Frame, where: str) -> tuple[dict[str, Any], TemplateScope]:
        if "templateRef" in holder:
            ref = holder["templateRef"]
            scope = self.store.scope(str(ref.get("name", "")), bool(ref.get("clusterScope")))
            tmpl = scope.get(str(ref.get("template", "")), where)
        elif "inline" in holder:
            scope = frame.scope
            tmpl = {"name": f"{holder.get('name', 'inline')}", **holder["inline"]}
        else:
            scope = frame.scope
            tmpl = scope.get(str(holder.get("template", "")), where)
        if scope.defaults:
            tmpl = {**copy.deepcopy(scope.defaults), **tmpl}
        return copy.deepcopy(tmpl), scope

    def _run(self, name: str, display: str, holder: Mapping[str, Any], frame: Frame, parent: str | None) -> dict[str, Any]:
        """Run the template ``holder`` names (with its arguments) as node ``name``."""
        where = f"node {display!r}"
        tmpl, scope = self._resolve_template(holder, frame, where)
        inputs = self._inputs(tmpl, holder.get("arguments") or {}, frame, where)
        if tmpl.get("synchronization"):
            return self._run_synchronized(name, display, tmpl, scope, inputs, parent)
        if tmpl.get("retryStrategy"):
            return self._run_retry(name, display, tmpl, scope, inputs, parent)
        return self._run_once(name, display, tmpl, scope, inputs, parent, retries=0)

    def _inputs(self, tmpl: Mapping[str, Any], args: Mapping[str, Any], frame: Frame, where: str) -> dict[str, Any]:
        given = {p["name"]: p for p in args.get("parameters") or [] if "name" in p}
        params = []
        for p in (tmpl.get("inputs") or {}).get("parameters") or []:
            value: str | None = None
            if p["name"] in given and not given[p["name"]].get("_absent"):
                value = self._param_value(given[p["name"]], f"{where} argument {p['name']!r}", allow_missing=True)
            if value is None:
                value = self._param_value(p, f"{where} input {p['name']!r}", allow_missing=True)
                if value is not None and "{{" in value:
                    with self.state.lock:
                        scope = {**self.global_vars, **self._global_output_vars()}
                    value = substitute_str(value, scope, where=f"{where} input {p['name']!r}")
            if value is None:
                raise EngineError(f"{where}: inputs.parameters.{p['name']} was not supplied (give it an argument or a default)")
            if "enum" in p and value not in [_fmt_item(e) for e in p["enum"]]:
                raise EngineError(f"{where}: inputs.parameters.{p['name']} = {value!r} is not one of {p['enum']}")
            params.append({"name": p["name"], "value": value})
        given_arts = {a["name"]: a for a in args.get("artifacts") or [] if "name" in a}
        arts = []
        for a in (tmpl.get("inputs") or {}).get("artifacts") or []:
            source = given_arts.get(a["name"], {})
            own = {k: v for k, v in a.items() if k not in ("from", "fromExpression")}
            if "{{" in json.dumps(own):
                with self.state.lock:
                    scope = {**self.global_vars, **self._global_output_vars()}
                scope.update({f"inputs.parameters.{p['name']}": p["value"] for p in params})
                own = substitute(own, scope, where=f"{where} input artifact {a['name']!r}")
            merged = {**a, **own, **{k: v for k, v in source.items() if k != "path"}}
            record = self._artifact_source(merged, frame, f"{where} input artifact {a['name']!r}")
            if record is not None and merged.get("subPath"):
                record = {**record, "subPath": str(merged["subPath"])}
            if record is None and not a.get("optional"):
                raise EngineError(
                    f"{where}: input artifact {a['name']!r} was not supplied (pass it with from/raw, or mark it optional)"
                )
            arts.append({"name": a["name"], "path": a.get("path"), "mode": a.get("mode"), "source": record})
        return {"parameters": params, "artifacts": arts}

    def _artifact_source(self, art: Mapping[str, Any], frame: Frame, what: str) -> dict[str, Any] | None:
        """Where an input artifact comes from: a stored artifact, raw data, or nothing (optional)."""
        if "from" in art:
            ref = str(art["from"]).strip()
            m = re.fullmatch(r"\{\{\s*(.*?)\s*\}\}", ref)
            key = m.group(1) if m else ref
            found = frame.artifacts.get(key)
            if found is None:
                if art.get("optional"):
                    return None
                raise EngineError(f"{what}: {ref} does not name an artifact available here")
            return found
        if "fromExpression" in art:
            from ..argoexpr.expr import eval_expr

            env_vars = {**frame.vars, **frame.artifacts}
            from .subst import expand_scope

            value = eval_expr(str(art["fromExpression"]), expand_scope(env_vars))
            return value if isinstance(value, dict) and "local" in value else None
        if "raw" in art:
            return {"raw": str((art["raw"] or {}).get("data", ""))}
        if "s3" in art and set(art["s3"] or {}) <= {"key"}:
            return {"local": {"key": str(art["s3"]["key"])}}
        if "local" in art:
            return {"local": art["local"]}
        return None

    # -- synchronization (mutexes and semaphores, engine/sync.py) ----------------------------------
    def _lock_order(self) -> tuple[int, str]:
        """Argo's waiting order: the workflow's priority, then its creation time."""
        try:
            priority = int(self.spec.get("priority") or 0)
        except (TypeError, ValueError):
            priority = 0
        return priority, str(self.wf["metadata"].get("creationTimestamp", ""))

    def _hold_workflow_locks(self) -> bool:
        """Workflow-level locks: Pending with Argo's message until all are held; False when the run ended instead."""
        status, holder, where = self.state.status, f"{self.namespace}/{self.name}", "spec.synchronization"
        fresh = self.state.previous_phase in (None, "Pending")  # a resumed run keeps its start time

        def waiting(spec: LockSpec, message: str, holders: list[str]) -> None:
            with self.state.lock:
                status["phase"], status["message"] = "Pending", message
                if fresh:
                    status["startedAt"] = None
                record_waiting(status, spec, holders)
                self.state.write()
            self._changed()

        try:
            sync = substitute(self.spec["synchronization"], self.global_vars, strict=False, where=where)
            held = self.locks.acquire(
                parse_synchronization(sync, self.namespace, where), holder, self._lock_order(), self.abort, where, waiting
            )
        except EngineError as err:
            held, self.abort_message = None, f"Failed to acquire the synchronization lock. {err}"
        with self.state.lock:
            status.pop("synchronization", None)
            if held is None:
                status["phase"], status["message"] = "Failed", self.abort_message or "Stopped"
                status["finishedAt"] = self.state.now()
            else:
                self.wf_locks = held
                status["phase"] = "Running"
                status.pop("message", None)
                if fresh:
                    status["startedAt"] = self.state.now()
                for spec in held.specs:
                    record_acquired(status, spec, holder, still_waiting=False)
            self.state.write()
        self._changed()
        return held is not None

    def _release_workflow_locks(self) -> None:
        held, self.wf_locks = self.wf_locks, None
        if held is None:
            return
        held.release()
        with self.state.lock:
            for spec in held.specs:
                record_released(self.state.status, spec, held.holder)

    def _run_synchronized(
        self, name: str, display: str, tmpl: dict[str, Any], scope: TemplateScope, inputs: dict[str, Any], parent: str | None
    ) -> dict[str, Any]:
        """Template-level locks: the node waits Pending (Argo's message) for them, holds them while it
        runs (every retry included, as Argo's Retry node does) and releases them when it completes."""

        def go() -> dict[str, Any]:
            if tmpl.get("retryStrategy"):
                return self._run_retry(name, display, tmpl, scope, inputs, parent)
            return self._run_once(name, display, tmpl, scope, inputs, parent, retries=0)

        nid = node_id(self.name, name)
        if self.state.reusable(nid) is not None:
            return go()  # resume: a pod that already finished takes no lock
        where = f"template {tmpl.get('name')!r}"
        sync = substitute(tmpl["synchronization"], self._template_vars(tmpl, inputs, name, 0), strict=False, where=where)
        specs = parse_synchronization(sync, self.namespace, where)
        holder = f"{self.namespace}/{self.name}/{nid}"
        kind = next((k for k in ("steps", "dag", "suspend", "http") if k in tmpl), "pod")
        ntypes = {"steps": "Steps", "dag": "DAG", "suspend": "Suspend", "http": "HTTP"}
        ntype = "Retry" if tmpl.get("retryStrategy") else ntypes.get(kind, "Pod")
        placeholder: list[dict[str, Any]] = []

        def waiting(spec: LockSpec, message: str, holders: list[str]) -> None:
            if not placeholder:
                placeholder.append(self._new_node(name, display, ntype, parent, tmpl, phase="Pending"))
            with self.state.lock:
                placeholder[0]["message"] = message
                placeholder[0]["synchronizationStatus"] = {"waiting": spec.lock_name}
                for other in specs:
                    self._lock_waiters.get(other.lock_name, set()).discard(holder)
                self._lock_waiters.setdefault(spec.lock_name, set()).add(holder)
                record_waiting(self.state.status, spec, holders)
                self.state.write()
            self._changed()

        held = self.locks.acquire(specs, holder, self._lock_order(), self.abort, where, waiting)
        with self.state.lock:
            for spec in specs:
                waiters = self._lock_waiters.get(spec.lock_name, set())
                waiters.discard(holder)
                if not waiters:
                    forget_waiting(self.state.status, spec)
                if held is not None:
                    record_acquired(self.state.status, spec, holder, still_waiting=bool(waiters))
            if held is not None and placeholder:
                placeholder[0].pop("message", None)  # no longer waiting (Argo clears both)
                placeholder[0].pop("synchronizationStatus", None)
            self.state.write()
        if held is None:
            node = placeholder[0] if placeholder else self._new_node(name, display, ntype, parent, tmpl, phase="Pending")
            return self._finish(node, "Failed", self.abort_message or "Stopped")
        try:
            return go()
        finally:
            held.release()
            with self.state.lock:
                for spec in specs:
                    record_released(self.state.status, spec, holder)
                self.state.write()

    # -- retries ---------------------------------------------------------------------------------
    def _run_retry(
        self, name: str, display: str, tmpl: dict[str, Any], scope: TemplateScope, inputs: dict[str, Any], parent: str | None
    ) -> dict[str, Any]:
        rs = tmpl["retryStrategy"]
        vars_ = self._template_vars(tmpl, inputs, name, 0)
        rs = substitute(rs, vars_, strict=False, where=f"retryStrategy of {display!r}")
        limit = int(rs["limit"]) if rs.get("limit") is not None else 1_000_000
        policy = str(rs.get("retryPolicy") or "OnFailure")
        backoff = rs.get("backoff") or {}
        node = self._new_node(name, display, "Retry", parent, tmpl)
        node["inputs"] = self._inputs_doc(inputs)
        start = self.clock.monotonic()
        attempt: dict[str, Any] = {}
        for i in range(limit + 1):
            attempt = self._run_once(f"{name}({i})", f"{display}({i})", tmpl, scope, inputs, node["id"], retries=i)
            if attempt["phase"] == "Succeeded" or attempt.get("daemoned") or self.abort.is_set():
                break
            if i >= limit or not self._should_retry(policy, rs, attempt):
                break
            if backoff:
                delay = (
                    argo_seconds(backoff.get("duration", "0"), f"{display!r} retryStrategy.backoff.duration")
                    * float(backoff.get("factor", 1) or 1) ** i
                )
                if backoff.get("cap"):
                    delay = min(delay, argo_seconds(backoff["cap"], f"{display!r} retryStrategy.backoff.cap"))
                if backoff.get("maxDuration"):
                    max_d = argo_seconds(backoff["maxDuration"], f"{display!r} retryStrategy.backoff.maxDuration")
                    if self.clock.monotonic() - start + delay > max_d:
                        attempt = {**attempt, "message": "Backoff would exceed max duration limit"}
                        break
                self._sleep(delay)
        if attempt.get("daemoned") and self.daemons.attach(str(attempt["id"]), node):
            self._write_changed()
            return node  # Running and daemoned with its pod; both end with it
        if attempt.get("outputs"):
            node["outputs"] = attempt["outputs"]
        return self._finish(node, attempt.get("phase", "Error"), attempt.get("message"))

    def _should_retry(self, policy: str, rs: Mapping[str, Any], attempt: Mapping[str, Any]) -> bool:
        phase = attempt.get("phase")
        ok = {
            "Always": phase in FAILED,
            "OnFailure": phase == "Failed",
            "OnError": phase == "Error",
            "OnTransientError": False,
        }.get(policy, phase in FAILED)
        if not ok:
            return False
        if rs.get("expression"):
            from ..argoexpr.expr import eval_expr_bool

            started, finished = attempt.get("_t0", 0.0), attempt.get("_t1", 0.0)
            last = {
                "exitCode": str((attempt.get("outputs") or {}).get("exitCode", "-1")),
                "status": phase,
                "duration": str(int(max(0.0, finished - started))),
                "message": attempt.get("message", ""),
            }
            return eval_expr_bool(str(rs["expression"]), {"lastRetry": last}, clock=self.clock)
        return True

    def _sleep(self, seconds: float) -> None:
        """Sleep through the clock in short slices, waking early when the run is stopped."""
        end = self.clock.monotonic() + seconds
        while not self.abort.is_set():
            left = end - self.clock.monotonic()
            if left <= 0:
                return
            self.clock.sleep(min(left, 0.1))

    # -- one attempt -----------------------------------------------------------------------------
    def _template_vars(self, tmpl: Mapping[str, Any], inputs: Mapping[str, Any], name: str, retries: int) -> dict[str, Any]:
        vars_ = dict(self.global_vars)
        vars_.update(self._global_output_vars())
        for p in inputs["parameters"]:
            vars_[f"inputs.parameters.{p['name']}"] = p["value"]
        vars_["inputs.parameters"] = json.dumps(inputs["parameters"], separators=(",", ":"))
        for a in inputs["artifacts"]:
            if a.get("path"):
                vars_[f"inputs.artifacts.{a['name']}.path"] = a["path"]
        for p in (tmpl.get("outputs") or {}).get("parameters") or []:
            path = (p.get("valueFrom") or {}).get("path")
            if path:
                vars_[f"outputs.parameters.{p['name']}.path"] = path
        for a in (tmpl.get("outputs") or {}).get("artifacts") or []:
            if a.get("path"):
                vars_[f"outputs.artifacts.{a['name']}.path"] = a["path"]
        vars_["retries"] = str(retries)
        vars_["node.name"] = name
        vars_["pod.name"] = f"{self.name}-{tmpl.get('name', 'pod')}-{node_id(self.name, name).rsplit('-', 1)[-1]}"
        return vars_

    def _inputs_doc(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        if inputs["parameters"]:
            doc["parameters"] = [dict(p) for p in inputs["parameters"]]
        if inputs["artifacts"]:
            doc["artifacts"] = [{"name": a["name"], "path": a.get("path")} for a in inputs["artifacts"]]
        return doc

    def _run_once(
        self,
        name: str,
        display: str,
        tmpl: dict[str, Any],
        scope: TemplateScope,
        inputs: dict[str, Any],
        parent: str | None,
        retries: int,
    ) -> dict[str, Any]:
        vars_ = self._template_vars(tmpl, inputs, name, retries)
        where = f"template {tmpl.get('name')!r}"
        # inner steps/tasks keep their own tags (tasks.*, item) for later; pod bodies are checked in _run_pod
        tmpl = substitute(tmpl, vars_, strict=False, where=where, skip=frozenset({"retryStrategy"}))
        deadline = self._node_deadline(tmpl, where)
        frame = Frame(scope, vars_)
        if "steps" in tmpl:
            return self._run_steps(name, display, tmpl, frame, inputs, parent, deadline)
        if "dag" in tmpl:
            return self._run_dag(name, display, tmpl, frame, inputs, parent, deadline)
        if "container" in tmpl or "script" in tmpl:
            return self._run_pod(name, display, tmpl, vars_, inputs, parent, deadline)
        if "containerSet" in tmpl:
            from .containerset import run_container_set

            return run_container_set(self, name, display, tmpl, vars_, inputs, parent, deadline)
        if "suspend" in tmpl:
            return self._run_suspend(name, display, tmpl, vars_, inputs, parent)
        if "resource" in tmpl:
            return self._run_resource(name, display, tmpl, inputs, parent)
        if "http" in tmpl:
            from .http import run_http

            return run_http(self, name, display, tmpl, inputs, parent, deadline)
        raise NotSupportedLocally("this kind of template", where)

    def _node_deadline(self, tmpl: Mapping[str, Any], where: str) -> float | None:
        limits = []
        if tmpl.get("activeDeadlineSeconds") is not None:
            limits.append(int_seconds(tmpl["activeDeadlineSeconds"], f"{where} activeDeadlineSeconds"))
        if tmpl.get("timeout"):
            limits.append(timeout_seconds(tmpl["timeout"], f"{where} timeout"))
        dl = self.clock.monotonic() + min(limits) if limits else None
        if self.deadline is not None:
            dl = self.deadline if dl is None else min(dl, self.deadline)
        return dl

    # -- pods ------------------------------------------------------------------------------------
    def _reuse_node(self, nid: str, parent: str | None, tmpl: Mapping[str, Any]) -> dict[str, Any] | None:
        """Resume: the node as the previous attempt finished it (None when it must run again)."""
        reused = self.state.reusable(nid)
        if reused is None:
            return None
        self.state.put(copy.deepcopy(reused))
        self.state.add_child(parent, nid)
        self._register_globals(tmpl, reused.get("outputs") or {})
        return self.state.nodes[nid]

    def _run_pod(
        self,
        name: str,
        display: str,
        tmpl: dict[str, Any],
        vars_: dict[str, Any],
        inputs: dict[str, Any],
        parent: str | None,
        deadline: float | None,
    ) -> dict[str, Any]:
        nid = node_id(self.name, name)
        reused = self._reuse_node(nid, parent, tmpl)
        if reused is not None:
            return reused
        where = f"template {tmpl.get('name')!r}"
        node = self._new_node(name, display, "Pod", parent, tmpl, phase="Pending")
        node["inputs"] = self._inputs_doc(inputs)
        node["podName"] = vars_["pod.name"]
        node_dir = self.run_dir / "nodes" / nid
        if node_dir.exists():
            shutil.rmtree(node_dir, ignore_errors=True)
        node_dir.mkdir(parents=True)
        log_path = node_dir / "main.log"
        try:
            is_script = "script" in tmpl
            body = tmpl["script"] if is_script else tmpl["container"]
            leftover = ANY_TAG.findall(
                json.dumps({k: body.get(k) for k in ("image", "command", "args", "source", "env", "workingDir")})
            )
            if leftover:
                raise Unresolved(leftover[0].strip("{} "), where)
            image = str(body.get("image", ""))
            runtime = image_runtime(image, self.settings.engine.image_map, where)
            fs = self.sandbox.prepare(node_dir)
            pod = self.volumes.pod(tmpl, node_dir, where, vars_)
            pod.place(pod.mounts(body, self.sandbox), fs)  # before inputs: an artifact may land in a volume
            self._place_inputs(inputs, fs, node_dir, where)
            command = [str(c) for c in body.get("command") or []]
            args = [str(a) for a in body.get("args") or []]
            if is_script:
                script_cpath = "/argo/staging/script"
                script_host = fs.host_path(script_cpath) if fs.root is not None else node_dir / "script"
                script_host.parent.mkdir(parents=True, exist_ok=True)
                script_host.write_text(str(body.get("source", "")))
                script_host.chmod(0o755)  # Argo's script file is executable (``sh -c FILE`` works)
                args = [*args, script_cpath if fs.root is not None else str(script_host)]
            argv = build_argv(runtime, command, args, self.settings, image)
            env = self._container_env(body, where)
            env.update(
                {
                    "ARGO_NODE_ID": nid,
                    "ARGO_POD_NAME": vars_["pod.name"],
                    "ARGO_CONTAINER_NAME": "main",
                    "ARGO_TEMPLATE": json.dumps({"name": tmpl.get("name")}),
                }
            )
            private = self._private_tops(tmpl, inputs, body)
            # as in a container: the image's working directory is "/" (the node's own root) unless workingDir says otherwise
            cwd = str(body.get("workingDir") or "/")
            if fs.root is None and not body.get("workingDir"):
                cwd = str(node_dir)
            fs.host_path(cwd).mkdir(parents=True, exist_ok=True)
            argv = self.sandbox.wrap(argv, fs, private, cwd)
        except EngineError as err:
            return self._finish(node, "Error", str(err))
        with self.pod_slots:
            if self.abort.is_set():
                return self._finish(node, "Failed", self.abort_message or "Stopped")
            node["phase"] = "Running"
            node["startedAt"] = self.state.now()
            extra = dict(self.hook_env)
            extra.update(self.hooks.node_started(self.name, nid, node) or {})
            self.state.write()
            self._changed()
            t0 = self.clock.monotonic()
            try:
                base_env = {"SCANFLOW_HOME": self.home_env, **env, **extra}

                def env_of(c: Mapping[str, Any]) -> dict[str, str]:
                    return node_env(
                        {**base_env, **self._container_env(c, where), "ARGO_CONTAINER_NAME": str(c["name"])}, self.pythonpath
                    )

                failed_init = run_init_containers(
                    init_containers(tmpl),
                    pod,
                    self.sandbox,
                    self.settings,
                    node_dir,
                    env_of,
                    deadline,
                    self.abort,
                    self.clock.monotonic,
                )
                if failed_init is not None:
                    pod.cleanup()
                    init_name, init_result = failed_init
                    message = {"deadline": "Pod was active on the node longer than the specified deadline"}.get(
                        str(init_result.reason), self.abort_message or "Stopped"
                    )
                    if init_result.reason is None:
                        message = f"init container {init_name!r} failed: Error (exit code {init_result.exit_code})"
                    node["outputs"] = {"exitCode": str(init_result.exit_code)}
                    self._finish(node, "Failed", message)
                    self.hooks.node_finished(self.name, nid, node, node_dir / f"init-{init_name}.log")
                    return {**node, "_t0": t0, "_t1": self.clock.monotonic()}
                main_env = node_env({"SCANFLOW_HOME": self.home_env, **env, **extra}, self.pythonpath)
                popen_cwd = None if fs.root is not None else cwd if Path(cwd).is_dir() else None
                sidecars = Sidecars(tmpl, pod, self.sandbox, self.settings, node_dir, env_of)
                sidecars.start()  # before the main container, as the pod starts them together
                if tmpl.get("daemon"):
                    probe = Probe(
                        body.get("readinessProbe") or {},
                        ports={str(p["name"]): int(p["containerPort"]) for p in body.get("ports") or [] if p.get("name")},
                        exec_argv=lambda cmd: self.sandbox.wrap(
                            build_argv(runtime, cmd, [], self.settings, image), fs, private, cwd
                        ),
                        env=main_env,
                    )

                    def ended() -> None:
                        pod.cleanup()
                        self.hooks.node_finished(self.name, nid, node, log_path)

                    marker = str(node_dir) if fs.root is not None else max(argv, key=len)  # its most telling argument
                    return self.daemons.start(node, argv, main_env, popen_cwd, log_path, marker, probe, sidecars, deadline, ended)
                try:
                    result = run_process(argv, main_env, popen_cwd, log_path, deadline, self.abort, self.clock.monotonic)
                finally:
                    sidecars.stop()  # the main container ended: Argo's executor kills the sidecars
            except EngineError as err:
                return self._finish(node, "Error", str(err))
            t1 = self.clock.monotonic()
        outputs: dict[str, Any] = {"result": result.stdout.rstrip(), "exitCode": str(result.exit_code)}
        phase, message = "Succeeded", None
        if result.reason == "deadline":
            phase, message = "Failed", "Pod was active on the node longer than the specified deadline"
        elif result.reason == "stopped":
            phase, message = "Failed", self.abort_message or "Stopped"
        elif result.exit_code != 0:
            phase, message = "Failed", f"Error (exit code {result.exit_code})"
        try:
            self._collect_outputs(tmpl, fs, nid, outputs, failed=phase != "Succeeded", where=where)
        except EngineError as err:
            if phase == "Succeeded":
                phase, message = "Error", str(err)
        pod.cleanup()
        node["outputs"] = outputs
        self._finish(node, phase, message)
        self.hooks.node_finished(self.name, nid, node, log_path)
        return {**node, "_t0": t0, "_t1": t1}

    def _container_env(self, body: Mapping[str, Any], where: str) -> dict[str, str]:
        env: dict[str, str] = {}
        for item in body.get("env") or []:
            name = str(item.get("name", ""))
            if "value" in item:
                env[name] = _fmt_item(item["value"])
                continue
            if name in self.hook_env:
                continue  # the hooks provide it locally (MLFLOW_TRACKING_URI from the local tracking server)
            vf = item.get("valueFrom") or {}
            for kind, folder in (("secretKeyRef", "secrets"), ("configMapKeyRef", "configmaps")):
                if kind in vf:
                    value = self._local_ref(folder, vf[kind], f"{where} env {name}")
                    if value is None and vf[kind].get("optional"):
                        break  # as Kubernetes does: a missing optional key leaves the variable unset
                    if value is None:
                        ref = vf[kind]
                        raise EngineError(
                            f"{where}: env {name} reads {kind} {ref.get('name')}/{ref.get('key')}, which is not in "
                            f"{self.settings.home / folder}: put the value in {self.settings.home / folder / str(ref.get('name')) / str(ref.get('key'))}"
                        )
                    env[name] = value
                    break
            else:
                if vf:
                    raise NotSupportedLocally(f"env {name} from {next(iter(vf))}", where)
        return env

    def _private_tops(self, tmpl: Mapping[str, Any], inputs: Mapping[str, Any], body: Mapping[str, Any]) -> set[str]:
        paths = [a.get("path") for a in inputs["artifacts"]]
        outs = tmpl.get("outputs") or {}
        paths += [(p.get("valueFrom") or {}).get("path") for p in outs.get("parameters") or []]
        paths += [a.get("path") for a in outs.get("artifacts") or []]
        paths += [body.get("workingDir"), "/argo/x"]
        paths += [m.get("mountPath") for m in body.get("volumeMounts") or []]
        tops = set()
        for p in paths:
            if p:
                parts = PurePosixPath("/", str(p)).parts
                if len(parts) > 1:
                    tops.add(parts[1])
        return tops

    def _place_inputs(self, inputs: Mapping[str, Any], fs: NodeFS, node_dir: Path, where: str) -> None:
        for a in inputs["artifacts"]:
            src, cpath = a.get("source"), a.get("path")
            if src is None or not cpath:
                continue
            what = f"{where} input artifact {a['name']!r}"
            cpath = str(PurePosixPath("/", cpath))
            if ".." in PurePosixPath(cpath).parts:
                raise EngineError(f"{what}: path {cpath!r} contains '..'")
            top = PurePosixPath(cpath).parts[1] if len(PurePosixPath(cpath).parts) > 1 else ""
            if fs.root is not None and top in fs.shared_tops:
                staged = node_dir / "inputs" / a["name"]
                self._materialize(src, staged, what)
                fs.binds.append((staged, cpath))
            else:
                self._materialize(src, fs.host_path(cpath), what)
            if a.get("mode") is not None:
                fs.host_path(cpath).chmod(int(a["mode"]))

    def _materialize(self, src: Mapping[str, Any], dest: Path, what: str) -> None:
        if src.get("subPath"):
            staging = dest.parent / f".{dest.name}.whole"
            self._materialize({k: v for k, v in src.items() if k != "subPath"}, staging, what)
            part = safe_join(staging, str(src["subPath"]), what)
            if not part.exists():
                raise EngineError(f"{what}: subPath {src['subPath']!r} is not in the artifact")
            shutil.move(str(part), str(dest))
            shutil.rmtree(staging, ignore_errors=True)
            return
        if "raw" in src:
            ArtifactRepo.write_raw(src["raw"], dest)
        elif "local" in src:
            self.repo.load(src["local"], dest, what)
        else:
            raise EngineError(f"{what}: unknown artifact location {sorted(src)}")

    def _collect_outputs(
        self, tmpl: Mapping[str, Any], fs: NodeFS, nid: str, outputs: dict[str, Any], failed: bool, where: str
    ) -> None:
        outs = tmpl.get("outputs") or {}
        params = []
        for p in outs.get("parameters") or []:
            vf = p.get("valueFrom") or {}
            value: str | None = None
            if "path" in vf:
                host = fs.host_path(str(vf["path"]))
                if host.is_file():
                    value = host.read_text(errors="replace").rstrip()
                elif "default" in vf:
                    value = _fmt_item(vf["default"])
                elif not failed:
                    raise EngineError(f"{where}: output parameter {p['name']!r}: no file at {vf['path']}")
            elif "expression" in vf:
                from ..argoexpr.expr import eval_expr, render_param

                value = render_param(
                    eval_expr(
                        str(vf["expression"]),
                        {f"outputs.{k}": v for k, v in outputs.items() if isinstance(v, str)},
                        clock=self.clock,
                    )
                )
            elif "value" in p:
                value = _fmt_item(p["value"])
            elif "default" in vf:
                value = _fmt_item(vf["default"])
            if value is not None:
                entry = {"name": p["name"], "value": value}
                if p.get("globalName"):
                    entry["globalName"] = p["globalName"]
                params.append(entry)
        if params:
            outputs["parameters"] = params
        arts = []
        for a in outs.get("artifacts") or []:
            what = f"{where} output artifact {a.get('name')!r}"
            if "path" not in a:
                continue
            host = fs.host_path(str(a["path"]))
            if not host.exists():
                if a.get("optional") or failed:
                    continue
                raise EngineError(f"{what}: nothing at {a['path']}")
            if not re.fullmatch(r"[A-Za-z0-9][-A-Za-z0-9_.]*", str(a.get("name", ""))):
                raise EngineError(f"{what}: artifact names may use letters, digits, '-', '_' and '.'")
            key = str((a.get("s3") or {}).get("key") or f"{self.name}/{nid}/{a['name']}.tgz")
            loc = self.repo.save(host, key, a.get("archive"), what)
            entry = {"name": a["name"], "path": a["path"], "local": loc}
            if a.get("globalName"):
                entry["globalName"] = a["globalName"]
            arts.append(entry)
        if arts:
            outputs["artifacts"] = arts
        self._register_globals(tmpl, outputs)

    def _global_output_vars(self) -> dict[str, Any]:
        out: dict[str, Any] = {f"workflow.outputs.parameters.{k}": v for k, v in self.global_outputs["parameters"].items()}
        return out

    def _register_globals(self, tmpl: Mapping[str, Any], outputs: Mapping[str, Any]) -> None:
        with self.state.lock:
            for p in outputs.get("parameters") or []:
                if p.get("globalName"):
                    self.global_outputs["parameters"][p["globalName"]] = p["value"]
            for a in outputs.get("artifacts") or []:
                if a.get("globalName"):
                    self.global_outputs["artifacts"][a["globalName"]] = {**a, "name": a["globalName"]}

    # -- suspend and resource --------------------------------------------------------------------
    def _run_suspend(
        self, name: str, display: str, tmpl: dict[str, Any], vars_: dict[str, Any], inputs: dict[str, Any], parent: str | None
    ) -> dict[str, Any]:
        nid = node_id(self.name, name)
        reused = self.state.reusable(nid)
        node = self._new_node(name, display, "Suspend", parent, tmpl)
        if reused is None:
            self._sleep(argo_seconds((tmpl.get("suspend") or {}).get("duration", "0"), f"suspend of {display!r}"))
        outputs = {}
        params = []
        for p in (tmpl.get("outputs") or {}).get("parameters") or []:
            vf = p.get("valueFrom") or {}
            if "default" in vf or "value" in p:
                params.append({"name": p["name"], "value": _fmt_item(p.get("value", vf.get("default")))})
        if params:
            outputs["parameters"] = params
            node["outputs"] = outputs
        if self.abort.is_set():
            return self._finish(node, "Failed", self.abort_message)
        return self._finish(node, "Succeeded")

    def _run_resource(
        self, name: str, display: str, tmpl: dict[str, Any], inputs: dict[str, Any], parent: str | None
    ) -> dict[str, Any]:
        import yaml

        node = self._new_node(name, display, "Pod", parent, tmpl)
        res = tmpl["resource"]
        manifest = res.get("manifest")
        doc = yaml.safe_load(manifest) if isinstance(manifest, str) else dict(manifest or {})
        from ..platform.local import LocalPlatform

        platform = LocalPlatform(self.settings)
        kind = doc.get("kind")
        outputs: dict[str, Any] = {}
        try:
            if kind == "SeldonDeployment":
                platform.apply_deployment(doc)
                created = doc.get("metadata", {}).get("name", "")
            else:
                created = platform.submit(doc)
        except Exception as err:
            return self._finish(node, "Error", f"resource {res.get('action')} of {kind} failed: {err}")
        params = []
        for p in (tmpl.get("outputs") or {}).get("parameters") or []:
            jp = (p.get("valueFrom") or {}).get("jsonPath", "")
            if jp.strip() == "{.metadata.name}":
                params.append({"name": p["name"], "value": created})
        if params:
            outputs["parameters"] = params
        node["outputs"] = outputs
        return self._finish(node, "Succeeded")

    # -- steps -----------------------------------------------------------------------------------
    def _run_steps(
        self,
        name: str,
        display: str,
        tmpl: dict[str, Any],
        frame: Frame,
        inputs: dict[str, Any],
        parent: str | None,
        deadline: float | None,
    ) -> dict[str, Any]:
        node = self._new_node(name, display, "Steps", parent, tmpl)
        node["inputs"] = self._inputs_doc(inputs)
        frame = Frame(frame.scope, dict(frame.vars), dict(frame.artifacts))
        self._add_input_artifacts(frame, inputs)
        phase, message = "Succeeded", None
        limit = tmpl.get("parallelism")
        for i, group in enumerate(tmpl.get("steps") or []):
            steps = group if isinstance(group, list) else [group]
            gname = f"{name}[{i}]"
            gnode = self._new_node(gname, f"[{i}]", "StepGroup", node["id"], None)
            results = self._run_group(gname, gnode["id"], steps, frame, limit, kind="steps")
            failed = [(s, n) for s, n in results if n["phase"] in FAILED and not self._continues(s, n["phase"])]
            self._finish(gnode, "Failed" if failed else "Succeeded", failed[0][1].get("message") if failed else None)
            if failed:
                child = failed[0][1]
                phase = "Failed"
                message = f"child '{child['id']}' failed"
                break
            if self.abort.is_set():
                phase, message = "Failed", self.abort_message
                break
        if phase == "Succeeded":
            try:
                node["outputs"] = self._template_outputs(tmpl, frame, f"template {tmpl.get('name')!r}")
            except EngineError as err:
                phase, message = "Error", str(err)
        self.daemons.end_scope(node["id"])  # Argo kills a scope's daemons when it completes
        return self._finish(node, phase, message)

    def _continues(self, task: Mapping[str, Any], phase: str) -> bool:
        cont = task.get("continueOn") or {}
        return bool((phase == "Failed" and cont.get("failed")) or (phase == "Error" and cont.get("error")))

    def _add_input_artifacts(self, frame: Frame, inputs: Mapping[str, Any]) -> None:
        for a in inputs["artifacts"]:
            if a.get("source") is not None:
                frame.artifacts[f"inputs.artifacts.{a['name']}"] = a["source"]

    def _expand(self, task: Mapping[str, Any], frame: Frame, where: str) -> list[tuple[str, dict[str, Any]]] | None:
        """Loop iterations of a step/task as (label suffix, extra vars); None when it does not loop."""
        items: list[Any] | None = None
        if "withItems" in task:
            items = substitute(task["withItems"], frame.vars, where=where)
        elif "withParam" in task:
            raw = substitute_str(str(task["withParam"]), frame.vars, where=where)
            try:
                items = json.loads(raw)
            except ValueError as err:
                raise EngineError(f"{where}: withParam value is not a JSON list: {raw[:200]!r}") from err
            if not isinstance(items, list):
                raise EngineError(f"{where}: withParam value is not a JSON list: {raw[:200]!r}")
        elif "withSequence" in task:
            seq = substitute(task["withSequence"], frame.vars, where=where)
            fmt = str(seq.get("format") or "%d")
            if "count" in seq:
                start = _atoi(seq.get("start", 0), f"{where} withSequence.start")
                values = list(range(start, start + _atoi(seq["count"], f"{where} withSequence.count")))
            else:
                start, end = (
                    _atoi(seq.get("start", 0), f"{where} withSequence.start"),
                    _atoi(seq.get("end", 0), f"{where} withSequence.end"),
                )
                values = list(range(start, end + 1)) if end >= start else list(range(start, end - 1, -1))
            items = [_sequence_item(sprintf(fmt, v), where) for v in values]
        if items is None:
            return None
        out = []
        for i, item in enumerate(items):
            extra: dict[str, Any] = {"item": _fmt_item(item)}
            if isinstance(item, dict):
                for k, v in item.items():
                    extra[f"item.{k}"] = _fmt_item(v)
            out.append((f"({i}:{_item_label(item)})", extra))
        return out

    def _run_group(
        self, prefix: str, parent_id: str, steps: list[dict[str, Any]], frame: Frame, limit: Any, kind: str
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Run one steps group: every step (and loop iteration) at once; outputs go into ``frame``."""
        jobs: list[tuple[dict[str, Any], str, str, Frame]] = []
        broken: list[tuple[dict[str, Any], dict[str, Any]]] = []
        expanded: dict[str, list[str]] = {}
        for step in steps:
            sname = str(step.get("name", ""))
            where = f"step {sname!r}"
            try:
                iterations = self._expand(step, frame, where)
            except EngineError as err:
                bad = self._new_node(f"{prefix}.{sname}", sname, "Skipped", parent_id, None)
                broken.append((step, self._finish(bad, "Error", str(err))))
                continue
            if iterations is None:
                jobs.append((step, f"{prefix}.{sname}", sname, Frame(frame.scope, frame.vars, frame.artifacts)))
            else:
                expanded[sname] = []
                for suffix, extra in iterations:
                    jobs.append(
                        (
                            step,
                            f"{prefix}.{sname}{suffix}",
                            f"{sname}{suffix}",
                            Frame(frame.scope, {**frame.vars, **extra}, frame.artifacts),
                        )
                    )
                    expanded[sname].append(f"{prefix}.{sname}{suffix}")
        results = self._parallel([(lambda j=j: self._run_step(j[0], j[1], j[2], j[3], parent_id)) for j in jobs], limit)
        pairs = [(j[0], r) for j, r in zip(jobs, results, strict=True)] + broken
        by_name: dict[str, list[dict[str, Any]]] = {}
        for (step, _n, _d, _f), res in zip(jobs, results, strict=True):
            by_name.setdefault(str(step.get("name")), []).append(res)
        for sname, nodes in by_name.items():
            self._publish(frame, f"steps.{sname}", nodes, looped=sname in expanded)
        return pairs

    def _parallel(self, calls: list[Callable[[], dict[str, Any]]], limit: Any) -> list[dict[str, Any]]:
        if len(calls) == 1:
            return [calls[0]()]
        workers = int(limit) if limit else len(calls)
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(calls)))) as pool:
            return list(pool.map(lambda c: c(), calls))

    def _run_step(self, step: dict[str, Any], name: str, display: str, frame: Frame, parent_id: str) -> dict[str, Any]:
        hooks = self.lifecycle.for_step(step, name, display, frame)
        try:
            result = self._run_step_body(step, name, display, frame, parent_id)
        finally:
            if hooks is not None:  # the step completes once its fired lifecycle hooks did
                self.lifecycle.finish(hooks)
        self._exit_hook(step, name, display, result, frame, parent_id)
        return result

    def _run_step_body(self, step: dict[str, Any], name: str, display: str, frame: Frame, parent_id: str) -> dict[str, Any]:
        where = f"step {display!r}"
        with self.state.lock:
            arts = {f"workflow.outputs.artifacts.{k}": {"local": v["local"]} for k, v in self.global_outputs["artifacts"].items()}
            frame = Frame(frame.scope, {**frame.vars, **self._global_output_vars()}, {**frame.artifacts, **arts})
        try:
            if step.get("when") is not None:
                cond = substitute_str(str(step["when"]), frame.vars, where=f"{where} when")
                from ..argoexpr.expr import eval_when

                if not eval_when(cond):
                    return self._skipped(name, display, step, frame, parent_id, f"when '{cond}' evaluated false")
            holder = dict(step)
            holder["arguments"] = self._resolve_args(step.get("arguments") or {}, frame, where)
        except NotSupportedLocally:
            raise
        except EngineError as err:
            node = self._new_node(name, display, "Pod", parent_id, None)
            return self._finish(node, "Error", str(err))
        return self._safe_run(name, display, holder, frame, parent_id)

    def _exit_hook(
        self, step: Mapping[str, Any], name: str, display: str, result: Mapping[str, Any], frame: Frame, parent_id: str
    ) -> None:
        hook = (step.get("hooks") or {}).get("exit") or ({"template": step["onExit"]} if step.get("onExit") else None)
        if not hook:
            return
        hframe = Frame(frame.scope, dict(frame.vars), dict(frame.artifacts))
        self._publish(hframe, f"steps.{step.get('name')}", [dict(result)], looped=False)
        self._publish(hframe, f"tasks.{step.get('name')}", [dict(result)], looped=False)
        holder = dict(hook)
        try:
            holder["arguments"] = self._resolve_args(hook.get("arguments") or {}, hframe, f"{display} exit hook")
        except EngineError as err:
            node = self._new_node(f"{name}.onExit", f"{display}.onExit", "Pod", parent_id, None)
            self._finish(node, "Error", str(err))
            return
        self._safe_run(f"{name}.onExit", f"{display}.onExit", holder, hframe, parent_id)

    def _skipped(
        self, name: str, display: str, step: Mapping[str, Any], frame: Frame, parent_id: str, message: str
    ) -> dict[str, Any]:
        node = self._new_node(name, display, "Skipped", parent_id, None, phase="Skipped")
        try:
            tmpl, _ = self._resolve_template(step, frame, f"step {display!r}")
            node["templateName"] = tmpl.get("name")
            params = [
                {"name": p["name"], "value": _fmt_item(p["valueFrom"]["default"])}
                for p in (tmpl.get("outputs") or {}).get("parameters") or []
                if "default" in (p.get("valueFrom") or {})
            ]
            if params:
                node["outputs"] = {"parameters": params}
        except EngineError:
            pass
        return self._finish(node, "Skipped", message)

    def _resolve_args(self, args: Mapping[str, Any], frame: Frame, where: str) -> dict[str, Any]:
        """Substitute step/task arguments; a reference to a skipped node's missing output drops the argument."""
        out: dict[str, Any] = {}
        params = []
        for p in args.get("parameters") or []:
            p = dict(p)
            if "value" in p:
                try:
                    p["value"] = substitute_str(_fmt_item(p["value"]), frame.vars, where=f"{where} argument {p.get('name')!r}")
                except Unresolved as err:
                    if self._refers_to_skipped(err.tag, frame):
                        p = {"name": p.get("name"), "_absent": True}
                    else:
                        raise
            params.append(p)
        if params:
            out["parameters"] = params
        arts = []
        for a in args.get("artifacts") or []:
            a = dict(a)
            if "from" not in a:
                a = substitute(a, frame.vars, where=f"{where} artifact {a.get('name')!r}")
            else:
                key = re.sub(r"^\{\{\s*|\s*\}\}$", "", str(a["from"]).strip())
                key = substitute_str(key, frame.vars, strict=False)
                if key not in frame.artifacts and not a.get("optional"):
                    raise EngineError(f"{where}: artifact {a.get('name')!r} from {a['from']}: no such artifact here")
                a["from"] = "{{" + key + "}}"
            arts.append(a)
        if arts:
            out["artifacts"] = arts
        return out

    def _refers_to_skipped(self, tag: str, frame: Frame) -> bool:
        m = re.match(r"(tasks|steps)\.([^.]+)\.outputs\.", tag)
        return bool(m) and frame.vars.get(f"{m.group(1)}.{m.group(2)}.status") in ("Skipped", "Omitted")

    def _publish(self, frame: Frame, prefix: str, nodes: list[dict[str, Any]], looped: bool) -> None:
        """Make a finished step/task's outputs visible as ``steps.X.*`` / ``tasks.X.*``."""
        v = frame.vars
        if not looped:
            n = nodes[0]
            outs = n.get("outputs") or {}
            v[f"{prefix}.status"] = n.get("phase", "")
            v[f"{prefix}.id"] = n.get("id", "")
            v[f"{prefix}.startedAt"] = n.get("startedAt") or ""
            v[f"{prefix}.finishedAt"] = n.get("finishedAt") or ""
            if n.get("daemoned"):
                v[f"{prefix}.ip"] = DAEMON_IP  # nodes share this machine's network
            if "exitCode" in outs:
                v[f"{prefix}.exitCode"] = outs["exitCode"]
                v[f"{prefix}.outputs.exitCode"] = outs["exitCode"]
            if "result" in outs:
                v[f"{prefix}.outputs.result"] = outs["result"]
            for p in outs.get("parameters") or []:
                v[f"{prefix}.outputs.parameters.{p['name']}"] = p["value"]
            if outs.get("parameters"):
                v[f"{prefix}.outputs.parameters"] = json.dumps(outs["parameters"], separators=(",", ":"))
            for a in outs.get("artifacts") or []:
                frame.artifacts[f"{prefix}.outputs.artifacts.{a['name']}"] = {"local": a["local"]}
            return
        ok = [n for n in nodes if n.get("phase") == "Succeeded"]
        results = [_json_or_str(n["outputs"]["result"]) for n in ok if "result" in (n.get("outputs") or {})]
        v[f"{prefix}.outputs.result"] = json.dumps(results, separators=(",", ":"))
        plist, by_param = [], {}
        for n in ok:
            ps = (n.get("outputs") or {}).get("parameters") or []
            if ps:
                plist.append({p["name"]: p["value"] for p in ps})
            for p in ps:
                by_param.setdefault(p["name"], []).append(_json_or_str(p["value"]))
        v[f"{prefix}.outputs.parameters"] = json.dumps(plist, separators=(",", ":"))
        for pname, values in by_param.items():
            v[f"{prefix}.outputs.parameters.{pname}"] = json.dumps(values, separators=(",", ":"))
        phases = {n.get("phase") for n in nodes}
        v[f"{prefix}.status"] = (
            "Failed" if phases & set(FAILED) else ("Succeeded" if ok else (nodes[0].get("phase") if nodes else "Skipped"))
        )

    def _template_outputs(self, tmpl: Mapping[str, Any], frame: Frame, where: str) -> dict[str, Any]:
        """Outputs of a steps/DAG template: parameters from ``valueFrom.parameter``/``expression``, artifacts ``from``."""
        outs = tmpl.get("outputs") or {}
        out: dict[str, Any] = {}
        params = []
        for p in outs.get("parameters") or []:
            vf = p.get("valueFrom") or {}
            try:
                if "parameter" in vf:
                    value = substitute_str(str(vf["parameter"]), frame.vars, where=f"{where} output {p['name']!r}")
                elif "expression" in vf:
                    from ..argoexpr.expr import eval_expr, render_param
                    from .subst import expand_scope

                    value = render_param(eval_expr(str(vf["expression"]), expand_scope(frame.vars), clock=self.clock))
                elif "value" in p:
                    value = substitute_str(_fmt_item(p["value"]), frame.vars, where=where)
                else:
                    continue
            except Unresolved:
                if "default" not in vf:
                    raise
                value = _fmt_item(vf["default"])
            entry = {"name": p["name"], "value": value}
            if p.get("globalName"):
                entry["globalName"] = p["globalName"]
            params.append(entry)
        if params:
            out["parameters"] = params
        arts = []
        for a in outs.get("artifacts") or []:
            src = None
            if "from" in a:
                key = re.sub(r"^\{\{\s*|\s*\}\}$", "", str(a["from"]).strip())
                src = frame.artifacts.get(key)
            elif "fromExpression" in a:
                src = self._artifact_source(a, frame, f"{where} output artifact {a.get('name')!r}")
            if src is None:
                if a.get("optional"):
                    continue
                raise EngineError(f"{where}: output artifact {a.get('name')!r}: its source is not available")
            entry = {"name": a["name"], **src}
            if a.get("globalName"):
                entry["globalName"] = a["globalName"]
            arts.append(entry)
        if arts:
            out["artifacts"] = arts
        self._register_globals(tmpl, out)
        return out

    # -- DAGs ------------------------------------------------------------------------------------
    def _run_dag(
        self,
        name: str,
        display: str,
        tmpl: dict[str, Any],
        frame: Frame,
        inputs: dict[str, Any],
        parent: str | None,
        deadline: float | None,
    ) -> dict[str, Any]:
        node = self._new_node(name, display, "DAG", parent, tmpl)
        node["inputs"] = self._inputs_doc(inputs)
        frame = Frame(frame.scope, dict(frame.vars), dict(frame.artifacts))
        self._add_input_artifacts(frame, inputs)
        dag = tmpl["dag"]
        tasks = {str(t["name"]): t for t in dag.get("tasks") or []}
        deps = {n: self._task_deps(t, tasks) for n, t in tasks.items()}
        wanted = set(tasks)
        target = dag.get("target")
        targets = sorted(n for n in tasks if not any(n in deps[m] for m in tasks))
        if target:
            wanted = set()
            stack = [t for t in re.split(r"[\s,]+", str(target).strip()) if t]
            for t in stack:
                if t not in tasks:
                    raise EngineError(f"template {tmpl.get('name')!r}: target task {t!r} does not exist")
            targets = list(stack)
            while stack:
                t = stack.pop()
                if t not in wanted:
                    wanted.add(t)
                    stack.extend(deps[t])
        fail_fast = dag.get("failFast", True) is not False
        limit = int(tmpl["parallelism"]) if tmpl.get("parallelism") else None
        phases: dict[str, str] = {}
        results: dict[str, dict[str, Any]] = {}
        lock = threading.Condition()
        running: dict[str, Any] = {}
        pool = ThreadPoolExecutor(max_workers=max(1, min(limit or len(tasks) or 1, 64)))
        failed_any = False

        def finished(tname: str, res: dict[str, Any]) -> None:
            with lock:
                results[tname] = res
                phases[tname] = res.get("phase", "Error")
                running.pop(tname, None)
                lock.notify_all()

        def launch(tname: str) -> None:
            task = tasks[tname]
            try:
                res = self._run_task(task, f"{name}.{tname}", tname, frame, node["id"], lock)
            except Exception as err:
                res = {"phase": "Error", "message": f"{type(err).__name__}: {err}"}
            finished(tname, res)

        try:
            with lock:
                while True:
                    progressed = False
                    stop_new = (fail_fast and failed_any) or self.abort.is_set()
                    for tname in tasks:
                        if tname not in wanted or tname in phases or tname in running:
                            continue
                        if any(d not in phases for d in deps[tname]):
                            continue
                        if stop_new:
                            continue
                        try:
                            go = self._depends_ok(tasks[tname], deps[tname], phases, tasks, results)
                        except EngineError as err:
                            phases[tname] = "Error"
                            res = self._new_node(f"{name}.{tname}", tname, "Skipped", node["id"], None)
                            results[tname] = self._finish(res, "Error", str(err))
                            progressed = True
                            continue
                        if not go:
                            phases[tname] = "Omitted"
                            res = self._new_node(f"{name}.{tname}", tname, "Skipped", node["id"], None, phase="Omitted")
                            results[tname] = self._finish(res, "Omitted", "omitted: depends condition not met")
                            self._publish(frame, f"tasks.{tname}", [results[tname]], looped=False)
                            progressed = True
                            continue
                        running[tname] = pool.submit(launch, tname)
                        progressed = True
                    if not running and not progressed:
                        break
                    if running:
                        lock.wait(0.5)
                        failed_any = (
                            failed_any or self._dag_phase(tasks, deps, targets, phases, results, final=False)[0] != "Succeeded"
                        )
        finally:
            pool.shutdown(wait=True)
        phase, message = self._dag_phase(tasks, deps, targets, phases, results)
        if self.abort.is_set() and phase == "Succeeded":
            phase, message = "Failed", self.abort_message
        if phase == "Succeeded":
            try:
                node["outputs"] = self._template_outputs(tmpl, frame, f"template {tmpl.get('name')!r}")
            except EngineError as err:
                phase, message = "Error", str(err)
        self.daemons.end_scope(node["id"])  # Argo kills a scope's daemons when it completes
        return self._finish(node, phase, message)

    def _task_deps(self, task: Mapping[str, Any], tasks: Mapping[str, Any]) -> list[str]:
        if task.get("depends"):
            from ..argoexpr.expr import depends_tasks

            names = list(depends_tasks(str(task["depends"])))
            unknown = [n for n in names if n not in tasks]
            if unknown:
                raise EngineError(
                    f"task {task.get('name')!r} depends on {', '.join(map(repr, unknown))}, which is not a task of this DAG"
                )
            return names
        deps = [str(d) for d in task.get("dependencies") or []]
        unknown = [d for d in deps if d not in tasks]
        if unknown:
            raise EngineError(
                f"task {task.get('name')!r} depends on {', '.join(map(repr, unknown))}, which is not a task of this DAG"
            )
        return deps

    def _depends_ok(
        self,
        task: Mapping[str, Any],
        deps: list[str],
        phases: Mapping[str, str],
        tasks: Mapping[str, Any],
        results: Mapping[str, Any],
    ) -> bool:
        if task.get("depends"):
            expr = str(task["depends"])
        elif deps:
            expr = " && ".join(deps)
        else:
            return True
        from ..argoexpr.expr import eval_depends

        states: dict[str, Any] = {}
        for d in deps:
            res = results.get(d) or {}
            if res.get("type") == "TaskGroup":
                kids = [self.state.nodes.get(c, {}).get("phase", "") for c in res.get("children") or []]
                states[d] = {"phase": phases[d], "children": kids}
            elif phases[d] == "Running":  # a daemon: done for its dependants while it runs
                states[d] = {"phase": res.get("phase", "Running"), "daemoned": bool(res.get("daemoned"))}
            else:
                states[d] = phases[d]
        continue_on = {d: tasks[d]["continueOn"] for d in deps if tasks[d].get("continueOn")}
        return eval_depends(expr, states, continue_on=continue_on or None)

    def _dag_phase(self, tasks, deps, targets, phases, results, final: bool = True) -> tuple[str, str | None]:  # type: ignore[no-untyped-def]
        """Argo's ``assessDAGPhase``: each target task's branch phase is its own phase when it
        completed, else (omitted) the phase inherited from its dependencies, failures first; the DAG
        fails when a target's branch failed, unless that target continues on that phase."""
        memo: dict[str, str | None] = {}

        def branch(n: str) -> str | None:
            if n in memo:
                return memo[n]
            memo[n] = "Succeeded"  # cycles cannot happen in a valid DAG; this guards anyway
            p = phases.get(n)
            if p is None:
                out: str | None = "Failed" if final else None
            elif p == "Omitted":
                ups = [branch(d) for d in deps[n]]  # an omitted task inherits its dependencies' phase, failures first
                out = None if any(u is None for u in ups) else next((u for u in ups if u in FAILED), "Succeeded")
            else:
                out = p
            memo[n] = out
            return out

        for t in targets:
            b = branch(t)
            if b in FAILED and not self._continues(tasks[t], b):
                failed = [n for n in tasks if phases.get(n) in FAILED]
                culprit = failed[0] if failed else t
                res = results.get(culprit) or {}
                return b, f"child '{res.get('id', culprit)}' failed"
        return "Succeeded", None

    def _run_task(
        self, task: dict[str, Any], name: str, display: str, frame: Frame, parent_id: str, lock: threading.Condition
    ) -> dict[str, Any]:
        where = f"task {display!r}"
        tname = str(task["name"])
        with lock:
            snapshot = Frame(frame.scope, dict(frame.vars), dict(frame.artifacts))
        try:
            iterations = self._expand(task, snapshot, where)
        except EngineError as err:
            node = self._new_node(name, display, "Pod", parent_id, None)
            res = self._finish(node, "Error", str(err))
            with lock:
                self._publish(frame, f"tasks.{tname}", [res], looped=False)
            return res
        if iterations is None:
            res = self._run_step(task, name, display, snapshot, parent_id)
            with lock:
                self._publish(frame, f"tasks.{tname}", [res], looped=False)
            return res
        hooks: HookSet | None = self.lifecycle.for_step(task, name, display, snapshot)  # on the TaskGroup, as Argo
        each = {**task, "hooks": {k: v for k, v in (task.get("hooks") or {}).items() if k == "exit"}}
        try:
            group = self._new_node(name, display, "TaskGroup", parent_id, None)
            calls = []
            for suffix, extra in iterations:
                sub = Frame(snapshot.scope, {**snapshot.vars, **extra}, snapshot.artifacts)
                calls.append(lambda s=suffix, f=sub: self._run_step(each, f"{name}{s}", f"{display}{s}", f, group["id"]))
            children = self._parallel(calls, task.get("parallelism")) if calls else []
            bad = [c for c in children if c["phase"] in FAILED and not self._continues(task, c["phase"])]
            res = self._finish(group, "Failed" if bad else "Succeeded", bad[0].get("message") if bad else None)
        finally:
            if hooks is not None:
                self.lifecycle.finish(hooks)
        with lock:
            self._publish(frame, f"tasks.{tname}", children, looped=True)
            frame.vars[f"tasks.{tname}.status"] = res["phase"]
        return res


def _atoi(value: Any, where: str) -> int:
    """``strconv.Atoi`` of a withSequence field (Argo's ``expandSequence``)."""
    try:
        return go_atoi(str(value))
    except ValueError:
        raise EngineError(f"{where}: {value!r} is not a whole number") from None


def _sequence_item(text: str, where: str) -> str:
    """Argo's ``wfv1.ParseItem(`"` + fmt.Sprintf(format, i) + `"`)``: the text read as a JSON string."""
    try:
        return str(json.loads(f'"{text}"'))
    except ValueError as err:
        raise EngineError(f"{where}: withSequence.format gives {text!r}, which is not a valid item: {err}") from None
