"""CLI group acting through the platform, the same on both: ``apply``, ``submit``, ``status``, ``wait``, ``stop``, ``delete``, ``scale``.

``--platform local|kubernetes`` (or ``SCANFLOW_PLATFORM``) picks where; the commands only call the
``Platform`` protocol from ``get_platform(settings)``, so their syntax and output do not change.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..errors import EngineError, PlatformError
from ..settings import Settings
from ._args import pair as _pair

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add this group's commands to the top-level subparsers."""
    a = sub.add_parser(
        "apply",
        help="create or update WorkflowTemplates, CronWorkflows, SeldonDeployments (and, locally, ConfigMaps)",
        description="Apply compiled manifests as kubectl apply does, on either platform: YAML files, folders "
        "(e.g. manifests/generated) or module:app (compiled first). Every object is checked before any is applied. "
        "RBAC, agent Deployments and other cluster objects are installed with `kubectl apply -k manifests/`.",
    )
    a.add_argument(
        "sources",
        nargs="+",
        metavar="PATH_OR_MODULE",
        help="a .yaml/.json file, a folder of them, module:app, or - (standard input)",
    )
    a.set_defaults(func=apply)

    p = sub.add_parser(
        "submit",
        help="start a run of a WorkflowTemplate (by name) or of a Workflow/WorkflowTemplate YAML file",
        description="Submit as the Argo UI does: a WorkflowTemplate by name with -p parameters; a file's "
        "WorkflowTemplate is applied (created or updated) first.",
    )
    p.add_argument("workflow", help="WorkflowTemplate name, or a .yaml/.json file holding a Workflow or WorkflowTemplate")
    p.add_argument(
        "-p", "--parameter", type=_pair, action="append", default=[], metavar="NAME=VALUE", help="workflow parameter (repeatable)"
    )
    p.add_argument(
        "-l", "--label", type=_pair, action="append", default=[], metavar="KEY=VALUE", help="label for the run (repeatable)"
    )
    p.add_argument("--wait", action="store_true", help="wait for the run to end; exit 1 unless it succeeded")
    p.add_argument("--timeout", type=float, help="with --wait: give up after this many seconds")
    p.set_defaults(func=submit)

    s = sub.add_parser("status", help="a run's phase and nodes, a deployment's replicas, or the runs matching labels")
    s.add_argument("run", nargs="?", help="run name (omit to list runs)")
    s.add_argument("--deployment", metavar="NAME", help="show this SeldonDeployment instead")
    s.add_argument(
        "-l", "--label", type=_pair, action="append", default=[], metavar="KEY=VALUE", help="list only runs with this label"
    )
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=status)

    w = sub.add_parser("wait", help="block until a run ends; exit 0 when it succeeded, 1 otherwise")
    w.add_argument("run", help="run name")
    w.add_argument("--timeout", type=float, help="give up after this many seconds (exit 1)")
    w.add_argument("--poll", type=float, default=1.0, help="seconds between status reads (default 1)")
    w.add_argument("--json", action="store_true", help="print the final status as JSON")
    w.set_defaults(func=wait)

    st = sub.add_parser("stop", help="stop a run as `argo stop` does (running steps end, exit handlers still run)")
    st.add_argument("run", help="run name")
    st.set_defaults(func=stop)

    d = sub.add_parser(
        "delete",
        help="delete runs and what they stored (a running one is stopped first), as `argo delete` does",
    )
    d.add_argument("runs", nargs="+", metavar="RUN", help="run name (repeatable)")
    d.set_defaults(func=delete)

    c = sub.add_parser("scale", help="set the replicas of a model deployment (SeldonDeployment)")
    c.add_argument("deployment", help="deployment name")
    c.add_argument("replicas", type=int, help="desired replicas (≥ 0)")
    c.add_argument("--json", action="store_true", help="print the deployment status as JSON")
    c.set_defaults(func=scale)


def _platform(settings: Settings) -> Any:
    from ..platform import get_platform  # CLI start-up: this command only

    return get_platform(settings)


def _load_file(path: Path) -> list[dict[str, Any]]:
    from ..engine.core.manifest import load_documents  # CLI start-up: YAML ~12 ms, this command only

    try:
        docs: list[Any] = load_documents(path)  # safe, alias bombs refused, one-line errors
    except EngineError as err:
        raise PlatformError(f"cannot read {path}: {err}") from err
    if not docs or not all(isinstance(d, dict) and d.get("kind") for d in docs):
        raise PlatformError(f"{path} holds no Kubernetes objects (each document needs a kind)")
    return docs


def apply(args: argparse.Namespace, settings: Settings) -> int:
    from ..platform.apply import apply_objects, load_sources  # CLI start-up: this command only

    sources = load_sources(args.sources)
    apply_objects(_platform(settings), sources, settings)
    return 0


