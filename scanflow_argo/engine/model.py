"""Manifests → a runnable Workflow: loading, template references, defaults, and what is refused.

``load_documents`` reads (multi-document) YAML; ``TemplateStore`` holds the WorkflowTemplates and
ClusterWorkflowTemplates of a local folder; ``resolve_workflow`` turns a Workflow (or a
WorkflowTemplate submitted with parameters) into the Workflow the engine runs; ``check_supported``
walks every reachable template before anything runs and raises ``NotSupportedLocally`` or
``ImageNotMapped`` — or returns one-line notes about Kubernetes-only fields it ignores.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import EngineError, ImageNotMapped, NotSupportedLocally
from ..settings import Settings
from .runtime import build_argv
from .sync import parse_synchronization, semaphore_limit

__all__ = [
    "TemplateScope",
    "TemplateStore",
    "check_supported",
    "container_argv",
    "image_runtime",
    "load_documents",
    "resolve_workflow",
]

WORKFLOW_KINDS = {"Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow"}

# Images that need no mapping: name without registry/tag → runtime.
BUILTIN_IMAGES = {
    "python": "python",
    "busybox": "shell",
    "alpine": "shell",
    "debian": "shell",
    "ubuntu": "shell",
    "bash": "shell",
    "argoproj/argosay:v2": "argosay",
    # this project's runtime image (docker/): the main environment's interpreter is its local twin
    "scanflow-argo/runtime": "python",
}

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
    "memoize",
    "executor",
)
IGNORED_CONTAINER_FIELDS = (
    "resources",
    "securityContext",
    "imagePullPolicy",
    "ports",
    "livenessProbe",
    "readinessProbe",
    "lifecycle",
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
REFUSED_SPEC_FIELDS = {
    "artifactRepositoryRef": "artifactRepositoryRef (a cluster artifact repository)",
}
CLOUD_ARTIFACTS = ("s3", "gcs", "azure", "hdfs", "oss", "artifactory", "git", "http", "webHDFS")


def load_documents(source: str | Path) -> list[dict[str, Any]]:
    """Every YAML document of a file (or of a YAML string), skipping empty ones."""
    try:
        text = Path(source).read_text() if isinstance(source, Path) else source
        docs = [d for d in yaml.safe_load_all(text) if d]
    except OSError as err:
        raise EngineError(f"cannot read {source}: {err}") from err
    except yaml.YAMLError as err:
        raise EngineError(f"{source} is not valid YAML: {err}") from err
    for doc in docs:
        if not isinstance(doc, dict):
            raise EngineError(f"{source}: each YAML document must be a mapping (an Argo manifest)")
    return docs


@dataclass
class TemplateScope:
    """The templates a template name resolves against: the Workflow's or a WorkflowTemplate's."""

    key: str
    templates: dict[str, dict[str, Any]]
    defaults: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str, where: str) -> dict[str, Any]:
        tmpl = self.templates.get(name)
        if tmpl is None:
            known = ", ".join(sorted(self.templates)) or "none"
            raise EngineError(f"{where}: template {name!r} not found in {self.key} (templates: {known})")
        return tmpl


class TemplateStore:
    """WorkflowTemplates and ClusterWorkflowTemplates that ``templateRef`` resolves against."""

    def __init__(self, folder: Path | None = None, manifests: Iterable[Mapping[str, Any]] = ()) -> None:
        self._items: dict[tuple[bool, str], dict[str, Any]] = {}
        if folder is not None and folder.is_dir():
            for path in sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml", ".json")):
                for doc in load_documents(path):
                    if doc.get("kind") in ("WorkflowTemplate", "ClusterWorkflowTemplate"):
                        self.add(doc)
        for doc in manifests:
            self.add(doc)

    def add(self, manifest: Mapping[str, Any]) -> None:
        name = (manifest.get("metadata") or {}).get("name")
        if not name:
            raise EngineError(f"a {manifest.get('kind')} needs metadata.name to be referenced")
        self._items[(manifest.get("kind") == "ClusterWorkflowTemplate", name)] = dict(manifest)

    def get(self, name: str, cluster: bool = False) -> dict[str, Any]:
        item = self._items.get((bool(cluster), name))
        if item is None:
            kind = "ClusterWorkflowTemplate" if cluster else "WorkflowTemplate"
            raise EngineError(
                f"{kind} {name!r} not found: apply it first (scanflow-argo submit/apply, or put its YAML in the templates folder)"
            )
        return item

    def scope(self, name: str, cluster: bool = False) -> TemplateScope:
        item = self.get(name, cluster)
        spec = item.get("spec") or {}
        prefix = "cwft" if cluster else "wft"
        return TemplateScope(
            f"{prefix}:{name}", {t["name"]: t for t in spec.get("templates") or []}, spec.get("templateDefaults") or {}
        )


def _random_suffix() -> str:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(secrets.choice(alphabet) for _ in range(5))


def resolve_workflow(
    manifest: Mapping[str, Any],
    store: TemplateStore,
    parameters: Mapping[str, str] | None = None,
    entrypoint: str | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """The Workflow to run: kind checked, ``workflowTemplateRef`` merged, parameters applied, a name given."""
    kind = manifest.get("kind")
    if kind not in WORKFLOW_KINDS:
        raise EngineError(
            f"cannot run a {kind or 'manifest without kind'}: the engine runs Workflow, WorkflowTemplate or CronWorkflow manifests"
        )
    wf = copy.deepcopy(dict(manifest))
    meta = dict(wf.get("metadata") or {})
    spec = dict(wf.get("spec") or {})
    if kind == "CronWorkflow":
        # one run of the schedule's workflow, named as the cron controller names them
        spec = dict(spec.get("workflowSpec") or {})
        meta = {"generateName": f"{meta.get('name', 'cron')}-", "labels": dict(meta.get("labels") or {}), **_namespace(meta)}
    if kind in ("WorkflowTemplate", "ClusterWorkflowTemplate"):
        # Submitting a template runs it as the Argo UI does.
        spec = {"workflowTemplateRef": {"name": meta.get("name"), "clusterScope": kind == "ClusterWorkflowTemplate"}}
        store.add(manifest)
        # the run lands in the template's namespace, as a submission from it does on Argo
        meta = {"generateName": f"{meta.get('name', 'workflow')}-", "labels": dict(meta.get("labels") or {}), **_namespace(meta)}
    ref = spec.pop("workflowTemplateRef", None)
    if ref:
        base = copy.deepcopy(store.get(ref.get("name", ""), bool(ref.get("clusterScope"))).get("spec") or {})
        base_args = (base.get("arguments") or {}).get("parameters") or []
        own_args = (spec.get("arguments") or {}).get("parameters") or []
        merged = {**base, **spec}
        merged["arguments"] = {**(base.get("arguments") or {}), **(spec.get("arguments") or {})}
        merged["arguments"]["parameters"] = _merge_params(base_args, own_args)
        spec = merged
        meta.setdefault("labels", {})
        meta["labels"] = {
            **((store.get(ref.get("name", ""), bool(ref.get("clusterScope"))).get("metadata") or {}).get("labels") or {}),
            **meta["labels"],
        }
    if entrypoint:
        spec["entrypoint"] = entrypoint
    if parameters:
        args = spec.setdefault("arguments", {})
        args["parameters"] = _merge_params(
            args.get("parameters") or [], [{"name": k, "value": str(v)} for k, v in parameters.items()]
        )
    if not spec.get("entrypoint"):
        raise EngineError("the workflow has no spec.entrypoint: set one (or pass --entrypoint)")
    if name:
        meta["name"] = name
    if not meta.get("name"):
        meta["name"] = f"{meta.get('generateName') or 'workflow-'}{_random_suffix()}"
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", meta["name"]):
        raise EngineError(f"workflow name {meta['name']!r} is not a valid Kubernetes name (lowercase letters, digits, '-', '.')")
    meta.setdefault("namespace", "default")
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": meta, "spec": spec}


def _namespace(meta: Mapping[str, Any]) -> dict[str, str]:
    return {"namespace": str(meta["namespace"])} if meta.get("namespace") else {}


def _merge_params(base: list[dict[str, Any]], override: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = {p["name"]: dict(p) for p in base if "name" in p}
    for p in override:
        if "name" not in p:
            continue
        if p["name"] in out:
            merged = {**out[p["name"]], **p}
            if "value" in p:
                merged.pop("valueFrom", None)
            out[p["name"]] = merged
        else:
            out[p["name"]] = dict(p)
    return list(out.values())


def strip_image(image: str) -> str:
    """``docker.io/library/python:3.11@sha256:…`` → ``python``."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    for prefix in ("docker.io/", "index.docker.io/", "library/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    if name.startswith("quay.io/argoproj/"):
        name = name[len("quay.io/") :]
    return name


