"""A loopback stand-in for the Kubernetes API server (custom objects, pods, ``/version``, core ``v1``
ConfigMaps, ``coordination.k8s.io/v1`` Leases) and the Argo Server (``/api/v1/workflows``,
``/api/v1/workflow-templates``, ``/api/v1/cron-workflows``), for tests.

It behaves like the real servers where the platform and the agents depend on it: objects keep a cluster-wide
increasing ``resourceVersion``; PUT with a stale one is a 409 ``Conflict``; PUT without one is a 422 for
custom resources and Leases, an unconditional update for ConfigMaps (their registry strategy allows it);
a ConfigMap's data is at most 1 MiB (422); built-in objects carry no ``metadata.generation``, custom
resources bump it only when something outside ``metadata`` (and ``status``, where that is a subresource)
changes; merge patches (RFC 7386) honour a ``resourceVersion`` they carry;
``status`` is a subresource that writes to the main resource do not change (SeldonDeployments; Argo's CRDs
have none); Workflows, WorkflowTemplates, CronWorkflows and SeldonDeployments are admitted against their
full CRDs as the API server admits them (``compile.crd``: unknown fields pruned, or a 400 under
``fieldValidation=Strict``; defaults; schema and CEL rules, a 422 naming each field) on create, replace
and patch; the server adds no label of its own (Argo's *controller* labels a Workflow with its
``workflowTemplateRef``, which ``set_status`` plays; the Argo Server's submit does it at creation); 404/409
bodies are ``Status`` objects (Kubernetes) or gRPC-gateway errors (Argo Server, with the HTTP status the
gateway gives the gRPC code: a 422 from the API server is ``InvalidArgument``, 400); stopping a finished
workflow through the Argo Server is Argo's ``AlreadyShutdownError`` (``codes.Internal``, 500);
``generateName`` gets 5 random characters; label selectors support ``=``, ``==``, ``!=``, ``key`` and
``!key``. Both servers share one store, as the Argo Server reads and writes the same objects the Kubernetes
API holds.

Tests drive it: ``requests`` records every request; ``fail_next(n, status)`` injects faults;
``plan`` makes a workflow progress one phase per GET (a tiny Argo controller); ``drop()`` closes the
listening socket mid-test; ``set_status`` plays a controller writing status.
"""

from __future__ import annotations

import contextlib
import copy
import json
import random
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from scanflow_argo._proc import free_port
from scanflow_argo.compile.crd import CrdInvalid, CrdSchema
from scanflow_argo.compile.schema import SchemaChecker
from scanflow_argo.platform._k8s.api import merge_patch
from scanflow_argo.platform._k8s.argo import fnv32a, pod_name

__all__ = ["FakeCluster", "Recorded"]

