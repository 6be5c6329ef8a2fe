"""Apply manifests to a platform, as ``kubectl apply`` would: ``scanflow-argo apply`` and the demo share it.

Sources are YAML files, folders of them (``manifests/generated``) or ``module:app`` compiled with
``scanflow_argo.compile.compile_app``. Every object is checked before anything is applied, so a bad
kind never leaves half the objects applied. Argo kinds go to ``apply_template``, SeldonDeployments to
``apply_deployment``; ConfigMaps become files of their namespace locally (the manifest's ``metadata.namespace``,
else the platform's: ``--namespace``/``--team``), where ``engine/core/configstore.py`` says and the engine's runs
of that namespace read them, and PersistentVolumeClaims folders under ``<home>/volumes/``
(where it mounts them); the rest (RBAC, agent Deployments, Services, PodMonitors) are
the cluster admin's business: ``kubectl apply -k manifests/``, never this command.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .._imports import import_ref, project_dir_of
from ..engine.core.configstore import valid_namespace, write_configmap
from ..engine.core.manifest import KubeLoader, yaml_problem
from ..errors import NotFoundError, PlatformError, ScanflowError
from ..settings import Settings
from ..spec.application import Application
from ..tracking.server import resolve_uri
from ._local.claims import apply_claim

__all__ = ["Applied", "Source", "apply_objects", "load_sources"]

TEMPLATE_KINDS = ("WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow")
DEPLOYMENT_KINDS = ("SeldonDeployment",)
CLUSTER_KINDS = frozenset(
    {
        "Namespace",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Secret",
        "Service",
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "Job",
        "PersistentVolumeClaim",
        "Ingress",
        "NetworkPolicy",
        "PodMonitor",
        "ServiceMonitor",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "Lease",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    }
)
"""Kubernetes kinds the manifests may hold that ``kubectl apply -k manifests/`` installs, not this command."""

_KUBECTL_HINT = "cluster objects are installed with `kubectl apply -k manifests/`"
_YAML_SUFFIXES = (".yaml", ".yml", ".json")
_APPLY_ORDER = {"ConfigMap": 0, "WorkflowTemplate": 1, "ClusterWorkflowTemplate": 1, "CronWorkflow": 2, "SeldonDeployment": 3}
"""Templates before deployments: a deployment's model may come from what the templates train."""


@dataclass(frozen=True)
class Source:
    """One object to apply, with where it came from (for messages) and the project it belongs to."""

    obj: dict[str, Any]
    origin: str
    """The file (``manifests/generated/x.yaml``) or ``module:app`` it was read from."""
    project_dir: Path
    """Folder script steps import the project's code from when run locally (``pipelines.*``)."""

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind"))

    @property
    def name(self) -> str:
        return str((self.obj.get("metadata") or {}).get("name") or "")

    @property
    def ref(self) -> str:
        """``kind/name`` as kubectl prints it (``workflowtemplate/mnist-train``)."""
        return f"{self.kind.lower()}/{self.name}"


@dataclass(frozen=True)
class Applied:
    """What happened to one object: ``created``, ``configured`` or ``skipped`` (with why)."""

    source: Source
    action: str
    note: str = ""

    def line(self) -> str:
        return f"{self.source.ref} {self.action}" + (f" ({self.note})" if self.note else "")


# -- reading --------------------------------------------------------------------------------------


def load_sources(sources: Iterable[str], cwd: Path | None = None, stdin: Any = None) -> list[Source]:
    """The objects in files, folders (recursively, ``kustomization.yaml`` excepted), ``module:app`` refs and ``-``
    (standard input: ``kubectl kustomize manifests/serving | scanflow-argo apply -``)."""
    cwd = (cwd or Path.cwd()).resolve()
    out: list[Source] = []
    for text in sources:
        if text == "-":
            out += _read_text((stdin or sys.stdin).read(), "<stdin>", cwd)
            continue
        path = Path(text) if Path(text).is_absolute() else cwd / text
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix in _YAML_SUFFIXES and p.is_file())
            files = [p for p in files if p.stem != "kustomization"]
            if not files:
                raise PlatformError(f"{text}: the folder holds no .yaml/.yml/.json manifests")
            for file in files:
                out += _read_file(file, cwd)
        elif path.is_file() or path.suffix in _YAML_SUFFIXES:
            out += _read_file(path, cwd)
        elif ":" in text:
            out += _compile(text, cwd)
        else:
            raise PlatformError(f"{text!r} is neither a file, a folder nor module:attribute (e.g. pipelines.mnist:app)")
    return out


