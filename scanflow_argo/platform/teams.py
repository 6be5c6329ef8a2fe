"""Team environments of an application: create, list and delete them (the Python side of ``scanflow-argo team``).

A team's environment is the namespace ``scanflow-<app>-<team>``. Its manifests (``compile.teams``) are
written to ``<home>/teams/<app>/<team>/`` with a ``kustomization.yaml``, checked against the schemas like
every compiled object, and applied on a cluster with ``kubectl apply -k`` like the rest. That folder is also
the local platform's record of the team: ``list_teams`` reads it back, ``delete_team`` removes it (runs,
templates and deployments of the namespace stay: on a cluster deleting the Namespace removes them).

Locally every team shares the OS user, so the namespaces are a guard against mistakes, not a security
boundary; the real boundaries are Kubernetes RBAC (the rendered Roles) and the registry's permissions.

``read_audit`` is the platform admin's view of the teams' agents on a cluster: the records each team's agents
appended to its ``scanflow-audit`` ConfigMap, read with one ``get`` by name per team namespace (all the
admins' Group may do there).
"""

from __future__ import annotations

import functools
import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..compile.output import write_manifests
from ..compile.schema import SchemaChecker
from ..compile.teams import AUDIT_CONFIG_MAP, team_namespace, team_objects
from ..errors import AlreadyExistsError, NotFoundError, PlatformError
from ..settings import Settings
from ._k8s.api import call, load_api_client
from .base import DeploymentStatus, Pairs, Platform, RunStatus, SubmitTarget

__all__ = [
    "NamespaceBound",
    "Team",
    "cluster_audit",
    "create_team",
    "delete_team",
    "list_teams",
    "read_audit",
    "read_team_objects",
    "teams_dir",
]


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


def read_audit(api: Any, namespaces: Sequence[str], timeout: float = 30.0) -> list[dict[str, Any]]:
    """Every record the agents of the teams in ``namespaces`` appended to their team's ``scanflow-audit``
    ConfigMap, oldest first (by ``time``, then namespace, agent and ``seq``), each naming its namespace. ``api``
    is a ``kubernetes.client.CoreV1Api`` with the admin's credentials; one ``get`` by name per namespace, as
    the admins' read-only Role allows. A namespace whose trail is missing (or, with a 403, not readable to the
    caller: the admins' Group is ``Settings.teams.audit_readers``) is refused, naming it; a line that is not JSON (cut by hand) is skipped."""
    out: list[dict[str, Any]] = []
    for ns in namespaces:
        what = f"ConfigMap {ns}/{AUDIT_CONFIG_MAP}"
        try:
            cm = call(functools.partial(api.read_namespaced_config_map, AUDIT_CONFIG_MAP, ns, _request_timeout=timeout), what)
        except NotFoundError as err:
            raise NotFoundError(
                f"{what}, the team's audit trail, does not exist: apply the team's manifests (kubectl apply -k "
                f".scanflow/teams/APP/TEAM)"
            ) from err
        for key, text in sorted((cm.data or {}).items()):
            for line in str(text).splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    out.append({"namespace": ns, "agent": key.removesuffix(".jsonl"), **record})
    return sorted(out, key=lambda r: (str(r.get("time", "")), r["namespace"], str(r["agent"]), int(r.get("seq") or 0)))


def cluster_audit(settings: Settings, app: str) -> list[dict[str, Any]]:
    """``read_audit`` over every recorded team of ``app``, with the cluster of ``settings.kubernetes``."""
    from kubernetes import client  # Kubernetes client: ~1.5 s, cluster path only

    namespaces = [t.namespace for t in list_teams(settings, app)]
    if not namespaces:
        raise NotFoundError(f"application {app!r} has no teams here: scanflow-argo team create {app} TEAM")
    api = client.CoreV1Api(load_api_client(settings.kubernetes))
    return read_audit(api, namespaces, settings.kubernetes.request_timeout)


def read_team_objects(team: Team) -> list[dict[str, object]]:
    """The objects recorded for ``team`` (its manifests, as kustomize lists them)."""
    kust = yaml.safe_load((team.manifests / "kustomization.yaml").read_text())
    return [yaml.safe_load((team.manifests / name).read_text()) for name in kust["resources"]]


