"""HTTP templates in the local engine: one request per node, with Argo's semantics.

Argo runs an ``http`` template in its agent, from the controller's side, not in a pod. So does this
module: the request goes from the engine process (httpcore, httpx's transport), never through a shell. What it owns:

* the request: ``method`` (default GET), ``url``, ``headers`` (``value`` or ``valueFrom.secretKeyRef``,
  read from the run's namespace's Secrets, ``core/configstore.py``, like secret env), ``body`` or ``bodyFrom.bytes``
  (base64, as Kubernetes writes ``[]byte``), ``timeoutSeconds`` (default 30), ``insecureSkipVerify``;
* success: ``successCondition`` (expr over ``request.*`` and ``response.statusCode/body/headers``); without
  one, a status code of 400 or more fails the node with Argo's "received non-2xx response code: N";
* the node: type ``HTTP``, ``outputs.result`` = the response body, output parameters from ``value``,
  ``valueFrom.default`` or ``valueFrom.expression`` (over ``outputs.result``);
* bounds: the node's ``timeout``/``activeDeadlineSeconds``, the workflow's deadline and ``stop`` end the
  wait at once; the request's socket timeouts are cut to what is left, so no request outlives them.

Header values never reach the status document or the node log (secrets may be among them).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

from ...argoexpr.expr import ExprError, eval_expr, eval_expr_bool, render_param
from ...errors import EngineError
from ..core.configstore import SECRETS, missing
from ..core.context import Call
from ..core.inputs import inputs_doc
from ..core.state import NodeDoc, node_id
from ..core.subst import leftover_tags
from ..core.values import fmt_item
from .base import CheckContext, KindContext, NodeKind
from .pod import timed

__all__ = ["HTTP_FIELDS", "KIND", "check", "run"]

HTTP_FIELDS = frozenset(
    {"method", "url", "headers", "body", "bodyFrom", "timeoutSeconds", "insecureSkipVerify", "successCondition"}
)
DEFAULT_TIMEOUT = 30.0  # Argo's default timeoutSeconds
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})


# -- checks at submit time ---------------------------------------------------------------------
def check(tmpl: Mapping[str, Any], where: str, cc: CheckContext) -> None:
    """Reject what Argo would reject or what the engine cannot honour, naming the field."""
    spec = tmpl.get("http")
    if not isinstance(spec, Mapping):
        raise EngineError(f"{where}: http must be a mapping with at least a url")
    unknown = sorted(set(spec) - HTTP_FIELDS)
    if unknown:
        raise EngineError(f"{where}: unknown http field(s) {unknown}: allowed are {sorted(HTTP_FIELDS)}")
    url = spec.get("url")
    if not url or not isinstance(url, str):
        raise EngineError(f"{where}: http.url is required (for example url: http://127.0.0.1:9000/health)")
    if "{{" not in url:
        check_url(url, where)
    method = spec.get("method")
    if method is not None and "{{" not in str(method) and str(method).upper() not in METHODS:
        raise EngineError(f"{where}: http.method {method!r} is not an HTTP method ({', '.join(sorted(METHODS))})")
    if "body" in spec and "bodyFrom" in spec:
        raise EngineError(f"{where}: http has both body and bodyFrom: keep one")
    if "bodyFrom" in spec:
        _body_bytes(spec["bodyFrom"], where)
    for h in spec.get("headers") or []:
        _check_header(h, where)
    if spec.get("timeoutSeconds") is not None:
        try:
            float(spec["timeoutSeconds"])
        except (TypeError, ValueError) as err:
            raise EngineError(f"{where}: http.timeoutSeconds must be a number of seconds") from err
    outs = tmpl.get("outputs") or {}
    if outs.get("artifacts"):
        raise EngineError(f"{where}: an http template has no output artifacts (its response body is outputs.result)")
    for p in outs.get("parameters") or []:
        vf = p.get("valueFrom") or {}
        if set(vf) - {"default", "expression"}:
            raise EngineError(
                f"{where}: output parameter {p.get('name')!r}: an http template's outputs come from value, "
                "valueFrom.default or valueFrom.expression (over outputs.result), not from "
                f"{sorted(set(vf) - {'default', 'expression'})}"
            )


def check_url(url: str, where: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise EngineError(f"{where}: http.url {url!r} is not an http:// or https:// URL with a host")


def _check_header(h: Any, where: str) -> None:
    if not isinstance(h, Mapping) or not h.get("name"):
        raise EngineError(f"{where}: every http header needs a name (and a value or valueFrom.secretKeyRef)")
    vf = h.get("valueFrom")
    if vf is not None and (set(vf) != {"secretKeyRef"} or not (vf["secretKeyRef"] or {}).get("name")):
        raise EngineError(
            f"{where}: http header {h['name']!r}: valueFrom takes a secretKeyRef with a name and a key, got {sorted(vf)}"
        )


def _body_bytes(body_from: Any, where: str) -> bytes:
    if not isinstance(body_from, Mapping) or set(body_from) != {"bytes"}:
        raise EngineError(f"{where}: http.bodyFrom takes bytes (base64), got {body_from!r}")
    try:
        return base64.b64decode(str(body_from["bytes"]), validate=True)
    except (binascii.Error, ValueError) as err:
        raise EngineError(f"{where}: http.bodyFrom.bytes is not base64 (Kubernetes writes []byte as base64)") from err


# -- the request -------------------------------------------------------------------------------
@dataclass
class Request:
    method: str
    url: str
    headers: list[tuple[str, str]]
    body: bytes
    timeout: float
    verify: bool


@dataclass
class Outcome:
    status: int | None = None
    body: str = ""
    headers: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None


def canonical_header(name: str) -> str:
    """Go's ``http.CanonicalHeaderKey``: ``content-type`` → ``Content-Type`` (keys of Argo's header map)."""
    return "-".join(w[:1].upper() + w[1:].lower() for w in name.split("-"))


def build_request(spec: Mapping[str, Any], secret: Callable[[Mapping[str, Any], str], str], where: str) -> Request:
    leftover = leftover_tags({k: v for k, v in spec.items() if k != "successCondition"})
    if leftover:
        raise EngineError(f"{where}: unresolved {leftover[0]} in http: pass that parameter or fix its name")
    url = str(spec["url"])
    check_url(url, where)
    method = str(spec.get("method") or "GET").upper()
    if method not in METHODS:
        raise EngineError(f"{where}: http.method {method!r} is not an HTTP method")
    headers = []
    for h in spec.get("headers") or []:
        _check_header(h, where)
        if "valueFrom" in h:
            value = secret(h["valueFrom"]["secretKeyRef"], f"{where} http header {h['name']}")
        else:
            value = str(h.get("value", ""))
        headers.append((str(h["name"]), value))
    body = _body_bytes(spec["bodyFrom"], where) if "bodyFrom" in spec else str(spec.get("body") or "").encode()
    timeout = float(spec["timeoutSeconds"]) if spec.get("timeoutSeconds") is not None else DEFAULT_TIMEOUT
    return Request(method, url, headers, body, timeout, verify=not spec.get("insecureSkipVerify"))


class Cancel:
    """Records the sockets of one request so that ``stop`` or a deadline can end it at once: shutting a
    socket down wakes a thread blocked on it, which closing does not."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.streams: list[Any] = []
        self.cancelled = False

    def add(self, stream: Any) -> None:
        with self.lock:
            self.streams.append(stream)
            if self.cancelled:
                _shut(stream)

    def cancel(self) -> None:
        with self.lock:
            self.cancelled = True
            for stream in self.streams:
                _shut(stream)


