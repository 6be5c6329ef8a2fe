"""KubernetesPlatform deployments: SeldonDeployments read and merge-patched on the fake Kubernetes API."""

from __future__ import annotations

from dataclasses import replace

import pytest
from fakeapi import FakeCluster
from k8s_helpers import NAMESPACE, make_platform, seldon

from scanflow_argo.errors import ConflictError, NotFoundError, PlatformError, UnavailableError
from scanflow_argo.platform.kubernetes import KubernetesPlatform

SDEP_PATH = f"/apis/machinelearning.seldon.io/v1/namespaces/{NAMESPACE}/seldondeployments"


@pytest.fixture
def platform(kube_settings, fake: FakeCluster) -> KubernetesPlatform:
    return make_platform(
        kube_settings, fake, "crd", model_resolver=lambda uri: {"models:/mnist@champion": "s3://bucket/mnist/7"}[uri]
    )


def test_get_deployment_reads_desired_and_ready(platform: KubernetesPlatform, fake: FakeCluster) -> None:
    fake.put(seldon(replicas=3))
    status = platform.get_deployment("mnist")
    assert (status.replicas, status.ready_replicas, status.state, status.model_uri) == (3, 0, "Creating", "s3://models/mnist/1")
    fake.set_status(
        "seldondeployments",
        NAMESPACE,
        "mnist",
        {
            "state": "Available",
            "replicas": 3,
            "address": {"url": "http://mnist-default.scanflow.svc.cluster.local:8000/api/v1.0/predictions"},
            "deploymentStatus": {"mnist-default-0-classifier": {"replicas": 3, "availableReplicas": 2}},
        },
    )
    status = platform.get_deployment("mnist")
    assert (status.ready_replicas, status.state, status.predictor, status.namespace) == (2, "Available", "default", NAMESPACE)
    assert status.endpoint and status.endpoint.startswith("http://mnist-default.")


def test_missing_deployment_names_namespace_and_name(platform: KubernetesPlatform) -> None:
    for act in (
        lambda: platform.get_deployment("nope"),
        lambda: platform.scale("nope", 2),
        lambda: platform.roll("nope", "models:/x@y"),
    ):
        with pytest.raises(NotFoundError, match=r"SeldonDeployment 'nope' not found in namespace 'scanflow'"):
            act()