def image_runtime(image: str, image_map: Mapping[str, str], where: str = "") -> str:
    """The local runtime of ``image``: ``python``, ``shell``, ``argosay`` or an executable path."""
    for key in (image, strip_image(image)):
        if key in image_map:
            return image_map[key]
    tag = image.split("@", 1)[0].rsplit("/", 1)[-1].partition(":")[2]
    runtime = BUILTIN_IMAGES.get(f"{strip_image(image)}:{tag}") or BUILTIN_IMAGES.get(strip_image(image))
    if runtime is None:
        raise ImageNotMapped(
            f"image {image!r}{' in ' + where if where else ''} has no local runtime: map it with "
            f"SCANFLOW_ENGINE_IMAGE_MAP='{strip_image(image)}=python|shell|argosay|/path/to/executable' "
            "(EngineSettings.image_map)"
        )
    return runtime


def container_argv(body: Mapping[str, Any], settings: Settings, where: str, kind: str = "container") -> list[str]:
    """The host argv of one (already substituted) container of a pod — an init container, a sidecar,
    a containerSet's — under its image's runtime; ``kind`` names it in the error for a missing image."""
    image = str(body.get("image") or "")
    if not image:
        raise EngineError(f"{where}: the {kind} has no image")
    runtime = image_runtime(image, settings.engine.image_map, where)
    command, args = [str(x) for x in body.get("command") or []], [str(x) for x in body.get("args") or []]
    return build_argv(runtime, command, args, settings, image)


