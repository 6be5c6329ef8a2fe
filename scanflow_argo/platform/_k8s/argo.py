"""Argo Workflows on a cluster: through the Argo Server API (Hera's ``WorkflowsService``) or, where no
Argo Server is configured, through ``Workflow``/``WorkflowTemplate`` custom objects.

Both backends offer the same small surface (apply a template, submit a manifest or a template by name,
get, list, stop, read pod logs) and return plain Argo-shaped dicts, so the platform above them does
not care which one it has. Submitting a template by name does what the Argo UI's submit dialog does:
a ``Workflow`` with ``workflowTemplateRef`` and the parameters as ``name=value``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from ...clock import Clock
from ...errors import AlreadyExistsError, ConflictError, NotFoundError, PlatformError, UnavailableError
from ...settings import KubernetesSettings
from ..base import TERMINAL_PHASES, already_finished
from .api import CustomObjects, ResourceRef, call, retry_conflicts, selector

__all__ = [
    "TEMPLATE_LABEL",
    "ArgoServerWorkflows",
    "CrdWorkflows",
    "WorkflowBackend",
    "fnv32a",
    "pod_name",
    "with_arguments",
    "workflow_from_template",
]

T = TypeVar("T")

GROUP, VERSION = "argoproj.io", "v1alpha1"
WORKFLOWS = ResourceRef(GROUP, VERSION, "workflows", "Workflow")
TEMPLATE_KINDS = {
    "WorkflowTemplate": ResourceRef(GROUP, VERSION, "workflowtemplates", "WorkflowTemplate"),
    "CronWorkflow": ResourceRef(GROUP, VERSION, "cronworkflows", "CronWorkflow"),
}
TEMPLATE_LABEL = "workflows.argoproj.io/workflow-template"
"""Label Argo puts on a Workflow submitted from a WorkflowTemplate (we set it too in the fallback)."""


class WorkflowBackend(Protocol):
    """What the platform needs from either backend; every method raises the project's errors."""

    def apply_template(self, manifest: Mapping[str, Any]) -> None: ...
    def create(self, manifest: Mapping[str, Any]) -> dict[str, Any]: ...
    def submit_template(self, template: str, parameters: Mapping[str, str], labels: Mapping[str, str]) -> dict[str, Any]: ...
    def get(self, name: str) -> dict[str, Any]: ...
    def list(self, labels: Mapping[str, str] | None) -> list[dict[str, Any]]: ...
    def stop(self, name: str) -> None: ...
    def resume(self, name: str) -> None: ...
    def retry(self, name: str) -> None: ...
    def delete(self, name: str) -> None: ...
    def get_template(self, name: str) -> dict[str, Any]: ...
    def pod_log(self, run: str, pod: str, container: str = "main") -> str: ...
    def output_artifact(self, run: str, node_id: str, artifact: str) -> bytes: ...


def with_arguments(manifest: Mapping[str, Any], parameters: Mapping[str, str], labels: Mapping[str, str]) -> dict[str, Any]:
    """A copy of a Workflow manifest with ``parameters`` overriding its arguments and ``labels`` added."""
    wf = copy.deepcopy(dict(manifest))
    if labels:
        meta = wf.setdefault("metadata", {})
        meta["labels"] = {**(meta.get("labels") or {}), **labels}
    if parameters:
        args = wf.setdefault("spec", {}).setdefault("arguments", {})
        existing = {p["name"]: p for p in args.get("parameters") or []}
        for key, value in parameters.items():
            existing[key] = {**existing.get(key, {"name": key}), "value": str(value)}
            existing[key].pop("valueFrom", None)
        args["parameters"] = list(existing.values())
    return wf


def workflow_from_template(
    template: str, namespace: str, parameters: Mapping[str, str], labels: Mapping[str, str]
) -> dict[str, Any]:
    """The Workflow the Argo Server's submit endpoint creates from a WorkflowTemplate."""
    wf: dict[str, Any] = {
        "apiVersion": WORKFLOWS.api_version,
        "kind": "Workflow",
        "metadata": {
            "generateName": f"{template}-",
            "namespace": namespace,
            "labels": {**labels, TEMPLATE_LABEL: template},
        },
        "spec": {"workflowTemplateRef": {"name": template}},
    }
    if parameters:
        wf["spec"]["arguments"] = {"parameters": [{"name": k, "value": str(v)} for k, v in parameters.items()]}
    return wf


