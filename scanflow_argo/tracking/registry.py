"""The MLflow model registry: register model folders, aliases ``champion``/``challenger``, promotion, download.

A model folder (``model.pt``, ``drift.npz``, ``meta.json``) is logged as an MLflow 3 *logged model*
of the run that trained it (with an ``MLmodel`` file: ``scanflow`` + ``python_function`` flavors, see
``pyfunc.py``) and registered as a new version of ``name``. Promotion uses aliases only — never the
deprecated stages. Evaluation metrics are stored on the version as ``scanflow.metric.<name>`` tags
(and on the run), so a comparison needs no access to the training run.

Every function takes an optional ``tracking_uri``; without it the URI comes from
``MLFLOW_TRACKING_URI``, then the settings (``resolve_uri``). Aliases, versions and metrics go through
the project's MLflow client (``_rest.MlflowRest``: REST, no ``import mlflow``); registering and
downloading a model need MLflow's model format and artifact repositories, so those two import mlflow
inside the functions (seconds) and use its ``MlflowClient``, which reads the same credentials.

Thread safety: nothing here touches process-wide MLflow state (``mlflow.set_tracking_uri``, the
``MLFLOW_TRACKING_URI`` variable, the active experiment). Every call goes through an ``MlflowClient``
bound to the URI, and artifact repositories get the URI explicitly — so threads may use different
servers at once (the agent runtime calls the registry from worker threads). MLflow's own helpers that
read the global URI (``Model.log``, ``mlflow.register_model``, ``download_artifacts`` on a
``models:/`` URI, whose models repository asks ``mlflow.get_registry_uri()``) are therefore not used;
the few steps they do are done here with the client.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import TrackingError
from ..settings import Settings
from . import pyfunc
from ._rest import MlflowRest, number
from .pyfunc import REQUIRED_FILES
from .server import resolve_uri

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
def _client(tracking_uri: str | None) -> Iterator[tuple[str, Any]]:
    """``(uri, MlflowClient)`` bound to the tracking URI (tracking and registry); MLflow errors become ``TrackingError``."""
    uri = _uri(tracking_uri)
    _reachable(uri)
    import mlflow  # mlflow: seconds to import
    from mlflow.exceptions import MlflowException  # mlflow: seconds to import

    try:
        yield uri, mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    except MlflowException as err:
        raise TrackingError(f"MLflow at {uri} refused the request: {err.message}") from err


@contextlib.contextmanager
def _rest(tracking_uri: str | None) -> Iterator[MlflowRest]:
    """The project's MLflow client for the tracking URI, closed after use."""
    rest = MlflowRest(_uri(tracking_uri))
    try:
        yield rest
    finally:
        rest.close()


def _version(mv: Any) -> ModelVersion:
    return ModelVersion(name=mv.name, version=int(mv.version), uri=f"models:/{mv.name}/{mv.version}", run_id=mv.run_id or None)


def _rest_version(mv: Mapping[str, Any]) -> ModelVersion:
    """A ``ModelVersion`` from MLflow's REST ``model_version`` object."""
    name, version = str(mv["name"]), int(mv["version"])
    return ModelVersion(name=name, version=version, uri=f"models:/{name}/{version}", run_id=mv.get("run_id") or None)


# -- register ------------------------------------------------------------------------------------


