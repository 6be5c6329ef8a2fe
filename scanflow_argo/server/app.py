"""The server: one aiohttp application that speaks the Argo Server API and serves the UI, and how it runs.

``build_app`` assembles the parts: the error middleware (Argo's ``{code, message}`` body for every
failure, including unknown paths and methods), authentication (``auth.py``), the ``info``, ``version``
and ``userinfo`` calls, workflows (``workflows.py``), templates and CronWorkflows (``templates.py``),
the watch and log streams (``streams.py``), the UI (``ui.py``) and its views of deployments and agents.
``ArgoServer`` runs it on a host and port (127.0.0.1:2746 by default, as ``argo server``), in the
foreground (the CLI) or on a thread of its own (the demo, tests), and stops it cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import platform as host_platform
import signal
import ssl
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web

from .. import __version__
from ..agents.runtime import prometheus_url
from ..clock import Clock, SystemClock, iso
from ..errors import ScanflowError, SetupError
from ..platform.base import WorkflowAdmin
from ..settings import Settings
from ..tracking.server import resolve_uri
from .agent_proxy import AgentsApi
from .auth import auth_middleware, check_bind, is_loopback
from .deployments import DeploymentsApi
from .http import MAX_BODY, ApiError, Codes, error_response, from_scanflow, json_response
from .lint import Linter
from .streams import LogsApi, RunWatcher, WatchApi
from .templates import TemplatesApi
from .ui import UiRoutes
from .workflows import WorkflowsApi

__all__ = ["DEFAULT_PORT", "ArgoServer", "ServerOptions", "build_app"]

log = logging.getLogger("scanflow_argo.server")

DEFAULT_PORT = 2746
"""The Argo Server's port."""
VERSION = f"v{__version__}+scanflow-argo"
VERSION_HEADER = "Grpc-Metadata-Argo-Version"
WATCHER: web.AppKey[RunWatcher] = web.AppKey("watcher", RunWatcher)