def _refuse_artifact(art: Mapping[str, Any], where: str) -> None:
    for kind in CLOUD_ARTIFACTS:
        if kind in art:
            loc = art[kind]
            if kind == "s3" and isinstance(loc, Mapping) and set(loc) <= {"key"}:
                continue  # key-only: the default (here: local) artifact repository
            raise NotSupportedLocally(f"{kind} artifact {art.get('name', '')!r}", where)


def check_supported(wf: Mapping[str, Any], store: TemplateStore, settings: Settings) -> list[str]:
    """Refuse what cannot run here before anything runs; return notes about ignored fields."""
    spec = wf.get("spec") or {}
    notes: set[str] = set()
    for key, feature in REFUSED_SPEC_FIELDS.items():
        if spec.get(key):
            if key == "hooks" and set(spec["hooks"]) <= {"exit"}:
                continue
            raise NotSupportedLocally(feature, "spec")
    _check_hooks(spec.get("hooks"), "spec")
    volumes = _check_spec_volumes(spec, settings, str((wf.get("metadata") or {}).get("namespace") or "default"))
    _check_synchronization(spec.get("synchronization"), "spec", settings)
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
        if "template" in holder and isinstance(holder["template"], str):
            todo.append((scope, scope.get(holder["template"], where)))
        elif "templateRef" in holder:
            ref = holder["templateRef"]
            sub = store.scope(ref.get("name", ""), bool(ref.get("clusterScope")))
            todo.append((sub, sub.get(ref.get("template", ""), where)))
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
        tmpl = {**scope.defaults, **tmpl} if scope.defaults else tmpl
        where = f"template {tmpl.get('name')!r}"
        _check_template(tmpl, where, settings, notes, volumes)
        for group in tmpl.get("steps") or []:
            for step in group if isinstance(group, list) else [group]:
                _check_task(step, where, notes)
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
    from .daemons import check_daemon_ports  # two daemons on one port would collide here

    check_daemon_ports(spec, lambda sc, holder: _resolve_ref(sc, holder, store), root)
    return sorted(notes)