def fnv32a(text: str) -> int:
    """FNV-1a 32-bit hash: Argo hashes node names with it for node ids and pod names."""
    h = 0x811C9DC5
    for byte in text.encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def pod_name(run: str, node: Mapping[str, Any]) -> str:
    """The pod of a Pod node under Argo's default pod naming (POD_NAMES=v2, Argo ≥ 3.4)."""
    node_name = str(node.get("name", ""))
    if node_name == run:
        return run
    template = node.get("templateName") or (node.get("templateRef") or {}).get("template")
    prefix = run if ".inline" in node_name or not template else f"{run}-{template}"
    prefix = prefix[: 253 - 10 - 1]  # Argo truncates the prefix so the name stays a valid object name
    return f"{prefix}-{fnv32a(node_name)}"


def _kind_ref(manifest: Mapping[str, Any]) -> ResourceRef:
    kind = manifest.get("kind")
    if kind not in TEMPLATE_KINDS:
        raise PlatformError(f"apply_template takes a WorkflowTemplate or CronWorkflow, not kind {kind!r}")
    if not (manifest.get("metadata") or {}).get("name"):
        raise PlatformError(f"the {kind} has no metadata.name — templates are applied by name")
    return TEMPLATE_KINDS[kind]


class CrdWorkflows:
    """Workflows as custom objects through the Kubernetes API (no Argo Server)."""

    def __init__(self, api_client: Any, namespace: str, timeout: float, clock: Clock) -> None:
        self.namespace = namespace
        self._api_client = api_client
        self._timeout = timeout
        self._clock = clock
        self._workflows = CustomObjects(api_client, WORKFLOWS, namespace, timeout)

    def apply_template(self, manifest: Mapping[str, Any]) -> None:
        ref = _kind_ref(manifest)
        objects = CustomObjects(self._api_client, ref, self.namespace, self._timeout)
        body = copy.deepcopy(dict(manifest))
        body.setdefault("metadata", {})["namespace"] = self.namespace
        name = body["metadata"]["name"]

        def apply() -> None:
            try:
                current = objects.get(name)
            except NotFoundError:
                objects.create(body)
                return
            body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            objects.replace(name, body)

        retry_conflicts(apply, self._clock, ref.describe(self.namespace, name))

    def create(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        body = copy.deepcopy(dict(manifest))
        body.setdefault("metadata", {})["namespace"] = self.namespace
        return self._workflows.create(body)

    def submit_template(self, template: str, parameters: Mapping[str, str], labels: Mapping[str, str]) -> dict[str, Any]:
        # The Argo Server checks the template exists; so do we, for the same clear error.
        CustomObjects(self._api_client, TEMPLATE_KINDS["WorkflowTemplate"], self.namespace, self._timeout).get(template)
        return self._workflows.create(workflow_from_template(template, self.namespace, parameters, labels))

    def get(self, name: str) -> dict[str, Any]:
        return self._workflows.get(name)

    def list(self, labels: Mapping[str, str] | None) -> list[dict[str, Any]]:
        return self._workflows.list(labels)

    def stop(self, name: str) -> None:
        """What ``argo stop`` does (workflow/util/util.go ``patchShutdownStrategy``): a finished workflow is an
        error; else ``spec.shutdown: Stop``, which the controller acts on (exit handlers still run). The patch
        carries the resourceVersion read, so a run that ends in between is not patched (re-read on a conflict)."""

        def attempt() -> None:
            wf = self._workflows.get(name)
            phase = (wf.get("status") or {}).get("phase")
            if phase in TERMINAL_PHASES:
                raise already_finished(name, str(phase))
            rv = wf["metadata"]["resourceVersion"]
            self._workflows.patch(name, {"metadata": {"resourceVersion": rv}, "spec": {"shutdown": "Stop"}})

        retry_conflicts(attempt, self._clock, WORKFLOWS.describe(self.namespace, name))

    def resume(self, name: str) -> None:
        """``argo resume`` of a workflow suspended as a whole (``spec.suspend``; workflow/util/util.go
        ``ResumeWorkflow``). A suspend *node* is resumed by rewriting the run's status, which only Argo does."""
        wf = self._workflows.get(name)
        if not (wf.get("spec") or {}).get("suspend"):
            raise PlatformError(
                f"run {name!r} waits at a suspend step: resuming it rewrites the run's status, which Argo does — set "
                f"SCANFLOW_ARGO_SERVER (docs/cluster.md) or run `argo resume {name} -n {self.namespace}`"
            )
        rv = wf["metadata"]["resourceVersion"]
        self._workflows.patch(name, {"metadata": {"resourceVersion": rv}, "spec": {"suspend": None}})

    def retry(self, name: str) -> None:
        raise PlatformError(
            f"retrying run {name!r} re-runs its failed nodes by rewriting its status and deleting their pods, which "
            f"Argo does: set SCANFLOW_ARGO_SERVER (docs/cluster.md) or run `argo retry {name} -n {self.namespace}`"
        )

    def delete(self, name: str) -> None:
        self._workflows.delete(name)

    def get_template(self, name: str) -> dict[str, Any]:
        return CustomObjects(self._api_client, TEMPLATE_KINDS["WorkflowTemplate"], self.namespace, self._timeout).get(name)

    def output_artifact(self, run: str, node_id: str, artifact: str) -> bytes:
        raise PlatformError(
            f"artifact {artifact!r} of run {run}: downloading artifacts needs the Argo Server (it reads the artifact "
            "repository for you) — set SCANFLOW_ARGO_SERVER, or read it from the bucket the run's status names"
        )

    def pod_log(self, run: str, pod: str, container: str = "main") -> str:
        from kubernetes import client  # Kubernetes client: ~1.5 s, cluster path only

        core = client.CoreV1Api(self._api_client)
        return call(
            lambda: core.read_namespaced_pod_log(pod, self.namespace, container=container, _request_timeout=self._timeout),
            f"container {container!r} of pod {self.namespace}/{pod} of run {run} (pods are deleted by the pod GC: its log may be gone)",
        )


class _TimeoutSession:
    """Factory of a ``requests.Session`` whose requests time out (Hera's service passes no timeout)."""

    @staticmethod
    def make(timeout: float) -> Any:
        import requests  # with Hera: Argo Server path only

        class Session(requests.Session):
            def request(self, method: str, url: str, **kwargs: Any) -> Any:  # type: ignore[override]  # forwards requests' own parameters, adding a default timeout
                kwargs.setdefault("timeout", timeout)
                return super().request(method, url, **kwargs)

        return Session()


class ArgoServerWorkflows:
    """Workflows through the Argo Server REST API with Hera's ``WorkflowsService``."""

    def __init__(self, kube: KubernetesSettings, token: str | None, clock: Clock) -> None:
        from hera.workflows.service import WorkflowsService  # Hera: ~2 s, Argo Server path only

        host = kube.argo_server or ""
        if not host.startswith(("http://", "https://")):
            raise PlatformError(f"Argo Server URL {host!r} needs a scheme: https://argo-server.argo:2746 (SCANFLOW_ARGO_SERVER)")
        self.namespace = kube.namespace
        self.host = host.rstrip("/") + "/"
        self._token_env = kube.argo_token_env
        self._clock = clock
        self._service = WorkflowsService(
            host=self.host,
            verify_ssl=kube.verify_tls,
            token=token,
            namespace=kube.namespace,
            session=_TimeoutSession.make(kube.request_timeout),
        )

    def _call(self, fn: Callable[[], T], what: str) -> T:
        import requests  # with Hera: Argo Server path only
        from hera.exceptions import HeraException, NotFound, Unauthorized  # Hera: ~2 s, Argo Server path only

        try:
            return fn()
        except NotFound as err:
            raise NotFoundError(f"{what} not found in namespace {self.namespace} (Argo Server: {err})") from err
        except HeraException as err:
            status = int(getattr(err, "status_code", 0) or 0)
            if status == 409 and "already exists" in str(err):
                raise AlreadyExistsError(f"{what}: {err}") from err
            if status == 409:
                raise ConflictError(f"{what}: conflict ({err})") from err
            if isinstance(err, Unauthorized) or status == 403:
                raise PlatformError(
                    f"{what}: the Argo Server refused access ({err}) — put a valid token in ${self._token_env} "
                    "(the variable SCANFLOW_ARGO_TOKEN_ENV names)"
                ) from err
            if status == 0 or status >= 500:
                raise UnavailableError(f"{what}: the Argo Server failed ({err})") from err
            raise PlatformError(f"{what}: the Argo Server rejected the request ({err})") from err
        except requests.RequestException as err:
            raise UnavailableError(f"{what}: the Argo Server at {self.host} did not answer ({type(err).__name__})") from err
        except (KeyError, ValueError) as err:  # a non-Argo answer (a proxy's error page)
            raise UnavailableError(f"{what}: unexpected answer from {self.host} ({err!r})") from err

    @staticmethod
    def _model(cls: Any, body: Mapping[str, Any], what: str) -> Any:
        """Hera's model of ``body``; a manifest Hera cannot read is a clear error, not a pydantic trace."""
        import pydantic  # with Hera: Argo Server path only

        try:
            return cls(**body)
        except pydantic.ValidationError as err:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()[:5])
            raise PlatformError(f"{what} does not match Argo's schema ({problems}) — run `scanflow-argo lint` on it") from err

    @staticmethod
    def _plain(model: Any) -> dict[str, Any]:
        return json.loads(model.json(by_alias=True, exclude_none=True))

    def apply_template(self, manifest: Mapping[str, Any]) -> None:
        from hera.workflows import models as m  # Hera: ~2 s, Argo Server path only

        ref = _kind_ref(manifest)
        body = copy.deepcopy(dict(manifest))
        body.setdefault("metadata", {})["namespace"] = self.namespace
        name = body["metadata"]["name"]
        what = ref.describe(self.namespace, name)
        svc = self._service
        cron = ref.kind == "CronWorkflow"

        def apply() -> None:
            try:
                current = self._call(
                    lambda: svc.get_cron_workflow(name) if cron else svc.get_workflow_template(name),
                    what,
                )
            except NotFoundError:
                if cron:
                    req_c = m.CreateCronWorkflowRequest(
                        namespace=self.namespace, cron_workflow=self._model(m.CronWorkflow, body, what)
                    )
                    self._call(lambda: svc.create_cron_workflow(req_c), what)
                else:
                    req_t = m.WorkflowTemplateCreateRequest(
                        namespace=self.namespace, template=self._model(m.WorkflowTemplate, body, what)
                    )
                    self._call(lambda: svc.create_workflow_template(req_t), what)
                return
            body["metadata"]["resourceVersion"] = current.metadata.resource_version
            if cron:
                upd_c = m.UpdateCronWorkflowRequest(
                    name=name, namespace=self.namespace, cron_workflow=self._model(m.CronWorkflow, body, what)
                )
                self._call(lambda: svc.update_cron_workflow(name, upd_c), what)
            else:
                upd_t = m.WorkflowTemplateUpdateRequest(
                    name=name, namespace=self.namespace, template=self._model(m.WorkflowTemplate, body, what)
                )
                self._call(lambda: svc.update_workflow_template(name, upd_t), what)

        retry_conflicts(apply, self._clock, what)

    def create(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        from hera.workflows import models as m  # Hera: ~2 s, Argo Server path only

        body = copy.deepcopy(dict(manifest))
        body.setdefault("metadata", {})["namespace"] = self.namespace
        name = body["metadata"].get("name") or body["metadata"].get("generateName", "?")
        req = m.WorkflowCreateRequest(namespace=self.namespace, workflow=self._model(m.Workflow, body, f"Workflow {name}"))
        return self._plain(self._call(lambda: self._service.create_workflow(req), f"Workflow {self.namespace}/{name}"))

    def submit_template(self, template: str, parameters: Mapping[str, str], labels: Mapping[str, str]) -> dict[str, Any]:
        from hera.workflows import models as m  # Hera: ~2 s, Argo Server path only

        opts = m.SubmitOpts(
            parameters=[f"{k}={v}" for k, v in parameters.items()] or None,
            labels=",".join(f"{k}={v}" for k, v in labels.items()) or None,
        )
        req = m.WorkflowSubmitRequest(
            namespace=self.namespace, resource_kind="WorkflowTemplate", resource_name=template, submit_options=opts
        )
        return self._plain(
            self._call(lambda: self._service.submit_workflow(req), f"WorkflowTemplate {self.namespace}/{template}")
        )

    def get(self, name: str) -> dict[str, Any]:
        return self._plain(self._call(lambda: self._service.get_workflow(name), f"Workflow {self.namespace}/{name}"))

    def list(self, labels: Mapping[str, str] | None) -> list[dict[str, Any]]:
        result = self._call(
            lambda: self._service.list_workflows(label_selector=selector(labels)), f"Workflows in namespace {self.namespace}"
        )
        return [self._plain(item) for item in (result.items or [])]

    def stop(self, name: str) -> None:
        from hera.workflows import models as m  # Hera: ~2 s, Argo Server path only

        req = m.WorkflowStopRequest(name=name, namespace=self.namespace)
        try:
            self._call(lambda: self._service.stop_workflow(name, req), f"Workflow {self.namespace}/{name}")
        except UnavailableError as err:
            # Argo's AlreadyShutdownError comes back as codes.Internal (HTTP 500): not an outage, a finished run
            if "cannot shutdown a completed workflow" not in str(err):
                raise
            phase = (self.get(name).get("status") or {}).get("phase") or "finished"
            raise already_finished(name, str(phase)) from err

    def resume(self, name: str) -> None:
        """Argo's resume (server/workflow/workflow_server.go ``ResumeWorkflow``): a suspended run goes on."""
        from hera.workflows import models as m  # Hera: ~2 s, Argo Server path only

        req = m.WorkflowResumeRequest(name=name, namespace=self.namespace)
        self._call(lambda: self._service.resume_workflow(name, req), f"Workflow {self.namespace}/{name}")

    def retry(self, name: str) -> None:
        """Argo's retry (``RetryWorkflow`` → workflow/util/util.go ``FormulateRetryWorkflow``): a failed run re-runs
        its failed nodes and keeps what succeeded."""
        from hera.workflows import models as m  # Hera: ~2 s, Argo Server path only

        req = m.WorkflowRetryRequest(name=name, namespace=self.namespace)
        self._call(lambda: self._service.retry_workflow(name, req), f"Workflow {self.namespace}/{name}")

    def delete(self, name: str) -> None:
        self._call(lambda: self._service.delete_workflow(name), f"Workflow {self.namespace}/{name}")

    def get_template(self, name: str) -> dict[str, Any]:
        return self._plain(
            self._call(lambda: self._service.get_workflow_template(name), f"WorkflowTemplate {self.namespace}/{name}")
        )

    def output_artifact(self, run: str, node_id: str, artifact: str) -> bytes:
        """The stored object of an output artifact (a tar-gz when archived) from the Argo Server's
        ``/artifacts/{namespace}/{workflow}/{node}/{artifact}`` (``server/artifacts/artifact_server.go``)."""
        svc = self._service
        url = f"{self.host}artifacts/{self.namespace}/{run}/{node_id}/{artifact}"

        def fetch() -> Any:
            resp = svc.session.get(url, headers={"Authorization": svc.token or ""}, verify=svc.verify_ssl)
            if not resp.ok:
                from hera.exceptions import exception_from_server_response  # Hera: ~2 s to import, errors only

                raise exception_from_server_response(resp)
            return resp

        return bytes(self._call(fetch, f"artifact {artifact!r} of node {node_id} of Workflow {self.namespace}/{run}").content)

    def pod_log(self, run: str, pod: str, container: str = "main") -> str:
        """One container's log of a pod (``main`` by default) from the Argo Server's streaming log endpoint (JSON lines)."""
        svc = self._service
        url = f"{self.host}api/v1/workflows/{self.namespace}/{run}/log"
        params = {"podName": pod, "logOptions.container": container}

        def fetch() -> Any:
            resp = svc.session.get(
                url, params=params, headers={"Authorization": svc.token} if svc.token else {}, verify=svc.verify_ssl
            )
            if not resp.ok:
                from hera.exceptions import exception_from_server_response  # Hera: ~2 s, Argo Server path only

                raise exception_from_server_response(resp)
            return resp

        resp = self._call(fetch, f"log of pod {pod} of Workflow {self.namespace}/{run}")
        lines: list[str] = []
        for raw in resp.text.splitlines():
            if not raw.strip():
                continue
            item = json.loads(raw)
            if "error" in item:
                raise PlatformError(f"log of pod {pod} of run {run}: {item['error'].get('message', item['error'])}")
            lines.append((item.get("result") or {}).get("content", ""))
        return "\n".join(lines) + ("\n" if lines else "")
