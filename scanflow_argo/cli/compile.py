"""``scanflow-argo compile MODULE[:APP] -o DIR`` and ``scanflow-argo lint PATH...``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import ScanflowError
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
        help="lint Argo YAML files, folders or Python workflows offline (schema + graph checks)",
        description="Check every Workflow, WorkflowTemplate, CronWorkflow and ClusterWorkflowTemplate in the given "
        "files and folders (multi-document YAML too), or compiled from MODULE:ATTRIBUTE (an Application, or a "
        "workflow of scanflow_argo or Hera), as an Argo 4 API server would (the full CRDs, CEL rules and unknown "
        "fields included; fields Argo 4 removed come with what to write instead) and for graph errors: unknown "
        "templates or dependencies, cycles, undefined references, outputs.result of a template whose own parameter "
        "is named result, templateRef/workflowTemplateRef that resolve to nothing among the files given and the "
        "templates applied (--home). Exit 1 listing every problem; 0 when clean.",
    )
    lint.add_argument("paths", nargs="+", metavar="FILE_DIR_OR_MODULE")
    lint.add_argument(
        "--schemas", metavar="DIR", help="check against the CRDs in DIR (or DIR/crds) instead of those shipped with scanflow-argo"
    )
    lint.set_defaults(func=cmd_lint)


def load_app(target: str) -> Any:
    """The Application at ``MODULE[:ATTR]`` (default attribute ``app``), imported from the current folder;
    a bare workflow there (ours or Hera's, of any kind) becomes an application of its own.
    ``SpecError`` names what is missing."""
    from .._imports import import_ref  # CLI start-up: this command only
    from ..spec.application import Application  # CLI start-up: this command only

    return Application.of(import_ref(target, default_attr="app"), where=target)


def cmd_compile(args: argparse.Namespace, settings: Settings) -> int:
    from ..compile import compile_app, write_manifests  # CLI start-up: this command only (Hera, jsonschema)
    from ..compile.graph import ARGO_KINDS, shadowed_outputs  # CLI start-up: this command only
    from ..compile.schema import SchemaChecker  # CLI start-up: this command only

    app = load_app(args.target)
    objs = compile_app(app)
    for warning in (w for obj in objs if obj.get("kind") in ARGO_KINDS for w in shadowed_outputs(obj)):
        print(f"warning: {warning}", file=sys.stderr)
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
    from ..compile.lint import lint_objects, lint_paths  # CLI start-up: this command only (Hera, jsonschema)
    from ..compile.schema import SchemaChecker  # CLI start-up: this command only

    checker = SchemaChecker(args.schemas)
    if args.schemas:
        checker.require()
    paths = [p for p in args.paths if Path(p).exists() or ":" not in p]
    refs = [p for p in args.paths if p not in paths]
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise ScanflowError(f"no such file or folder: {', '.join(missing)} (or give MODULE:ATTRIBUTE for Python workflows)")
    report = lint_paths(paths, checker=checker, applied=settings.templates_dir)
    for ref in refs:
        report.merge(lint_objects(ref, load_app(ref), checker, applied=settings.templates_dir))
    print(f"schema checks against {report.schemas}", file=sys.stderr)
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for problem in report.problems:
        print(problem)
    status = "ok" if report.ok else f"{len(report.problems)} problem(s)"
    where = f"{report.files} file(s)" + (f" and {len(refs)} Python reference(s)" if refs else "")
    print(f"linted {report.objects} Argo object(s) in {where}: {status}", file=sys.stderr)
    return 0 if report.ok else 1
