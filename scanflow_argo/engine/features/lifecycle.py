"""Lifecycle hooks with expressions (Argo's ``hooks.<name>.expression``) for the local engine.

Argo (``workflow/controller/hooks.go``) re-evaluates every hook whose name is not ``exit`` each time it
reconciles the workflow: a workflow-level hook (``spec.hooks``) over the global variables, where
``workflow.status`` is ``Running`` while the entrypoint runs and the entrypoint's phase once it completed
(before the exit handler); a step/task hook over the step's scope plus ``steps.<name>.status`` /
``tasks.<name>.status`` of the hooked node. When the expression is true the hook's template runs as node
``<parent node name>.hooks.<hook name>``, a child of the hooked node (of the workflow's root node for
workflow-level hooks). A recorded hook node is never started again, so each hook runs at most once. The
hooked step (and the workflow, before its exit handler) waits until its fired hooks completed; a failed hook
changes no phase; an expression that cannot be evaluated is an error of the workflow.

Here the engine's change notification (``RunContext.changed``) stands in for Argo's reconciliation: every
change re-evaluates the hooks of every node being watched. This module owns ``Lifecycle`` (the watch list
of one run) and ``HookSet`` (the expression hooks of one hooked node or of the workflow).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from typing import Any

from ...argoexpr.expr import ExprError, eval_expr_bool
from ...errors import EngineError
from ..core.context import RunContext
from ..core.frame import Frame, publish, resolve_args
from ..core.state import node_id

__all__ = ["HookSet", "Lifecycle", "expression_hooks"]


def expression_hooks(holder: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The hooks of a step/task/workflow spec other than ``exit`` (which runs as an exit handler)."""
    hooks = holder.get("hooks") or {}
    return {str(k): dict(v or {}) for k, v in hooks.items() if k != "exit"}


class HookSet:
    """The expression hooks of one hooked node (or of the workflow); each fires at most once."""

    def __init__(
        self,
        lifecycle: Lifecycle,
        hooks: Mapping[str, dict[str, Any]],
        node_name: str,
        display: str,
        env: Callable[[], dict[str, Any] | None],
        frame: Callable[[], Frame],
    ) -> None:
        self.lifecycle = lifecycle
        self.pending = dict(hooks)
        self.node_name = node_name
        self.display = display
        self.env = env  # None until the hooked node exists (Argo evaluates hooks of existing nodes only)
        self.frame = frame
        self.threads: list[threading.Thread] = []
        self.lock = threading.RLock()

    def check(self) -> None:
        """Fire every pending hook whose expression is now true (or whose node a previous run recorded)."""
        ex = self.lifecycle.ctx
        with self.lock:
            if not self.pending:
                return
            env = self.env()
            if env is None:
                return
            parent_id = node_id(ex.name, self.node_name)
            for name, hook in list(self.pending.items()):
                hook_name = f"{self.node_name}.hooks.{name}"
                hid = node_id(ex.name, hook_name)
                # a hook node already recorded (by this run or the run resumed) is continued, never started twice
                recorded = hid in ex.state.nodes or hid in ex.state.previous_nodes
                try:
                    fire = recorded or eval_expr_bool(str(hook.get("expression", "")), env, clock=ex.clock)
                except ExprError as err:
                    del self.pending[name]
                    ex.flag(hook_name, hooked=True)
                    self.lifecycle.fail(
                        hook_name,
                        f"{self.display}.hooks.{name}",
                        parent_id,
                        f"lifecycle hook {name!r} of {self.display!r}: {err}",
                    )
                    continue
                if fire:
                    del self.pending[name]
                    ex.flag(hook_name, hooked=True)  # hooks.go: hook nodes run with NodeFlag{Hooked: true}
                    thread = threading.Thread(
                        target=self._run, args=(name, hook, hook_name, parent_id), name=hook_name, daemon=True
                    )
                    self.threads.append(thread)
                    thread.start()

    def _run(self, name: str, hook: Mapping[str, Any], hook_name: str, parent_id: str) -> None:
        ex = self.lifecycle.ctx
        display = f"{self.display}.hooks.{name}"
        try:
            frame = self.frame()
            holder = {k: v for k, v in hook.items() if k != "expression"}
            holder["arguments"] = resolve_args(hook.get("arguments") or {}, frame, f"{display} lifecycle hook")
            ex.run_child(hook_name, display, holder, frame, parent_id)
        except EngineError as err:  # NotSupportedLocally, or arguments that cannot be resolved
            self.lifecycle.fail(
                hook_name, f"{self.display}.hooks.{name}", parent_id, f"lifecycle hook {name!r} of {self.display!r}: {err}"
            )
            return
        except Exception as err:  # a bug must not leave the hooked step waiting forever
            self.lifecycle.fail(hook_name, display, parent_id, f"lifecycle hook {name!r}: {type(err).__name__}: {err}")
            return

    def wait(self) -> None:
        """Block until every fired hook completed."""
        while True:
            with self.lock:
                threads = [t for t in self.threads if t.is_alive()]
            if not threads:
                return
            for thread in threads:
                thread.join()