class NamespaceBound:
    """A ``Platform`` bound to one team's namespace: every call naming another namespace — a manifest's
    ``metadata.namespace`` or a ``namespace`` argument — is refused with ``PlatformError`` naming both,
    before the platform is asked. Runs and deployments named without a namespace are the bound one's
    (the platform beneath is built for that namespace; a platform for another one is refused at once).
    Locally this is a guard against mistakes, not a security boundary (every team shares the OS user)."""

    name = "namespace-bound"

    def __init__(self, platform: Platform, namespace: str) -> None:
        if platform.namespace != namespace:
            raise PlatformError(
                f"a client bound to namespace {namespace!r} was given a {platform.name} platform acting in "
                f"{platform.namespace!r} — build the platform with --namespace {namespace} (or --team)"
            )
        self.platform = platform
        self.namespace = namespace

    def _check(self, namespace: str | None, what: str) -> None:
        if namespace not in (None, "", self.namespace):
            raise PlatformError(
                f"{what} in namespace {namespace!r} refused: this client is bound to team namespace {self.namespace!r} — "
                f"act as the team that owns {namespace!r}, or publish what it needs (docs/teams.md)"
            )

    def _manifest(self, manifest: Mapping[str, Any], what: str) -> None:
        meta = manifest.get("metadata") or {}
        self._check(meta.get("namespace"), f"{what} {manifest.get('kind', 'object')} {meta.get('name', '')!r}".strip())

    # -- workflows --------------------------------------------------------------------------
    def apply_template(self, manifest: Mapping[str, Any]) -> None:
        self._manifest(manifest, "applying")
        self.platform.apply_template(manifest)

    def submit(self, workflow: SubmitTarget, parameters: Pairs | None = None, labels: Pairs | None = None) -> str:
        if not isinstance(workflow, str):
            self._manifest(workflow, "submitting")
        return self.platform.submit(workflow, parameters, labels)

    def get_run(self, name: str) -> RunStatus:
        run = self.platform.get_run(name)
        self._check(run.namespace, f"reading run {name!r}")
        return run

    def list_runs(self, labels: Mapping[str, str] | None = None) -> list[RunStatus]:
        """The runs of the bound namespace only (the local platform lists every namespace's)."""
        return [r for r in self.platform.list_runs(labels) if r.namespace in ("", self.namespace)]

    def wait(self, name: str, timeout: float | None = None, poll: float = 0.5) -> RunStatus:
        return self.platform.wait(name, timeout, poll)

    def logs(self, name: str, node: str | None = None, container: str = "main") -> str:
        return self.platform.logs(name, node, container)

    def stop(self, name: str) -> None:
        self.platform.stop(name)

    def resume(self, name: str) -> Any:
        return self.platform.resume(name)

    def delete_run(self, name: str) -> None:
        self.platform.delete_run(name)

    def download_artifact(self, name: str, node: str, artifact: str, dest: Path) -> Path:
        return self.platform.download_artifact(name, node, artifact, dest)

    # -- model deployments ------------------------------------------------------------------
    def apply_deployment(self, manifest: Mapping[str, Any]) -> str | None:
        self._manifest(manifest, "applying")
        return self.platform.apply_deployment(manifest)

    def get_deployment(self, name: str) -> DeploymentStatus:
        return self.platform.get_deployment(name)

    def scale(self, name: str, replicas: int, namespace: str | None = None) -> DeploymentStatus:
        self._check(namespace, f"scaling deployment {name!r}")
        return self.platform.scale(name, replicas)

    def roll(self, name: str, model_uri: str, namespace: str | None = None) -> DeploymentStatus:
        self._check(namespace, f"rolling deployment {name!r}")
        return self.platform.roll(name, model_uri)

    def set_predictors(self, name: str, predictors: list[dict[str, Any]], namespace: str | None = None) -> DeploymentStatus:
        self._check(namespace, f"setting the predictors of deployment {name!r}")
        return self.platform.set_predictors(name, predictors)

    def delete_deployment(self, name: str) -> None:
        self.platform.delete_deployment(name)

    def submit_in(self, namespace: str, workflow: Mapping[str, Any] | str, parameters: Sequence[str] = ()) -> str:
        """Submit ``workflow`` in ``namespace`` (an agent's or a CLI's explicit target): refused unless it is the bound one."""
        self._check(namespace, f"submitting {workflow if isinstance(workflow, str) else 'a Workflow'!r}")
        params = dict(p.split("=", 1) for p in parameters)
        return self.submit(workflow, params)
