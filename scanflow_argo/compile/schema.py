"""Schema checks of manifests, as the Kubernetes API server will check them when they are applied.

- Argo ``Workflow``/``WorkflowTemplate``/``CronWorkflow``/``ClusterWorkflowTemplate`` and ``SeldonDeployment``:
  their **full CRDs**, structural schema and CEL rules, through ``compile.crd`` (strict field validation,
  as ``kubectl`` asks for). The CRDs ship with the package (``schemas/``: Argo Workflows v4.1.2's four full
  CRDs and Seldon Core v1.18.2's SeldonDeployment CRD, xz-compressed, Apache-2.0; each is checked against
  its pinned SHA-256 when loaded), so ``lint`` and ``compile`` need neither this repository nor the network.
  ``--schemas DIR`` checks against other copies instead (``DIR/crds/*.yaml`` or ``DIR/*.yaml`` and
  ``DIR/seldondeployment-crd.yaml``: the layout of Argo's ``manifests/base/crds/full``), e.g. another
  Argo release.
- Kubernetes built-ins: ``kubernetes_validate``'s offline schemas (strict, version ``KUBE_VERSION``), when
  that optional package is installed (``scanflow-argo[kubernetes]``); ``describe()`` says when it is not.
- ``PodMonitor``: structural checks (selector, endpoints with port and path).
"""

from __future__ import annotations

import functools
import hashlib
import json
import lzma
import re
from collections.abc import Callable, Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..errors import SchemaError, SetupError
from .crd import CrdSchema, FieldError

__all__ = ["ARGO_CRDS", "DIGESTED", "KUBE_VERSION", "SHIPPED", "SchemaChecker", "check_manifests", "crd_text"]

KUBE_VERSION = "1.32.0"
"""Kubernetes version whose built-in schemas (shipped by kubernetes_validate) manifests are checked against."""

ARGO_RELEASE = "v4.1.2"
SELDON_RELEASE = "v1.18.2"
SELDON_CRD = "seldondeployment-crd.yaml"
ARGO_CRDS = {
    "Workflow": "argoproj.io_workflows.yaml",
    "WorkflowTemplate": "argoproj.io_workflowtemplates.yaml",
    "CronWorkflow": "argoproj.io_cronworkflows.yaml",
    "ClusterWorkflowTemplate": "argoproj.io_clusterworkflowtemplates.yaml",
}
SHIPPED = {
    "argoproj.io_clusterworkflowtemplates.yaml": "1a1e40dca1a544c44b382ff9f50d44a4b6a6a7ff76c0a2d8e6a929c2ddb13749",
    "argoproj.io_cronworkflows.yaml": "31abde1c89c6c11cf1c97753676327e02b2f8dc47827e49383732ac6b1d828c6",
    "argoproj.io_workflows.yaml": "35ffc0d16c9c71db69ae113e562d90057eac75a60e7371aa3012a3171ccd8c39",
    "argoproj.io_workflowtemplates.yaml": "e932631a04a0f3a226b2ca8c68d43214c071c5d8aa6961b23298b81cbea3d9a5",
    SELDON_CRD: "fffbb9fa8f5caac94f464060f15cf10e1c1289af6f86c9427749129b0b9da5de",
}
"""The CRDs shipped in ``schemas/`` (as ``NAME.xz``) and the SHA-256 of each one's text: argoproj/argo-workflows
v4.1.2 ``manifests/base/crds/full/``, SeldonIO/seldon-core v1.18.2 ``operator/config/crd_v1_small/bases/``."""
DIGESTED = {
    "argoproj.io_clusterworkflowtemplates.yaml": "705a73f4be2f1b6afd963ce064e4d18a3e2f878f4397ad3bc43c1bb11d34efd6",
    "argoproj.io_cronworkflows.yaml": "66e3f684a7a6af67578a2ad4b77debc84689bd70b42d73b67721d137ac9c2497",
    "argoproj.io_workflows.yaml": "f98f29cc768aad1bf23a06713b56151fff50a63613e67b5135d7ef16794e8ced",
    "argoproj.io_workflowtemplates.yaml": "10e9d719bc9550e500b63652aa401ec908d966c24e73ba3911f86e6d3800d101",
    "seldondeployment-crd.yaml": "e14f520bc54eeb45a49e158d79d4a673a8b165bd52f98400620f2a984ec15882",
}
"""Each shipped CRD also as JSON (``json_name(NAME).xz``: the YAML parsed once, by ``scripts/digest-crds``, and written with
``digest_json``) and the SHA-256 of that text: what ``load_crd`` reads. ``tests/compile/test_schema.py`` checks that
each is its YAML's document."""
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _shipped(filename: str, digest: str) -> str:
    """The text of ``schemas/FILENAME.xz``, shipped with the package, checked against its pinned digest."""
    try:
        raw = resources.files(__package__).joinpath("schemas", f"{filename}.xz").read_bytes()
        text = lzma.decompress(raw).decode("utf-8")
    except (OSError, lzma.LZMAError, UnicodeDecodeError) as err:
        raise SetupError(f"the CRD {filename} shipped with scanflow-argo cannot be read ({err}) — reinstall the package") from err
    if hashlib.sha256(text.encode()).hexdigest() != digest:
        raise SetupError(
            f"the CRD {filename} shipped with scanflow-argo does not match its pinned digest — reinstall the package"
        )
    return text


