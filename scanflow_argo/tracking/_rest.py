"""The one client of MLflow's REST API (httpx, no ``import mlflow``, which costs seconds), credentials included.

Everything that talks to an MLflow server over HTTP goes through ``MlflowRest``: the engine's run
hooks and the step helpers (``hooks``, ``step``), the registry's alias and version calls
(``registry``), the Kubernetes platform's model URIs (``platform/_k8s/models.py``) and the agents
(MLflow sensor, alias action, decision recorder). Only what needs MLflow's model format or artifact
repositories (``registry.register_model``, ``registry.download``) uses the ``mlflow`` library itself.

Credentials and TLS are read as MLflow's own REST client reads them — ``get_default_host_creds`` in
mlflow/utils/credentials.py, ``http_request`` in mlflow/utils/rest_utils.py, the names in
mlflow/environment_variables.py — from the environment, never from code:

    MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD  Basic auth when both are set; each falls back to
                                      ``~/.mlflow/credentials`` (section ``[mlflow]``, keys in lower case)
    MLFLOW_TRACKING_TOKEN             Bearer token, used when there is no username and password (as in
                                      ``http_request``, Basic wins when both are configured)
    MLFLOW_TRACKING_INSECURE_TLS      ``true``/``1``: do not verify the server's certificate (testing only)
    MLFLOW_TRACKING_SERVER_CERT_PATH  CA bundle that verifies the server (not together with INSECURE_TLS)
    MLFLOW_TRACKING_CLIENT_CERT_PATH  client certificate (a .pem holding the key too) for mutual TLS
    MLFLOW_HTTP_REQUEST_TIMEOUT       seconds per request; overrides the caller's timeout when set

``MLFLOW_TRACKING_AUTH`` (auth plugins) and ``MLFLOW_TRACKING_AWS_SIGV4`` need MLflow's plugin machinery:
they are refused with an error that says so, rather than sending requests without the login they
stand for. Unlike MLflow's client this one does not retry (MLflow retries transient failures for
minutes): callers that retry use ``scanflow_argo.backoff``.

Every failure is a ``TrackingError`` (``status``, ``code``, ``unreachable``) whose message names the
server, the likely cause and the variable to set; credentials never appear in it.
"""

from __future__ import annotations

import base64
import configparser
import math
import os
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlparse

import certifi

from ..errors import TrackingError

if TYPE_CHECKING:
    import httpx

__all__ = [
    "MAX_PARAM_VALUE",
    "Credentials",
    "MlflowRest",
    "filter_value",
    "missing",
    "now_ms",
    "number",
    "unreachable",
]

MAX_PARAM_VALUE = 6000
"""MLflow 3 rejects longer parameter values; longer ones are cut (the end marked with …)."""

MAX_KEY = 250

_MISSING_CODES = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"}
"""MLflow's error codes for an unknown experiment, run, model, version or alias (an unknown alias is INVALID_PARAMETER_VALUE)."""


def now_ms() -> int:
    return int(time.time() * 1000)


def _flag(env: Mapping[str, str], name: str) -> bool:
    """A boolean variable as MLflow's ``_BooleanEnvironmentVariable`` reads it: true/false/1/0, any case."""
    raw = env.get(name)
    if raw is None:
        return False
    if raw.lower() not in ("true", "false", "1", "0"):
        raise TrackingError(f"{name}={raw!r} is not a boolean — set it to true, false, 1 or 0")
    return raw.lower() in ("true", "1")