def _shut(stream: Any) -> None:
    sock = stream.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _pool(req: Request, cancel: Cancel) -> Any:
    # imported here, not at the top: httpcore (and the trio it loads) adds ~0.1 s to every engine's start
    import httpcore

    class Backend(httpcore.SyncBackend):
        def connect_tcp(self, *args: Any, **kwargs: Any) -> Any:
            stream = super().connect_tcp(*args, **kwargs)
            cancel.add(stream)
            return stream

    ctx = ssl.create_default_context()
    if not req.verify:  # insecureSkipVerify, as the template asks
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return httpcore.ConnectionPool(ssl_context=ctx, network_backend=Backend())


def send(req: Request, timeout: float, out: Outcome, cancel: Cancel) -> None:
    """Make the request (in a worker thread), following redirects as Go's client does (at most 10;
    303 and POST-after-301/302 become a GET without body; credentials are not sent to another host).
    Every socket operation is bounded by ``timeout``; no proxy from the environment (Argo's agent
    uses none)."""
    import httpcore  # only http nodes need it (see _pool)

    method, url, headers, body = req.method, req.url, list(req.headers), req.body
    limits = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
    try:
        with _pool(req, cancel) as pool:
            for _ in range(11):
                resp = pool.request(method, url, headers=headers, content=body or None, extensions={"timeout": limits})
                location = next((v.decode("latin-1") for k, v in resp.headers if k.lower() == b"location"), None)
                if resp.status not in (301, 302, 303, 307, 308) or location is None:
                    break
                target = urljoin(url, location)
                if urlsplit(target).netloc != urlsplit(url).netloc:
                    headers = [(k, v) for k, v in headers if k.lower() not in ("authorization", "cookie", "www-authenticate")]
                if resp.status == 303 or (resp.status in (301, 302) and method == "POST"):
                    method, body = ("HEAD" if method == "HEAD" else "GET"), b""
                url = target
            else:
                out.error = f"{req.method} {req.url}: stopped after 10 redirects"
                return
        out.body = resp.content.decode("utf-8", errors="replace")
        grouped: dict[str, list[str]] = {}
        for k, v in resp.headers:
            grouped.setdefault(canonical_header(k.decode("latin-1")), []).append(v.decode("latin-1"))
        out.headers = grouped
        out.status = resp.status
    except httpcore.TimeoutException:
        out.error = f"{req.method} {req.url}: no response within {timeout:g}s (Client.Timeout exceeded)"
    except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol, httpcore.ProxyError) as err:
        out.error = f"{req.method} {req.url}: {type(err).__name__}: {err}"


