"""What a template invocation sees: its ``Frame`` (template scope, variables, artifact references), and
how a finished step or task becomes variables of its frame (``steps.X.*``/``tasks.X.*``, Argo's scope in
``workflow/controller/scope.go`` and ``operator.go`` ``processNodeOutputs``), and how a call's arguments
are resolved against it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...argoexpr.errors import Fail
from ...argoexpr.golang import from_json, go_json
from ...errors import EngineError
from .manifest import TemplateScope
from .subst import Unresolved, absent_ref, substitute, substitute_str, tag_body
from .values import DAEMON_IP, FAILED, HOST_NODE_NAME, fmt_item, json_or_str

__all__ = ["Frame", "add_input_artifacts", "aggregated_values", "publish", "resolve_args"]


@dataclass
class Frame:
    """What a template invocation sees: its template scope and variables."""

    scope: TemplateScope
    vars: dict[str, Any]
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Artifact references by variable name (``tasks.A.outputs.artifacts.x``) → artifact record."""

    def copy(self) -> Frame:
        return Frame(self.scope, dict(self.vars), dict(self.artifacts))


def add_input_artifacts(frame: Frame, inputs: Mapping[str, Any]) -> None:
    """A steps/DAG template's input artifacts become ``inputs.artifacts.<name>`` references of its frame; an
    optional one that was not supplied too, as an artifact without location (Argo puts the input itself in the
    scope: passed on, the consumer's optional input is then skipped; e2e TestMissingStepsInUI)."""
    for a in inputs["artifacts"]:
        if a.get("source") is not None:
            frame.artifacts[f"inputs.artifacts.{a['name']}"] = a["source"]
        elif a.get("optional"):
            frame.artifacts[f"inputs.artifacts.{a['name']}"] = {}


def aggregated_values(values: Sequence[str]) -> str:
    """``{{steps.X.outputs.parameters.p}}`` of a fan-out: the JSON list of the values its children produced
    (``workflow/controller/operator.go`` ``aggregatedJSONValueList``/``tryJSONUnmarshal``): decoded only when
    every value is a JSON list or map, else the strings as they were read (``["1","2"]``, never ``[1,2]``)."""
    decoded: list[Any] = []
    for value in values:
        try:
            item = from_json(value)
        except Fail:
            return go_json(list(values))
        if not isinstance(item, (list, dict)):
            return go_json(list(values))
        decoded.append(item)
    return go_json(decoded)


def _node_ref(v: dict[str, Any], prefix: str, n: Mapping[str, Any]) -> None:
    """``{{steps.X.id/status/startedAt/finishedAt}}`` of one node (``operator.go`` ``buildLocalScope``)."""
    v[f"{prefix}.status"] = n.get("phase", "")
    v[f"{prefix}.id"] = n.get("id", "")
    v[f"{prefix}.startedAt"] = n.get("startedAt") or ""
    v[f"{prefix}.finishedAt"] = n.get("finishedAt") or ""
    if n.get("type") in ("Pod", "Retry") and n.get("startedAt"):
        # buildLocalScope: node.HostNodeName, the pod's spec.nodeName once scheduled (here, this machine)
        v[f"{prefix}.hostNodeName"] = HOST_NODE_NAME


