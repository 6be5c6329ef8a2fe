"""Manifests → a runnable Workflow: loading, template references and defaults (what is refused is
``engine/checks.py``'s).

``load_documents`` reads (multi-document) YAML; ``TemplateStore`` holds the WorkflowTemplates and
ClusterWorkflowTemplates of a local folder; ``TemplateScope`` is what a template name resolves against
(``resolve_template``: ``template``, ``templateRef`` or ``inline``, with ``templateDefaults`` applied as
Argo's ``workflow/templateresolution`` does); ``resolve_workflow`` turns a Workflow (or a WorkflowTemplate
submitted with parameters, or a CronWorkflow) into the Workflow the engine runs.
"""

from __future__ import annotations

import copy
import datetime
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ...errors import EngineError, InvalidWorkflow

__all__ = [
    "MAX_YAML_NODES",
    "TEMPLATE_TYPES",
    "KubeLoader",
    "TemplateScope",
    "TemplateStore",
    "apply_template_defaults",
    "as_json_values",
    "load_documents",
    "load_yaml",
    "resolve_ref",
    "resolve_template",
    "resolve_workflow",
    "yaml_problem",
]

WORKFLOW_KINDS = {"Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow"}


MAX_YAML_NODES = 1_000_000
"""The most YAML nodes one document may expand to, aliases counted at full size. go-yaml (which the API
server's ``sigs.k8s.io/yaml`` uses) refuses "excessive aliasing" (``decode.go`` ``allowedAliasRatio``, after
CVE-2019-11253, the "billion laughs"); PyYAML builds an alias as one shared object, so the expansion only
happens later (``json.dumps``, a deep copy) and would fill the memory. A million nodes is far beyond any
real manifest (the API server takes at most 3 MiB) and a few hundred MB at worst."""


