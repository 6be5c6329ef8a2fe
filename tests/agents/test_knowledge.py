"""Every decision reaches MLflow (one run per agent, a record per decision) without blocking the loop."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import httpx
import pytest
from _agent_helpers import wait_for

from scanflow_argo._proc import free_port
from scanflow_argo.agents.knowledge import MlflowRecorder

pytestmark = pytest.mark.slow


def _run_tags(url: str, agent: str) -> dict[str, str]:
    exp = httpx.get(f"{url}/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "scanflow-agents"}, timeout=5)
    if exp.status_code != 200:
        return {}
    exp_id = exp.json()["experiment"]["experiment_id"]
    runs = (
        httpx.post(
            f"{url}/api/2.0/mlflow/runs/search",
            json={"experiment_ids": [exp_id], "filter": f"tags.`scanflow.agent` = '{agent}'"},
            timeout=5,
        )
        .json()
        .get("runs", [])
    )
    if len(runs) != 1:
        return {}
    return {t["key"]: t["value"] for t in runs[0]["data"].get("tags", [])}


def test_decisions_recorded_in_one_run_per_agent(mlflow_server: Any) -> None:
    agent = f"agent-{time.monotonic_ns()}"
    rec = MlflowRecorder(mlflow_server.url, agent)
    for seq in (1, 2, 3):
        rec.record(seq, {"kind": "rule", "t": time.time(), "rule": "low", "event": "fire"})
    tags = wait_for(
        lambda: (t := _run_tags(mlflow_server.url, agent)) and "decision.000003" in t and t, what="3 decisions in MLflow"
    )
    assert '"rule":"low"' in tags["decision.000001"]
    rec.close()
    # A restarted agent appends to the same run.
    again = MlflowRecorder(mlflow_server.url, agent, run_id=rec.run_id)
    again.record(4, {"kind": "action", "t": time.time()})
    wait_for(lambda: "decision.000004" in _run_tags(mlflow_server.url, agent), what="4th decision in the same run")
    again.close()


def test_mlflow_down_never_blocks() -> None:
    rec = MlflowRecorder(f"http://127.0.0.1:{free_port()}", "nobody", maxsize=3)
    t0 = time.perf_counter()
    for seq in range(10):
        rec.record(seq, {"kind": "rule", "t": time.time()})
    assert time.perf_counter() - t0 < 0.1
    wait_for(lambda: rec.last_error, what="a send error")
    assert rec.dropped >= 6 and rec.sent == 0
    rec.close(timeout=0.1)


def _mlflow(url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = httpx.post(f"{url}/api/2.0/mlflow/{path}", json=body, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_mlflow_sensor_and_alias_action_close_the_loop(mlflow_server: Any, settings: Any) -> None:
    """An MlflowQuery sensor sees the champion's version and metric; a SetModelAlias action moves the alias."""
    import asyncio

    from scanflow_argo.agents.runtime import AgentRuntime
    from scanflow_argo.agents.testing import InMemoryPlatform
    from scanflow_argo.clock import ManualClock
    from scanflow_argo.spec.agent import Agent, MlflowQuery, Plan, SetModelAlias, Threshold

    url, model = mlflow_server.url, f"m-{time.monotonic_ns()}"
    exp = _mlflow(url, "experiments/create", {"name": f"e-{model}"})["experiment_id"]
    _mlflow(url, "registered-models/create", {"name": model})
    for accuracy in (0.91, 0.97):
        run = _mlflow(url, "runs/create", {"experiment_id": exp})["run"]["info"]["run_id"]
        _mlflow(url, "runs/log-metric", {"run_id": run, "key": "accuracy", "value": accuracy, "timestamp": 0, "step": 0})
        _mlflow(url, "model-versions/create", {"name": model, "source": f"runs:/{run}/model", "run_id": run})
    _mlflow(url, "registered-models/alias", {"name": model, "alias": "champion", "version": "1"})

    agent = Agent(
        "alias-keeper",
        sensors=[MlflowQuery("champion", model, interval=1), MlflowQuery("champion-acc", model, metric="accuracy", interval=1)],
        rules=[Threshold("champion-acc", "<", 0.95, name="weak-champion")],
        plans=[Plan("weak-champion", [SetModelAlias(model, "champion", "2", name="promote")])],
        interval=1,
    )
    s = replace(settings, tracking=replace(settings.tracking, uri=url, enabled=False))
    clock = ManualClock(time.time())
    runtime = AgentRuntime(agent, s, platform=InMemoryPlatform(), clock=clock)

    async def go(n: int) -> None:
        await runtime.start(check_online=False)
        for _ in range(n):
            await runtime.step()
            clock.advance(1.0)

    asyncio.run(go(1))
    status = runtime.status()
    assert status["sensors"]["champion"]["value"] == 1 and status["sensors"]["champion-acc"]["value"] == pytest.approx(0.91)
    assert [r["status"] for r in runtime.audit.all() if r.get("kind") == "action"] == ["ok"]
    asyncio.run(go(1))
    status = runtime.status()
    assert status["sensors"]["champion"]["value"] == 2 and status["rules"]["weak-champion"]["firing"] is False
    missing = AgentRuntime(
        Agent("x", sensors=[MlflowQuery("c", model, alias="nope", interval=1)]), s, platform=InMemoryPlatform(), clock=clock
    )
    asyncio.run(missing.step())
    assert "no data" in missing.status()["sensors"]["c"]["stale"]
