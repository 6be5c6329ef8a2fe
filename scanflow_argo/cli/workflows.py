"""``scanflow-argo run | logs | list | resume``: workflow runs on the local engine.

``run`` takes an Argo YAML file (Workflow, or WorkflowTemplate run with its parameters; other
WorkflowTemplates in the file serve ``templateRef``) or ``module:app --workflow NAME`` compiled
through ``scanflow_argo.compile``; it shows live progress and ends with a tree like ``argo get``
(or the status as JSON with ``--output json``), exiting 1 when the run did not succeed.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..engine.core.state import read_status
from ..engine.status import tree_lines
from ..errors import EngineError
from ..settings import Settings
from ._args import pair as _pair

__all__ = ["mlflow_line", "register"]


def register(sub: Any) -> None:
    """Add ``run``, ``logs``, ``list`` and ``resume``."""
    r = sub.add_parser(
        "run",
        help="run a workflow on this machine (Argo YAML file, or module:app --workflow NAME)",
        description="Run an Argo Workflow with Argo's semantics on this machine. FILE_OR_MODULE is a YAML file "
        "(Workflow, or a WorkflowTemplate run with -p parameters) or module:attribute naming a scanflow Application.",
    )
    r.add_argument("source", metavar="FILE_OR_MODULE")
    r.add_argument(
        "-p", "--parameter", type=_pair, action="append", default=[], metavar="NAME=VALUE", help="workflow parameter (repeatable)"
    )
    r.add_argument(
        "-l", "--label", type=_pair, action="append", default=[], metavar="KEY=VALUE", help="label for the run (repeatable)"
    )
    r.add_argument("--entrypoint", help="template to start from instead of spec.entrypoint")
    r.add_argument("--workflow", help="with module:app, the workflow of the application to run")
    r.add_argument("--output", "-o", choices=["tree", "json", "name"], default="tree", help="final report (default: tree)")
    r.add_argument("--detach", action="store_true", help="start the run in the background and print its name")
    r.add_argument("--local", action="store_true", help="run on this machine (the default for `run`)")
    r.set_defaults(func=run)

    lg = sub.add_parser("logs", help="logs of a run, or of one of its nodes")
    lg.add_argument("run")
    lg.add_argument("node", nargs="?", help="node display name (default: every pod, prefixed with its name)")
    lg.add_argument("--follow", "-f", action="store_true", help="keep printing until the run ends")
    lg.add_argument(
        "--container", "-c", default="main", help="container: main (default), an init container, a sidecar, a containerSet's"
    )
    lg.set_defaults(func=logs)

    ls = sub.add_parser("list", help="runs in the state folder, newest first")
    ls.add_argument(
        "-l", "--label", type=_pair, action="append", default=[], metavar="KEY=VALUE", help="only runs with this label"
    )
    ls.add_argument("--output", "-o", choices=["table", "json"], default="table")
    ls.set_defaults(func=list_runs)

    rs = sub.add_parser(
        "resume",
        help="continue a run whose engine stopped (even kill -9) without re-running succeeded nodes; on Kubernetes: "
        "Argo's retry of a failed run, or resume of a suspended one",
    )
    rs.add_argument("run")
    rs.add_argument("--detach", action="store_true", help="continue in the background")
    rs.add_argument("--output", "-o", choices=["tree", "json", "name"], default="tree")
    rs.set_defaults(func=resume)


def _load(args: argparse.Namespace) -> tuple[dict[str, Any], list[dict[str, Any]], Path, list[dict[str, Any]]]:
    """The manifest to run, the WorkflowTemplates beside it, the folder steps import from, and the
    application's SeldonDeployments (module:app only)."""
    # CLI start-up: the engine (~0.25 s) loads for the commands that run something only
    from ..engine.api import split_documents
    from ..engine.core.manifest import load_documents

    source = args.source
    path = Path(source)
    if path.suffix in (".yaml", ".yml", ".json") or path.exists():
        if not path.is_file():
            raise EngineError(f"{source}: no such file")
        main, templates = split_documents(load_documents(path))
        return main, templates, path.resolve().parent, []
    if ":" not in source:
        raise EngineError(f"{source!r} is neither a YAML file nor module:attribute (e.g. pipelines.mnist:app)")
    main, templates, services = _compile(source, args.workflow)
    return main, templates, Path.cwd(), services


