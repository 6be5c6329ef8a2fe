"""``TorchClassifier``: the seldon-core 1.18.2 Python user model that serves a model directory.

Runs inside the serving environment (``.venv-serving`` locally, the serving image on the
cluster), so it imports only the stdlib, numpy, torch (lazily) and the numpy-only
``scanflow_argo.serving.drift`` / ``scanflow_argo.serving.feedback``. Started as::

    seldon-core-microservice scanflow_argo.serving.model.TorchClassifier --http-port … --metrics-port …

Model directory (``model_dir`` Seldon parameter, else ``MODEL_DIR``, else ``/mnt/models``)::

    model.pt    torch.export (``torch.export.save``; batch dimension dynamic) or TorchScript
                (``torch.jit.save``) — told apart by the archive's content; output: logits,
                log-probabilities or probabilities (``meta.json`` ``"output": "probabilities"``
                forces the last)
    meta.json   {"classes": [...], "input_shape": [1, 28, 28], ...}
    drift.npz   optional drift detector (``DriftDetector.save``); without it no drift gauge

Requests: Seldon's ``data.ndarray`` (nested lists), ``data.tensor`` (flat ``values`` + ``shape``)
or ``binData`` (base64 of the inputs' little-endian float32 values, ``n × prod(input_shape)`` of
them: the cheapest to decode, no JSON numbers). Over REST these go through ``predict_raw``, which
answers exactly as seldon-core's own path would but decodes straight to float32 and reports the
gauges with one round-trip to seldon-core's shared metrics store instead of two; other payloads
(and gRPC) take seldon-core's path into ``predict``.

Inputs (every format, feedback's too) and feedback truth must be finite numbers: ``NaN``,
``Infinity``, ``null`` and values beyond float32 (``1e39``, ``1e400``), float32 NaN/Inf bit patterns
in ``binData`` included, are refused with a 400 naming the first one and where it is — in the
error shape of Seldon's executor, ``{"status": {"code": 400, "info", "reason", "status": "FAILURE"}}`` —
and nothing of such a request reaches the neural network, the drift window or the feedback store.

``predict`` returns class probabilities ``(n, classes)``. ``send_feedback`` recomputes the
prediction, sets reward = 1 when it matches the truth (class index, class name or one-hot) and
appends the input + truth to the feedback store (``FEEDBACK_DIR``; format in ``feedback.py``).

Metrics on the microservice's metrics port (``--metrics-port``; path ``/metrics`` by default, ``/prometheus`` on
the cluster, where Seldon's operator sets ``PREDICTIVE_UNIT_METRICS_ENDPOINT``), with Seldon's
labels (``deployment_name``, ``predictor_name``, ``model_name`` … from the ``SELDON_DEPLOYMENT_ID``,
``PREDICTOR_ID``, ``PREDICTIVE_UNIT_ID`` environment) plus ``method`` and ``worker_id``:

* ``drift_score`` (GAUGE, method="predict"): the detector's score over its sliding window;
  in [0, 1), ≥ 0.5 (``drift.ALARM``) means drift at the false-alarm rate it was fitted for.
* ``prediction_confidence`` (GAUGE, method="predict"): mean top-class probability of the last request.
* ``seldon_api_model_feedback_total`` / ``seldon_api_model_feedback_reward_total`` (COUNTER,
  method="feedback"): seldon-core counts a feedback request there itself, but only when the
  request's ``reward`` field is non-zero (``SeldonMetrics.update_reward`` skips 0). For every
  other feedback this model adds the request and the reward it computed under the same names and
  labels, so ``reward_total / feedback_total`` is the accuracy on feedback whichever way clients
  send it (a client-sent non-zero reward is trusted as sent).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import threading
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .drift import DriftDetector
from .feedback import write_shard

__all__ = [
    "CONFIDENCE_METRIC",
    "DEFAULT_MODEL_DIR",
    "DRIFT_METRIC",
    "ModelLoadError",
    "TorchClassifier",
    "load_network",
]

log = logging.getLogger(__name__)

DEFAULT_MODEL_DIR = "/mnt/models"
DRIFT_METRIC = "drift_score"
CONFIDENCE_METRIC = "prediction_confidence"
# Seldon's own feedback counter keys (seldon_core.metrics.FEEDBACK_KEY / FEEDBACK_REWARD_KEY).
_FEEDBACK_KEY = "seldon_api_model_feedback"
_FEEDBACK_REWARD_KEY = "seldon_api_model_feedback_reward"


class ModelLoadError(RuntimeError):
    """The model directory is missing a file or holds something this class cannot load."""


def load_network(path: str | os.PathLike[str]) -> Any:
    """Load ``model.pt`` without the training code: torch.export archive or TorchScript."""
    import torch  # torch: seconds to import

    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile) as err:
        raise ModelLoadError(
            f"{path} is not a torch archive ({err}): save the model with torch.export.save or torch.jit.save"
        ) from err
    if any(n.endswith("/archive_format") or n == "archive_format" for n in names):
        with open(path, "rb") as handle:  # a file object: torch.export.load warns on names not ending in .pt2
            return torch.export.load(handle).module()
    if any(n.endswith("/constants.pkl") for n in names) or any("/code/" in n for n in names):
        return torch.jit.load(str(path), map_location="cpu").eval()
    raise ModelLoadError(
        f"{path} is neither a torch.export nor a TorchScript archive (a torch.save'd module needs the training "
        "code): save it with torch.export.save(torch.export.export(model, …)) or torch.jit.save"
    )


def _bad_request(message: str) -> Exception:
    """A 400 answer in the microservice (``BadRequest``); a ValueError elsewhere."""
    try:
        from seldon_core.flask_utils import SeldonMicroserviceException  # only in the serving environment
    except ImportError:
        return ValueError(message)

    class BadRequest(SeldonMicroserviceException):
        """seldon-core's 400, answered in the shape the router and Seldon's executor use for errors.

        seldon-core's own ``to_dict`` writes ``{"status": {"status": 1, "code": -1, …}}``; this writes
        the proto ``Status`` as the executor's ``CreateErrorPayload`` (executor/api/rest/client.go) does:
        ``{"status": {"code": 400, "info": …, "reason": …, "status": "FAILURE"}}``.
        """

        def to_dict(self) -> dict[str, Any]:
            return {"status": {"code": self.status_code, "info": self.message, "reason": self.reason, "status": "FAILURE"}}

    return BadRequest(message, status_code=400, reason="MICROSERVICE_BAD_DATA")


def _not_implemented(message: str) -> Exception:
    """Tells seldon-core to take its own path for a request ``predict_raw`` leaves to it."""
    try:
        from seldon_core.user_model import SeldonNotImplementedError  # only in the serving environment
    except ImportError:
        return NotImplementedError(message)
    return SeldonNotImplementedError(message)


def _request_path() -> dict[str, str]:
    """The ``meta.requestPath`` seldon-core adds to a response ({unit: image})."""
    try:
        from seldon_core.utils import get_request_path  # only in the serving environment
    except ImportError:
        return {}
    return dict(get_request_path())


def _response(data: Any, metrics: list[dict[str, Any]], tags: dict[str, Any]) -> Any:
    """Data with runtime metrics and tags (seldon-core's SeldonResponse), or the bare data outside it."""
    try:
        from seldon_core.user_model import SeldonResponse  # only in the serving environment
    except ImportError:
        return data
    return SeldonResponse(data, tags=tags, metrics=metrics)


def _refuse_non_finite(values: np.ndarray, what: str) -> None:
    """A 400 naming the first NaN or infinite value (``null`` and numbers beyond float32 arrive as these)."""
    finite = np.isfinite(values)
    if finite.all():
        return
    bad = np.argwhere(~finite)
    first = tuple(int(i) for i in bad[0])
    raise _bad_request(
        f"{what}: {len(bad)} value(s) are not finite numbers, the first at index {list(first)} "
        f"({values[first]}: NaN, Infinity, null or beyond float32's ±3.4e38): send finite numbers"
    )


class TorchClassifier:
    """Seldon user model: class probabilities, feedback store, drift and confidence gauges."""

    def __init__(self, model_dir: str = "", feedback_dir: str = "", torch_threads: int = 0) -> None:
        self.model_dir = Path(model_dir or os.environ.get("MODEL_DIR") or DEFAULT_MODEL_DIR)
        feedback = feedback_dir or os.environ.get("FEEDBACK_DIR", "")
        self.feedback_dir = Path(feedback) if feedback else None
        self.torch_threads = int(torch_threads or os.environ.get("TORCH_THREADS") or 0)
        self.meta: dict[str, Any] = {}
        self.classes: list[str] = []
        self.input_shape: tuple[int, ...] = ()
        self.detector: DriftDetector | None = None
        self._net: Any = None
        self._lock = threading.Lock()
        self._fresh = False  # a predict happened since metrics() last reported the gauges
        self._drift = 0.0
        self._confidence = 0.0

    # -- lifecycle -----------------------------------------------------------------------------

    def load(self) -> None:
        """Load network, metadata and detector (seldon-core calls this in each worker)."""
        with self._lock:
            if self._net is not None:
                return
            import torch  # torch: seconds to import

            if self.torch_threads > 0:
                torch.set_num_threads(self.torch_threads)
            meta_path = self.model_dir / "meta.json"
            model_path = self.model_dir / "model.pt"
            for needed in (meta_path, model_path):
                if not needed.is_file():
                    raise ModelLoadError(
                        f"model directory {self.model_dir} has no {needed.name}: it needs model.pt and meta.json (drift.npz optional)"
                    )
            try:
                meta = json.loads(meta_path.read_text())
                classes = [str(c) for c in meta["classes"]]
                shape = tuple(int(v) for v in meta["input_shape"])
            except (ValueError, KeyError, TypeError) as err:
                raise ModelLoadError(f"{meta_path} must be JSON with 'classes' and 'input_shape': {err}") from err
            drift_path = self.model_dir / "drift.npz"
            detector = DriftDetector.load(drift_path) if drift_path.is_file() else None
            if detector is None:
                log.warning("%s has no drift.npz: the %s gauge is not reported", self.model_dir, DRIFT_METRIC)
            elif detector.dim != int(np.prod(shape)):
                raise ModelLoadError(
                    f"{drift_path} was fitted on {detector.dim} values per input, but input_shape {list(shape)} has {int(np.prod(shape))}"
                )
            net = load_network(model_path)
            self.meta, self.classes, self.input_shape, self.detector = meta, classes, shape, detector
            self._net = net
            log.info("loaded %s (%d classes, input %s)", self.model_dir, len(classes), list(shape))

    def health_status(self) -> list[int]:
        """Ready once the model is loaded (loads it if the worker has not yet)."""
        self.load()
        return [1]

    def class_names(self) -> list[str]:
        self.load()
        return list(self.classes)

    # -- inference -----------------------------------------------------------------------------

    def _inputs(self, X: Any) -> np.ndarray:
        """Float32 inputs shaped ``(n, *input_shape)``; a 400 for anything else, non-finite values included."""
        if isinstance(X, (bytes, bytearray, memoryview)) and len(X) % 4:
            raise _bad_request(f"binData holds {len(X)} bytes, not a whole number of little-endian float32 values (4 bytes each)")
        try:
            if isinstance(X, (bytes, bytearray, memoryview)):  # binData: little-endian float32 values
                x = np.frombuffer(X, dtype="<f4").astype(np.float32)  # a writable copy for torch
            else:
                with np.errstate(over="ignore"):  # a value beyond float32 becomes inf: refused below
                    x = np.asarray(X, dtype=np.float32)
        except (TypeError, ValueError, OverflowError) as err:
            raise _bad_request(f"inputs must be numbers shaped (n, {', '.join(map(str, self.input_shape))}): {err}") from err
        _refuse_non_finite(x, "inputs")
        size = int(np.prod(self.input_shape))
        if isinstance(X, (bytes, bytearray, memoryview)) and x.size % size == 0:
            x = x.reshape(-1, size)  # a flat buffer of whole inputs
        if x.size == size and x.ndim <= len(self.input_shape):
            x = x.reshape(1, -1)
        if x.ndim == 0 or x.size == 0 or x.size % size or x.size // size != x.shape[0]:
            raise _bad_request(
                f"inputs shaped {list(x.shape)} do not hold rows of input_shape {list(self.input_shape)} ({size} values each)"
            )
        return x.reshape((x.shape[0], *self.input_shape))

    def _probabilities(self, x: np.ndarray) -> np.ndarray:
        import torch  # torch: seconds to import

        with torch.inference_mode():
            out = self._net(torch.from_numpy(x))
        out = np.asarray(out.detach().cpu().numpy(), dtype=np.float64).reshape(len(x), -1)
        if self.meta.get("output") == "probabilities":
            return out
        out = out - out.max(axis=1, keepdims=True)  # softmax; also right for log-probabilities
        np.exp(out, out=out)
        return out / out.sum(axis=1, keepdims=True)

    def predict(self, X: Any, features_names: Any = None, **kwargs: Any) -> np.ndarray:
        """Class probabilities ``(n, classes)``; updates the drift window and the confidence gauge."""
        self.load()
        x = self._inputs(X)
        probs = self._probabilities(x)
        self._observe(x, probs, fresh=True)
        return probs

    def _observe(self, x: np.ndarray, probs: np.ndarray, fresh: bool) -> list[dict[str, Any]]:
        """Update the drift window and the confidence gauge; the gauges as Seldon metrics."""
        with self._lock:
            if self.detector is not None:
                self._drift = self.detector.score(x)
            self._confidence = float(probs.max(axis=1).mean())
            self._fresh = self._fresh or fresh  # for metrics(); predict_raw reports its gauges itself
            return self._gauges()

    def _gauges(self) -> list[dict[str, Any]]:
        gauges = [{"type": "GAUGE", "key": CONFIDENCE_METRIC, "value": self._confidence}]
        if self.detector is not None:
            gauges.append({"type": "GAUGE", "key": DRIFT_METRIC, "value": self._drift})
        return gauges

    def predict_raw(self, request: Any) -> dict[str, Any]:
        """seldon-core's raw hook: the REST predict path for ``data.ndarray``, ``data.tensor`` and ``binData``.

        Same answer as seldon-core's own path (``construct_response_json``: probabilities in the
        request's format — ``tensor`` for ``binData`` — class names, tags, puid, requestPath), and
        the same metrics, but cheaper: inputs go straight to float32, and the gauges travel in
        ``meta.metrics`` (seldon-core counts them, and leaves them in the answer as its own path
        does unless ``INCLUDE_METRICS_IN_CLIENT_RESPONSE=false``), which costs one round-trip to its shared metrics
        store per request instead of two. Anything else (gRPC protos, jsonData/strData, requests
        carrying metrics) is left to seldon-core's path, which calls ``predict``.
        """
        if not isinstance(request, dict) or not isinstance(request.get("meta") or {}, dict):
            raise _not_implemented("not a JSON request: seldon-core's own path")
        meta_in = request.get("meta") or {}
        if meta_in.get("metrics"):
            raise _not_implemented("request carries metrics: seldon-core's own path")
        kind, values = self._raw_values(request)
        self.load()
        x = self._inputs(values)
        probs = self._probabilities(x)
        gauges = self._observe(x, probs, fresh=False)
        if kind == "ndarray":
            data: dict[str, Any] = {"ndarray": probs.tolist()}
        else:
            data = {"tensor": {"values": probs.ravel().tolist(), "shape": list(probs.shape)}}
        data["names"] = list(self.classes)
        meta: dict[str, Any] = {}
        if meta_in.get("tags"):
            meta["tags"] = dict(meta_in["tags"])
        meta["metrics"] = gauges
        if meta_in.get("puid"):
            meta["puid"] = meta_in["puid"]
        request_path = {**_request_path(), **(meta_in.get("requestPath") or {})}
        if request_path:
            meta["requestPath"] = request_path
        return {"data": data, "meta": meta}

    @staticmethod
    def _raw_values(request: dict[str, Any]) -> tuple[str, Any]:
        """(response format, input values) of a request ``predict_raw`` serves itself."""
        data = request.get("data")
        if isinstance(data, dict):
            if "ndarray" in data:
                return "ndarray", data["ndarray"]
            tensor = data.get("tensor")
            if isinstance(tensor, dict) and "values" in tensor and "shape" in tensor:
                try:
                    with np.errstate(over="ignore"):  # beyond float32 becomes inf, refused by _inputs
                        return "tensor", np.asarray(tensor["values"], dtype=np.float32).reshape(tensor["shape"])
                except (TypeError, ValueError, OverflowError) as err:
                    raise _bad_request(f"data.tensor values do not fit shape {tensor['shape']}: {err}") from err
        elif data is None and isinstance(request.get("binData"), str):
            try:
                return "tensor", base64.b64decode(request["binData"], validate=True)
            except (binascii.Error, ValueError) as err:
                raise _bad_request(f"binData is not base64 (send float32 little-endian values, base64-encoded): {err}") from err
        raise _not_implemented("payload format left to seldon-core's own path")

    # -- feedback ------------------------------------------------------------------------------

    def _truth(self, truth: Any, n: int) -> np.ndarray:
        try:
            y = np.asarray(truth)
        except (TypeError, ValueError, OverflowError) as err:
            raise _bad_request(f"truth must be class indices, class names or one-hot rows: {err}") from err
        if y.size == 0:
            raise _bad_request("feedback has no truth: send the true class as truth.data (index, class name or one-hot)")
        if y.dtype.kind == "O":  # null among the values (the seldon path keeps them as None)
            if any(v is None for v in y.reshape(-1)):
                raise _bad_request("truth holds null: send the true class (index, class name or one-hot) for every input")
            try:
                y = y.astype(str) if all(isinstance(v, str) for v in y.reshape(-1)) else y.astype(np.float64)
            except (TypeError, ValueError) as err:
                raise _bad_request(f"truth must be class indices, class names or one-hot rows: {err}") from err
        one_hot = y.ndim == 2 and y.shape[1] == len(self.classes) > 1
        if y.dtype.kind == "f":
            _refuse_non_finite(y, "truth")
            if not one_hot and np.any(y != np.round(y)):
                raise _bad_request(f"truth {y.reshape(-1).tolist()[:5]} holds fractions: send class indices (whole numbers)")
        if y.dtype.kind in "USO":
            lookup = {name: i for i, name in enumerate(self.classes)}
            try:
                labels = np.array([lookup[str(v)] for v in y.reshape(-1)], dtype=np.int64)
            except KeyError as err:
                raise _bad_request(f"truth {err.args[0]!r} is not one of the classes {self.classes}") from err
        elif one_hot:
            labels = y.argmax(axis=1).astype(np.int64)
        else:
            labels = y.reshape(-1).astype(np.int64)
        if len(labels) != n:
            raise _bad_request(f"feedback has {n} input(s) but {len(labels)} truth value(s)")
        if labels.min() < 0 or labels.max() >= len(self.classes):
            raise _bad_request(f"truth {labels.tolist()} out of range: classes are 0..{len(self.classes) - 1}")
        return labels

    def send_feedback(self, features: Any, feature_names: Any, reward: float, truth: Any, routing: Any = None) -> Any:
        """Reward = share of inputs whose predicted class is the truth; stores inputs + truth."""
        self.load()
        if np.size(features) == 0:  # seldon-core reads feedback inputs from request.data only
            raise _bad_request(
                "feedback carries no inputs: send them as request.data.ndarray or request.data.tensor "
                "(seldon-core's feedback path does not read binData)"
            )
        x = self._inputs(features)
        y = self._truth(truth, len(x))
        pred = self._probabilities(x).argmax(axis=1)
        computed = float((pred == y).mean())
        if self.feedback_dir is not None:
            write_shard(self.feedback_dir, x, y, pred)
        metrics: list[dict[str, Any]] = []
        if not reward:  # seldon-core counted nothing for this request (it skips reward 0)
            metrics = [
                {"type": "COUNTER", "key": _FEEDBACK_KEY, "value": 1},
                {"type": "COUNTER", "key": _FEEDBACK_REWARD_KEY, "value": computed},
            ]
        return _response(np.array([computed]), metrics, {"reward": computed, "predicted": pred.tolist()})

    # -- metrics -------------------------------------------------------------------------------

    def metrics(self) -> list[dict[str, Any]]:
        """Gauges after a predict (seldon-core also calls this after feedback and health checks: nothing then)."""
        with self._lock:
            if not self._fresh:
                return []
            self._fresh = False
            return self._gauges()
