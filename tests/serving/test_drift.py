"""The drift detector: calibrated false alarms on clean MNIST, detection of rotated and noisy digits, file round trip."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import rotate

from scanflow_argo.serving.drift import ALARM, DriftDetector

from ._models import mnist

WINDOW = 64


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    x, _ = mnist()
    return x[:3500].reshape(3500, -1), x[3500:].reshape(1500, -1)


@pytest.fixture(scope="module")
def detector(data: tuple[np.ndarray, np.ndarray]) -> DriftDetector:
    return DriftDetector.fit(data[0], window=WINDOW, target_far=0.01)


def rotated(x: np.ndarray, degrees: float) -> np.ndarray:
    return np.stack([rotate(im.reshape(28, 28), degrees, reshape=False, order=1) for im in x]).reshape(len(x), -1)


def window_rate(det: DriftDetector, x: np.ndarray, trials: int = 1000, seed: int = 7) -> float:
    """Share of random full windows (independent draws) that the detector flags."""
    rng = np.random.default_rng(seed)
    flags = [det.window_score(x[rng.choice(len(x), WINDOW, replace=False)]) >= ALARM for _ in range(trials)]
    return float(np.mean(flags))


@pytest.mark.slow  # fits the detector on a data set
def test_false_alarm_rate_on_clean_data_is_near_the_target(detector: DriftDetector, data) -> None:
    rate = window_rate(detector, data[1])
    print(f"false-alarm rate on clean held-out digits: {rate:.3f} (target 0.01)")
    assert rate <= 0.03


@pytest.mark.parametrize(("shift", "make"), [("rotated 30°", lambda x: rotated(x, 30)), ("gaussian noise σ=0.3", None)])
def test_detects_shifted_data(detector: DriftDetector, data, shift: str, make) -> None:
    clean = data[1]
    shifted = np.clip(clean + np.random.default_rng(3).normal(0, 0.3, clean.shape), 0, 1) if make is None else make(clean)
    rate = window_rate(detector, shifted)
    print(f"detection rate, {shift}: {rate:.3f}")
    assert rate >= 0.95


def test_a_stream_of_clean_inputs_stays_quiet_and_a_single_odd_digit_does_not_alarm(detector: DriftDetector, data) -> None:
    clean = data[1]
    detector.reset()
    assert detector.score(clean[:8]) == 0.0  # warming up: not enough evidence yet
    scores = [detector.score(clean[i : i + 8]) for i in range(8, 1200, 8)]
    assert max(scores) < ALARM
    assert detector.score(rotated(clean[:1], 90)) < ALARM
    detector.reset()


def test_a_stream_that_turns_rotated_is_flagged_within_a_window(detector: DriftDetector, data) -> None:
    detector.reset()
    clean, turned = data[1][:256], rotated(data[1][256:512], 45)
    for i in range(0, 256, 8):
        assert detector.score(clean[i : i + 8]) < ALARM
    late = [detector.score(turned[i : i + 8]) for i in range(0, 256, 8)]
    first = next(i for i, s in enumerate(late) if s >= ALARM)
    assert (first + 1) * 8 <= WINDOW, f"flagged only after {(first + 1) * 8} rotated inputs"
    detector.reset()


def test_save_load_round_trip_gives_the_same_scores(detector: DriftDetector, data, tmp_path: Path) -> None:
    path = detector.save(tmp_path / "drift.npz")
    loaded = DriftDetector.load(path)
    batch = data[1][:WINDOW]
    assert loaded.window_score(batch) == pytest.approx(detector.window_score(batch))
    assert (loaded.window, loaded.min_samples, loaded.target_far) == (detector.window, detector.min_samples, detector.target_far)


def test_the_file_loads_in_the_serving_environment_numpy_1(
    detector: DriftDetector, data, tmp_path: Path, serving_python: Path
) -> None:
    path = detector.save(tmp_path / "drift.npz")
    np.save(tmp_path / "batch.npy", data[1][:WINDOW])
    root = Path(__file__).resolve().parents[2]
    code = (
        "import sys, numpy as np; sys.path.insert(0, sys.argv[1]);"
        "from scanflow_argo.serving.drift import ALARM, DriftDetector;"
        "d = DriftDetector.load(sys.argv[2]); print(np.__version__, d.window_score(np.load(sys.argv[3])))"
    )
    out = subprocess.run(
        [str(serving_python), "-c", code, str(root), str(path), str(tmp_path / "batch.npy")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    version, score = out.stdout.split()
    assert version.startswith("1.")
    assert float(score) == pytest.approx(detector.window_score(data[1][:WINDOW]))


def test_bad_inputs_are_named(detector: DriftDetector, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="784 values"):
        detector.score(np.zeros((2, 10)))
    with pytest.raises(ValueError, match="at least 50"):
        DriftDetector.fit(np.zeros((10, 4)))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a drift detector"):
        DriftDetector.load(tmp_path / "junk.npz")
