"""The MNIST model: a small two-layer CNN in torch, its training loop, and its export as a model directory.

``depth`` > 0 adds a residual tower of that many small layers after the CNN's dense layer (``DeepMnistCNN``):
each layer is cheap, but one answer runs them one after another, so a single digit costs ``depth`` times a
layer's time however many cores there are, while batched training and evaluation amortise it. It is the
case study's "better offline, too slow online" challenger; ``forward_seconds``/``depth_for`` measure how
deep it must be to be slower than a latency objective on the machine at hand. Its output layer starts at
zero, so a tower stacked on trained weights (``load_weights``, ``init_net``) starts as the network it extends.

The exported directory is the one docs/architecture.md describes and the serving replica loads
(``scanflow_argo.serving.model.TorchClassifier``)::

    model.pt    a ``torch.export`` program (``torch.export.load(path).module()``), no training code needed;
                input float32 ``(n, 1, 28, 28)`` with pixels in [0, 1], output logits ``(n, 10)``;
                the batch dimension is dynamic
    meta.json   {"classes": [0..9], "input_shape": [1, 28, 28], "input_range": [0, 1], "format": "torch.export",
                 "metrics": {...}}
    drift.npz   the drift detector fitted on clean training inputs (``scanflow_argo.serving.drift``)

A network with a tower is saved with TorchScript instead (``torch.jit.save``, ``"format": "torchscript"``):
``torch.export`` unrolls the tower's loop into one graph node per layer, which takes minutes to export and
to load for thousands of layers; TorchScript keeps the loop. Replicas tell the two apart by the archive.

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
    "depth_for",
    "depth_of",
    "export",
    "fit_drift_detector",
    "forward_seconds",
    "load_exported",
    "load_weights",
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


def build_net(depth: int = 0) -> torch.nn.Module:
    """Two 5x5 conv layers (16, 32 channels) with max-pooling, then a 64-unit dense layer; with ``depth`` > 0,
    a residual tower of ``depth`` 64-unit layers before the output layer (see the module docstring)."""
    import torch
    from torch import nn

    if depth < 0:
        raise ValueError(f"depth must be 0 (the plain CNN) or more (layers of the residual tower), got {depth}")

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

    class Tower(nn.Module):
        """``depth`` residual bottleneck layers x + relu(x W1) W2 / depth (64 → 16 → 64 units), W2 zero at first: the
        tower starts as the identity. Narrow on purpose: a layer costs a step of the interpreter whatever its size."""

        def __init__(self, depth: int, width: int = 64, inner: int = 16) -> None:
            super().__init__()
            self.w1 = nn.Parameter(torch.randn(depth, width, inner) * width**-0.5)
            self.w2 = nn.Parameter(torch.zeros(depth, inner, width))
            self.scale = 1.0 / depth

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # unbind once: indexing the stacked weights per layer would make each layer's backward a full-size copy
            first, second = self.w1.unbind(0), self.w2.unbind(0)
            for i in range(len(first)):  # addmm: the residual, the scale and the product in one op
                x = torch.addmm(x, torch.relu(x @ first[i]), second[i], alpha=self.scale)
            return x

    class DeepMnistCNN(MnistCNN):
        def __init__(self, depth: int) -> None:
            super().__init__()
            self.tower = Tower(depth)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.features((x - 0.1307) / 0.3081)
            h = self.head[3](self.head[2](self.head[1](self.head[0](h))))  # flatten, dense, relu, dropout
            return self.head[4](self.tower(h))

    return DeepMnistCNN(depth) if depth else MnistCNN()


def depth_of(net: Any) -> int:
    """Layers of the network's residual tower (0: none)."""
    tower = getattr(net, "tower", None)
    return int(tower.w1.shape[0]) if tower is not None else 0