ARGO = "argoproj.io"
TEMPLATE_LABEL = "workflows.argoproj.io/workflow-template"
_KIND_PLURALS = {
    "Workflow": "workflows",
    "WorkflowTemplate": "workflowtemplates",
    "CronWorkflow": "cronworkflows",
    "SeldonDeployment": "seldondeployments",
    "ConfigMap": "configmaps",
    "Lease": "leases",
}
_PLURAL_KINDS = {v: k for k, v in _KIND_PLURALS.items()}
_GROUPS = {"seldondeployments": "machinelearning.seldon.io", "configmaps": "", "leases": "coordination.k8s.io"}
"""API group of each resource (``""`` is the core group under ``/api/v1``); Argo's otherwise."""
_API_VERSIONS = {"seldondeployments": "machinelearning.seldon.io/v1", "configmaps": "v1", "leases": "coordination.k8s.io/v1"}
_BUILT_IN = {"configmaps", "leases"}
"""Kubernetes' own types: no ``metadata.generation`` (only types with a spec/status split get one)."""
_UNCONDITIONAL_UPDATE = {"configmaps"}
"""Resources whose PUT may omit ``resourceVersion`` (``AllowUnconditionalUpdate``; Leases and CRDs do not)."""
_CONFIG_MAP_MAX_BYTES = 1024 * 1024
_ARGO_PATHS = {"workflows": "workflows", "workflow-templates": "workflowtemplates", "cron-workflows": "cronworkflows"}
_ARGO_BODY_KEY = {"workflows": "workflow", "workflowtemplates": "template", "cronworkflows": "cronWorkflow"}
_STATUS_SUBRESOURCE = {"seldondeployments"}
"""CRDs whose ``status`` is a subresource (writes to the main resource leave it alone); Argo's CRDs have none."""
_GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 422: 3, 500: 13, 503: 14}
_GATEWAY_HTTP = {3: 400, 16: 401, 7: 403, 5: 404, 6: 409, 13: 500, 14: 503}
"""grpc-gateway's HTTP status for a gRPC code (the Argo Server answers through it)."""
_CRD_KINDS = {
    "workflows": "Workflow",
    "workflowtemplates": "WorkflowTemplate",
    "cronworkflows": "CronWorkflow",
    "seldondeployments": "SeldonDeployment",
}
"""Custom resources admitted against their CRD (the ones shipped with the package: Argo 4.1.2, Seldon 1.18.2)."""
_FINISHED = ("Succeeded", "Failed", "Error")


def _crd(plural: str) -> CrdSchema | None:
    kind = _CRD_KINDS.get(plural)
    return SchemaChecker().crd(kind) if kind else None


def _admit(plural: str, obj: dict[str, Any], strict: bool, old: dict[str, Any] | None = None) -> dict[str, Any]:
    """The object as the API server stores it (pruned, defaulted), or the server's refusal."""
    crd = _crd(plural)
    if crd is None:
        return obj
    try:
        return crd.admit(obj, strict=strict, old=old)
    except CrdInvalid as err:
        raise _Error(
            err.status, err.reason, err.message, {"name": (obj.get("metadata") or {}).get("name"), "kind": crd.kind}
        ) from err


_MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$")


def _check_micro_times(plural: str, obj: dict[str, Any]) -> None:
    """A Lease's acquireTime/renewTime are ``metav1.MicroTime``: the server parses them with Go's layout
    ``2006-01-02T15:04:05.000000Z07:00``, which needs the six fraction digits."""
    if plural != "leases":
        return
    for key in ("acquireTime", "renewTime"):
        value = (obj.get("spec") or {}).get(key)
        if value is not None and not _MICRO_TIME.match(str(value)):
            raise _Error(
                400,
                "BadRequest",
                f'Lease in version "v1" cannot be handled as a Lease: parsing time "{value}" as '
                '"2006-01-02T15:04:05.000000Z07:00": cannot parse as "."',
            )


