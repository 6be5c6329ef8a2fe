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

Here the engine's change notification (``Executor._changed``) stands in for Argo's reconciliation: every
change re-evaluates the hooks of every node being watched. This module owns ``Lifecycle`` (the watch list
of one run) and ``HookSet`` (the expression hooks of one hooked node or of the workflow).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..argoexpr.expr import ExprError, eval_expr_bool
from ..errors import EngineError
from .state import node_id

if TYPE_CHECKING:
    from .scheduler import Executor, Frame

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
        ex = self.lifecycle.ex
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
                    self.lifecycle.fail(
                        hook_name,
                        f"{self.display}.hooks.{name}",
                        parent_id,
                        f"lifecycle hook {name!r} of {self.display!r}: {err}",
                    )
                    continue
                if fire:
                    del self.pending[name]
                    thread = threading.Thread(
                        target=self._run, args=(name, hook, hook_name, parent_id), name=hook_name, daemon=True
                    )
                    self.threads.append(thread)
                    thread.start()

    def _run(self, name: str, hook: Mapping[str, Any], hook_name: str, parent_id: str) -> None:
        ex = self.lifecycle.ex
        display = f"{self.display}.hooks.{name}"
        try:
            frame = self.frame()
            holder = {k: v for k, v in hook.items() if k != "expression"}
            holder["arguments"] = ex._resolve_args(hook.get("arguments") or {}, frame, f"{display} lifecycle hook")
            ex._safe_run(hook_name, display, holder, frame, parent_id)
        except EngineError as err:  # NotSupportedLocally, or arguments that cannot be resolved
            self.lifecycle.fail(
                hook_name, f"{self.display}.hooks.{name}", parent_id, f"lifecycle hook {name!r} of {self.display!r}: {err}"
            )
            return
        except Exception as err:  # a bug must not leave the hooked step waiting forever
            self.lifecycle.fail(hook_name, display, parent_id, f"lifecycle hook {name!r}: {type(err).__name__}: {err}")
            return
        with ex.state.lock:
            node = ex.state.nodes.get(node_id(ex.name, hook_name))
            if node is not None:
                node["nodeFlag"] = {**(node.get("nodeFlag") or {}), "hooked": True}  # as Argo marks hook nodes
        ex._write_changed()

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
    """The expression hooks being watched in one run (``Executor.lifecycle``)."""

    def __init__(self, ex: Executor) -> None:
        self.ex = ex
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
        ex = self.ex
        with self.lock:
            self.errors.append(message)
        nid = node_id(ex.name, hook_name)
        node = ex.state.nodes.get(nid) or ex._new_node(hook_name, display, "Pod", parent_id, None)
        ex._finish(node, "Error", message)

    # -- the two kinds of hooked things ------------------------------------------------------------
    def for_workflow(self) -> HookSet | None:
        """Watch ``spec.hooks`` (other than exit) over the global variables; None when there are none."""
        ex = self.ex
        hooks = expression_hooks(ex.spec)
        if not hooks:
            return None
        root = node_id(ex.name, ex.name)

        def env() -> dict[str, Any] | None:
            if root not in ex.state.nodes:
                return None
            return self._global_env()

        def frame() -> Frame:
            from .scheduler import Frame

            return Frame(ex.root_scope, self._global_env())

        return self.watch(HookSet(self, hooks, ex.name, ex.name, env, frame))

    def for_step(self, step: Mapping[str, Any], name: str, display: str, frame: Frame) -> HookSet | None:
        """Watch the expression hooks of step/task ``step`` run as node ``name``; None when it has none."""
        hooks = expression_hooks(step)
        if not hooks:
            return None
        ex = self.ex
        nid = node_id(ex.name, name)
        sname = str(step.get("name", ""))

        def env() -> dict[str, Any] | None:
            node = ex.state.nodes.get(nid)
            if node is None:
                return None
            out = {**frame.vars, **ex._global_output_vars()}
            out[f"steps.{sname}.status"] = out[f"tasks.{sname}.status"] = node.get("phase", "")
            return out

        def hook_frame() -> Frame:
            from .scheduler import Frame

            node = dict(ex.state.nodes.get(nid) or {})
            out = Frame(frame.scope, {**frame.vars, **ex._global_output_vars()}, dict(frame.artifacts))
            if node:  # the hooked node's status (and outputs, once it has them), as Argo passes them
                ex._publish(out, f"steps.{sname}", [node], looped=False)
                ex._publish(out, f"tasks.{sname}", [node], looped=False)
            return out

        return self.watch(HookSet(self, hooks, name, display, env, hook_frame))

    def _global_env(self) -> dict[str, Any]:
        ex = self.ex
        with ex.state.lock:  # nodes are added under it: _failures iterates them
            out = {**ex.global_vars, **ex._global_output_vars()}
            if "workflow.failures" not in out:
                out["workflow.failures"] = json.dumps(ex._failures(), separators=(",", ":"))
        return out
