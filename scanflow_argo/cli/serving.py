"""CLI group for serving and its servers: ``serve``/``unserve``, ``prometheus up|down``, ``mlflow up|down``.

``up`` starts the server detached (own process group, pid recorded in the state folder) and returns;
``down`` — from any later process — stops exactly that recorded process group, after checking its
command line proves it is the server we started. Heavy imports stay inside the command functions.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..settings import Settings

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add this group's commands to the top-level subparsers."""
    _register_serve(sub)
    _register_prometheus(sub)
    _register_mlflow(sub)


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
    import re

    ref = model_uri.rstrip("/")
    if ref.startswith(("models:/", "runs:/")):
        ref = ref.split(":/", 1)[1].split("@", 1)[0].split("/", 1)[0]
    else:
        ref = ref.removeprefix("file://").rsplit("/", 1)[-1]
    name = re.sub(r"[^a-z0-9-]+", "-", ref.lower()).strip("-")
    return name or "model"


def serve(args: argparse.Namespace, settings: Settings) -> int:
    from dataclasses import replace

    from ..errors import ScanflowError, SpecError
    from ..serving.controller import LocalDeployments, deployment_manifest

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
    import time

    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        print(f"stopping {name}")
        deployments.delete(name)
    return 0


def unserve(args: argparse.Namespace, settings: Settings) -> int:
    from ..serving.controller import LocalDeployments

    LocalDeployments(settings).delete(args.name)
    print(f"{args.name}: stopped")
    return 0


# -- prometheus up|down -------------------------------------------------------------------------


def _register_prometheus(sub: Any) -> None:
    parser = sub.add_parser("prometheus", help="start or stop the local Prometheus server")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    up = actions.add_parser("up", help="start Prometheus on 127.0.0.1 (detached) and print its URL")
    up.add_argument("--port", type=int, help="port to listen on (default: $SCANFLOW_PROMETHEUS_PORT or 9095)")
    up.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for readiness (default 30)")
    up.set_defaults(func=prometheus_up)
    down = actions.add_parser("down", help="stop the Prometheus server started by `prometheus up`")
    down.set_defaults(func=prometheus_down)


def prometheus_up(args: argparse.Namespace, settings: Settings) -> int:
    from ..monitoring.prometheus import PrometheusServer, recorded_url

    running = recorded_url(settings)
    if running:
        print(f"Prometheus is already running at {running}")
        return 0
    server = PrometheusServer(settings, port=args.port).start(timeout=args.timeout)
    print(f"Prometheus is up at {server.url} (targets: {server.targets_dir}); stop it with `scanflow-argo prometheus down`")
    return 0


def prometheus_down(args: argparse.Namespace, settings: Settings) -> int:
    from ..monitoring.prometheus import stop_recorded

    if stop_recorded(settings):
        print("Prometheus stopped")
    else:
        print("no Prometheus started by scanflow-argo is running for this home")
    return 0


# -- mlflow up|down -------------------------------------------------------------------------------


def _register_mlflow(sub: Any) -> None:
    parser = sub.add_parser("mlflow", help="start or stop the local MLflow tracking server")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    up = actions.add_parser("up", help="start MLflow on 127.0.0.1 (detached, SQLite in the state folder) and print its URL")
    up.add_argument("--port", type=int, help="port to listen on (default: $SCANFLOW_MLFLOW_PORT or 5005)")
    up.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for /health (default 60)")
    up.set_defaults(func=mlflow_up)
    down = actions.add_parser("down", help="stop the MLflow server started by `mlflow up`")
    down.set_defaults(func=mlflow_down)


def mlflow_up(args: argparse.Namespace, settings: Settings) -> int:
    from ..tracking.server import MlflowServer, recorded_url

    running = recorded_url(settings)
    if running:
        print(f"MLflow is already running at {running}")
        return 0
    server = MlflowServer(settings, port=args.port).start(timeout=args.timeout)
    print(f"MLflow is up at {server.url}; use it with MLFLOW_TRACKING_URI={server.url}; stop it with `scanflow-argo mlflow down`")
    return 0


def mlflow_down(args: argparse.Namespace, settings: Settings) -> int:
    from ..tracking.server import stop_recorded

    if stop_recorded(settings):
        print("MLflow stopped")
    else:
        print("no MLflow server started by scanflow-argo is running for this home")
    return 0
