"""MNIST-C style corruptions (Mu & Gilmer, 2019) made with numpy/scipy: the drift of the case study.

Each corruption takes a batch of images ``(n, 28, 28)`` (``uint8`` 0–255, or floats in [0, 1]), a
severity 1–5 and a ``numpy.random.Generator``, and returns a batch of the same shape and dtype.
Severity parameters follow MNIST-C's where it has them; the effect grows with severity (a test
checks the mean pixel change is monotone). ``corrupt(images, name, severity, seed)`` is the
deterministic entry point: the same inputs and seed give the same bytes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np
from scipy import ndimage

__all__ = ["CORRUPTIONS", "DRIFT", "corrupt", "drift"]

Corruption = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]


def _angles(rng: np.random.Generator, n: int, low: float, high: float) -> np.ndarray:
    """Magnitudes uniform in [low, high] with a random sign, one per image."""
    return rng.uniform(low, high, n) * rng.choice([-1.0, 1.0], n)


def rotate(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Rotate each digit about its centre by ±(severity-band) degrees."""
    low, high = [(5, 15), (15, 25), (25, 35), (35, 45), (45, 55)][severity - 1]
    out = np.empty_like(x)
    for i, angle in enumerate(_angles(rng, len(x), low, high)):
        out[i] = ndimage.rotate(x[i], angle, reshape=False, order=1, mode="constant", cval=0.0)
    return out


