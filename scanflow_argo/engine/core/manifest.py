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
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ...errors import EngineError

__all__ = ["TemplateScope", "TemplateStore", "load_documents", "resolve_ref", "resolve_template", "resolve_workflow"]

WORKFLOW_KINDS = {"Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow"}


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
        for manifest in manifests:
            self.add(manifest)

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
        tmpl = {**copy.deepcopy(scope.defaults), **tmpl}
    return copy.deepcopy(tmpl), scope


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
