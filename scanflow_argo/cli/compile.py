"""``scanflow-argo compile MODULE[:APP] -o DIR`` and ``scanflow-argo lint PATH...``."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import types
from pathlib import Path
from typing import Any

from ..errors import ScanflowError, SpecError
from ..settings import Settings

__all__ = ["load_app", "register"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "compile",
        help="compile a Python Application into manifests (Argo, Seldon, Kubernetes)",
        description="Import MODULE, take its Application (attribute APP, default `app`), validate it, compile it "
        "and write one YAML file per object plus kustomization.yaml to DIR. Every object is checked as the API "
        "server will check it: Argo's full CRDs with their CEL rules and the SeldonDeployment CRD (shipped with "
        "scanflow-argo; --schemas DIR for other copies), Kubernetes built-ins with kubernetes-validate.",
    )
    p.add_argument("target", metavar="MODULE[:APP]", help="e.g. pipelines.mnist:app")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="folder to write the manifests to")
    p.add_argument(
        "--schemas", metavar="DIR", help="check against the CRDs in DIR (or DIR/crds) instead of those shipped with scanflow-argo"
    )
    p.add_argument("--no-schema-check", action="store_true", help="skip the schema checks")
    p.set_defaults(func=cmd_compile)

    lint = sub.add_parser(
        "lint",
        help="lint Argo YAML files or folders offline (schema + graph checks)",
        description="Check every Workflow, WorkflowTemplate, CronWorkflow and ClusterWorkflowTemplate in the given "
        "files and folders (multi-document YAML too) as an Argo 4 API server would (the full CRDs, CEL rules "
        "included; fields Argo 4 removed come with what to write instead) and for graph errors: unknown templates "
        "or dependencies, cycles, undefined references, templateRef/workflowTemplateRef that resolve to nothing "
        "among the files given and the templates applied (--home). Exit 1 listing every problem; 0 when clean.",
    )
    lint.add_argument("paths", nargs="+", metavar="FILE_OR_DIR")
    lint.add_argument(
        "--schemas", metavar="DIR", help="check against the CRDs in DIR (or DIR/crds) instead of those shipped with scanflow-argo"
    )
    lint.set_defaults(func=cmd_lint)


def load_app(target: str) -> Any:
    """The Application at ``MODULE[:ATTR]`` (default attribute ``app``); ``SpecError`` names what is missing."""
    module_name, _, attr = target.partition(":")
    attr = attr or "app"
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: modules of the current folder are importable
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and module_name.startswith(err.name):
            raise SpecError(f"cannot import module {module_name!r}: {err} — run from the project root or fix the name") from err
        raise
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise SpecError(f"module {module_name!r} has no attribute {attr!r} — name the Application as MODULE:ATTRIBUTE")
        obj = getattr(obj, part)
        if isinstance(obj, types.ModuleType) and hasattr(obj, part):
            obj = getattr(obj, part)  # `pkg:app` where pkg/app.py defines `app`
    from ..spec.application import Application

    if not isinstance(obj, Application):
        raise SpecError(f"{module_name}:{attr} is a {type(obj).__name__}, not a scanflow_argo Application")
    return obj


def cmd_compile(args: argparse.Namespace, settings: Settings) -> int:
    from ..compile import compile_app, write_manifests
    from ..compile.schema import SchemaChecker

    app = load_app(args.target)
    objs = compile_app(app)
    if args.no_schema_check:
        print("schema checks skipped (--no-schema-check)", file=sys.stderr)
    else:
        checker = SchemaChecker(args.schemas)
        checker.require()
        checker.check(objs)
        print(f"schema checks passed against {checker.describe()}", file=sys.stderr)
    written = write_manifests(objs, Path(args.output))
    print(f"compiled {app.name!r}: {len(objs)} objects -> {Path(args.output)} ({len(written)} files)")
    return 0


def cmd_lint(args: argparse.Namespace, settings: Settings) -> int:
    from ..compile.lint import lint_paths
    from ..compile.schema import SchemaChecker

    checker = SchemaChecker(args.schemas)
    if args.schemas:
        checker.require()
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        raise ScanflowError(f"no such file or folder: {', '.join(missing)}")
    report = lint_paths(args.paths, checker=checker, applied=settings.templates_dir)
    print(f"schema checks against {report.schemas}", file=sys.stderr)
    for problem in report.problems:
        print(problem)
    status = "ok" if report.ok else f"{len(report.problems)} problem(s)"
    print(f"linted {report.objects} Argo object(s) in {report.files} file(s): {status}", file=sys.stderr)
    return 0 if report.ok else 1
