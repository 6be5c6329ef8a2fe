"""Fixtures for the Kubernetes platform tests: the fake API servers on 127.0.0.1 and platforms wired to them."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fakeapi import FakeCluster
from k8s_helpers import ARGO_TOKEN, NAMESPACE, TOKEN_ENV, make_platform

from scanflow_argo.platform.kubernetes import KubernetesPlatform
from scanflow_argo.settings import Settings


@pytest.fixture
def fake() -> Iterator[FakeCluster]:
    """Both fake API servers on one free loopback port; dropped after the test."""
    cluster = FakeCluster(argo_token=ARGO_TOKEN).start()
    try:
        yield cluster
    finally:
        cluster.drop()


@pytest.fixture
def kube_settings(settings: Settings, fake: FakeCluster, tmp_path: Path) -> Settings:
    """Settings for the fake cluster through a generated kubeconfig (no Argo Server)."""
    kubeconfig = fake.kubeconfig(tmp_path / "kubeconfig", NAMESPACE)
    kube = dataclasses.replace(
        settings.kubernetes, kubeconfig=kubeconfig, namespace=NAMESPACE, argo_token_env=TOKEN_ENV, request_timeout=5.0
    )
    return dataclasses.replace(settings, platform="kubernetes", kubernetes=kube)


@pytest.fixture(params=["crd", "argo"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def platform(kube_settings: Settings, fake: FakeCluster, backend: str) -> KubernetesPlatform:
    return make_platform(kube_settings, fake, backend)
