"""Schema checks after compiling: every problem of every manifest, each with kind/name and path.

- Argo ``Workflow``/``WorkflowTemplate``/``CronWorkflow``/``ClusterWorkflowTemplate``: Argo's JSON schema
  (``argo-workflows.schema.json``);
- ``SeldonDeployment``: the CRD's ``openAPIV3Schema`` (``seldondeployment-crd.yaml``);
- Kubernetes built-ins: ``kubernetes_validate``'s offline schemas (strict, version ``KUBE_VERSION``);
- ``PodMonitor``: structural checks (selector, endpoints with port and path).

The schema folder is an argument (CLI ``--schemas``); the default is ``<project>/../shared/schemas``.
When it is absent, ``SchemaChecker.available`` is False and ``require()`` says what to do.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import SchemaError, SetupError

__all__ = ["KUBE_VERSION", "SchemaChecker", "check_manifests", "default_schemas_dir"]

KUBE_VERSION = "1.32.0"
"""Kubernetes version whose built-in schemas (shipped by kubernetes_validate) manifests are checked against."""

ARGO_SCHEMA = "argo-workflows.schema.json"
SELDON_CRD = "seldondeployment-crd.yaml"
_ARGO_KINDS = ("Workflow", "WorkflowTemplate", "CronWorkflow", "ClusterWorkflowTemplate")
# Argo's generated schema types IntOrString and Quantity as strings only, while Kubernetes (and Argo's
# CRDs, x-kubernetes-int-or-string) accept numbers too: `activeDeadlineSeconds: 30`, `cpu: 1` are valid.
_K8S_SCALARS = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {"anyOf": [{"type": "string"}, {"type": "number"}]},
}
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def default_schemas_dir() -> Path:
    """``<project>/../shared/schemas``, where the project is the folder holding ``scanflow_argo`` (or, for an
    installed package, the current folder)."""
    candidates = [Path(__file__).resolve().parents[2].parent, Path.cwd().resolve().parent]
    dirs = [c / "shared" / "schemas" for c in candidates]
    return next((d for d in dirs if d.is_dir()), dirs[0])


def _label(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind')}/{meta.get('name') or meta.get('generateName') or '?'}"


def _path(parts: Iterable[Any]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(root)"


class SchemaChecker:
    """Validators built once per kind; ``problems(obj)`` lists every problem of one manifest."""

    def __init__(self, schemas_dir: Path | str | None = None, kube_version: str = KUBE_VERSION) -> None:
        self.dir = Path(schemas_dir) if schemas_dir is not None else default_schemas_dir()
        self.kube_version = kube_version
        self._validators: dict[str, Any] = {}

    @property
    def available(self) -> bool:
        return (self.dir / ARGO_SCHEMA).is_file() and (self.dir / SELDON_CRD).is_file()

    def require(self) -> None:
        """``SetupError`` naming the folder and the fix when the schemas are absent."""
        if not self.available:
            raise SetupError(
                f"schemas not found in {self.dir} (need {ARGO_SCHEMA} and {SELDON_CRD}) — "
                "put the shared/ folder beside the project or pass --schemas DIR"
            )

    # -- validators --------------------------------------------------------------------------------
    def _argo(self, kind: str) -> Any:
        key = f"argo:{kind}"
        if key not in self._validators:
            import jsonschema

            self.require()
            try:
                doc = json.loads((self.dir / ARGO_SCHEMA).read_text())
            except (OSError, ValueError) as err:
                raise SetupError(f"cannot read {self.dir / ARGO_SCHEMA}: {err}") from err
            definitions = dict(doc["definitions"])
            definitions.update(_K8S_SCALARS)
            schema = {"$ref": f"#/definitions/io.argoproj.workflow.v1alpha1.{kind}", "definitions": definitions}
            self._validators[key] = jsonschema.Draft202012Validator(schema)
        return self._validators[key]

    def _seldon(self) -> Any:
        if "seldon" not in self._validators:
            import jsonschema
            import yaml

            self.require()
            try:
                loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~10x faster on this 350 kB CRD
                crd = yaml.load((self.dir / SELDON_CRD).read_text(), Loader=loader)
                version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
                schema = version["schema"]["openAPIV3Schema"]
            except (OSError, yaml.YAMLError, KeyError, StopIteration) as err:
                raise SetupError(f"cannot read the v1 openAPIV3Schema from {self.dir / SELDON_CRD}: {err}") from err
            self._validators["seldon"] = jsonschema.Draft7Validator(schema)
        return self._validators["seldon"]

    def _kube(self, kind: str, api_version: str) -> Any | None:
        key = f"kube:{api_version}:{kind}"
        if key not in self._validators:
            import jsonschema
            from kubernetes_validate import utils
            from referencing import Registry, Resource

            group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
            folder = f"kubernetes-json-schema/v{self.kube_version}-local-strict"
            try:
                schema = utils.schema_contents(f"{folder}/{kind.lower()}-{group}.json", self.kube_version)
                defs = utils.schema_contents(f"{folder}/_definitions.json", self.kube_version)
            except FileNotFoundError:
                self._validators[key] = None
                return None
            registry = Resource.from_contents(defs) @ (Resource.from_contents(schema) @ Registry())
            self._validators[key] = jsonschema.Draft202012Validator(schema, registry=registry)
        return self._validators[key]

    # -- checks ------------------------------------------------------------------------------------
    def problems(self, obj: Mapping[str, Any]) -> list[str]:
        """Every schema problem of one manifest, as ``Kind/name: path: message``."""
        kind = obj.get("kind")
        label = _label(obj)
        out = _metadata_problems(obj, label)
        if kind in _ARGO_KINDS:
            validator = self._argo(str(kind))
        elif kind == "SeldonDeployment":
            validator = self._seldon()
        elif kind == "PodMonitor":
            return out + _pod_monitor_problems(obj, label)
        elif kind == "Kustomization":
            return out
        else:
            validator = self._kube(str(kind), str(obj.get("apiVersion", "")))
            if validator is None:
                return [
                    *out,
                    f"{label}: no schema for {obj.get('apiVersion')} {kind} — not a Kubernetes {self.kube_version} built-in",
                ]
        for err in sorted(validator.iter_errors(obj), key=lambda e: (list(map(str, e.absolute_path)), e.message)):
            out.append(f"{label}: {_path(err.absolute_path)}: {_message(err)}")
        return out

    def check(self, objs: Iterable[Mapping[str, Any]]) -> None:
        """Raise ``SchemaError`` listing every problem of every manifest."""
        problems = [p for obj in objs for p in self.problems(obj)]
        if problems:
            raise SchemaError(problems, subject=f"{len({p.split(':')[0] for p in problems})} manifest(s)")


def _message(err: Any) -> str:
    msg = err.message
    if err.context:  # oneOf/anyOf: the closest branch says more than "not valid under any"
        from jsonschema.exceptions import best_match

        msg = f"{msg.split(' is not valid')[0][:80]} is not valid: {best_match(err.context).message}"
    return msg if len(msg) <= 300 else msg[:297] + "..."


def _metadata_problems(obj: Mapping[str, Any], label: str) -> list[str]:
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        return [f"{label}: metadata: missing"]
    out = []
    name = meta.get("name")
    if name is None and not meta.get("generateName"):
        out.append(f"{label}: metadata.name: missing")
    elif name is not None and (not isinstance(name, str) or len(name) > 253 or not _DNS_SUBDOMAIN.match(name)):
        out.append(f"{label}: metadata.name: {name!r} is not a DNS-1123 subdomain")
    for key in ("labels", "annotations"):
        for k, v in (meta.get(key) or {}).items():
            if not isinstance(v, str):
                out.append(f"{label}: metadata.{key}.{k}: {v!r} is not a string")
    return out


def _pod_monitor_problems(obj: Mapping[str, Any], label: str) -> list[str]:
    out = []
    if obj.get("apiVersion") != "monitoring.coreos.com/v1":
        out.append(f"{label}: apiVersion: {obj.get('apiVersion')!r} is not 'monitoring.coreos.com/v1'")
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        return [*out, f"{label}: spec: missing"]
    selector = spec.get("selector")
    if not isinstance(selector, Mapping) or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        out.append(f"{label}: spec.selector: needs matchLabels or matchExpressions")
    elif not all(isinstance(v, str) for v in (selector.get("matchLabels") or {}).values()):
        out.append(f"{label}: spec.selector.matchLabels: values must be strings")
    endpoints = spec.get("podMetricsEndpoints")
    if not isinstance(endpoints, list) or not endpoints:
        out.append(f"{label}: spec.podMetricsEndpoints: needs at least one endpoint")
    for i, ep in enumerate(endpoints or []):
        where = f"{label}: spec.podMetricsEndpoints[{i}]"
        if not isinstance(ep, Mapping):
            out.append(f"{where}: not an object")
            continue
        if not isinstance(ep.get("port"), str) and "targetPort" not in ep:
            out.append(f"{where}.port: needs the container port's name")
        if "path" in ep and not str(ep["path"]).startswith("/"):
            out.append(f"{where}.path: {ep['path']!r} must start with '/'")
        unknown = set(ep) - {
            "port",
            "portNumber",
            "targetPort",
            "path",
            "interval",
            "scrapeTimeout",
            "scheme",
            "honorLabels",
            "relabelings",
        }
        out += [f"{where}.{k}: unknown field" for k in sorted(unknown)]
    return out


def check_manifests(objs: Iterable[Mapping[str, Any]], schemas_dir: Path | str | None = None) -> None:
    """Check every manifest; ``SchemaError`` lists every problem, ``SetupError`` when the schemas are absent."""
    SchemaChecker(schemas_dir).check(list(objs))
