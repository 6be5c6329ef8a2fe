"""The one pass before anything runs: walk every template the workflow can reach (entrypoint, onExit,
hooks, steps, tasks, templateRefs) and refuse what cannot run on this machine — ``NotSupportedLocally``,
``ImageNotMapped`` or an ``EngineError`` naming the field — or return one-line notes about Kubernetes-only
fields it accepts and ignores. Argo's own validator (``workflow/validate/validate.go``) plays this part
on a cluster.

Each template gets the generic checks here (pod features: volumes, sidecars, daemons, synchronization;
lifecycle hooks; artifacts; ignored fields) and then its kind's ``check`` from the node-kind registry
(``engine/kinds``), the same registry the scheduler runs templates with. A new validation rule for one kind
goes into that kind's ``check``; one for every template, into ``_check_template``; one for the manifest's
shape as a whole, before the walk, in ``check_supported``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Mapping
from typing import Any

from ..argoexpr.expr import depends_tasks
from ..errors import EngineError, InvalidWorkflow, NotSupportedLocally, PodRefused
from ..settings import Settings
from .core.configstore import CONFIGMAPS, missing
from .core.manifest import TEMPLATE_TYPES, TemplateScope, TemplateStore, apply_template_defaults, resolve_ref
from .core.subst import substitute
from .core.values import fmt_item
from .features.artifacts import REPOSITORIES_CONFIGMAP, resolve_repository
from .features.daemons import check_daemon_ports, check_probe, sidecar_containers
from .features.images import check_first_command, check_image
from .features.podnet import unavailable as no_own_network
from .features.sync import parse_synchronization, semaphore_limit
from .features.volumes import check_mounts, check_volume, claim_dir, claim_names, gc_strategy, init_containers, volume_kind
from .kinds import REGISTRY, CheckContext, Registry
from .kinds.container_set import check_container_set
from .wrappers.memoize import check as check_memoize

__all__ = ["check_supported"]

# Fields that matter only to Kubernetes: accepted, ignored, noted once.
IGNORED_TEMPLATE_FIELDS = (
    "metadata",
    "nodeSelector",
    "affinity",
    "tolerations",
    "podSpecPatch",
    "securityContext",
    "serviceAccountName",
    "automountServiceAccountToken",
    "priorityClassName",
    "priority",
    "schedulerName",
    "hostAliases",
    "podDisruptionBudget",
    "metrics",
    "archiveLocation",
    "executor",
)
IGNORED_SPEC_FIELDS = (
    "podGC",
    "ttlStrategy",
    "ttlSecondsAfterFinished",
    "artifactGC",
    "nodeSelector",
    "affinity",
    "tolerations",
    "securityContext",
    "serviceAccountName",
    "imagePullSecrets",
    "podSpecPatch",
    "podMetadata",
    "podDisruptionBudget",
    "dnsConfig",
    "dnsPolicy",
    "hostNetwork",
    "podPriorityClassName",
    "schedulerName",
    "metrics",
    "archiveLogs",
    "workflowMetadata",
    "executor",
    "automountServiceAccountToken",
    "hostAliases",
)
REFUSED_SPEC_FIELDS: dict[str, str] = {}
CLOUD_ARTIFACTS = ("s3", "gcs", "azure", "hdfs", "oss", "git", "webHDFS")


def _refuse_artifact(art: Mapping[str, Any], where: str) -> None:
    for kind in CLOUD_ARTIFACTS:
        if kind in art:
            loc = art[kind]
            if kind == "s3" and isinstance(loc, Mapping) and set(loc) <= {"key"}:
                continue  # key-only: the default (here: local) artifact repository
            raise NotSupportedLocally(f"{kind} artifact {art.get('name', '')!r}", where)
    auth = (art.get("http") or {}).get("auth") if isinstance(art.get("http"), Mapping) else None
    for method in ("oAuth2", "clientCert"):  # http and Artifactory artifacts go by URL, with headers and basic auth
        if auth and method in auth:
            raise NotSupportedLocally(f"http artifact {art.get('name', '')!r} with {method} auth", where)


def check_supported(wf: Mapping[str, Any], store: TemplateStore, settings: Settings, kinds: Registry = REGISTRY) -> list[str]:
    """Refuse what cannot run here before anything runs; return notes about ignored fields."""
    spec = wf.get("spec") or {}
    namespace = str((wf.get("metadata") or {}).get("namespace") or "default")
    notes: set[str] = set()
    for key, feature in REFUSED_SPEC_FIELDS.items():
        if spec.get(key):
            if key == "hooks" and set(spec["hooks"]) <= {"exit"}:
                continue
            raise NotSupportedLocally(feature, "spec")
    _check_arguments(spec)
    _check_unique_names("spec.templates", spec.get("templates") or [])
    if spec.get("artifactRepositoryRef") is not None:  # operator.go: the workflow errors when it names no repository
        try:
            resolve_repository(spec["artifactRepositoryRef"], namespace, settings.home)
        except EngineError as err:
            ref = spec["artifactRepositoryRef"] or {}
            why = missing(
                settings.home,
                CONFIGMAPS,
                namespace,
                str(ref.get("configMap") or REPOSITORIES_CONFIGMAP),
                str(ref.get("key") or "") or None,
            )
            raise InvalidWorkflow(str(err), "Error", f"{err}: {why}; or fix spec.artifactRepositoryRef") from err
    _check_hooks(spec.get("hooks"), "spec", "hooks")
    volumes = _check_spec_volumes(spec, settings, namespace)
    cc = CheckContext(settings, volumes, notes, namespace)
    _check_synchronization(spec.get("synchronization"), "spec", settings, namespace)
    for key in IGNORED_SPEC_FIELDS:
        if key in spec:
            notes.add(f"spec.{key}")
    if "priority" in spec and "synchronization" not in json.dumps(spec):
        notes.add("spec.priority")  # it orders waiters for locks here, and nothing else
    for art in (spec.get("arguments") or {}).get("artifacts") or []:
        _refuse_artifact(art, "spec.arguments")
    root = TemplateScope(
        "workflow", {t.get("name", ""): t for t in spec.get("templates") or []}, spec.get("templateDefaults") or {}
    )
    seen: set[tuple[str, str]] = set()
    todo: list[tuple[TemplateScope, dict[str, Any]]] = []

    def visit_ref(scope: TemplateScope, holder: Mapping[str, Any], where: str) -> None:
        # a reference that names nothing is Argo's validator's "invalid spec" (validate.go validateTemplateHolder)
        if "template" in holder and isinstance(holder["template"], str):
            try:
                todo.append((scope, scope.get(holder["template"], where)))
            except EngineError as err:
                raise InvalidWorkflow(f"invalid spec: template name '{holder['template']}' undefined", hint=str(err)) from err
        elif "templateRef" in holder and _dynamic(holder["templateRef"]):
            for ref in _item_refs(holder):  # validate.go validateTemplateHolder lets a ref with tags through
                try:
                    sub = store.scope(ref["name"], bool(ref.get("clusterScope")))
                    todo.append((sub, sub.get(ref["template"], where)))
                except EngineError:
                    continue  # Argo fails that expanded node when it resolves it, not the run (calls.dynamic_ref)
        elif "templateRef" in holder:
            ref = holder["templateRef"]
            try:
                sub = store.scope(ref.get("name", ""), bool(ref.get("clusterScope")))
                todo.append((sub, sub.get(ref.get("template", ""), where)))
            except EngineError as err:
                raise InvalidWorkflow(
                    f"invalid spec: template reference {ref.get('name')}.{ref.get('template')} not found", hint=f"{where}: {err}"
                ) from err
        elif "inline" in holder:
            todo.append((scope, {"name": f"{where}.inline", **holder["inline"]}))

    visit_ref(root, {"template": spec["entrypoint"]}, "spec.entrypoint")
    if spec.get("onExit"):
        visit_ref(root, {"template": spec["onExit"]}, "spec.onExit")
    for hook_name, hook in (spec.get("hooks") or {}).items():
        visit_ref(root, hook, f"spec.hooks.{hook_name}")
    while todo:
        scope, tmpl = todo.pop()
        ident = (scope.key, tmpl.get("name", ""))
        if ident in seen:
            continue
        seen.add(ident)
        tmpl = apply_template_defaults(scope.defaults, tmpl) if scope.defaults else tmpl
        where = f"template {tmpl.get('name')!r}"
        _check_template_type(tmpl, kinds)
        _check_step_and_task_names(tmpl)
        _check_template(tmpl, where, cc, kinds)
        for i, group in enumerate(tmpl.get("steps") or []):
            for step in group if isinstance(group, list) else [group]:
                _check_task(step, where, notes, f"templates.{tmpl.get('name')}.steps[{i}].{step.get('name')}")
                visit_ref(scope, step, f"{where} step {step.get('name')!r}")
                for hook in (step.get("hooks") or {}).values():
                    visit_ref(scope, hook, f"{where} step {step.get('name')!r} hook")
                if step.get("onExit"):
                    visit_ref(scope, {"template": step["onExit"]}, f"{where} step {step.get('name')!r} onExit")
        for task in (tmpl.get("dag") or {}).get("tasks") or []:
            _check_task(task, where, notes)
            visit_ref(scope, task, f"{where} task {task.get('name')!r}")
            for hook in (task.get("hooks") or {}).values():
                visit_ref(scope, hook, f"{where} task {task.get('name')!r} hook")
            if task.get("onExit"):
                visit_ref(scope, {"template": task["onExit"]}, f"{where} task {task.get('name')!r} onExit")
    # two daemons on one port at once: each needs its own network (features/podnet.py)
    check_daemon_ports(spec, lambda sc, holder: resolve_ref(sc, holder, store), root, lambda: no_own_network(settings))
    return sorted(notes)


def _dynamic(ref: Any) -> bool:
    """Whether a ``templateRef`` names its WorkflowTemplate or template with a tag (``{{item.wftmpl}}``)."""
    return isinstance(ref, Mapping) and "{{" in f"{ref.get('name', '')}{ref.get('template', '')}"


def _item_refs(holder: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The references a dynamic ``templateRef`` makes for each literal ``withItems`` item, where they no longer
    hold a tag: those are checked before the run like any other (a ``withParam`` list is known only at run time)."""
    items = holder.get("withItems")
    if not isinstance(items, list):
        return []
    out = []
    for item in items:
        scope = {"item": fmt_item(item)}
        if isinstance(item, Mapping):
            scope.update({f"item.{k}": fmt_item(v) for k, v in item.items()})
        ref = substitute(dict(holder["templateRef"]), scope, strict=False)
        if not _dynamic(ref):
            out.append(ref)
    return out