def _read_file(path: Path, project_dir: Path) -> list[Source]:
    try:
        text = path.read_text()
    except OSError as err:
        raise PlatformError(f"cannot read {path}: {err}") from err
    return _read_text(text, str(path), project_dir)


def _read_text(text: str, origin: str, project_dir: Path) -> list[Source]:
    try:
        docs = [d for d in yaml.load_all(text, Loader=KubeLoader) if d is not None]  # safe, alias bombs refused
    except yaml.YAMLError as err:
        raise PlatformError(f"cannot read {origin}: {yaml_problem(err)}") from err
    out = []
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict) or not doc.get("kind"):
            raise PlatformError(f"{origin}: document {i + 1} is not a Kubernetes object (each document needs a kind)")
        out.append(Source(doc, origin, project_dir))
    return out


def _compile(ref: str, cwd: Path) -> list[Source]:
    from ..compile import compile_app  # compiling pulls in Hera: only for module:app sources

    app = Application.of(import_ref(ref, cwd=cwd, error=PlatformError), where=ref)
    return [Source(obj, ref, project_dir_of(ref.partition(":")[0], cwd)) for obj in compile_app(app)]


# -- checking and applying ------------------------------------------------------------------------


def _check(sources: list[Source], platform_name: str) -> None:
    """Every problem at once, before anything is applied."""
    problems = []
    for s in sources:
        if not _file_name_ok(s.name):
            problems.append(f"{s.origin}: a {s.kind} needs a valid metadata.name (got {s.name!r})")
        elif s.kind == "Workflow":
            problems.append(f"{s.origin}: workflow/{s.name} is a run, not an object to apply: scanflow-argo submit {s.origin}")
        elif s.kind not in TEMPLATE_KINDS + DEPLOYMENT_KINDS and s.kind not in CLUSTER_KINDS:
            problems.append(
                f"{s.origin}: kind {s.kind} ({s.name}) cannot be applied: this command applies "
                f"{', '.join(TEMPLATE_KINDS + DEPLOYMENT_KINDS)} and ConfigMaps ({_KUBECTL_HINT})"
            )
        elif s.kind == "PersistentVolumeClaim" and not _file_name_ok(str(s.obj["metadata"].get("namespace") or "default")):
            problems.append(f"{s.origin}: persistentvolumeclaim/{s.name}: namespace must be a plain name")
        elif s.kind == "ConfigMap":
            bad = [k for k in [s.name, *(s.obj.get("data") or {})] if not _file_name_ok(str(k))]
            problems += [f"{s.origin}: configmap/{s.name}: {k!r} cannot be a file name (keys are names, not paths)" for k in bad]
            ns = s.obj["metadata"].get("namespace")
            if ns is not None and not valid_namespace(str(ns)):
                problems.append(f"{s.origin}: configmap/{s.name}: namespace {ns!r} is no Kubernetes namespace name")
    if problems:
        raise PlatformError(f"nothing applied to the {platform_name} platform:\n" + "\n".join(f"  - {p}" for p in problems))


