"""Lint Argo YAML offline — compiled or hand-written, multi-document files, whole folders.

Each ``Workflow``/``WorkflowTemplate``/``CronWorkflow``/``ClusterWorkflowTemplate`` document is checked the
way the API server of an Argo 4 cluster would check it (the full CRD, CEL rules included: ``compile.schema``),
plus the graph checks of ``compile.graph``, with ``templateRef``/``workflowTemplateRef`` resolved across every
file given and the templates applied (a folder of them: the local platform's ``<home>/templates``). Fields Argo 4
removed (a CronWorkflow's ``schedule``, ``synchronization.mutex``/``semaphore``) are reported with what to write
instead, as ``argo convert`` rewrites them (argoproj/argo-workflows ``workflow/convert/legacy_types.go``).
Other kinds are skipped. Every problem comes back, each prefixed with ``file:document``. Files are read as the API
server reads them (``compile.kubeyaml``: plain values, a bound on alias expansion).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ValidationError
from . import compile_app
from .graph import ARGO_KINDS, TemplateIndex, check_graph, shadowed_outputs
from .kubeyaml import KubeLoader, yaml_problem
from .schema import SchemaChecker

__all__ = ["LintReport", "legacy_fields", "lint_objects", "lint_paths", "yaml_files"]


@dataclass
class LintReport:
    """What ``lint_paths`` found: problems (``file:doc: Kind/name: ...``), how many objects, what schemas checked them."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    """Findings that do not fail the lint (Argo accepts them), e.g. an output parameter named ``result``."""
    objects: int = 0
    files: int = 0
    schema_checked: bool = True
    schemas: str = ""
    """What the schema checks ran against (``SchemaChecker.describe()``), or why they did not run."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def merge(self, other: LintReport) -> None:
        """Add ``other``'s findings to this report."""
        self.problems += other.problems
        self.warnings += other.warnings
        self.objects += other.objects
        self.files += other.files
        self.schema_checked = self.schema_checked and other.schema_checked


def yaml_files(paths: Iterable[Path | str]) -> Iterator[Path]:
    """The YAML files of ``paths`` (folders searched recursively, sorted)."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
        else:
            yield path


def _documents(path: Path) -> tuple[list[Any], str | None]:
    if not path.exists():
        return [], f"{path}: no such file or folder"
    try:
        return list(yaml.load_all(path.read_text(), Loader=KubeLoader)), None  # safe, alias bombs refused
    except yaml.YAMLError as err:
        return [], f"{path}: not valid YAML: {yaml_problem(err)}"
    except UnicodeDecodeError as err:
        return [], f"{path}: not valid YAML: {err}"


def lint_paths(
    paths: Iterable[Path | str],
    schemas_dir: Path | str | None = None,
    checker: SchemaChecker | None = None,
    *,
    applied: Path | str | None = None,
    schema_checks: bool = True,
) -> LintReport:
    """Lint every Argo document under ``paths``; ``applied`` is a folder of applied templates that references
    may also resolve to. Schema checks use the shipped CRDs unless ``schemas_dir`` (or ``checker``) says otherwise."""
    checker = checker or SchemaChecker(schemas_dir)
    report = LintReport(schema_checked=schema_checks)
    report.schemas = checker.describe() if schema_checks else "skipped"
    sources = "the files linted" + (f" or the templates applied ({applied})" if applied else "")
    index = TemplateIndex(sources)
    found: list[tuple[str, dict[str, Any]]] = []
    for path in yaml_files(paths):
        report.files += 1
        docs, error = _documents(path)
        if error:
            report.problems.append(error)
            continue
        for i, doc in enumerate(docs):
            if not isinstance(doc, dict) or doc.get("kind") not in ARGO_KINDS:
                continue
            index.add(doc)
            found.append((f"{path}:{i + 1}" if len(docs) > 1 else str(path), doc))
    if applied is not None:
        for path in yaml_files([applied]) if Path(applied).is_dir() else []:
            for doc in _documents(path)[0]:
                if isinstance(doc, dict):
                    index.add(doc)
    for prefix, doc in found:
        report.objects += 1
        report.problems += [f"{prefix}: {p}" for p in _check(doc, checker if schema_checks else None, index)]
        report.warnings += [f"{prefix}: {w}" for w in shadowed_outputs(doc)]
    return report


def lint_objects(
    origin: str, app: Any, checker: SchemaChecker, *, applied: Path | str | None = None, schema_checks: bool = True
) -> LintReport:
    """Lint what an Application (or a workflow made one: ``Application.of``) compiles to, as ``lint_paths``
    lints files: validation issues, then every Argo object's checks, each prefixed with ``origin``."""
    report = LintReport(schema_checked=schema_checks)
    report.schemas = checker.describe() if schema_checks else "skipped"
    try:
        objs = compile_app(app, graph_check=False)
    except ValidationError as err:
        report.problems += [f"{origin}: {issue}" for issue in err.issues]
        return report
    index = TemplateIndex(f"{origin}" + (f" or the templates applied ({applied})" if applied else ""))
    argo = [o for o in objs if o.get("kind") in ARGO_KINDS]
    for obj in argo:
        index.add(obj)
    for path in yaml_files([applied]) if applied is not None and Path(applied).is_dir() else []:
        for doc in _documents(path)[0]:
            if isinstance(doc, dict):
                index.add(doc)
    for obj in argo:
        report.objects += 1
        report.problems += [f"{origin}: {p}" for p in _check(obj, checker if schema_checks else None, index)]
        report.warnings += [f"{origin}: {w}" for w in shadowed_outputs(obj)]
    return report


