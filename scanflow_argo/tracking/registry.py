"""The MLflow model registry: register model folders, aliases ``champion``/``challenger``, promotion, download.

A model folder (``model.pt``, ``drift.npz``, ``meta.json``) is logged as an MLflow 3 *logged model*
of the run that trained it (with an ``MLmodel`` file: ``scanflow`` + ``python_function`` flavors, see
``pyfunc.py``) and registered as a new version of ``name``. Promotion uses aliases only — never the
deprecated stages. Evaluation metrics are stored on the version as ``scanflow.metric.<name>`` tags
(and on the run), so a comparison needs no access to the training run.

Every function takes an optional ``tracking_uri``; without it the URI comes from
``MLFLOW_TRACKING_URI``, then the settings (``resolve_uri``). mlflow is imported inside the functions.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import TrackingError
from ..settings import Settings
from ._rest import MlflowRest, number
from .pyfunc import REQUIRED_FILES

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "ModelVersion",
    "Promotion",
    "download",
    "get_alias",
    "get_version",
    "metric_of",
    "promote_if_better",
    "register_model",
    "set_alias",
]

CHAMPION = "champion"
CHALLENGER = "challenger"
METRIC_TAG = "scanflow.metric."


@dataclass(frozen=True)
class ModelVersion:
    """One registered version; ``uri`` is ``models:/<name>/<version>``."""

    name: str
    version: int
    uri: str
    run_id: str | None


@dataclass(frozen=True)
class Promotion:
    """Outcome of ``promote_if_better``: ``champion`` is the champion after the decision."""

    promoted: bool
    champion: ModelVersion
    challenger: ModelVersion
    values: dict[str, float | None]
    """The compared metric: ``{"champion": value of the previous champion, "challenger": value}``."""


# -- plumbing ------------------------------------------------------------------------------------


def _uri(tracking_uri: str | None) -> str:
    from .server import resolve_uri

    return tracking_uri.rstrip("/") if tracking_uri else resolve_uri(Settings.from_env())


def _reachable(uri: str) -> None:
    """Fail fast and clearly: MLflow's own client retries an unreachable server for minutes."""
    if uri.startswith(("http://", "https://")):
        rest = MlflowRest(uri, timeout=5)
        try:
            if not rest.health():
                raise TrackingError(
                    f"MLflow at {uri} is unreachable — start the local server with `scanflow-argo mlflow up` "
                    "or set MLFLOW_TRACKING_URI to a running one"
                )
        finally:
            rest.close()


@contextlib.contextmanager
def _mlflow(tracking_uri: str | None) -> Iterator[Any]:
    """``(mlflow, client)`` bound to the tracking URI; MLflow errors become ``TrackingError``."""
    uri = _uri(tracking_uri)
    _reachable(uri)
    import mlflow
    from mlflow.exceptions import MlflowException

    # Model.log reads the process-wide URI: set it for the call, then put the caller's state back
    # (the module global and the MLFLOW_TRACKING_URI variable, which set_tracking_uri also writes).
    from mlflow.tracking._tracking_service import utils as tracking_utils

    old_global, old_env = getattr(tracking_utils, "_tracking_uri", None), os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield mlflow, mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    except MlflowException as err:
        raise TrackingError(f"MLflow at {uri} refused the request: {err.message}") from err
    finally:
        mlflow.set_tracking_uri(old_global)
        if old_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old_env


def _version(mv: Any) -> ModelVersion:
    return ModelVersion(name=mv.name, version=int(mv.version), uri=f"models:/{mv.name}/{mv.version}", run_id=mv.run_id or None)


# -- register ------------------------------------------------------------------------------------


def register_model(
    model_dir: str | Path,
    name: str,
    run_id: str | None = None,
    metrics: Mapping[str, float] | None = None,
    *,
    tracking_uri: str | None = None,
) -> ModelVersion:
    """Log ``model_dir`` as a model of ``run_id`` (default: the active/step run, else a new one) and register it.

    ``metrics`` (default: ``meta.json``'s ``metrics``) are logged on the run and tagged on the version.
    """
    folder = Path(model_dir)
    missing = [f for f in REQUIRED_FILES if not (folder / f).is_file()]
    if missing:
        raise TrackingError(
            f"cannot register {folder} as {name!r}: missing {', '.join(missing)} — a model folder holds model.pt, drift.npz and meta.json"
        )
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except ValueError as err:
        raise TrackingError(f"cannot register {folder}: meta.json is not valid JSON ({err})") from err
    values = {k: float(v) for k, v in {**(meta.get("metrics") or {}), **(metrics or {})}.items() if number(v) is not None}
    from . import pyfunc

    with _mlflow(tracking_uri) as (mlflow, client):
        from mlflow.models import Model

        own_run = None
        run_id = run_id or _current_run_id(mlflow)
        if run_id is None:
            experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME") or Settings.from_env().tracking.experiment
            exp = client.get_experiment_by_name(experiment)
            exp_id = exp.experiment_id if exp else client.create_experiment(experiment)
            own_run = client.create_run(exp_id, run_name=f"register-{name}", tags={"scanflow.role": "registration"})
            run_id = own_run.info.run_id
        if values:
            from mlflow.entities import Metric

            stamp = int(time.time() * 1000)
            client.log_batch(run_id, metrics=[Metric(k, v, stamp, 0) for k, v in values.items()])
        # Create the logged model in the run's experiment (Model.log alone would use the process's
        # active experiment, so ``runs:/<run>/model`` could not find it).
        logged = client.create_logged_model(
            experiment_id=client.get_run(run_id).info.experiment_id, name="model", source_run_id=run_id
        )
        info = Model.log(
            artifact_path=None,
            name="model",
            model_id=logged.model_id,
            flavor=pyfunc,
            registered_model_name=name,
            run_id=run_id,
            model_dir=str(folder),
            await_registration_for=30,
        )
        if own_run is not None:
            client.set_terminated(run_id, "FINISHED")
        version = str(info.registered_model_version)
        for key, value in values.items():
            client.set_model_version_tag(name, version, f"{METRIC_TAG}{key}", str(value))
        return _version(client.get_model_version(name, version))


