"""An agent against an MLflow server that requires a login: MLflow's own ``basic-auth`` app (mlflow/server/auth).

One real server for the module. With ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD`` in the
environment, as MLflow's client reads them (mlflow/utils/credentials.py ``get_default_host_creds``),
the agent's MLflow sensor, its alias action, its decision recorder and the Kubernetes platform's
model URIs all work; without them each fails with an error that names the variables to set, a wrong
password is called wrong without being shown, and a user without permission gets a 403 naming the user.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from _agent_helpers import steps, wait_for

from scanflow_argo._proc import free_port
from scanflow_argo.agents.runtime import AgentRuntime
from scanflow_argo.agents.testing import InMemoryPlatform
from scanflow_argo.clock import ManualClock
from scanflow_argo.errors import TrackingError
from scanflow_argo.platform._k8s.models import resolve_model_uri
from scanflow_argo.settings import Settings
from scanflow_argo.spec.agent import Agent, MlflowQuery, Plan, SetModelAlias, Threshold
from scanflow_argo.tracking.server import MlflowServer

pytestmark = pytest.mark.slow

ADMIN = "admin"
PASSWORD = secrets.token_urlsafe(18)
READER, READER_PASSWORD = "reader", secrets.token_urlsafe(18)


class AuthServer:
    def __init__(self, url: str, model: str) -> None:
        self.url, self.model = url, model

    def api(self, path: str, body: dict[str, Any], auth: tuple[str, str] = (ADMIN, PASSWORD)) -> dict[str, Any]:
        resp = httpx.post(f"{self.url}/api/2.0/mlflow/{path}", json=body, auth=auth, timeout=10)
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    def tags_of_agent_run(self, agent: str) -> dict[str, str]:
        exp = httpx.get(
            f"{self.url}/api/2.0/mlflow/experiments/get-by-name",
            params={"experiment_name": "scanflow-agents"},
            auth=(ADMIN, PASSWORD),
            timeout=5,
        )
        if exp.status_code != 200:
            return {}
        runs = self.api(
            "runs/search",
            {"experiment_ids": [exp.json()["experiment"]["experiment_id"]], "filter": f"tags.`scanflow.agent` = '{agent}'"},
        ).get("runs", [])
        return {t["key"]: t["value"] for t in runs[0]["data"].get("tags", [])} if runs else {}


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    folder = tmp_path_factory.mktemp("mlflow-auth-home")
    server = MlflowServer(Settings.from_env(environ={}).with_home(folder), port=free_port(), app_name="basic-auth")
    config = folder / "basic_auth.ini"  # mlflow/server/auth/basic_auth.ini's keys
    config.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{folder / 'basic_auth.db'}\nadmin_username = {ADMIN}\nadmin_password = {PASSWORD}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "auth_cache_ttl_seconds = 600\n"  # one PBKDF2 check per login, not one per request (seconds on a busy machine)
    )
    with pytest.MonkeyPatch.context() as mp:  # for the server process only
        mp.setenv("MLFLOW_AUTH_CONFIG_PATH", str(config))
        mp.setenv("MLFLOW_FLASK_SERVER_SECRET_KEY", secrets.token_hex(16))  # the app's CSRF key, required
        server.start(timeout=120)
    try:
        url, model = server.url, f"m-{time.monotonic_ns()}"
        srv = AuthServer(url, model)
        assert httpx.get(f"{url}/api/2.0/mlflow/experiments/search", timeout=5).status_code == 401  # it does require a login
        exp = srv.api("experiments/create", {"name": f"e-{model}"})["experiment_id"]
        srv.api("registered-models/create", {"name": model})
        for accuracy in (0.91, 0.97):
            info = srv.api("runs/create", {"experiment_id": exp})["run"]["info"]
            run, source = info["run_id"], f"{info['artifact_uri']}/model"  # mlflow-artifacts:/…, behind the server
            srv.api("runs/log-metric", {"run_id": run, "key": "accuracy", "value": accuracy, "timestamp": 0, "step": 0})
            srv.api("model-versions/create", {"name": model, "source": source, "run_id": run})
        srv.api("registered-models/alias", {"name": model, "alias": "champion", "version": "1"})
        srv.api("users/create", {"username": READER, "password": READER_PASSWORD})  # default permission: READ
        yield srv
    finally:
        server.stop()


@pytest.fixture
def login(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """Set (or clear) MLflow's login variables; HOME is private, so no ~/.mlflow/credentials is read."""
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    for name in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_AUTH", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)

    def set_login(user: str | None, password: str | None) -> None:
        for name, value in (("MLFLOW_TRACKING_USERNAME", user), ("MLFLOW_TRACKING_PASSWORD", password)):
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)

    return set_login


