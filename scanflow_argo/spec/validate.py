"""Offline validation of an Application before compiling: every issue at once, each naming where and how to fix.

Checks: names (DNS-1123), duplicates, unknown steps and arguments, missing required parameters,
references to outputs that do not exist (in arguments, ``when`` and fan-out), type mismatches
between connected steps, cycles, WorkflowTemplate descriptions, cron schedules, agent RBAC wildcards and
agents' entrypoint and ``config()``.
Graph checks on compiled manifests (any Argo YAML) live in ``scanflow_argo.compile.graph``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from croniter import croniter

from ..errors import AgentDefinitionError, Issue, ValidationError
from .params import OutputRef, Param, ParamRef, Retry, compatible, type_name
from .step import Step, Task
from .workflow import CronWorkflow, Workflow, WorkflowTemplate

if TYPE_CHECKING:
    from .application import Application

__all__ = ["RESERVED_OUTPUTS", "RESERVED_TEMPLATES", "check_app", "is_dns_label", "validate_app", "validate_workflow"]

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_PARAM_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")
_REF = re.compile(r"\{\{\s*(tasks|workflow)\.([^{}]*?)\s*\}\}")
_SECRETISH = re.compile(r"(?i)(password|passwd|secret|token|api[_-]?key|access[_-]?key|credential)")
RESERVED_TEMPLATES = ("main", "exit-handler")
RESERVED_OUTPUTS = {"result": "what the step printed", "exitCode": "the main container's exit code"}
"""Outputs Argo fills itself beside the declared parameters: ``outputs.result`` and ``outputs.exitCode``. A
parameter of the same name is shadowed wherever a step's outputs are read by name (``task.out.result`` and
Hera's ``task.result`` mean ``{{tasks.X.outputs.result}}``; ``status``, the client and MLflow show Argo's)."""
_RETRY_POLICIES = ("Always", "OnFailure", "OnError", "OnTransientError")
_CONCURRENCY = ("Allow", "Forbid", "Replace")
_FIX_NAME = "use lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters"


def is_dns_label(name: Any) -> bool:
    """True for a DNS-1123 label (what Kubernetes and Argo accept as object and task names)."""
    return isinstance(name, str) and len(name) <= 63 and bool(_DNS_LABEL.match(name))


def check_app(app: Application) -> None:
    """Raise ``ValidationError`` listing every issue of ``app``; return quietly when it is valid."""
    issues = validate_app(app)
    if issues:
        raise ValidationError(issues, subject=f"application {app.name!r}")


def validate_app(app: Application) -> list[Issue]:
    """Every issue of ``app`` (empty when valid)."""
    issues: list[Issue] = []
    where = f"application {app.name!r}"
    if not is_dns_label(app.name):
        issues.append(Issue(where, f"name {app.name!r} is not a DNS-1123 label", _FIX_NAME))
    if not is_dns_label(app.namespace):
        issues.append(Issue(where, f"namespace {app.namespace!r} is not a DNS-1123 label", _FIX_NAME))
    issues += _duplicates(where, "workflow", [(getattr(w, "kind", type(w).__name__), w.name) for w in app.workflows if w.name])
    issues += _duplicates(where, "service", [("Service", s.name) for s in app.services])
    issues += _duplicates(where, "agent", [("Agent", a.name) for a in app.agents])
    for wf in app.workflows:
        if isinstance(wf, Workflow):
            issues += validate_workflow(wf, app)
        else:
            issues += _check_hera_name(wf)
    for svc in app.services:
        issues += _check_service(svc)
    for agent in app.agents:
        issues += _check_agent(agent)
    return issues


def _check_hera_name(wf: Any) -> list[Issue]:
    """A Hera object needs ``name`` or ``generate_name`` (Hera's usual style, honoured as Argo does:
    the prefix plus 5 random characters), each a DNS-1123 label once generated."""
    kind = type(wf).__name__
    name, prefix = getattr(wf, "name", None), getattr(wf, "generate_name", None)
    if name:
        if is_dns_label(name):
            return []
        return [Issue(f"Hera {kind} {name!r}", "name is not a DNS-1123 label", _FIX_NAME)]
    if prefix:
        if isinstance(prefix, str) and len(prefix) <= 58 and is_dns_label(prefix.rstrip("-")):
            return []
        return [
            Issue(
                f"Hera {kind} generate_name={prefix!r}",
                "the prefix does not make a DNS-1123 label",
                _FIX_NAME + " (at most 58 before the 5 random ones)",
            )
        ]
    return [
        Issue(
            f"Hera {kind}",
            "has neither name nor generate_name",
            'give it generate_name="my-flow-" (a new name each run) or name="my-flow"',
        )
    ]


def _duplicates(where: str, what: str, keys: Iterable[tuple[str, str]]) -> list[Issue]:
    seen: set[tuple[str, str]] = set()
    out = []
    for key in keys:
        if key in seen:
            out.append(Issue(where, f"two {what}s of kind {key[0]} are named {key[1]!r}", f"rename one of the {what}s"))
        seen.add(key)
    return out


def _check_service(svc: Any) -> list[Issue]:
    where = f"service {svc.name!r}"
    issues = []
    if not is_dns_label(svc.name):
        issues.append(Issue(where, "name is not a DNS-1123 label", _FIX_NAME))
    if not svc.model_uri:
        issues.append(Issue(where, "model_uri is empty", "give the model's URI, e.g. 'models:/mnist@champion'"))
    if not isinstance(svc.replicas, int) or svc.replicas < 0:
        issues.append(Issue(where, f"replicas={svc.replicas!r} is not a whole number >= 0", "set replicas to 0 or more"))
    if not 1 <= int(svc.metrics_port) <= 65535:
        issues.append(Issue(where, f"metrics_port={svc.metrics_port} is not a port", "use a port between 1 and 65535"))
    issues += _check_secret_refs(where, svc.env_from_secrets)
    issues += _check_env(where, svc.env)
    return issues


def _check_agent(agent: Any) -> list[Issue]:
    where = f"agent {agent.name!r}"
    issues = []
    if not is_dns_label(agent.name):
        issues.append(Issue(where, "name is not a DNS-1123 label", _FIX_NAME))
    replicas = getattr(agent, "replicas", 1)
    if not isinstance(replicas, int) or replicas < 1:
        issues.append(Issue(where, f"replicas={replicas!r} is not a whole number >= 1", "set replicas to 1 or more"))
    for i, rule in enumerate(agent.rbac_rules()):
        for key in ("apiGroups", "resources", "verbs", "resourceNames"):
            if "*" in (rule.get(key) or []):
                issues.append(
                    Issue(
                        where, f"RBAC rule {i} has a wildcard in {key}", "list the exact resources and verbs its actuators need"
                    )
                )
        if not rule.get("resources") or not rule.get("verbs"):
            issues.append(Issue(where, f"RBAC rule {i} lacks resources or verbs", "give both resources and verbs"))
    issues += _check_secret_refs(where, agent.secret_env())
    issues += _check_agent_config(where, agent)
    return issues


def _check_agent_config(where: str, agent: Any) -> list[Issue]:
    """The compiled pod runs ``agent run ENTRYPOINT`` with ``config()`` in its ConfigMap: both must exist."""
    if not getattr(agent, "entrypoint", None):
        return [
            Issue(
                where,
                "entrypoint is not set: the compiled pod runs `scanflow-argo agent run ENTRYPOINT`",
                "pass entrypoint='package.module:attribute' (where the Agent or its factory is defined), "
                "or build the agent with a function decorated with @agent_factory",
            )
        ]
    try:
        config = agent.config()
    except AgentDefinitionError as err:  # its message names the field and the fix
        return [Issue(where, f"config() fails: {err}", "fix the agent definition as the message says")]
    try:
        json.dumps(config, sort_keys=True)
    except (TypeError, ValueError) as err:
        return [Issue(where, f"config() is not JSON data ({err})", "keep config() and factory arguments to JSON values")]
    return []


def _check_secret_refs(where: str, refs: Any) -> list[Issue]:
    issues = []
    for env, ref in dict(refs or {}).items():
        if not (isinstance(ref, (tuple, list)) and len(ref) == 2 and all(isinstance(x, str) and x for x in ref)):
            issues.append(
                Issue(where, f"secret env {env!r} is {ref!r}, not (secret name, key)", "map it to a (secret, key) pair")
            )
    return issues


def _check_env(where: str, env: Any) -> list[Issue]:
    return [
        Issue(where, f"env {name!r} looks secret but has an inline value", "pass it with secrets={name: (secret, key)} instead")
        for name in dict(env or {})
        if _SECRETISH.search(name)
    ]


# -- workflows --------------------------------------------------------------------------------------


def validate_workflow(wf: Workflow, app: Application | None = None) -> list[Issue]:
    """Every issue of one workflow (ours, not Hera's: those are checked after compiling)."""
    kind = wf.kind
    where = f"{kind} {wf.name!r}"
    issues: list[Issue] = []
    if not is_dns_label(wf.name):
        issues.append(Issue(where, "name is not a DNS-1123 label", _FIX_NAME))
    issues += _check_parameters(wf, where)
    if isinstance(wf, CronWorkflow):
        issues += _check_cron(wf, where, app)
        if wf.template is not None:
            if wf.tasks:
                issues.append(Issue(where, "has both template= and its own steps", "use one: a template reference or steps"))
            return issues
    if not wf.tasks:
        issues.append(Issue(where, "has no steps", "call at least one step inside its `with` block"))
    tasks = {t.name: t for t in wf.tasks}
    issues += _check_names(wf, where)
    for task in wf.tasks:
        issues += _check_task(wf, task, tasks, f"{where}, step {task.name!r}")
    if wf.exit_step is not None:
        exit_task = Task(step=wf.exit_step, name="exit", args=wf.exit_args)
        # the exit handler runs after the DAG, in its own template: it cannot read the DAG's tasks
        issues += _check_task(wf, exit_task, {}, f"{where}, exit handler {wf.exit_step.name!r}")
    issues += _check_cycles(wf, where)
    return issues


def _check_parameters(wf: Workflow, where: str) -> list[Issue]:
    issues = []
    seen: set[str] = set()
    for p in wf.parameters:
        pw = f"{where}, parameter {p.name!r}"
        if p.name in seen:
            issues.append(Issue(pw, "is declared twice", "remove or rename one"))
        seen.add(p.name)
        if not _PARAM_NAME.match(p.name or ""):
            issues.append(Issue(pw, "name has characters Argo does not allow", "use letters, digits, '_' and '-'"))
        if isinstance(wf, WorkflowTemplate) and not p.description:
            issues.append(Issue(pw, "has no description (the Argo UI shows it in the submit form)", "add description='...'"))
        if p.required and not isinstance(wf, WorkflowTemplate) and not (isinstance(wf, CronWorkflow) and wf.template):
            issues.append(Issue(pw, "is required (no default and no value) but nothing supplies it", "give it a default value"))
        issues += _check_literal(p, p.default, pw) if not p.required else []
        if p.enum is not None and not p.required and p.rendered_default() not in (p.rendered_enum() or []):
            issues.append(
                Issue(pw, f"default {p.default!r} is not one of its enum {list(p.enum)}", "add it to enum or change the default")
            )
    return issues


def _check_literal(p: Param, value: Any, where: str) -> list[Issue]:
    """A literal value for a parameter must be convertible to its type."""
    if isinstance(value, (ParamRef, OutputRef)) or (isinstance(value, str) and "{{" in value):
        return []
    t = p.type_name
    ok = True
    if t == "int":
        ok = (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, str) and bool(re.fullmatch(r"-?\d+", value))
        )
    elif t == "float":
        if isinstance(value, str):
            try:
                float(value)
            except ValueError:
                ok = False
        else:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif t == "bool":
        ok = isinstance(value, bool) or (isinstance(value, str) and value.lower() in ("true", "false"))
    if ok:
        return []
    return [Issue(where, f"value {value!r} is not a {t}", f"pass a {t} value")]