@dataclass(frozen=True)
class Credentials:
    """How to log in to an MLflow server and verify it (see the module docstring); ``repr`` hides the secrets."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    insecure_tls: bool = False
    server_cert_path: str | None = None
    client_cert_path: str | None = None
    timeout: float | None = None
    """``MLFLOW_HTTP_REQUEST_TIMEOUT``: when set, it replaces the caller's timeout."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, credentials_file: Path | None = None) -> Credentials:
        """Read the variables (and ``~/.mlflow/credentials``) the way ``get_default_host_creds`` does."""
        env = os.environ if environ is None else environ
        for plugin in ("MLFLOW_TRACKING_AUTH", "MLFLOW_TRACKING_AWS_SIGV4"):
            if env.get(plugin) and (plugin == "MLFLOW_TRACKING_AUTH" or _flag(env, plugin)):
                raise TrackingError(
                    f"{plugin}={env[plugin]} asks for an MLflow auth plugin, which scanflow-argo's MLflow client "
                    f"cannot load — unset it and log in with MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD"
                )
        file_user, file_password = _credentials_file(credentials_file or Path(os.path.expanduser("~/.mlflow/credentials")))
        insecure = _flag(env, "MLFLOW_TRACKING_INSECURE_TLS")
        server_cert = env.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or None
        if insecure and server_cert:
            raise TrackingError(
                "MLFLOW_TRACKING_INSECURE_TLS and MLFLOW_TRACKING_SERVER_CERT_PATH are both set — "
                "set only one: the CA bundle to verify the server with, or (for testing) no verification"
            )
        timeout: float | None = None
        if raw := env.get("MLFLOW_HTTP_REQUEST_TIMEOUT"):
            try:
                timeout = float(int(raw))
            except ValueError as err:
                raise TrackingError(
                    f"MLFLOW_HTTP_REQUEST_TIMEOUT={raw!r} is not a number of seconds — set it to an integer"
                ) from err
        return cls(
            username=env.get("MLFLOW_TRACKING_USERNAME") or file_user,
            password=env.get("MLFLOW_TRACKING_PASSWORD") or file_password,
            token=env.get("MLFLOW_TRACKING_TOKEN") or None,
            insecure_tls=insecure,
            server_cert_path=server_cert,
            client_cert_path=env.get("MLFLOW_TRACKING_CLIENT_CERT_PATH") or None,
            timeout=timeout,
        )

    def headers(self) -> dict[str, str]:
        """The ``Authorization`` header, chosen as ``http_request`` does: Basic when username and password, else Bearer."""
        if self.username and self.password:
            return {"Authorization": "Basic " + base64.standard_b64encode(f"{self.username}:{self.password}".encode()).decode()}
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}
        return {}

    def tls(self) -> ssl.SSLContext | bool:
        """httpx's ``verify`` for an https server: a context when a CA bundle, a client certificate or no check is asked for."""
        if not (self.insecure_tls or self.server_cert_path or self.client_cert_path):
            return True  # httpx's defaults (certifi, SSL_CERT_FILE), as requests' for MLflow
        try:
            ctx = ssl.create_default_context(cafile=self.server_cert_path or certifi.where())
        except (OSError, ssl.SSLError) as err:
            raise TrackingError(
                f"cannot read the CA bundle MLFLOW_TRACKING_SERVER_CERT_PATH={self.server_cert_path} ({err}) — point it at a PEM file"
            ) from err
        if self.insecure_tls:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.client_cert_path:
            try:
                ctx.load_cert_chain(self.client_cert_path)
            except (OSError, ssl.SSLError) as err:
                raise TrackingError(
                    f"cannot load the client certificate MLFLOW_TRACKING_CLIENT_CERT_PATH={self.client_cert_path} ({err}) — "
                    "point it at a PEM file holding the certificate and its key"
                ) from err
        return ctx

    def login_hint(self) -> str:
        """What to do about an HTTP 401, given what was sent."""
        if self.username and self.password:
            return "the server refused MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD — check them"
        if self.token:
            return "the server refused MLFLOW_TRACKING_TOKEN — check it, or set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
        half = "MLFLOW_TRACKING_USERNAME" if self.username else "MLFLOW_TRACKING_PASSWORD" if self.password else None
        also = f" (only {half} is set)" if half else ""
        return f"set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) in the environment{also}"


def _credentials_file(path: Path) -> tuple[str | None, str | None]:
    """``[mlflow]`` ``mlflow_tracking_username``/``mlflow_tracking_password`` of MLflow's credentials file."""
    if not path.is_file():
        return None, None
    config = configparser.ConfigParser()
    try:
        config.read(path)
    except configparser.Error as err:
        raise TrackingError(f"cannot read MLflow's credentials file {path}: {type(err).__name__} — fix or remove it") from err
    if "mlflow" not in config:
        return None, None
    section = config["mlflow"]
    return section.get("mlflow_tracking_username"), section.get("mlflow_tracking_password")


def missing(err: TrackingError) -> bool:
    """True when MLflow answered that the named thing does not exist."""
    return err.status == 404 or err.code in _MISSING_CODES