def crd_text(name: str, schemas_dir: Path | str | None = None) -> str:
    """The text of CRD file ``name``: the shipped copy (digest-checked), or the one in ``schemas_dir``."""
    if schemas_dir is None:
        return _shipped(name, SHIPPED[name])
    folder = Path(schemas_dir)
    for path in (folder / "crds" / name, folder / name):
        if path.is_file():
            try:
                return path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as err:
                raise SetupError(f"cannot read {path}: {err}") from err
    raise SetupError(
        f"{name} not found in {folder} (nor in {folder / 'crds'}) — pass --schemas a folder with the CRDs, or leave it out"
    )


def json_name(name: str) -> str:
    """The file of CRD ``name``'s JSON digest: ``argoproj.io_workflows.yaml`` → ``argoproj.io_workflows.json``."""
    return name.removesuffix(".yaml") + ".json"


def digest_json(doc: Any) -> str:
    """A CRD document as the JSON text shipped beside its YAML (``json_name(NAME).xz``; ``scripts/digest-crds``)."""
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n"


@functools.lru_cache(maxsize=16)
def load_crd(name: str, schemas_dir: str | None = None) -> CrdSchema:
    """The parsed CRD (cached per process). The shipped CRDs load from their JSON digest (``DIGESTED``: ~10 ms,
    where libyaml parses the 2.7 MB of YAML of an Argo CRD in ~0.4 s, a cost every CLI call and engine paid)."""
    if schemas_dir is None:
        return CrdSchema(json.loads(_shipped(json_name(name), DIGESTED[name])), source=f"{name} (shipped)")
    source = f"{schemas_dir}/{name}"
    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~10x faster on these files
        doc = yaml.load(crd_text(name, schemas_dir), Loader=loader)
    except yaml.YAMLError as err:
        raise SetupError(f"{source} is not valid YAML: {err}") from err
    return CrdSchema(doc, source=source)


