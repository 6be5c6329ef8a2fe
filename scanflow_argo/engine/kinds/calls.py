"""How steps and DAG tasks call templates — the parts ``steps`` and ``dag`` share: loops (``withItems``,
``withParam``, ``withSequence``: Argo's ``expandStepGroup``/``expandTask`` and ``expandSequence`` in
``workflow/controller/steps.go``, ``dag.go``, ``operator.go``), ``when`` (govaluate, ``shouldExecute``),
arguments, lifecycle hooks and step-level exit handlers around each call, Skipped nodes, ``continueOn``,
and a steps/DAG template's own outputs (``valueFrom.parameter``/``expression``, artifacts ``from``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ...argoexpr.expr import eval_expr, eval_when, render_param
from ...argoexpr.golang import go_atoi, sprintf
from ...errors import EngineError, NotSupportedLocally
from ..core.frame import Frame, publish, resolve_args
from ..core.inputs import artifact_source
from ..core.manifest import resolve_template
from ..core.state import NodeDoc
from ..core.subst import ABSENT, ABSENT_HINT, absent_ref, expand_scope, substitute, substitute_str, tag_body
from ..core.values import fmt_item, item_label
from .base import KindContext

__all__ = [
    "EMPTY_PARAMS",
    "FAIL_FAST_MESSAGE",
    "continues",
    "dynamic_ref",
    "expand",
    "fails_fast",
    "parallel",
    "run_step",
    "skipped_outputs",
    "template_outputs",
]

FAIL_FAST_MESSAGE = "template has failed or errored children and failFast enabled"
"""Argo's message for a steps/DAG template with ``failFast: true`` whose children failed, once none runs
(``workflow/controller/operator.go`` ``checkParallelism``; the steps' last StepGroup gets it too)."""

EMPTY_PARAMS = "Skipped, empty params"
"""The message of the Skipped node of a step/task whose loop has no items (``steps.go`` ``expandStepGroup``,
``dag.go`` ``executeDAGTask``)."""


def fails_fast(tmpl: Mapping[str, Any]) -> bool:
    """The template's own ``failFast`` (``Template.IsFailFast``: set and true), not ``dag.failFast``."""
    return tmpl.get("failFast") is True or str(tmpl.get("failFast")).lower() == "true"


_LOCAL_SCOPE = ("tasks.", "steps.", "inputs.", "workflow.outputs.")
"""What Argo's local scope of a step or task holds (``wfScope``, ``workflow/controller/scope.go``): the calling
template's inputs, the outputs of the steps/tasks before it, the workflow's outputs so far — not ``item``."""


def _global_outputs(ctx: KindContext) -> dict[str, Any]:
    """``workflow.outputs.parameters.*`` so far: a step sees the global outputs of the steps before it."""
    return {k: v for k, v in ctx.global_scope().items() if k.startswith("workflow.outputs.")}


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


def continues(task: Mapping[str, Any], phase: str) -> bool:
    """Argo's ``continueOn``: a Failed/Error child that does not fail its parent."""
    cont = task.get("continueOn") or {}
    return bool((phase == "Failed" and cont.get("failed")) or (phase == "Error" and cont.get("error")))


def expand(task: Mapping[str, Any], frame: Frame, where: str) -> list[tuple[str, dict[str, Any]]] | None:
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
        start = _atoi(seq.get("start", 0), f"{where} withSequence.start")
        if "count" in seq:  # expandSequence: end = start + count - 1, so a negative count counts down past start
            count = _atoi(seq["count"], f"{where} withSequence.count")
            end = start + count - 1 if count else None
        else:
            end = _atoi(seq.get("end", 0), f"{where} withSequence.end")
        step = 1 if end is not None and end >= start else -1
        values = [] if end is None else list(range(start, end + step, step))
        items = [_sequence_item(sprintf(fmt, v), where) for v in values]
    if items is None:
        return None
    out = []
    for i, item in enumerate(items):
        extra: dict[str, Any] = {"item": fmt_item(item)}
        if isinstance(item, dict):
            for k, v in item.items():
                extra[f"item.{k}"] = fmt_item(v)
        out.append((f"({i}:{item_label(item)})", extra))
    return out


def parallel(calls: list[Callable[[], NodeDoc]], limit: Any) -> list[NodeDoc]:
    """Run the calls at once (at most ``limit``, a template's ``parallelism``), results in order."""
    if len(calls) == 1:
        return [calls[0]()]
    workers = int(limit) if limit else len(calls)
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(calls)))) as pool:
        return list(pool.map(lambda c: c(), calls))


