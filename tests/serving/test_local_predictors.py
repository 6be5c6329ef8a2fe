"""Several predictors of one local SeldonDeployment: stable + canary by traffic weight + a shadow, on real replicas.

The controller runs each predictor's replicas (seldon-core microservices labelled with their predictor),
the router splits by the predictors' ``traffic`` (seeded), mirrors to the shadow, sends feedback to the
predictor that answered; Prometheus sees each predictor under ``predictor_name`` as on the cluster.
Changing the predictors (canary added, removed) fails no request; ``scanflow-argo status`` shows them.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from scanflow_argo.cli import main
from scanflow_argo.errors import SpecError
from scanflow_argo.serving.controller import LocalDeployments, deployment_manifest, parse_predictors
from scanflow_argo.settings import Settings

from ._models import mnist
from .conftest import Traffic, deployment_state, post_json, predict_body

ROOT = Path(__file__).resolve().parents[2]
NAME = "mnist"


def _manifest(predictors: list[dict]) -> dict:
    manifest = deployment_manifest(NAME, "/nowhere", 1)
    manifest["spec"]["predictors"] = predictors
    return manifest


def _pred(name: str, uri: str = "/m", **fields: object) -> dict:
    return {"name": name, "replicas": 1, "graph": {"name": "classifier", "type": "MODEL", "modelUri": uri}, **fields}


@pytest.mark.parametrize(
    ("predictors", "expected"),
    [
        ([_pred("default")], [("default", 100, False)]),
        ([_pred("stable", traffic=90), _pred("canary", traffic=10)], [("stable", 90, False), ("canary", 10, False)]),
        ([_pred("stable", traffic=100), _pred("shade", shadow=True)], [("stable", 100, False), ("shade", 0, True)]),
        ([_pred("stable", traffic=80), _pred("canary", traffic=30)], "adds up to 110"),
        ([_pred("stable", traffic=50), _pred("stable", traffic=50)], "used twice"),
        ([_pred("shade", shadow=True)], "every predictor is a shadow"),
        (
            [_pred("stable", traffic=100), {"name": "canary", "traffic": 0, "graph": {"name": "c"}}],
            r"predictors\[1\].graph.modelUri",
        ),
    ],
)
def test_predictors_are_read_and_checked_as_seldon_does(predictors: list[dict], expected: object) -> None:
    if isinstance(expected, str):
        with pytest.raises(SpecError, match=expected):
            parse_predictors(_manifest(predictors))
        return
    got = [(p.predictor, p.traffic, p.shadow) for p in parse_predictors(_manifest(predictors))]
    assert got == expected


def _settings(home: Path) -> Settings:
    s = Settings.from_env(environ={}).with_home(home)
    return replace(s, serving=replace(s.serving, venv=ROOT / ".venv-serving", start_timeout=120.0, drain_seconds=5.0))


@pytest.fixture(scope="module")
def msettings(tmp_path_factory: pytest.TempPathFactory, serving_python: Path) -> Settings:
    return _settings(tmp_path_factory.mktemp("predictors-home"))


def _counts(text: str, metric: str) -> dict[str, float]:
    """``metric``'s predictions count per predictor_name in a /metrics page."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(metric + "{") and 'service="predictions"' in line:
            pred = re.search(r'predictor_name="([^"]*)"', line)
            assert pred is not None
            out[pred.group(1)] = out.get(pred.group(1), 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def _query(prom, promql: str) -> dict[str, float]:
    resp = httpx.get(f"{prom.url}/api/v1/query", params={"query": promql}, timeout=10).json()
    return {r["metric"].get("predictor_name", ""): float(r["value"][1]) for r in resp["data"]["result"]}


@pytest.mark.slow
def test_canary_and_shadow_predictors_on_real_replicas(
    msettings: Settings, model_v1: Path, model_v2: Path, prom, capsys: pytest.CaptureFixture[str]
) -> None:
    deployments = LocalDeployments(msettings)
    stable = _pred("stable", str(model_v1))
    status = deployments.apply(_manifest([stable]))
    try:
        assert [p.name for p in status.predictors] == ["stable"]
        canary, shade = _pred("canary", str(model_v2)), _pred("shade", str(model_v2))
        with Traffic(status.endpoint or "", threads=2) as traffic:
            traffic.wait_for(10)
            split = [{**stable, "traffic": 70}, {**canary, "traffic": 30}, {**shade, "shadow": True}]
            status = deployments.set_predictors(NAME, split)
            traffic.wait_for(20)
        assert traffic.failed == 0, traffic.errors
        assert [(p.name, p.traffic, p.shadow, p.ready_replicas) for p in status.predictors] == [
            ("stable", 70, False, 1),
            ("canary", 30, False, 1),
            ("shade", 0, True, 1),
        ]
        assert (status.predictor, status.replicas, status.ready_replicas, status.model_uri) == ("stable", 1, 1, str(model_v1))
        procs = deployment_state(msettings.home, NAME)["replicaProcesses"]
        assert sorted(p["predictor"] for p in procs) == ["canary", "shade", "stable"]

        endpoint = status.endpoint or ""
        before = _counts(httpx.get(endpoint + "/metrics").text, "seldon_api_executor_server_requests_seconds_count")
        answered: dict[str, list[str]] = {}
        with httpx.Client(timeout=30) as client:
            for i in range(200):
                resp = post_json(client, endpoint + "/api/v1.0/predictions", predict_body(i % 50, 1))
                assert resp.status_code == 200, resp.text
                answered.setdefault("puids", []).append(resp.headers["Seldon-Puid"])
            after_text = client.get(endpoint + "/metrics").text
            after = _counts(after_text, "seldon_api_executor_server_requests_seconds_count")
            served = {k: after.get(k, 0) - before.get(k, 0) for k in ("stable", "canary", "shade")}
            assert served["shade"] == 0 and served["stable"] + served["canary"] == 200  # a shadow never answers
            assert 0.15 <= served["canary"] / 200 <= 0.45, served  # 30% of the traffic, seeded draws
            mirrored = _counts(after_text, "seldon_api_executor_client_requests_seconds_count")
            assert mirrored.get("shade", 0) > 0  # the shadow got copies (its answers discarded)
            x, y = mnist()
            for i, puid in enumerate(answered["puids"][:20]):  # feedback goes to whichever predictor answered each puid
                body = {
                    "request": {"data": {"ndarray": x[i % 50 : i % 50 + 1].reshape(1, -1).tolist()}},
                    "response": {"meta": {"puid": puid}},
                    "truth": {"data": {"ndarray": [int(y[i % 50])]}},
                }
                fb = client.post(
                    endpoint + "/api/v1.0/feedback",
                    content=json.dumps(body).encode(),
                    headers={"Content-Type": "application/json", "Seldon-Puid": puid},
                )
                assert fb.status_code == 200, fb.text
        # Prometheus reads every predictor under predictor_name, from the router and from the replicas.
        promql = f'sum by (predictor_name) (seldon_api_executor_server_requests_seconds_count{{deployment_name="{NAME}",service="predictions"}})'
        feedback = f'sum by (predictor_name) (seldon_api_model_feedback_total{{deployment_name="{NAME}"}})'
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            routed, fed = _query(prom, promql), _query(prom, feedback)
            if {"stable", "canary"} <= set(routed) and sum(fed.values()) >= 20:
                break
            time.sleep(0.5)
        assert {"stable", "canary"} <= set(routed), routed
        assert sum(fed.values()) >= 20 and set(fed) <= {"stable", "canary"}, fed

        assert main(["--home", str(msettings.home), "status", "--deployment", NAME]) == 0
        out = capsys.readouterr().out
        assert re.search(r"predictor canary\s+30%\s+replicas 1/1", out) and re.search(r"predictor shade\s+shadow", out), out

        with Traffic(endpoint, threads=2) as traffic:  # abort: back to stable alone, canary and shadow stopped
            traffic.wait_for(10)
            status = deployments.set_predictors(NAME, [{**stable, "traffic": 100}])
            traffic.wait_for(20)
        assert traffic.failed == 0, traffic.errors
        assert [(p.name, p.traffic) for p in status.predictors] == [("stable", 100)]
        assert [p["predictor"] for p in deployment_state(msettings.home, NAME)["replicaProcesses"]] == ["stable"]
        with pytest.raises(SpecError, match="adds up to 90"):  # refused before anything changes
            deployments.set_predictors(NAME, [{**stable, "traffic": 60}, {**canary, "traffic": 30}])
        assert [p.name for p in deployments.get(NAME).predictors] == ["stable"]
    finally:
        deployments.delete(NAME)