def _check_cron(wf: CronWorkflow, where: str, app: Application | None) -> list[Issue]:
    issues = []
    try:
        if not wf.schedules:
            issues.append(Issue(where, "has no schedule", "pass schedule='0 3 * * 1' (or a list of cron expressions)"))
        for sched in wf.schedules:
            if not isinstance(sched, str) or not croniter.is_valid(sched):
                issues.append(Issue(where, f"schedule {sched!r} is not a cron expression", "use five fields, e.g. '0 3 * * 1'"))
    except ImportError:  # pragma: no cover - croniter is a dependency
        pass
    try:
        ZoneInfo(wf.timezone)
    except Exception:
        issues.append(Issue(where, f"timezone {wf.timezone!r} is unknown", "use an IANA name such as 'UTC' or 'Europe/Madrid'"))
    if wf.concurrency_policy not in _CONCURRENCY:
        issues.append(
            Issue(where, f"concurrency_policy {wf.concurrency_policy!r} is invalid", f"use one of {', '.join(_CONCURRENCY)}")
        )
    if wf.template is None:
        if wf.arguments:
            issues.append(Issue(where, "has arguments= but no template=", "pass template= or use parameters="))
        return issues
    target = wf.template if isinstance(wf.template, Workflow) else None
    if target is None and app is not None:
        target = next((w for w in app.workflows if isinstance(w, WorkflowTemplate) and w.name == wf.template), None)
        if target is None:
            known = ", ".join(w.name for w in app.workflows if getattr(w, "kind", "") == "WorkflowTemplate") or "none"
            issues.append(
                Issue(
                    where,
                    f"runs WorkflowTemplate {wf.template!r}, which the application does not define",
                    f"add it or use one of: {known}",
                )
            )
    if target is not None:
        declared = {p.name: p for p in target.parameters}
        for name, value in wf.arguments.items():
            if name not in declared:
                issues.append(
                    Issue(where, f"argument {name!r} is not a parameter of {target.name!r}", f"use one of: {', '.join(declared)}")
                )
            else:
                issues += _check_literal(declared[name], value, f"{where}, argument {name!r}")
        for p in target.parameters:
            if p.required and p.name not in wf.arguments:
                issues.append(
                    Issue(
                        where, f"missing required parameter {p.name!r} of {target.name!r}", f"add arguments={{{p.name!r}: ...}}"
                    )
                )
    return issues


