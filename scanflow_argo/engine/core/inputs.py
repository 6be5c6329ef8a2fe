"""A template's inputs and variables when it is called: Argo's ``ProcessArgs``/``substituteParams``
(``workflow/common/util.go``): parameters from arguments, defaults, ``valueFrom.configMapKeyRef`` and
``enum``; artifacts from ``from``/``fromExpression``/``raw``/a key of the local repository; then the
variables a template body sees (``inputs.*``, ``outputs.*.path``, ``retries``, ``node.name``, ``pod.name``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from ...argoexpr.expr import eval_expr
from ...errors import EngineError
from .configstore import CONFIGMAPS
from .frame import Frame
from .state import node_id
from .subst import ABSENT_HINT, expand_scope, substitute, substitute_str, tag_body
from .values import fmt_item

__all__ = ["artifact_source", "inputs_doc", "param_value", "resolve_inputs", "template_vars"]


class LocalRefs(Protocol):
    """Where a parameter's ``valueFrom.configMapKeyRef`` is read: the run's namespace's ConfigMaps."""

    def local_ref(self, kind: str, ref: Mapping[str, Any], what: str) -> str | None:
        """The key's value, or None when the run's namespace has no such ConfigMap or key."""
        ...

    def ref_missing(self, kind: str, ref: Mapping[str, Any]) -> str:
        """Why the key is not there (naming the run's namespace) and how to put it there."""
        ...


def param_value(
    p: Mapping[str, Any], what: str, allow_missing: bool, refs: LocalRefs, scope: Mapping[str, Any] | None = None
) -> str | None:
    """A parameter's value: ``value``, else ``valueFrom.configMapKeyRef`` (``refs``: the run's namespace's), else a
    default.

    The ConfigMap's ``name`` and ``key`` are substituted with ``scope`` (the global variables) first, as Argo's
    ``substituteAndGetConfigMapValue`` (``workflow/common/util.go``) does before it reads the ConfigMap in the
    workflow's namespace; a key found nowhere, with no default, is its error ``unable to retrieve … from ConfigMap``."""
    if "value" in p:
        return fmt_item(p["value"])
    vf = p.get("valueFrom") or {}
    ref: Mapping[str, Any] | None = None
    if "configMapKeyRef" in vf:
        ref = vf["configMapKeyRef"]
        if scope is not None:
            ref = {**ref, **substitute({k: ref[k] for k in ("name", "key") if k in ref}, scope, where=what)}
        found = refs.local_ref(CONFIGMAPS, ref, what)
        if found is not None:
            return found
        if ref.get("optional") and "default" not in p and "default" not in vf:
            return ""
    if "default" in p:
        return fmt_item(p["default"])
    if "default" in vf:
        return fmt_item(vf["default"])
    if ref is not None:
        raise EngineError(
            f"{what}: unable to retrieve inputs.parameters.{p.get('name')} from ConfigMap: {refs.ref_missing(CONFIGMAPS, ref)}"
        )
    if allow_missing:
        return None
    raise EngineError(f"{what} has no value: pass it with -p {p.get('name')}=VALUE")


def artifact_source(art: Mapping[str, Any], frame: Frame, what: str) -> dict[str, Any] | None:
    """Where an input artifact comes from: a stored artifact, raw data, or nothing (optional)."""
    if "from" in art:
        ref = str(art["from"]).strip()
        found = frame.artifacts.get(tag_body(ref))
        if found is None:
            if art.get("optional"):
                return None
            raise EngineError(f"{what}: {ref} does not name an artifact available here")
        return found or None  # {}: an optional input that was not supplied, passed on (it has no location)
    if "fromExpression" in art:
        value = eval_expr(str(art["fromExpression"]), expand_scope({**frame.vars, **frame.artifacts}))
        return value if isinstance(value, dict) and {"local", "http", "artifactory"} & set(value) else None
    if "raw" in art:
        return {"raw": str((art["raw"] or {}).get("data", ""))}
    for kind in ("http", "artifactory"):  # downloaded when the pod starts (features/artifacts.py)
        if isinstance(art.get(kind), Mapping):
            return {kind: dict(art[kind])}
    if "s3" in art and set(art["s3"] or {}) <= {"key"}:
        return {"local": {"key": str(art["s3"]["key"])}}
    if "local" in art:
        return {"local": art["local"]}
    return None