class KubeLoader(yaml.SafeLoader):
    """YAML as the Kubernetes API server reads a manifest: ``sigs.k8s.io/yaml`` decodes into plain values with
    go-yaml, which keeps a timestamp-looking scalar (``2018-08-01T09:57:43Z``) a string when the target is an
    ``interface{}`` (go-yaml v2 ``decode.go``, "for backward compatibility reasons"); PyYAML's safe loader
    would make it a ``datetime``, which is no JSON value. A document that expands past ``MAX_YAML_NODES``
    (an alias bomb) is refused while it is composed, before anything is built from it."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._expanded: dict[int, int] = {}

    def compose_document(self) -> Any:
        self._expanded = {}
        return super().compose_document()

    def compose_node(self, parent: Any, index: Any) -> Any:
        node = super().compose_node(parent, index)
        if node is None or id(node) in self._expanded:  # an alias: its size is known, it is counted where it is used
            return node
        if isinstance(node, yaml.SequenceNode):
            size = 1 + sum(self._expanded.get(id(child), 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            size = 1 + sum(self._expanded.get(id(k), 1) + self._expanded.get(id(v), 1) for k, v in node.value)
        else:
            size = 1
        if size > MAX_YAML_NODES:
            raise yaml.composer.ComposerError(
                None,
                None,
                f"the document expands to more than {MAX_YAML_NODES:,} YAML nodes through its aliases (an alias "
                "bomb?); write the repeated parts out or make the document smaller",
                node.start_mark,
            )
        self._expanded[id(node)] = size
        return node


KubeLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml(text: str) -> Any:
    """One YAML document, read as the API server reads it (``KubeLoader``)."""
    return yaml.load(text, Loader=KubeLoader)  # a SafeLoader: no Python objects


def yaml_problem(err: yaml.YAMLError) -> str:
    """A YAML error on one line: what is wrong and where (PyYAML's own text spans lines and quotes the source)."""
    if isinstance(err, yaml.MarkedYAMLError) and err.problem:
        mark = err.problem_mark
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        return f"{err.problem}{at}"
    return " ".join(str(err).split())


def as_json_values(value: Any) -> Any:
    """``value`` with what JSON cannot hold made what the API server would store: a ``date``/``datetime``
    (a manifest parsed by PyYAML's own loader) becomes its RFC 3339 text, other non-JSON scalars their text."""
    if isinstance(value, Mapping):
        return {str(k): as_json_values(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [as_json_values(v) for v in value]
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.UTC).replace(tzinfo=None)
        return value.isoformat().replace("+00:00", "") + "Z"
    if isinstance(value, datetime.date):
        return value.isoformat()
    if value is None or isinstance(value, str | bool | int | float):
        return value
    return str(value)


def load_documents(source: str | Path) -> list[dict[str, Any]]:
    """Every YAML document of a file (or of a YAML string), skipping empty ones, read as the API server reads them."""
    where = str(source) if isinstance(source, Path) else "the manifest"
    try:
        text = Path(source).read_text() if isinstance(source, Path) else source
        docs = [d for d in yaml.load_all(text, Loader=KubeLoader) if d]  # a SafeLoader: no Python objects
    except OSError as err:
        raise EngineError(f"cannot read {source}: {err}") from err
    except yaml.YAMLError as err:
        raise EngineError(f"{where} is not valid YAML: {yaml_problem(err)}") from err
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
        for manifest in manifests:
            self.add(manifest)

    def add(self, manifest: Mapping[str, Any]) -> None:
        name = (manifest.get("metadata") or {}).get("name")
        if not name:
            raise EngineError(f"a {manifest.get('kind')} needs metadata.name to be referenced")
        self._items[(manifest.get("kind") == "ClusterWorkflowTemplate", name)] = as_json_values(manifest)

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
    wf = as_json_values(manifest)  # a copy, holding only JSON values, as the API server stores it
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
        try:
            found = store.get(ref.get("name", ""), bool(ref.get("clusterScope")))
        except EngineError as err:  # Argo's controller errors the workflow (operator.go setExecWorkflow → setStoredWfSpec)
            kind = "clusterworkflowtemplates" if ref.get("clusterScope") else "workflowtemplates"
            meta.setdefault("namespace", "default")
            if not meta.get("name"):
                meta["name"] = f"{meta.get('generateName') or 'workflow-'}{_random_suffix()}"
            unresolved = {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "Workflow",
                "metadata": meta,
                "spec": {**spec, "workflowTemplateRef": ref},
            }
            raise InvalidWorkflow(f'{kind}.argoproj.io "{ref.get("name")}" not found', "Error", str(err), unresolved) from err
        base = copy.deepcopy(found.get("spec") or {})
        base_args = (base.get("arguments") or {}).get("parameters") or []
        own_args = (spec.get("arguments") or {}).get("parameters") or []
        merged = {**base, **spec}
        merged["arguments"] = {**(base.get("arguments") or {}), **(spec.get("arguments") or {})}
        merged["arguments"]["parameters"] = _merge_params(base_args, own_args)
        spec = merged
        meta.setdefault("labels", {})
        meta["labels"] = {
            **((found.get("metadata") or {}).get("labels") or {}),
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


def resolve_template(
    holder: Mapping[str, Any], scope: TemplateScope, store: TemplateStore, where: str
) -> tuple[dict[str, Any], TemplateScope]:
    """The template a step/task/entrypoint names (``template``, ``templateRef`` or ``inline``), with its scope's
    ``templateDefaults`` under it; a private copy, so the caller may substitute in it."""
    if "templateRef" in holder:
        ref = holder["templateRef"]
        scope = store.scope(str(ref.get("name", "")), bool(ref.get("clusterScope")))
        tmpl = scope.get(str(ref.get("template", "")), where)
    elif "inline" in holder:
        tmpl = {"name": f"{holder.get('name', 'inline')}", **holder["inline"]}
    else:
        tmpl = scope.get(str(holder.get("template", "")), where)
    if scope.defaults:
        tmpl = apply_template_defaults(scope.defaults, tmpl)
    return copy.deepcopy(tmpl), scope


TEMPLATE_TYPES = ("container", "containerSet", "steps", "script", "resource", "dag", "suspend", "data", "http", "plugin")
"""The fields that give a template its type (``wfv1.TemplateType``)."""
_MERGE_KEYS = {
    "env": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ports": "containerPort",
    "volumes": "name",
    "initContainers": "name",
    "sidecars": "name",
    "parameters": "name",
    "artifacts": "name",
    "tolerations": "key",
    "hostAliases": "ip",
    "imagePullSecrets": "name",
}
"""Lists merged item by item (their ``patchMergeKey``) rather than replaced."""


def apply_template_defaults(defaults: Mapping[str, Any], tmpl: Mapping[str, Any]) -> dict[str, Any]:
    """``tmpl`` over the workflow's ``templateDefaults``, as Argo's ``mergedTemplateDefaultsInto``
    (``workflow/controller/operator.go``): the defaults of the other template types (``script`` for a
    ``container`` template…) are dropped, the rest is a strategic merge patch with the template as the patch
    (maps merged key by key, the lists of ``_MERGE_KEYS`` item by item, anything else the template's)."""
    own = next((t for t in TEMPLATE_TYPES if t in tmpl), None)
    applicable = {k: v for k, v in defaults.items() if k not in TEMPLATE_TYPES or k == own}
    return _strategic_merge(applicable, tmpl)


def _strategic_merge(original: Any, patch: Any, key: str = "") -> Any:
    if isinstance(original, Mapping) and isinstance(patch, Mapping):
        out = copy.deepcopy(dict(original))
        for k, v in patch.items():
            out[k] = _strategic_merge(original[k], v, k) if k in original else copy.deepcopy(v)
        return out
    merge_key = _MERGE_KEYS.get(key)
    if merge_key and isinstance(original, list) and isinstance(patch, list):
        items = [copy.deepcopy(x) for x in original]
        for item in patch:
            at = next(
                (
                    i
                    for i, x in enumerate(items)
                    if isinstance(x, Mapping)
                    and isinstance(item, Mapping)
                    and merge_key in item
                    and x.get(merge_key) == item.get(merge_key)
                ),
                None,
            )
            if at is None:
                items.append(copy.deepcopy(item))
            else:
                items[at] = _strategic_merge(items[at], item)
        return items
    return copy.deepcopy(patch)


def resolve_ref(
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
