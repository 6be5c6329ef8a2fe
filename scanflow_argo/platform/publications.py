"""Handoff between teams by publication, and its audit trail (``scanflow-argo team log APP``).

A team publishes what the next one needs — a dataset version, a model version (the registry alias
``published``), its retraining template — and every publication and every use is appended to
``<home>/teams/<app>/audit.jsonl`` as one JSON line: when (ISO UTC), team, action (``publish``/``use``),
kind, name, version, and where it was used. A template is published as a ``ClusterWorkflowTemplate``
(cluster-scoped, so other teams' Workflows reach it through ``templateRef`` with ``clusterScope: true``:
argo-workflows ``workflow/templateresolution/context.go`` ``GetTemplateFromRef``), locally the same kind on
the local platform. The trail is an append-only file: a record of what happened, not a lock against
rewriting it (on one machine every team shares the OS user).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from ..clock import Clock, SystemClock
from ..compile.teams import team_namespace
from ..errors import SpecError
from ..settings import Settings
from .base import Platform

__all__ = ["PUBLISHED_ALIAS", "AuditRecord", "Publications", "audit_path", "format_log"]

PUBLISHED_ALIAS = "published"
KINDS = ("dataset", "model", "template")


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
        """Publish ``team``'s WorkflowTemplate as a ClusterWorkflowTemplate (no namespace) and record it."""
        meta = dict(manifest.get("metadata") or {})
        meta.pop("namespace", None)
        labels = {**dict(meta.get("labels") or {}), "scanflow.dev/team": team, "scanflow.dev/version": str(version)}
        cluster = {**dict(manifest), "kind": "ClusterWorkflowTemplate", "metadata": {**meta, "labels": labels}}
        platform.apply_template(cluster)
        return self._record(team, "publish", "template", str(meta.get("name")), version, "ClusterWorkflowTemplate")

    def use(self, team: str, kind: str, name: str, version: str, where: str = "") -> AuditRecord:
        """Record that ``team`` used a publication (e.g. a run consumed a dataset, an agent submitted a template)."""
        return self._record(team, "use", kind, name, version, where)

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