def _resolve_ref(
    scope: TemplateScope, holder: Mapping[str, Any], store: TemplateStore
) -> tuple[TemplateScope, dict[str, Any] | None]:
    """The (scope, template) a step/task names, or (scope, None) when it cannot be found."""
    try:
        if "templateRef" in holder:
            ref = holder["templateRef"]
            sub = store.scope(str(ref.get("name", "")), bool(ref.get("clusterScope")))
            return sub, sub.templates.get(str(ref.get("template", "")))
        if "inline" in holder:
            return scope, {"name": f"{holder.get('name', 'inline')}.inline", **holder["inline"]}
        return scope, scope.templates.get(str(holder.get("template", "")))
    except EngineError:
        return scope, None


def _check_task(task: Mapping[str, Any], where: str, notes: set[str]) -> None:
    _check_hooks(task.get("hooks"), f"{where} task/step {task.get('name')!r}")
    for art in (task.get("arguments") or {}).get("artifacts") or []:
        _refuse_artifact(art, where)


def _check_hooks(hooks: Any, where: str) -> None:
    """Lifecycle hooks: a mapping of name → hook; every hook but ``exit`` needs an ``expression`` (as Argo)."""
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
            raise EngineError(
                f"{where}: lifecycle hook {name!r} has no expression; give it one "
                f"(e.g. expression: workflow.status == \"Running\") or name it 'exit' to make it an exit handler"
            )


def _check_template(
    tmpl: Mapping[str, Any], where: str, settings: Settings, notes: set[str], volumes: frozenset[str] = frozenset()
) -> None:
    _check_daemon_and_sidecars(tmpl, where, settings, volumes)
    _check_template_volumes(tmpl, where, settings, volumes)
    _check_synchronization(tmpl.get("synchronization"), where, settings)
    for kind in ("plugin", "data"):
        if kind in tmpl:
            raise NotSupportedLocally(f"{kind} templates", where)
    if "http" in tmpl:
        from .http import check_http

        check_http(tmpl, where)
    if "containerSet" in tmpl:
        _check_container_set(tmpl, where, settings, notes)
    if "hooks" in tmpl and set(tmpl["hooks"]) - {"exit"}:
        raise NotSupportedLocally("lifecycle hooks", where)
    if "suspend" in tmpl and not (tmpl.get("suspend") or {}).get("duration"):
        raise NotSupportedLocally("suspend without a duration (it waits for a manual resume)", where)
    if "resource" in tmpl:
        _check_resource(tmpl["resource"], where)
    for key in IGNORED_TEMPLATE_FIELDS:
        if key in tmpl:
            notes.add(f"{key} in templates")
    for art in (tmpl.get("inputs") or {}).get("artifacts") or []:
        _refuse_artifact(art, where)
    for art in (tmpl.get("outputs") or {}).get("artifacts") or []:
        _refuse_artifact(art, where)
    body = tmpl.get("container") or tmpl.get("script")
    if body is not None:
        for key in IGNORED_CONTAINER_FIELDS:
            if key in body and not (tmpl.get("daemon") and key in ("readinessProbe", "ports")):  # a daemon's are used
                notes.add(f"container {key}")
        image = str(body.get("image") or "")
        if not image:
            raise EngineError(f"{where}: the container has no image")
        if "{{" not in image:
            runtime = image_runtime(image, settings.engine.image_map, where)
            _check_command(runtime, body, image, where, settings, script="script" in tmpl)


