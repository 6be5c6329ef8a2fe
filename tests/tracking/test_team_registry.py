"""A shared registry with per-team rights, enforced by a real MLflow server running its ``basic-auth`` app.

The setup of docs/teams.md: the server's ``default_permission`` is READ, each team logs in as its own user,
and whoever creates an experiment or registered model gets MANAGE on it
(``set_can_manage_experiment_permission`` / ``set_can_manage_registered_model_permission`` in
mlflow/server/auth/__init__.py). So a team writes only what it created, reads what others published,
and a grant (``grant_user_permission``, ``/api/3.0/mlflow/users/permissions/grant``) widens that.
All calls go through the project's one MLflow client, ``MlflowRest``, with MLflow's credential variables.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from scanflow_argo._proc import free_port
from scanflow_argo.errors import TrackingError
from scanflow_argo.platform.publications import Publications
from scanflow_argo.settings import Settings
from scanflow_argo.tracking import MlflowRest
from scanflow_argo.tracking.server import MlflowServer

pytestmark = pytest.mark.slow

ADMIN, ADMIN_PASSWORD = "admin", secrets.token_urlsafe(18)
TEAMS = {"data": secrets.token_urlsafe(18), "science": secrets.token_urlsafe(18), "engineering": secrets.token_urlsafe(18)}


def _client(url: str, user: str, password: str) -> MlflowRest:
    return MlflowRest(url, environ={"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password})


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], MlflowRest]]:
    """One auth server (as tests/agents/test_mlflow_auth.py starts it), one user per team; what each team owns."""
    folder: Path = tmp_path_factory.mktemp("team-registry")
    server = MlflowServer(Settings.from_env(environ={}).with_home(folder), port=free_port(), app_name="basic-auth")
    config = folder / "basic_auth.ini"  # mlflow/server/auth/basic_auth.ini's keys
    config.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{folder / 'basic_auth.db'}\nadmin_username = {ADMIN}\nadmin_password = {ADMIN_PASSWORD}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "auth_cache_ttl_seconds = 600\n"
    )
    with pytest.MonkeyPatch.context() as mp:  # for the server process only
        mp.setenv("MLFLOW_AUTH_CONFIG_PATH", str(config))
        mp.setenv("MLFLOW_FLASK_SERVER_SECRET_KEY", secrets.token_hex(16))
        server.start(timeout=120)
    clients: list[MlflowRest] = []
    try:
        admin = _client(server.url, ADMIN, ADMIN_PASSWORD)
        clients.append(admin)
        for team, password in TEAMS.items():
            admin.create_user(team, password)

        def as_team(team: str) -> MlflowRest:
            c = _client(server.url, team, TEAMS[team])
            clients.append(c)
            return c

        science = as_team("science")
        exp = str(science.experiment_id("science-mnist"))
        run = science.create_run(exp, "train")
        science.create_registered_model("mnist-science")
        science.create_model_version("mnist-science", f"{run['artifact_uri']}/model", run["run_id"])
        science.set_alias("mnist-science", "published", 1)
        yield as_team
    finally:
        for c in clients:
            c.close()
        server.stop()


def test_a_team_reads_what_another_published(registry: Callable[[str], MlflowRest]) -> None:
    eng = registry("engineering")
    assert eng.get_alias("mnist-science", "published")["version"] == "1"  # type: ignore[index]  # None fails the test
    assert eng.experiment_id("science-mnist", create=False)


# (what team engineering tries on the science team's things) — each refused with 403 naming the user
WRITES: list[tuple[str, Callable[[MlflowRest], object]]] = [
    ("register a version of science's model", lambda c: c.create_model_version("mnist-science", "mlflow-artifacts:/x")),
    ("move science's alias", lambda c: c.set_alias("mnist-science", "published", 1)),
    ("write science's experiment", lambda c: c.create_run(str(c.experiment_id("science-mnist", create=False)), "intruder")),
]


@pytest.mark.parametrize(("what", "call"), WRITES, ids=[w for w, _ in WRITES])
def test_a_team_cannot_write_another_teams_things(
    registry: Callable[[str], MlflowRest], what: str, call: Callable[[MlflowRest], object]
) -> None:
    with pytest.raises(TrackingError) as err:
        call(registry("engineering"))
    assert err.value.status == 403, what
    assert "'engineering'" in str(err.value) and TEAMS["engineering"] not in str(err.value)


def test_a_team_writes_its_own_and_a_grant_widens_it(registry: Callable[[str], MlflowRest]) -> None:
    eng, science = registry("engineering"), registry("science")
    run = eng.create_run(str(eng.experiment_id("engineering-mnist")), "package")
    source = f"{run['artifact_uri']}/model"
    eng.create_registered_model("mnist-serving")
    assert eng.create_model_version("mnist-serving", source, run["run_id"]) == "1"
    with pytest.raises(TrackingError) as err:
        science.create_model_version("mnist-serving", source, run["run_id"])
    assert err.value.status == 403
    eng.grant_permission("science", "registered_model", "mnist-serving", "EDIT")
    assert science.create_model_version("mnist-serving", source, run["run_id"]) == "2"


def test_publishing_a_model_moves_published_and_is_recorded_only_when_allowed(
    registry: Callable[[str], MlflowRest], tmp_path: Path
) -> None:
    pubs = Publications(Settings.from_env(environ={}).with_home(tmp_path), "mnist")
    pubs.publish_model("science", registry("science"), "mnist-science", "1")
    with pytest.raises(TrackingError) as err:
        pubs.publish_model("engineering", registry("engineering"), "mnist-science", "1")
    assert err.value.status == 403
    assert [(r.team, r.action, r.kind, r.name, r.version, r.detail) for r in pubs.log()] == [
        ("science", "publish", "model", "mnist-science", "1", "models:/mnist-science@published")
    ]
