"""Manifests → a runnable Workflow: loading, template references and defaults (what is refused is
``engine/checks.py``'s).

``load_documents`` reads (multi-document) YAML; ``TemplateStore`` holds the WorkflowTemplates and
ClusterWorkflowTemplates of a local folder; ``TemplateScope`` is what a template name resolves against
(``resolve_template``: ``template``, ``templateRef`` or ``inline``, with ``templateDefaults`` applied as
Argo's ``workflow/templateresolution`` does); ``resolve_workflow`` turns a Workflow (or a WorkflowTemplate
submitted with parameters, or a CronWorkflow) into the Workflow the engine runs; ``apply_workflow_metadata``
puts ``spec.workflowMetadata``'s labels and annotations on it, as Argo's controller does, and ``labels_from``
evaluates its ``labelsFrom`` once the global variables are known.
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

from ...argoexpr.errors import ExprError
from ...argoexpr.expr import eval_expr
from ...argoexpr.golang import go_type
from ...compile.crd import LABEL_VALUE_RULE, is_label_value
from ...compile.kubeyaml import MAX_YAML_NODES, KubeLoader, load_yaml, yaml_problem
from ...errors import EngineError, InvalidWorkflow
from ...status import CLUSTER_TEMPLATE_LABEL, CRON_LABEL, TEMPLATE_LABEL

__all__ = [
    "MAX_YAML_NODES",
    "TEMPLATE_TYPES",
    "KubeLoader",
    "TemplateScope",
    "TemplateStore",
    "apply_template_defaults",
    "apply_workflow_metadata",
    "as_json_values",
    "created",
    "labels_from",
    "load_documents",
    "load_yaml",
    "random_suffix",
    "resolve_ref",
    "resolve_template",
    "resolve_workflow",
    "yaml_problem",
]

WORKFLOW_KINDS = {"Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow"}


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

    def argo_scope(self, workflow: str) -> str:
        """Argo's ``templateScope`` string of this scope (``templateresolution.Context.GetTemplateScope``:
        the resource scope and name of the template base): ``local/<workflow>``, ``namespaced/<name>``,
        ``cluster/<name>``."""
        prefix, _, name = self.key.partition(":")
        if prefix == "cwft":
            return f"cluster/{name}"
        if prefix == "wft":
            return f"namespaced/{name}"
        return f"local/{workflow}"

    def get(self, name: str, where: str) -> dict[str, Any]:
        tmpl = self.templates.get(name)
        if tmpl is None:
            known = ", ".join(sorted(self.templates)) or "none"
            raise EngineError(f"{where}: template {name!r} not found in {self.key} (templates: {known})")
        return tmpl


class TemplateStore:
    """WorkflowTemplates and ClusterWorkflowTemplates that ``templateRef`` resolves against.

    ``namespace``: the run's. A WorkflowTemplate is namespaced, so a Workflow reads only those of its own
    namespace, as Argo's controller looks one up by the workflow's namespace (``workflow/templateresolution/
    context.go``, ``WorkflowTemplateFromRef`` → ``wftmplGetter.Get(name)`` of a namespaced lister); a
    ClusterWorkflowTemplate is read from any. A file's namespace is its ``metadata.namespace``, else the
    folder it sits in under ``folder`` (the local platform keeps ``<folder>/<namespace>/<name>.yaml``);
    a file at the top of ``folder`` naming none (put there by hand) is read from every namespace. The
    ``manifests`` given with the run are always read."""

    def __init__(
        self, folder: Path | None = None, manifests: Iterable[Mapping[str, Any]] = (), namespace: str | None = None
    ) -> None:
        self._items: dict[tuple[bool, str], dict[str, Any]] = {}
        if folder is not None and folder.is_dir():
            for path in sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml", ".json")):
                for doc in load_documents(path):
                    if doc.get("kind") == "ClusterWorkflowTemplate" or (
                        doc.get("kind") == "WorkflowTemplate" and _readable_from(doc, path, folder, namespace)
                    ):
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


def _readable_from(doc: Mapping[str, Any], path: Path, folder: Path, namespace: str | None) -> bool:
    """Whether the WorkflowTemplate ``doc`` of ``path`` (under ``folder``) is read by a run in ``namespace``."""
    if namespace is None:
        return True
    meta = doc.get("metadata")
    owner = meta.get("namespace") if isinstance(meta, Mapping) else None
    if not owner and path.parent != folder:
        owner = path.relative_to(folder).parts[0]
    return not owner or owner == namespace


def random_suffix() -> str:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(secrets.choice(alphabet) for _ in range(5))


def created(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """``manifest`` as the API server stores it on create: a ``metadata.generateName`` without a ``name`` gets
    the prefix and five random characters (``apiserver/pkg/storage/names/generate.go``); otherwise unchanged."""
    meta = dict(manifest.get("metadata") or {})
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = f"{meta['generateName']}{random_suffix()}"
    return {**manifest, "metadata": meta}


CRON_PROPAGATED_LABELS = (
    "workflows.argoproj.io/creator",
    "workflows.argoproj.io/creator-email",
    "workflows.argoproj.io/creator-preferred-username",
)
"""The labels of a CronWorkflow its runs get (``workflow/common/convert.go`` ``labelsToPropagate``)."""


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
        # one run of the schedule's workflow, named and labelled as the cron controller makes them
        # (workflow/common/convert.go ConvertCronWorkflowToWorkflowWithProperties, toWorkflow): the creator
        # labels of the CronWorkflow, its name, its spec.workflowMetadata — not its other labels
        cron_name = created(manifest)["metadata"].get("name") or "cron"  # a generateName: named on create first
        cron_labels = meta.get("labels") or {}
        labels = {k: str(cron_labels[k]) for k in CRON_PROPAGATED_LABELS if k in cron_labels}
        labels[CRON_LABEL] = str(cron_name)
        wf_meta = spec.get("workflowMetadata") or {}
        labels.update({str(k): str(v) for k, v in (wf_meta.get("labels") or {}).items()})
        annotations = {str(k): str(v) for k, v in (wf_meta.get("annotations") or {}).items()}
        spec = dict(spec.get("workflowSpec") or {})
        meta = {"generateName": f"{cron_name}-", "labels": labels, **_namespace(meta)}
        if annotations:
            meta["annotations"] = annotations
    if kind in ("WorkflowTemplate", "ClusterWorkflowTemplate"):
        manifest = created(manifest)  # created first (as Hera's `create()`): a generateName gets its name now
        meta["name"] = manifest["metadata"]["name"]
        # Submitting a template runs it as the Argo UI does: the Workflow of convert.go
        # NewWorkflowFromWorkflowTemplate, which carries none of the template's own labels
        spec = {"workflowTemplateRef": {"name": meta.get("name"), "clusterScope": kind == "ClusterWorkflowTemplate"}}
        store.add(manifest)
        # the run lands in the template's namespace, as a submission from it does on Argo
        meta = {"generateName": f"{meta.get('name', 'workflow')}-", **_namespace(meta)}
    ref = spec.pop("workflowTemplateRef", None)
    if ref:
        try:
            found = store.get(ref.get("name", ""), bool(ref.get("clusterScope")))
        except EngineError as err:  # Argo's controller errors the workflow (operator.go setExecWorkflow → setStoredWfSpec)
            kind = "clusterworkflowtemplates" if ref.get("clusterScope") else "workflowtemplates"
            meta.setdefault("namespace", "default")
            if not meta.get("name"):
                meta["name"] = f"{meta.get('generateName') or 'workflow-'}{random_suffix()}"
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
        # operator.go setExecWorkflow → setWfTemplateLabel: the run is labelled with the template's name; the
        # template's own metadata is not copied (setStoredWfSpec joins only the controller's workflowDefaults
        # metadata; what a template gives its runs is spec.workflowMetadata, merged with the spec above)
        label = CLUSTER_TEMPLATE_LABEL if ref.get("clusterScope") else TEMPLATE_LABEL
        meta["labels"] = {**(meta.get("labels") or {}), label: str(ref.get("name", ""))}
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
        meta["name"] = f"{meta.get('generateName') or 'workflow-'}{random_suffix()}"
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", meta["name"]):
        raise EngineError(f"workflow name {meta['name']!r} is not a valid Kubernetes name (lowercase letters, digits, '-', '.')")
    meta.setdefault("namespace", "default")
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": meta, "spec": spec}


def apply_workflow_metadata(wf: dict[str, Any]) -> None:
    """Put ``spec.workflowMetadata.labels`` and ``.annotations`` (of the Workflow, or of the template its
    ``workflowTemplateRef`` merged in) on the Workflow's metadata, over what it had — as Argo's controller does
    when it first operates a workflow (argo-workflows ``workflow/controller/operator.go``
    ``updateWorkflowMetadata``), so a run from a template carries the template's labels (e.g. the dataset it
    consumes) and ``workflow.labels.NAME`` reads them. A label value Kubernetes refuses
    (``validation.IsValidLabelValue``) errors the workflow in Argo's words."""
    md = (wf.get("spec") or {}).get("workflowMetadata") or {}
    meta = wf.setdefault("metadata", {})
    for key, value in (md.get("labels") or {}).items():
        text = str(value)
        if not is_label_value(text):
            raise InvalidWorkflow(
                f"invalid label value {text!r} for label {key!r}: {LABEL_VALUE_RULE} (at most 63)",
                "Error",
                f"fix spec.workflowMetadata.labels[{key!r}] of the workflow or its template",
                wf,
            )
        meta.setdefault("labels", {})[str(key)] = text
    for key, value in (md.get("annotations") or {}).items():
        meta.setdefault("annotations", {})[str(key)] = str(value)