def run_step(ctx: KindContext, step: dict[str, Any], name: str, display: str, frame: Frame, parent_id: str) -> NodeDoc:
    """One step or task as node ``name``: its lifecycle hooks watched, `when`, arguments, the call, its exit handler."""
    hooks = ctx.lifecycle.for_step(step, name, display, frame)
    try:
        result = _run_step_body(ctx, step, name, display, frame, parent_id)
    finally:
        if hooks is not None:  # the step completes once its fired lifecycle hooks did
            ctx.lifecycle.finish(hooks)
    _exit_hook(ctx, step, name, display, result, frame, parent_id)
    return result


def _run_step_body(ctx: KindContext, step: dict[str, Any], name: str, display: str, frame: Frame, parent_id: str) -> NodeDoc:
    where = f"step {display!r}"
    frame = Frame(frame.scope, {**frame.vars, **_global_outputs(ctx)}, {**frame.artifacts, **ctx.global_artifacts()})
    try:
        # steps.go resolveReferences / dag.go resolveDependencyReferences: spec.volumes first, with the local scope
        ctx.volumes.resolve_references({k: v for k, v in frame.vars.items() if k.startswith(_LOCAL_SCOPE)})
        if step.get("when") is not None:
            cond = substitute_str(str(step["when"]), frame.vars, where=f"{where} when")
            if not eval_when(cond):
                return _skipped(ctx, name, display, step, frame, parent_id, f"when '{cond}' evaluated false")
        holder = dynamic_ref(step, frame)
        holder["arguments"] = resolve_args(step.get("arguments") or {}, frame, where)
    except NotSupportedLocally:
        raise
    except EngineError as err:
        node = ctx.new_node(name, display, "Pod", parent_id, None)
        return ctx.finish(node, "Error", str(err))
    return ctx.run_child(name, display, holder, frame, parent_id)


def _exit_hook(
    ctx: KindContext, step: Mapping[str, Any], name: str, display: str, result: Mapping[str, Any], frame: Frame, parent_id: str
) -> None:
    hook = (step.get("hooks") or {}).get("exit") or ({"template": step["onExit"]} if step.get("onExit") else None)
    if not hook:
        return
    hframe = Frame(frame.scope, dict(frame.vars), dict(frame.artifacts))
    publish(hframe, f"steps.{step.get('name')}", [dict(result)], looped=False)
    publish(hframe, f"tasks.{step.get('name')}", [dict(result)], looped=False)
    holder = dict(hook)
    ctx.flag(f"{name}.onExit", hooked=True)  # exit_handler.go runOnExitNode: NodeFlag{Hooked: true}
    if result.get("id"):  # runOnExitNode: addChildNode(parentNode.Name, onExitNodeName), inside the same boundary
        ctx.link(f"{name}.onExit", [str(result["id"])])
    try:
        holder["arguments"] = resolve_args(hook.get("arguments") or {}, hframe, f"{display} exit hook", strict=False)
    except EngineError as err:
        node = ctx.new_node(f"{name}.onExit", f"{display}.onExit", "Pod", parent_id, None)
        ctx.finish(node, "Error", str(err))
        return
    ctx.run_child(f"{name}.onExit", f"{display}.onExit", holder, hframe, parent_id)


def dynamic_ref(step: Mapping[str, Any], frame: Frame) -> dict[str, Any]:
    """A copy of the step/task whose ``templateRef`` names are filled from its scope: a name taken from
    ``{{item.…}}`` is known per expanded step only (Argo's ``processItem`` substitutes the whole step,
    ``workflow/controller/steps.go`` ``expandStep``, ``dag.go`` ``expandTask``; the validator lets such a
    reference through, ``validate.go`` ``validateTemplateHolder``). A name that names nothing then fails
    this node only, when its template is resolved."""
    holder = dict(step)
    ref = step.get("templateRef")
    if isinstance(ref, Mapping) and "{{" in f"{ref.get('name', '')}{ref.get('template', '')}":
        holder["templateRef"] = substitute(dict(ref), frame.vars, strict=False)
    return holder


