"""Fixtures for the local platform's CLI tests: a project folder with its own package, and the user's environment."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def local_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``SCANFLOW_*`` as a user sets them for the local platform (no MLflow tracking); returns the home."""
    home = tmp_path / "home"
    for key in ("MLFLOW_TRACKING_URI", "SCANFLOW_ENGINE_TEMPLATES", "SCANFLOW_MLFLOW_PORT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SCANFLOW_PLATFORM", "local")
    monkeypatch.setenv("SCANFLOW_HOME", str(home))
    monkeypatch.setenv("SCANFLOW_TRACKING", "0")
    monkeypatch.setenv("SCANFLOW_SERVING_VENV", str(ROOT / ".venv-serving"))
    return home


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project with a package its script steps import (``greet``), as ``pipelines`` is for MNIST."""
    folder = tmp_path / "project"
    (folder / "greet").mkdir(parents=True)
    (folder / "greet" / "__init__.py").write_text(
        "def hello(who):\n    return f'hello {who}'\n\n\ndef score(epochs):\n    return f'{1 - 0.5 / (1 + int(epochs)):.2f}'\n"
    )
    return folder
