"""Fixtures of the server tests: a real server (``scanflow-argo server``'s) on a free 127.0.0.1 port, in front of a
private local platform, one per test module (helpers and manifests: ``server_helpers.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from server_helpers import NAMESPACE, Served, server_settings

from scanflow_argo.platform.local import LocalPlatform
from scanflow_argo.server import ArgoServer, ServerOptions, load_or_create_token


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    settings = server_settings(tmp_path_factory.mktemp("server") / "home")
    platform = LocalPlatform(settings)
    token = load_or_create_token(settings)
    server = ArgoServer(platform, settings, token, ServerOptions(port=0, namespace=NAMESPACE), poll=0.1)
    server.start()
    try:
        yield Served(server, settings, platform, token)
    finally:
        server.stop()
        for run in platform.list_runs():  # nothing left running
            if not run.done and platform.engine_alive(run.name):
                platform.shutdown(run.name, "Terminate")
