"""Argo's ``WorkflowService`` over the platform: list, get, create, delete, lint, submit, and the lifecycle verbs.

Follows ``server/workflow/workflow_server.go`` (request bodies, defaults, which error code each failure
gets) and ``server/utils/list_options.go`` (``listOptions.fieldSelector``: ``metadata.name``,
``metadata.namespace``, ``spec.startedAt>``/``<``; ``listOptions.limit``/``continue`` as an offset;
``nameFilter``). Submitting a WorkflowTemplate or CronWorkflow builds the Workflow as
``workflow/common/convert.go`` does and applies the submit options as ``workflow/util/util.go``
(``ApplySubmitOpts``); the arguments are validated as ``workflow/validate/validate.go`` does
(``validateArgumentsValues``: an ``enum`` parameter's value must be in its list). Logs and the
watch stream live in ``streams.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from aiohttp import web

from ..errors import ScanflowError
from ..platform.base import WorkflowAdmin
from ..platform.selectors import FieldSelector, LabelSelector
from .http import (
    ApiError,
    Codes,
    clean_fields,
    from_scanflow,
    json_body,
    json_response,
    name_param,
    namespace_param,
    needs_nodes,
    object_field,
    object_namespace,
    query_int,
    string_list,
    valid_name,
)
from .lint import Linter

__all__ = ["WorkflowsApi", "arguments_problem", "parse_list_options", "workflow_from_template"]

LATEST = "@latest"
LABEL_WORKFLOW_TEMPLATE = "workflows.argoproj.io/workflow-template"
LABEL_CLUSTER_WORKFLOW_TEMPLATE = "workflows.argoproj.io/cluster-workflow-template"
LABEL_CRON_WORKFLOW = "workflows.argoproj.io/cron-workflow"
ANNOTATION_SCHEDULED_TIME = "workflows.argoproj.io/scheduled-time"
NO_SUSPEND_NODES = (
    "nodeFieldSelector picks suspend nodes that wait for a manual resume; the local engine runs none "
    "(its suspend templates have a duration): act on the whole workflow instead"
)
_KINDS = {
    "WorkflowTemplate": ("workflowtemplate", "workflowtemplates", "wftmpl", "WorkflowTemplate"),
    "ClusterWorkflowTemplate": ("clusterworkflowtemplate", "clusterworkflowtemplates", "cwftmpl", "ClusterWorkflowTemplate"),
    "CronWorkflow": ("cronworkflow", "cronworkflows", "cronwf", "CronWorkflow"),
}


class ListOptions:
    """What a list or watch request selects (``listOptions.*``, ``nameFilter``, time bounds)."""

    def __init__(self) -> None:
        self.namespace: str | None = None
        self.name: str | None = None
        self.name_op = "Exact"
        self.labels = LabelSelector()
        self.started_after: datetime | None = None
        self.started_before: datetime | None = None
        self.limit = 0
        self.offset = 0
        self.show_remaining = False

    def matches(self, doc: Mapping[str, Any]) -> bool:
        meta = doc.get("metadata") or {}
        if self.namespace and meta.get("namespace") != self.namespace:
            return False
        name = str(meta.get("name", ""))
        if self.name is not None:
            op = self.name_op
            hit = {
                "Exact": name == self.name,
                "Prefix": name.startswith(self.name),
                "Contains": self.name in name,
                "NotEquals": name != self.name,
            }.get(op, name == self.name)
            if not hit:
                return False
        if not self.labels.matches(meta.get("labels") or {}):
            return False
        if self.started_after or self.started_before:
            started = _time((doc.get("status") or {}).get("startedAt"))
            if started is None:
                return False
            if self.started_after and started <= self.started_after:
                return False
            if self.started_before and started >= self.started_before:
                return False
        return True


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def parse_list_options(request: web.Request, namespace: str) -> ListOptions:
    """``listOptions.*`` of a list or watch request, refused with Argo's messages where they are wrong."""
    opts = ListOptions()
    opts.namespace = namespace or None
    q = request.query
    try:
        opts.labels = LabelSelector.parse(q.get("listOptions.labelSelector"))
    except ScanflowError as err:
        raise ApiError(Codes.INVALID_ARGUMENT, str(err)) from err
    for term in (q.get("listOptions.fieldSelector") or "").split(","):
        term = term.strip()
        if not term:
            continue
        for prefix, attr in (("spec.startedAt>", "started_after"), ("spec.startedAt<", "started_before")):
            if term.startswith(prefix):
                when = _time(term[len(prefix) :])
                if when is None:
                    raise ApiError(
                        Codes.INVALID_ARGUMENT, f"{term}: expected an RFC 3339 time, e.g. {prefix}2024-01-01T00:00:00Z"
                    )
                setattr(opts, attr, when)
                break
        else:
            if term.startswith("ext.showRemainingItemCount"):
                opts.show_remaining = term.split("=", 1)[-1].lower() in ("true", "1")
                continue
            try:
                field = FieldSelector.parse(term, allowed=lambda f: f in ("metadata.name", "metadata.namespace"))
            except ScanflowError as err:
                raise ApiError(Codes.INVALID_ARGUMENT, str(err)) from err
            for key, op, value in field.terms:
                if key == "metadata.namespace":
                    if op == "!=":
                        raise ApiError(
                            Codes.INVALID_ARGUMENT, "metadata.namespace!= is not supported here: list one namespace, or all"
                        )
                    if opts.namespace and opts.namespace != value:
                        raise ApiError(
                            Codes.INVALID_ARGUMENT,
                            f"'namespace' query param ({opts.namespace!r}) and fieldselector 'metadata.namespace' ({value!r}) "
                            "are both specified and contradict each other",
                        )
                    opts.namespace = value
                else:
                    opts.name = value
                    opts.name_op = "NotEquals" if op == "!=" else opts.name_op
    name_filter = q.get("nameFilter")
    if name_filter:
        if name_filter not in ("Exact", "Prefix", "Contains", "NotEquals"):
            raise ApiError(Codes.INVALID_ARGUMENT, f"nameFilter {name_filter!r}: use Exact, Prefix, Contains or NotEquals")
        opts.name_op = name_filter
    opts.limit = max(0, query_int(request, "listOptions.limit") or 0)
    cont = q.get("listOptions.continue") or "0"
    try:
        opts.offset = int(cont)
    except ValueError:
        raise ApiError(Codes.INVALID_ARGUMENT, "listOptions.continue must be int") from None
    if opts.offset < 0:
        raise ApiError(Codes.INVALID_ARGUMENT, "listOptions.continue must >= 0")
    return opts