def labels_from(wf: Mapping[str, Any], scope: Mapping[str, Any]) -> dict[str, str]:
    """The labels ``spec.workflowMetadata.labelsFrom`` gives: each expression evaluated over the global variables
    (``scope``) when the workflow starts (``workflow/controller/operator.go`` ``updateWorkflowMetadata``, after
    ``setGlobalParameters``). Its result must be a string Kubernetes takes as a label value; else
    ``InvalidWorkflow`` in Argo's words (the controller errors the workflow)."""
    md = (wf.get("spec") or {}).get("workflowMetadata") or {}
    out: dict[str, str] = {}
    for key, source in (md.get("labelsFrom") or {}).items():
        expression = str((source or {}).get("expression", ""))
        hint = f"fix spec.workflowMetadata.labelsFrom[{key!r}].expression"
        try:
            value = eval_expr(expression, scope)
        except ExprError as err:
            raise InvalidWorkflow(
                f'failed to evaluate label "{key}" expression "{expression}": {err.cause}', "Error", hint
            ) from None
        if not isinstance(value, str):
            raise InvalidWorkflow(
                f'failed to evaluate label "{key}" expression "{expression}" evaluted to {go_type(value)} but must be a string',
                "Error",
                hint,
            )
        if not is_label_value(value):
            raise InvalidWorkflow(
                f'invalid label value "{value}" for label "{key}" and expression "{expression}": {LABEL_VALUE_RULE} (at most 63)',
                "Error",
                hint,
            )
        out[str(key)] = value
    return out


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
