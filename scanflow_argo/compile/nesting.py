"""Large DAGs as nested DAGs: Argo 4 refuses a DAG template with more than 200 tasks (``maxItems: 200`` on
``dag.tasks`` in its CRDs, a bound on CEL validation cost), so a compiled DAG past that limit is split.

``nest_dags(spec)`` cuts such a DAG, in its task order (a topological order: a task only refers to
earlier ones), into groups of at most ``MAX_TASKS`` tasks; each group becomes a DAG template of its own
(``<dag>-part-<n>``) and the DAG becomes the groups, each depending on the groups that hold its tasks'
dependencies (applied again while there are still too many). What crosses a group boundary is routed
through the group templates as Argo passes values between nested DAGs: the producing group exports
``{{tasks.X.outputs.parameters.p}}`` (``valueFrom.parameter``) or ``…artifacts.a`` (``from``) as an output
``X--p``; the consuming group takes it as an input and reads ``{{inputs.parameters.X--p}}``; the parent
passes ``{{tasks.<group>.outputs.parameters.X--p}}`` between them. A dependency on a task of an earlier
group becomes a dependency on that group, so a task may wait for more than it needs (the rest of its
dependency's group): the cost of fitting the limit. References the nesting cannot route
(``{{tasks.X.status}}``, expressions ``{{= … }}`` naming tasks) are a ``CompileError`` naming them.

Source: argoproj/argo-workflows v4.1.2 ``manifests/base/crds/full/argoproj.io_workflows.yaml``
(``templates`` and ``dag.tasks`` ``maxItems: 200``); nested DAG outputs as in Argo's
``examples/dag-nested.yaml`` and ``docs/workflow-templates.md``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from ..errors import CompileError

__all__ = ["MAX_TASKS", "MAX_TEMPLATES", "nest_dags"]

MAX_TASKS = 200
"""Most tasks one DAG template may have on Argo 4."""
MAX_TEMPLATES = 200
"""Most templates one workflow spec may have on Argo 4."""

_REF = re.compile(
    r"\{\{\s*tasks\.([A-Za-z0-9][-A-Za-z0-9]*)\.(outputs\.(?:parameters|artifacts)\.[A-Za-z0-9_-]+|outputs\.result)\s*\}\}"
)
_ANY_TASK_REF = re.compile(r"\{\{[^}]*\btasks\.([A-Za-z0-9][-A-Za-z0-9]*)")
_DEPENDS_NAME = re.compile(r"[A-Za-z0-9][-A-Za-z0-9]*")


def nest_dags(spec: dict[str, Any], max_tasks: int = MAX_TASKS) -> dict[str, Any]:
    """``spec`` (a workflow spec) with every DAG template of more than ``max_tasks`` tasks nested; the input is
    not changed. ``CompileError`` when the result would still break Argo 4's limits."""
    templates = list(spec.get("templates") or [])
    if not any(len((t.get("dag") or {}).get("tasks") or []) > max_tasks for t in templates):
        return spec
    out = copy.deepcopy(spec)
    names = {t["name"] for t in templates}
    result: list[dict[str, Any]] = []
    for template in out["templates"]:
        result += _nest(template, max_tasks, names)
    if len(result) > MAX_TEMPLATES:
        raise CompileError(
            f"the workflow needs {len(result)} templates once its DAGs are nested to at most {max_tasks} tasks each; "
            f"Argo 4 allows {MAX_TEMPLATES} — split it into WorkflowTemplates called with templateRef"
        )
    out["templates"] = result
    return out