def _check_names(wf: Workflow, where: str) -> list[Issue]:
    issues = []
    seen: set[str] = set()
    templates: dict[str, Step] = {}
    steps = [t.step for t in wf.tasks] + ([wf.exit_step] if wf.exit_step else [])
    by_name = {t.name: t for t in wf.tasks}
    for task in wf.tasks:
        tw = f"{where}, step {task.name!r}"
        if not is_dns_label(task.name):
            issues.append(Issue(tw, "name is not a DNS-1123 label", _FIX_NAME))
        elif task.name[:1].isdigit() and task_dependencies(task, by_name):
            # Argo 4's CRD (CEL): "task name cannot begin with a digit when using 'depends' or 'dependencies'"
            issues.append(
                Issue(
                    tw,
                    "name begins with a digit and the step waits for others: Argo 4 refuses that",
                    "start the name with a letter",
                )
            )
        if task.name in seen:
            issues.append(Issue(tw, "duplicate step name", "give the second call its own name: step(...).named('other-name')"))
        seen.add(task.name)
    for s in steps:
        sw = f"{where}, step template {s.name!r}"
        if s.name in RESERVED_TEMPLATES:
            issues.append(
                Issue(sw, f"name {s.name!r} is reserved for the workflow's own templates", "rename the step (name=...)")
            )
        if not is_dns_label(s.name):
            issues.append(Issue(sw, "name is not a DNS-1123 label", _FIX_NAME))
        other = templates.setdefault(s.name, s)
        if other is not s:
            issues.append(Issue(sw, "two different steps share this name", "give one of them another name (name=...)"))
            templates[s.name] = s
    for s in dict.fromkeys(steps):
        issues += _check_step(s, f"{where}, step template {s.name!r}")
    return issues


