"""Engine test fixtures: settings with a private home and 4 nodes at once, tracking off."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from scanflow_argo.settings import Settings


@pytest.fixture
def engine_settings(tmp_path: Path) -> Settings:
    s = Settings.from_env(environ={}).with_home(tmp_path / "home")
    return replace(s, engine=replace(s.engine, parallelism=4), tracking=replace(s.tracking, enabled=False))