def _check_task(task: Mapping[str, Any], where: str, notes: set[str], argo_path: str | None = None) -> None:
    _check_hooks(task.get("hooks"), f"{where} task/step {task.get('name')!r}", argo_path)
    for art in (task.get("arguments") or {}).get("artifacts") or []:
        _refuse_artifact(art, where)


def _check_hooks(hooks: Any, where: str, argo_path: str | None = None) -> None:
    """Lifecycle hooks: a mapping of name → hook; every hook but ``exit`` needs an ``expression``. Argo's
    validator checks that for the workflow's hooks and steps' (``workflow/validate/validate.go`` ``validateHooks``,
    ``argo_path`` its name for them): the workflow then fails with ``invalid spec: <path>.<hook> Expression required``."""
    if not hooks:
        return
    if not isinstance(hooks, Mapping):
        raise EngineError(
            f"{where}: hooks must be a mapping of hook name to hook (e.g. running: {{expression: ..., template: ...}})"
        )
    for name, hook in hooks.items():
        if not isinstance(hook, Mapping) or not ({"template", "templateRef"} & set(hook)):
            raise EngineError(f"{where}: lifecycle hook {name!r} needs a template or a templateRef to run")
        if name != "exit" and not str(hook.get("expression") or "").strip():
            hint = (
                f"{where}: lifecycle hook {name!r} has no expression; give it one "
                f"(e.g. expression: workflow.status == \"Running\") or name it 'exit' to make it an exit handler"
            )
            if argo_path is None:
                raise EngineError(hint)
            raise InvalidWorkflow(f"invalid spec: {argo_path}.{name} Expression required", hint=hint)