def _agent(model: str, name: str, rule: Threshold | None = None, alias: str = "champion", version: str = "2") -> Agent:
    """Reads the champion's version and accuracy; a weak champion (< 0.95) makes it move ``alias`` to ``version``."""
    rule = rule or Threshold("champion-acc", "<", 0.95, name="weak-champion")
    return Agent(
        name,
        sensors=[MlflowQuery("champion", model, interval=1), MlflowQuery("champion-acc", model, metric="accuracy", interval=1)],
        rules=[rule],
        plans=[Plan(rule.name, [SetModelAlias(model, alias, version, name="move-alias")])],
        interval=1,
    )


def _runtime(agent: Agent, settings: Settings, url: str) -> tuple[AgentRuntime, ManualClock]:
    s = replace(settings, tracking=replace(settings.tracking, uri=url, enabled=True))
    clock = ManualClock(time.time())
    return AgentRuntime(agent, s, platform=InMemoryPlatform(), clock=clock), clock


def test_with_the_login_in_the_environment_every_agent_path_works(
    auth_server: AuthServer, settings: Settings, login: Any
) -> None:
    login(ADMIN, PASSWORD)
    name = f"keeper-{time.monotonic_ns()}"
    runtime, clock = _runtime(_agent(auth_server.model, name), settings, auth_server.url)
    steps(runtime, clock, 1)
    status = runtime.status()
    assert status["sensors"]["champion"]["value"] == 1, status["sensors"]
    assert status["sensors"]["champion-acc"]["value"] == pytest.approx(0.91)
    assert [r["status"] for r in runtime.audit.all() if r.get("kind") == "action"] == ["ok"]  # the alias moved
    steps(runtime, clock, 1)
    assert runtime.status()["sensors"]["champion"]["value"] == 2
    # The decisions reached the agent's run in MLflow.
    wait_for(lambda: runtime.recorder.sent >= 3, what="decisions sent to MLflow")
    tags = auth_server.tags_of_agent_run(name)
    assert any(k.startswith("decision.") for k in tags) and runtime.status()["mlflow"]["error"] is None
    asyncio.run(runtime.close())
    # The Kubernetes platform resolves the model URI with the same login.
    where = resolve_model_uri(
        f"models:/{auth_server.model}@champion", tracking_uri=auth_server.url, artifacts_destination="s3://bucket/artifacts"
    )
    assert where.startswith("s3://bucket/artifacts/")


def test_without_a_login_each_path_names_the_variables_to_set(auth_server: AuthServer, settings: Settings, login: Any) -> None:
    login(None, None)
    runtime, clock = _runtime(_agent(auth_server.model, f"anon-{time.monotonic_ns()}"), settings, auth_server.url)
    steps(runtime, clock, 1)
    stale = runtime.status()["sensors"]["champion"]["stale"]
    assert "HTTP 401" in stale and "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD" in stale, stale
    wait_for(lambda: runtime.recorder.last_error, what="the recorder's error")
    assert "MLFLOW_TRACKING_USERNAME" in runtime.status()["mlflow"]["error"] and runtime.recorder.sent == 0
    asyncio.run(runtime.close())
    with pytest.raises(TrackingError, match=r"requires a login .* set MLFLOW_TRACKING_USERNAME"):
        resolve_model_uri(f"models:/{auth_server.model}@champion", tracking_uri=auth_server.url, artifacts_destination=None)
    # Half a login is named as such.
    login(ADMIN, None)
    with pytest.raises(TrackingError, match=r"only MLFLOW_TRACKING_USERNAME is set"):
        resolve_model_uri(f"models:/{auth_server.model}@champion", tracking_uri=auth_server.url, artifacts_destination=None)


def test_a_wrong_password_and_a_missing_permission_are_told_apart(
    auth_server: AuthServer, settings: Settings, login: Any
) -> None:
    wrong = secrets.token_urlsafe(18)
    login(ADMIN, wrong)
    runtime, clock = _runtime(_agent(auth_server.model, f"wrong-{time.monotonic_ns()}"), settings, auth_server.url)
    steps(runtime, clock, 1)
    stale = runtime.status()["sensors"]["champion"]["stale"]
    assert "refused MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD — check them" in stale, stale
    asyncio.run(runtime.close())
    assert wrong not in str(runtime.audit.all()) + str(runtime.status())

    # A reader may read (the sensor works) but not move an alias: a 403 that names the user.
    login(READER, READER_PASSWORD)
    always = Threshold("champion", ">=", 1, name="has-champion")
    agent = _agent(auth_server.model, f"reader-{time.monotonic_ns()}", rule=always, alias="challenger", version="1")
    runtime, clock = _runtime(agent, settings, auth_server.url)
    steps(runtime, clock, 1)
    assert runtime.status()["sensors"]["champion"]["value"] in (1, 2), runtime.status()["sensors"]
    asyncio.run(runtime.close())
    failed = [r for r in runtime.audit.all() if r.get("kind") == "action"]
    assert failed and failed[0]["status"] == "failed", failed
    assert "to user 'reader' (HTTP 403" in failed[0]["reason"] and READER_PASSWORD not in failed[0]["reason"]