def _check_step(s: Step, where: str) -> list[Issue]:
    issues = []
    seen: set[str] = set()
    for name in [p.name for p in s.inputs] + [a.name for a in s.artifacts_in]:
        if name in seen:
            issues.append(Issue(where, f"input {name!r} is declared twice", "rename one"))
        seen.add(name)
    for o in s.outputs:
        if not _PARAM_NAME.match(o.name):
            issues.append(
                Issue(where, f"output name {o.name!r} has characters Argo does not allow", "use letters, digits, '_' and '-'")
            )
        if o.name in RESERVED_OUTPUTS:
            issues.append(
                Issue(
                    where,
                    f"output {o.name!r} is shadowed by Argo's outputs.{o.name} ({RESERVED_OUTPUTS[o.name]}): "
                    f"task.out.{o.name} reads that, never this output",
                    f"rename it (e.g. {o.name + '_value'!r}); the printed text stays readable as task.out.result",
                )
            )
    for p in s.inputs:
        if not p.required:
            issues += _check_literal(p, p.default, f"{where}, input {p.name!r}")
    r = s.retry
    if r is not None and isinstance(r, Retry):
        if r.policy not in _RETRY_POLICIES:
            issues.append(Issue(where, f"retry policy {r.policy!r} is invalid", f"use one of {', '.join(_RETRY_POLICIES)}"))
        if r.limit < 0:
            issues.append(Issue(where, f"retry limit {r.limit} is negative", "use 0 or more"))
    if s.timeout is not None and s.timeout <= 0:
        issues.append(Issue(where, f"timeout {s.timeout} is not positive", "give seconds > 0"))
    issues += _check_secret_refs(where, s.secrets)
    issues += _check_env(where, s.env)
    return issues


