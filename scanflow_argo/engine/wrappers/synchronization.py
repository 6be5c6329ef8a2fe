"""``synchronization`` around a node and around the workflow (Argo's ``workflow/sync``): the node (or the
run) waits Pending with Argo's message until it holds every lock of its block, holds them while it runs
(every retry included, as Argo's Retry node does) and releases them when it completes;
``status.synchronization`` records holders and waiters in Argo's shape. The locks themselves — mutexes
and ConfigMap semaphores shared by every engine of this state folder — are ``features/sync.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...errors import EngineError
from ..core.context import Call
from ..core.inputs import template_vars
from ..core.state import NodeDoc, node_id
from ..core.subst import substitute
from ..features.sync import (
    HeldLocks,
    LockSpec,
    forget_waiting,
    parse_synchronization,
    record_acquired,
    record_released,
    record_waiting,
)
from ..kinds.base import KindContext

__all__ = ["hold_workflow_locks", "release_workflow_locks", "wrap"]


def wrap(ctx: KindContext, call: Call, proceed: Callable[[Call], NodeDoc]) -> NodeDoc:
    """Template-level locks around ``proceed(call)`` (straight through when the template has none)."""
    tmpl, name, display, parent = call.template, call.name, call.display, call.parent
    if not tmpl.get("synchronization"):
        return proceed(call)
    nid = node_id(ctx.name, name)
    if ctx.state.reusable(nid) is not None:
        return proceed(call)  # resume: a pod that already finished takes no lock
    where = call.where
    vars_ = template_vars(ctx.global_scope(), tmpl, call.inputs, ctx.name, name, 0)
    sync = substitute(tmpl["synchronization"], vars_, strict=False, where=where)
    specs = parse_synchronization(sync, ctx.namespace, where)
    holder = f"{ctx.namespace}/{ctx.name}/{nid}"
    kind = ctx.kinds.kind_of(tmpl)
    ntype = "Retry" if tmpl.get("retryStrategy") else (kind.node_type if kind is not None else "Pod")
    placeholder: list[NodeDoc] = []
    waiters_of = ctx.locks.waiters

    def waiting(spec: LockSpec, message: str, holders: list[str]) -> None:
        if not placeholder:
            placeholder.append(ctx.new_node(name, display, ntype, parent, tmpl, phase="Pending"))
        with ctx.state.lock:
            placeholder[0]["message"] = message
            placeholder[0]["synchronizationStatus"] = {"waiting": spec.lock_name}
            for other in specs:
                waiters_of.get(other.lock_name, set()).discard(holder)
            waiters_of.setdefault(spec.lock_name, set()).add(holder)
            record_waiting(ctx.state.status, spec, holders)
        ctx.changed()

    held = ctx.locks.table.acquire(specs, holder, ctx.locks.order, ctx.abort, where, waiting)
    with ctx.state.lock:
        for spec in specs:
            waiters = waiters_of.get(spec.lock_name, set())
            waiters.discard(holder)
            if not waiters:
                forget_waiting(ctx.state.status, spec)
            if held is not None:
                record_acquired(ctx.state.status, spec, holder, still_waiting=bool(waiters))
        if held is not None and placeholder:
            placeholder[0].pop("message", None)  # no longer waiting (Argo clears both)
            placeholder[0].pop("synchronizationStatus", None)
        ctx.state.write()
    if held is None:
        node = placeholder[0] if placeholder else ctx.new_node(name, display, ntype, parent, tmpl, phase="Pending")
        return ctx.finish(node, "Failed", ctx.abort_message or "Stopped")
    try:
        return proceed(call)
    finally:
        held.release()
        with ctx.state.lock:
            for spec in specs:
                record_released(ctx.state.status, spec, holder)
            ctx.state.write()


def hold_workflow_locks(ctx: KindContext, sync_block: Any, global_vars: dict[str, Any]) -> HeldLocks | str:
    """Workflow-level locks: the run is Pending with Argo's message until it holds them all; returns the
    locks held, or why the run ended instead (stopped, or a lock that cannot be taken)."""
    status, holder, where = ctx.state.status, f"{ctx.namespace}/{ctx.name}", "spec.synchronization"
    fresh = ctx.state.previous_phase in (None, "Pending")  # a resumed run keeps its start time

    def waiting(spec: LockSpec, message: str, holders: list[str]) -> None:
        with ctx.state.lock:
            status["phase"], status["message"] = "Pending", message
            if fresh:
                status["startedAt"] = None
            record_waiting(status, spec, holders)
        ctx.changed()

    failure = ""
    held: HeldLocks | None
    try:
        sync = substitute(sync_block, global_vars, strict=False, where=where)
        held = ctx.locks.table.acquire(
            parse_synchronization(sync, ctx.namespace, where), holder, ctx.locks.order, ctx.abort, where, waiting
        )
    except EngineError as err:
        held, failure = None, f"Failed to acquire the synchronization lock. {err}"
    with ctx.state.lock:
        status.pop("synchronization", None)
        if held is None:
            status["phase"], status["message"] = "Failed", failure or ctx.abort_message or "Stopped"
            status["finishedAt"] = ctx.state.now()
        else:
            status["phase"] = "Running"
            status.pop("message", None)
            if fresh:
                status["startedAt"] = ctx.state.now()
            for spec in held.specs:
                record_acquired(status, spec, holder, still_waiting=False)
    ctx.changed()
    return held if held is not None else (failure or ctx.abort_message or "Stopped")


def release_workflow_locks(ctx: KindContext, held: HeldLocks | None) -> None:
    """Release the run's workflow-level locks (also when the run breaks: another run may be waiting)."""
    if held is None:
        return
    held.release()
    with ctx.state.lock:
        for spec in held.specs:
            record_released(ctx.state.status, spec, held.holder)