@dataclass(frozen=True)
class ServerOptions:
    """Where and how the server listens."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    namespace: str | None = None
    """The namespace the UI opens on and ``info`` reports (default: the settings' namespace)."""
    tls_cert: Path | None = None
    tls_key: Path | None = None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure answered as the Argo Server answers it (``{code, message}``, grpc-gateway's status)."""
    try:
        return await handler(request)
    except ApiError as err:
        return error_response(err.code, err.message)
    except ScanflowError as err:
        api = from_scanflow(err)
        return error_response(api.code, api.message)
    except web.HTTPNotFound:
        return error_response(Codes.NOT_FOUND, "Not Found")
    except web.HTTPMethodNotAllowed as err:
        return error_response(
            Codes.UNIMPLEMENTED,
            f"Method Not Allowed: {request.method} {request.path} (allowed: {', '.join(sorted(err.allowed_methods))})",
        )
    except web.HTTPRequestEntityTooLarge:
        return error_response(Codes.RESOURCE_EXHAUSTED, f"request body larger than {MAX_BODY} bytes")
    except web.HTTPException:
        raise
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception as err:  # a bug answers 500 with a message; the server goes on
        log.exception("error on %s %s", request.method, request.path)
        return error_response(Codes.INTERNAL, f"{type(err).__name__}: {err}")


@web.middleware
async def _version(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Argo's version header on authenticated answers (never on a 401: it would tell attackers the version)."""
    response = await handler(request)
    if not response.prepared:
        response.headers[VERSION_HEADER] = VERSION
    return response


def build_app(
    platform: WorkflowAdmin,
    settings: Settings,
    token: str | None,
    *,
    namespace: str | None = None,
    clock: Clock | None = None,
    linter: Linter | None = None,
    poll: float | None = None,
    loopback_only: bool = True,
) -> web.Application:
    """The application serving ``platform``; ``token`` None disables authentication (loopback only);
    ``loopback_only``: the server listens on a loopback address, so only loopback ``Host`` names are answered."""
    clock = clock or SystemClock()
    linter = linter or Linter()
    watcher = RunWatcher(platform, **({"interval": poll} if poll else {}))
    app = web.Application(middlewares=[_errors, auth_middleware(token, loopback_only), _version], client_max_size=MAX_BODY)
    app[WATCHER] = watcher
    ns = namespace or settings.kubernetes.namespace

    async def info(_: web.Request) -> web.Response:
        links = [
            {
                "name": "Workflow Logs",
                "scope": "workflow",
                "url": "/workflows/${metadata.namespace}/${metadata.name}",
                "target": "_self",
            }
        ]
        for title, url in (("MLflow", resolve_uri(settings)), ("Prometheus", prometheus_url(settings))):
            links.append({"name": title, "scope": "workflow-list", "url": _public_url(url), "target": "_blank"})
        return json_response({"managedNamespace": ns, "links": links, "modals": {}, "navColor": ""})

    async def version(_: web.Request) -> web.Response:
        return json_response(
            {
                "version": VERSION,
                "buildDate": "",
                "gitCommit": "",
                "gitTag": VERSION,
                "gitTreeState": "",
                "goVersion": "",
                "compiler": "python",
                "platform": f"{host_platform.system().lower()}/{host_platform.machine()}",
            }
        )

    async def userinfo(_: web.Request) -> web.Response:
        return json_response({"subject": "scanflow-argo", "name": "local token" if token else "no authentication (loopback)"})

    async def healthz(_: web.Request) -> web.Response:
        return json_response({"ok": True})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/v1/info", info)
    app.router.add_get("/api/v1/version", version)
    app.router.add_get("/api/v1/userinfo", userinfo)
    now: Callable[[], str] = lambda: iso(clock.now())  # noqa: E731 - a name for the clock's stamp
    app.router.add_routes(LogsApi(platform).routes())
    app.router.add_routes(WorkflowsApi(platform, linter, now).routes())
    app.router.add_routes(TemplatesApi(platform, linter).routes())
    app.router.add_routes(WatchApi(platform, watcher).routes())
    app.router.add_routes(DeploymentsApi(platform, settings, clock).routes())
    app.router.add_routes(AgentsApi(settings).routes())
    app.router.add_routes(UiRoutes(token).routes())

    async def close_watcher(_: web.Application) -> None:
        await watcher.close()

    async def warm_checks(_: web.Application) -> None:  # the first submission would wait seconds for them
        threading.Thread(target=linter.warm, name="scanflow-argo-server-warm", daemon=True).start()

    app.on_startup.append(warm_checks)
    app.on_shutdown.append(close_watcher)
    return app


def _public_url(url: str) -> str:
    """``url`` without the credentials it may carry (``https://user:pass@host`` → ``https://host``): for browsers."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1])) if "@" in parts.netloc else url


class ArgoServer:
    """The server on ``options.host:options.port``: ``run()`` in the foreground, or ``start()`` / ``stop()``."""

    def __init__(
        self,
        platform: WorkflowAdmin,
        settings: Settings,
        token: str | None,
        options: ServerOptions | None = None,
        **app_args: Any,
    ) -> None:
        self.options = options or ServerOptions()
        check_bind(self.options.host, token)
        self.platform = platform
        self.settings = settings
        self.token = token
        self._app_args = app_args
        self.port = self.options.port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._stopped: asyncio.Event | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.options.tls_cert else "http"
        host = self.options.host if self.options.host not in ("0.0.0.0", "::") else "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return f"{scheme}://{host}:{self.port}"

    def _ssl(self) -> ssl.SSLContext | None:
        if not self.options.tls_cert:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(str(self.options.tls_cert), str(self.options.tls_key) if self.options.tls_key else None)
        except (OSError, ssl.SSLError) as err:
            raise SetupError(f"cannot load the TLS certificate {self.options.tls_cert}: {err}") from err
        return context

    async def _start(self) -> None:
        app = build_app(
            self.platform,
            self.settings,
            self.token,
            namespace=self.options.namespace,
            loopback_only=self.loopback,
            **self._app_args,
        )
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.options.host, self.options.port, ssl_context=self._ssl())
        try:
            await site.start()
        except OSError as err:
            await self._runner.cleanup()
            raise SetupError(
                f"the server cannot listen on {self.options.host}:{self.options.port} ({err.strerror or err}): "
                "another server may be running there — pick another --port"
            ) from err
        with contextlib.suppress(Exception):
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # the port the OS chose for 0

    async def _cleanup(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def serve(self, ready: Callable[[ArgoServer], None] | None = None) -> None:
        """Listen until ``stop()`` (or the task is cancelled)."""
        self._stopped = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        await self._start()
        try:
            if ready is not None:
                ready(self)
            await self._stopped.wait()
        finally:
            await self._cleanup()

    def run(self, ready: Callable[[ArgoServer], None] | None = None) -> None:
        """Serve in the foreground until Ctrl-C or SIGTERM."""

        async def main() -> None:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, self._request_stop)
            await self.serve(ready)

        asyncio.run(main())

    def _request_stop(self) -> None:
        if self._stopped is not None:
            self._stopped.set()

    def start(self, timeout: float = 10.0) -> ArgoServer:
        """Serve on a thread of its own; returns once listening (errors of the start are raised here)."""
        started = threading.Event()
        failure: list[BaseException] = []

        def target() -> None:
            try:
                asyncio.run(self.serve(lambda _: started.set()))
            except BaseException as err:
                failure.append(err)
                started.set()

        self._thread = threading.Thread(target=target, name="scanflow-argo-server", daemon=True)
        self._thread.start()
        if not started.wait(timeout):
            raise SetupError(f"the server did not start within {timeout:.0f}s")
        if failure:
            raise failure[0]
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving (open streams are closed) and wait for the thread."""
        if self._loop is not None and self._stopped is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> ArgoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def loopback(self) -> bool:
        return is_loopback(self.options.host)