def _nest(template: dict[str, Any], max_tasks: int, names: set[str]) -> list[dict[str, Any]]:
    """``template`` and the group templates it was cut into (itself alone when it is small enough)."""
    tasks = list((template.get("dag") or {}).get("tasks") or [])
    if len(tasks) <= max_tasks:
        return [template]
    base = template["name"]
    if template.get("outputs") or template["dag"].get("target"):
        raise CompileError(
            f"DAG template {base!r} has {len(tasks)} tasks, more than the {max_tasks} Argo 4 allows, and outputs or a target, "
            "which its nested groups cannot carry — split it into smaller templates"
        )
    groups = [tasks[i : i + max_tasks] for i in range(0, len(tasks), max_tasks)]
    group_of = {t["name"]: g for g, members in enumerate(groups) for t in members}
    group_names = [_free_name(f"{base}-part-{g + 1}", names) for g in range(len(groups))]
    exports: list[dict[str, dict[str, Any]]] = [{} for _ in groups]  # per group: exported name -> output
    imports: list[dict[str, dict[str, Any]]] = [{} for _ in groups]  # per group: input name -> (kind, producer group, ref)
    group_deps: list[set[int]] = [set() for _ in groups]
    parts: list[dict[str, Any]] = []
    for g, members in enumerate(groups):
        local = {t["name"] for t in members}
        new_tasks = []
        for member in members:
            moved = copy.deepcopy(member)
            for dep in _dependencies(moved):
                if dep in group_of and dep not in local:
                    group_deps[g].add(group_of[dep])
            _drop_outside_dependencies(moved, local)
            new_tasks.append(_reroute(moved, local, group_of, g, exports, imports, group_deps[g]))
        parts.append({"name": group_names[g], "dag": {**template["dag"], "tasks": new_tasks}})
    for g, part in enumerate(parts):
        params_in = [{"name": n} for n, spec in sorted(imports[g].items()) if spec["kind"] == "parameter"]
        arts_in = [{"name": n} for n, spec in sorted(imports[g].items()) if spec["kind"] == "artifact"]
        if params_in or arts_in or template.get("inputs"):
            inputs = copy.deepcopy(template.get("inputs") or {})
            inputs["parameters"] = [*(inputs.get("parameters") or []), *params_in] or None
            inputs["artifacts"] = [*(inputs.get("artifacts") or []), *arts_in] or None
            part["inputs"] = {k: v for k, v in inputs.items() if v}
        params_out = [
            {"name": n, "valueFrom": {"parameter": e["ref"]}} for n, e in sorted(exports[g].items()) if e["kind"] == "parameter"
        ]
        arts_out = [{"name": n, "from": e["ref"]} for n, e in sorted(exports[g].items()) if e["kind"] == "artifact"]
        if params_out or arts_out:
            part["outputs"] = {k: v for k, v in (("parameters", params_out), ("artifacts", arts_out)) if v}
    parent_tasks = []
    own_inputs = template.get("inputs") or {}
    for g, name in enumerate(group_names):
        arguments: dict[str, list[dict[str, Any]]] = {"parameters": [], "artifacts": []}
        for p in own_inputs.get("parameters") or []:  # the DAG's own inputs reach every group unchanged
            arguments["parameters"].append({"name": p["name"], "value": f"{{{{inputs.parameters.{p['name']}}}}}"})
        for a in own_inputs.get("artifacts") or []:
            arguments["artifacts"].append({"name": a["name"], "from": f"{{{{inputs.artifacts.{a['name']}}}}}"})
        for n, spec in sorted(imports[g].items()):
            producer = group_names[spec["group"]]
            if spec["kind"] == "parameter":
                arguments["parameters"].append({"name": n, "value": f"{{{{tasks.{producer}.outputs.parameters.{n}}}}}"})
            else:
                arguments["artifacts"].append({"name": n, "from": f"{{{{tasks.{producer}.outputs.artifacts.{n}}}}}"})
        task: dict[str, Any] = {"name": name, "template": name}
        if any(arguments.values()):
            task["arguments"] = {k: v for k, v in arguments.items() if v}
        if group_deps[g]:
            task["depends"] = " && ".join(group_names[d] for d in sorted(group_deps[g]))
        parent_tasks.append(task)
    parent = {**template, "dag": {**template["dag"], "tasks": parent_tasks}}
    nested = _nest(parent, max_tasks, names)  # more than max_tasks groups: nest the groups too
    return [*nested, *(p for part in parts for p in _nest(part, max_tasks, names))]


