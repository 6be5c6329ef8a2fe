"""Model registry against a real MLflow server: register, aliases, promotion, download round-trip, errors."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import numpy as np
import pytest

from scanflow_argo import _proc
from scanflow_argo.errors import TrackingError
from scanflow_argo.tracking import registry

pytestmark = pytest.mark.slow


def make_model(folder: Path, accuracy: float | None = None) -> Path:
    """A real model folder: a TorchScript MNIST-shaped net, drift statistics, metadata."""
    import torch

    folder.mkdir(parents=True)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10), torch.nn.Softmax(dim=-1))
    torch.jit.script(net).save(str(folder / "model.pt"))
    np.savez(folder / "drift.npz", mean=np.zeros(784), std=np.ones(784))
    meta = {"classes": list(range(10)), "input_shape": [1, 28, 28], "metrics": {} if accuracy is None else {"accuracy": accuracy}}
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def name() -> str:
    return f"mnist-{uuid.uuid4().hex[:8]}"


def test_register_promote_and_download(mlflow_server, tmp_path: Path, name: str) -> None:
    uri = mlflow_server.url
    v1 = registry.register_model(make_model(tmp_path / "m1", accuracy=0.90), name, tracking_uri=uri)
    assert (v1.name, v1.version, v1.uri) == (name, 1, f"models:/{name}/1")
    assert v1.run_id
    first = registry.promote_if_better(name, v1.version, "accuracy", tracking_uri=uri)
    assert first.promoted and first.champion == v1
    assert registry.get_alias(name, "champion", tracking_uri=uri) == v1

    # Better challenger (metrics= overrides meta.json) → promoted.
    v2 = registry.register_model(make_model(tmp_path / "m2", accuracy=0.5), name, metrics={"accuracy": 0.95}, tracking_uri=uri)
    better = registry.promote_if_better(name, v2.version, "accuracy", tracking_uri=uri)
    assert better.promoted
    assert better.values == {"champion": 0.90, "challenger": 0.95}
    assert registry.get_alias(name, "champion", tracking_uri=uri) == v2
    assert registry.get_alias(name, "challenger", tracking_uri=uri) == v2

    # Worse challenger → stays challenger; champion unchanged.
    v3 = registry.register_model(make_model(tmp_path / "m3", accuracy=0.80), name, tracking_uri=uri)
    worse = registry.promote_if_better(name, v3.version, "accuracy", tracking_uri=uri)
    assert not worse.promoted
    assert worse.champion == v2 and worse.challenger == v3
    assert registry.get_alias(name, "champion", tracking_uri=uri) == v2
    assert registry.get_alias(name, "challenger", tracking_uri=uri) == v3

    # Lower is better (e.g. a loss): 0.80 < 0.95 → promoted.
    assert registry.promote_if_better(name, v3.version, "accuracy", higher_is_better=False, tracking_uri=uri).promoted

    # Download round-trip by version, alias and run: the files come back byte for byte.
    for i, model_uri in enumerate([f"models:/{name}/2", f"models:/{name}@challenger", f"runs:/{v2.run_id}/model"]):
        out = registry.download(model_uri, tmp_path / f"dl{i}", tracking_uri=uri)
        src = tmp_path / ("m2" if i != 1 else "m3")
        for f in ("model.pt", "drift.npz", "meta.json"):
            assert digest(out / f) == digest(src / f), (model_uri, f)
        assert (out / "MLmodel").is_file()


def test_pyfunc_loads_the_registered_model(mlflow_server, tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow.pyfunc

    registry.register_model(make_model(tmp_path / "m", accuracy=0.9), name, tracking_uri=mlflow_server.url)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    model = mlflow.pyfunc.load_model(f"models:/{name}/1")
    probs = model.predict(np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32))
    assert probs.shape == (3, 10)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_registered_model_is_linked_to_its_run(mlflow_server, tmp_path: Path, name: str) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_server.url)
    exp = client.create_experiment(f"reg-{uuid.uuid4().hex[:8]}")
    run = client.create_run(exp, run_name="train")
    mv = registry.register_model(
        make_model(tmp_path / "m", accuracy=0.91), name, run_id=run.info.run_id, tracking_uri=mlflow_server.url
    )
    assert mv.run_id == run.info.run_id
    assert client.get_run(run.info.run_id).data.metrics["accuracy"] == pytest.approx(0.91)
    assert client.get_model_version(name, "1").tags["scanflow.metric.accuracy"] == "0.91"


def test_bad_inputs_are_clear_errors(mlflow_server, tmp_path: Path, name: str) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TrackingError, match=r"missing model\.pt, meta\.json"):
        registry.register_model(empty, name, tracking_uri=mlflow_server.url)
    with pytest.raises(TrackingError, match="models:/NAME/VERSION"):
        registry.download("s3://bucket/model", tmp_path / "x", tracking_uri=mlflow_server.url)
    with pytest.raises(TrackingError, match="refused"):
        registry.download(f"models:/{name}/7", tmp_path / "y", tracking_uri=mlflow_server.url)
    assert registry.get_alias(name, "champion", tracking_uri=mlflow_server.url) is None
    v1 = registry.register_model(make_model(tmp_path / "m1"), name, tracking_uri=mlflow_server.url)
    v2 = registry.register_model(make_model(tmp_path / "m2"), name, tracking_uri=mlflow_server.url)
    registry.promote_if_better(name, v1.version, "accuracy", tracking_uri=mlflow_server.url)  # first → champion
    with pytest.raises(TrackingError, match="no metric 'accuracy'"):
        registry.promote_if_better(name, v2.version, "accuracy", tracking_uri=mlflow_server.url)


def test_unreachable_server_says_how_to_start_one(tmp_path: Path) -> None:
    uri = f"http://127.0.0.1:{_proc.free_port()}"
    with pytest.raises(TrackingError, match="scanflow-argo mlflow up") as err:
        registry.register_model(make_model(tmp_path / "m", accuracy=0.9), "any", tracking_uri=uri)
    assert uri in str(err.value)
    with pytest.raises(TrackingError, match="unreachable"):
        registry.download("models:/any/1", tmp_path / "x", tracking_uri=uri)