def _check_task(wf: Workflow, task: Task, tasks: dict[str, Task], where: str) -> list[Issue]:
    issues: list[Issue] = []
    s = task.step
    art_in = {a.name: a for a in s.artifacts_in}
    for name, value in task.args.items():
        p = s.input(name)
        if p is None and name not in art_in:
            known = ", ".join([q.name for q in s.inputs] + list(art_in)) or "none"
            issues.append(Issue(where, f"unknown argument {name!r}", f"step {s.name!r} takes: {known}"))
            continue
        issues += _check_refs_in(wf, value, tasks, where, f"argument {name!r}")
        if name in art_in:
            if not (isinstance(value, OutputRef) and value.kind == "artifact"):
                issues.append(
                    Issue(
                        where,
                        f"argument {name!r} is an artifact but gets {value!r}",
                        "pass another step's artifact: other.out.<artifact>",
                    )
                )
            continue
        assert p is not None
        if isinstance(value, OutputRef) and value.kind == "artifact":
            issues.append(
                Issue(where, f"argument {name!r} is a parameter but gets artifact {value.name!r}", "pass a parameter output")
            )
        elif isinstance(value, (OutputRef, ParamRef)):
            src = value.type_name
            if not compatible(src, p.type_name):
                issues.append(
                    Issue(
                        where,
                        f"type mismatch: argument {name!r} expects {p.type_name} but {_describe(value)} is {src}",
                        "convert the value in the producing step or change the annotation",
                    )
                )
        elif not isinstance(value, (list, dict)):
            issues += _check_literal(p, value, f"{where}, argument {name!r}")
    for p in s.inputs:
        if p.required and p.name not in task.args:
            issues.append(
                Issue(where, f"missing required parameter {p.name!r} (no default and no value)", f"pass {p.name}=... in the call")
            )
    for a in s.artifacts_in:
        if not a.optional and a.name not in task.args:
            issues.append(Issue(where, f"missing input artifact {a.name!r}", f"pass {a.name}=<step>.out.<artifact> in the call"))
    for dep in task.explicit_deps:
        if tasks.get(dep.name) is not dep:
            issues.append(Issue(where, f"depends on unknown step {dep.name!r}", "depend only on steps of the same workflow"))
    if task.condition:
        issues += _check_refs_in(wf, task.condition, tasks, where, "when")
    if task.param_items is not None:
        if isinstance(task.param_items, OutputRef) and task.param_items.kind == "artifact":
            issues.append(Issue(where, "fan-out over an artifact", "fan out over a parameter holding a JSON list"))
        issues += _check_refs_in(wf, task.param_items, tasks, where, "fan-out")
    return issues