@pytest.mark.parametrize(
    ("level", "path"),
    [
        ("spec", ("spec", "replicas")),
        ("predictor", ("spec", "predictors", 0, "replicas")),
        ("component", ("spec", "predictors", 0, "componentSpecs", 0, "replicas")),
        ("none", ("spec", "predictors", 0, "replicas")),
    ],
)
def test_scale_sets_replicas_where_the_deployment_sets_them(
    platform: KubernetesPlatform, fake: FakeCluster, level: str, path: tuple
) -> None:
    before = fake.put(seldon(level=level, replicas=1))
    status = platform.scale("mnist", 4)
    assert status.replicas == 4
    obj = fake.get("seldondeployments", NAMESPACE, "mnist")
    value = obj
    for key in path:
        value = value[key]
    assert value == 4
    assert obj["spec"]["predictors"][0]["graph"] == before["spec"]["predictors"][0]["graph"]  # nothing else changed
    (patch,) = fake.calls("PATCH", SDEP_PATH)
    assert patch.headers["content-type"] == "application/merge-patch+json"
    assert patch.body["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    # Only one level carries the count, so Seldon cannot pick another one.
    levels = [
        obj["spec"].get("replicas"),
        obj["spec"]["predictors"][0].get("replicas"),
        obj["spec"]["predictors"][0]["componentSpecs"][0].get("replicas"),
    ]
    assert [v for v in levels if v is not None] == [4]


def test_scale_retries_a_real_conflict_with_a_fresh_read(platform: KubernetesPlatform, fake: FakeCluster) -> None:
    fake.put(seldon(replicas=1))

    def concurrent_writer(cluster: FakeCluster, rec) -> None:
        if rec.method == "PATCH" and len(cluster.calls("PATCH")) == 1:
            cluster.bump("seldondeployments", NAMESPACE, "mnist")  # e.g. the operator wrote meanwhile

    fake.hooks.append(concurrent_writer)
    assert platform.scale("mnist", 2).replicas == 2
    patches = fake.calls("PATCH", SDEP_PATH)
    assert [p.status for p in patches] == [409, 200]
    assert patches[0].body["metadata"]["resourceVersion"] != patches[1].body["metadata"]["resourceVersion"]
    assert len(fake.calls("GET", SDEP_PATH)) == 2  # re-read before the retry


def test_conflicts_that_never_end_give_up(platform: KubernetesPlatform, fake: FakeCluster) -> None:
    fake.put(seldon(replicas=1))
    fake.fail_next(100, 409, method="PATCH")
    with pytest.raises(ConflictError, match="still conflicting after 5 attempts"):
        platform.scale("mnist", 3)
    assert len(fake.calls("PATCH")) == 5
    assert fake.get("seldondeployments", NAMESPACE, "mnist")["spec"]["predictors"][0]["replicas"] == 1


def test_scale_rejects_bad_counts(platform: KubernetesPlatform, fake: FakeCluster) -> None:
    fake.put(seldon())
    for bad in (-1, 1.5, True):
        with pytest.raises(PlatformError, match="integer ≥ 0"):
            platform.scale("mnist", bad)  # type: ignore[arg-type]
    assert not fake.calls("PATCH")


def test_roll_resolves_the_alias_and_sets_model_uri(platform: KubernetesPlatform, fake: FakeCluster) -> None:
    fake.put(seldon(replicas=2))
    status = platform.roll("mnist", "models:/mnist@champion")
    assert status.model_uri == "s3://bucket/mnist/7"
    obj = fake.get("seldondeployments", NAMESPACE, "mnist")
    assert obj["spec"]["predictors"][0]["graph"]["modelUri"] == "s3://bucket/mnist/7"
    assert obj["spec"]["predictors"][0]["replicas"] == 2
    assert obj["metadata"]["generation"] == 2  # a spec change: the operator rolls the pods


def test_roll_to_a_storage_uri_needs_no_registry(kube_settings, fake: FakeCluster) -> None:
    platform = make_platform(kube_settings, fake, "crd")  # default resolver
    fake.put(seldon())
    assert platform.roll("mnist", "s3://bucket/mnist/8").model_uri == "s3://bucket/mnist/8"
    with pytest.raises(PlatformError, match="cannot roll to 'mnist-v8'"):
        platform.roll("mnist", "mnist-v8")


def test_apply_deployment_creates_then_updates_keeping_rolls_and_scales(platform: KubernetesPlatform, fake: FakeCluster) -> None:
    """Re-applying the manifest changes what it says (resources, image…) but not what a roll or a scale set since:
    the predictors list is replaced whole by the API server, so apply carries the live model and replicas over."""
    platform.apply_deployment(seldon(replicas=1, uri="models:/mnist@champion"))
    assert [r.method for r in fake.calls(contains=SDEP_PATH)][:2] == ["GET", "POST"]
    assert (
        fake.get("seldondeployments", NAMESPACE, "mnist")["spec"]["predictors"][0]["graph"]["modelUri"] == "s3://bucket/mnist/7"
    )
    fake.objects[("seldondeployments", NAMESPACE, "mnist")]["spec"]["predictors"][0]["graph"]["modelUri"] = (
        "s3://bucket/mnist/8"  # a later roll
    )
    platform.scale("mnist", 3)
    changed = seldon(replicas=1, uri="models:/mnist@champion")
    changed["spec"]["predictors"][0]["componentSpecs"][0]["spec"]["containers"][0]["image"] = "scanflow-argo/serving:0.2.0"
    platform.apply_deployment(changed)
    live = fake.get("seldondeployments", NAMESPACE, "mnist")
    assert live["spec"]["predictors"][0]["componentSpecs"][0]["spec"]["containers"][0]["image"] == "scanflow-argo/serving:0.2.0"
    status = platform.get_deployment("mnist")
    assert (status.model_uri, status.replicas) == ("s3://bucket/mnist/8", 3)
    put = fake.calls("PUT", SDEP_PATH)[-1]
    assert put.body["metadata"]["resourceVersion"]
    with pytest.raises(PlatformError, match="SeldonDeployment, not kind 'Deployment'"):
        platform.apply_deployment({"kind": "Deployment", "metadata": {"name": "x"}})


def test_a_deployment_without_a_model_waits_at_zero_replicas_until_its_first_roll(kube_settings, fake: FakeCluster) -> None:
    """No champion yet: created with no modelUri and 0 replicas (a model pod without a model would crash-loop);
    the first roll brings the desired replicas back. With a champion, it is served from the start."""
    from scanflow_argo.errors import NotFoundError as Missing

    def no_champion(uri: str) -> str:
        raise Missing(f"model 'mnist' has no alias 'champion' ({uri})")

    platform = make_platform(kube_settings, fake, "crd", model_resolver=no_champion)
    platform.apply_deployment(seldon(replicas=2, uri="models:/mnist@champion"))
    live = fake.get("seldondeployments", NAMESPACE, "mnist")
    assert "modelUri" not in live["spec"]["predictors"][0]["graph"] and live["spec"]["predictors"][0]["replicas"] == 0
    assert live["metadata"]["annotations"]["scanflow.io/replicas"] == "2"
    platform.apply_deployment(seldon(replicas=2, uri="models:/mnist@champion"))  # re-applied while waiting
    assert fake.get("seldondeployments", NAMESPACE, "mnist")["metadata"]["annotations"]["scanflow.io/replicas"] == "2"
    rolled = make_platform(kube_settings, fake, "crd", model_resolver=lambda uri: "s3://bucket/mnist/1").roll(
        "mnist", "models:/mnist@champion"
    )
    assert (rolled.model_uri, rolled.replicas) == ("s3://bucket/mnist/1", 2)
    assert "scanflow.io/replicas" not in (fake.get("seldondeployments", NAMESPACE, "mnist")["metadata"].get("annotations") or {})
    fake.objects.clear()
    served = make_platform(kube_settings, fake, "crd", model_resolver=lambda uri: "s3://bucket/mnist/4")
    served.apply_deployment(seldon(replicas=2, uri="models:/mnist@champion"))
    assert (served.get_deployment("mnist").model_uri, served.get_deployment("mnist").replicas) == ("s3://bucket/mnist/4", 2)


def test_delete_deployment(platform: KubernetesPlatform, fake: FakeCluster) -> None:
    fake.put(seldon())
    platform.delete_deployment("mnist")
    assert ("seldondeployments", NAMESPACE, "mnist") not in fake.objects
    with pytest.raises(NotFoundError, match="'mnist' not found in namespace 'scanflow'"):
        platform.delete_deployment("mnist")


def test_api_server_gone_is_unavailable(platform: KubernetesPlatform, fake: FakeCluster) -> None:
    fake.put(seldon())
    platform.get_deployment("mnist")
    fake.drop()
    with pytest.raises(UnavailableError, match="did not answer"):
        platform.scale("mnist", 2)


def test_server_error_is_unavailable(platform: KubernetesPlatform, fake: FakeCluster) -> None:
    fake.put(seldon())
    fake.fail_next(1, 503)
    with pytest.raises(UnavailableError, match="HTTP 503"):
        platform.get_deployment("mnist")


@pytest.mark.parametrize(
    ("traffic", "refused"),
    [((90, 10), None), ((50, 40), "adds up to 90")],
)
def test_set_predictors_merge_patches_the_split(platform: KubernetesPlatform, fake: FakeCluster, traffic, refused) -> None:
    """A roll-out's split is a merge patch of spec.predictors; one Seldon's webhook refuses is never sent."""
    fake.put(seldon(replicas=2))
    stable = fake.get("seldondeployments", NAMESPACE, "mnist")["spec"]["predictors"][0]
    canary = {**stable, "name": "canary", "graph": {**stable["graph"], "modelUri": "s3://bucket/mnist/8"}}
    shadow = {**stable, "name": "shadow", "shadow": True}
    wanted = [{**stable, "traffic": traffic[0]}, {**canary, "traffic": traffic[1]}, shadow]
    if refused:
        with pytest.raises(PlatformError, match=refused):
            platform.deployments.set_predictors("mnist", wanted)
        assert not fake.calls("PATCH")
        return
    platform.deployments.set_predictors("mnist", wanted)
    obj = fake.get("seldondeployments", NAMESPACE, "mnist")
    assert [(p["name"], p.get("traffic"), p.get("shadow")) for p in obj["spec"]["predictors"]] == [
        (stable["name"], 90, None),
        ("canary", 10, None),
        ("shadow", None, True),
    ]
    platform.deployments.set_predictors("mnist", [{**stable, "traffic": 100}])  # abort: back to stable alone
    assert [p["name"] for p in fake.get("seldondeployments", NAMESPACE, "mnist")["spec"]["predictors"]] == [stable["name"]]


def test_a_canary_naming_the_registry_gets_its_storage_uri(kube_settings, fake: FakeCluster) -> None:
    """A roll-out's canary names ``models:/NAME/VERSION`` (agents/canary.py): the cluster gets the storage URI, as a
    roll does — Seldon's storage initializer downloads s3://, gs://, pvc:// URIs (seldon-core 1.18
    ``components/storage-initializer``), never MLflow references — with the storage Secret of a bucket URI."""
    settings = replace(kube_settings, kubernetes=replace(kube_settings.kubernetes, seldon_storage_config="seldon-init"))
    platform = make_platform(settings, fake, "crd", model_resolver=lambda uri: {"models:/mnist/8": "s3://bucket/mnist/8"}[uri])
    fake.put(seldon(replicas=2))
    stable = fake.get("seldondeployments", NAMESPACE, "mnist")["spec"]["predictors"][0]
    canary = {**stable, "name": "v8", "graph": {**stable["graph"], "modelUri": "models:/mnist/8"}}
    platform.set_predictors("mnist", [{**stable, "traffic": 80}, {**canary, "traffic": 20}])
    graphs = {p["name"]: p["graph"] for p in fake.get("seldondeployments", NAMESPACE, "mnist")["spec"]["predictors"]}
    assert graphs["v8"]["modelUri"] == "s3://bucket/mnist/8" and graphs["v8"]["envSecretRefName"] == "seldon-init"
    assert graphs[stable["name"]]["modelUri"] == stable["graph"]["modelUri"]
    with pytest.raises(PlatformError, match="names models:/mnist/8, which Seldon cannot download"):
        platform.deployments.set_predictors("mnist", [{**canary, "traffic": 100}])  # no registry to ask


def _split(status) -> list[tuple[str, int, bool, int, int, str | None]]:
    return [(p.name, p.traffic, p.shadow, p.replicas, p.ready_replicas, p.model_uri) for p in status.predictors]


def test_get_deployment_lists_every_predictor_with_its_share_replicas_and_readiness(
    platform: KubernetesPlatform, fake: FakeCluster
) -> None:
    """``DeploymentStatus.predictors`` from spec.predictors and status.deploymentStatus, as the local controller
    gives it: what a roll-out on the cluster reads back (its canary copied from the stable predictor's spec)."""
    fake.put(seldon(replicas=2))
    alone = platform.get_deployment("mnist")
    assert _split(alone) == [("default", 100, False, 2, 0, "s3://models/mnist/1")]  # one predictor: all traffic
    stable = dict(alone.predictors[0].spec)
    assert stable["name"] == "default" and stable["graph"]["modelUri"] == "s3://models/mnist/1"
    canary = {**stable, "name": "canary", "replicas": 1, "graph": {**stable["graph"], "modelUri": "s3://bucket/mnist/8"}}
    platform.deployments.set_predictors("mnist", [{**stable, "traffic": 90}, {**canary, "traffic": 10}])
    fake.set_status(
        "seldondeployments",
        NAMESPACE,
        "mnist",
        {
            "state": "Available",
            "replicas": 3,
            "deploymentStatus": {
                "mnist-default-0-classifier": {"replicas": 2, "availableReplicas": 2},
                "mnist-canary-0-classifier": {"replicas": 1, "availableReplicas": 0},
                "mnist-canary-x-0-classifier": {"replicas": 1, "availableReplicas": 1},  # another predictor's
            },
        },
    )
    status = platform.get_deployment("mnist")
    assert _split(status) == [
        ("default", 90, False, 2, 2, "s3://models/mnist/1"),
        ("canary", 10, False, 1, 0, "s3://bucket/mnist/8"),
    ]
    assert (status.ready_replicas, status.model_uri) == (2, "s3://models/mnist/1")  # the first predictor's, as before
    platform.deployments.set_predictors("mnist", [{**stable, "traffic": 100}, {**canary, "shadow": True}])
    assert _split(platform.get_deployment("mnist"))[1][:3] == ("canary", 0, True)