def register_model(
    model_dir: str | os.PathLike[str],
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
    with _client(tracking_uri) as (_, client):
        own_run = False
        run_id = run_id or _current_run_id()
        if run_id is None:
            run_id, own_run = _registration_run(client, name), True
        model_id = _log_model(client, run_id, folder)
        if values:
            from mlflow.entities import Metric  # mlflow: seconds to import

            # Metrics of the run, linked to the logged model (what Model.log does after the fact).
            stamp = int(time.time() * 1000)
            client.log_batch(run_id, metrics=[Metric(k, v, stamp, 0, model_id=model_id) for k, v in values.items()])
        mv = _new_version(client, name, model_id, run_id, {f"{METRIC_TAG}{k}": str(v) for k, v in values.items()})
        if own_run:
            client.set_terminated(run_id, "FINISHED")
        return _version(mv)


def _registration_run(client: Any, name: str) -> str:
    """A run of its own for a model registered outside any run (experiment from the environment/settings)."""
    experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME") or Settings.from_env().tracking.experiment
    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp else _create_experiment(client, experiment)
    run = client.create_run(exp_id, run_name=f"register-{name}", tags={"scanflow.role": "registration"})
    return str(run.info.run_id)


def _create_experiment(client: Any, experiment: str) -> str:
    from mlflow.exceptions import MlflowException  # mlflow: seconds to import

    try:
        return str(client.create_experiment(experiment))
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":  # another thread or process won the race
            raise
        return str(client.get_experiment_by_name(experiment).experiment_id)


def _log_model(client: Any, run_id: str, folder: Path) -> str:
    """Log ``folder`` as an MLflow 3 logged model of ``run_id`` (in the run's experiment); returns its id.

    The steps of ``Model.log`` done through ``client``: create the logged model, link it to the
    run's outputs, lay it out with the ``scanflow`` flavor, upload, and mark it READY (FAILED on error).
    """
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus  # mlflow: seconds to import
    from mlflow.models import Model  # mlflow: seconds to import

    experiment_id = client.get_run(run_id).info.experiment_id
    logged = client.create_logged_model(experiment_id=experiment_id, name="model", source_run_id=run_id)
    try:
        client.log_outputs(run_id, models=[LoggedModelOutput(logged.model_id, step=0)])
        with tempfile.TemporaryDirectory(prefix="scanflow-model-") as tmp:
            local = Path(tmp) / "model"
            mlmodel = Model(
                artifact_path=logged.artifact_location, model_uuid=logged.model_id, run_id=run_id, model_id=logged.model_id
            )
            pyfunc.save_model(str(local), mlmodel, folder)
            client.log_model_artifacts(logged.model_id, str(local))
    except BaseException:
        with contextlib.suppress(Exception):  # keep the original error; the status is best effort
            client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        raise
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    return str(logged.model_id)


def _new_version(client: Any, name: str, model_id: str, run_id: str, tags: Mapping[str, str]) -> Any:
    """Register logged model ``model_id`` as a new version of ``name`` (created when missing)."""
    from mlflow.exceptions import MlflowException  # mlflow: seconds to import

    try:
        client.create_registered_model(name)
    except MlflowException as err:
        if err.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    mv = client.create_model_version(
        name, source=f"models:/{model_id}", run_id=run_id, tags=dict(tags), await_creation_for=30, model_id=model_id
    )
    # The logged model lists its versions (as mlflow.register_model records it for the UI).
    client.set_logged_model_tags(model_id, {"mlflow.modelVersions": json.dumps([{"name": mv.name, "version": mv.version}])})
    return mv


def _current_run_id() -> str | None:
    """The calling thread's active run (MLflow keeps that stack per thread), else the step's ``MLFLOW_RUN_ID``."""
    import mlflow  # mlflow: seconds to import

    active = mlflow.active_run()
    if active is not None:
        return str(active.info.run_id)
    return os.environ.get("MLFLOW_RUN_ID") or None


# -- aliases ---------------------------------------------------------------------------------------


def set_alias(name: str, alias: str, version: int | str, *, tracking_uri: str | None = None) -> None:
    """Point ``name@alias`` at ``version``."""
    with _rest(tracking_uri) as rest:
        rest.set_alias(name, alias, version)


def get_alias(name: str, alias: str, *, tracking_uri: str | None = None) -> ModelVersion | None:
    """The version ``name@alias`` points at, or None when the alias (or the model) does not exist."""
    with _rest(tracking_uri) as rest:
        found = rest.get_alias(name, alias)
    return _rest_version(found) if found else None


def get_version(name: str, version: int | str, *, tracking_uri: str | None = None) -> ModelVersion:
    """A registered version; TrackingError when it does not exist."""
    with _rest(tracking_uri) as rest:
        return _rest_version(rest.get_model_version(name, version))


def metric_of(name: str, version: int | str, metric: str, *, tracking_uri: str | None = None) -> float | None:
    """``metric`` of a version: its ``scanflow.metric.*`` tag, else the training run's metric."""
    with _rest(tracking_uri) as rest:
        mv = rest.get_model_version(name, version)
        tags = {t["key"]: t.get("value") for t in mv.get("tags") or []}
        tagged = number(tags.get(f"{METRIC_TAG}{metric}"))
        if tagged is not None:
            return tagged
        if mv.get("run_id"):
            metrics = {m["key"]: m.get("value") for m in rest.get_run(mv["run_id"]).get("data", {}).get("metrics", [])}
            value = metrics.get(metric)
            return None if value is None else float(value)
        return None


def promote_if_better(
    name: str,
    challenger_version: int | str,
    metric: str,
    higher_is_better: bool = True,
    *,
    tracking_uri: str | None = None,
    winner_alias: str = CHAMPION,
) -> Promotion:
    """Alias ``challenger_version`` as ``challenger``; give it ``winner_alias`` (``champion``: promote it) only if
    strictly better on ``metric`` than the champion — another alias names a candidate whose roll-out moves
    ``champion`` later (``promoted`` then means "won", and ``champion`` stays the current one).

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
        set_alias(name, winner_alias, challenger.version, tracking_uri=tracking_uri)
    now_champion = challenger if better and winner_alias == CHAMPION else champion
    return Promotion(better, now_champion, challenger, {"champion": old_value, "challenger": new_value})


# -- download ----------------------------------------------------------------------------------------


def download(model_uri: str, dst: str | Path, *, tracking_uri: str | None = None) -> Path:
    """Download ``models:/name/3``, ``models:/name@champion`` or ``runs:/…`` into ``dst``; returns the model folder."""
    if not model_uri.startswith(("models:/", "runs:/")):
        raise TrackingError(f"cannot download {model_uri!r}: use models:/NAME/VERSION, models:/NAME@ALIAS or runs:/RUN_ID/PATH")
    target = Path(dst)
    target.mkdir(parents=True, exist_ok=True)
    with _client(tracking_uri) as (uri, client):
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository  # mlflow: seconds to import

        location = _artifact_location(client, model_uri)
        repo = get_artifact_repository(location, tracking_uri=uri, registry_uri=uri)
        local = Path(repo.download_artifacts("", dst_path=str(target)))
    if not (local / "model.pt").is_file():
        raise TrackingError(f"{model_uri} downloaded to {local} holds no model.pt — it is not a scanflow model folder")
    return local


def _artifact_location(client: Any, model_uri: str) -> str:
    """Where the files of ``models:/…`` or ``runs:/RUN/PATH`` live, resolved through ``client`` only."""
    if model_uri.startswith("models:/"):
        from mlflow.store.artifact.utils.models import get_model_name_and_version  # mlflow: seconds to import

        found = get_model_name_and_version(client, model_uri)  # an alias is resolved through client
        if len(found) == 1:
            return str(client.get_logged_model(found[0]).artifact_location)
        return str(client.get_model_version_download_uri(*found))
    from mlflow.store.artifact.runs_artifact_repo import RunsArtifactRepository  # mlflow: seconds to import

    run_id, path = RunsArtifactRepository.parse_runs_uri(model_uri)
    run = client.get_run(run_id)
    head, _, rest = (path or "").partition("/")
    # MLflow 3: ``runs:/RUN/model`` names a logged model of the run, not a run artifact folder.
    for output in (run.outputs.model_outputs if run.outputs else None) or []:
        logged = client.get_logged_model(output.model_id)
        if logged.name == head:
            return f"{logged.artifact_location.rstrip('/')}/{rest}".rstrip("/")
    return f"{run.info.artifact_uri.rstrip('/')}/{path or ''}".rstrip("/")