def _describe(ref: OutputRef | ParamRef) -> str:
    if isinstance(ref, ParamRef):
        return f"workflow parameter {ref.param.name!r}"
    return f"output {ref.name!r} of step {ref.task.name!r}"


def _check_refs_in(wf: Workflow, value: Any, tasks: dict[str, Task], where: str, what: str) -> list[Issue]:
    """References inside an argument, ``when`` or fan-out must point at existing steps, outputs and parameters."""
    issues: list[Issue] = []
    if isinstance(value, OutputRef):
        if tasks.get(value.task.name) is not value.task:
            return [Issue(where, f"{what} references unknown step {value.task.name!r}", "reference steps of the same workflow")]
        return _check_output(value.task, value.name, value.kind, where, what)
    if isinstance(value, ParamRef):
        if all(p is not value.param and p.name != value.param.name for p in wf.parameters):
            return [
                Issue(where, f"{what} references parameter {value.param.name!r} of another workflow", "add it to this workflow")
            ]
        return []
    if not isinstance(value, str):
        return []
    for scope, path in _REF.findall(value):
        parts = path.split(".")
        if scope == "workflow":
            if parts[0] == "parameters" and len(parts) > 1 and all(p.name != parts[1] for p in wf.parameters):
                issues.append(
                    Issue(where, f"{what} references unknown workflow parameter {parts[1]!r}", "declare it in parameters=")
                )
            continue
        target = tasks.get(parts[0])
        if target is None:
            issues.append(Issue(where, f"{what} references unknown step {parts[0]!r}", f"use one of: {', '.join(tasks)}"))
        elif len(parts) >= 3 and parts[1] == "outputs" and parts[2] == "result":
            issues += _check_output(target, "result", "result", where, what)
        elif len(parts) >= 4 and parts[1] == "outputs":
            issues += _check_output(target, parts[3], "artifact" if parts[2] == "artifacts" else "parameter", where, what)
    return issues


def _check_output(task: Task, name: str, kind: str, where: str, what: str) -> list[Issue]:
    s = task.step
    if kind == "result":
        return []
    names = [a.name for a in s.artifacts_out] if kind == "artifact" else [o.name for o in s.outputs]
    if name in names:
        return []
    return [
        Issue(
            where,
            f"{what} references output {name!r} of step {task.name!r}, which does not exist",
            f"step {s.name!r} has {kind} outputs: {', '.join(names) or 'none'} — declare it in outputs=",
        )
    ]


def task_dependencies(task: Task, tasks: dict[str, Task]) -> list[str]:
    """Names of the tasks ``task`` waits for: explicit ones and those whose outputs it uses (sorted)."""
    deps = {d.name for d in task.explicit_deps}
    for value in [*task.args.values(), task.condition, task.param_items]:
        if isinstance(value, OutputRef):
            deps.add(value.task.name)
        elif isinstance(value, str):
            deps.update(path.split(".")[0] for scope, path in _REF.findall(value) if scope == "tasks")
    deps.discard(task.name)
    return sorted(d for d in deps if d in tasks)


def _check_cycles(wf: Workflow, where: str) -> list[Issue]:
    tasks = {t.name: t for t in wf.tasks}
    graph = {name: task_dependencies(t, tasks) for name, t in tasks.items()}
    cycle = find_cycle(graph)
    if cycle:
        path = " -> ".join(reversed(cycle))  # in running order: a -> b means b runs after a
        return [Issue(where, f"steps form a cycle: {path}", "remove one of these dependencies (a DAG cannot loop)")]
    return []


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """One cycle of ``graph`` (node → nodes it depends on) as a closed path, or None. Iterative DFS."""
    state: dict[str, int] = {}
    for root in sorted(graph):
        if state.get(root):
            continue
        stack: list[tuple[str, Iterator[str]]] = [(root, iter(graph.get(root, ())))]
        path = [root]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                path.pop()
                state[node] = 2
                continue
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, iter(graph[nxt])))
    return None


__all__ += ["find_cycle", "task_dependencies", "type_name"]
