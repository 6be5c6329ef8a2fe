"""CLI group ``server``: ``scanflow-argo server`` runs the Argo Server API and web UI of the embedded default;
``scanflow-argo server token`` prints its bearer token.

The server fronts the local platform (the same runs, templates and engine as the other commands); it
listens on 127.0.0.1:2746 unless told otherwise, and only with a token beyond this machine. While it
runs, ``<home>/server/endpoint.json`` says where. Heavy imports stay inside the command functions.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from ..errors import SetupError
from ..settings import Settings

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add ``server`` to the top-level subparsers."""
    parser = sub.add_parser(
        "server",
        help="serve the Argo Server API and a web UI for the local platform (or print its token)",
        description="Serve Argo's REST API (workflows, templates, CronWorkflows, logs, events) and a web UI "
        "(workflows and their graphs, templates with a submit dialog, deployments, agents) for the local platform. "
        "Clients authenticate with the bearer token `scanflow-argo server token` prints (Argo's client auth mode).",
    )
    parser.add_argument("action", nargs="?", choices=["start", "token"], default="start", help="start (default) or token")
    parser.add_argument("--port", type=int, default=2746, help="port (default 2746, the Argo Server's; 0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument(
        "--namespace",
        dest="namespace",
        default=argparse.SUPPRESS,
        help="namespace the UI opens on (default: $SCANFLOW_NAMESPACE or scanflow)",
    )
    parser.add_argument(
        "--auth-mode",
        choices=["client", "server"],
        default="client",
        help="client (default): every call needs the token; server: no token, only on a loopback address (as Argo's modes)",
    )
    parser.add_argument("--tls-cert", type=Path, help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-key", type=Path, help="the certificate's private key (PEM)")
    parser.set_defaults(func=server)


def server(args: argparse.Namespace, settings: Settings) -> int:
    from ..server import (  # CLI start-up: this command only
        ArgoServer,
        ServerOptions,
        load_or_create_token,
        read_token,
        token_path,
    )

    if args.action == "token":
        token = read_token(settings)
        if token is None:
            raise SetupError(
                f"there is no server token in {token_path(settings)} yet; start the server once (`scanflow-argo server`) to create it"
            )
        print(token)
        return 0
    if settings.platform != "local":
        raise SetupError(
            "`scanflow-argo server` fronts the embedded default; on Kubernetes the cluster's Argo Server serves this API "
            "and its UI (kubectl -n argo port-forward svc/argo-server 2746:2746)"
        )
    from ..platform.local import LocalPlatform  # CLI start-up: this command only (it loads the engine)

    token = load_or_create_token(settings) if args.auth_mode == "client" else None
    options = ServerOptions(
        host=args.host, port=args.port, namespace=settings.kubernetes.namespace, tls_cert=args.tls_cert, tls_key=args.tls_key
    )
    app = ArgoServer(LocalPlatform(settings), settings, token, options)
    endpoint = settings.home / "server" / "endpoint.json"

    def ready(srv: ArgoServer) -> None:
        endpoint.parent.mkdir(parents=True, exist_ok=True)
        endpoint.write_text(json.dumps({"url": srv.url, "pid": os.getpid()}))
        auth = "token: `scanflow-argo server token`" if token else "no authentication (loopback only)"
        print(f"scanflow-argo server: UI and Argo Server API at {srv.url} (namespace {options.namespace}; {auth})", flush=True)
        print(
            f"  Hera: WorkflowsService(host={srv.url!r}, token=..., namespace={options.namespace!r}); Ctrl-C stops it", flush=True
        )

    try:
        app.run(ready)
    finally:
        endpoint.unlink(missing_ok=True)
    return 0