def _check(doc: dict[str, Any], checker: SchemaChecker | None, index: TemplateIndex) -> list[str]:
    legacy = legacy_fields(doc)
    label = (
        f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name') or (doc.get('metadata') or {}).get('generateName') or '?'}"
    )
    hints = [f"{label}: {path}: removed in Argo 4 — {instead}" for path, instead in legacy.items()]
    problems = checker.problems(doc) if checker is not None else []
    # the API server's "unknown field" for a removed field is what the hint explains
    problems = [p for p in problems if not any(p == f'{label}: unknown field "{path}"' for path in legacy)]
    return hints + problems + check_graph(doc, index)


def legacy_fields(doc: Mapping[str, Any]) -> dict[str, str]:
    """Fields of an Argo object that Argo 4 removed, each with what ``argo convert`` writes instead."""
    out: dict[str, str] = {}
    spec = doc.get("spec") if isinstance(doc.get("spec"), Mapping) else {}
    assert isinstance(spec, Mapping)
    prefix = "spec"
    if doc.get("kind") == "CronWorkflow":
        if spec.get("schedule"):
            # convert's LegacyCronWorkflowSpec.ToCurrent: the singular wins over any plural list
            out["spec.schedule"] = f"write spec.schedules: {json.dumps([spec['schedule']])} (what `argo convert` writes)"
        spec = spec.get("workflowSpec") if isinstance(spec.get("workflowSpec"), Mapping) else {}
        prefix = "spec.workflowSpec"
    assert isinstance(spec, Mapping)
    out.update(_legacy_sync(spec.get("synchronization"), f"{prefix}.synchronization"))
    for i, t in enumerate(spec.get("templates") or []):
        if isinstance(t, Mapping):
            out.update(_legacy_sync(t.get("synchronization"), f"{prefix}.templates[{i}].synchronization"))
    return out


def _legacy_sync(sync: Any, path: str) -> dict[str, str]:
    """``mutex``/``semaphore`` → appended to ``mutexes``/``semaphores`` (convert keeps both, singular last)."""
    if not isinstance(sync, Mapping):
        return {}
    out = {}
    for single, plural in (("mutex", "mutexes"), ("semaphore", "semaphores")):
        if sync.get(single) is not None:
            items = [*(sync.get(plural) or []), sync[single]]
            out[f"{path}.{single}"] = f"write {path}.{plural}: {json.dumps(items)} (what `argo convert` writes)"
    return out