def _skipped(
    ctx: KindContext, name: str, display: str, step: Mapping[str, Any], frame: Frame, parent_id: str, message: str
) -> NodeDoc:
    """A step/task whose ``when`` is false: a Skipped node without outputs (Argo's ``initializeNode`` in
    ``executeStepGroup``/``executeDAGTask``); what it declared reaches its consumers through ``skipped_outputs``."""
    node = ctx.new_node(name, display, "Skipped", parent_id, None, phase="Skipped")
    try:
        tmpl, _ = resolve_template(dynamic_ref(step, frame), frame.scope, ctx.store, f"step {display!r}")
        node["templateName"] = tmpl.get("name")
    except EngineError:
        pass
    return ctx.finish(node, "Skipped", message)


def skipped_outputs(
    ctx: KindContext, frame: Frame, prefix: str, holder: Mapping[str, Any], node: Mapping[str, Any], artifacts: bool
) -> None:
    """Put what a Skipped/Omitted node that produced nothing declared into ``frame`` as ``prefix.outputs.*``:
    each output parameter's ``valueFrom.default``, else ``ABSENT`` (an absent optional: nil to expressions,
    an error to a plain tag, a dropped argument); with ``artifacts`` (steps, not DAGs) its output artifacts
    as artifacts without location. Argo's ``addSkippedNodeOutputsToScope`` (``workflow/controller/scope.go``),
    called by ``steps.go`` ``executeSteps`` and ``dag.go`` ``buildLocalScopeFromTask``/``executeDAG``; a
    template that cannot be resolved (a dynamic ``templateRef``) adds nothing, as there."""
    if node.get("phase") not in ("Skipped", "Omitted") or node.get("outputs"):
        return
    try:
        tmpl, _ = resolve_template(dynamic_ref(holder, frame), frame.scope, ctx.store, f"{prefix} outputs")
    except EngineError:
        return
    outs = tmpl.get("outputs") or {}
    for p in outs.get("parameters") or []:
        vf = p.get("valueFrom") or {}
        frame.vars[f"{prefix}.outputs.parameters.{p['name']}"] = fmt_item(vf["default"]) if "default" in vf else ABSENT
    if artifacts:
        for a in outs.get("artifacts") or []:
            frame.artifacts[f"{prefix}.outputs.artifacts.{a['name']}"] = {}


def template_outputs(ctx: KindContext, tmpl: Mapping[str, Any], frame: Frame, where: str) -> dict[str, Any]:
    """Outputs of a steps/DAG template: parameters from ``valueFrom.parameter``/``expression``, artifacts ``from``."""
    outs = tmpl.get("outputs") or {}
    out: dict[str, Any] = {}
    params = []
    for p in outs.get("parameters") or []:
        vf = p.get("valueFrom") or {}
        try:
            if "parameter" in vf and absent_ref(str(vf["parameter"]).strip(), frame.vars):
                if "default" not in vf:  # operator.go getTemplateOutputsFromScope: an unhandled absent optional
                    raise EngineError(
                        f"{where}: output parameter {p['name']!r}: {vf['parameter']!r} is an absent optional "
                        f"(skipped/omitted node output with no default): {ABSENT_HINT}"
                    )
                value = fmt_item(vf["default"])
            elif "parameter" in vf:
                value = substitute_str(str(vf["parameter"]), frame.vars, where=f"{where} output {p['name']!r}")
            elif "expression" in vf:
                result = eval_expr(str(vf["expression"]), expand_scope(frame.vars), clock=ctx.clock)
                if result is None:  # scope.go resolveParameter: nil (an absent optional without ??) is an error
                    raise EngineError(f"{where}: output {p['name']!r}: failed to evaluate expression {vf['expression']!r}")
                value = render_param(result)
            elif "value" in p:
                value = substitute_str(fmt_item(p["value"]), frame.vars, where=where)
            else:
                continue
        except EngineError:  # operator.go getTemplateOutputsFromScope: a failed resolution takes the default
            if "default" not in vf:
                raise
            value = fmt_item(vf["default"])
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
            src = frame.artifacts.get(tag_body(str(a["from"])))
        elif "fromExpression" in a:
            src = artifact_source(a, frame, f"{where} output artifact {a.get('name')!r}")
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
    ctx.register_globals(tmpl, out)
    return out
