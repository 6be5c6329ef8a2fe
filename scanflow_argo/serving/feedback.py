"""The feedback store: inputs that received feedback, kept where retraining can read them (numpy only).

A store is one folder per deployment (``FEEDBACK_DIR``; locally ``<home>/feedback/<deployment>/``,
on the cluster a mounted volume). Each feedback call writes one shard, whole, then renames it
into place, so a reader never sees half a file and many replicas/workers can write at once::

    <folder>/<unix-ms, 13 digits>-<pid>-<seq>.npz
        x       float32 (n, *input_shape)   the inputs, as the model received them
        y       int64   (n,)                the true class index
        pred    int64   (n,)                the class the model predicted when it got the feedback
        reward  float32 (n,)                1.0 where pred == y
        t       float64 (n,)                unix time of the feedback, seconds

The time in the name lets a reader pick a time window without opening every shard
(``read_feedback(folder, since=…, until=…)``). Runs in both environments (numpy 1.26 and 2.x).
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["FeedbackData", "read_feedback", "shards", "write_shard"]

_seq = itertools.count()


@dataclass(frozen=True)
class FeedbackData:
    """Feedback read back from a store, oldest first."""

    x: np.ndarray
    y: np.ndarray
    pred: np.ndarray
    reward: np.ndarray
    t: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    @property
    def accuracy(self) -> float:
        """Share of feedback where the model was right (nan when empty)."""
        return float(self.reward.mean()) if len(self) else float("nan")


def write_shard(
    folder: str | os.PathLike[str],
    x: np.ndarray,
    y: np.ndarray,
    pred: np.ndarray,
    now: float | None = None,
) -> Path:
    """Append one shard of feedback to the store in ``folder``; returns its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    now = time.time() if now is None else now
    y = np.asarray(y, dtype=np.int64).reshape(-1)
    pred = np.asarray(pred, dtype=np.int64).reshape(-1)
    x = np.asarray(x, dtype=np.float32)
    if not (len(x) == len(y) == len(pred)):
        raise ValueError(f"feedback shard needs as many inputs as truths and predictions, got {len(x)}, {len(y)}, {len(pred)}")
    name = f"{int(now * 1000):013d}-{os.getpid()}-{next(_seq):06d}.npz"
    tmp = folder / f".{name}.tmp.npz"  # dot-names are skipped by readers
    np.savez(tmp, x=x, y=y, pred=pred, reward=(pred == y).astype(np.float32), t=np.full(len(y), now, dtype=np.float64))
    path = folder / name
    os.replace(tmp, path)
    return path


def shards(folder: str | os.PathLike[str], since: float | None = None, until: float | None = None) -> list[Path]:
    """Shard files written in ``[since, until)`` (unix seconds), oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    picked = []
    for path in folder.glob("*.npz"):
        if path.name.startswith("."):
            continue
        try:
            stamp = int(path.name.split("-", 1)[0]) / 1000.0
        except ValueError:
            continue
        if (since is None or stamp >= since) and (until is None or stamp < until):
            picked.append((stamp, path.name, path))
    return [p for _, _, p in sorted(picked)]


def read_feedback(folder: str | os.PathLike[str], since: float | None = None, until: float | None = None) -> FeedbackData:
    """All feedback in ``folder`` written in ``[since, until)``, concatenated oldest first."""
    parts: list[dict[str, np.ndarray]] = []
    for path in shards(folder, since, until):
        with np.load(path, allow_pickle=False) as data:
            parts.append({key: data[key] for key in ("x", "y", "pred", "reward", "t")})
    if not parts:
        empty = np.zeros(0)
        return FeedbackData(
            np.zeros((0,), dtype=np.float32), empty.astype(np.int64), empty.astype(np.int64), empty.astype(np.float32), empty
        )
    shapes = {p["x"].shape[1:] for p in parts}
    if len(shapes) > 1:
        raise ValueError(f"feedback store {folder} mixes input shapes {sorted(shapes)}: read a time window of one model")
    return FeedbackData(*(np.concatenate([p[key] for p in parts]) for key in ("x", "y", "pred", "reward", "t")))
