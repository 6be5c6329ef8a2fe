"""The drift detector that ships with a model as ``drift.npz`` (numpy only; numpy 1.26 and 2.x).

Fitted at training time on clean inputs *as the model receives them* (the request's ``X``,
flattened), it compares a sliding window of the last ``window`` inputs with that reference, in
the top-``k`` principal components (whitened) of the fit data, through two window statistics:

* **mean shift** — ``n/k · ‖mean of the window's whitened components‖²`` (≈ χ²ₖ/k on clean data):
  rotated, shifted or re-styled inputs move the window's mean away from the training mean;
* **energy** — the window's geometric mean of each input's Mahalanobis distance plus residual
  energy outside the components (≈ 1 on clean data; geometric, so that the heavy tail of single
  odd digits does not dominate): noisy or out-of-domain inputs raise it.

Each statistic ``s`` is placed on a common scale ``z = (s − mean) / (threshold − mean)``, where
``mean`` is its mean over windows of that many clean inputs and ``threshold`` the value such a
window exceeds with probability ``target_far / 2`` (both bootstrapped on a held-out part of the
fit data): ``z ≈ 0`` looks like the training data, ``z = 1`` is the alarm point. The score is
``1 − 2^−max(z, 0)`` of the larger ``z``: in ``[0, 1)``, **0.5 at the alarm point** (``ALARM``; a
clean window reaches it with probability ≈ ``target_far``), about 0.3 half-way there, → 1 for
strong drift — the same scale for every model, so agents use one rule. Until ``min_samples``
inputs have been seen the score is 0.0 (not enough evidence); one odd input moves a full window's
statistics by only about ``1/window``.

File format (``np.savez``, no pickles): ``format_version``, ``mean`` (d), ``components`` (k, d),
``variances`` (k), ``resid_scale`` (), ``grid`` (m) window sizes with ``thresholds`` (m, 4: mean
shift threshold, energy threshold, mean shift clean mean, energy clean mean), ``window``,
``min_samples``, ``target_far``.
"""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ALARM", "FORMAT_VERSION", "DriftDetector"]

FORMAT_VERSION = 2
ALARM = 0.5
"""Score at which a window is as unusual as ``target_far`` of clean windows: at or above it, call it drift."""
_EPS = 1e-9


def _as_2d(batch: Any) -> np.ndarray:
    """A batch of inputs of any shape ``(n, ...)`` as float64 rows ``(n, d)``."""
    x = np.asarray(batch, dtype=np.float64)
    if x.ndim == 0:
        raise ValueError("drift detector input is a scalar: send a batch of inputs shaped (n, ...)")
    if x.ndim == 1:
        x = x[None, :]
    return x.reshape(x.shape[0], -1)


