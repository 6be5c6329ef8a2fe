"""The MNIST case study: data (``data``), corruption for drift (``corrupt``), the model (``model``), the
workflow steps' logic (``tasks``) and the Application that wires them (``app``; import it explicitly:
``from pipelines.mnist.app import app`` or ``scanflow-argo compile pipelines.mnist:app``).

The package import stays light (no numpy/torch) so workflow steps and the CLI import it cheaply.
"""

from __future__ import annotations

from typing import Any

__all__ = ["app"]


def __getattr__(name: str) -> Any:
    # `pipelines.mnist:app` resolves lazily, so `from pipelines.mnist import tasks` in a step stays cheap.
    if name == "app":
        from .app import app

        globals()["app"] = app  # importing the submodule bound `app` to it; the Application wins
        return app
    raise AttributeError(f"module 'pipelines.mnist' has no attribute {name!r}")
