"""``resource`` templates: apply a manifest where the run's platform keeps its objects, through an injected
``ResourceApplier`` (the local platform wires itself in: ``scanflow_argo.platform.local_engine``), and read
output parameters from the applied object with ``valueFrom.jsonPath`` (Argo's executor runs ``kubectl get
-o jsonpath=…``: ``workflow/executor/resource.go`` ``SaveResourceParameters``).

Locally: ``create``/``apply``/``patch`` of a SeldonDeployment, ``create``/``apply`` of a Workflow and of a
PersistentVolumeClaim (a folder the run's pods then mount by its name). A manifest without a namespace lands in
the run's (kubectl in the pod uses the pod's namespace), and ``setOwnerReference`` makes the run its owner
(``workflow/controller/operator.go`` ``executeResource``: ``metav1.NewControllerRef`` of the Workflow), so it
goes with the run. A Workflow's ``successCondition``/``failureCondition`` are waited for as Argo's executor
does (``WaitResource``/``matchConditions``): label-selector requirements (``argoexpr/labels.py``) over the
object's fields read as gjson reads them, polled until a failure requirement matches (the node fails with
``failure condition '{status.phase == [Failed]}' evaluated true``) or every success requirement does (with
none, the first poll succeeds); the outputs are then read from the object as it is. What cannot work is
refused before anything runs: other kinds and actions, conditions on other kinds, ``manifestFrom``,
``flags``, output artifacts, outputs other than ``jsonPath`` (a ``jqFilter`` among them) and JSONPath
beyond one ``{.field.path[0]}`` expression.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from ...argoexpr.errors import Fail
from ...argoexpr.golang import go_json
from ...argoexpr.jsonpath import jsonpath_query
from ...argoexpr.labels import LabelSelector, gjson_lookup
from ...errors import EngineError, InvalidRequest, NotSupportedLocally, ScanflowError
from ..core.context import Call
from ..core.inputs import inputs_doc
from ..core.manifest import load_yaml
from ..core.state import NodeDoc
from ..core.values import fmt_item
from .base import CheckContext, KindContext, NodeKind
from .pod import DEADLINE

__all__ = ["ALLOWED", "KIND", "POLL_SECONDS", "check", "json_path", "run", "wait_conditions"]

ALLOWED = {
    "SeldonDeployment": ("create", "apply", "patch"),
    "Workflow": ("create", "apply"),
    "PersistentVolumeClaim": ("create", "apply"),
}
"""The kinds and actions this machine can apply (its platform keeps these objects)."""
_JSONPATH = re.compile(r"\{\s*\$?(\.[^{}]*)\}")
_UNSUPPORTED = ("manifestFrom", "flags")
_CONDITIONS = ("successCondition", "failureCondition")
POLL_SECONDS = 0.5
"""Between two reads of the object while conditions are waited for (Argo: ``RESOURCE_STATE_CHECK_INTERVAL``, 5s)."""


def _kind_of(manifest: Any) -> str:
    if isinstance(manifest, str):
        match = re.search(r"^kind:\s*(\S+)", manifest, re.MULTILINE)
        return match.group(1) if match else ""
    if isinstance(manifest, Mapping):
        return str(manifest.get("kind", ""))
    return ""


def check(tmpl: Mapping[str, Any], where: str, cc: CheckContext) -> None:
    """Refuse what the local platform cannot apply, and outputs it could not read."""
    resource = tmpl.get("resource") or {}
    for key in _UNSUPPORTED:  # first: a manifestFrom has no manifest whose kind could be named
        if resource.get(key):
            raise NotSupportedLocally(f"resource {key}", where)
    action, kind = resource.get("action"), _kind_of(resource.get("manifest"))
    if action not in ALLOWED.get(kind, ()):
        raise NotSupportedLocally(
            f"resource action {action!r} on {kind or 'a manifest'} (only create/apply/patch of a SeldonDeployment "
            "or create/apply of a Workflow or a PersistentVolumeClaim)",
            where,
        )
    if kind != "Workflow" and any(resource.get(k) for k in _CONDITIONS):
        raise NotSupportedLocally(f"resource success/failure conditions on a {kind} (locally: on Workflows)", where)
    outs = tmpl.get("outputs") or {}
    if outs.get("artifacts"):
        raise NotSupportedLocally("output artifacts of a resource template", where)
    for p in outs.get("parameters") or []:
        vf = p.get("valueFrom") or {}
        if "jsonPath" in vf:
            if "{{" not in str(vf["jsonPath"]) and not _JSONPATH.fullmatch(str(vf["jsonPath"]).strip()):
                raise NotSupportedLocally(
                    f"output parameter {p.get('name')!r} jsonPath {vf['jsonPath']!r} (locally: one field path such as "
                    "{.metadata.name} or {.spec.predictors[0].replicas})",
                    where,
                )
        elif set(vf) - {"default"}:
            raise NotSupportedLocally(
                f"output parameter {p.get('name')!r} from {sorted(set(vf) - {'default'})} (a resource template's "
                "outputs come from valueFrom.jsonPath here)",
                where,
            )


def json_path(expression: str, obj: Mapping[str, Any]) -> str:
    """``kubectl get -o jsonpath=EXPR`` for one ``{.a.b[0]}`` expression: strings as they are, other values
    as JSON, a missing field as an empty string (kubectl's ``--allow-missing-template-keys``)."""
    match = _JSONPATH.fullmatch(expression.strip())
    if match is None:
        raise EngineError(f"jsonPath {expression!r} is not one field path such as {{.metadata.name}}")
    try:
        value = jsonpath_query("$" + match.group(1).strip(), dict(obj))
    except Fail:
        return ""
    return value if isinstance(value, str) else go_json(value)


def run(ctx: KindContext, call: Call) -> NodeDoc:
    """Apply the manifest and read the outputs from the object as applied."""
    tmpl, where = call.template, call.where
    node = ctx.new_node(call.name, call.display, "Pod", call.parent, tmpl)
    node["inputs"] = inputs_doc(call.inputs)
    res = tmpl["resource"]
    action = str(res.get("action"))
    manifest = res.get("manifest")
    try:
        doc = load_yaml(manifest) if isinstance(manifest, str) else dict(manifest or {})
    except yaml.YAMLError as err:
        return ctx.finish(node, "Error", f"{where}: resource.manifest is not valid YAML: {err}")
    if not isinstance(doc, Mapping):
        return ctx.finish(node, "Error", f"{where}: resource.manifest must be one Kubernetes object")
    meta = dict(doc.get("metadata") or {})
    meta.setdefault("namespace", ctx.namespace)
    if res.get("setOwnerReference"):
        owner = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "name": ctx.name, "controller": True}
        meta["ownerReferences"] = [*(meta.get("ownerReferences") or []), owner]
    doc = {**doc, "metadata": meta}
    if ctx.applier is None:
        return ctx.finish(node, "Error", f"{where}: no platform to apply resources to (run it through the local platform)")
    try:
        applied = ctx.applier.apply(action, doc)
    except ScanflowError as err:  # the platform refused the object or could not apply it (its errors are ours)
        return ctx.finish(node, "Error", f"resource {action} of {doc.get('kind')} failed: {err}")
    if any(res.get(k) for k in _CONDITIONS):
        current, why = wait_conditions(ctx, call, applied)
        if current is None:
            return ctx.finish(node, "Failed", why)
        applied = current
    params = []
    for p in (tmpl.get("outputs") or {}).get("parameters") or []:
        vf = p.get("valueFrom") or {}
        if "jsonPath" in vf:
            try:
                value = json_path(str(vf["jsonPath"]), applied)
            except EngineError as err:
                return ctx.finish(node, "Error", f"{where}: output parameter {p.get('name')!r}: {err}")
        elif "default" in vf:
            value = fmt_item(vf["default"])
        else:
            continue
        entry = {"name": p["name"], "value": value}
        if p.get("globalName"):
            entry["globalName"] = p["globalName"]
        params.append(entry)
    outputs: dict[str, Any] = {"parameters": params} if params else {}
    node["outputs"] = outputs
    ctx.register_globals(tmpl, outputs)
    return ctx.finish(node, "Succeeded")