def _free_name(name: str, names: set[str]) -> str:
    candidate, n = name, 1
    while candidate in names:
        n += 1
        candidate = f"{name}-{n}"
    names.add(candidate)
    return candidate


def _dependencies(task: Mapping[str, Any]) -> set[str]:
    deps = set(task.get("dependencies") or [])
    depends = task.get("depends")
    if isinstance(depends, str):
        deps.update(m.split(".")[0] for m in _DEPENDS_NAME.findall(depends))
    for text in _strings(task):
        deps.update(_ANY_TASK_REF.findall(text))
    return deps


def _drop_outside_dependencies(task: dict[str, Any], local: set[str]) -> None:
    """Dependencies on tasks of an earlier group are the group's dependency now."""
    if task.get("dependencies"):
        kept = [d for d in task["dependencies"] if d in local]
        if kept:
            task["dependencies"] = kept
        else:
            del task["dependencies"]
    depends = task.get("depends")
    if isinstance(depends, str):
        names = {m.split(".")[0] for m in _DEPENDS_NAME.findall(depends)} - {
            "Succeeded",
            "Failed",
            "Errored",
            "Skipped",
            "Omitted",
            "Daemoned",
        }
        outside = names - local
        if outside:
            if not re.fullmatch(r"\s*[A-Za-z0-9][-A-Za-z0-9]*(\s*&&\s*[A-Za-z0-9][-A-Za-z0-9]*)*\s*", depends):
                raise CompileError(
                    f"task {task.get('name')!r} depends on {sorted(outside)} with {depends!r}: a DAG past {MAX_TASKS} tasks "
                    "is nested, and only plain `a && b` dependencies can cross its groups — split the workflow"
                )
            kept = [n.strip() for n in depends.split("&&") if n.strip() in local]
            if kept:
                task["depends"] = " && ".join(kept)
            else:
                del task["depends"]


def _reroute(
    task: dict[str, Any],
    local: set[str],
    group_of: Mapping[str, int],
    g: int,
    exports: list[dict[str, dict[str, Any]]],
    imports: list[dict[str, dict[str, Any]]],
    deps: set[int],
) -> dict[str, Any]:
    """``task`` with its references to tasks of other groups read from the group's inputs."""

    def route(text: str) -> str:
        def one(m: re.Match[str]) -> str:
            producer, path = m.group(1), m.group(2)
            if producer in local or producer not in group_of:
                return m.group(0)
            parts = path.split(".")
            kind = "artifact" if parts[1] == "artifacts" else "parameter"
            name = f"{producer}--{parts[-1] if parts[1] != 'result' else 'outputs-result'}"
            source = group_of[producer]
            exports[source][name] = {"kind": kind, "ref": f"{{{{tasks.{producer}.{path}}}}}"}
            imports[g][name] = {"kind": kind, "group": source}
            deps.add(source)
            return f"{{{{inputs.{'artifacts' if kind == 'artifact' else 'parameters'}.{name}}}}}"

        routed = _REF.sub(one, text)
        left = [n for n in _ANY_TASK_REF.findall(routed) if n not in local and n in group_of]
        if left:
            raise CompileError(
                f"task {task.get('name')!r} refers to task(s) {sorted(set(left))} in {text!r}, which a DAG past {MAX_TASKS} tasks "
                "cannot pass between its nested groups (only outputs.parameters, outputs.artifacts and outputs.result) — "
                "split the workflow"
            )
        return routed

    return _map_strings(task, route)


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, Mapping):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return []


def _map_strings(node: Any, fn: Any) -> Any:
    if isinstance(node, str):
        return fn(node)
    if isinstance(node, dict):
        return {k: _map_strings(v, fn) for k, v in node.items()}
    if isinstance(node, list):
        return [_map_strings(v, fn) for v in node]
    return node