def judge(req: Request, out: Outcome, condition: str | None, clock: Any) -> tuple[str, str | None]:
    """Argo's verdict: the successCondition when there is one, otherwise status < 400."""

    assert out.status is not None
    if not condition:
        if out.status >= 400:
            return "Failed", f"received non-2xx response code: {out.status}"
        return "Succeeded", None
    req_headers: dict[str, list[str]] = {}
    for k, v in req.headers:
        req_headers.setdefault(canonical_header(k), []).append(v)
    env = {
        "request": {"method": req.method, "url": req.url, "body": req.body.decode(errors="replace"), "headers": req_headers},
        "response": {"statusCode": out.status, "body": out.body, "headers": out.headers},
    }
    try:
        ok = eval_expr_bool(condition, env, clock=clock)
    except ExprError as err:
        return "Error", f"successCondition {condition!r}: {err}"
    if not ok:
        return "Failed", f"successCondition {condition!r} evaluated false (response code {out.status})"
    return "Succeeded", None


# -- the node ----------------------------------------------------------------------------------
def run(ex: KindContext, call: Call) -> NodeDoc:
    """Run one attempt of an (already substituted) http template as an ``HTTP`` node."""
    name, display, tmpl, inputs, parent, deadline = (
        call.name,
        call.display,
        call.template,
        call.inputs,
        call.parent,
        call.deadline,
    )
    nid = node_id(ex.name, name)
    reused = ex.reuse(nid, parent, tmpl)
    if reused is not None:
        return reused  # resume: a request that succeeded is not sent again
    where = f"template {tmpl.get('name')!r}"
    node = ex.new_node(name, display, "HTTP", parent, tmpl)
    node["inputs"] = inputs_doc(inputs)
    node_dir = ex.run_dir / "nodes" / nid
    node_dir.mkdir(parents=True, exist_ok=True)
    log_path = node_dir / "main.log"
    spec = tmpl["http"]
    try:
        req = build_request(spec, lambda ref, what: _secret(ex, ref, what), where)
    except EngineError as err:
        log_path.write_text(f"{err}\n")
        return ex.finish(node, "Error", str(err))
    t0 = ex.clock.monotonic()
    budget = req.timeout if deadline is None else max(0.0, min(req.timeout, deadline - t0))
    out, cancel = Outcome(), Cancel()
    worker = threading.Thread(target=send, args=(req, max(budget, 0.001), out, cancel), daemon=True, name=f"http-{nid}")
    worker.start()
    stopped = _wait(ex, worker, t0 + budget, deadline, req.timeout)
    if stopped is not None:
        cancel.cancel()  # the request ends now, not at its own timeout
        worker.join(1.0)
    t1 = ex.clock.monotonic()
    message: str | None
    if stopped is not None:
        phase, message = "Failed", stopped
    elif out.error is not None:
        phase, message = "Failed", out.error
    else:
        phase, message = judge(req, out, spec.get("successCondition"), ex.clock)
    status = "-" if out.status is None else str(out.status)
    with log_path.open("w") as log:  # method, url and status only: header values may be secrets
        log.write(f"{req.method} {req.url} -> {status} in {t1 - t0:.3f}s\n")
        if message:
            log.write(f"{message}\n")
    if out.status is not None:
        outputs: dict[str, Any] = {"result": out.body}
        try:
            params = _output_params(tmpl, outputs, ex, where)
        except EngineError as err:
            params = []
            if phase == "Succeeded":
                phase, message = "Error", str(err)
        if params:
            outputs["parameters"] = params
        node["outputs"] = outputs
        ex.register_globals(tmpl, outputs)
    ex.finish(node, phase, message)
    return timed(node, t0, t1)