class MlflowRest:
    """MLflow REST calls used by scanflow-argo (experiments, runs, batches, registry, proxied artifacts)."""

    def __init__(
        self, uri: str, timeout: float = 10.0, environ: Mapping[str, str] | None = None, credentials: Credentials | None = None
    ) -> None:
        if not uri.startswith(("http://", "https://")):
            raise TrackingError(
                f"tracking URI {uri!r} is not an http(s) MLflow server — set MLFLOW_TRACKING_URI to http://HOST:PORT"
            )
        self.uri = uri.rstrip("/")
        self.credentials = credentials or Credentials.from_env(environ)
        self.timeout = self.credentials.timeout or timeout
        import httpx  # here, not at the top: an untracked step never pays for it

        self._httpx = httpx
        # Plain http needs no TLS context, and building one (loading CA certificates) costs ~130 ms
        # in every step process; https gets the verification the credentials ask for.
        verify = self.credentials.tls() if self.uri.startswith("https://") else False
        self._http = httpx.Client(base_url=self.uri, timeout=self.timeout, headers=self.credentials.headers(), verify=verify)

    def close(self) -> None:
        self._http.close()

    # -- plumbing -----------------------------------------------------------------------------

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; a server that does not answer becomes a ``TrackingError`` with the likely cause."""
        try:
            return self._http.request(method, path, **kwargs)
        except self._httpx.TimeoutException as err:
            raise TrackingError(
                f"MLflow at {self.uri} did not answer {method} {path} within {self.timeout:g} s ({type(err).__name__}) — "
                "is it overloaded? set MLFLOW_HTTP_REQUEST_TIMEOUT to wait longer",
                unreachable=True,
            ) from err
        except self._httpx.HTTPError as err:
            if _tls_failure(err):
                raise TrackingError(
                    f"MLflow at {self.uri}: the TLS handshake failed ({_cause(err)}) — set MLFLOW_TRACKING_SERVER_CERT_PATH "
                    "to the CA bundle that signed its certificate (MLFLOW_TRACKING_INSECURE_TLS=true skips the check, for testing only)",
                    unreachable=True,
                ) from err
            raise unreachable(self.uri, err) from err

    def _refused(self, method: str, path: str, resp: httpx.Response) -> TrackingError:
        code, message = _error_of(resp)
        if resp.status_code == 401:
            text = f"MLflow at {self.uri} requires a login for {method} {path} (HTTP 401) — {self.credentials.login_hint()}"
        elif resp.status_code == 403:
            who = (
                f"user {self.credentials.username!r}" if self.credentials.username and self.credentials.password else "this login"
            )
            text = (
                f"MLflow at {self.uri} refused {method} {path} to {who} (HTTP 403 {code}: {message}) — "
                "grant it a permission on the experiment or model (READ, EDIT or MANAGE), or log in as another user"
            )
        else:
            text = f"MLflow at {self.uri} refused {method} {path}: HTTP {resp.status_code} {code}: {message}"
        return TrackingError(text, status=resp.status_code, code=code)

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        resp = self._send(method, path, **kwargs)
        if resp.status_code >= 400:
            raise self._refused(method, path, resp)
        try:
            return dict(resp.json()) if resp.content else {}
        except ValueError as err:
            raise TrackingError(f"MLflow at {self.uri} answered {path} with something that is not JSON") from err

    def health(self) -> bool:
        try:
            return self._http.get("/health").status_code == 200
        except self._httpx.HTTPError:
            return False

    # -- experiments ---------------------------------------------------------------------------

    def experiment_id(self, name: str, create: bool = True) -> str | None:
        """The id of experiment ``name``, created when missing (and ``create``)."""
        try:
            got = self._call("GET", "/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": name})
            return str(got["experiment"]["experiment_id"])
        except TrackingError as err:
            if err.code != "RESOURCE_DOES_NOT_EXIST":
                raise
        if not create:
            return None
        try:
            return str(self._call("POST", "/api/2.0/mlflow/experiments/create", json={"name": name})["experiment_id"])
        except TrackingError as err:
            if err.code != "RESOURCE_ALREADY_EXISTS":  # another process won the race
                raise
            return self.experiment_id(name, create=False)

    # -- registry -----------------------------------------------------------------------------------

    def model_version_by_alias(self, name: str, alias: str) -> dict[str, Any] | None:
        """The registered version ``name@alias`` points at (``version``, ``run_id``, …), None when there is none."""
        try:
            got = self._call("GET", "/api/2.0/mlflow/registered-models/alias", params={"name": name, "alias": alias})
        except TrackingError as err:
            if getattr(err, "code", "") in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                return None
            raise
        return dict(got.get("model_version") or {}) or None

    # -- runs ---------------------------------------------------------------------------------------

    def create_run(
        self, experiment_id: str, name: str, tags: Mapping[str, str] | None = None, start_ms: int | None = None
    ) -> dict[str, Any]:
        """Create a run; returns its ``info`` (``run_id``, ``artifact_uri``, …)."""
        body = {
            "experiment_id": experiment_id,
            "run_name": name,
            "start_time": start_ms if start_ms is not None else now_ms(),
            "tags": [{"key": k[:MAX_KEY], "value": _cut(str(v))} for k, v in (tags or {}).items()],
        }
        return dict(self._call("POST", "/api/2.0/mlflow/runs/create", json=body)["run"]["info"])

    def get_run(self, run_id: str) -> dict[str, Any]:
        return dict(self._call("GET", "/api/2.0/mlflow/runs/get", params={"run_id": run_id})["run"])

    def search_runs(
        self, experiment_ids: list[str], filter_string: str, max_results: int = 100, order_by: list[str] | None = None
    ) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"experiment_ids": experiment_ids, "filter": filter_string, "max_results": max_results}
        if order_by:
            body["order_by"] = order_by
        return list(self._call("POST", "/api/2.0/mlflow/runs/search", json=body).get("runs", []))

    def log_batch(
        self,
        run_id: str,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
        step: int = 0,
        timestamp_ms: int | None = None,
    ) -> None:
        ts = now_ms() if timestamp_ms is None else timestamp_ms
        p = [{"key": k[:MAX_KEY], "value": _cut(str(v))} for k, v in (params or {}).items()]
        m = [{"key": k[:MAX_KEY], "value": float(v), "timestamp": ts, "step": step} for k, v in (metrics or {}).items()]
        t = [{"key": k[:MAX_KEY], "value": _cut(str(v))} for k, v in (tags or {}).items()]
        # MLflow caps one batch at 100 params, 100 tags and 1000 metrics: send as many batches as needed.
        while p or m or t:
            body = {"run_id": run_id, "params": p[:100], "metrics": m[:1000], "tags": t[:100]}
            self._call("POST", "/api/2.0/mlflow/runs/log-batch", json=body)
            p, m, t = p[100:], m[1000:], t[100:]

    def end_run(self, run_id: str, status: str, end_ms: int | None = None) -> None:
        body = {"run_id": run_id, "status": status, "end_time": end_ms if end_ms is not None else now_ms()}
        self._call("POST", "/api/2.0/mlflow/runs/update", json=body)

    def delete_run(self, run_id: str) -> None:
        self._call("POST", "/api/2.0/mlflow/runs/delete", json={"run_id": run_id})

    # -- artifacts (through the server's proxy) -------------------------------------------------------

    def upload_artifact(self, artifact_uri: str, rel_path: str, source: Path) -> None:
        """Upload ``source`` as ``rel_path`` under a run's ``artifact_uri`` (``mlflow-artifacts:/…``)."""
        parsed = urlparse(artifact_uri)
        if parsed.scheme != "mlflow-artifacts":
            raise TrackingError(
                f"run artifacts live at {artifact_uri!r}, which this client cannot write — "
                "start the MLflow server with --serve-artifacts (scanflow-argo mlflow up does)"
            )
        key = f"{parsed.path.strip('/')}/{rel_path.strip('/')}"
        with open(source, "rb") as fh:
            self._call("PUT", f"/api/2.0/mlflow-artifacts/artifacts/{quote(key)}", content=fh.read())

    def list_artifacts(self, artifact_uri: str, rel_path: str = "") -> list[dict[str, Any]]:
        parsed = urlparse(artifact_uri)
        key = f"{parsed.path.strip('/')}/{rel_path.strip('/')}".rstrip("/")
        return list(self._call("GET", "/api/2.0/mlflow-artifacts/artifacts", params={"path": key}).get("files", []))

    def download_artifact(self, artifact_uri: str, rel_path: str) -> bytes:
        parsed = urlparse(artifact_uri)
        key = f"{parsed.path.strip('/')}/{rel_path.strip('/')}"
        resp = self._send("GET", f"/api/2.0/mlflow-artifacts/artifacts/{quote(key)}")
        if resp.status_code in (401, 403):
            raise self._refused("GET", f"/api/2.0/mlflow-artifacts/artifacts/{key}", resp)
        if resp.status_code >= 400:
            raise TrackingError(f"MLflow at {self.uri} has no artifact {key!r}: HTTP {resp.status_code}", status=resp.status_code)
        return resp.content

    # -- model registry ----------------------------------------------------------------------------------

    def get_alias(self, name: str, alias: str) -> dict[str, Any] | None:
        """The model version ``name@alias`` points at (REST ``model_version``), or None when there is none."""
        try:
            got = self._call("GET", "/api/2.0/mlflow/registered-models/alias", params={"name": name, "alias": alias})
        except TrackingError as err:
            if missing(err):
                return None
            raise
        return dict(got.get("model_version") or {}) or None

    def set_alias(self, name: str, alias: str, version: int | str) -> None:
        """Point ``name@alias`` at ``version``."""
        body = {"name": name, "alias": alias, "version": str(version)}
        self._call("POST", "/api/2.0/mlflow/registered-models/alias", json=body)

    def get_model_version(self, name: str, version: int | str) -> dict[str, Any]:
        """One registered version (REST ``model_version``); ``TrackingError`` (``missing``) when it does not exist."""
        got = self._call("GET", "/api/2.0/mlflow/model-versions/get", params={"name": name, "version": str(version)})
        return dict(got["model_version"])

    def download_uri(self, name: str, version: int | str) -> str:
        """Where the files of a registered version live (``mlflow-artifacts:/…``, ``s3://…``)."""
        params = {"name": name, "version": str(version)}
        return str(self._call("GET", "/api/2.0/mlflow/model-versions/get-download-uri", params=params)["artifact_uri"])

    def create_registered_model(self, name: str) -> None:
        """Register model ``name``; on a ``basic-auth`` server its creator gets MANAGE on it."""
        self._call("POST", "/api/2.0/mlflow/registered-models/create", json={"name": name})

    def create_model_version(self, name: str, source: str, run_id: str | None = None) -> str:
        """Register a new version of ``name`` from ``source``; its version number. 403 when this user may not EDIT ``name``."""
        body = {"name": name, "source": source, **({"run_id": run_id} if run_id else {})}
        return str(self._call("POST", "/api/2.0/mlflow/model-versions/create", json=body)["model_version"]["version"])

    # -- users and permissions (MLflow's basic-auth app: mlflow/server/auth/__init__.py) ---------------

    def create_user(self, username: str, password: str) -> None:
        """Create a login (an admin's call; ``create_user`` in mlflow/server/auth/__init__.py)."""
        self._call("POST", "/api/2.0/mlflow/users/create", json={"username": username, "password": password})

    def grant_permission(self, username: str, resource_type: str, resource_id: str, permission: str) -> None:
        """Grant ``username`` READ/EDIT/MANAGE on one ``experiment`` or ``registered_model``
        (``grant_user_permission`` in mlflow/server/auth/__init__.py; the caller needs MANAGE on it)."""
        body = {"username": username, "resource_type": resource_type, "resource_id": resource_id, "permission": permission}
        self._call("POST", "/api/3.0/mlflow/users/permissions/grant", json=body)