def _check_arguments(spec: Mapping[str, Any]) -> None:
    """Each workflow argument has a ``value`` or a ``valueFrom`` (``validate.go`` ``validateArgumentsValues``; a
    ``default`` alone is not one): else Argo fails the workflow with ``invalid spec``."""
    for p in (spec.get("arguments") or {}).get("parameters") or []:
        if isinstance(p, Mapping) and "value" not in p and "valueFrom" not in p:
            name = p.get("name")
            raise InvalidWorkflow(
                f"invalid spec: spec.arguments.{name}.value or spec.arguments.{name}.valueFrom is required",
                hint=f"workflow parameter {name!r} has no value: pass it with -p {name}=VALUE",
            )


def _check_unique_names(path: str, items: list[Any]) -> None:
    """Names in a list are unique (validate.go ``validateWorkflowFieldNames``: ``<path>[i].name 'x' is not unique``);
    else one of them would silently replace the other."""
    names: set[str] = set()
    for i, item in enumerate(items):
        name = item.get("name") if isinstance(item, Mapping) else None
        if name in names:
            raise InvalidWorkflow(
                f"invalid spec: {path}[{i}].name '{name}' is not unique", hint=f"rename one of the two {name!r}"
            )
        if name is not None:
            names.add(name)


def _check_step_and_task_names(tmpl: Mapping[str, Any]) -> None:
    """A steps template's step names are unique across its groups (validate.go ``validateSteps``), a DAG's task
    names are unique and its dependencies have no cycle, a task depending on itself included (``validateDAG``,
    ``verifyNoCycles``: ``templates.<t>.tasks dependency cycle detected: a->b->a``)."""
    name = tmpl.get("name")
    steps = tmpl.get("steps")
    if isinstance(steps, list):
        seen: set[str] = set()
        for i, group in enumerate(steps):
            for step in group if isinstance(group, list) else [group]:
                step_name = step.get("name") if isinstance(step, Mapping) else None
                if step_name in seen:
                    raise InvalidWorkflow(
                        f"invalid spec: templates.{name}.steps[{i}].name '{step_name}' is not unique",
                        hint=f"rename one of the two steps {step_name!r}",
                    )
                if step_name is not None:
                    seen.add(step_name)
    dag = tmpl.get("dag")
    tasks = dag.get("tasks") if isinstance(dag, Mapping) else None
    if not isinstance(tasks, list):
        return
    _check_unique_names(f"templates.{name}.tasks", tasks)
    by_name = {t["name"]: t for t in tasks if isinstance(t, Mapping) and isinstance(t.get("name"), str)}

    def deps_of(task: Mapping[str, Any]) -> list[str]:
        if task.get("depends"):
            return [d for d in depends_tasks(str(task["depends"])) if d in by_name]
        return [str(d) for d in task.get("dependencies") or [] if str(d) in by_name]

    done: set[str] = set()
    for start in by_name:  # depth-first without recursion (a chain of thousands of tasks), as verifyNoCycles walks
        path: list[str] = []  # the tasks followed from ``start``, reported as Argo reports them
        on_path: set[str] = set()
        stack = [iter(deps_of(by_name[start]))]
        while stack:
            dep = next(stack[-1], None)
            if dep is None:
                stack.pop()
                left = path.pop() if path else start
                on_path.discard(left)
                done.add(left)
            elif dep in on_path:
                raise InvalidWorkflow(
                    f"invalid spec: templates.{name}.tasks dependency cycle detected: {'->'.join([*path, dep])}",
                    hint="a DAG's tasks cannot wait on each other in a circle: remove one of these dependencies",
                )
            elif dep not in done:
                path.append(dep)
                on_path.add(dep)
                stack.append(iter(deps_of(by_name[dep])))


