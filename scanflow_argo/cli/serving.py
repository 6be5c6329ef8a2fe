"""CLI group for serving and its servers: ``serve``/``unserve``, ``prometheus up|down``, ``mlflow up|down``.

``up`` starts the server detached (own process group, pid recorded in the state folder) and returns;
``down`` — from any later process — stops exactly that recorded process group, after checking its
command line proves it is the server we started. Heavy imports stay inside the command functions.
"""

from __future__ import annotations

import argparse
import importlib
import re
import time
from dataclasses import replace
from typing import Any

from ..errors import ScanflowError, SpecError
from ..settings import Settings

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add this group's commands to the top-level subparsers."""
    _register_serve(sub)
    _register_server(sub, "prometheus")
    _register_server(sub, "mlflow")


# -- serve / unserve ------------------------------------------------------------------------------


def _register_serve(sub: Any) -> None:
    parser = sub.add_parser(
        "serve",
        help="serve a model with N local Seldon replicas behind a router",
        description="Serve MODEL_URI (models:/NAME@ALIAS, models:/NAME/VERSION, a model folder or file://) as a local "
        "SeldonDeployment: seldon-core microservices behind a router speaking Seldon's API, scraped by Prometheus. "
        "Returns once the replicas are ready; the deployment keeps running until `scanflow-argo unserve NAME`.",
    )
    parser.add_argument(
        "model_uri", metavar="MODEL_URI", help="models:/NAME@ALIAS, models:/NAME/VERSION, a model folder or file://PATH"
    )
    parser.add_argument("--replicas", type=int, default=1, help="number of replicas (default 1)")
    parser.add_argument("--name", help="deployment name (default: from the model URI)")
    parser.add_argument("--port", type=int, help="router port (default: $SCANFLOW_SERVING_ROUTER_PORT, else a free one)")
    parser.add_argument("--timeout", type=float, help="seconds to wait for the replicas (default: from the settings)")
    parser.add_argument("--foreground", action="store_true", help="stay attached; Ctrl-C stops the deployment")
    parser.set_defaults(func=serve)
    unserve_parser = sub.add_parser(
        "unserve", help="stop a local deployment started by `serve` (drains, then stops its replicas)"
    )
    unserve_parser.add_argument("name", metavar="NAME", help="deployment name")
    unserve_parser.set_defaults(func=unserve)


def _deployment_name(model_uri: str) -> str:
    """``models:/mnist@champion`` → ``mnist``; ``/models/MNIST_v2/`` → ``mnist-v2``."""
    ref = model_uri.rstrip("/")
    if ref.startswith(("models:/", "runs:/")):
        ref = ref.split(":/", 1)[1].split("@", 1)[0].split("/", 1)[0]
    else:
        ref = ref.removeprefix("file://").rsplit("/", 1)[-1]
    name = re.sub(r"[^a-z0-9-]+", "-", ref.lower()).strip("-")
    return name or "model"


def serve(args: argparse.Namespace, settings: Settings) -> int:
    from ..serving.controller import LocalDeployments, deployment_manifest  # CLI start-up: this command only

    if settings.platform != "local":
        raise SpecError(
            "`serve` runs local deployments; on Kubernetes apply the compiled SeldonDeployment (`scanflow-argo compile`) instead"
        )
    if args.replicas < 0:
        raise SpecError(f"--replicas must be >= 0, got {args.replicas}")
    if args.port is not None:
        settings = replace(settings, serving=replace(settings.serving, router_port=args.port))
    name = args.name or _deployment_name(args.model_uri)
    deployments = LocalDeployments(settings)
    existed = name in deployments.list()
    manifest = deployment_manifest(name, args.model_uri, args.replicas, settings.kubernetes.namespace)
    try:
        status = deployments.apply(manifest, timeout=args.timeout)
    except ScanflowError:
        if not existed and name in deployments.list():
            deployments.delete(name)  # nothing half-started stays behind
        raise
    print(f"{name}: {status.ready_replicas}/{status.replicas} replicas ready, serving {status.model_uri}")
    print(f"  predictions: POST {status.endpoint}/api/v1.0/predictions   feedback: POST {status.endpoint}/api/v1.0/feedback")
    print(f"  metrics:     {status.endpoint}/metrics (router); stop with `scanflow-argo unserve {name}`")
    if not args.foreground:
        return 0

    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        print(f"stopping {name}")
        deployments.delete(name)
    return 0


def unserve(args: argparse.Namespace, settings: Settings) -> int:
    from ..serving.controller import LocalDeployments  # CLI start-up: this command only

    LocalDeployments(settings).delete(args.name)
    print(f"{args.name}: stopped")
    return 0


# -- prometheus up|down, mlflow up|down ----------------------------------------------------------

# name -> (module with the server class, class, default-port variable, default port, readiness wait, "use it" hint)
_SERVERS: dict[str, tuple[str, str, str, int, float, str]] = {
    "prometheus": ("..monitoring.prometheus", "PrometheusServer", "SCANFLOW_PROMETHEUS_PORT", 9095, 30.0, ""),
    "mlflow": (
        "..tracking.server",
        "MlflowServer",
        "SCANFLOW_MLFLOW_PORT",
        5005,
        60.0,
        "; use it with MLFLOW_TRACKING_URI={url}",
    ),
}
_TITLES = {"prometheus": "Prometheus", "mlflow": "MLflow"}


def _register_server(sub: Any, name: str) -> None:
    _, _, port_var, port, wait, _ = _SERVERS[name]
    title = _TITLES[name]
    parser = sub.add_parser(name, help=f"start or stop the local {title} server")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    up = actions.add_parser("up", help=f"start {title} on 127.0.0.1 (detached, data in the state folder) and print its URL")
    up.add_argument("--port", type=int, help=f"port to listen on, 0 for any free one (default: ${port_var} or {port})")
    up.add_argument("--timeout", type=float, default=wait, help=f"seconds to wait for readiness (default {wait:.0f})")
    up.set_defaults(func=server_up, server=name)
    down = actions.add_parser("down", help=f"stop the {title} server started by `{name} up`")
    down.set_defaults(func=server_down, server=name)


def _module(name: str) -> Any:
    return importlib.import_module(_SERVERS[name][0], __package__)


def server_up(args: argparse.Namespace, settings: Settings) -> int:
    module, title = _module(args.server), _TITLES[args.server]
    running = module.recorded_url(settings)
    if running:
        print(f"{title} is already running at {running}")
        return 0
    server = getattr(module, _SERVERS[args.server][1])(settings, port=args.port).start(timeout=args.timeout)
    hint = _SERVERS[args.server][5].format(url=server.url)
    print(f"{title} is up at {server.url}{hint}; stop it with `scanflow-argo {args.server} down`")
    return 0


def server_down(args: argparse.Namespace, settings: Settings) -> int:
    title = _TITLES[args.server]
    if _module(args.server).stop_recorded(settings):
        print(f"{title} stopped")
    else:
        print(f"no {title} server started by scanflow-argo is running for this home")
    return 0
