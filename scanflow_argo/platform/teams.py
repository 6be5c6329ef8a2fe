"""Team environments of an application: create, list and delete them (the Python side of ``scanflow-argo team``).

A team's environment is the namespace ``scanflow-<app>-<team>``. Its manifests (``compile.teams``) are
written to ``<home>/teams/<app>/<team>/`` with a ``kustomization.yaml``, checked against the schemas like
every compiled object, and applied on a cluster with ``kubectl apply -k`` like the rest. That folder is also
the local platform's record of the team: ``list_teams`` reads it back, ``delete_team`` removes it (runs,
templates and deployments of the namespace stay: on a cluster deleting the Namespace removes them).

Locally every team shares the OS user, so the namespaces are a guard against mistakes, not a security
boundary; the real boundaries are Kubernetes RBAC (the rendered Roles) and the registry's permissions.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..compile.output import write_manifests
from ..compile.schema import SchemaChecker
from ..compile.teams import team_namespace, team_objects
from ..errors import AlreadyExistsError, NotFoundError
from ..settings import Settings

__all__ = ["Team", "create_team", "delete_team", "list_teams", "read_team_objects", "teams_dir"]


@dataclass(frozen=True)
class Team:
    """One team of one application: its namespace and the folder holding its manifests."""

    app: str
    name: str
    namespace: str
    manifests: Path


def teams_dir(settings: Settings) -> Path:
    """``<home>/teams``: one folder per application, one per team inside."""
    return settings.home / "teams"


def create_team(settings: Settings, app: str, team: str, *, schema_check: bool = True) -> Team:
    """Render and record ``team``'s environment; refused if it exists (``AlreadyExistsError`` names it)."""
    ns = team_namespace(app, team)
    folder = teams_dir(settings) / app / team
    if (folder / "kustomization.yaml").exists():
        raise AlreadyExistsError(
            f"team {team!r} of application {app!r} already exists (namespace {ns}, manifests in {folder}) — "
            f"`scanflow-argo team delete {app} {team}` first to recreate it"
        )
    objs = team_objects(app, team, settings.teams)
    if schema_check:
        SchemaChecker().check(objs)
    write_manifests(objs, folder)
    return Team(app, team, ns, folder)


def list_teams(settings: Settings, app: str | None = None) -> list[Team]:
    """The recorded teams (of ``app``, or of every application), sorted by application and team."""
    root = teams_dir(settings)
    apps = [root / app] if app else sorted(p for p in root.glob("*") if p.is_dir())
    out = []
    for app_dir in apps:
        for folder in sorted(app_dir.glob("*/kustomization.yaml")):
            team_dir = folder.parent
            out.append(Team(app_dir.name, team_dir.name, team_namespace(app_dir.name, team_dir.name), team_dir))
    return out


def delete_team(settings: Settings, app: str, team: str) -> Team:
    """Forget ``team``'s environment (its manifests folder); ``NotFoundError`` names it when there is none."""
    ns = team_namespace(app, team)
    folder = teams_dir(settings) / app / team
    if not (folder / "kustomization.yaml").exists():
        known = ", ".join(t.name for t in list_teams(settings, app)) or "none"
        raise NotFoundError(f"team {team!r} of application {app!r} does not exist (teams of {app!r}: {known})")
    shutil.rmtree(folder)
    return Team(app, team, ns, folder)


def read_team_objects(team: Team) -> list[dict[str, object]]:
    """The objects recorded for ``team`` (its manifests, as kustomize lists them)."""
    kust = yaml.safe_load((team.manifests / "kustomization.yaml").read_text())
    return [yaml.safe_load((team.manifests / name).read_text()) for name in kust["resources"]]