def submit(args: argparse.Namespace, settings: Settings) -> int:
    platform = _platform(settings)
    params, labels = dict(args.parameter), dict(args.label)
    target: Any = args.workflow
    path = Path(args.workflow)
    if path.suffix in (".yaml", ".yml", ".json") or path.is_file():
        docs = _load_file(path)
        workflows = [d for d in docs if d["kind"] == "Workflow"]
        templates = [d for d in docs if d["kind"] in ("WorkflowTemplate", "CronWorkflow")]
        for doc in templates:
            platform.apply_template(doc)
            print(f"applied {doc['kind']} {doc['metadata']['name']}", file=sys.stderr)
        runnable = workflows or [d for d in templates if d["kind"] == "WorkflowTemplate"]
        if len(runnable) != 1:
            raise PlatformError(f"{path} must hold exactly one Workflow or WorkflowTemplate to submit (found {len(runnable)})")
        doc = runnable[0]
        target = doc if doc["kind"] == "Workflow" else doc["metadata"]["name"]
    name = platform.submit(target, params, labels)
    print(name)
    if not args.wait:
        return 0
    run = platform.wait(name, timeout=args.timeout)
    _print_run(run)
    return 0 if run.phase == "Succeeded" else 1


def _run_json(run: Any) -> dict[str, Any]:
    return {
        "name": run.name,
        "namespace": run.namespace,
        "phase": run.phase,
        "startedAt": run.started_at,
        "finishedAt": run.finished_at,
        "message": run.message,
        "parameters": dict(run.parameters),
        "labels": dict(run.labels),
        "nodes": {
            n.display_name: {"phase": n.phase, "type": n.type, "message": n.message, "outputs": n.parameters()}
            for n in sorted(run.nodes.values(), key=lambda n: (n.started_at or "", n.display_name))
        },
    }


def _print_run(run: Any) -> None:
    why = run.reason()
    print(f"{run.name}  {run.phase}" + (f"  ({why})" if why else ""))
    for node in sorted(run.nodes.values(), key=lambda n: (n.started_at or "", n.display_name)):
        if node.type not in ("Pod", "Skipped", "Suspend"):
            continue
        outputs = " ".join(f"{k}={v}" for k, v in node.parameters().items())
        message = f"  {node.message}" if node.message and node.phase != "Succeeded" else ""
        print(f"  {node.display_name:<24} {node.phase:<10} {outputs}{message}".rstrip())


def _deployment_json(dep: Any) -> dict[str, Any]:
    return asdict(dep)


def _print_deployment(dep: Any) -> None:
    print(f"{dep.namespace}/{dep.name}  {dep.state}  replicas {dep.ready_replicas}/{dep.replicas}  model {dep.model_uri or '-'}")
    if dep.endpoint:
        print(f"  endpoint {dep.endpoint}")
    if len(dep.predictors) > 1:
        for pred in dep.predictors:
            share = "shadow" if pred.shadow else f"{pred.traffic}%"
            print(
                f"  predictor {pred.name:<12} {share:>6}  replicas {pred.ready_replicas}/{pred.replicas}  model {pred.model_uri or '-'}"
            )


def _emit(as_json: bool, data: Any, show: Any, value: Any) -> None:
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        show(value)


def status(args: argparse.Namespace, settings: Settings) -> int:
    platform = _platform(settings)
    if args.deployment:
        dep = platform.get_deployment(args.deployment)
        _emit(args.json, _deployment_json(dep), _print_deployment, dep)
        return 0
    if args.run:
        from ..client import Client  # CLI start-up: this command only

        run = platform.get_run(args.run)
        found = Client(settings, platform=platform).mlflow(run.name) if settings.tracking.enabled else None
        data = {
            **_run_json(run),
            "mlflow": {"url": found.url, "runId": found.run_id, "nodes": dict(found.nodes)} if found else None,
        }
        _emit(args.json, data, _print_run, run)
        if found and not args.json:
            print(f"  MLflow: {found.url}")
        return 0
    runs = platform.list_runs(dict(args.label) or None)
    if args.json:
        print(json.dumps([_run_json(r) for r in runs], indent=2))
        return 0
    for run in runs:
        message = "" if run.phase == "Succeeded" or not run.reason() else f"  {run.reason()}"
        print(f"{run.name:<40} {run.phase:<10} {run.started_at or '-'}{message}")
    if not runs:
        print("no runs", file=sys.stderr)
    return 0


def wait(args: argparse.Namespace, settings: Settings) -> int:
    run = _platform(settings).wait(args.run, timeout=args.timeout, poll=args.poll)
    _emit(args.json, _run_json(run), _print_run, run)
    return 0 if run.phase == "Succeeded" else 1


def stop(args: argparse.Namespace, settings: Settings) -> int:
    _platform(settings).stop(args.run)
    print(f"{args.run}: stopping (exit handlers still run; `scanflow-argo wait {args.run}` waits for the end)")
    return 0


def delete(args: argparse.Namespace, settings: Settings) -> int:
    platform = _platform(settings)
    for name in args.runs:
        platform.delete_run(name)
        print(f'workflow "{name}" deleted')
    return 0


def scale(args: argparse.Namespace, settings: Settings) -> int:
    dep = _platform(settings).scale(args.deployment, args.replicas)
    _emit(args.json, _deployment_json(dep), _print_deployment, dep)
    return 0