def publish(
    frame: Frame, prefix: str, nodes: Sequence[Mapping[str, Any]], looped: bool, group: Mapping[str, Any] | None = None
) -> None:
    """Make a finished step/task's outputs visible as ``steps.X.*`` / ``tasks.X.*`` (a fan-out's aggregated).

    A fan-out's ``id``/``status``/``startedAt``/``finishedAt`` are those of ``group``, the node Argo gives
    ``buildLocalScope`` for it: the StepGroup of an expanded step (``steps.go`` ``executeSteps``), the
    TaskGroup of an expanded task (``dag.go`` ``buildLocalScopeFromTask``)."""
    v = frame.vars
    if not looped:
        n = nodes[0]
        outs = n.get("outputs") or {}
        _node_ref(v, prefix, n)
        if n.get("daemoned"):
            # operator.go records a daemoned node's pod IP (steps.go buildLocalScope: steps.X.ip); locally it is
            # this machine's, unless the daemon has its own network (engine/features/podnet.py)
            v[f"{prefix}.ip"] = n.get("podIP") or DAEMON_IP
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
            frame.artifacts[f"{prefix}.outputs.artifacts.{a['name']}"] = {
                k: a[k] for k in ("local", "http", "artifactory") if k in a
            }
        return
    ok = [n for n in nodes if n.get("phase") == "Succeeded"]
    results = [json_or_str(n["outputs"]["result"]) for n in ok if "result" in (n.get("outputs") or {})]
    v[f"{prefix}.outputs.result"] = json.dumps(results, separators=(",", ":"))
    plist: list[dict[str, str]] = []
    by_param: dict[str, list[str]] = {}
    for n in ok:  # processAggregateNodeOutputs: every value as the text it was read (Value.String())
        ps = (n.get("outputs") or {}).get("parameters") or []
        if ps:
            plist.append({p["name"]: p["value"] for p in ps})
        for p in ps:
            by_param.setdefault(p["name"], []).append(p["value"])
    v[f"{prefix}.outputs.parameters"] = go_json(plist)
    for pname, values in by_param.items():
        v[f"{prefix}.outputs.parameters.{pname}"] = aggregated_values(values)
    if group is not None:
        _node_ref(v, prefix, group)
        return
    phases = {n.get("phase") for n in nodes}
    v[f"{prefix}.status"] = (
        "Failed" if phases & set(FAILED) else ("Succeeded" if ok else (nodes[0].get("phase") if nodes else "Skipped"))
    )


def _refers_to_skipped(tag: str, frame: Frame) -> bool:
    m = re.match(r"(tasks|steps)\.([^.]+)\.outputs\.", tag)
    return m is not None and frame.vars.get(f"{m.group(1)}.{m.group(2)}.status") in ("Skipped", "Omitted")


def resolve_args(args: Mapping[str, Any], frame: Frame, where: str, strict: bool = True) -> dict[str, Any]:
    """Substitute step/task arguments. A parameter that is one pure reference to an absent optional (a
    skipped/omitted node's output with no default) is dropped, marked ``_absent``, so the consumer's input
    default applies (Argo's ``markAbsentOptionalArgs``, ``workflow/controller/scope.go``, read by
    ``ProcessArgs``, ``workflow/common/util.go``); anywhere else an absent optional fails the call
    (``subst.AbsentOptional``), in the other fields of an artifact argument (``subPath``) too.
    ``strict=False`` (an exit hook's arguments: ``workflow/controller/exit_handler.go``
    ``resolveExitTmplArgument`` substitutes with ``ReplaceStrictAny`` allowing unresolved tags) leaves any other
    unknown tag as it is written."""
    out: dict[str, Any] = {}
    params = []
    for p in args.get("parameters") or []:
        p = dict(p)
        if "value" in p and absent_ref(fmt_item(p["value"]), frame.vars):
            p = {"name": p.get("name"), "_absent": True}
        elif "value" in p:
            try:
                p["value"] = substitute_str(fmt_item(p["value"]), frame.vars, where=f"{where} argument {p.get('name')!r}")
            except Unresolved as err:
                if _refers_to_skipped(err.tag, frame):
                    p = {"name": p.get("name"), "_absent": True}
                elif strict:
                    raise
                else:
                    p["value"] = substitute_str(fmt_item(p["value"]), frame.vars, strict=False)
        params.append(p)
    if params:
        out["parameters"] = params
    arts = []
    for a in args.get("artifacts") or []:
        a = dict(a)
        if "from" not in a:
            a = substitute(a, frame.vars, where=f"{where} artifact {a.get('name')!r}")
        else:
            key = substitute_str(tag_body(str(a["from"])), frame.vars, strict=False)
            if key not in frame.artifacts and not a.get("optional"):
                raise EngineError(f"{where}: artifact {a.get('name')!r} from {a['from']}: no such artifact here")
            rest = {k: v for k, v in a.items() if k != "from"}  # subPath… (dag.go resolveDependencyReferences)
            a = {
                **substitute(rest, frame.vars, strict=False, where=f"{where} artifact {a.get('name')!r}"),
                "from": "{{" + key + "}}",
            }
        arts.append(a)
    if arts:
        out["artifacts"] = arts
    return out
