"""``steps`` templates: groups run one after another, the steps of a group (and their loop iterations) at
once; a group fails on a failed child without ``continueOn`` and the template stops there (Argo's
``executeSteps``/``executeStepGroup``, ``workflow/controller/steps.go``). Node types: ``Steps``, ``StepGroup``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from ...errors import EngineError
from ..core.context import Call
from ..core.frame import Frame, add_input_artifacts, publish
from ..core.graph import outbound_nodes
from ..core.inputs import inputs_doc
from ..core.state import NodeDoc
from ..core.values import FAILED
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
    """Nothing more than the generic checks (``engine/checks.py`` visits every step's template)."""


def run(ctx: KindContext, call: Call) -> NodeDoc:
    """Run the groups of steps one after another (each group's steps at once) as node ``call.name``."""
    name, display, tmpl, inputs, parent = call.name, call.display, call.template, call.inputs, call.parent
    frame = call.frame  # a copy: outputs of the children go into it
    node = ctx.new_node(name, display, "Steps", parent, tmpl)
    node["inputs"] = inputs_doc(inputs)
    add_input_artifacts(frame, inputs)
    phase, message = "Succeeded", None
    limit = tmpl.get("parallelism")
    gnode: NodeDoc | None = None
    for i, group in enumerate(tmpl.get("steps") or []):
        steps = group if isinstance(group, list) else [group]
        gname = f"{name}[{i}]"
        if gnode is not None:  # steps.go executeSteps: under the previous group's outbound nodes
            ctx.link(gname, _after(ctx, gnode))
        gnode = ctx.new_node(gname, f"[{i}]", "StepGroup", node["id"], None)
        results, done = _run_group(ctx, gname, gnode["id"], steps, frame, limit)
        failed = [(s, n) for s, n in results if n["phase"] in FAILED and not continues(s, n["phase"])]
        if failed and fails_fast(tmpl):
            ctx.finish(gnode, "Failed", FAIL_FAST_MESSAGE)
            phase, message = "Failed", FAIL_FAST_MESSAGE
            break
        ctx.finish(gnode, "Failed" if failed else "Succeeded", failed[0][1].get("message") if failed else None)
        for step, nodes, looped in done:  # executeSteps: the group's outputs join the scope once it completed
            sname = str(step.get("name"))
            publish(frame, f"steps.{sname}", nodes, looped, group=gnode if looped else None)
            if not looped:  # a skipped step's declared outputs, artifacts too
                skipped_outputs(ctx, frame, f"steps.{sname}", step, nodes[0], artifacts=True)
        if failed:
            child = failed[0][1]
            phase = "Failed"
            message = f"child '{child['id']}' failed"
            break
        if ctx.abort.is_set():
            phase, message = "Failed", ctx.abort_message
            break
    if gnode is not None:  # steps.go updateOutboundNodes: those of the last group that started
        with ctx.state.lock:
            node["outboundNodes"] = [o for c in gnode.get("children") or [] for o in outbound_nodes(ctx.state.nodes, c)]
    if phase == "Succeeded":
        try:
            node["outputs"] = template_outputs(ctx, tmpl, frame, f"template {tmpl.get('name')!r}")
        except EngineError as err:
            phase, message = "Error", str(err)
    ctx.daemons.end_scope(node["id"])  # Argo kills a scope's daemons when it completes
    return ctx.finish(node, phase, message)


def _after(ctx: KindContext, group: NodeDoc) -> list[str]:
    """What the next StepGroup hangs under: the outbound nodes of ``group``'s children, or ``group`` itself when
    it has none (an empty ``withParam``: steps.go's corner case)."""
    with ctx.state.lock:
        children = list(group.get("children") or [])
        if not children:
            return [group["id"]]
        return [o for c in children for o in outbound_nodes(ctx.state.nodes, c)]


def _run_group(
    ctx: KindContext, prefix: str, parent_id: str, steps: list[dict[str, Any]], frame: Frame, limit: Any
) -> tuple[list[tuple[dict[str, Any], NodeDoc]], list[tuple[dict[str, Any], list[NodeDoc], bool]]]:
    """Run one steps group: every step (and loop iteration) at once. Returns (step, node) pairs and, per step,
    the step and the nodes whose outputs it publishes (``True`` when it was expanded: a fan-out's aggregated outputs)."""
    jobs: list[tuple[dict[str, Any], str, str, Frame]] = []
    broken: list[tuple[dict[str, Any], NodeDoc]] = []
    expanded: set[str] = set()
    empty: list[tuple[dict[str, Any], list[NodeDoc], bool]] = []
    for step in steps:
        sname = str(step.get("name", ""))
        where = f"step {sname!r}"
        try:
            iterations = expand(step, frame, where)
        except EngineError as err:
            bad = ctx.new_node(f"{prefix}.{sname}", sname, "Skipped", parent_id, None)
            broken.append((step, ctx.finish(bad, "Error", str(err))))
            continue
        if iterations is None:
            jobs.append((step, f"{prefix}.{sname}", sname, Frame(frame.scope, frame.vars, frame.artifacts)))
        elif not iterations:  # steps.go expandStepGroup: an empty list is one Skipped node
            skipped = ctx.new_node(f"{prefix}.{sname}", sname, "Skipped", parent_id, None, phase="Skipped")
            broken.append((step, ctx.finish(skipped, "Skipped", EMPTY_PARAMS)))
            empty.append((step, [skipped], False))  # executeSteps finds it by name: a node of its own
        else:
            expanded.add(sname)
            for suffix, extra in iterations:
                jobs.append(
                    (
                        step,
                        f"{prefix}.{sname}{suffix}",
                        f"{sname}{suffix}",
                        Frame(frame.scope, {**frame.vars, **extra}, frame.artifacts),
                    )
                )
    results = parallel([functools.partial(run_step, ctx, j[0], j[1], j[2], j[3], parent_id) for j in jobs], limit)
    pairs = [(j[0], r) for j, r in zip(jobs, results, strict=True)] + broken
    by_name: dict[str, list[NodeDoc]] = {}
    step_of: dict[str, dict[str, Any]] = {}
    for (step, _n, _d, _f), res in zip(jobs, results, strict=True):
        by_name.setdefault(str(step.get("name")), []).append(res)
        step_of[str(step.get("name"))] = step
    return pairs, [(step_of[sname], nodes, sname in expanded) for sname, nodes in by_name.items()] + empty


KIND = NodeKind("steps", "Steps", check, run)