def unreachable(uri: str, err: BaseException) -> TrackingError:
    """The error for a server that did not answer; ``.unreachable`` is True on it."""
    return TrackingError(
        f"MLflow at {uri} is unreachable ({type(err).__name__}: {err}) — start the local server with "
        "`scanflow-argo mlflow up` or set MLFLOW_TRACKING_URI to a running one",
        unreachable=True,
    )


def _tls_failure(err: BaseException) -> bool:
    """True when ``err`` (or what caused it) is a failed TLS handshake or certificate check."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, ssl.SSLError) or "CERTIFICATE_VERIFY_FAILED" in str(seen) or "SSL" in type(seen).__name__:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _cause(err: BaseException) -> str:
    """The innermost reason of a chained error, for messages (``certificate verify failed: …``)."""
    while (inner := err.__cause__ or err.__context__) is not None:
        err = inner
    return f"{type(err).__name__}: {str(err)[:200]}"


def number(value: Any) -> float | None:
    """``value`` as a finite float when it is one (outputs are strings), else None."""
    if isinstance(value, bool):
        return None
    try:
        f = float(str(value).strip())
    except ValueError:
        return None
    return f if math.isfinite(f) else None


def filter_value(value: str) -> str:
    """Quote ``value`` for an MLflow search filter; names with quotes are refused, not escaped."""
    if "'" in value or '"' in value or "\\" in value:
        raise TrackingError(f"cannot search MLflow for {value!r}: quotes and backslashes are not allowed in names")
    return f"'{value}'"


def _cut(value: str) -> str:
    return value if len(value) <= MAX_PARAM_VALUE else value[: MAX_PARAM_VALUE - 1] + "…"


def _error_of(resp: httpx.Response) -> tuple[str, str]:
    try:
        body = resp.json()
        return str(body.get("error_code", "")), str(body.get("message", resp.text[:300]))
    except ValueError:
        return "", resp.text[:300]
