"""``scanflow-argo team create|list|delete``: team environments of an application (namespace ``scanflow-<app>-<team>``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import PlatformError
from ..settings import Settings
from ._args import group

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the ``team`` group to the top-level subparsers."""
    tsub = group(
        sub,
        "team",
        "create, list and delete team environments (namespace scanflow-APP-TEAM)",
        "A team environment is the namespace scanflow-APP-TEAM with its ServiceAccounts and Roles for "
        "workflows, agents and serving (bound only there), a ResourceQuota and a LimitRange, and a reference to the "
        "Secret holding the team's MLflow credentials. Its manifests go to HOME/teams/APP/TEAM (apply them on a "
        "cluster with `kubectl apply -k`).",
        dest="team_command",
        metavar="ACTION",
    )
    create = tsub.add_parser("create", help="render and record a team's environment")
    create.add_argument("app", metavar="APP")
    create.add_argument("team", metavar="TEAM")
    create.add_argument("--no-schema-check", action="store_true", help="skip the schema checks")
    create.set_defaults(func=cmd_create)
    lst = tsub.add_parser("list", help="list the recorded teams (of APP, or of every application)")
    lst.add_argument("app", metavar="APP", nargs="?")
    lst.set_defaults(func=cmd_list)
    delete = tsub.add_parser("delete", help="forget a team's environment (its manifests)")
    delete.add_argument("app", metavar="APP")
    delete.add_argument("team", metavar="TEAM")
    delete.set_defaults(func=cmd_delete)
    log = tsub.add_parser("log", help="what each team of APP published and used (who, what, version, when)")
    log.add_argument("app", metavar="APP")
    log.add_argument(
        "--agents",
        action="store_true",
        help="the decisions every team's agents recorded on the cluster (each team's scanflow-audit ConfigMap; "
        "needs the admins' read-only Group)",
    )
    log.set_defaults(func=cmd_log)
    pub = tsub.add_parser(
        "publish",
        help="publish a dataset version, a model version (alias `published`) or a template file (as a ClusterWorkflowTemplate)",
    )
    pub.add_argument("app", metavar="APP")
    pub.add_argument("team", metavar="TEAM")
    pub.add_argument("kind", choices=["dataset", "model", "template"])
    pub.add_argument("name", metavar="NAME", help="dataset or registered model name; for a template, its YAML file")
    pub.add_argument("version", metavar="VERSION")
    pub.add_argument("--uri", default="", help="where the dataset lives (dataset only)")
    pub.set_defaults(func=cmd_publish)


def cmd_create(args: argparse.Namespace, settings: Settings) -> int:
    from ..platform.teams import create_team  # CLI start-up: this command only (compiler, schemas, YAML: ~0.2 s)

    team = create_team(settings, args.app, args.team, schema_check=not args.no_schema_check)
    print(f"team {team.name} of {team.app}: namespace {team.namespace}, manifests in {team.manifests}")
    if settings.platform == "kubernetes":
        print(f"apply with: kubectl apply -k {team.manifests}")
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from ..platform.teams import list_teams  # CLI start-up: this command only (~0.2 s)

    for team in list_teams(settings, args.app):
        print(f"{team.app}\t{team.name}\t{team.namespace}")
    return 0


def cmd_delete(args: argparse.Namespace, settings: Settings) -> int:
    from ..platform.teams import delete_team  # CLI start-up: this command only (~0.2 s)

    team = delete_team(settings, args.app, args.team)
    print(f"deleted team {team.name} of {team.app} (namespace {team.namespace})")
    if settings.platform == "kubernetes":
        print(f"on the cluster: kubectl delete namespace {team.namespace}")
    return 0


def cmd_log(args: argparse.Namespace, settings: Settings) -> int:
    from ..platform.publications import Publications, format_log  # CLI start-up: this command only (~0.2 s)

    if args.agents:
        from ..platform.teams import cluster_audit  # CLI start-up: this command only

        for r in cluster_audit(settings, args.app):
            what = r.get("action") or r.get("rule") or r.get("kind", "")
            status = r.get("status") or r.get("event") or ""
            print(
                f"{r.get('time', '?')}  {r['namespace']}  {r['agent']}  {r.get('kind', '')} {what} {status}  {r.get('reason', '')}".rstrip()
            )
        return 0
    text = format_log(Publications(settings, args.app).log())
    print(text or f"nothing published or used yet by the teams of {args.app!r}")
    return 0


def cmd_publish(args: argparse.Namespace, settings: Settings) -> int:
    import yaml  # CLI start-up: this command only

    from ..compile.kubeyaml import load_yaml, yaml_problem  # CLI start-up: this command only
    from ..platform import get_platform  # CLI start-up: this command only
    from ..platform.publications import Publications  # CLI start-up: this command only (~0.2 s)
    from ..tracking import MlflowRest  # CLI start-up: this command only
    from ..tracking.server import resolve_uri  # CLI start-up: this command only

    pubs = Publications(settings, args.app)
    if args.kind == "dataset":
        rec = pubs.publish_dataset(args.team, args.name, args.version, args.uri)
    elif args.kind == "model":
        rec = pubs.publish_model(args.team, MlflowRest(resolve_uri(settings)), args.name, args.version)
    else:
        try:  # read as the API server reads it: plain values, alias bombs refused
            manifest = load_yaml(Path(args.name).read_text())
        except yaml.YAMLError as err:
            raise PlatformError(f"{args.name} is not valid YAML: {yaml_problem(err)}") from err
        rec = pubs.publish_template(args.team, get_platform(settings), manifest, args.version)
    print(f"{rec.team} published {rec.kind} {rec.name}@{rec.version} {rec.detail}".rstrip())
    return 0
