"""The MLflow flavor of a scanflow model folder (``model.pt``, ``drift.npz``, ``meta.json``).

``save_model`` is what ``mlflow.models.Model.log`` calls to lay out the logged model: the folder's
files at the top (so a download is directly loadable by the Seldon model class) plus an ``MLmodel``
with a ``python_function`` flavor whose loader is ``_load_pyfunc`` below — ``mlflow.pyfunc.load_model``
then predicts class probabilities. Imports of mlflow and torch stay inside the functions.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

__all__ = ["FLAVOR_NAME", "REQUIRED_FILES", "save_model"]

FLAVOR_NAME = "scanflow"
REQUIRED_FILES = ("model.pt", "meta.json")
"""A model folder must hold these (``drift.npz`` is optional: models without a drift detector)."""


def save_model(path: str, mlflow_model: Any, model_dir: str | Path) -> None:
    """Copy ``model_dir`` into ``path`` and write its ``MLmodel`` (scanflow + python_function flavors)."""
    import mlflow.pyfunc  # mlflow: seconds to import
    from mlflow.models.model import MLMODEL_FILE_NAME  # mlflow: seconds to import

    src = Path(model_dir)
    dst = Path(path)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("MLmodel", "__pycache__"))
    meta = json.loads((src / "meta.json").read_text())
    mlflow_model.add_flavor(FLAVOR_NAME, files=sorted(p.name for p in src.iterdir() if p.is_file()), meta=meta)
    mlflow.pyfunc.add_to_model(mlflow_model, loader_module="scanflow_argo.tracking.pyfunc", data=".")
    mlflow_model.save(str(dst / MLMODEL_FILE_NAME))


class _Classifier:
    """pyfunc model: float inputs shaped like ``meta.json``'s ``input_shape`` → class probabilities."""

    def __init__(self, folder: Path) -> None:
        import torch  # torch: seconds to import

        self.meta = json.loads((folder / "meta.json").read_text())
        path = folder / "model.pt"
        try:
            self.net = torch.jit.load(str(path), map_location="cpu")
        except RuntimeError:
            self.net = torch.export.load(str(path)).module()

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        import numpy as np  # numpy: ~150 ms that every detached engine would pay (it imports the registry)
        import torch  # torch: seconds to import

        shape = tuple(self.meta.get("input_shape") or ())
        x = np.asarray(getattr(model_input, "values", model_input), dtype=np.float32)
        if shape and x.shape[1:] != shape:
            x = x.reshape((-1, *shape))
        with torch.no_grad():
            out = self.net(torch.from_numpy(x))
        probs = torch.softmax(out, dim=-1) if float(out.min()) < 0 or abs(float(out.sum(-1).mean()) - 1) > 1e-3 else out
        return probs.numpy()


def _load_pyfunc(data_path: str) -> _Classifier:
    """Loader named in the MLmodel's python_function flavor."""
    return _Classifier(Path(data_path))
