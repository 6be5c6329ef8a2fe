"""Handoff between teams by publication, and its audit trail (``scanflow-argo team log APP``).

A team publishes what the next one needs — a dataset version, a model version (the registry alias
``published``), its retraining template — and every publication and every use is appended to
``<home>/teams/<app>/audit.jsonl`` as one JSON line: when (ISO UTC), team, action (``publish``/``use``),
kind, name, version, and where it was used. A template is published as a ``ClusterWorkflowTemplate``
(cluster-scoped, so other teams' Workflows reach it through ``templateRef`` with ``clusterScope: true``:
argo-workflows ``workflow/templateresolution/context.go`` ``GetTemplateFromRef``), locally the same kind on
the local platform. The trail is an append-only file: a record of what happened, not a lock against
rewriting it (on one machine every team shares the OS user).

A run says what it consumes by reference in its labels (``reference_labels``: ``scanflow.dev/dataset`` and
``scanflow.dev/dataset-version``, the same for ``template`` and ``model``), put there the way Argo carries a
template's metadata to its runs: the template's ``spec.workflowMetadata.labels``, which the controller copies
onto every Workflow made from it (``workflow/controller/operator.go`` ``updateWorkflowMetadata``). A published
template gets its own name and version there, so every run of it — in any team's namespace — names what it ran;
``Publications.record_run`` turns a run's references into use records (who, what, which version, when, which run).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from ..clock import Clock, SystemClock
from ..compile.crd import LABEL_VALUE_RULE, is_label_value
from ..compile.teams import team_namespace
from ..errors import SpecError
from ..settings import Settings
from .base import Platform, RunStatus

__all__ = ["PUBLISHED_ALIAS", "AuditRecord", "Publications", "audit_path", "format_log", "reference_labels", "references"]

PUBLISHED_ALIAS = "published"
KINDS = ("dataset", "model", "template")
LABEL_TEAM = "scanflow.dev/team"
"""On a published template: the team that published it."""


def _label_keys(kind: str) -> tuple[str, str]:
    return f"scanflow.dev/{kind}", f"scanflow.dev/{kind}-version"


def reference_labels(kind: str, name: str, version: str) -> dict[str, str]:
    """The labels of a run that consumes publication ``kind`` ``name``@``version`` (put them in the template's
    ``spec.workflowMetadata.labels``); refused unless ``kind`` is one of ``KINDS`` and both values are valid
    Kubernetes label values (the API server would refuse the run)."""
    if kind not in KINDS:
        raise SpecError(f"a run cannot consume a {kind!r}: it consumes one of {', '.join(KINDS)}")
    for what, value in (("name", name), ("version", version)):
        if not is_label_value(str(value)):
            raise SpecError(
                f"{kind} {what} {value!r} cannot be a label value ({LABEL_VALUE_RULE}, at most 63): "
                "publish it under such a name and version"
            )
    key, version_key = _label_keys(kind)
    return {key: str(name), version_key: str(version)}


def references(labels: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """What a run consumes, read back from its labels: (kind, name, version), in ``KINDS`` order."""
    out = []
    for kind in KINDS:
        key, version_key = _label_keys(kind)
        if labels.get(key):
            out.append((kind, str(labels[key]), str(labels.get(version_key, ""))))
    return out


class _AliasSetter(Protocol):
    def set_alias(self, name: str, alias: str, version: int | str) -> None: ...


@dataclass(frozen=True)
class AuditRecord:
    """One line of the trail."""

    when: str
    team: str
    action: str
    kind: str
    name: str
    version: str
    namespace: str
    detail: str = ""


class Publications:
    """Publish and use across the teams of ``app``; each call appends its ``AuditRecord``."""

    def __init__(self, settings: Settings, app: str, clock: Clock | None = None) -> None:
        self.app = app
        self.path = settings.home / "teams" / app / "audit.jsonl"
        self.clock = clock or SystemClock()

    def _record(self, team: str, action: str, kind: str, name: str, version: str, detail: str = "") -> AuditRecord:
        if kind not in KINDS:
            raise SpecError(f"cannot {action} a {kind!r}: publish one of {', '.join(KINDS)}")
        when = datetime.fromtimestamp(self.clock.now(), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        rec = AuditRecord(when, team, action, kind, name, str(version), team_namespace(self.app, team), detail)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(asdict(rec), sort_keys=True) + "\n")
        return rec

    def publish_dataset(self, team: str, name: str, version: str, uri: str) -> AuditRecord:
        """Record that ``team`` published dataset ``name`` at ``version`` (found at ``uri``)."""
        return self._record(team, "publish", "dataset", name, version, uri)

    def publish_model(self, team: str, registry: _AliasSetter, name: str, version: str) -> AuditRecord:
        """Point ``name@published`` at ``version`` in the shared registry (the team's own login) and record it."""
        registry.set_alias(name, PUBLISHED_ALIAS, version)
        return self._record(team, "publish", "model", name, version, f"models:/{name}@{PUBLISHED_ALIAS}")

    def publish_template(self, team: str, platform: Platform, manifest: Mapping[str, Any], version: str) -> AuditRecord:
        """Publish ``team``'s WorkflowTemplate as a ClusterWorkflowTemplate (no namespace) and record it. Its
        ``spec.workflowMetadata.labels`` gain the template's own reference (``reference_labels``), so every run of
        it names the template and version it came from, in whichever namespace it runs."""
        # a new, cluster-scoped object: its name, labels and annotations only (no namespace, uid or resourceVersion)
        meta = {k: v for k, v in dict(manifest.get("metadata") or {}).items() if k in ("name", "labels", "annotations")}
        name = str(meta.get("name"))
        labels = {**dict(meta.get("labels") or {}), LABEL_TEAM: team, "scanflow.dev/version": str(version)}
        spec = dict(manifest.get("spec") or {})
        run_meta = dict(spec.get("workflowMetadata") or {})
        run_meta["labels"] = {**dict(run_meta.get("labels") or {}), **reference_labels("template", name, str(version))}
        spec["workflowMetadata"] = run_meta
        cluster = {**dict(manifest), "kind": "ClusterWorkflowTemplate", "metadata": {**meta, "labels": labels}, "spec": spec}
        platform.apply_template(cluster)
        return self._record(team, "publish", "template", name, version, "ClusterWorkflowTemplate")

    def use(self, team: str, kind: str, name: str, version: str, where: str = "") -> AuditRecord:
        """Record that ``team`` used a publication (e.g. a run consumed a dataset, an agent submitted a template)."""
        return self._record(team, "use", kind, name, version, where)

    def record_run(self, team: str, run: RunStatus, by: str = "") -> list[AuditRecord]:
        """Record ``team``'s use of every publication ``run`` consumes by reference (its labels, ``references``);
        a version nobody published is recorded too, and says so."""
        published = {(r.kind, r.name, r.version) for r in self.log() if r.action == "publish"}
        out = []
        for kind, name, version in references(run.labels):
            where = f"run {run.namespace}/{run.name}" + (f" by {by}" if by else "")
            if (kind, name, version) not in published:
                where += " (not a published version)"
            out.append(self._record(team, "use", kind, name, version, where))
        return out

    def log(self) -> list[AuditRecord]:
        """The trail, oldest first (empty when nothing was published)."""
        if not self.path.exists():
            return []
        return [AuditRecord(**json.loads(line)) for line in self.path.read_text().splitlines() if line.strip()]


def format_log(records: list[AuditRecord]) -> str:
    """One line per record: when, team, action, kind name@version, detail."""
    return "\n".join(
        f"{r.when}  {r.team:<12} {r.action:<8} {r.kind:<8} {r.name}@{r.version}  {r.detail}".rstrip() for r in records
    )


def audit_path(settings: Settings, app: str) -> Path:
    """Where ``app``'s trail lives."""
    return settings.home / "teams" / app / "audit.jsonl"
