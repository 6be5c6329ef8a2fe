"""Model registry against a real MLflow server: register, aliases, promotion, download round-trip, errors."""

from __future__ import annotations

import hashlib
import json
import os
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


def test_threads_on_two_servers_hit_their_own_and_never_touch_the_global_uri(
    mlflow_server, tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Registry calls from many threads at once, half against a second server: each lands on its own.

    The process-wide URI (mlflow's global and ``MLFLOW_TRACKING_URI``) points at a dead address for the
    whole test: a call that fell back to it fails at once, and a watcher thread checks it never changes.
    """
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import mlflow
    from mlflow.tracking import MlflowClient
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    from scanflow_argo.settings import Settings
    from scanflow_argo.tracking.server import MlflowServer

    second = MlflowServer(Settings.from_env(environ={}).with_home(tmp_path / "second-home"), port=_proc.free_port())
    second.start(timeout=90)
    try:
        a, b = mlflow_server.url, second.url
        accuracies = {a: [0.5, 0.7, 0.6], b: [0.9, 0.8, 0.95]}  # distinct per server: a mix-up shows
        folders = {
            uri: [make_model(tmp_path / f"{i}-{j}", acc) for j, acc in enumerate(accs)]
            for i, (uri, accs) in enumerate(accuracies.items())
        }

        dead = f"http://127.0.0.1:{_proc.free_port()}"
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        monkeypatch.setenv("MLFLOW_TRACKING_URI", dead)
        monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
        monkeypatch.setattr(tracking_utils, "_tracking_uri", dead)
        monkeypatch.setattr(registry_utils, "_registry_uri", None)
        setters: list[str] = []
        for module, attr in [
            (mlflow, "set_tracking_uri"),
            (mlflow, "set_registry_uri"),
            (tracking_utils, "set_tracking_uri"),
            (tracking_utils, "_use_tracking_uri"),
            (registry_utils, "set_registry_uri"),
        ]:
            monkeypatch.setattr(module, attr, lambda *args, _attr=attr, **kw: setters.append(_attr))

        changes: list[tuple[object, object, object]] = []
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                seen = (tracking_utils._tracking_uri, registry_utils._registry_uri, os.environ.get("MLFLOW_TRACKING_URI"))
                if seen != (dead, None, dead):
                    changes.append(seen)
                done.wait(0.001)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            with ThreadPoolExecutor(max_workers=6) as pool:
                # 1. Register three models on each server at once (the same model name on both).
                jobs = [(uri, folder, acc) for uri in (a, b) for folder, acc in zip(folders[uri], accuracies[uri], strict=True)]
                registered = list(pool.map(lambda j: registry.register_model(j[1], name, tracking_uri=j[0]), jobs))
                by_version = {(uri, mv.version): (folder, acc) for (uri, folder, acc), mv in zip(jobs, registered, strict=True)}
                assert sorted(by_version) == sorted((uri, v) for uri in (a, b) for v in (1, 2, 3))

                # 2. Read back every version from its server at once: metric, run, files.
                def check(key: tuple[str, int]) -> None:
                    (uri, version), (folder, acc) = key, by_version[key]
                    mv = registry.get_version(name, version, tracking_uri=uri)
                    assert registry.metric_of(name, version, "accuracy", tracking_uri=uri) == pytest.approx(acc)
                    assert MlflowClient(uri).get_run(mv.run_id).data.metrics["accuracy"] == pytest.approx(acc)
                    out = registry.download(mv.uri, tmp_path / "dl" / f"{uri.rsplit(':', 1)[1]}-{version}", tracking_uri=uri)
                    assert digest(out / "model.pt") == digest(folder / "model.pt")

                list(pool.map(check, by_version))

                # 3. Promote in version order, one thread per server, both servers at once. Versions
                # were numbered in arrival order, so the expected outcome follows each server's numbering.
                def promote(uri: str) -> list[bool]:
                    return [registry.promote_if_better(name, v, "accuracy", tracking_uri=uri).promoted for v in (1, 2, 3)]

                def expected(uri: str) -> tuple[list[bool], int]:
                    values = [by_version[(uri, v)][1] for v in (1, 2, 3)]
                    promoted = [i == 0 or acc > max(values[:i]) for i, acc in enumerate(values)]
                    return promoted, values.index(max(values)) + 1

                assert list(pool.map(promote, (a, b))) == [expected(a)[0], expected(b)[0]]
                champions = list(pool.map(lambda uri: registry.get_alias(name, "champion", tracking_uri=uri), (a, b) * 3))
                assert [c.version for c in champions] == [expected(a)[1], expected(b)[1]] * 3
        finally:
            done.set()
            watcher.join()
        assert setters == [], f"process-wide MLflow URI setters were called: {setters}"
        assert changes == [], f"the process-wide MLflow URI changed during the calls: {changes[:3]}"
        for uri in (a, b):  # each server holds exactly its own three versions
            versions = MlflowClient(uri).search_model_versions(f"name = '{name}'")
            assert sorted(int(v.version) for v in versions) == [1, 2, 3]
    finally:
        second.stop()