def _check_template(tmpl: Mapping[str, Any], where: str, cc: CheckContext, kinds: Registry) -> None:
    """The checks every template gets (pod features, locks, hooks, ignored fields, artifacts), then its kind's."""
    settings, notes = cc.settings, cc.notes
    _check_daemon_and_sidecars(tmpl, where, settings, cc.volumes)
    _check_template_volumes(tmpl, where, settings, cc.volumes)
    _check_synchronization(tmpl.get("synchronization"), where, settings, cc.namespace)
    check_memoize(tmpl.get("memoize"), where)
    if "hooks" in tmpl and set(tmpl["hooks"]) - {"exit"}:
        raise NotSupportedLocally("lifecycle hooks", where)
    for key in IGNORED_TEMPLATE_FIELDS:
        if key in tmpl:
            notes.add(f"{key} in templates")
    for art in (tmpl.get("inputs") or {}).get("artifacts") or []:
        _refuse_artifact(art, where)
    for art in (tmpl.get("outputs") or {}).get("artifacts") or []:
        _refuse_artifact(art, where)
    kind = kinds.kind_of(tmpl)
    if kind is not None:
        kind.check(tmpl, where, cc)


def _check_template_type(tmpl: Mapping[str, Any], kinds: Registry) -> None:
    """One template type per template (``validate.go`` ``validateTemplateType``): else Argo fails the workflow."""
    types = [t for t in dict.fromkeys([*TEMPLATE_TYPES, *(k.key for k in kinds)]) if tmpl.get(t) is not None]
    if len(types) != 1:
        what = "template type unspecified" if not types else "multiple template types specified"
        raise InvalidWorkflow(
            f"invalid spec: templates.{tmpl.get('name')} {what}. choose one of: container, containerSet, steps, script, "
            "resource, dag, suspend, template, template ref",
            hint=f"template {tmpl.get('name')!r} has {', '.join(types) or 'no template type'}: give it exactly one",
        )


