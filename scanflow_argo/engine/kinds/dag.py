"""``dag`` templates: tasks start as soon as their ``dependencies``/enhanced ``depends`` allow, ``failFast``
stops new tasks after a failure, ``target`` runs a subset; the DAG's phase is Argo's ``assessDAGPhase``
(``workflow/controller/dag.go``). Node types: ``DAG``, ``TaskGroup`` (a fanned-out task), ``Skipped``.
"""

from __future__ import annotations

import functools
import re
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ...argoexpr.expr import depends_tasks, eval_depends
from ...errors import EngineError
from ..core.context import Call
from ..core.frame import Frame, add_input_artifacts, publish
from ..core.graph import outbound_nodes
from ..core.inputs import inputs_doc
from ..core.state import NodeDoc
from ..core.values import FAILED
from ..features.lifecycle import HookSet
from .base import CheckContext, KindContext, NodeKind
from .calls import (
    EMPTY_PARAMS,
    FAIL_FAST_MESSAGE,
    continues,
    expand,
    fails_fast,
    parallel,
    run_step,
    skipped_outputs,
    template_outputs,
)

__all__ = ["KIND", "check", "run"]


def check(tmpl: Mapping[str, Any], where: str, cc: CheckContext) -> None:
    """Nothing more than the generic checks (``engine/checks.py`` visits every task's template)."""


def run(ctx: KindContext, call: Call) -> NodeDoc:
    """Run the DAG: each task once what it depends on allows it as node ``call.name``."""
    name, display, tmpl, inputs, parent = call.name, call.display, call.template, call.inputs, call.parent
    frame = call.frame  # a copy: outputs of the children go into it
    node = ctx.new_node(name, display, "DAG", parent, tmpl)
    node["inputs"] = inputs_doc(inputs)
    add_input_artifacts(frame, inputs)
    dag = tmpl["dag"]
    tasks = {str(t["name"]): t for t in dag.get("tasks") or []}
    deps = {n: _task_deps(t, tasks) for n, t in tasks.items()}
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
            res = _run_task(ctx, task, f"{name}.{tname}", tname, frame, node["id"], lock)
        except Exception as err:  # an engine fault fails this task, not the run's engine; its traceback goes to its log
            traceback.print_exc(file=sys.stderr)
            res = {"phase": "Error", "message": f"engine error in task {tname!r}: {type(err).__name__}: {err} (see engine.log)"}
        finished(tname, res)

    try:
        with lock:
            while True:
                progressed = False
                stop_new = (fail_fast and failed_any) or ctx.abort.is_set()
                for tname in tasks:
                    if tname not in wanted or tname in phases or tname in running:
                        continue
                    if any(d not in phases for d in deps[tname]):
                        continue
                    if stop_new:
                        continue
                    if deps[tname]:  # dag.go executeDAGTask connectDependencies: under its dependencies' outbound nodes
                        ctx.link(f"{name}.{tname}", _outbound_of(ctx, [results[d] for d in deps[tname]]))
                    try:
                        go = _depends_ok(ctx, tasks[tname], deps[tname], phases, tasks, results)
                    except EngineError as err:
                        phases[tname] = "Error"
                        res = ctx.new_node(f"{name}.{tname}", tname, "Skipped", node["id"], None)
                        results[tname] = ctx.finish(res, "Error", str(err))
                        progressed = True
                        continue
                    if not go:
                        phases[tname] = "Omitted"
                        res = ctx.new_node(f"{name}.{tname}", tname, "Skipped", node["id"], None, phase="Omitted")
                        results[tname] = ctx.finish(res, "Omitted", "omitted: depends condition not met")
                        publish(frame, f"tasks.{tname}", [results[tname]], looped=False)
                        skipped_outputs(ctx, frame, f"tasks.{tname}", tasks[tname], results[tname], artifacts=False)
                        progressed = True
                        continue
                    running[tname] = pool.submit(launch, tname)
                    progressed = True
                if not running and not progressed:
                    break
                if running:
                    lock.wait(0.5)
                    failed_any = failed_any or _dag_phase(tasks, deps, targets, phases, results, final=False)[0] != "Succeeded"
    finally:
        pool.shutdown(wait=True)
    phase, message = _dag_phase(tasks, deps, targets, phases, results)
    # dag.go updateOutboundNodesForTargetTasks: the target tasks' outbound nodes
    node["outboundNodes"] = _outbound_of(ctx, [results[t] for t in targets if t in results])
    if phase in FAILED and fails_fast(tmpl):
        phase, message = "Failed", FAIL_FAST_MESSAGE
    if ctx.abort.is_set() and phase == "Succeeded":
        phase, message = "Failed", ctx.abort_message
    if phase == "Succeeded":
        try:
            node["outputs"] = template_outputs(ctx, tmpl, frame, f"template {tmpl.get('name')!r}")
        except EngineError as err:
            phase, message = "Error", str(err)
    ctx.daemons.end_scope(node["id"])  # Argo kills a scope's daemons when it completes
    return ctx.finish(node, phase, message)


