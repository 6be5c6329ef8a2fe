"""Fixtures for agent tests: a real exporter subprocess scraped by a real Prometheus on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _agent_helpers import Exporter


@pytest.fixture
def exporter(tmp_path: Path) -> Iterator[Exporter]:
    exp = Exporter(tmp_path)
    try:
        yield exp
    finally:
        exp.stop()


@pytest.fixture
def prom(prometheus_server: Any, exporter: Exporter) -> Any:
    """Prometheus scraping the exporter every second (job ``test``)."""
    prometheus_server.set_targets("test", [exporter.target], {})
    return prometheus_server
