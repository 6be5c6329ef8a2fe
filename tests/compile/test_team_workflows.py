"""An application compiled into its team's environment (``Application(team=T, namespace=scanflow-<app>-T)``): its
workflows run as the team's ServiceAccount, which the team environment holds (no second one is compiled), and
the team's rendered Role allows what those workflows do — read as ``kubectl auth can-i`` would. The team's artifact
repository keeps every key under the team's prefix. ``team`` alone stays a label."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from _compile_helpers import build_app

from scanflow_argo.compile import compile_app
from scanflow_argo.compile.teams import allowed, artifact_prefix, team_namespace, team_objects

SCIENCE = team_namespace("demo", "science")


def _compiled(namespace: str, team: str) -> list[dict[str, Any]]:
    app = build_app()
    app.namespace, app.team = namespace, team
    return compile_app(app)


CASES = [
    ("in its team's environment", SCIENCE, "science", "scanflow-team-workflows", False),
    ("team as a label only", "demo-ns", "science", "demo-workflows", True),
    ("another team's namespace", team_namespace("demo", "data"), "science", "demo-workflows", True),
]


@pytest.mark.parametrize(("what", "namespace", "team", "account", "own_rbac"), CASES, ids=[c[0] for c in CASES])
def test_workflows_run_as_the_teams_service_account(what: str, namespace: str, team: str, account: str, own_rbac: bool) -> None:
    objs = _compiled(namespace, team)
    runs = [o for o in objs if o["kind"] in ("WorkflowTemplate", "Workflow")]
    assert runs and {o["spec"]["serviceAccountName"] for o in runs} == {account}, what
    accounts = {o["metadata"]["name"] for o in objs if o["kind"] == "ServiceAccount"}
    assert (account in accounts) is own_rbac, what


def test_the_teams_role_allows_what_its_workflows_do_and_no_other_team_does() -> None:
    every = team_objects("demo", "science") + team_objects("demo", "data") + _compiled(SCIENCE, "science")
    sa = f"system:serviceaccount:{SCIENCE}:scanflow-team-workflows"
    assert allowed(every, sa, "create", "workflowtaskresults", SCIENCE, group="argoproj.io")
    assert allowed(every, sa, "patch", "seldondeployments", SCIENCE, group="machinelearning.seldon.io")
    assert not allowed(every, sa, "create", "workflowtaskresults", team_namespace("demo", "data"), group="argoproj.io")


@pytest.mark.parametrize("team", ["data", "science", "engineering"])
def test_each_teams_artifacts_live_under_its_prefix(team: str) -> None:
    (repos,) = [o for o in team_objects("mnist", team) if o["metadata"]["name"] == "artifact-repositories"]
    key = repos["metadata"]["annotations"]["workflows.argoproj.io/default-artifact-repository"]
    repo = yaml.safe_load(repos["data"][key])
    assert repo["s3"]["keyFormat"].startswith(artifact_prefix("mnist", team)) and artifact_prefix("mnist", team) == (
        f"argo/scanflow-mnist-{team}/"
    )
    assert repo["s3"]["accessKeySecret"] == {"name": "argo-artifacts-s3", "key": "accesskey"}  # by reference only