def _label(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind')}/{meta.get('name') or meta.get('generateName') or '?'}"


def _path(parts: Iterable[Any]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(root)"


class SchemaChecker:
    """Checks manifests against the CRDs and Kubernetes' schemas; ``problems(obj)`` lists every problem of one.

    ``schemas_dir`` None (the default) uses the CRDs shipped with the package."""

    def __init__(self, schemas_dir: Path | str | None = None, kube_version: str = KUBE_VERSION) -> None:
        self.dir = Path(schemas_dir) if schemas_dir is not None else None
        self.kube_version = kube_version
        self._kube_validators: dict[str, Any] = {}

    @property
    def available(self) -> bool:
        """Whether the CRDs can be found (always, for the shipped ones)."""
        if self.dir is None:
            return True
        names = [*ARGO_CRDS.values(), SELDON_CRD]
        return all((self.dir / "crds" / n).is_file() or (self.dir / n).is_file() for n in names)

    def require(self) -> None:
        """``SetupError`` naming the folder and the fix when the schemas are absent."""
        if not self.available:
            names = ", ".join([*ARGO_CRDS.values(), SELDON_CRD])
            raise SetupError(
                f"schemas not found in {self.dir} (need {names}, in DIR or DIR/crds) — pass --schemas a folder that "
                "holds them, or leave --schemas out to use the CRDs shipped with scanflow-argo"
            )

    @property
    def kube_available(self) -> bool:
        """Whether Kubernetes built-ins can be checked (the optional ``kubernetes_validate`` is installed)."""
        from importlib.util import find_spec  # optional: 100 MB of schemas, in scanflow-argo[kubernetes]

        return find_spec("kubernetes_validate") is not None

    def describe(self) -> str:
        """What the checks run against, for ``compile`` and ``lint`` to print."""
        where = f"from {self.dir}" if self.dir is not None else "shipped with scanflow-argo"
        crds = (
            f"Argo Workflows {ARGO_RELEASE} CRDs with their CEL rules and the SeldonDeployment {SELDON_RELEASE} CRD ({where})"
            if self.dir is None
            else f"the Argo Workflows CRDs (with their CEL rules) and the SeldonDeployment CRD {where}"
        )
        if self.kube_available:
            return f"{crds}; Kubernetes {self.kube_version} built-ins (kubernetes-validate)"
        return f"{crds}; Kubernetes built-ins not checked (install scanflow-argo[kubernetes] for kubernetes-validate)"

    def crd(self, kind: str) -> CrdSchema:
        """The CRD of an Argo kind or ``SeldonDeployment``."""
        self.require()
        name = SELDON_CRD if kind == "SeldonDeployment" else ARGO_CRDS[kind]
        return load_crd(name, str(self.dir) if self.dir is not None else None)

    def _kube(self, kind: str, api_version: str) -> Any | None:
        key = f"kube:{api_version}:{kind}"
        if key not in self._kube_validators:
            import jsonschema  # schema validators: only when a Kubernetes built-in is checked
            from kubernetes_validate import utils  # optional (scanflow-argo[kubernetes]): 100 MB of schemas
            from referencing import Registry, Resource  # with jsonschema

            group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
            folder = f"kubernetes-json-schema/v{self.kube_version}-local-strict"
            try:
                schema = utils.schema_contents(f"{folder}/{kind.lower()}-{group}.json", self.kube_version)
                defs = utils.schema_contents(f"{folder}/_definitions.json", self.kube_version)
            except FileNotFoundError:
                self._kube_validators[key] = None
                return None
            registry = Resource.from_contents(defs) @ (Resource.from_contents(schema) @ Registry())
            self._kube_validators[key] = jsonschema.Draft202012Validator(schema, registry=registry)
        return self._kube_validators[key]

    # -- checks ------------------------------------------------------------------------------------
    def problems(self, obj: Mapping[str, Any], keep: Callable[[FieldError], bool] | None = None) -> list[str]:
        """Every schema problem of one manifest, as ``Kind/name: path: message`` (of an Argo or Seldon object, only
        the field errors ``keep`` keeps, when given)."""
        kind = obj.get("kind")
        label = _label(obj)
        if kind in ARGO_CRDS or kind == "SeldonDeployment":
            crd = self.crd(str(kind))
            if obj.get("apiVersion") != crd.api_version:
                return [f"{label}: apiVersion: {obj.get('apiVersion')!r} is not served — use {crd.api_version!r}"]
            return [f"{label}: {err}" for err in crd.errors(obj, strict=True) if keep is None or keep(err)]
        out = _metadata_problems(obj, label)
        if kind == "PodMonitor":
            return out + _pod_monitor_problems(obj, label)
        if kind == "Kustomization":
            return out
        if not self.kube_available:
            return out
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
        from jsonschema.exceptions import best_match  # with jsonschema, only for a built-in's problem

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
    """Check every manifest; ``SchemaError`` lists every problem, ``SetupError`` when ``schemas_dir`` lacks the CRDs."""
    SchemaChecker(schemas_dir).check(list(objs))
