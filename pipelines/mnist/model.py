"""The MNIST model: a small two-layer CNN in torch, its training loop, and its export as a model directory.

The exported directory is the one docs/architecture.md describes and the serving replica loads
(``scanflow_argo.serving.model.TorchClassifier``)::

    model.pt    a ``torch.export`` program (``torch.export.load(path).module()``), no training code needed;
                input float32 ``(n, 1, 28, 28)`` with pixels in [0, 1], output logits ``(n, 10)``;
                the batch dimension is dynamic
    meta.json   {"classes": [0..9], "input_shape": [1, 28, 28], "input_range": [0, 1], "format": "torch.export",
                 "metrics": {...}}
    drift.npz   the drift detector fitted on clean training inputs (``scanflow_argo.serving.drift``)

torch is imported inside functions (it costs seconds), so importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "INPUT_SHAPE",
    "TrainResult",
    "accuracy",
    "build_net",
    "configure_threads",
    "export",
    "fit_drift_detector",
    "load_exported",
    "predict_proba",
    "to_inputs",
    "train_model",
]

INPUT_SHAPE = (1, 28, 28)
CLASSES = list(range(10))
MODEL_FILE = "model.pt"
META_FILE = "meta.json"
DRIFT_FILE = "drift.npz"

Progress = Callable[[int, int, dict[str, float]], None]
"""Called after each epoch with (epoch, epochs, {"loss": .., "accuracy": ..})."""


def configure_threads(threads: int | None = None) -> int:
    """Use ``threads`` (default: SCANFLOW_TORCH_THREADS, else all CPUs) for torch's intra-op pool."""
    import torch

    n = threads or int(os.environ.get("SCANFLOW_TORCH_THREADS", "0") or 0) or (os.cpu_count() or 1)
    torch.set_num_threads(max(1, n))
    # One inter-op thread: the net is a chain; more only adds contention on small machines. It may
    # only be set once per process, before any parallel work: later calls raise, harmlessly.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
    return torch.get_num_threads()


def build_net() -> torch.nn.Module:
    """Two 5x5 conv layers (16, 32 channels) with max-pooling, then a 64-unit dense layer."""
    from torch import nn

    class MnistCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(1, 16, 5, padding=2),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(16, 32, 5, padding=2),
                nn.ReLU(),
                nn.MaxPool2d(2),
            )
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Dropout(0.25), nn.Linear(64, 10))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # Centre the [0, 1] pixels with MNIST's mean/std inside the net, so clients send raw pixels.
            return self.head(self.features((x - 0.1307) / 0.3081))

    return MnistCNN()


def to_inputs(images: np.ndarray) -> np.ndarray:
    """uint8 (n, 28, 28) or floats in [0, 1] -> float32 (n, 1, 28, 28) in [0, 1], the model's input."""
    x = np.asarray(images)
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    return x.reshape(-1, *INPUT_SHAPE)


@dataclass
class TrainResult:
    """A trained network and what happened while training it."""

    net: Any
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def train_accuracy(self) -> float:
        return self.history[-1]["accuracy"] if self.history else 0.0


def train_model(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    epochs: int = 8,
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
    progress: Progress | None = None,
    threads: int | None = None,
) -> TrainResult:
    """Train a fresh CNN with Adam; deterministic for a given seed and thread count."""
    import torch

    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"epochs and batch_size must be >= 1 and lr > 0 (got epochs={epochs}, batch_size={batch_size}, lr={lr})")
    if len(images) != len(labels) or len(images) == 0:
        raise ValueError(f"need as many labels as images, and at least one (got {len(images)} images, {len(labels)} labels)")
    configure_threads(threads)
    torch.manual_seed(seed)
    net = build_net()
    x = torch.from_numpy(to_inputs(images))
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    optimiser = torch.optim.Adam(net.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    order = torch.Generator().manual_seed(seed)
    result = TrainResult(net=net)
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        net.train()
        total_loss, correct = 0.0, 0
        for idx in torch.randperm(len(x), generator=order).split(batch_size):
            optimiser.zero_grad(set_to_none=True)
            logits = net(x[idx])
            loss = loss_fn(logits, y[idx])
            loss.backward()
            optimiser.step()
            total_loss += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == y[idx]).sum())
        stats = {"epoch": float(epoch), "loss": total_loss / len(x), "accuracy": correct / len(x)}
        result.history.append(stats)
        if progress is not None:
            progress(epoch, epochs, stats)
    result.seconds = time.perf_counter() - started
    net.eval()
    return result


def predict_proba(net: Callable[[Any], Any], images: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Class probabilities (n, 10) from a network or an exported module."""
    import torch

    x = torch.from_numpy(to_inputs(images))
    if isinstance(net, torch.nn.Module):
        with contextlib.suppress(NotImplementedError):  # an exported program's module is already one
            net.eval()
    parts = []
    with torch.no_grad():
        for chunk in x.split(batch_size):
            parts.append(torch.softmax(net(chunk), dim=1).numpy())
    return np.concatenate(parts) if parts else np.zeros((0, 10), dtype=np.float32)


def accuracy(net: Callable[[Any], Any], images: np.ndarray, labels: np.ndarray) -> float:
    """Share of images whose most probable class is the label."""
    if len(images) == 0:
        return float("nan")
    return float((predict_proba(net, images).argmax(1) == np.asarray(labels)).mean())


def fit_drift_detector(reference_images: np.ndarray) -> Any:
    """The drift detector shipped with the model, fitted on clean training inputs.

    This is the one place that knows the detector's API (``scanflow_argo.serving.drift``), so the
    replica and training agree on what it sees: the model's input batch, flattened pixels in [0, 1].
    """
    from scanflow_argo.serving.drift import DriftDetector

    return DriftDetector.fit(to_inputs(reference_images).reshape(len(reference_images), -1))


def export(
    net: Any,
    out_dir: str | os.PathLike[str],
    *,
    reference_images: np.ndarray | None = None,
    metrics: dict[str, float] | None = None,
) -> Path:
    """Write the model directory (model.pt, meta.json and, given reference images, drift.npz)."""
    import torch

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    net.eval()
    batch = torch.export.Dim("batch", min=1, max=65536)
    example = (torch.zeros(2, *INPUT_SHAPE),)
    program = torch.export.export(net, example, dynamic_shapes=({0: batch},))
    with open(out / MODEL_FILE, "wb") as handle:  # a handle: torch warns on file names not ending in .pt2
        torch.export.save(program, handle)
    if reference_images is not None:
        fit_drift_detector(reference_images).save(out / DRIFT_FILE)
    meta = {
        "classes": CLASSES,
        "input_shape": list(INPUT_SHAPE),
        "input_range": [0, 1],
        "format": "torch.export",
        "metrics": {k: float(v) for k, v in (metrics or {}).items()},
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return out


def load_exported(model_dir: str | os.PathLike[str]) -> Callable[[Any], Any]:
    """The exported network as a callable module (what a replica does, without this module's classes)."""
    import torch

    path = Path(model_dir) / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: is {model_dir} a model directory written by export()?")
    with open(path, "rb") as handle:
        return torch.export.load(handle).module()