def _check_container_set(tmpl: Mapping[str, Any], where: str, settings: Settings, notes: set[str]) -> None:
    """A containerSet's graph (names, dependencies, no cycle) and each container's image and command."""
    from .containerset import check_container_set

    for c in check_container_set(tmpl, where):
        cwhere = f"{where} container {c['name']!r}"
        for key in IGNORED_CONTAINER_FIELDS:
            if key in c:
                notes.add(f"container {key}")
        image = str(c.get("image") or "")
        if not image:
            raise EngineError(f"{cwhere}: the container has no image")
        if "{{" not in image:
            _check_command(image_runtime(image, settings.engine.image_map, cwhere), c, image, cwhere, settings, script=False)


# -- sidecars and daemons (engine/daemons.py) -------------------------------------------------
def _check_daemon_and_sidecars(tmpl: Mapping[str, Any], where: str, settings: Settings, volumes: frozenset[str]) -> None:
    """Sidecars: images mapped, commands present, mounts declared. Daemons: a container or script
    pod whose readiness probe can be checked here, without a lock or retries it could not honour."""
    from .daemons import check_probe, sidecar_containers
    from .volumes import check_mounts

    if tmpl.get("daemon"):
        body = tmpl.get("container") or tmpl.get("script")
        if body is None:
            raise NotSupportedLocally("daemon: true on a template without a container or script", where)
        if tmpl.get("synchronization"):
            raise NotSupportedLocally("synchronization on a daemon template (its lock would outlive the node)", where)
        check_probe(body, where)
        _check_first_command(body, where, settings)
    sidecars = sidecar_containers(tmpl)
    if not sidecars:
        return
    if not (tmpl.get("container") or tmpl.get("script")):
        raise NotSupportedLocally("sidecars on a template without a container or script", where)
    declared = set(volumes) | {str(v.get("name")) for v in tmpl.get("volumes") or []}
    for c in sidecars:
        cwhere = f"{where} sidecar {c['name']!r}"
        image = str(c.get("image") or "")
        if not image:
            raise EngineError(f"{cwhere}: the sidecar has no image")
        if "{{" not in image:
            _check_command(image_runtime(image, settings.engine.image_map, cwhere), c, image, cwhere, settings, script=False)
            _check_first_command(c, cwhere, settings)
        check_mounts(c.get("volumeMounts") or [], declared, where, str(c["name"]))
        if c.get("volumeMounts") and (settings.engine.sandbox == "none" or shutil.which("bwrap") is None):
            raise NotSupportedLocally("volumeMounts without the node sandbox (install bubblewrap)", cwhere)


_SHELL_WORDS = frozenset(  # shell keywords and builtins: never looked up on the host
    "if then else elif fi for while until do done case esac in function { } ! [ [[ . : true false test echo printf "  # noqa: SIM905
    "exit return set unset export cd read eval exec trap wait shift local alias type command sleep kill pwd".split()
)


def _check_first_command(body: Mapping[str, Any], where: str, settings: Settings) -> None:
    """A long-running ``sh -c '<tool> …'`` whose tool this machine lacks would fail when it starts
    (a daemon then never gets ready): say so before anything runs, as for a missing command."""
    command = [str(c) for c in body.get("command") or []]
    args = [str(a) for a in body.get("args") or []]
    if len(command) < 2 or Path(command[0]).name not in ("sh", "bash", "ash", "dash") or command[1] != "-c" or not args:
        return
    script = args[0] if len(command) == 2 else command[2]
    words = script.strip().split(None, 1)
    word = words[0] if words else ""
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*", word) or word in _SHELL_WORDS or shutil.which(word):
        return
    image = str(body.get("image") or "")
    raise ImageNotMapped(
        f"{where} runs {word!r} (in its shell command) from image {image!r}, which this machine lacks: install it, "
        f"or map the image to an executable with SCANFLOW_ENGINE_IMAGE_MAP='{strip_image(image)}=/path/to/executable'"
    )