def arguments_problem(template_params: list[Mapping[str, Any]], given: list[tuple[str, str]]) -> str | None:
    """Argo's ``validateArgumentsValues`` for a submission: the first ``enum`` parameter whose value is not listed."""
    values = {str(p.get("name")): p for p in template_params if isinstance(p, Mapping)}
    chosen = {name: value for name, value in given}
    for name, param in values.items():
        enum = param.get("enum")
        if enum is None:
            continue
        if not enum:
            return f"spec.arguments.{name}.enum should contain at least one value"
        value = chosen.get(name, param.get("value", param.get("default")))
        if value is None:
            return f"spec.arguments.{name}.value is required"
        if str(value) not in [str(e) for e in enum]:
            return f"spec.arguments.{name}.value should be present in spec.arguments.{name}.enum list"
    return None


def _parse_pairs(text: str, what: str) -> dict[str, str]:
    """``k=v,k2=v2`` as ``cmdutil.ParseLabels`` reads it."""
    out = {}
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ApiError(Codes.INTERNAL, f"expected {what} of the form: NAME1=VALUE2,NAME2=VALUE2. Received: {text}")
        out[key.strip()] = value.strip()
    return out


def workflow_from_template(
    kind: str, name: str, namespace: str, source: Mapping[str, Any], opts: Mapping[str, Any], now: str
) -> dict[str, Any]:
    """The Workflow Argo's ``SubmitWorkflow`` creates from a template or a CronWorkflow, submit options applied."""
    meta: dict[str, Any]
    if kind == "CronWorkflow":
        spec = dict((source.get("spec") or {}).get("workflowSpec") or {})
        wf_meta = (source.get("spec") or {}).get("workflowMetadata") or {}
        meta = {
            "generateName": f"{name}-",
            "labels": {LABEL_CRON_WORKFLOW: name, **(wf_meta.get("labels") or {})},
            "annotations": {ANNOTATION_SCHEDULED_TIME: now, **(wf_meta.get("annotations") or {})},
        }
    else:
        label = LABEL_CLUSTER_WORKFLOW_TEMPLATE if kind == "ClusterWorkflowTemplate" else LABEL_WORKFLOW_TEMPLATE
        meta = {"generateName": f"{name}-", "labels": {label: name}, "annotations": {}}
        spec = {"workflowTemplateRef": {"name": name, **({"clusterScope": True} if kind == "ClusterWorkflowTemplate" else {})}}
    meta["namespace"] = namespace
    if opts.get("entryPoint"):
        spec["entrypoint"] = str(opts["entryPoint"])
    if opts.get("serviceAccount"):
        spec["serviceAccountName"] = str(opts["serviceAccount"])
    if opts.get("podPriorityClassName"):
        spec["podPriorityClassName"] = str(opts["podPriorityClassName"])
    if opts.get("priority") is not None:
        spec["priority"] = opts["priority"]
    if opts.get("labels"):
        meta["labels"].update(_parse_pairs(str(opts["labels"]), "labels"))
    if opts.get("annotations"):
        meta["annotations"].update(_parse_pairs(str(opts["annotations"]), "Annotations"))
    params = string_list(opts, "parameters")
    if params:
        given = []
        for text in params:
            key, sep, value = text.partition("=")
            if not sep:
                raise ApiError(Codes.INTERNAL, f"expected parameter of the form: NAME=VALUE. Received: {text}")
            given.append({"name": key, "value": value})
        names = {p["name"] for p in given}
        old = [p for p in (spec.get("arguments") or {}).get("parameters") or [] if p.get("name") not in names]
        spec["arguments"] = {**(spec.get("arguments") or {}), "parameters": given + old}
    if opts.get("generateName"):
        meta["generateName"] = str(opts["generateName"])
    if opts.get("name"):
        meta["name"] = str(opts["name"])
    if not meta["annotations"]:
        del meta["annotations"]
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": meta, "spec": spec}


