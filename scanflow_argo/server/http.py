"""The Argo Server's HTTP conventions: gRPC-gateway error bodies and status codes, query and path
parameters, bounded JSON bodies, ``fields`` filtering and the stream framing of watch and log calls.

Argo serves its gRPC services through grpc-gateway v1 (``server/apiserver/argoserver.go``) with
``runtime.DefaultHTTPProtoErrorHandler``: an error is the ``google.rpc.Status`` as JSON,
``{"code": <gRPC code>, "message": "..."}``, with the HTTP status ``runtime.HTTPStatusFromCode`` gives
it; Argo converts its own and Kubernetes' errors with ``server/utils/errors.go`` (``ToStatusError``).
Streams use ``github.com/argoproj/pkg/grpc/http`` (``StreamForwarder``): one ``{"result": ...}`` JSON
document per line, or with ``Accept: text/event-stream`` server-sent events ``data: {...}`` with a
``:`` keep-alive line every 15 s; an error inside a stream is ``{"error": {...}}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any, ClassVar

from aiohttp import web

from ..errors import (
    ConflictError,
    EngineError,
    InvalidRequest,
    NotFoundError,
    PlatformError,
    RequestError,
    ScanflowError,
    SpecError,
    UnavailableError,
    redact,
)
from ..httpguard import load_json

__all__ = [
    "MAX_BODY",
    "ApiError",
    "Codes",
    "Stream",
    "clean_fields",
    "error_response",
    "from_scanflow",
    "json_body",
    "json_response",
    "name_param",
    "namespace_param",
    "object_namespace",
    "query_bool",
    "query_list",
    "valid_name",
]

MAX_BODY = 4 << 20
"""Largest request body accepted (a Workflow with many templates is a few hundred KiB)."""
KEEPALIVE_SECONDS = 15.0
"""Seconds between ``:`` lines of an idle server-sent-events stream (Argo's ``keepaliveInterval``)."""


class Codes:
    """gRPC status codes (``google.golang.org/grpc/codes``) and the HTTP statuses grpc-gateway maps them to."""

    OK, CANCELED, UNKNOWN, INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND, ALREADY_EXISTS = 0, 1, 2, 3, 4, 5, 6
    PERMISSION_DENIED, RESOURCE_EXHAUSTED, FAILED_PRECONDITION, ABORTED, OUT_OF_RANGE = 7, 8, 9, 10, 11
    UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS, UNAUTHENTICATED = 12, 13, 14, 15, 16
    HTTP: ClassVar[dict[int, int]] = {0: 200, 1: 408, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429, 9: 400, 10: 409, 11: 400,
            12: 501, 13: 500, 14: 503, 15: 500, 16: 401}  # fmt: skip
    """``runtime.HTTPStatusFromCode`` of grpc-gateway v1."""


class ApiError(Exception):
    """An error the API answers with Argo's body and status."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = redact(message)

    @property
    def status(self) -> int:
        return Codes.HTTP.get(self.code, 500)


def from_scanflow(err: ScanflowError, default: int = Codes.INTERNAL) -> ApiError:
    """The project's error as Argo's ``ToStatusError`` would classify the Kubernetes error behind it."""
    if isinstance(err, NotFoundError):
        return ApiError(Codes.NOT_FOUND, str(err))
    if isinstance(err, ConflictError):
        return ApiError(Codes.ALREADY_EXISTS, str(err))
    if isinstance(err, InvalidRequest | EngineError | SpecError):
        return ApiError(Codes.INVALID_ARGUMENT, str(err))
    if isinstance(err, UnavailableError):
        return ApiError(Codes.UNAVAILABLE, str(err))
    if isinstance(err, PlatformError):
        return ApiError(default, str(err))
    return ApiError(default, str(err))


def error_response(code: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    status = Codes.HTTP.get(code, 500)
    return web.json_response({"code": code, "message": redact(message)}, status=status, headers=headers)


def json_response(doc: Any) -> web.Response:
    return web.Response(body=json.dumps(doc, separators=(",", ":")), content_type="application/json")


# -- parameters ------------------------------------------------------------------------------------

_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def name_param(request: web.Request, key: str = "name", what: str = "name") -> str:
    """A path parameter that names an object: a Kubernetes object name (so never ``..`` or ``/``)."""
    return valid_name(request.match_info.get(key, ""), what)


def valid_name(value: str, what: str = "name") -> str:
    """``value`` when it is a Kubernetes object name, else ``InvalidArgument`` naming ``what``."""
    if not value or len(value) > 253 or not _NAME.fullmatch(value):
        raise ApiError(
            Codes.INVALID_ARGUMENT,
            f"{what} {value[:80]!r} is not a valid Kubernetes object name (lowercase letters, digits, '-' and '.', at most 253)",
        )
    return value


def namespace_param(request: web.Request) -> str:
    """The ``{namespace}`` path parameter: a DNS label (empty means every namespace where Argo allows it)."""
    value = request.match_info.get("namespace", "")
    if value and (len(value) > 63 or not _LABEL.fullmatch(value)):
        raise ApiError(Codes.INVALID_ARGUMENT, f"namespace {value[:80]!r} is not a valid namespace name (a DNS label)")
    return value


NAMESPACE_MISMATCH = "the namespace of the provided object does not match the namespace sent on the request"
"""The API server's refusal (``k8s.io/apiserver/pkg/registry/rest``: ``BeforeCreate``/``BeforeUpdate``)."""


def object_namespace(meta: Mapping[str, Any], request_namespace: str, what: str) -> str:
    """The namespace an object written through ``request_namespace`` gets, as the Kubernetes API server decides it
    (``rest.EnsureObjectNamespaceMatchesRequestNamespace``): unset takes the request's, the same one passes, another
    is a bad request (400). Argo's ``CreateWorkflow`` and the template servers write through it, so a body never
    puts an object into a namespace its path did not name."""
    given = meta.get("namespace")
    if given in (None, ""):
        return request_namespace
    if given != request_namespace:
        raise ApiError(
            Codes.INVALID_ARGUMENT,
            f"{NAMESPACE_MISMATCH}: the {what}'s metadata.namespace is {str(given)[:80]!r}, the path names "
            f"{request_namespace!r} (leave metadata.namespace out, or send it to /…/{str(given)[:80]})",
        )
    return request_namespace


def query_bool(request: web.Request, key: str) -> bool:
    """A boolean query parameter as grpc-gateway parses it (``true``/``false``/``1``/``0``)."""
    raw = request.query.get(key)
    if raw is None or raw == "":
        return False
    lowered = raw.lower()
    if lowered in ("true", "1", "t"):
        return True
    if lowered in ("false", "0", "f"):
        return False
    raise ApiError(
        Codes.INVALID_ARGUMENT, f"type mismatch, parameter: {key}, error: strconv.ParseBool: parsing {raw!r}: invalid syntax"
    )


def query_int(request: web.Request, key: str) -> int | None:
    raw = request.query.get(key)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise ApiError(
            Codes.INVALID_ARGUMENT, f"type mismatch, parameter: {key}, error: strconv.ParseInt: parsing {raw!r}: invalid syntax"
        ) from None


def query_list(request: web.Request, key: str) -> list[str]:
    return [v for v in request.query.getall(key, []) if v != ""]


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object (bounded by ``MAX_BODY``); an empty body is ``{}``."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(Codes.RESOURCE_EXHAUSTED, f"request body of {request.content_length} bytes is larger than {MAX_BODY}")
    chunks, size = [], 0
    while chunk := await request.content.read(1 << 16):
        size += len(chunk)
        if size > MAX_BODY:
            raise ApiError(Codes.RESOURCE_EXHAUSTED, f"request body is larger than {MAX_BODY} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return {}
    try:  # nested at most MAX_DEPTH levels, finite numbers only, as every server of this project
        doc = load_json(raw, what="the request body")
    except RequestError as err:
        raise ApiError(Codes.INVALID_ARGUMENT, str(err)) from err
    if not isinstance(doc, dict):
        raise ApiError(Codes.INVALID_ARGUMENT, f"the request body must be a JSON object, not {type(doc).__name__}")
    return doc


def object_field(body: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ApiError(Codes.INVALID_ARGUMENT, f"{key} must be a JSON object")
    return value


def string_list(body: Mapping[str, Any], key: str) -> list[str]:
    value = body.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(Codes.INVALID_ARGUMENT, f'{key} must be a list of strings, e.g. ["name=value"]')
    return value


# -- fields ----------------------------------------------------------------------------------------


def clean_fields(doc: Any, spec: str | None, prefix: str = "") -> Any:
    """Keep (``a.b,c``) or drop (``-a.b,c``) dotted paths of ``doc``, as Argo's ``fields`` parameter does
    (``util/fields``); ``prefix`` is removed from each path first. Only the branches that hold a listed
    path are walked: the rest is kept (or dropped) whole."""
    if not spec:
        return doc
    exclude = spec.startswith("-")
    paths = {p.strip().removeprefix(prefix) for p in spec.lstrip("-").split(",") if p.strip()}
    parents = {p.rsplit(".", n)[0] for p in paths for n in range(1, p.count(".") + 1)}
    return _process(doc, "", paths, parents, exclude)


def _process(value: Any, path: str, paths: set[str], parents: set[str], exclude: bool) -> Any:
    if isinstance(value, list):
        return [_process(v, path, paths, parents, exclude) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, sub in value.items():
        here = f"{path}.{key}" if path else key
        if here in paths:
            if not exclude:
                out[key] = sub
        elif here in parents:
            out[key] = _process(sub, here, paths, parents, exclude)
        elif exclude:
            out[key] = sub
    return out


def needs_nodes(spec: str | None, prefix: str) -> bool:
    """Whether a ``fields`` spec keeps anything a run's summary lacks (its nodes, templates, ...)."""
    if not spec:
        return True
    paths = [p.strip() for p in spec.lstrip("-").split(",") if p.strip()]
    if spec.startswith("-"):
        return f"{prefix}status.nodes" not in paths or f"{prefix}spec" not in paths
    summary = (f"{prefix}metadata", f"{prefix}status.phase", f"{prefix}status.startedAt", f"{prefix}status.finishedAt",
               f"{prefix}status.message", f"{prefix}status.progress", f"{prefix}status.estimatedDuration",
               f"{prefix}spec.suspend", f"{prefix}spec.shutdown", f"{prefix}spec.arguments", f"{prefix}spec.workflowTemplateRef",
               f"{prefix}status.outputs")  # fmt: skip
    return not all(p == "metadata" or p.startswith(summary) for p in paths)


# -- streams ---------------------------------------------------------------------------------------


class Stream:
    """One streaming answer: ``{"result": ...}`` lines, or server-sent events when the client asked."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.sse = request.headers.get("Accept", "") == "text/event-stream"
        content_type = "text/event-stream" if self.sse else "application/json"
        self.response = web.StreamResponse(headers={"Content-Type": content_type, "X-Content-Type-Options": "nosniff"})
        self._lock = asyncio.Lock()
        self._keepalive: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Stream:
        self.response.enable_chunked_encoding()
        await self.response.prepare(self.request)
        if self.sse:
            self._keepalive = asyncio.create_task(self._beat())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keepalive
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.response.write_eof()

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_SECONDS)
            await self._write(b":\n")

    async def _write(self, data: bytes) -> None:
        async with self._lock:
            await self.response.write(data)

    async def send(self, result: Any, transform: Callable[[Any], Any] | None = None) -> None:
        """Send one message (``transform`` applies the ``fields`` of the request to it)."""
        doc = {"result": result}
        if transform is not None:
            doc = transform(doc)
        text = json.dumps(doc, separators=(",", ":"))
        await self._write(f"data: {text} \n\n".encode() if self.sse else f"{text}\n".encode())

    async def error(self, err: ApiError) -> None:
        """An error inside the stream, as grpc-gateway v1 frames one (``runtime.streamError``)."""
        body = {
            "error": {"grpc_code": err.code, "http_code": err.status, "message": err.message, "http_status": _reason(err.status)}
        }
        text = json.dumps(body, separators=(",", ":"))
        await self._write(f"data: {text} \n\n".encode() if self.sse else f"{text}\n".encode())


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