def _check_command(runtime: str, body: Mapping[str, Any], image: str, where: str, settings: Settings, script: bool) -> None:
    command = list(body.get("command") or [])
    if not command or "{{" in str(command[0]):
        return
    exe = str(command[0])
    if runtime == "python" and Path(exe).name.startswith("python"):
        return
    if runtime == "argosay" and exe in ("/argosay", "argosay"):
        return
    if runtime not in ("python", "shell", "argosay"):
        return
    if shutil.which(exe) is None:
        raise ImageNotMapped(
            f"{where} runs {exe!r} from image {image!r}, which this machine lacks: install it, or map the image "
            f"to an executable with SCANFLOW_ENGINE_IMAGE_MAP='{strip_image(image)}=/path/to/executable'"
        )


def _check_resource(resource: Mapping[str, Any], where: str) -> None:
    action = resource.get("action")
    manifest = resource.get("manifest")
    kind = ""
    if isinstance(manifest, str):
        match = re.search(r"^kind:\s*(\S+)", manifest, re.MULTILINE)
        kind = match.group(1) if match else ""
    elif isinstance(manifest, Mapping):
        kind = str(manifest.get("kind", ""))
    allowed = {"SeldonDeployment": ("create", "apply", "patch"), "Workflow": ("create", "apply")}
    if action in allowed.get(kind, ()):
        if resource.get("successCondition") or resource.get("failureCondition"):
            raise NotSupportedLocally("resource success/failure conditions", where)
        return
    raise NotSupportedLocally(
        f"resource action {action!r} on {kind or 'a manifest'} (only create/apply/patch of a SeldonDeployment or create/apply of a Workflow)",
        where,
    )


# -- volumes and init containers (engine/volumes.py) ----------------------------------------
def _check_spec_volumes(spec: Mapping[str, Any], settings: Settings, namespace: str) -> frozenset[str]:
    """Check the workflow's volumes and claim templates; the names its pods may mount."""
    from .volumes import check_volume, claim_dir, claim_names, gc_strategy, volume_kind

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
    from .volumes import check_mounts, check_volume, init_containers

    declared = set(volumes)
    for vol in tmpl.get("volumes") or []:
        check_volume(vol, where)
        declared.add(str(vol["name"]))
    body = tmpl.get("container") or tmpl.get("script")
    containers = [(str((body or {}).get("name") or "main"), body or {})]
    for i, init in enumerate(tmpl.get("initContainers") or []):
        if not init.get("image"):
            raise EngineError(f"{where}: init container {init.get('name', i)!r} has no image")
        if "{{" not in str(init["image"]):
            image_runtime(str(init["image"]), settings.engine.image_map, f"{where} init container {init.get('name', i)!r}")
    containers += [(str(c["name"]), c) for c in init_containers(tmpl)]
    if "containerSet" in tmpl:  # each container of a set mounts its own and the set's volumeMounts
        from .containerset import check_container_set

        containers = [(str(c["name"]), c) for c in check_container_set(tmpl, where)] + containers[1:]
    mounted = False
    for name, c in containers:
        check_mounts(c.get("volumeMounts") or [], declared, where, name)
        mounted = mounted or bool(c.get("volumeMounts"))
    if mounted and (settings.engine.sandbox == "none" or shutil.which("bwrap") is None):
        raise NotSupportedLocally(
            "volumeMounts without the node sandbox (install bubblewrap: apt-get install bubblewrap; "
            "and leave SCANFLOW_ENGINE_SANDBOX unset or 'bwrap')",
            where,
        )


# -- synchronization (engine/sync.py) ----------------------------------------------------------
def _check_synchronization(sync: Mapping[str, Any] | None, where: str, settings: Settings) -> None:
    """Validate the block (unknown shapes, database semaphores refused) and, before anything runs,
    each semaphore limit that names its ConfigMap key literally (a templated one is read when taken)."""
    for spec in parse_synchronization(sync, "default", where):
        if spec.semaphore and "{{" not in spec.name + spec.key:
            semaphore_limit(settings.home, spec, where)