def _current_run_id(mlflow: Any) -> str | None:
    active = mlflow.active_run()
    if active is not None:
        return str(active.info.run_id)
    return os.environ.get("MLFLOW_RUN_ID") or None


# -- aliases ---------------------------------------------------------------------------------------


def set_alias(name: str, alias: str, version: int | str, *, tracking_uri: str | None = None) -> None:
    """Point ``name@alias`` at ``version``."""
    with _mlflow(tracking_uri) as (_, client):
        client.set_registered_model_alias(name, alias, str(version))


def get_alias(name: str, alias: str, *, tracking_uri: str | None = None) -> ModelVersion | None:
    """The version ``name@alias`` points at, or None when the alias (or the model) does not exist."""
    with _mlflow(tracking_uri) as (_, client):
        from mlflow.exceptions import MlflowException

        try:
            return _version(client.get_model_version_by_alias(name, alias))
        except MlflowException as err:
            if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                return None
            raise


def get_version(name: str, version: int | str, *, tracking_uri: str | None = None) -> ModelVersion:
    """A registered version; TrackingError when it does not exist."""
    with _mlflow(tracking_uri) as (_, client):
        return _version(client.get_model_version(name, str(version)))


def metric_of(name: str, version: int | str, metric: str, *, tracking_uri: str | None = None) -> float | None:
    """``metric`` of a version: its ``scanflow.metric.*`` tag, else the training run's metric."""
    with _mlflow(tracking_uri) as (_, client):
        mv = client.get_model_version(name, str(version))
        tagged = number((mv.tags or {}).get(f"{METRIC_TAG}{metric}"))
        if tagged is not None:
            return tagged
        if mv.run_id:
            value = client.get_run(mv.run_id).data.metrics.get(metric)
            return None if value is None else float(value)
        return None


def promote_if_better(
    name: str,
    challenger_version: int | str,
    metric: str,
    higher_is_better: bool = True,
    *,
    tracking_uri: str | None = None,
) -> Promotion:
    """Alias ``challenger_version`` as ``challenger``; make it ``champion`` only if strictly better on ``metric``.

    The first version (no champion yet) becomes champion. A challenger without the metric is an error.
    """
    challenger = get_version(name, challenger_version, tracking_uri=tracking_uri)
    champion = get_alias(name, CHAMPION, tracking_uri=tracking_uri)
    new_value = metric_of(name, challenger.version, metric, tracking_uri=tracking_uri)
    if champion is None:
        set_alias(name, CHAMPION, challenger.version, tracking_uri=tracking_uri)
        return Promotion(True, challenger, challenger, {"champion": None, "challenger": new_value})
    if champion.version == challenger.version:
        return Promotion(False, champion, challenger, {"champion": new_value, "challenger": new_value})
    if new_value is None:
        raise TrackingError(
            f"cannot compare {name} version {challenger.version} with the champion: it has no metric {metric!r} — pass metrics= to register_model"
        )
    old_value = metric_of(name, champion.version, metric, tracking_uri=tracking_uri)
    if old_value is None:
        raise TrackingError(
            f"cannot compare with the champion {name} version {champion.version}: it has no metric {metric!r} — set the tag {METRIC_TAG}{metric} on it"
        )
    set_alias(name, CHALLENGER, challenger.version, tracking_uri=tracking_uri)
    better = new_value > old_value if higher_is_better else new_value < old_value
    if better:
        set_alias(name, CHAMPION, challenger.version, tracking_uri=tracking_uri)
    return Promotion(better, challenger if better else champion, challenger, {"champion": old_value, "challenger": new_value})


# -- download ----------------------------------------------------------------------------------------


def download(model_uri: str, dst: str | Path, *, tracking_uri: str | None = None) -> Path:
    """Download ``models:/name/3``, ``models:/name@champion`` or ``runs:/…`` into ``dst``; returns the model folder."""
    if not model_uri.startswith(("models:/", "runs:/")):
        raise TrackingError(f"cannot download {model_uri!r}: use models:/NAME/VERSION, models:/NAME@ALIAS or runs:/RUN_ID/PATH")
    target = Path(dst)
    target.mkdir(parents=True, exist_ok=True)
    uri = _uri(tracking_uri)
    with _mlflow(uri) as (mlflow, _):
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(target), tracking_uri=uri))
    if not (local / "model.pt").is_file():
        raise TrackingError(f"{model_uri} downloaded to {local} holds no model.pt — it is not a scanflow model folder")
    return local