def load_weights(net: Any, model_dir: str | os.PathLike[str]) -> list[str]:
    """Start ``net`` from the weights of an exported model directory (same names: the CNN's layers); returns the
    names ``net`` has that the directory did not (e.g. a tower stacked on a plain CNN)."""
    import torch

    saved = load_exported(model_dir).state_dict()
    own = net.state_dict()
    wrong = [k for k, v in saved.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if wrong:
        raise ValueError(f"{model_dir} does not fit this network: {', '.join(wrong)} have other shapes")
    with torch.no_grad():
        missing, _ = net.load_state_dict({k: v for k, v in saved.items() if k in own}, strict=False)
    return list(missing)


def forward_seconds(depth: int, reps: int = 7) -> float:
    """The CPU time of a single-digit answer (the least of ``reps``) of a network with a ``depth``-layer tower,
    saved and loaded as a replica loads it, computed on one thread: what serving one request costs here at
    least, before the server's own time. CPU time, not elapsed time: on a busy machine the thread waits for a
    core and an answer takes longer (with more threads, much longer: each layer waits for the slowest), never
    less — measured on a machine busy with other work, elapsed time made a tower look 6x slower than it is on a
    quiet one — so a tower this costly stays too slow however quiet the machine gets."""

    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fastest_answer(depth, reps)
    finally:
        torch.set_num_threads(threads)


def _fastest_answer(depth: int, reps: int) -> float:
    import io

    import torch

    buffer = io.BytesIO()
    net = build_net(depth).eval()
    if depth:
        torch.jit.save(torch.jit.script(net), buffer)
    else:
        _export_program(net, buffer)
    buffer.seek(0)
    module = torch.jit.load(buffer) if depth else torch.export.load(buffer).module()
    x = torch.zeros(1, *INPUT_SHAPE)
    times = []
    with torch.no_grad():
        module(x)
        for _ in range(reps):
            started = time.thread_time()  # this thread's CPU time: with one torch thread, the answer's whole compute
            module(x)
            times.append(time.thread_time() - started)
    return min(times)


def depth_for(at_least: float, start: int = 256, limit: int = 1 << 17) -> tuple[int, float]:
    """The tower (doubling from ``start``, then scaled: its time grows with its depth) whose fastest single-digit
    answer here takes at least ``at_least`` seconds and not much more, with the time measured for it."""
    depth, seconds = start, forward_seconds(start)
    while seconds < at_least / 2 and depth < limit:
        depth *= 2
        seconds = forward_seconds(depth)
    for _ in range(4):  # aim at 1.1 x at_least: above it for sure, not so far that training costs more than needed
        if at_least <= seconds <= 1.25 * at_least or (seconds < at_least and depth >= limit):
            break
        depth = min(limit, max(1, round(depth * 1.1 * at_least / max(seconds, 1e-6))))
        seconds = forward_seconds(depth)
    while seconds < at_least and depth < limit:
        depth = min(limit, int(depth * 1.2) + 1)
        seconds = forward_seconds(depth)
    if seconds < at_least:
        raise ValueError(f"a tower of {depth} layers answers in {seconds:.3f} s here, under {at_least} s: no deeper one is tried")
    return depth, seconds


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
    depth: int = 0,
    init_dir: str | os.PathLike[str] | None = None,
    init_net: Any = None,
    tower_only: bool = False,
) -> TrainResult:
    """Train a CNN (with a ``depth``-layer tower) with Adam, fresh or from the weights in ``init_dir`` (an exported
    model directory) or ``init_net`` (a network: fine-tuning it); ``tower_only`` trains the tower alone, the CNN
    under it kept as it is. Deterministic for a given seed and thread count."""
    import torch

    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"epochs and batch_size must be >= 1 and lr > 0 (got epochs={epochs}, batch_size={batch_size}, lr={lr})")
    if tower_only and not depth:
        raise ValueError("tower_only needs a tower (depth > 0)")
    if len(images) != len(labels) or len(images) == 0:
        raise ValueError(f"need as many labels as images, and at least one (got {len(images)} images, {len(labels)} labels)")
    # A tower's layers are too small to share between threads; with two, each of its thousands of steps waits for
    # the slower thread, which on a busy machine costs milliseconds a step (measured: 20x slower on 2 shared cores).
    configure_threads(threads if threads is not None else (1 if depth else None))
    torch.manual_seed(seed)
    net = build_net(depth)
    if init_dir:
        load_weights(net, init_dir)
    if init_net is not None:
        with torch.no_grad():
            net.load_state_dict(init_net.state_dict(), strict=False)  # the tower, absent from a plain CNN, stays as built
    trained = net.get_submodule("tower").parameters() if tower_only else net.parameters()
    x = torch.from_numpy(to_inputs(images))
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    optimiser = torch.optim.Adam(trained, lr=lr)
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
    deep = depth_of(net) > 0
    with open(out / MODEL_FILE, "wb") as handle:  # a handle: torch warns on file names not ending in .pt2
        if deep:  # TorchScript keeps the tower's loop (see the module docstring)
            torch.jit.save(torch.jit.script(net), handle)
        else:
            _export_program(net, handle)
    if reference_images is not None:
        fit_drift_detector(reference_images).save(out / DRIFT_FILE)
    meta = {
        "classes": CLASSES,
        "input_shape": list(INPUT_SHAPE),
        "input_range": [0, 1],
        "format": "torchscript" if deep else "torch.export",
        "metrics": {k: float(v) for k, v in (metrics or {}).items()},
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return out


def _export_program(net: Any, handle: Any) -> None:
    """``net`` as a ``torch.export`` program with a dynamic batch dimension, saved to ``handle``."""
    import torch

    batch = torch.export.Dim("batch", min=1, max=65536)
    program = torch.export.export(net, (torch.zeros(2, *INPUT_SHAPE),), dynamic_shapes=({0: batch},))
    torch.export.save(program, handle)


def load_exported(model_dir: str | os.PathLike[str]) -> Any:
    """The exported network as a callable module (what a replica does, without this module's classes):
    a ``torch.export`` program, or TorchScript for a network with a tower (``meta.json``'s ``format``)."""
    import torch

    path = Path(model_dir) / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: is {model_dir} a model directory written by export()?")
    meta_path = Path(model_dir) / META_FILE
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    if meta.get("format") == "torchscript":
        return torch.jit.load(str(path), map_location="cpu").eval()
    with open(path, "rb") as handle:
        return torch.export.load(handle).module()