def wait_conditions(ctx: KindContext, call: Call, applied: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """Poll the applied object until its conditions decide (``WaitResource``, ``workflow/executor/resource.go``):
    the object as it was when they did, or None and why the node fails."""
    res = call.template["resource"]
    reqs = {}
    for key, label in (("successCondition", "success"), ("failureCondition", "fail")):
        try:
            reqs[key] = LabelSelector.parse(str(res.get(key) or "")).requirements
        except InvalidRequest as err:
            return None, f"{label} condition '{res[key]}' failed to parse: {err}"
    applier = ctx.applier
    while applier is not None:  # run() checked it is there
        try:
            current = applier.get(applied)
        except ScanflowError as err:
            return None, f"resource get of {applied.get('kind')} failed: {err}"
        if current is None:
            return None, "The resource has been deleted while its status was still being checked. Will not be retried"
        lookup = gjson_lookup(current)
        for req in reqs["failureCondition"]:
            if req.matches_lookup(lookup):
                return None, f"failure condition '{req.go_value_text()}' evaluated true"
        if all(req.matches_lookup(lookup) for req in reqs["successCondition"]):
            return current, ""
        if ctx.abort.is_set():
            return None, ctx.abort_message or "Stopped"
        if call.deadline is not None and ctx.clock.monotonic() >= call.deadline:
            return None, DEADLINE
        ctx.sleep(POLL_SECONDS)
    return None, "no platform to read the resource back from"


KIND = NodeKind("resource", "Pod", check, run)
