"""The UI's own views (``/scanflow/api``): deployments with their model, their roll-out as the driving agent's book
records it (written here by the agent's own ``RolloutDriver``; the agent process itself drives one in
tests/serving/test_rollout_e2e.py), and live figures from a real Prometheus (scraping a real exporter of Seldon's
metric names), and agents read from the home when they are not running."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from server_helpers import Served, drive_rollout, server_settings, write_deployment

from scanflow_argo.platform.local import LocalPlatform
from scanflow_argo.server import ArgoServer, ServerOptions, load_or_create_token

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agents"))
from _agent_helpers import Exporter, wait_for

pytestmark = pytest.mark.slow

SELECTOR = {"deployment_name": "mnist"}


@pytest.fixture
def views(tmp_path: Path, prometheus_server: Any) -> Iterator[tuple[Served, Exporter]]:
    exporter = Exporter(tmp_path)
    prometheus_server.set_targets("seldon-mnist-router", [exporter.target], {})
    base = server_settings(tmp_path / "home")
    settings = replace(
        base,
        prometheus=replace(base.prometheus, url=prometheus_server.url),
        tracking=replace(base.tracking, uri="http://127.0.0.1:9"),  # no MLflow: the alias's version stays unknown
    )
    write_deployment(
        settings.home,
        {"readyReplicas": 2, "model_uri": "models:/mnist@champion"},
        namespace="scanflow",
    )
    audit = settings.home / "agents" / "sleeper"
    audit.mkdir(parents=True)
    (audit / "decisions.jsonl").write_text(json.dumps({"t": 1, "kind": "rule", "rule": "high", "event": "fire"}) + "\n")
    token = load_or_create_token(settings)
    server = ArgoServer(LocalPlatform(settings), settings, token, ServerOptions(port=0)).start()
    try:
        yield Served(server, settings, LocalPlatform(settings), token), exporter
    finally:
        server.stop()
        exporter.stop()


def test_deployments_show_the_rollout_of_the_agents_book(views: tuple[Served, Exporter]) -> None:
    served, _ = views
    with served.client() as c:
        assert c.get("/scanflow/api/deployments").json()["items"][0]["rollout"] is None  # no agent rolls it out
        state = drive_rollout(served.settings.home)
        (item,) = c.get("/scanflow/api/deployments").json()["items"]
        rollout = item["rollout"]
        assert (rollout["step"], rollout["weight"], rollout["phase"]) == ("0/2", 50, "Paused")
        assert (rollout["canary"], rollout["agent"]) == ("models:/mnist/3", "roller")
        assert "accuracy" in rollout["message"] and "held" not in rollout
        with state.update() as data:  # the agent is paused (POST /pause): the page says it holds the split
            data["paused"] = True
        (item,) = c.get("/scanflow/api/deployments").json()["items"]
        assert "paused" in item["rollout"]["held"]
        (served.settings.home / "agents" / "roller" / "state.json").write_text("{not json")  # a state being replaced
        assert c.get("/scanflow/api/deployments").json()["items"][0]["rollout"] is None


def test_deployments_with_model_and_live_figures(views: tuple[Served, Exporter]) -> None:
    served, exporter = views
    exporter.set("seldon_api_executor_server_requests_seconds_count", rate=20.0, service="predictions", **SELECTOR)
    for le, rate in (("0.05", 15.0), ("0.1", 19.0), ("+Inf", 20.0)):
        exporter.set("seldon_api_executor_server_requests_seconds_bucket", rate=rate, le=le, service="predictions", **SELECTOR)
    exporter.set("seldon_api_model_feedback_reward_total", rate=9.0, **SELECTOR)
    exporter.set("seldon_api_model_feedback_total", rate=10.0, **SELECTOR)
    with served.client() as c:
        (item,) = c.get("/scanflow/api/deployments").json()["items"]
        assert (item["name"], item["replicas"], item["model"]) == ("mnist", 2, {"name": "mnist", "alias": "champion"})
        assert item["state"] == "Failed" and item["ready_replicas"] == 0  # no supervisor runs it: said, not hidden

        def figures() -> dict[str, Any] | None:
            series = c.get("/scanflow/api/deployments/mnist/metrics", params={"minutes": 5}).json()["series"]
            return series if all(series[k] for k in ("rate", "p95", "accuracy")) else None

        series = wait_for(figures, timeout=45, poll=1.0, what="the three series in Prometheus")
        # a [1m] rate of a series younger than a minute ramps up to its value (Prometheus extrapolates toward 0)
        assert 0 < series["rate"][-1][1] <= 20.0 * 1.1
        assert 0.05 < series["p95"][-1][1] <= 0.1  # histogram_quantile between the 0.05 and 0.1 buckets
        assert series["accuracy"][-1][1] == pytest.approx(0.9, rel=0.1)
        bad = c.get("/scanflow/api/deployments/mnist/metrics", params={"minutes": 0})
        assert bad.status_code == 400 and bad.json()["code"] == 3


def test_agents_not_running_show_their_audit_log(views: tuple[Served, Exporter]) -> None:
    served, _ = views
    with served.client() as c:
        assert c.get("/scanflow/api/agents").json() == {"items": [{"name": "sleeper", "running": False}]}
        page = c.get("/scanflow/api/agents/sleeper/decisions").json()
        assert page["total"] == 1 and page["decisions"][0]["event"] == "fire"
        refused = c.post("/scanflow/api/agents/sleeper/pause")
        assert refused.status_code == 503 and "not running" in refused.json()["message"]
        assert c.get("/scanflow/api/agents/..%2F..%2Fserver/decisions").status_code in (400, 404)
        assert c.get("/scanflow/api/agents/nobody/decisions").status_code == 404
