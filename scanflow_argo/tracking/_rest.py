"""A small client for MLflow's REST API over httpx — no ``import mlflow`` (which costs seconds).

Used by the engine hooks and the step helpers. Credentials come from MLflow's own variables
(``MLFLOW_TRACKING_TOKEN`` or ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD``), never from
code; every failure is a ``TrackingError`` that names the server and how to start a local one.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlparse

from ..errors import TrackingError

if TYPE_CHECKING:
    import httpx

__all__ = ["MAX_PARAM_VALUE", "MlflowRest", "filter_value", "now_ms", "number", "unreachable"]

MAX_PARAM_VALUE = 6000
"""MLflow 3 rejects longer parameter values; longer ones are cut (the end marked with …)."""

MAX_KEY = 250


def now_ms() -> int:
    return int(time.time() * 1000)


class MlflowRest:
    """MLflow REST calls used by scanflow-argo (experiments, runs, batches, proxied artifacts)."""

    def __init__(self, uri: str, timeout: float = 10.0, environ: Mapping[str, str] | None = None) -> None:
        if not uri.startswith(("http://", "https://")):
            raise TrackingError(
                f"tracking URI {uri!r} is not an http(s) MLflow server — set MLFLOW_TRACKING_URI to http://HOST:PORT"
            )
        self.uri = uri.rstrip("/")
        env = os.environ if environ is None else environ
        headers: dict[str, str] = {}
        auth: tuple[str, str] | None = None
        if token := env.get("MLFLOW_TRACKING_TOKEN"):
            headers["Authorization"] = f"Bearer {token}"
        elif (user := env.get("MLFLOW_TRACKING_USERNAME")) and (password := env.get("MLFLOW_TRACKING_PASSWORD")):
            auth = (user, password)
        import httpx  # here, not at the top: an untracked step never pays for it

        self._httpx = httpx
        # Plain http needs no TLS context, and building one (loading CA certificates) costs ~130 ms
        # in every step process; https keeps full verification.
        verify = self.uri.startswith("https://")
        self._http = httpx.Client(base_url=self.uri, timeout=timeout, headers=headers, auth=auth, verify=verify)

    def close(self) -> None:
        self._http.close()

    # -- plumbing -----------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            resp = self._http.request(method, path, **kwargs)
        except self._httpx.HTTPError as err:
            raise unreachable(self.uri, err) from err
        if resp.status_code >= 400:
            code, message = _error_of(resp)
            err = TrackingError(f"MLflow at {self.uri} refused {method} {path}: HTTP {resp.status_code} {code}: {message}")
            err.code = code  # type: ignore[attr-defined]
            err.status = resp.status_code  # type: ignore[attr-defined]
            raise err
        try:
            return resp.json() if resp.content else {}
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
            if getattr(err, "code", "") != "RESOURCE_DOES_NOT_EXIST":
                raise
        if not create:
            return None
        try:
            return str(self._call("POST", "/api/2.0/mlflow/experiments/create", json={"name": name})["experiment_id"])
        except TrackingError as err:
            if getattr(err, "code", "") != "RESOURCE_ALREADY_EXISTS":  # another process won the race
                raise
            return self.experiment_id(name, create=False)

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
    ) -> None:
        ts = now_ms()
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
        try:
            resp = self._http.get(f"/api/2.0/mlflow-artifacts/artifacts/{quote(key)}")
        except self._httpx.HTTPError as err:
            raise unreachable(self.uri, err) from err
        if resp.status_code >= 400:
            raise TrackingError(f"MLflow at {self.uri} has no artifact {key!r}: HTTP {resp.status_code}")
        return resp.content


def unreachable(uri: str, err: BaseException) -> TrackingError:
    """The error for a server that did not answer; ``.unreachable`` is True on it."""
    out = TrackingError(
        f"MLflow at {uri} is unreachable ({type(err).__name__}: {err}) — start the local server with "
        "`scanflow-argo mlflow up` or set MLFLOW_TRACKING_URI to a running one"
    )
    out.unreachable = True  # type: ignore[attr-defined]
    return out


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