class Lifecycle:
    """The expression hooks being watched in one run (``spec`` is the workflow's)."""

    def __init__(self, ctx: RunContext, spec: Mapping[str, Any]) -> None:
        self.ctx = ctx
        self.spec = spec  # the workflow's: its hooks
        self.active: list[HookSet] = []
        self.lock = threading.Lock()
        self.errors: list[str] = []

    def poke(self) -> None:
        """Re-evaluate every watched hook (called on each change of the run's state)."""
        with self.lock:
            sets = list(self.active)
        for hook_set in sets:
            try:
                hook_set.check()
            except Exception as err:  # never break the change notification of the node that changed
                with self.lock:
                    self.errors.append(f"lifecycle hooks of {hook_set.display!r}: {type(err).__name__}: {err}")

    def watch(self, hook_set: HookSet) -> HookSet:
        with self.lock:
            self.active.append(hook_set)
        hook_set.check()
        return hook_set

    def finish(self, hook_set: HookSet) -> None:
        """The hooked node completed: evaluate its hooks on its final status, stop watching, wait for them."""
        hook_set.check()
        with self.lock:
            if hook_set in self.active:
                self.active.remove(hook_set)
        hook_set.wait()

    def fail(self, hook_name: str, display: str, parent_id: str, message: str) -> None:
        """Record a hook that could not run as an Error node; the workflow ends in Error (Argo marks its parent)."""
        ex = self.ctx
        with self.lock:
            self.errors.append(message)
        nid = node_id(ex.name, hook_name)
        node = ex.state.nodes.get(nid) or ex.new_node(hook_name, display, "Pod", parent_id, None)
        ex.finish(node, "Error", message)

    # -- the two kinds of hooked things ------------------------------------------------------------
    def for_workflow(self) -> HookSet | None:
        """Watch ``spec.hooks`` (other than exit) over the global variables; None when there are none."""
        ex = self.ctx
        hooks = expression_hooks(self.spec)
        if not hooks:
            return None
        root = node_id(ex.name, ex.name)

        def env() -> dict[str, Any] | None:
            if root not in ex.state.nodes:
                return None
            return self._global_env()

        def frame() -> Frame:
            return Frame(ex.root_frame().scope, self._global_env())

        return self.watch(HookSet(self, hooks, ex.name, ex.name, env, frame))

    def for_step(self, step: Mapping[str, Any], name: str, display: str, frame: Frame) -> HookSet | None:
        """Watch the expression hooks of step/task ``step`` run as node ``name``; None when it has none."""
        hooks = expression_hooks(step)
        if not hooks:
            return None
        ex = self.ctx
        nid = node_id(ex.name, name)
        sname = str(step.get("name", ""))

        def env() -> dict[str, Any] | None:
            node = ex.state.nodes.get(nid)
            if node is None:
                return None
            out = {**frame.vars, **_outputs_only(ex.global_scope())}
            out[f"steps.{sname}.status"] = out[f"tasks.{sname}.status"] = node.get("phase", "")
            return out

        def hook_frame() -> Frame:
            node = dict(ex.state.nodes.get(nid) or {})
            out = Frame(frame.scope, {**frame.vars, **_outputs_only(ex.global_scope())}, dict(frame.artifacts))
            if node:  # the hooked node's status (and outputs, once it has them), as Argo passes them
                publish(out, f"steps.{sname}", [node], looped=False)
                publish(out, f"tasks.{sname}", [node], looped=False)
            return out

        return self.watch(HookSet(self, hooks, name, display, env, hook_frame))

    def _global_env(self) -> dict[str, Any]:
        ex = self.ctx
        with ex.state.lock:  # nodes are added under it: failures() iterates them
            out = ex.global_scope()
            if "workflow.failures" not in out:
                out["workflow.failures"] = json.dumps(ex.failures(), separators=(",", ":"))
        return out


def _outputs_only(scope: Mapping[str, Any]) -> dict[str, Any]:
    """The global outputs in a scope (``workflow.outputs.*``): what a hook adds to its step's frame."""
    return {k: v for k, v in scope.items() if k.startswith("workflow.outputs.")}
