"""Fixtures of the compile tests."""

from __future__ import annotations

import pytest
from _compile_helpers import build_app

from scanflow_argo.spec import Application


@pytest.fixture
def demo_app() -> Application:
    return build_app()