def _outbound_of(ctx: KindContext, done: list[Mapping[str, Any]]) -> list[str]:
    """The outbound nodes (``core/graph.py``) of the nodes of finished tasks, in their order."""
    with ctx.state.lock:
        return [o for res in done if res.get("id") in ctx.state.nodes for o in outbound_nodes(ctx.state.nodes, str(res["id"]))]


def _task_deps(task: Mapping[str, Any], tasks: Mapping[str, Any]) -> list[str]:
    if task.get("depends"):
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
    ctx: KindContext,
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
    states: dict[str, Any] = {}
    for d in deps:
        res = results.get(d) or {}
        if res.get("type") == "TaskGroup":  # its expansions: an empty group may hold tasks hung under it too
            prefix = f"{res.get('name')}("
            kids = [
                ctx.state.nodes[c].get("phase", "")
                for c in res.get("children") or []
                if c in ctx.state.nodes and str(ctx.state.nodes[c].get("name", "")).startswith(prefix)
            ]
            states[d] = {"phase": phases[d], "children": kids}
        elif phases[d] == "Running":  # a daemon: done for its dependants while it runs
            states[d] = {"phase": res.get("phase", "Running"), "daemoned": bool(res.get("daemoned"))}
        else:
            states[d] = phases[d]
    continue_on = {d: tasks[d]["continueOn"] for d in deps if tasks[d].get("continueOn")}
    return eval_depends(expr, states, continue_on=continue_on or None)


def _dag_phase(
    tasks: Mapping[str, Any],
    deps: Mapping[str, list[str]],
    targets: list[str],
    phases: Mapping[str, str],
    results: Mapping[str, Mapping[str, Any]],
    final: bool = True,
) -> tuple[str, str | None]:
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
        if b in FAILED and not continues(tasks[t], b):
            failed = [n for n in tasks if phases.get(n) in FAILED]
            culprit = failed[0] if failed else t
            res = results.get(culprit) or {}
            if "id" not in res and res.get("message"):  # no node to point at: an engine fault (launch)
                return b, f"child '{culprit}' failed: {res['message']}"
            return b, f"child '{res.get('id', culprit)}' failed"
    return "Succeeded", None


def _run_task(
    ctx: KindContext, task: dict[str, Any], name: str, display: str, frame: Frame, parent_id: str, lock: threading.Condition
) -> dict[str, Any]:
    where = f"task {display!r}"
    tname = str(task["name"])
    with lock:
        snapshot = Frame(frame.scope, dict(frame.vars), dict(frame.artifacts))
    try:
        iterations = expand(task, snapshot, where)
    except EngineError as err:
        node = ctx.new_node(name, display, "Pod", parent_id, None)
        res = ctx.finish(node, "Error", str(err))
        with lock:
            publish(frame, f"tasks.{tname}", [res], looped=False)
        return res
    if not iterations:
        if iterations is None:
            res = run_step(ctx, task, name, display, snapshot, parent_id)
        else:  # dag.go executeDAGTask: a task whose loop has no items is one Skipped node
            res = ctx.finish(ctx.new_node(name, display, "Skipped", parent_id, None, phase="Skipped"), "Skipped", EMPTY_PARAMS)
        with lock:
            publish(frame, f"tasks.{tname}", [res], looped=False)
            # dag.go buildLocalScopeFromTask: a skipped task's declared outputs (no artifacts in a DAG)
            skipped_outputs(ctx, frame, f"tasks.{tname}", task, res, artifacts=False)
        return res
    hooks: HookSet | None = ctx.lifecycle.for_step(task, name, display, snapshot)  # on the TaskGroup, as Argo
    each = {**task, "hooks": {k: v for k, v in (task.get("hooks") or {}).items() if k == "exit"}}
    try:
        group = ctx.new_node(name, display, "TaskGroup", parent_id, None)
        calls: list[Callable[[], NodeDoc]] = []
        for suffix, extra in iterations:
            sub = Frame(snapshot.scope, {**snapshot.vars, **extra}, snapshot.artifacts)
            calls.append(functools.partial(run_step, ctx, each, f"{name}{suffix}", f"{display}{suffix}", sub, group["id"]))
        children = parallel(calls, task.get("parallelism"))
        bad = [c for c in children if c["phase"] in FAILED and not continues(task, c["phase"])]
        res = ctx.finish(group, "Failed" if bad else "Succeeded", bad[0].get("message") if bad else None)
    finally:
        if hooks is not None:
            ctx.lifecycle.finish(hooks)
    with lock:
        publish(frame, f"tasks.{tname}", children, looped=True, group=res)
    return res


KIND = NodeKind("dag", "DAG", check, run)