def _wait(ex: KindContext, worker: threading.Thread, until: float, deadline: float | None, timeout: float) -> str | None:
    """Wait for the worker in short slices; a message when the run is stopped or a deadline passes."""
    while worker.is_alive():
        if ex.abort.is_set():
            return ex.abort_message or "Stopped"
        now = ex.clock.monotonic()
        if deadline is not None and now >= deadline:
            return "HTTP request was active longer than the specified deadline"
        if now >= until + 1.0:  # the worker's own timeout should have ended it; never wait past it
            return f"no response within {timeout:g}s"
        worker.join(0.05)
    return None


def _secret(ex: KindContext, ref: Mapping[str, Any], what: str) -> str:
    value = ex.local_ref(SECRETS, ref, what)
    if value is None:
        why = missing(ex.settings.home, SECRETS, ex.namespace, str(ref.get("name")), str(ref.get("key")))
        raise EngineError(f"{what} reads secret {ref.get('name')}/{ref.get('key')}: {why}")
    return value.rstrip("\n")


def _output_params(tmpl: Mapping[str, Any], outputs: Mapping[str, Any], ex: KindContext, where: str) -> list[dict[str, Any]]:
    params = []
    for p in (tmpl.get("outputs") or {}).get("parameters") or []:
        vf = p.get("valueFrom") or {}
        value: str | None = None
        if "expression" in vf:
            try:
                value = render_param(eval_expr(str(vf["expression"]), {"outputs.result": outputs["result"]}, clock=ex.clock))
            except ExprError as err:
                raise EngineError(f"{where}: output parameter {p.get('name')!r}: {err}") from err
        elif "value" in p:
            value = fmt_item(p["value"])
        elif "default" in vf:
            value = fmt_item(vf["default"])
        if value is not None:
            entry = {"name": p["name"], "value": value}
            if p.get("globalName"):
                entry["globalName"] = p["globalName"]
            params.append(entry)
    return params


KIND = NodeKind("http", "HTTP", check, run)
