"""Argo's ``WorkflowTemplateService``, ``ClusterWorkflowTemplateService`` and ``CronWorkflowService`` over the platform.

Create, get, list (``listOptions.labelSelector``), update, delete and lint for each kind, plus suspend
and resume of CronWorkflows — the paths and bodies of ``server/workflowtemplate/workflow_template_server.go``,
``server/clusterworkflowtemplate/cluster_workflow_template_server.go`` and
``server/cronworkflow/cron_workflow_server.go``: the object travels under ``template`` (templates)
or ``cronWorkflow``; a name that is taken is ``AlreadyExists`` (409), a missing one ``NotFound`` (404),
an object that does not validate ``InvalidArgument`` (400). Locally templates are files in the state
folder (``<home>/templates``); CronWorkflows are stored and submitted, their schedule is not run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..engine.core.manifest import created
from ..errors import ScanflowError
from ..platform.base import WorkflowAdmin
from ..platform.selectors import LabelSelector
from .http import (
    ApiError,
    Codes,
    clean_fields,
    from_scanflow,
    json_body,
    json_response,
    name_param,
    namespace_param,
    object_field,
    object_namespace,
)
from .lint import Linter

__all__ = ["TemplatesApi"]


@dataclass(frozen=True)
class Kind:
    """One template kind as the API serves it."""

    kind: str
    base: str
    """Collection path; ``{namespace}`` in it unless cluster-scoped."""
    body_key: str
    """Where the object travels in request bodies."""

    @property
    def namespaced(self) -> bool:
        return "{namespace}" in self.base


KINDS = (
    Kind("WorkflowTemplate", "/api/v1/workflow-templates/{namespace}", "template"),
    Kind("ClusterWorkflowTemplate", "/api/v1/cluster-workflow-templates", "template"),
    Kind("CronWorkflow", "/api/v1/cron-workflows/{namespace}", "cronWorkflow"),
)


class TemplatesApi:
    """The handlers of the three template collections; ``routes()`` lists them."""

    def __init__(self, platform: WorkflowAdmin, linter: Linter) -> None:
        self.platform = platform
        self.linter = linter

    def routes(self) -> list[web.RouteDef]:
        out = []
        for k in KINDS:
            one = f"{k.base}/{{name}}"
            out += [
                web.get(k.base, self._bind(self.index, k)),
                web.post(k.base, self._bind(self.create, k)),
                web.post(f"{k.base}/lint", self._bind(self.lint, k)),
                web.get(one, self._bind(self.get, k)),
                web.put(one, self._bind(self.update, k)),
                web.delete(one, self._bind(self.delete, k)),
            ]
            if k.kind == "CronWorkflow":
                out += [
                    web.put(f"{one}/suspend", self._bind(self.suspend, k)),
                    web.put(f"{one}/resume", self._bind(self.resume, k)),
                ]
        return out

    @staticmethod
    def _bind(fn: Callable[[web.Request, Kind], Any], kind: Kind) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.StreamResponse:
            return await fn(request, kind)

        return handler

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args)
        except ScanflowError as err:
            raise from_scanflow(err) from err

    @staticmethod
    def _namespace(request: web.Request, k: Kind) -> str | None:
        return (namespace_param(request) or None) if k.namespaced else None

    async def _object(
        self, request: web.Request, k: Kind, write: bool = True, *, create: bool = False
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The object of the request's body; ``write``: it is stored, so its namespace is the path's (the API
        server's rule), and a cluster-scoped one has none; ``create``: a generateName is named, as on create."""
        body = await json_body(request)
        obj = object_field(body, k.body_key)
        if not obj:
            raise ApiError(Codes.INVALID_ARGUMENT, f"{k.kind} body not specified (send it as {{{k.body_key!r}: {{...}}}})")
        obj = {**obj, "apiVersion": obj.get("apiVersion") or "argoproj.io/v1alpha1", "kind": obj.get("kind") or k.kind}
        if obj["kind"] != k.kind:
            raise ApiError(Codes.INVALID_ARGUMENT, f"kind {obj['kind']!r}: this endpoint takes a {k.kind}")
        if create:  # Argo's server creates through the API server, which names a generateName (Hera's create())
            obj = created(obj)
        meta = dict(obj.get("metadata") or {})
        if k.namespaced:
            path_namespace = self._namespace(request, k) or self.platform.namespace
            meta["namespace"] = (
                object_namespace(meta, path_namespace, k.kind) if write else meta.get("namespace") or path_namespace
            )
        elif write:
            meta.pop("namespace", None)  # cluster-scoped: the API server clears it (rest.BeforeCreate)
        if not meta.get("name"):
            raise ApiError(Codes.INVALID_ARGUMENT, f"{k.kind} needs metadata.name (templates are applied by name)")
        obj["metadata"] = meta
        return body, obj

    async def index(self, request: web.Request, k: Kind) -> web.Response:
        try:
            selector = LabelSelector.parse(request.query.get("listOptions.labelSelector"))
        except ScanflowError as err:
            raise ApiError(Codes.INVALID_ARGUMENT, str(err)) from err
        items = await self.call(self.platform.list_templates, k.kind, self._namespace(request, k))
        items = [i for i in items if selector.matches((i.get("metadata") or {}).get("labels") or {})]
        return json_response(clean_fields({"metadata": {}, "items": items}, request.query.get("fields")))

    async def get(self, request: web.Request, k: Kind) -> web.Response:
        doc = await self.call(self.platform.get_template, k.kind, name_param(request), self._namespace(request, k))
        return json_response(doc)

    async def create(self, request: web.Request, k: Kind) -> web.Response:
        body, obj = await self._object(request, k, create=True)
        await self.linter.check(obj)
        if (object_field(body, "createOptions") or {}).get("dryRun"):
            return json_response(obj)
        return json_response(await self.call(self.platform.create_template, obj))

    async def lint(self, request: web.Request, k: Kind) -> web.Response:
        _, obj = await self._object(request, k, write=False)
        await self.linter.check(obj)
        return json_response(obj)

    async def update(self, request: web.Request, k: Kind) -> web.Response:
        name = name_param(request)
        _, obj = await self._object(request, k)
        if obj["metadata"]["name"] != name:
            raise ApiError(
                Codes.INVALID_ARGUMENT, f"the {k.kind} in the body is {obj['metadata']['name']!r}, the path names {name!r}"
            )
        await self.call(self.platform.get_template, k.kind, name, self._namespace(request, k))
        await self.linter.check(obj)
        return json_response(await self.call(self.platform.update_template, obj))

    async def delete(self, request: web.Request, k: Kind) -> web.Response:
        await self.call(self.platform.delete_template, k.kind, name_param(request), self._namespace(request, k))
        return json_response({})

    async def suspend(self, request: web.Request, k: Kind) -> web.Response:
        return json_response(
            await self.call(self.platform.set_cron_suspended, name_param(request), True, self._namespace(request, k))
        )

    async def resume(self, request: web.Request, k: Kind) -> web.Response:
        return json_response(
            await self.call(self.platform.set_cron_suspended, name_param(request), False, self._namespace(request, k))
        )
