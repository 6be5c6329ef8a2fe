"""TorchClassifier in-process (the same code the microservice runs) and the feedback store it writes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from scanflow_argo.serving.drift import ALARM
from scanflow_argo.serving.feedback import read_feedback, shards, write_shard
from scanflow_argo.serving.model import CONFIDENCE_METRIC, DRIFT_METRIC, ModelLoadError, TorchClassifier

from ._models import mnist


@pytest.fixture(params=["v1", "v2"])
def model_dir(request: pytest.FixtureRequest) -> Path:
    """Both archive formats: torch.export (v1) and TorchScript (v2)."""
    return request.getfixturevalue(f"model_{request.param}")


def test_predicts_probabilities_for_any_input_layout(model_dir: Path) -> None:
    x, y = mnist()
    model = TorchClassifier(model_dir=str(model_dir))
    for batch in (x[:5], x[:5].reshape(5, -1), x[:5].reshape(5, 28, 28)):
        p = model.predict(batch.tolist(), [])
        assert p.shape == (5, 10)
        np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    single = model.predict(x[0].reshape(-1), [])
    assert single.shape == (1, 10)
    accuracy = (model.predict(x[4000:4500], []).argmax(1) == y[4000:4500]).mean()
    assert accuracy > 0.7
    assert model.class_names() == [str(i) for i in range(10)]


def test_metrics_report_gauges_once_per_predict(model_v1: Path) -> None:
    x, _ = mnist()
    model = TorchClassifier(model_dir=str(model_v1))
    assert model.metrics() == []  # health checks and feedback report nothing
    for i in range(0, 64, 16):
        model.predict(x[i : i + 16], [])
    gauges = {m["key"]: m for m in model.metrics()}
    assert set(gauges) == {DRIFT_METRIC, CONFIDENCE_METRIC}
    assert all(m["type"] == "GAUGE" for m in gauges.values())
    assert 0.0 <= gauges[DRIFT_METRIC]["value"] < ALARM
    assert 0.1 < gauges[CONFIDENCE_METRIC]["value"] <= 1.0
    assert model.metrics() == []
    model.predict(np.clip(x[:64] + np.random.default_rng(0).normal(0, 0.4, x[:64].shape), 0, 1), [])
    assert {m["key"]: m["value"] for m in model.metrics()}[DRIFT_METRIC] >= ALARM


def test_feedback_rewards_correct_predictions_and_fills_the_store(model_v1: Path, tmp_path: Path) -> None:
    x, y = mnist()
    store = tmp_path / "feedback"
    model = TorchClassifier(model_dir=str(model_v1), feedback_dir=str(store))
    pred = model.predict(x[:20], []).argmax(1)
    right = int(np.flatnonzero(pred == y[:20])[0])
    wrong_truth = (pred[right] + 1) % 10
    assert model.send_feedback(x[right : right + 1], [], 0.0, [int(y[right])])[0] == 1.0
    assert model.send_feedback(x[right : right + 1], [], 0.0, [int(wrong_truth)])[0] == 0.0
    assert model.send_feedback(x[right : right + 1], [], 0.0, [str(y[right])])[0] == 1.0  # class name
    assert model.send_feedback(x[right : right + 1], [], 0.0, np.eye(10)[[y[right]]])[0] == 1.0  # one-hot
    both = model.send_feedback(x[:2], [], 0.0, [[int(pred[0])], [int((pred[1] + 1) % 10)]])
    assert both[0] == 0.5
    data = read_feedback(store)
    assert len(data) == 6 and data.x.shape == (6, 1, 28, 28)
    assert data.reward.tolist() == [1, 0, 1, 1, 1, 0]
    assert data.y[1] == wrong_truth
    assert np.all(np.diff(data.t) >= 0)


def test_predict_raw_answers_each_payload_format_in_kind_with_the_gauges_in_meta(model_v1: Path) -> None:
    import base64

    x, _ = mnist()
    batch = x[:4].reshape(4, -1).astype(np.float32)
    model = TorchClassifier(model_dir=str(model_v1))
    expected = model.predict(batch, [])
    assert len(model.metrics()) == 2  # predict's gauges, reported once
    requests = {
        "ndarray": {"data": {"ndarray": batch.tolist()}, "meta": {"puid": "p1", "tags": {"t": "1"}}},
        "tensor": {"data": {"tensor": {"shape": [4, 1, 28, 28], "values": batch.ravel().tolist()}}},
        "binData": {"binData": base64.b64encode(batch.astype("<f4").tobytes()).decode()},
    }
    for kind, request in requests.items():
        answer = model.predict_raw(request)
        data = answer["data"]
        assert data["names"] == [str(i) for i in range(10)]
        if kind == "ndarray":
            got = np.asarray(data["ndarray"])
            assert answer["meta"]["puid"] == "p1" and answer["meta"]["tags"] == {"t": "1"}
        else:
            assert "ndarray" not in data and data["tensor"]["shape"] == [4, 10]
            got = np.asarray(data["tensor"]["values"]).reshape(4, 10)
        np.testing.assert_allclose(got, expected, rtol=1e-6)
        assert {m["key"] for m in answer["meta"]["metrics"]} == {CONFIDENCE_METRIC, DRIFT_METRIC}
    assert model.metrics() == []  # predict_raw's gauges travel in its answer, not again through metrics()
    with pytest.raises(NotImplementedError):  # left to seldon-core's own path (SeldonNotImplementedError there)
        model.predict_raw({"strData": "seven"})
    with pytest.raises(ValueError, match="base64"):
        model.predict_raw({"binData": "not base64!"})
    with pytest.raises(ValueError, match="do not fit shape"):
        model.predict_raw({"data": {"tensor": {"shape": [2, 784], "values": [0.0]}}})


@pytest.mark.parametrize(
    ("bad", "message"),
    [(np.zeros((2, 5)), "input_shape"), ([["a", "b"]], "numbers"), (np.zeros((0, 784)), "input_shape")],
)
def test_bad_inputs_are_refused_with_the_expected_shape(model_v1: Path, bad, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TorchClassifier(model_dir=str(model_v1)).predict(bad, [])


def _first_pixel(value: object) -> list[list[object]]:
    row: list[object] = mnist()[0][0].reshape(-1).tolist()
    return [[value, *row[1:]]]


def _bin_data(bits: int) -> dict[str, str]:
    import base64

    raw = bytearray(mnist()[0][0].astype("<f4").tobytes())
    raw[40:44] = bits.to_bytes(4, "little")  # pixel 10
    return {"binData": base64.b64encode(bytes(raw)).decode()}


NON_FINITE = {
    "NaN": float("nan"),
    "-Infinity": float("-inf"),
    "null": None,
    "1e39 (beyond float32)": 1e39,
    "10**400 (beyond any float)": 10**400,
}


@pytest.mark.parametrize("value", NON_FINITE.values(), ids=NON_FINITE.keys())
def test_non_finite_inputs_are_refused_in_every_path_and_never_stored(model_v1: Path, tmp_path: Path, value: object) -> None:
    store = tmp_path / "feedback"
    model = TorchClassifier(model_dir=str(model_v1), feedback_dir=str(store))
    rows = _first_pixel(value)
    calls = {
        "predict": lambda: model.predict(rows, []),
        "predict_raw ndarray": lambda: model.predict_raw({"data": {"ndarray": rows}}),
        "predict_raw tensor": lambda: model.predict_raw({"data": {"tensor": {"shape": [1, 784], "values": rows[0]}}}),
        "send_feedback": lambda: model.send_feedback(rows, [], 0.0, [7]),
    }
    for path, call in calls.items():
        with pytest.raises(ValueError, match=r"not finite|too large") as refused:
            call()
        assert "\n" not in str(refused.value), path
    assert not store.exists() or shards(store) == []
    assert model.metrics() == [], "a refused request moves no gauge"


@pytest.mark.parametrize("bits", [0x7FC00000, 0x7FC00001, 0xFFC00000, 0x7F800000, 0xFF800000], ids=hex)
def test_nan_and_inf_bit_patterns_in_bin_data_are_refused(model_v1: Path, bits: int) -> None:
    with pytest.raises(ValueError, match=r"not finite numbers, the first at index \[10\]"):
        TorchClassifier(model_dir=str(model_v1)).predict_raw(_bin_data(bits))


@pytest.mark.parametrize(
    ("truth", "message"),
    [([float("nan")], "not finite"), ([None], "null"), ([float("inf")], "not finite"), ([2.5], "fractions")],
)
def test_non_finite_or_fractional_truth_is_refused_and_never_stored(
    model_v1: Path, tmp_path: Path, truth: list[object], message: str
) -> None:
    store = tmp_path / "feedback"
    model = TorchClassifier(model_dir=str(model_v1), feedback_dir=str(store))
    with pytest.raises(ValueError, match=message):
        model.send_feedback(mnist()[0][:1], [], 0.0, np.asarray(truth, dtype=object))
    assert not store.exists() or shards(store) == []


def test_bad_truth_is_refused(model_v1: Path) -> None:
    x, _ = mnist()
    model = TorchClassifier(model_dir=str(model_v1))
    with pytest.raises(ValueError, match="not one of the classes"):
        model.send_feedback(x[:1], [], 0.0, ["cat"])
    with pytest.raises(ValueError, match="out of range"):
        model.send_feedback(x[:1], [], 0.0, [12])
    with pytest.raises(ValueError, match="2 input"):
        model.send_feedback(x[:2], [], 0.0, [1])


def test_load_errors_say_what_the_folder_needs(model_v1: Path, tmp_path: Path) -> None:
    import torch

    with pytest.raises(ModelLoadError, match=r"meta\.json"):
        TorchClassifier(model_dir=str(tmp_path)).load()
    folder = tmp_path / "pickled"
    shutil.copytree(model_v1, folder)
    torch.save({"weights": torch.zeros(3)}, folder / "model.pt")
    with pytest.raises(ModelLoadError, match=r"neither a torch\.export nor a TorchScript"):
        TorchClassifier(model_dir=str(folder)).load()
    (folder / "model.pt").write_text("junk")
    with pytest.raises(ModelLoadError, match="not a torch archive"):
        TorchClassifier(model_dir=str(folder)).load()
    shutil.copy(model_v1 / "model.pt", folder / "model.pt")
    (folder / "meta.json").write_text(json.dumps({"classes": list("0123456789"), "input_shape": [1, 14, 14]}))
    with pytest.raises(ModelLoadError, match="fitted on 784 values"):
        TorchClassifier(model_dir=str(folder)).load()


def test_feedback_store_selects_a_time_window(tmp_path: Path) -> None:
    x = np.zeros((2, 1, 28, 28), dtype=np.float32)
    for t in (1000.0, 2000.0, 3000.0):
        write_shard(tmp_path, x, [1, 2], [1, 3], now=t)
    (tmp_path / ".half-written.tmp.npz").write_bytes(b"")
    assert len(shards(tmp_path)) == 3
    window = read_feedback(tmp_path, since=1500, until=3000)
    assert len(window) == 2 and window.t.tolist() == [2000.0, 2000.0]
    assert window.accuracy == 0.5
    assert len(read_feedback(tmp_path / "missing")) == 0
