"""How the one MLflow client reads its login and TLS settings: as MLflow's own client does.

Upstream: mlflow/utils/credentials.py (``read_mlflow_creds``, ``get_default_host_creds``: each of
username and password from the environment, else ``~/.mlflow/credentials``), mlflow/utils/rest_utils.py
(``http_request``: Basic when username and password, else Bearer; ``MlflowHostCreds``: INSECURE_TLS and
SERVER_CERT_PATH exclude each other) and mlflow/environment_variables.py (the names; booleans are
true/false/1/0). The real server is exercised in tests/agents/test_mlflow_auth.py.
"""

from __future__ import annotations

import base64
import ssl
from pathlib import Path

import pytest

from scanflow_argo.errors import TrackingError
from scanflow_argo.tracking import Credentials, MlflowRest


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.standard_b64encode(f"{user}:{password}".encode()).decode()}


FILE = "[mlflow]\nmlflow_tracking_username = file-user\nmlflow_tracking_password = file-pass\n"


@pytest.mark.parametrize(
    ("env", "file", "headers"),
    [
        ({}, None, {}),
        ({"MLFLOW_TRACKING_USERNAME": "u", "MLFLOW_TRACKING_PASSWORD": "p"}, None, _basic("u", "p")),
        ({"MLFLOW_TRACKING_TOKEN": "t0k"}, None, {"Authorization": "Bearer t0k"}),
        # http_request: Basic wins over a token when both are configured
        (
            {"MLFLOW_TRACKING_USERNAME": "u", "MLFLOW_TRACKING_PASSWORD": "p", "MLFLOW_TRACKING_TOKEN": "t"},
            None,
            _basic("u", "p"),
        ),
        # half a login is no login: the token (if any) is used
        ({"MLFLOW_TRACKING_USERNAME": "u", "MLFLOW_TRACKING_TOKEN": "t"}, None, {"Authorization": "Bearer t"}),
        ({}, FILE, _basic("file-user", "file-pass")),
        # read_mlflow_creds: the environment wins, field by field
        ({"MLFLOW_TRACKING_PASSWORD": "env-pass"}, FILE, _basic("file-user", "env-pass")),
        ({}, "[other]\nmlflow_tracking_username = x\n", {}),
    ],
)
def test_login_headers(env: dict[str, str], file: str | None, headers: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    if file is not None:
        path.write_text(file)
    assert Credentials.from_env(env, credentials_file=path).headers() == headers


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MLFLOW_TRACKING_INSECURE_TLS": "yes"}, "MLFLOW_TRACKING_INSECURE_TLS='yes' is not a boolean"),
        (
            {"MLFLOW_TRACKING_INSECURE_TLS": "true", "MLFLOW_TRACKING_SERVER_CERT_PATH": "/ca.pem"},
            "MLFLOW_TRACKING_INSECURE_TLS and MLFLOW_TRACKING_SERVER_CERT_PATH are both set",
        ),
        ({"MLFLOW_TRACKING_AUTH": "kubernetes"}, "MLFLOW_TRACKING_AUTH=kubernetes asks for an MLflow auth plugin"),
        ({"MLFLOW_TRACKING_AWS_SIGV4": "True"}, "MLFLOW_TRACKING_AWS_SIGV4=True asks for an MLflow auth plugin"),
        ({"MLFLOW_HTTP_REQUEST_TIMEOUT": "soon"}, "MLFLOW_HTTP_REQUEST_TIMEOUT='soon' is not a number"),
    ],
)
def test_bad_settings_are_named(env: dict[str, str], message: str, tmp_path: Path) -> None:
    with pytest.raises(TrackingError) as err:
        Credentials.from_env(env, credentials_file=tmp_path / "none")
    assert message in str(err.value)


def test_tls_settings(tmp_path: Path) -> None:
    none = tmp_path / "none"
    assert Credentials.from_env({}, credentials_file=none).tls() is True  # httpx's own verification
    insecure = Credentials.from_env({"MLFLOW_TRACKING_INSECURE_TLS": "1"}, credentials_file=none).tls()
    assert isinstance(insecure, ssl.SSLContext) and insecure.verify_mode == ssl.CERT_NONE
    with pytest.raises(TrackingError, match="cannot read the CA bundle MLFLOW_TRACKING_SERVER_CERT_PATH="):
        Credentials.from_env({"MLFLOW_TRACKING_SERVER_CERT_PATH": str(tmp_path / "ca.pem")}, credentials_file=none).tls()
    with pytest.raises(TrackingError, match="cannot load the client certificate MLFLOW_TRACKING_CLIENT_CERT_PATH="):
        Credentials.from_env({"MLFLOW_TRACKING_CLIENT_CERT_PATH": str(tmp_path / "me.pem")}, credentials_file=none).tls()


def test_secrets_stay_out_of_reprs_and_messages(tmp_path: Path) -> None:
    creds = Credentials.from_env(
        {"MLFLOW_TRACKING_USERNAME": "u", "MLFLOW_TRACKING_PASSWORD": "hunter2hunter2", "MLFLOW_TRACKING_TOKEN": "tok-123456"},
        credentials_file=tmp_path / "none",
    )
    assert "hunter2" not in repr(creds) and "tok-123456" not in repr(creds)
    with pytest.raises(TrackingError) as err:  # a URI with a password in it, and nothing listening
        MlflowRest("http://u:hunter2hunter2@127.0.0.1:9", timeout=1, credentials=creds).experiment_id("x")
    assert "hunter2" not in str(err.value) and err.value.unreachable


def test_the_timeout_variable_wins_over_the_callers(tmp_path: Path) -> None:
    creds = Credentials.from_env({"MLFLOW_HTTP_REQUEST_TIMEOUT": "42"}, credentials_file=tmp_path / "none")
    client = MlflowRest("http://127.0.0.1:9", timeout=5, credentials=creds)
    assert client.timeout == 42
    client.close()