def _spec_changed(plural: str, old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether a write changes what bumps ``generation``: all but metadata (and status, when a subresource)."""
    skip = {"metadata", "status"} if plural in _STATUS_SUBRESOURCE else {"metadata"}
    return {k: v for k, v in old.items() if k not in skip} != {k: v for k, v in new.items() if k not in skip}


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    status: int = 0


@dataclass
class _Fault:
    remaining: int
    status: int
    method: str | None
    path_contains: str | None


class _Error(Exception):
    def __init__(
        self, status: int, reason: str, message: str, details: dict[str, Any] | None = None, grpc: int | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.reason, self.message, self.details, self.grpc = status, reason, message, details or {}, grpc


@dataclass
class FakeCluster:
    """The store and behaviour behind both fake servers; ``url`` serves both API trees."""

    argo_token: str | None = None
    """When set, the Argo Server answers 401 unless ``Authorization: Bearer <token>``."""

    requests: list[Recorded] = field(default_factory=list)
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    """(plural, namespace, name) -> object."""
    pod_logs: dict[str, str] = field(default_factory=dict)
    """pod name -> log text of its main container."""
    artifacts: dict[tuple[str, str, str], bytes] = field(default_factory=dict)
    """(workflow, node id, artifact name) -> the stored object the Argo Server's ``/artifacts/`` streams."""
    plan: Callable[[dict[str, Any]], list[dict[str, Any]]] | None = None
    """Workflow -> the statuses it goes through, one per GET (the Argo controller's work)."""

    hooks: list[Callable[[FakeCluster, Recorded], None]] = field(default_factory=list)
    """Called (under the store lock) before each request is served: play a concurrent writer."""

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._rv = 100
        self._faults: list[_Fault] = []
        self._plans: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._server: ThreadingHTTPServer | None = None
        self._sockets: set[Any] = set()
        self._gone = False
        self.drop_after_response = False
        """Set (e.g. from a hook) to make the server go away right after answering the current request."""
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> FakeCluster:
        for plural in _CRD_KINDS:  # parse the CRDs (2.7 MB each, once per process) before any request waits on them
            _crd(plural)
        self.port = free_port()
        cluster = self

        class Handler(_Handler):
            fake = cluster

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def drop(self) -> None:
        """The server goes away: new connections are refused and open keep-alive connections are cut."""
        self._gone = True
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def kubeconfig(self, path: Any, namespace: str = "scanflow") -> Any:
        """Write a kubeconfig pointing at this server (token auth, plain http) and return its path."""
        import yaml

        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": "kube-test-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "tester", "namespace": namespace}}],
            "current-context": "fake",
        }
        path.write_text(yaml.safe_dump(cfg))
        return path

    # -- test controls --------------------------------------------------------------------------
    def fail_next(self, n: int, status: int, method: str | None = None, path_contains: str | None = None) -> None:
        """The next ``n`` matching requests fail with ``status`` (409 as a Conflict, 5xx as server errors)."""
        with self._lock:
            self._faults.append(_Fault(n, status, method, path_contains))

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store an object directly (as if ``kubectl apply`` created it earlier: strict field validation)."""
        kind = obj["kind"]
        ns = obj["metadata"].get("namespace", "scanflow")
        with self._lock:
            return self._create(_KIND_PLURALS[kind], ns, copy.deepcopy(obj), strict=True)

    def config_map(self, name: str, data: dict[str, str] | None = None, namespace: str = "scanflow") -> dict[str, Any]:
        """Create a ConfigMap as ``kubectl apply`` of the compiled manifests would (no ``data``: an agent's state)."""
        return self.put(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}}
            | ({"data": dict(data)} if data is not None else {})
        )

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self.objects[(plural, namespace, name)])

    def set_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        """A controller writes the status (Argo's operator also labels a Workflow with its template, as
        ``setWfTemplateLabel`` in workflow/controller/operator.go does)."""
        with self._lock:
            obj = self.objects[(plural, namespace, name)]
            self._controller_writes(plural, obj, status)

    def bump(self, plural: str, namespace: str, name: str) -> None:
        """Another writer changes the object (its resourceVersion moves on)."""
        with self._lock:
            self.objects[(plural, namespace, name)]["metadata"]["resourceVersion"] = self._next_rv()

    def calls(self, method: str | None = None, contains: str = "") -> list[Recorded]:
        return [r for r in self.requests if (method is None or r.method == method) and contains in r.path]

    # -- store ---------------------------------------------------------------------------------
    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _controller_writes(self, plural: str, obj: dict[str, Any], status: dict[str, Any]) -> None:
        old = copy.deepcopy(obj)
        obj["status"] = copy.deepcopy(status)
        if plural == "workflows":
            ref = (obj.get("spec") or {}).get("workflowTemplateRef") or {}
            if ref.get("name"):
                key = "workflows.argoproj.io/cluster-workflow-template" if ref.get("clusterScope") else TEMPLATE_LABEL
                obj["metadata"].setdefault("labels", {})[key] = ref["name"]
        if plural not in _BUILT_IN and _spec_changed(plural, old, obj):
            obj["metadata"]["generation"] = obj["metadata"].get("generation", 1) + 1
        obj["metadata"]["resourceVersion"] = self._next_rv()

    def _create(self, plural: str, ns: str, obj: dict[str, Any], strict: bool = False) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise _Error(
                    422, "Invalid", f"{plural} is invalid: metadata.name: Required value: name or generateName is required"
                )
            alphabet = "bcdfghjklmnpqrstvwxz2456789"
            meta["name"] = meta["generateName"] + "".join(random.choice(alphabet) for _ in range(5))
        key = (plural, ns, meta["name"])
        meta["namespace"] = ns
        _check_micro_times(plural, obj)
        obj = _admit(plural, obj, strict)
        meta = obj["metadata"]
        if key in self.objects:
            raise _Error(409, "AlreadyExists", f'{_resource(plural)} "{meta["name"]}" already exists', {"name": meta["name"]})
        self._check_size(plural, meta["name"], obj)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now()
        if plural not in _BUILT_IN:
            meta["generation"] = 1
        meta["resourceVersion"] = self._next_rv()
        meta.pop("selfLink", None)
        self.objects[key] = obj
        if plural == "workflows" and self.plan is not None:
            self._plans[(ns, meta["name"])] = list(self.plan(copy.deepcopy(obj)))
        return copy.deepcopy(obj)

    def _get(self, plural: str, ns: str, name: str) -> dict[str, Any]:
        obj = self._get_raw(plural, ns, name)
        steps = self._plans.get((ns, name)) if plural == "workflows" else None
        if steps:
            self._controller_writes(plural, obj, steps.pop(0))
        return copy.deepcopy(obj)

    def _list(self, plural: str, ns: str, label_selector: str | None) -> dict[str, Any]:
        items = [
            copy.deepcopy(o)
            for (p, n, _), o in sorted(self.objects.items())
            if p == plural and n == ns and _matches((o["metadata"].get("labels") or {}), label_selector)
        ]
        return {
            "apiVersion": _API_VERSIONS.get(plural, f"{ARGO}/v1alpha1"),
            "kind": f"{_PLURAL_KINDS.get(plural, plural)}List",
            "metadata": {"resourceVersion": str(self._rv)},
            "items": items,
        }

    def _replace(self, plural: str, ns: str, name: str, body: dict[str, Any], strict: bool = False) -> dict[str, Any]:
        current = self._get_raw(plural, ns, name)
        rv = (body.get("metadata") or {}).get("resourceVersion")
        if rv:
            self._check_rv(plural, name, current, rv)
        elif plural not in _UNCONDITIONAL_UPDATE:
            raise _Error(
                422,
                "Invalid",
                f'{plural} "{name}" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update',
            )
        self._check_size(plural, name, body)
        _check_micro_times(plural, body)
        new = copy.deepcopy(body)
        new["metadata"] = {**new["metadata"], **{k: current["metadata"][k] for k in ("uid", "creationTimestamp", "namespace")}}
        new["metadata"]["name"] = name
        if plural in _STATUS_SUBRESOURCE:
            if "status" in current:
                new["status"] = current["status"]
            else:
                new.pop("status", None)
        new = _admit(plural, new, strict, old=current)
        if plural not in _BUILT_IN:
            bump = 1 if _spec_changed(plural, current, new) else 0
            new["metadata"]["generation"] = current["metadata"].get("generation", 1) + bump
        new["metadata"]["resourceVersion"] = self._next_rv()
        self.objects[(plural, ns, name)] = new
        return copy.deepcopy(new)

    def _patch(self, plural: str, ns: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        current = self._get_raw(plural, ns, name)
        rv = (patch.get("metadata") or {}).get("resourceVersion")
        if rv:
            self._check_rv(plural, name, current, rv)
        if plural in _STATUS_SUBRESOURCE:
            patch = {k: v for k, v in patch.items() if k != "status"}
        new = merge_patch(current, patch)
        self._check_size(plural, name, new)
        for key in ("uid", "creationTimestamp", "namespace", "name"):
            new["metadata"][key] = current["metadata"][key]
        new = _admit(plural, new, False, old=current)
        if plural not in _BUILT_IN:
            bump = 1 if _spec_changed(plural, current, new) else 0
            new["metadata"]["generation"] = current["metadata"].get("generation", 1) + bump
        new["metadata"]["resourceVersion"] = self._next_rv()
        self.objects[(plural, ns, name)] = new
        return copy.deepcopy(new)

    def _delete(self, plural: str, ns: str, name: str) -> dict[str, Any]:
        self._get_raw(plural, ns, name)
        del self.objects[(plural, ns, name)]
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {"name": name, "kind": plural},
        }

    def _get_raw(self, plural: str, ns: str, name: str) -> dict[str, Any]:
        obj = self.objects.get((plural, ns, name))
        if obj is None:
            raise _Error(404, "NotFound", f'{_resource(plural)} "{name}" not found', {"name": name, "kind": plural})
        return obj

    @staticmethod
    def _check_size(plural: str, name: str, obj: dict[str, Any]) -> None:
        """A ConfigMap holds at most 1 MiB of keys and values, as the API server validates."""
        if plural != "configmaps":
            return
        size = sum(len(k) + len(str(v)) for field_ in ("data", "binaryData") for k, v in (obj.get(field_) or {}).items())
        if size > _CONFIG_MAP_MAX_BYTES:
            raise _Error(
                422, "Invalid", f'ConfigMap "{name}" is invalid: []: Too long: must have at most {_CONFIG_MAP_MAX_BYTES} bytes'
            )

    @staticmethod
    def _check_rv(plural: str, name: str, current: dict[str, Any], rv: str) -> None:
        if str(rv) != current["metadata"]["resourceVersion"]:
            raise _Error(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {_resource(plural)} "{name}": the object has been modified; '
                "please apply your changes to the latest version and try again",
                {"name": name, "kind": plural},
            )

    def _take_fault(self, method: str, path: str) -> int | None:
        for fault in self._faults:
            if fault.remaining > 0 and (fault.method in (None, method)) and (fault.path_contains or "") in path:
                fault.remaining -= 1
                return fault.status
        return None

    def _pods(self, ns: str, label_selector: str | None) -> dict[str, Any]:
        """Pods of Pod nodes of stored workflows, as Argo creates them (labels and node annotations)."""
        items = []
        for (plural, n, wf_name), wf in sorted(self.objects.items()):
            if plural != "workflows" or n != ns:
                continue
            for node_id, node in ((wf.get("status") or {}).get("nodes") or {}).items():
                if node.get("type") != "Pod":
                    continue
                labels = {"workflows.argoproj.io/workflow": wf_name}
                if _matches(labels, label_selector):
                    items.append(
                        {
                            "metadata": {
                                "name": pod_name(wf_name, node),
                                "namespace": ns,
                                "labels": labels,
                                "annotations": {
                                    "workflows.argoproj.io/node-id": node_id,
                                    "workflows.argoproj.io/node-name": node["name"],
                                },
                            }
                        }
                    )
        return {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}

    def _pod_log(self, ns: str, pod: str, container: str = "main") -> str:
        if pod not in self.pod_logs:
            raise _Error(404, "NotFound", f'pods "{pod}" not found', {"name": pod, "kind": "pods"})
        if container == "main":
            return self.pod_logs[pod]
        if f"{pod}/{container}" not in self.pod_logs:  # the kubelet's answer for a container the pod lacks
            raise _Error(400, "BadRequest", f"container {container} is not valid for pod {pod}")
        return self.pod_logs[f"{pod}/{container}"]