def apply_objects(
    platform: Any,
    sources: list[Source],
    settings: Settings,
    *,
    echo: Callable[[str], None] = print,
    transform: Callable[[Source], Mapping[str, Any]] | None = None,
) -> list[Applied]:
    """Check every object, then apply them (templates first, deployments last), echoing one line each.

    ``transform`` may change an object before it is applied (the demo sets its parameter defaults).
    Returns what happened to each object, in the order applied."""
    _check(sources, platform.name)
    ordered = sorted(sources, key=lambda s: _APPLY_ORDER.get(s.kind, -1))
    results: list[Applied] = []
    if platform.name == "local" and any(_rewrites_tracking(s) for s in ordered):
        echo(f"note: MLFLOW_TRACKING_URI in ConfigMaps points at the local MLflow here ({_local_tracking(settings)})")
    for source in ordered:
        obj = dict(transform(source)) if transform else source.obj
        try:
            result = _apply_one(platform, Source(obj, source.origin, source.project_dir), settings)
        except ScanflowError as err:
            done = sum(r.action != "skipped" for r in results)
            raise PlatformError(f"{source.ref} (from {source.origin}) not applied, after {done} applied: {err}") from err
        echo(result.line())
        results.append(result)
    return results


def _apply_one(platform: Any, s: Source, settings: Settings) -> Applied:
    local = platform.name == "local"
    if s.kind in TEMPLATE_KINDS:
        if local:
            existed = platform.has_template(s.obj)
            platform.apply_template(s.obj, project_dir=s.project_dir)
            return Applied(s, "configured" if existed else "created")
        platform.apply_template(s.obj)
        return Applied(s, "configured")
    if s.kind in DEPLOYMENT_KINDS:
        existed = _deployment_exists(platform, s.name)
        note = platform.apply_deployment(s.obj)
        return Applied(s, "configured" if existed else "created", note if isinstance(note, str) else "")
    if local and s.kind == "ConfigMap":
        return Applied(s, _write_config_map(s.obj, settings, str(platform.namespace)))
    if local and s.kind == "PersistentVolumeClaim":
        return Applied(s, _make_claim(s.obj, settings))
    if local:
        why = "secrets are never read from files" if s.kind == "Secret" else "cluster only: kubectl apply -k manifests/"
        return Applied(s, "skipped", why)
    return Applied(s, "skipped", _KUBECTL_HINT)


def _file_name_ok(key: str) -> bool:
    return bool(key) and "/" not in key and "\\" not in key and not key.startswith(".")


def _deployment_exists(platform: Any, name: str) -> bool:
    try:
        platform.get_deployment(name)
    except NotFoundError:
        return False
    return True


def _rewrites_tracking(s: Source) -> bool:
    return s.kind == "ConfigMap" and "MLFLOW_TRACKING_URI" in (s.obj.get("data") or {})


def _local_tracking(settings: Settings) -> str:
    return resolve_uri(settings)


def _make_claim(obj: Mapping[str, Any], settings: Settings) -> str:
    """A claim is a folder ``<home>/volumes/<namespace>/<name>`` locally, where the engine mounts it
    (namespace ``default`` when the manifest names none, as for the workflows that run here)."""
    meta = obj["metadata"]
    existed = (settings.home / "volumes" / str(meta.get("namespace") or "default") / str(meta["name"])).is_dir()
    apply_claim(settings.home, "apply", obj)
    return "unchanged" if existed else "created"


def _write_config_map(obj: Mapping[str, Any], settings: Settings, namespace: str) -> str:
    """Write each key and the annotations (the engine reads ``workflows.argoproj.io/default-artifact-repository``
    there) into the ConfigMap's namespace: its ``metadata.namespace``, else the platform's, as ``kubectl apply -n``
    puts an object naming none."""
    meta = obj.get("metadata") or {}
    data = {str(k): str(v) for k, v in (obj.get("data") or {}).items()}
    if "MLFLOW_TRACKING_URI" in data:  # the compiled value is the cluster's MLflow service
        data["MLFLOW_TRACKING_URI"] = _local_tracking(settings)
    annotations = {str(k): str(v) for k, v in (meta.get("annotations") or {}).items()}
    existed = write_configmap(settings.home, str(meta.get("namespace") or namespace), str(meta["name"]), data, annotations)
    return "configured" if existed else "created"