def shear(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Horizontal shear about the centre, factor ±(severity-band)."""
    low, high = [(0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5), (0.5, 0.6)][severity - 1]
    centre = np.array([13.5, 13.5])
    out = np.empty_like(x)
    for i, s in enumerate(_angles(rng, len(x), low, high)):
        matrix = np.array([[1.0, 0.0], [s, 1.0]])  # output (row, col) -> input: col' = col + s*row
        offset = centre - matrix @ centre
        out[i] = ndimage.affine_transform(x[i], matrix, offset=offset, order=1, mode="constant", cval=0.0)
    return out


def shot_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Poisson (photon) noise: fewer photons per pixel at higher severity (MNIST-C's levels)."""
    photons = [60, 25, 12, 5, 3][severity - 1]
    return np.clip(rng.poisson(x * photons) / photons, 0.0, 1.0)


def gaussian_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur of each image (not across the batch)."""
    sigma = [0.6, 0.9, 1.2, 1.5, 1.8][severity - 1]
    out = ndimage.gaussian_filter(x, sigma=(0.0, sigma, sigma), mode="constant")
    # Re-stretch so strokes stay visible, as a blurred scan would be re-levelled.
    peak = out.reshape(len(out), -1).max(axis=1).reshape(-1, 1, 1)
    return np.clip(out / np.maximum(peak, 1e-6), 0.0, 1.0)


def _draw_polyline(canvas: np.ndarray, points: np.ndarray, width: float) -> None:
    """Rasterise a polyline of (row, col) points with the given stroke width, in place (max blend)."""
    rows, cols = np.mgrid[0 : canvas.shape[0], 0 : canvas.shape[1]]
    for (r0, c0), (r1, c1) in itertools.pairwise(points):
        dr, dc = r1 - r0, c1 - c0
        length2 = max(dr * dr + dc * dc, 1e-9)
        t = np.clip(((rows - r0) * dr + (cols - c0) * dc) / length2, 0.0, 1.0)
        dist = np.hypot(rows - (r0 + t * dr), cols - (c0 + t * dc))
        np.maximum(canvas, np.clip(width / 2 + 0.5 - dist, 0.0, 1.0), out=canvas)


def zigzag(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Overlay zigzag lines across the digit (more lines at higher severity)."""
    n_lines = [1, 1, 2, 2, 3][severity - 1]
    width = [1.0, 1.5, 1.5, 2.0, 2.0][severity - 1]
    out = x.copy()
    for i in range(len(x)):
        canvas = np.zeros(x.shape[1:], dtype=np.float64)
        for _ in range(n_lines):
            start = rng.uniform(0, 28, 2)
            angle = rng.uniform(0, np.pi)
            step = np.array([np.sin(angle), np.cos(angle)]) * 4.0
            normal = np.array([-step[1], step[0]]) * 0.6
            k = np.arange(-4, 5)
            points = start + k[:, None] * step + np.where(k % 2 == 0, 1.0, -1.0)[:, None] * normal
            _draw_polyline(canvas, points, width)
        out[i] = np.maximum(out[i], canvas)
    return out


def brightness(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Raise the background level (a washed-out scan)."""
    shift = [0.1, 0.2, 0.3, 0.4, 0.5][severity - 1]
    return np.clip(x + shift, 0.0, 1.0)


def _fog_layer(rng: np.random.Generator, decay: float, size: int = 28) -> np.ndarray:
    """Fractal value noise in [0, 1]: octaves of smoothly upsampled random grids, coarse ones strongest."""
    layer = np.zeros((size, size))
    for octave, cells in enumerate((2, 4, 8, 16)):
        grid = rng.uniform(0.0, 1.0, (cells + 1, cells + 1))
        layer += ndimage.zoom(grid, size / (cells + 1), order=1)[:size, :size] / decay**octave
    layer -= layer.min()
    return layer / max(layer.max(), 1e-9)


def fog(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Add a fractal fog layer, then re-normalise contrast (MNIST-C's fog levels)."""
    amount, decay = [(0.2, 3.0), (0.35, 2.6), (0.5, 2.2), (0.65, 1.9), (0.8, 1.7)][severity - 1]
    out = np.empty_like(x)
    for i in range(len(x)):
        layer = _fog_layer(rng, decay, x.shape[1])
        out[i] = np.clip((x[i] + amount * layer) / (1.0 + amount * 0.5), 0.0, 1.0)
    return out


CORRUPTIONS: dict[str, Corruption] = {
    "rotate": rotate,
    "shear": shear,
    "shot_noise": shot_noise,
    "gaussian_blur": gaussian_blur,
    "zigzag": zigzag,
    "brightness": brightness,
    "fog": fog,
}
"""Every corruption by name; each takes (images in [0, 1] as float64, severity, generator)."""

DRIFT: tuple[tuple[str, int], ...] = (("brightness", 4), ("fog", 4))
"""The drift of the case study: a new scanner — a washed-out background with uneven fog (accuracy ~98% -> ~50%)."""


def _as_float(images: np.ndarray) -> np.ndarray:
    if images.ndim != 3:
        raise ValueError(f"images must have shape (n, height, width), got {images.shape}")
    if images.dtype == np.uint8:
        return images.astype(np.float64) / 255.0
    return images.astype(np.float64)


def _like(result: np.ndarray, original: np.ndarray) -> np.ndarray:
    if original.dtype == np.uint8:
        return np.rint(np.clip(result, 0.0, 1.0) * 255.0).astype(np.uint8)
    return result.astype(original.dtype)


def corrupt(images: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """``images`` corrupted by ``name`` at ``severity`` (1–5), deterministic by ``seed``."""
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}: use one of {sorted(CORRUPTIONS)}")
    if not 1 <= int(severity) <= 5:
        raise ValueError(f"severity of {name!r} must be 1..5, got {severity}")
    rng = np.random.default_rng(seed)
    return _like(CORRUPTIONS[name](_as_float(images), int(severity), rng), images)


def drift(images: np.ndarray, seed: int, steps: Sequence[tuple[str, int]] = DRIFT) -> np.ndarray:
    """Apply a chain of (corruption, severity) steps, each with its own seed derived from ``seed``."""
    out = images
    for k, (name, severity) in enumerate(steps):
        out = corrupt(out, name, severity, seed * 1000 + k)
    return out