def _group(plural: str) -> str:
    return _GROUPS.get(plural, ARGO)


def _resource(plural: str) -> str:
    """How the API server names a resource in messages: ``configmaps``, ``leases.coordination.k8s.io``."""
    group = _group(plural)
    return f"{plural}.{group}" if group else plural


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _matches(labels: dict[str, str], selector: str | None) -> bool:
    if not selector:
        return True
    for term in (t.strip() for t in selector.split(",") if t.strip()):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in term:
            k, v = re.split(r"==?", term, maxsplit=1)
            if labels.get(k.strip()) != v.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def node_status(
    workflow: str, task: str, phase: str, template: str | None = None, outputs: dict[str, Any] | None = None
) -> tuple[str, dict[str, Any]]:
    """A Pod node the way Argo writes it: id hashed from the node name, display name = task."""
    name = f"{workflow}.{task}"
    node_id = f"{workflow}-{fnv32a(name)}"
    node = {
        "id": node_id,
        "name": name,
        "displayName": task,
        "type": "Pod",
        "templateName": template or task,
        "phase": phase,
        "startedAt": _now(),
    }
    if phase in ("Succeeded", "Failed", "Error"):
        node["finishedAt"] = _now()
    if outputs:
        node["outputs"] = outputs
    return node_id, node