def resolve_inputs(
    tmpl: Mapping[str, Any],
    args: Mapping[str, Any],
    frame: Frame,
    where: str,
    global_scope: Callable[[], dict[str, Any]],
    refs: LocalRefs,
) -> dict[str, Any]:
    """The template's inputs (``{"parameters": [...], "artifacts": [...]}``) from the call's arguments;
    defaults may use global variables (``global_scope``)."""
    given = {p["name"]: p for p in args.get("parameters") or [] if "name" in p}
    params: list[dict[str, Any]] = []
    templated: list[int] = []  # the parameters whose value is the template's own text, substituted below
    globals_ = global_scope()
    for p in (tmpl.get("inputs") or {}).get("parameters") or []:
        value: str | None = None
        if p["name"] in given and not given[p["name"]].get("_absent"):
            value = param_value(given[p["name"]], f"{where} argument {p['name']!r}", True, refs, globals_)
        if value is None:
            value = param_value(p, f"{where} input {p['name']!r}", True, refs, globals_)
            if value is not None and "{{" in value:
                templated.append(len(params))
        if value is None and given.get(p["name"], {}).get("_absent"):  # ProcessArgs (workflow/common/util.go)
            raise EngineError(
                f"{where}: inputs.parameters.{p['name']}: argument references an absent optional "
                f"(skipped/omitted node output with no default): {ABSENT_HINT}"
            )
        if value is None:
            raise EngineError(f"{where}: inputs.parameters.{p['name']} was not supplied (give it an argument or a default)")
        params.append({"name": p["name"], "value": value, "enum": p.get("enum")})
    # workflow/common/util.go SubstituteParams: the globals first (what they cannot resolve stays), then the
    # inputs as they are after that pass, so one input's value may read another (`{{= inputs.parameters.a … }}`)
    for i in templated:
        params[i]["value"] = substitute_str(params[i]["value"], globals_, strict=False)
    scope = {**globals_, **{f"inputs.parameters.{p['name']}": p["value"] for p in params}}
    for i in templated:
        params[i]["value"] = substitute_str(params[i]["value"], scope, where=f"{where} input {params[i]['name']!r}")
    for p in params:
        enum = p.pop("enum")
        if enum is not None and p["value"] not in [fmt_item(e) for e in enum]:
            raise EngineError(f"{where}: inputs.parameters.{p['name']} = {p['value']!r} is not one of {enum}")
    given_arts = {a["name"]: a for a in args.get("artifacts") or [] if "name" in a}
    arts = []
    for a in (tmpl.get("inputs") or {}).get("artifacts") or []:
        source = given_arts.get(a["name"], {})
        own = {k: v for k, v in a.items() if k not in ("from", "fromExpression")}
        if "{{" in json.dumps(own):
            scope = global_scope()
            scope.update({f"inputs.parameters.{p['name']}": p["value"] for p in params})
            own = substitute(own, scope, where=f"{where} input artifact {a['name']!r}")
        merged = {**a, **own, **{k: v for k, v in source.items() if k != "path"}}
        record = artifact_source(merged, frame, f"{where} input artifact {a['name']!r}")
        if record is not None and merged.get("subPath"):
            record = {**record, "subPath": str(merged["subPath"])}
        if record is None and not a.get("optional"):
            raise EngineError(
                f"{where}: input artifact {a['name']!r} was not supplied (pass it with from/raw, or mark it optional)"
            )
        arts.append(
            {
                "name": a["name"],
                "path": a.get("path"),
                "mode": a.get("mode"),
                "optional": bool(a.get("optional")),
                "archive": merged.get("archive"),
                "source": record,
            }
        )
    return {"parameters": params, "artifacts": arts}


def template_vars(
    global_scope: Mapping[str, Any], tmpl: Mapping[str, Any], inputs: Mapping[str, Any], workflow: str, name: str, retries: int
) -> dict[str, Any]:
    """The variables a template's body sees when it runs as node ``name`` (attempt ``retries``)."""
    vars_ = dict(global_scope)
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
    vars_["pod.name"] = f"{workflow}-{tmpl.get('name', 'pod')}-{node_id(workflow, name).rsplit('-', 1)[-1]}"
    return vars_


def inputs_doc(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """A node's ``inputs`` record (artifact sources are not shown)."""
    doc: dict[str, Any] = {}
    if inputs["parameters"]:
        doc["parameters"] = [dict(p) for p in inputs["parameters"]]
    if inputs["artifacts"]:
        doc["artifacts"] = [{"name": a["name"], "path": a.get("path")} for a in inputs["artifacts"]]
    return doc