# -- sidecars and daemons (engine/daemons.py) -------------------------------------------------
def _check_daemon_and_sidecars(tmpl: Mapping[str, Any], where: str, settings: Settings, volumes: frozenset[str]) -> None:
    """Sidecars: images mapped, commands present, mounts declared. Daemons: a container or script
    pod whose readiness probe can be checked here, without a lock or retries it could not honour."""
    if tmpl.get("daemon"):
        body = tmpl.get("container") or tmpl.get("script")
        if body is None:
            raise NotSupportedLocally("daemon: true on a template without a container or script", where)
        if tmpl.get("synchronization"):
            raise NotSupportedLocally("synchronization on a daemon template (its lock would outlive the node)", where)
        check_probe(body, where)
        check_first_command(body, where, settings)
    sidecars = sidecar_containers(tmpl)
    if not sidecars:
        return
    if not (tmpl.get("container") or tmpl.get("script")):
        raise NotSupportedLocally("sidecars on a template without a container or script", where)
    declared = set(volumes) | {str(v.get("name")) for v in tmpl.get("volumes") or []}
    for c in sidecars:
        cwhere = f"{where} sidecar {c['name']!r}"
        check_image(c, cwhere, settings, "sidecar")
        if "{{" not in str(c.get("image")):
            check_first_command(c, cwhere, settings)
        _check_mounts(c.get("volumeMounts") or [], declared, where, str(c["name"]))
        if c.get("volumeMounts") and (settings.engine.sandbox == "none" or shutil.which("bwrap") is None):
            raise NotSupportedLocally("volumeMounts without the node sandbox (install bubblewrap)", cwhere)


# -- volumes and init containers (engine/volumes.py) ----------------------------------------
def _check_mounts(mounts: list[Mapping[str, Any]], declared: set[str], where: str, container: str) -> None:
    """What cannot run here is refused now; a mount Kubernetes would refuse in the pod errors its node when it
    starts (``PodRefused``), as on Argo, whose validator does not look at mounts."""
    with contextlib.suppress(PodRefused):
        check_mounts(mounts, declared, where, container)


def _check_spec_volumes(spec: Mapping[str, Any], settings: Settings, namespace: str) -> frozenset[str]:
    """Check the workflow's volumes and claim templates; the names its pods may mount."""
    names = set(claim_names(spec))
    gc_strategy(spec)
    for vol in spec.get("volumes") or []:
        check_volume(vol, "spec.volumes")
        claim = str((vol.get("persistentVolumeClaim") or {}).get("claimName") or "")
        if volume_kind(vol) == "persistentVolumeClaim" and "{{" not in claim:
            claim_dir(settings.home, namespace, claim, "spec.volumes")  # missing: said before anything runs
        names.add(str(vol["name"]))
    return frozenset(names)


def _check_template_volumes(tmpl: Mapping[str, Any], where: str, settings: Settings, volumes: frozenset[str]) -> None:
    """Template volumes are supported kinds; every mount (main and init containers) names a declared
    volume; mounts need the sandbox (bubblewrap) to be placed."""
    declared = set(volumes)
    for vol in tmpl.get("volumes") or []:
        check_volume(vol, where)
        declared.add(str(vol["name"]))
    body = tmpl.get("container") or tmpl.get("script")
    containers = [(str((body or {}).get("name") or "main"), body or {})]
    for i, init in enumerate(tmpl.get("initContainers") or []):
        check_image(init, f"{where} init container {init.get('name', i)!r}", settings, "init container")
    containers += [(str(c["name"]), c) for c in init_containers(tmpl)]
    if "containerSet" in tmpl:  # each container of a set mounts its own and the set's volumeMounts
        containers = [(str(c["name"]), c) for c in check_container_set(tmpl, where)] + containers[1:]
    mounted = False
    for name, c in containers:
        _check_mounts(c.get("volumeMounts") or [], declared, where, name)
        mounted = mounted or bool(c.get("volumeMounts"))
    if mounted and (settings.engine.sandbox == "none" or shutil.which("bwrap") is None):
        raise NotSupportedLocally(
            "volumeMounts without the node sandbox (install bubblewrap: apt-get install bubblewrap; "
            "and leave SCANFLOW_ENGINE_SANDBOX unset or 'bwrap')",
            where,
        )


# -- synchronization (engine/sync.py) ----------------------------------------------------------
def _check_synchronization(sync: Mapping[str, Any] | None, where: str, settings: Settings, namespace: str) -> None:
    """Validate the block (unknown shapes, database semaphores refused) and, before anything runs,
    each semaphore limit that names its ConfigMap key literally (a templated one is read when taken), in the
    workflow's namespace unless the semaphore names its own."""
    for spec in parse_synchronization(sync, namespace, where):
        if spec.semaphore and "{{" not in spec.name + spec.key:
            semaphore_limit(settings.home, spec, where)