class _Handler(BaseHTTPRequestHandler):
    fake: FakeCluster
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def setup(self) -> None:
        super().setup()
        with self.fake._lock:
            self.fake._sockets.add(self.connection)

    def _handle(self, method: str) -> None:
        if self.fake._gone:
            self.close_connection = True
            return
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        record = Recorded(method, parts.path, query, {k.lower(): v for k, v in self.headers.items()}, body)
        self._query = query
        fake = self.fake
        argo = (parts.path.startswith("/api/v1/") and parts.path.split("/")[3] in _ARGO_PATHS) or parts.path.startswith(
            "/artifacts/"
        )
        with fake._lock:
            fake.requests.append(record)
            for hook in list(fake.hooks):
                hook(fake, record)
            fault = fake._take_fault(method, parts.path)
            try:
                if fault is not None:
                    raise _Error(fault, "Conflict" if fault == 409 else "InternalError", f"injected fault {fault}")
                if argo:
                    status, out, ctype = self._argo(method, parts.path, query, body)
                else:
                    status, out, ctype = self._kube(method, parts.path, query, body, self.headers.get("Content-Type", ""))
            except _Error as err:
                status, ctype = err.status, "application/json"
                if argo:
                    code = err.grpc if err.grpc is not None else _GRPC_CODES.get(err.status, 2)
                    status = _GATEWAY_HTTP.get(code, 500)
                    out = {"code": code, "message": err.message, "details": []}
                else:
                    out = {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Failure",
                        "message": err.message,
                        "reason": err.reason,
                        "details": err.details,
                        "code": err.status,
                    }
        record.status = status
        self._send(status, out, ctype)
        if fake.drop_after_response:
            fake.drop_after_response = False
            threading.Thread(target=fake.drop, daemon=True).start()

    # -- Kubernetes API ---------------------------------------------------------------------------
    def _kube(self, method: str, path: str, query: dict[str, list[str]], body: Any, ctype: str) -> tuple[int, Any, str]:
        fake = self.fake
        sel = (query.get("labelSelector") or [None])[0]
        if path == "/version":
            return 200, {"major": "1", "minor": "30", "gitVersion": "v1.30.0", "platform": "linux/amd64"}, "application/json"
        m = re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods(?:/([^/]+)/log)?", path)
        if m and method == "GET":
            if m.group(2):
                container = (query.get("container") or ["main"])[0]
                return 200, fake._pod_log(m.group(1), m.group(2), container), "text/plain"
            return 200, fake._pods(m.group(1), sel), "application/json"
        m = re.fullmatch(r"/api/v1/namespaces/([^/]+)/(configmaps)(?:/([^/]+))?", path)
        if m:
            ns, plural, name = m.groups()
            return self._object(method, path, plural, ns, name, sel, body, ctype)
        m = re.fullmatch(r"/apis/([^/]+)/([^/]+)/namespaces/([^/]+)/([^/]+)(?:/([^/]+))?", path)
        if not m:
            raise _Error(404, "NotFound", "the server could not find the requested resource")
        group, _version, ns, plural, name = m.groups()
        if plural not in _PLURAL_KINDS or not _group(plural) or group != _group(plural):
            raise _Error(404, "NotFound", "the server could not find the requested resource")
        return self._object(method, path, plural, ns, name, sel, body, ctype)

    def _object(
        self, method: str, path: str, plural: str, ns: str, name: str | None, sel: str | None, body: Any, ctype: str
    ) -> tuple[int, Any, str]:
        """One namespaced resource or its collection: list/create, get/replace/merge-patch/delete."""
        fake = self.fake
        strict = (self._query.get("fieldValidation") or [""])[0] == "Strict"
        if name is None:
            if method == "GET":
                return 200, fake._list(plural, ns, sel), "application/json"
            if method == "POST":
                return 201, fake._create(plural, ns, copy.deepcopy(body), strict), "application/json"
        elif method == "GET":
            return 200, fake._get(plural, ns, name), "application/json"
        elif method == "PUT":
            return 200, fake._replace(plural, ns, name, body, strict), "application/json"
        elif method == "PATCH":
            if "merge-patch" not in ctype:
                raise _Error(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - accepted media types include: application/merge-patch+json (got {ctype})",
                )
            return 200, fake._patch(plural, ns, name, body), "application/json"
        elif method == "DELETE":
            return 200, fake._delete(plural, ns, name), "application/json"
        raise _Error(405, "MethodNotAllowed", f"{method} is not allowed on {path}")

    # -- Argo Server ---------------------------------------------------------------------------
    def _argo(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any, str]:
        fake = self.fake
        if fake.argo_token is not None and self.headers.get("Authorization") != f"Bearer {fake.argo_token}":
            raise _Error(401, "Unauthorized", "token not valid. see https://argo-workflows.readthedocs.io/en/latest/faq/")
        if path.startswith("/artifacts/"):  # server/artifacts/artifact_server.go GetOutputArtifact
            ns, wf_name, node_id, art = path.strip("/").split("/")[1:5]
            fake._get_raw("workflows", ns, wf_name)
            if (wf_name, node_id, art) not in fake.artifacts:
                raise _Error(404, "NotFound", f"artifact not found: {art}")
            return 200, fake.artifacts[(wf_name, node_id, art)], "application/gzip"
        segs = path.strip("/").split("/")[2:]  # after api/v1
        plural, ns, rest = _ARGO_PATHS[segs[0]], segs[1], segs[2:]
        key = _ARGO_BODY_KEY[plural]
        sel = (query.get("listOptions.labelSelector") or [None])[0]
        if not rest:
            if method == "GET":
                return 200, fake._list(plural, ns, sel), "application/json"
            if method == "POST":
                return 200, fake._create(plural, ns, copy.deepcopy(body[key])), "application/json"
        elif rest == ["submit"] and method == "POST" and plural == "workflows":
            return 200, self._submit(ns, body), "application/json"
        elif len(rest) == 1:
            name = rest[0]
            if method == "GET":
                return 200, fake._get(plural, ns, name), "application/json"
            if method == "PUT":
                return 200, fake._replace(plural, ns, name, body[key]), "application/json"
            if method == "DELETE":
                fake._delete(plural, ns, name)
                return 200, {}, "application/json"
        elif len(rest) == 2 and rest[1] == "stop" and method == "PUT":
            # server/workflow/workflow_server.go StopWorkflow → util.StopWorkflow: a fulfilled workflow is an
            # AlreadyShutdownError, which ToStatusError turns into codes.Internal (grpc-gateway: HTTP 500)
            wf = fake._get_raw(plural, ns, rest[0])
            if (wf.get("status") or {}).get("phase") in _FINISHED:
                raise _Error(
                    500,
                    "InternalError",
                    f'cannot shutdown a completed workflow: workflow: "{rest[0]}", namespace: "{ns}"',
                    grpc=13,
                )
            return 200, fake._patch(plural, ns, rest[0], {"spec": {"shutdown": "Stop"}}), "application/json"
        elif len(rest) == 2 and rest[1] == "retry" and method == "PUT":
            # workflow/util/util.go FormulateRetryWorkflow: Failed/Error only (an ArgoError CodeBadRequest → 400);
            # failed nodes are reset, succeeded ones kept, the run goes back to Running
            wf = fake._get_raw(plural, ns, rest[0])
            phase = (wf.get("status") or {}).get("phase")
            if phase not in ("Failed", "Error"):
                raise _Error(400, "BadRequest", f"Cannot retry a workflow in phase {phase}", grpc=3)
            nodes = {k: v for k, v in ((wf.get("status") or {}).get("nodes") or {}).items() if v.get("phase") == "Succeeded"}
            fake._controller_writes(plural, wf, {**wf["status"], "phase": "Running", "nodes": nodes, "finishedAt": None})
            return 200, copy.deepcopy(wf), "application/json"
        elif len(rest) == 2 and rest[1] == "resume" and method == "PUT":
            # workflow/util/util.go ResumeWorkflow: spec.suspend cleared, active suspend nodes succeed
            wf = fake._get_raw(plural, ns, rest[0])
            if (wf.get("spec") or {}).get("suspend"):
                fake._patch(plural, ns, rest[0], {"spec": {"suspend": None}})
            nodes = ((wf.get("status") or {}).get("nodes") or {}).values()
            for node in nodes:
                if node.get("type") == "Suspend" and node.get("phase") == "Running":
                    node["phase"] = "Succeeded"
            return 200, copy.deepcopy(fake._get_raw(plural, ns, rest[0])), "application/json"
        elif len(rest) == 2 and rest[1] == "log" and method == "GET":
            wf = fake._get_raw(plural, ns, rest[0])
            pods = [
                pod_name(rest[0], n) for n in ((wf.get("status") or {}).get("nodes") or {}).values() if n.get("type") == "Pod"
            ]
            wanted = (query.get("podName") or [None])[0]
            container = (query.get("logOptions.container") or ["main"])[0]
            lines = []
            for pod in pods:
                if wanted and pod != wanted:
                    continue
                key = pod if container == "main" else f"{pod}/{container}"
                for line in fake.pod_logs.get(key, "").splitlines():
                    lines.append(json.dumps({"result": {"content": line, "podName": pod}}))
            return 200, "\n".join(lines) + ("\n" if lines else ""), "application/json"
        raise _Error(404, "NotFound", f"Not Found: {method} {path}")

    def _submit(self, ns: str, body: dict[str, Any]) -> dict[str, Any]:
        """What the Argo Server does for ``resourceKind: WorkflowTemplate``."""
        fake = self.fake
        if body.get("resourceKind") != "WorkflowTemplate":
            raise _Error(400, "BadRequest", f"resourceKind {body.get('resourceKind')!r} not supported by this fake")
        name = body["resourceName"]
        fake._get_raw("workflowtemplates", ns, name)
        opts = body.get("submitOptions") or {}
        labels = dict(item.split("=", 1) for item in (opts.get("labels") or "").split(",") if "=" in item)
        labels[TEMPLATE_LABEL] = name  # workflow/common/convert.go NewWorkflowFromWorkflowTemplate
        wf: dict[str, Any] = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"generateName": f"{name}-", "labels": labels},
            "spec": {"workflowTemplateRef": {"name": name}},
        }
        params = []
        for item in opts.get("parameters") or []:
            if "=" not in item:
                raise _Error(400, "BadRequest", f"expected parameter of the form: NAME=VALUE. Received: {item}")
            k, v = item.split("=", 1)
            params.append({"name": k, "value": v})
        if params:
            wf["spec"]["arguments"] = {"parameters": params}
        return fake._create("workflows", ns, wf)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")