def _compile(source: str, workflow: str | None) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    from ..compile import compile_app  # CLI start-up: this command only (Hera)
    from .compile import load_app  # CLI start-up: this command only

    app = load_app(source)
    manifests = compile_app(app)
    runnable = [m for m in manifests if m.get("kind") in ("Workflow", "WorkflowTemplate", "CronWorkflow")]
    names = [m["metadata"].get("name") or m["metadata"].get("generateName") for m in runnable]
    if workflow:
        chosen = [
            m for m in runnable if workflow in (m["metadata"].get("name"), (m["metadata"].get("generateName") or "").rstrip("-"))
        ]
        if not chosen:
            raise EngineError(f"{source} has no workflow {workflow!r} (workflows: {', '.join(map(str, names)) or 'none'})")
    elif len(runnable) == 1:
        chosen = runnable
    else:
        raise EngineError(f"{source} has {len(runnable)} workflows: choose one with --workflow ({', '.join(map(str, names))})")
    templates = [m for m in manifests if m.get("kind") in ("WorkflowTemplate", "ClusterWorkflowTemplate") and m is not chosen[0]]
    return chosen[0], templates, [m for m in manifests if m.get("kind") == "SeldonDeployment"]


def run(args: argparse.Namespace, settings: Settings) -> int:
    from ..platform.local import LocalPlatform  # CLI start-up: the local platform (~0.4 s), this command only

    manifest, templates, source_dir, services = _load(args)
    run_dir = LocalPlatform(settings).prepare(
        manifest,
        dict(args.parameter),
        entrypoint=args.entrypoint,
        templates=templates,
        source_dir=source_dir,
        labels=dict(args.label),
        log=lambda m: print(f"note: {m}", file=sys.stderr),
    )
    code = _go(run_dir, settings, args.detach, args.output)
    _hint_undeployed(services, settings)
    return code


def _hint_undeployed(services: list[dict[str, Any]], settings: Settings) -> None:
    """Name the application's SeldonDeployments that are not served here, and how to serve them.

    ``run`` runs the workflow only, as ``argo submit`` does: on a cluster the SeldonDeployment is
    applied with the rest of the compiled manifests; here ``scanflow-argo serve`` creates it (its
    model must exist first), after which the workflow's deploy steps roll it."""
    if not services:
        return
    from ..serving.controller import LocalDeployments  # CLI start-up: this command only

    served = set(LocalDeployments(settings).list())
    for sd in services:
        name = (sd.get("metadata") or {}).get("name")
        predictors = (sd.get("spec") or {}).get("predictors") or [{}]
        uri = (predictors[0].get("graph") or {}).get("modelUri")
        if name and name not in served and uri:
            print(
                f"note: SeldonDeployment {name!r} is not served on this machine (deploy steps leave it alone): "
                f"scanflow-argo serve {uri} --name {name}",
                file=sys.stderr,
            )


def resume(args: argparse.Namespace, settings: Settings) -> int:
    from ..platform.local import LocalPlatform  # CLI start-up: this command only

    if settings.platform == "kubernetes":  # Argo's retry (failed run) or resume (suspended run)
        from ..platform.kubernetes import KubernetesPlatform  # CLI start-up: this command only

        print(KubernetesPlatform(settings).resume(args.run))
        return 0
    platform = LocalPlatform(settings)
    run_dir = platform.run_dir(args.run)
    run = platform.get_run(args.run)
    if run.done:
        raise EngineError(f"run {args.run!r} already finished ({run.phase}): nothing to resume")
    if platform.engine_alive(args.run):
        raise EngineError(f"run {args.run!r} is still being run by its engine (pid in {run_dir / 'engine.pid'})")
    return _go(run_dir, settings, args.detach, args.output)


