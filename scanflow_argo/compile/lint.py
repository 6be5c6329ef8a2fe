"""Lint Argo YAML offline — compiled or hand-written, multi-document files, whole folders.

Each ``Workflow``/``WorkflowTemplate``/``CronWorkflow``/``ClusterWorkflowTemplate`` document gets
Argo's JSON schema (when the schemas are available) and the graph checks of ``compile.graph``.
Other kinds are skipped. Every problem comes back, each prefixed with ``file:document``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .graph import ARGO_KINDS, check_graph
from .schema import SchemaChecker

__all__ = ["LintReport", "lint_paths", "yaml_files"]


@dataclass
class LintReport:
    """What ``lint_paths`` found: problems (``file:doc: Kind/name: ...``), how many objects, schema use."""

    problems: list[str] = field(default_factory=list)
    objects: int = 0
    files: int = 0
    schema_checked: bool = True

    @property
    def ok(self) -> bool:
        return not self.problems


def yaml_files(paths: Iterable[Path | str]) -> Iterator[Path]:
    """The YAML files of ``paths`` (folders searched recursively, sorted)."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
        else:
            yield path


def lint_paths(
    paths: Iterable[Path | str], schemas_dir: Path | str | None = None, checker: SchemaChecker | None = None
) -> LintReport:
    """Lint every Argo document under ``paths``. Schema checks run when the schemas are available
    (``report.schema_checked`` says whether they did); graph checks always run."""
    import yaml

    checker = checker or SchemaChecker(schemas_dir)
    report = LintReport(schema_checked=checker.available)
    for path in yaml_files(paths):
        report.files += 1
        if not path.exists():
            report.problems.append(f"{path}: no such file or folder")
            continue
        try:
            docs = list(yaml.safe_load_all(path.read_text()))
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            report.problems.append(f"{path}: not valid YAML: {err}")
            continue
        for i, doc in enumerate(docs):
            if not isinstance(doc, dict) or doc.get("kind") not in ARGO_KINDS:
                continue
            report.objects += 1
            prefix = f"{path}:{i + 1}" if len(docs) > 1 else str(path)
            report.problems += [f"{prefix}: {p}" for p in _check(doc, checker)]
    return report


def _check(doc: dict[str, Any], checker: SchemaChecker) -> list[str]:
    problems = checker.problems(doc) if checker.available else []
    return problems + check_graph(doc)