class WorkflowsApi:
    """The handlers of ``/api/v1/workflows``; ``routes()`` lists them for the application."""

    def __init__(self, platform: WorkflowAdmin, linter: Linter, now: Callable[[], str]) -> None:
        self.platform = platform
        self.linter = linter
        self.now = now

    def routes(self) -> list[web.RouteDef]:
        base = "/api/v1/workflows/{namespace}"
        return [
            web.get("/api/v1/workflows/", self.index),
            web.get(base, self.index),
            web.post(base, self.create),
            web.post(f"{base}/lint", self.lint),
            web.post(f"{base}/submit", self.submit),
            web.get(f"{base}/{{name}}", self.get),
            web.delete(f"{base}/{{name}}", self.delete),
            web.put(f"{base}/{{name}}/stop", self.stop),
            web.put(f"{base}/{{name}}/terminate", self.terminate),
            web.put(f"{base}/{{name}}/suspend", self.suspend),
            web.put(f"{base}/{{name}}/resume", self.resume),
            web.put(f"{base}/{{name}}/retry", self.retry),
            web.put(f"{base}/{{name}}/resubmit", self.resubmit),
            web.put(f"{base}/{{name}}/set", self.set_node),
        ]

    async def call(self, fn: Callable[..., Any], *args: Any, default: int = Codes.INTERNAL, **kwargs: Any) -> Any:
        """Run a platform call off the event loop; its errors become Argo's."""
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except ScanflowError as err:
            raise from_scanflow(err, default) from err

    async def resolve(self, request: web.Request) -> tuple[str, str]:
        """``{namespace}`` and ``{name}`` of the request (``@latest``: the newest run of the namespace)."""
        namespace = namespace_param(request)
        if request.match_info.get("name") == LATEST:
            items = await self.call(self.platform.list_workflows, namespace or None)
            if not items:
                raise ApiError(Codes.NOT_FOUND, "no workflows found")
            return namespace, str(items[0]["metadata"]["name"])
        return namespace, name_param(request)

    async def get_doc(self, namespace: str, name: str) -> dict[str, Any]:
        return await self.call(self.platform.get_workflow, name, namespace or None)

    # -- list / get ------------------------------------------------------------------------------
    async def index(self, request: web.Request) -> web.Response:
        opts = parse_list_options(request, namespace_param(request))
        fields = request.query.get("fields")
        full = needs_nodes(fields, "items.")
        summaries = await self.call(self.platform.list_workflows, opts.namespace, opts.labels)
        chosen = [s for s in summaries if opts.matches(s)]
        total = len(chosen)
        page = chosen[opts.offset : opts.offset + opts.limit] if opts.limit else chosen[opts.offset :]
        if full:
            docs = []
            for s in page:
                try:
                    docs.append(await self.get_doc("", str(s["metadata"]["name"])))
                except ApiError as err:
                    if err.code != Codes.NOT_FOUND:
                        raise
            page = docs
        meta: dict[str, Any] = {"resourceVersion": self.now()}
        remaining = total - opts.offset - len(page)
        if opts.limit and remaining > 0:
            meta["continue"] = str(opts.offset + len(page))
        if opts.show_remaining:
            meta["remainingItemCount"] = max(remaining, 0)
        return json_response(clean_fields({"metadata": meta, "items": page}, fields))

    async def get(self, request: web.Request) -> web.Response:
        namespace, name = await self.resolve(request)
        doc = await self.get_doc(namespace, name)
        uid = request.query.get("uid")
        if uid and (doc.get("metadata") or {}).get("uid") != uid:
            raise ApiError(Codes.NOT_FOUND, f'workflows.argoproj.io "{name}" not found (no workflow of that name has uid {uid})')
        return json_response(clean_fields(doc, request.query.get("fields")))

    # -- create / lint / submit ------------------------------------------------------------------
    async def _body_workflow(self, request: web.Request, namespace: str) -> tuple[dict[str, Any], dict[str, Any]]:
        body = await json_body(request)
        wf = object_field(body, "workflow")
        if not wf:
            raise ApiError(Codes.INVALID_ARGUMENT, "workflow body not specified")
        wf = {**wf, "apiVersion": wf.get("apiVersion") or "argoproj.io/v1alpha1", "kind": wf.get("kind") or "Workflow"}
        meta = dict(wf.get("metadata") or {})
        if not meta.get("namespace"):
            meta["namespace"] = namespace or self.platform.namespace
        wf["metadata"] = meta
        return body, wf

    async def create(self, request: web.Request) -> web.Response:
        namespace = namespace_param(request)
        body, wf = await self._body_workflow(request, namespace)
        if wf.get("kind") != "Workflow":
            raise ApiError(Codes.INVALID_ARGUMENT, f"kind {wf.get('kind')!r}: this endpoint creates Workflows")
        object_namespace(wf["metadata"], namespace, "Workflow")  # written where the path says, or refused
        await self.linter.check(wf)
        if (object_field(body, "createOptions") or {}).get("dryRun") or body.get("serverDryRun"):
            return json_response(wf)
        return json_response(await self.call(self.platform.create_workflow, wf))

    async def lint(self, request: web.Request) -> web.Response:
        _, wf = await self._body_workflow(request, namespace_param(request))
        await self.linter.check(wf)
        return json_response(wf)

    async def submit(self, request: web.Request) -> web.Response:
        namespace = namespace_param(request) or self.platform.namespace
        body = await json_body(request)
        kind_text = str(body.get("resourceKind") or "")
        kind = next((k for k, aliases in _KINDS.items() if kind_text in aliases), None)
        if kind is None:
            raise ApiError(Codes.INVALID_ARGUMENT, f"Resource kind '{kind_text}' is not supported for submitting")
        name = valid_name(str(body.get("resourceName") or ""), "resourceName")
        opts = object_field(body, "submitOptions") or {}
        source = await self.call(self.platform.get_template, kind, name, None if kind == "ClusterWorkflowTemplate" else namespace)
        wf = workflow_from_template(kind, name, namespace, source, opts, self.now())
        template_spec = source.get("spec") or {}
        if kind == "CronWorkflow":
            template_spec = template_spec.get("workflowSpec") or {}
        given = [(p["name"], p["value"]) for p in (wf["spec"].get("arguments") or {}).get("parameters") or [] if "value" in p]
        problem = arguments_problem((template_spec.get("arguments") or {}).get("parameters") or [], given)
        if problem:
            raise ApiError(Codes.INVALID_ARGUMENT, problem)
        if opts.get("dryRun") or opts.get("serverDryRun"):
            return json_response(wf)
        return json_response(await self.call(self.platform.create_workflow, wf, default=Codes.INVALID_ARGUMENT))

    # -- delete and the verbs --------------------------------------------------------------------
    async def delete(self, request: web.Request) -> web.Response:
        namespace, name = await self.resolve(request)
        await self.get_doc(namespace, name)
        await self.call(self.platform.delete_workflow, name)
        return json_response({})

    async def _verb_body(self, request: web.Request) -> tuple[str, str, dict[str, Any]]:
        namespace, name = await self.resolve(request)
        body = await json_body(request)
        await self.get_doc(namespace, name)
        return namespace, name, body

    @staticmethod
    def _no_node_selector(body: Mapping[str, Any]) -> None:
        if body.get("nodeFieldSelector"):
            raise ApiError(Codes.INVALID_ARGUMENT, NO_SUSPEND_NODES)

    async def stop(self, request: web.Request) -> web.Response:
        _, name, body = await self._verb_body(request)
        self._no_node_selector(body)
        return json_response(await self.call(self.platform.shutdown, name, "Stop"))

    async def terminate(self, request: web.Request) -> web.Response:
        _, name, _ = await self._verb_body(request)
        return json_response(await self.call(self.platform.shutdown, name, "Terminate"))

    async def suspend(self, request: web.Request) -> web.Response:
        _, name, _ = await self._verb_body(request)
        return json_response(await self.call(self.platform.suspend, name))

    async def resume(self, request: web.Request) -> web.Response:
        _, name, body = await self._verb_body(request)
        self._no_node_selector(body)
        return json_response(await self.call(self.platform.resume, name))

    async def retry(self, request: web.Request) -> web.Response:
        _, name, body = await self._verb_body(request)
        return json_response(
            await self.call(
                self.platform.retry,
                name,
                bool(body.get("restartSuccessful")),
                str(body.get("nodeFieldSelector") or ""),
                string_list(body, "parameters"),
            )
        )

    async def resubmit(self, request: web.Request) -> web.Response:
        _, name, body = await self._verb_body(request)
        return json_response(
            await self.call(self.platform.resubmit, name, string_list(body, "parameters"), bool(body.get("memoized")))
        )

    async def set_node(self, request: web.Request) -> web.Response:
        _, _, body = await self._verb_body(request)
        if not body.get("nodeFieldSelector"):
            raise ApiError(Codes.INTERNAL, "'set' currently only targets suspend nodes, use a node field selector to target them")
        raise ApiError(Codes.INVALID_ARGUMENT, NO_SUSPEND_NODES)
