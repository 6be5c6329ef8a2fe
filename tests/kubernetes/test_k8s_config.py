"""Cluster configuration: kubeconfig (file and context) and in-cluster service account, from settings only."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from fakeapi import FakeCluster
from k8s_helpers import NAMESPACE, seldon

from scanflow_argo.errors import SetupError
from scanflow_argo.platform import get_platform
from scanflow_argo.platform._k8s.api import load_api_client
from scanflow_argo.platform.kubernetes import KubernetesPlatform
from scanflow_argo.settings import Settings


def test_get_platform_builds_the_kubernetes_one_from_env(fake: FakeCluster, tmp_path: Path) -> None:
    kubeconfig = fake.kubeconfig(tmp_path / "kc")
    settings = Settings.from_env(
        environ={"SCANFLOW_PLATFORM": "kubernetes", "KUBECONFIG": str(kubeconfig), "SCANFLOW_NAMESPACE": NAMESPACE}
    )
    platform = get_platform(settings)
    assert isinstance(platform, KubernetesPlatform) and platform.name == "kubernetes"
    fake.put(seldon())
    assert platform.get_deployment("mnist").replicas == 1
    assert fake.requests[-1].headers["authorization"] == "Bearer kube-test-token"


def test_kubeconfig_context_is_honoured(fake: FakeCluster, tmp_path: Path, kube_settings: Settings) -> None:
    path = fake.kubeconfig(tmp_path / "kc")
    cfg = yaml.safe_load(path.read_text())
    cfg["clusters"].append({"name": "elsewhere", "cluster": {"server": "http://127.0.0.1:9"}})
    cfg["contexts"].append({"name": "other", "context": {"cluster": "elsewhere", "user": "tester"}})
    cfg["current-context"] = "other"
    path.write_text(yaml.safe_dump(cfg))
    kube = dataclasses.replace(kube_settings.kubernetes, kubeconfig=path, context="fake")
    client = load_api_client(kube)
    assert client.configuration.host == fake.url


def test_several_kubeconfig_files_merge_as_kubectl_merges_them(fake: FakeCluster, tmp_path: Path) -> None:
    """KUBECONFIG=a:b (client-go tools/clientcmd/loader.go ClientConfigLoadingRules.Load): missing files are
    skipped; the first file to name a cluster/user/context wins it; the first file to set current-context wins."""
    import os

    ours = yaml.safe_load(fake.kubeconfig(tmp_path / "ours").read_text())  # current-context: fake → the fake server
    other = {
        "apiVersion": "v1",
        "kind": "Config",
        # the same cluster name pointing elsewhere (loses to ours), and its own context (set as current: loses too)
        "clusters": [
            {"name": "fake", "cluster": {"server": "http://127.0.0.1:9"}},
            {"name": "spare", "cluster": {"server": "http://127.0.0.1:8"}},
        ],
        "users": [{"name": "tester", "user": {"token": "wrong-token"}}],
        "contexts": [{"name": "spare", "context": {"cluster": "spare", "user": "tester"}}],
        "current-context": "spare",
    }
    (tmp_path / "other").write_text(yaml.safe_dump(other))
    no_current = dict(ours, **{"current-context": ""})
    (tmp_path / "first-without-current").write_text(yaml.safe_dump(no_current))
    paths = os.pathsep.join([str(tmp_path / "absent"), str(tmp_path / "ours"), str(tmp_path / "other")])
    settings = Settings.from_env(
        environ={"SCANFLOW_PLATFORM": "kubernetes", "KUBECONFIG": paths, "SCANFLOW_NAMESPACE": NAMESPACE}
    )
    fake.put(seldon())
    assert get_platform(settings).get_deployment("mnist").replicas == 1
    assert fake.requests[-1].headers["authorization"] == "Bearer kube-test-token"  # our user, not the later file's
    reversed_paths = os.pathsep.join([str(tmp_path / "other"), str(tmp_path / "ours")])
    kube = dataclasses.replace(settings.kubernetes, kubeconfig=Path(reversed_paths))
    assert load_api_client(kube).configuration.host == "http://127.0.0.1:8"  # other's current-context now comes first
    skipping = os.pathsep.join([str(tmp_path / "first-without-current"), str(tmp_path / "other")])
    kube = dataclasses.replace(settings.kubernetes, kubeconfig=Path(skipping))
    assert load_api_client(kube).configuration.host == "http://127.0.0.1:8"  # an empty current-context sets nothing
    kube = dataclasses.replace(settings.kubernetes, kubeconfig=Path(os.pathsep.join([str(tmp_path / "x"), str(tmp_path / "y")])))
    with pytest.raises(SetupError, match="none of the kubeconfig files in KUBECONFIG="):
        load_api_client(kube)


def test_missing_kubeconfig_is_a_setup_error(tmp_path: Path, kube_settings: Settings) -> None:
    kube = dataclasses.replace(kube_settings.kubernetes, kubeconfig=tmp_path / "absent")
    with pytest.raises(SetupError, match="absent does not exist"):
        load_api_client(kube)


def test_in_cluster_config_is_used_without_a_kubeconfig(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kube_settings: Settings
) -> None:
    from kubernetes.config import incluster_config

    token, cert = tmp_path / "token", tmp_path / "ca.crt"
    token.write_text("sa-token")
    cert.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(cert))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    client = load_api_client(dataclasses.replace(kube_settings.kubernetes, kubeconfig=None))
    assert client.configuration.host == "https://127.0.0.1:6443"
    assert client.configuration.ssl_ca_cert == str(cert)
    assert "sa-token" in str(client.configuration.api_key)


def test_no_configuration_at_all_is_a_setup_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kube_settings: Settings
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    with pytest.raises(SetupError, match="KUBECONFIG"):
        load_api_client(dataclasses.replace(kube_settings.kubernetes, kubeconfig=None))