def _go(run_dir: Path, settings: Settings, detach: bool, output: str) -> int:
    # CLI start-up: the local platform and engine (~0.4 s), this command only
    from ..platform.local import LocalPlatform
    from ..platform.local_engine import execute

    if detach:
        LocalPlatform(settings).start_engine(run_dir)
        print(run_dir.name)
        return 0
    live = _Progress(enabled=output == "tree" and sys.stdout.isatty())
    try:
        result = execute(run_dir, settings, on_change=live.update, handle_signals=True)
    finally:
        live.close()
    doc = read_status(run_dir)
    if output == "json":
        print(json.dumps(doc, indent=2))
    elif output == "name":
        print(run_dir.name)
    else:
        print("\n".join(tree_lines(doc)))
        if line := mlflow_line(settings, run_dir.name):
            print(line)
    return 0 if result.phase == "Succeeded" else 1


def mlflow_line(settings: Settings, run: str) -> str | None:
    """``MLflow:  URL`` of the run's MLflow run when it was tracked (found by its ``scanflow.run`` tag)."""
    from ..client import Client  # CLI start-up: this command only

    if not settings.tracking.enabled:
        return None
    found = Client(settings).mlflow(run)
    return f"MLflow:     {found.url}" if found else None


class _Progress:
    """A live view of the nodes while a run goes (rich), redrawn at most 5 times a second."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.live: Any = None
        self.last = 0.0
        self.lock = threading.Lock()

    def update(self, state: Any) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < 0.2:
            return
        self.last = now
        from rich.live import Live  # rich: the live view only
        from rich.text import Text  # rich: the live view only

        from ..engine.status import tree_lines  # CLI start-up: this command only

        with state.lock:
            text = Text("\n".join(tree_lines(state.doc)))
        with self.lock:
            if self.live is None:
                self.live = Live(text, refresh_per_second=5, transient=True)
                self.live.start()
            else:
                self.live.update(text)

    def close(self) -> None:
        with self.lock:
            if self.live is not None:
                self.live.stop()
                self.live = None


def logs(args: argparse.Namespace, settings: Settings) -> int:
    from ..platform import get_platform  # CLI start-up: this command only

    platform = get_platform(settings)  # the run's pods on a cluster (--platform kubernetes), its nodes here
    if not args.follow:
        sys.stdout.write(platform.logs(args.run, args.node, args.container))
        return 0
    shown = 0
    while True:
        text = platform.logs(args.run, args.node, args.container)
        sys.stdout.write(text[shown:])
        sys.stdout.flush()
        shown = len(text)
        if platform.get_run(args.run).done:
            text = platform.logs(args.run, args.node, args.container)
            sys.stdout.write(text[shown:])
            return 0
        time.sleep(0.5)


def list_runs(args: argparse.Namespace, settings: Settings) -> int:
    from ..engine.status import duration  # CLI start-up: this command only
    from ..platform.local import LocalPlatform  # CLI start-up: this command only

    runs = LocalPlatform(settings).list_runs(dict(args.label) or None)
    if args.output == "json":
        print(
            json.dumps(
                [
                    {
                        "name": r.name,
                        "phase": r.phase,
                        "startedAt": r.started_at,
                        "finishedAt": r.finished_at,
                        "labels": dict(r.labels),
                        "message": r.message,
                    }
                    for r in runs
                ],
                indent=2,
            )
        )
        return 0
    if not runs:
        print(f"no runs in {settings.home / 'runs'}")
        return 0
    width = max(len(r.name) for r in runs) + 2
    print(f"{'NAME'.ljust(width)}{'STATUS'.ljust(11)}{'STARTED'.ljust(22)}{'DURATION'.ljust(10)}MESSAGE")
    for r in runs:
        started = r.started_at or "-"
        took = duration(r.started_at, r.finished_at) if r.started_at else "-"
        message = "" if r.phase == "Succeeded" else _one_line(r.reason())
        print(f"{r.name.ljust(width)}{r.phase.ljust(11)}{started.ljust(22)}{took.ljust(10)}{message}".rstrip())
    return 0


def _one_line(text: str | None, width: int = 120) -> str:
    """The first line of a message, cut to ``width`` (the whole one is in ``status RUN``)."""
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"
