"""Graph checks on any Argo manifest (compiled or hand-written): what ``argo lint`` checks without a cluster.

Unknown templates, duplicate or unknown task/step names, unknown dependencies, cycles, missing
required arguments, ``outputs.result`` read from a template whose own output parameter is named
``result`` (shadowed; ``shadowed_outputs`` warns about the name alone), and references to things that do not exist: ``{{inputs.parameters.x}}``,
``{{tasks.X.outputs.parameters.y}}``, ``{{steps.X...}}``, ``{{workflow.parameters.x}}``.
With a ``TemplateIndex`` (the WorkflowTemplates and ClusterWorkflowTemplates known to the caller: every file
linted together, the templates applied), ``templateRef`` and ``workflowTemplateRef`` are resolved too: a
missing template is named, and a referenced template's required inputs are checked like a local one's —
which Argo's own offline lint cannot do (it resolves nothing).
Each problem names the object, the template and the task.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from ..spec.validate import RESERVED_OUTPUTS, find_cycle

__all__ = ["ARGO_KINDS", "TemplateIndex", "check_graph", "shadowed_outputs", "workflow_spec"]

ARGO_KINDS = ("Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow")
_REF = re.compile(r"\{\{\s*(inputs|tasks|steps|workflow)\.([A-Za-z0-9_.\-]+?)\s*\}\}")
_DEPENDS_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z]+)?")
_RESULTS = {"Succeeded", "Failed", "Errored", "Skipped", "Omitted", "Daemoned", "AnySucceeded", "AllFailed"}
_ARTIFACT_SOURCES = ("s3", "gcs", "git", "http", "raw", "artifactory", "hdfs", "oss", "azure", "plugin", "from", "fromExpression")


def workflow_spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """The workflow spec of an Argo object (a CronWorkflow's is ``spec.workflowSpec``)."""
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronWorkflow":
        return spec.get("workflowSpec") or {}
    return spec


def _label(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind')}/{meta.get('name') or meta.get('generateName') or '?'}"


class TemplateIndex:
    """WorkflowTemplates (by namespace and name) and ClusterWorkflowTemplates (by name) that references resolve to.

    ``sources`` names where they came from, for messages (``the files linted``, a templates folder)."""

    def __init__(self, sources: str = "the files linted") -> None:
        self.sources = sources
        self._namespaced: dict[str, list[tuple[str | None, Mapping[str, Any]]]] = {}
        self._cluster: dict[str, Mapping[str, Any]] = {}

    def add(self, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        name = meta.get("name")
        if not isinstance(name, str):
            return
        if obj.get("kind") == "ClusterWorkflowTemplate":
            self._cluster.setdefault(name, obj)
        elif obj.get("kind") == "WorkflowTemplate":
            self._namespaced.setdefault(name, []).append((meta.get("namespace"), obj))

    def find(self, name: str, cluster_scope: bool, namespace: str | None) -> Mapping[str, Any] | None:
        """The template a reference from ``namespace`` reaches (a namespace left out matches any)."""
        if cluster_scope:
            return self._cluster.get(name)
        for ns, obj in self._namespaced.get(name, []):
            if ns is None or namespace is None or ns == namespace:
                return obj
        return None

    def missing(self, ref: Mapping[str, Any]) -> str:
        kind = "ClusterWorkflowTemplate" if ref.get("clusterScope") else "WorkflowTemplate"
        return (
            f"no {kind} named {ref.get('name')!r} in {self.sources} — lint it together with the file that defines it, "
            "or apply it first (scanflow-argo apply)"
        )


def check_graph(obj: Mapping[str, Any], index: TemplateIndex | None = None) -> list[str]:
    """Every graph problem of one Argo object (empty when clean); ``index`` resolves template references."""
    spec = workflow_spec(obj)
    where = _label(obj)
    problems: list[str] = []
    namespace = (obj.get("metadata") or {}).get("namespace")
    ref = spec.get("workflowTemplateRef")
    if index is not None and isinstance(ref, Mapping) and ref.get("name"):
        target = index.find(str(ref["name"]), bool(ref.get("clusterScope")), namespace)
        if target is None:
            problems.append(f"{where}: workflowTemplateRef: {index.missing(ref)}")
    templates_list = [t for t in spec.get("templates") or [] if isinstance(t, Mapping)]
    templates: dict[str, Mapping[str, Any]] = {}
    for t in templates_list:
        name = _name(t)
        if name in templates:
            problems.append(f"{where}: two templates are named {name!r} — rename one")
        templates[name] = t
    if not templates_list:
        return problems  # a workflowTemplateRef: the referenced template is checked on its own
    globals_: set[Any] | None = {p.get("name") for p in (spec.get("arguments") or {}).get("parameters") or []}
    if obj.get("kind") in ("WorkflowTemplate", "ClusterWorkflowTemplate"):
        globals_ = None  # a template's parameters may also come at submission (UI, events): not checkable
    for key in ("entrypoint", "onExit"):
        ref = spec.get(key)
        if ref and ref not in templates:
            problems.append(f"{where}: {key} {ref!r} is not a template — use one of: {', '.join(sorted(map(str, templates)))}")
    hooks = list((spec.get("hooks") or {}).values())
    for hook in hooks:
        if isinstance(hook, Mapping) and hook.get("template") and hook["template"] not in templates:
            problems.append(f"{where}: hook template {hook['template']!r} is not a template")
    refs = _Refs(index, namespace)
    for t in templates_list:
        problems += _check_template(t, templates, globals_, f"{where}: template {t.get('name')!r}", refs)
    return problems


class _Refs:
    """Resolves ``templateRef`` of calls in one object (nothing without an index)."""

    def __init__(self, index: TemplateIndex | None, namespace: str | None) -> None:
        self.index, self.namespace = index, namespace

    def resolve(self, call: Mapping[str, Any], where: str) -> tuple[Mapping[str, Any] | None, list[str]]:
        """(the referenced template, problems) for a call with ``templateRef``."""
        ref = call.get("templateRef")
        if self.index is None or not isinstance(ref, Mapping):
            return None, []
        if "{{" in f"{ref.get('name', '')}{ref.get('template', '')}":
            return None, []  # named from {{item…}}: known per expanded step only (validate.go validateTemplateHolder)
        owner = self.index.find(str(ref.get("name")), bool(ref.get("clusterScope")), self.namespace)
        if owner is None:
            return None, [f"{where}: templateRef {ref.get('name')}/{ref.get('template')}: {self.index.missing(ref)}"]
        named = {t.get("name"): t for t in workflow_spec(owner).get("templates") or [] if isinstance(t, Mapping)}
        target = named.get(ref.get("template"))
        if target is None:
            return None, [
                f"{where}: templateRef {ref.get('name')}/{ref.get('template')}: {owner.get('kind')} {ref.get('name')!r} has no "
                f"template {ref.get('template')!r} — use one of: {', '.join(sorted(map(str, named)))}"
            ]
        return target, []


def _check_template(
    t: Mapping[str, Any], templates: Mapping[str, Any], globals_: set[Any] | None, where: str, refs: _Refs | None = None
) -> list[str]:
    refs = refs or _Refs(None, None)
    problems: list[str] = []
    calls: list[tuple[str, Mapping[str, Any]]] = []
    names: set[str] = set()
    if isinstance(t.get("dag"), Mapping):
        tasks = [x for x in t["dag"].get("tasks") or [] if isinstance(x, Mapping)]
        graph: dict[str, list[str]] = {}
        for task in tasks:
            tn = _name(task)
            if tn in names:
                problems.append(f"{where}: two tasks are named {tn!r} — rename one")
            names.add(tn)
        for task in tasks:
            tw = f"{where}, task {task.get('name')!r}"
            deps = list(task.get("dependencies") or []) + _depends_names(task.get("depends"))
            for dep in deps:
                if dep not in names:
                    problems.append(f"{tw}: unknown dependency {dep!r} — depend on one of: {', '.join(sorted(map(str, names)))}")
            graph[_name(task)] = [d for d in deps if d in names]
            calls.append((tw, task))
        cycle = find_cycle(graph)
        if cycle:
            problems.append(f"{where}: tasks form a cycle: {' -> '.join(reversed(cycle))} — remove one of these dependencies")
    elif isinstance(t.get("steps"), list):
        for group in t["steps"]:
            for s in group if isinstance(group, list) else []:
                if isinstance(s, Mapping):
                    names.add(_name(s))
                    calls.append((f"{where}, step {s.get('name')!r}", s))
    for cw, call in calls:
        problems += _check_call(call, templates, globals_, cw, refs)
    problems += _check_refs(t, names, templates, globals_, where, refs)
    return problems


def _depends_names(depends: Any) -> list[str]:
    if not isinstance(depends, str):
        return []
    out = []
    for token in _DEPENDS_TOKEN.findall(depends):
        name, _, result = token.partition(".")
        if result and result not in _RESULTS:
            name = token  # a dotted task name
        out.append(name)
    return out


def _check_call(
    call: Mapping[str, Any], templates: Mapping[str, Any], globals_: set[Any] | None, where: str, refs: _Refs
) -> list[str]:
    if isinstance(call.get("inline"), Mapping):
        return _check_template(call["inline"], templates, globals_, f"{where} (inline)", refs)
    name: str
    if call.get("templateRef"):
        target, problems = refs.resolve(call, where)
        if target is None:
            return problems
        name = f"{call['templateRef'].get('name')}/{call['templateRef'].get('template')}"
    else:
        name = str(call.get("template") or "")
        if not name:
            return []
        target = templates.get(name)
    if target is None:
        return [f"{where}: unknown template {name!r} — use one of: {', '.join(sorted(map(str, templates)))}"]
    args = call.get("arguments") or {}
    given_p = {p.get("name") for p in args.get("parameters") or []}
    given_a = {a.get("name") for a in args.get("artifacts") or []}
    problems = []
    inputs = target.get("inputs") or {}
    for p in inputs.get("parameters") or []:
        if p.get("name") not in given_p and not any(k in p for k in ("value", "default", "valueFrom")):
            problems.append(
                f"{where}: template {name!r} needs parameter {p.get('name')!r}, which is not passed — add it to arguments"
            )
    for a in inputs.get("artifacts") or []:
        if a.get("name") not in given_a and not a.get("optional") and not any(k in a for k in _ARTIFACT_SOURCES):
            problems.append(
                f"{where}: template {name!r} needs artifact {a.get('name')!r}, which is not passed — add it to arguments"
            )
    return problems


def _strings(node: Any, skip_inline: bool = True) -> Iterator[str]:
    """Every string in ``node``, except inside nested inline templates (checked on their own)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for k, v in node.items():
            if skip_inline and k == "inline":
                continue
            yield from _strings(v, skip_inline)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v, skip_inline)


def _check_refs(
    t: Mapping[str, Any], names: set[str], templates: Mapping[str, Any], globals_: set[Any] | None, where: str, refs: _Refs
) -> list[str]:
    inputs = t.get("inputs") or {}
    in_params = {p.get("name") for p in inputs.get("parameters") or []}
    in_arts = {a.get("name") for a in inputs.get("artifacts") or []}
    scope = "tasks" if isinstance(t.get("dag"), Mapping) else "steps" if isinstance(t.get("steps"), list) else None
    calls = _calls_by_name(t)
    problems: set[str] = set()
    for text in _strings(t):
        if "{{" not in text:
            continue
        for kind, path in _REF.findall(text):
            parts = path.split(".")
            if kind == "inputs" and len(parts) >= 2:
                known = in_params if parts[0] == "parameters" else in_arts if parts[0] == "artifacts" else None
                if known is not None and parts[1] not in known:
                    problems.add(
                        f"{where}: undefined reference {{{{inputs.{path}}}}} — declare input {parts[0][:-1]} {parts[1]!r}"
                    )
            elif (
                kind == "workflow"
                and parts[0] == "parameters"
                and len(parts) == 2
                and globals_ is not None
                and parts[1] not in globals_
            ):
                if parts[1] == "json":  # all parameters as JSON, a built-in
                    continue
                problems.add(
                    f"{where}: undefined reference {{{{workflow.parameters.{parts[1]}}}}} — add it to spec.arguments.parameters"
                )
            elif kind in ("tasks", "steps") and path != "name":  # {{steps.name}}/{{tasks.name}}: the node's own name
                if kind != scope:
                    problems.add(
                        f"{where}: {{{{{kind}.{path}}}}} is used outside a {'DAG' if kind == 'tasks' else 'steps'} template"
                    )
                elif parts[0] not in names:
                    problems.add(f"{where}: undefined reference {{{{{kind}.{path}}}}} — no {kind[:-1]} named {parts[0]!r}")
                else:
                    problems.update(_check_output_ref(kind, parts, calls.get(parts[0]), templates, where, refs))
    return sorted(problems)


def _name(obj: Mapping[str, Any], key: str = "name") -> str:
    """A name field of a manifest object (``""`` when missing: the schema check reports that)."""
    return str(obj.get(key) or "")


def _calls_by_name(t: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    if isinstance(t.get("dag"), Mapping):
        return {_name(x): x for x in t["dag"].get("tasks") or [] if isinstance(x, Mapping)}
    out: dict[str, Mapping[str, Any]] = {}
    for group in t.get("steps") or []:
        for s in group if isinstance(group, list) else []:
            if isinstance(s, Mapping):
                out[_name(s)] = s
    return out


def _check_output_ref(
    kind: str, parts: list[str], call: Mapping[str, Any] | None, templates: Mapping[str, Any], where: str, refs: _Refs
) -> list[str]:
    """``{{tasks.X.outputs.parameters.Y}}``: Y must be an output of X's template when that template is known;
    ``{{tasks.X.outputs.result}}`` of a template that declares an output parameter ``result`` reads what X
    printed, not that parameter (Argo fills ``outputs.result`` itself)."""
    if call is None or len(parts) < 3 or parts[1] != "outputs":
        return []
    if call.get("templateRef"):
        target = refs.resolve(call, where)[0]  # a missing one is reported once, by _check_call
    else:
        target = call.get("inline") if isinstance(call.get("inline"), Mapping) else templates.get(_name(call, "template"))
    if target is None:
        return []
    if len(parts) == 3 and parts[2] in RESERVED_OUTPUTS:
        if parts[2] not in _declared_outputs(target):
            return []
        return [
            f"{where}: {{{{{kind}.{'.'.join(parts)}}}}} is Argo's outputs.{parts[2]} ({RESERVED_OUTPUTS[parts[2]]}), "
            f"not template {target.get('name')!r}'s output parameter {parts[2]!r}, which it shadows — rename the "
            f"parameter (e.g. {parts[2] + '_value'!r}), or read it as {{{{{kind}.{parts[0]}.outputs.parameters.{parts[2]}}}}}"
        ]
    if len(parts) < 4 or parts[2] not in ("parameters", "artifacts"):
        return []
    declared = {o.get("name") for o in (target.get("outputs") or {}).get(parts[2]) or []}
    if parts[3] in declared:
        return []
    return [
        f"{where}: undefined reference {{{{{kind}.{'.'.join(parts[:4])}}}}} — template {target.get('name')!r} "
        f"declares no output {parts[2][:-1]} {parts[3]!r}"
    ]


def _declared_outputs(template: Mapping[str, Any]) -> set[Any]:
    return {p.get("name") for p in (template.get("outputs") or {}).get("parameters") or [] if isinstance(p, Mapping)}


def shadowed_outputs(obj: Mapping[str, Any]) -> list[str]:
    """Warnings for output parameters named like the outputs Argo fills itself (``result``, ``exitCode``):
    Argo reads them as ``outputs.parameters.result``, but ``outputs.result`` (what most readers of a step's
    outputs by name see: Hera's ``task.result``, a run's outputs in ``status``) is the printed text."""
    where = _label(obj)
    out = []
    for t in workflow_spec(obj).get("templates") or []:
        if not isinstance(t, Mapping):
            continue
        for name in sorted(_declared_outputs(t) & set(RESERVED_OUTPUTS)):
            out.append(
                f"{where}: template {t.get('name')!r}: output parameter {name!r} shares its name with Argo's "
                f"outputs.{name} ({RESERVED_OUTPUTS[name]}): only outputs.parameters.{name} reads it — better rename it"
            )
    return out