def _principal_components(centred: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` principal directions ``(k, d)`` and their variances ``(k,)``."""
    n, d = centred.shape
    if d <= 4096:
        # eigh of the d×d covariance is far faster than an SVD of the n×d data for MNIST-sized d.
        values, vectors = np.linalg.eigh(centred.T @ centred / max(1, n - 1))
        top = np.argsort(values)[::-1][:k]
        return vectors[:, top].T.copy(), np.clip(values[top], 0.0, None)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    return vt[:k], s[:k] ** 2 / max(1, n - 1)


class DriftDetector:
    """Two-statistic drift score (mean shift, energy) over a sliding window of recent inputs."""

    def __init__(
        self,
        mean: np.ndarray,
        components: np.ndarray,
        variances: np.ndarray,
        resid_scale: float,
        grid: np.ndarray,
        thresholds: np.ndarray,
        *,
        window: int,
        min_samples: int,
        target_far: float,
    ) -> None:
        self.mean = np.asarray(mean, dtype=np.float64)
        self.components = np.asarray(components, dtype=np.float64)
        self.variances = np.asarray(variances, dtype=np.float64)
        self.resid_scale = float(resid_scale)
        self.grid = np.asarray(grid, dtype=np.int64)
        self.thresholds = np.asarray(thresholds, dtype=np.float64)
        self.window = int(window)
        self.min_samples = int(min_samples)
        self.target_far = float(target_far)
        self._z: deque[np.ndarray] = deque(maxlen=self.window)
        self._energy: deque[float] = deque(maxlen=self.window)

    # -- fitting -------------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        features: Any,
        *,
        components: int = 16,
        window: int = 64,
        min_samples: int = 16,
        target_far: float = 0.01,
        holdout: float = 0.3,
        bootstrap: int = 4000,
        seed: int = 0,
    ) -> DriftDetector:
        """Fit on clean inputs ``(n, ...)``; the threshold gives ``target_far`` false alarms per score."""
        x = _as_2d(features)
        n, d = x.shape
        if n < 50:
            raise ValueError(f"drift detector needs at least 50 clean inputs to fit, got {n}")
        if not 0.0 < target_far < 0.5:
            raise ValueError(f"target_far must be in (0, 0.5), got {target_far}")
        if not 1 <= min_samples <= window:
            raise ValueError(f"need 1 <= min_samples <= window, got min_samples={min_samples}, window={window}")
        rng = np.random.default_rng(seed)
        order = rng.permutation(n)
        n_cal = max(20, int(n * holdout))
        cal, train = x[order[:n_cal]], x[order[n_cal:]]
        mean = train.mean(axis=0)
        centred = train - mean
        k = max(1, min(components, d, len(train) - 1))
        comps, variances = _principal_components(centred, k)
        # Floor tiny variances so a constant pixel cannot make the distance explode.
        variances = np.maximum(variances, 1e-6 * float(variances.max()) + _EPS)
        resid = centred - (centred @ comps.T) @ comps
        resid_scale = float((resid**2).sum(axis=1).mean()) + _EPS
        det = cls(
            mean,
            comps,
            variances,
            resid_scale,
            np.array([1]),
            np.ones((1, 4)),
            window=window,
            min_samples=min_samples,
            target_far=target_far,
        )
        z, energy = det._project(cal)
        grid = sorted({min_samples, window, *(2**i for i in range(20) if min_samples < 2**i < window)})
        quantile = 1.0 - target_far / 2.0  # two statistics share the false-alarm budget
        thresholds = []
        for m in grid:
            picks = rng.integers(0, len(cal), size=(bootstrap, m))
            shift = m * (z[picks].mean(axis=1) ** 2).sum(axis=1) / k
            level = np.exp(energy[picks].mean(axis=1))
            thresholds.append(
                [
                    float(np.quantile(shift, quantile)),
                    float(np.quantile(level, quantile)),
                    float(shift.mean()),
                    float(level.mean()),
                ]
            )
        det.grid = np.asarray(grid, dtype=np.int64)
        det.thresholds = np.asarray(thresholds, dtype=np.float64)
        return det

    # -- scoring -------------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        """Number of input values the detector expects per input."""
        return int(self.mean.shape[0])

    def _project(self, batch: Any) -> tuple[np.ndarray, np.ndarray]:
        """Whitened components ``(n, k)`` and per-input log-energy ``(n,)`` (≈ 0 on clean data)."""
        x = _as_2d(batch)
        if x.shape[1] != self.dim:
            raise ValueError(f"drift detector was fitted on inputs of {self.dim} values, got {x.shape[1]} per input")
        centred = x - self.mean
        raw = centred @ self.components.T
        z = raw / np.sqrt(self.variances)
        maha = (z**2).sum(axis=1) / len(self.variances)
        # The components are orthonormal rows, so the residual's squared norm is ‖centred‖² − ‖raw‖²
        # (Pythagoras): no reconstruction of the (n, d) inputs on every request.
        resid = np.maximum(np.einsum("ij,ij->i", centred, centred) - np.einsum("ij,ij->i", raw, raw), 0.0) / self.resid_scale
        return z, np.log(0.5 * (maha + resid) + _EPS)

    def statistic(self, batch: Any) -> np.ndarray:
        """Per-input energy statistic (≈ 1 on clean data), without touching the window."""
        return np.exp(self._project(batch)[1])

    def thresholds_for(self, count: int) -> tuple[float, float, float, float]:
        """(shift threshold, energy threshold, shift clean mean, energy clean mean) for ``count`` inputs (largest fitted size ≤ count)."""
        idx = max(int(np.searchsorted(self.grid, count, side="right")) - 1, 0)
        t_shift, t_energy, m_shift, m_energy = (float(v) for v in self.thresholds[idx])
        return t_shift, t_energy, m_shift, m_energy

    def window_score(self, batch: Any) -> float:
        """Score ``batch`` alone as one window (no state); 0.0 when it has fewer than ``min_samples`` inputs."""
        z, energy = self._project(batch)
        return self._score(z, energy)

    def score(self, batch: Any) -> float:
        """Add ``batch`` to the window and return the drift score (≥ ``ALARM`` means drift; 0.0 while warming up)."""
        z, energy = self._project(batch)
        self._z.extend(z[-self.window :])
        self._energy.extend(energy[-self.window :].tolist())
        return self.current()

    def current(self) -> float:
        """The drift score of the window as it is now."""
        if len(self._energy) < self.min_samples:
            return 0.0
        return self._score(np.asarray(self._z), np.asarray(self._energy))

    def _score(self, z: np.ndarray, energy: np.ndarray) -> float:
        count = len(energy)
        if count < self.min_samples:
            return 0.0
        t_shift, t_energy, m_shift, m_energy = self.thresholds_for(count)
        shift = count * float((z.mean(axis=0) ** 2).sum()) / len(self.variances)
        level = float(np.exp(energy.mean()))
        excess = max((shift - m_shift) / max(t_shift - m_shift, _EPS), (level - m_energy) / max(t_energy - m_energy, _EPS))
        return 1.0 - 2.0 ** -max(excess, 0.0)

    @property
    def seen(self) -> int:
        """Inputs in the window now."""
        return len(self._energy)

    def reset(self) -> None:
        """Forget the window (e.g. after a model roll)."""
        self._z.clear()
        self._energy.clear()

    # -- persistence ---------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the detector to ``path`` (``.npz``; written whole, then renamed into place)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
        np.savez(
            tmp,
            format_version=np.int64(FORMAT_VERSION),
            mean=self.mean,
            components=self.components,
            variances=self.variances,
            resid_scale=np.float64(self.resid_scale),
            grid=self.grid,
            thresholds=self.thresholds,
            window=np.int64(self.window),
            min_samples=np.int64(self.min_samples),
            target_far=np.float64(self.target_far),
        )
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DriftDetector:
        """Read a detector written by ``save``; a clear ValueError when the file is not one."""
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
            version = int(arrays["format_version"])
        except (OSError, KeyError, ValueError) as err:
            raise ValueError(f"{path} is not a drift detector written by DriftDetector.save: {err}") from err
        if version != FORMAT_VERSION:
            raise ValueError(f"{path}: drift detector format {version} is not supported (expected {FORMAT_VERSION}); refit it")
        if arrays.get("thresholds") is None or np.ndim(arrays["thresholds"]) != 2 or np.shape(arrays["thresholds"])[1] != 4:
            raise ValueError(f"{path} has malformed thresholds: refit the drift detector with this version")
        try:
            return cls(
                arrays["mean"],
                arrays["components"],
                arrays["variances"],
                float(arrays["resid_scale"]),
                arrays["grid"],
                arrays["thresholds"],
                window=int(arrays["window"]),
                min_samples=int(arrays["min_samples"]),
                target_far=float(arrays["target_far"]),
            )
        except KeyError as err:
            raise ValueError(f"{path} is not a complete drift detector: {err} is missing") from err
