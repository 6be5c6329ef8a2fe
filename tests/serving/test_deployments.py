"""Local SeldonDeployments end to end: real seldon-core microservices, the router, Prometheus, scale and roll under traffic."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from scanflow_argo import _proc
from scanflow_argo.errors import NotFoundError
from scanflow_argo.serving.controller import LocalDeployments, deployment_manifest
from scanflow_argo.serving.model import TorchClassifier
from scanflow_argo.settings import Settings

from ._models import mnist
from .conftest import Traffic, deployment_processes, deployment_state, post_json, predict_body, probs

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
NAME = "mnist"


def _settings(home: Path) -> Settings:
    from dataclasses import replace

    s = Settings.from_env(environ={}).with_home(home)
    return replace(s, serving=replace(s.serving, venv=ROOT / ".venv-serving", start_timeout=120.0, drain_seconds=5.0))


@pytest.fixture(scope="module")
def msettings(tmp_path_factory: pytest.TempPathFactory, serving_python: Path) -> Settings:
    return _settings(tmp_path_factory.mktemp("serving-home"))


@pytest.fixture(scope="module")
def deployed(msettings: Settings, model_v1: Path, prom):
    deployments = LocalDeployments(msettings)
    status = deployments.apply(deployment_manifest(NAME, str(model_v1), 2, "scanflow"))
    try:
        yield deployments, status
    finally:
        if NAME in deployments.list():
            deployments.delete(NAME)


def _state(msettings: Settings) -> dict:
    return deployment_state(msettings.home, NAME)


def test_predictions_and_feedback_through_the_router_reach_both_replicas(deployed, msettings: Settings) -> None:
    _, status = deployed
    assert (status.state, status.replicas, status.ready_replicas, status.namespace) == ("Available", 2, 2, "scanflow")
    x, y = mnist()
    with httpx.Client(timeout=30) as client:
        for i in range(8):
            p = probs(post_json(client, f"{status.endpoint}/api/v1.0/predictions", predict_body(i, 4)))
            assert p.shape == (4, 10)
            np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-6)
        seldon_path = f"{status.endpoint}/seldon/scanflow/{NAME}/api/v1.0/predictions"
        assert probs(post_json(client, seldon_path, predict_body(0, 1))).shape == (1, 10)
        for i in range(4):
            request = {"data": {"ndarray": x[i : i + 1].reshape(1, -1).tolist()}}
            resp = post_json(
                client, f"{status.endpoint}/api/v1.0/feedback", {"request": request, "truth": {"data": {"ndarray": [int(y[i])]}}}
            )
            assert resp.status_code == 200, resp.text
            assert resp.json()["meta"]["tags"]["reward"] in (0.0, 1.0)
        bad = post_json(client, f"{status.endpoint}/api/v1.0/predictions", {"data": {"ndarray": [[1, 2, 3]]}})
        assert bad.status_code == 400 and "input_shape" in bad.text
        # Both replicas answered: each one's metrics port shows the confidence gauge of its predictions.
        replicas = _state(msettings)["replicaProcesses"]
        assert len(replicas) == 2
        feedback_total = 0.0
        for rep in replicas:
            text = client.get(f"http://127.0.0.1:{rep['metrics_port']}/metrics").text
            assert "prediction_confidence{" in text and 'deployment_name="mnist"' in text and 'model_name="classifier"' in text
            assert "drift_score{" in text
            feedback_total += sum(
                float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("seldon_api_model_feedback_total{")
            )
        assert feedback_total == 4
    stored = list((Path(msettings.home) / "feedback" / NAME).glob("*.npz"))
    assert len(stored) == 4


def test_every_payload_format_gets_the_same_probabilities_through_the_microservice(deployed, model_v1: Path) -> None:
    import base64

    _, status = deployed
    x, _ = mnist()
    batch = x[:3].reshape(3, -1).astype(np.float32)
    expected = TorchClassifier(model_dir=str(model_v1)).predict(batch, [])
    url = f"{status.endpoint}/api/v1.0/predictions"
    with httpx.Client(timeout=30) as client:
        answers = {
            "ndarray": post_json(client, url, {"data": {"ndarray": batch.tolist()}, "meta": {"puid": "abc"}}),
            "tensor": post_json(client, url, {"data": {"tensor": {"shape": [3, 784], "values": batch.ravel().tolist()}}}),
            "binData": post_json(client, url, {"binData": base64.b64encode(batch.astype("<f4").tobytes()).decode()}),
        }
        for kind, resp in answers.items():
            assert resp.status_code == 200, resp.text
            body = resp.json()
            # seldon-core's default (INCLUDE_METRICS_IN_CLIENT_RESPONSE=true) also puts the gauges in the answer
            assert {m["key"] for m in body["meta"]["metrics"]} == {"prediction_confidence", "drift_score"}
            data = body["data"]
            got = (
                np.asarray(data["ndarray"])
                if kind == "ndarray"
                else np.asarray(data["tensor"]["values"]).reshape(data["tensor"]["shape"])
            )
            np.testing.assert_allclose(got, expected, rtol=1e-5, err_msg=kind)
        assert answers["ndarray"].json()["meta"]["puid"] == "abc"
        bad = post_json(client, url, {"binData": base64.b64encode(b"12345").decode()})
        assert bad.status_code == 400 and "float32" in bad.text


def test_router_exports_the_executor_request_metrics(deployed) -> None:
    _, status = deployed
    text = httpx.get(f"{status.endpoint}/metrics").text
    line = next(
        line
        for line in text.splitlines()
        if line.startswith("seldon_api_executor_server_requests_seconds_count{")
        and 'service="predictions"' in line
        and 'code="200"' in line
    )
    for label in ('deployment_name="mnist"', 'predictor_name="default"', 'model_name="classifier"', 'method="post"'):
        assert label in line
    assert float(line.rsplit(" ", 1)[1]) >= 9
    assert 'service="feedback"' in text and 'code="400"' in text
    client = next(
        line
        for line in text.splitlines()
        if line.startswith("seldon_api_executor_client_requests_seconds_count{") and 'code="200"' in line
    )
    assert 'model_name="classifier"' in client and 'service="predictions"' in client
    assert httpx.get(f"{status.endpoint}/ready").status_code == 200


def test_prometheus_scrapes_router_and_replicas_with_seldon_names(deployed, prom) -> None:
    queries = {
        "router": 'sum(seldon_api_executor_server_requests_seconds_count{deployment_name="mnist",service="predictions"})',
        "feedback": 'sum(seldon_api_model_feedback_total{deployment_name="mnist"})',
        "reward": 'sum(seldon_api_model_feedback_reward_total{deployment_name="mnist"})',
        "drift": 'max(drift_score{deployment_name="mnist"})',
    }

    def settled(found: dict[str, float]) -> bool:
        # Each replica is scraped on its own schedule: wait until every one has been seen.
        return set(found) == set(queries) and found["router"] >= 9 and found["feedback"] == 4

    deadline = time.monotonic() + 45
    found: dict[str, float] = {}
    while time.monotonic() < deadline and not settled(found):
        for key, promql in queries.items():
            result = prom.query(promql)
            if result:
                found[key] = float(result[0]["value"][1])
        time.sleep(0.25)
    assert settled(found), f"Prometheus has {found}; targets: {prom.targets()}"
    assert 0 <= found["reward"] <= 4 and 0 <= found["drift"] < 1
    jobs = {t["labels"]["job"] for t in prom.targets() if t["health"] == "up"}
    assert {"seldon-mnist-router", "seldon-mnist-models"} <= jobs


def test_scale_1_3_1_under_traffic_without_failed_requests(deployed, msettings: Settings) -> None:
    deployments, status = deployed
    with Traffic(status.endpoint) as traffic:
        traffic.wait_for(20)
        for n in (1, 3, 1):
            after = deployments.scale(NAME, n)
            assert (after.replicas, after.ready_replicas, after.state) == (n, n, "Available")
            assert len(_state(msettings)["replicaProcesses"]) == n
            traffic.wait_for(20)
    assert traffic.failed == 0, (traffic.outcomes, traffic.errors)
    assert traffic.count() >= 80
    targets = json.loads((Path(msettings.home) / "prometheus" / "targets" / "seldon-mnist-models.json").read_text())
    assert len(targets[0]["targets"]) == 1


def test_roll_to_a_new_version_under_traffic_without_failed_requests(deployed, msettings: Settings, model_v2: Path) -> None:
    deployments, status = deployed
    with Traffic(status.endpoint) as traffic:
        deployments.scale(NAME, 2)
        traffic.wait_for(20)
        old_pids = {r["pid"] for r in _state(msettings)["replicaProcesses"]}
        after = deployments.roll(NAME, str(model_v2))
        traffic.wait_for(20)
    assert traffic.failed == 0, (traffic.outcomes, traffic.errors)
    assert (after.model_uri, after.ready_replicas, after.state) == (str(model_v2), 2, "Available")
    replicas = _state(msettings)["replicaProcesses"]
    assert {r["model_uri"] for r in replicas} == {str(model_v2)}
    assert not old_pids & {r["pid"] for r in replicas}
    assert not any(_proc._group_alive(pid) for pid in old_pids)
    # The router now answers with version 2's network.
    expected = TorchClassifier(model_dir=str(model_v2)).predict(mnist()[0][:4], [])
    served = probs(
        httpx.post(
            f"{status.endpoint}/api/v1.0/predictions", content=predict_body(0, 4), headers={"Content-Type": "application/json"}
        )
    )
    np.testing.assert_allclose(served, expected, rtol=1e-4, atol=1e-6)


def test_delete_stops_every_process_and_frees_the_ports(deployed, msettings: Settings) -> None:
    deployments, status = deployed
    pids, ports = deployment_processes(msettings.home, NAME, status.endpoint)
    deployments.delete(NAME)
    assert not any(_proc._group_alive(pid) for pid in pids)
    assert not any(_proc.port_in_use(port) for port in ports)
    for job in ("seldon-mnist-router", "seldon-mnist-models"):
        assert json.loads((Path(msettings.home) / "prometheus" / "targets" / f"{job}.json").read_text()) == []
    with pytest.raises(NotFoundError, match="mnist"):
        deployments.get(NAME)


def test_a_killed_supervisor_leaves_no_replica_and_a_successor_takes_over(
    tmp_path: Path, model_v1: Path, serving_python: Path
) -> None:
    deployments = LocalDeployments(_settings(tmp_path / "home"))
    folder = tmp_path / "home" / "deployments" / "solo"
    try:
        deployments.apply(deployment_manifest("solo", str(model_v1), 1))
        supervisor = json.loads((folder / "supervisor.json").read_text())["pid"]
        replica = json.loads((folder / "status.json").read_text())["replicaProcesses"][0]["pid"]
        os.kill(supervisor, 9)
        deadline = time.monotonic() + 40
        while _proc._group_alive(replica) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _proc._group_alive(replica), "replica outlived its supervisor"
        assert deployments.get("solo").state == "Failed"
        again = deployments.scale("solo", 1)
        assert (again.state, again.ready_replicas) == ("Available", 1)
    finally:
        deployments.delete("solo")
