"""A paused agent holds its roll-outs: its loop measures and moves nothing, a start or a promote through its API is
refused (409) until it resumes, ``GET /rollouts`` and ``scanflow-argo rollout status`` say it is paused, and an abort
still takes all traffic back to stable. The agent is ``serve()`` on 127.0.0.1 with a real Prometheus; the platform is
the in-memory one (it refuses a split Seldon's webhook refuses), so every ``set_predictors`` is counted.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import httpx
import pytest
from _agent_helpers import ServeThread, wait_for

from scanflow_argo.agents.runtime import AgentRuntime
from scanflow_argo.agents.testing import InMemoryPlatform
from scanflow_argo.cli import main
from scanflow_argo.settings import Settings
from scanflow_argo.spec.agent import Agent

pytestmark = pytest.mark.slow
TOKEN = "paused-agent-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PASSES = {  # Successful three times, one a second: the step's analysis lasts ~2 s, longer than it takes to pause
    "name": "always",
    "provider": {"prometheus": {"query": "vector(1)"}},
    "interval": "1s",
    "count": 3,
    "successCondition": "result[0] >= 1",
}
START = {"model_uri": "models:/mnist/2", "version": "2", "steps": [{"setWeight": 50}, {"setWeight": 100}], "analysis": [PASSES]}


def _splits(platform: InMemoryPlatform) -> int:
    return sum(1 for call in platform.calls() if call[0] == "set_predictors")


def test_a_paused_agent_holds_its_rollout_until_it_resumes(settings: Settings, prom: Any, capsys: Any, monkeypatch) -> None:
    monkeypatch.setenv("SCANFLOW_AGENT_TOKEN", TOKEN)
    settings = replace(
        settings, prometheus=replace(settings.prometheus, url=prom.url), tracking=replace(settings.tracking, enabled=False)
    )
    platform = InMemoryPlatform()
    platform.add_deployment("mnist", replicas=1, model_uri="models:/mnist/1")
    runtime = AgentRuntime(Agent("roller", interval=0.1), settings, platform=platform)
    served = ServeThread(runtime, TOKEN, settings.home)
    try:
        with httpx.Client(base_url=served.url, headers=AUTH, timeout=30) as c:
            assert c.post("/rollouts/mnist", json=START).status_code == 201
            assert c.post("/pause").json() == {"paused": True}
            held = c.get("/rollouts/mnist").json()
            assert (held["state"]["phase"], held["state"]["step"], held["agent_paused"]) == ("Progressing", 0, True)
            splits, taken = _splits(platform), len(held["measurements"].get("always", []))
            time.sleep(3.0)  # past the analysis' three measurements: a running agent would be at step 1 by now
            after = c.get("/rollouts/mnist").json()
            assert (after["state"], len(after["measurements"].get("always", []))) == (held["state"], taken)
            assert _splits(platform) == splits  # the split is held: nothing was set while paused
            assert [(p.name, p.traffic) for p in platform.get_deployment("mnist").predictors] == [("default", 50), ("canary", 50)]

            for path, body in (("/rollouts/mnist/promote", {}), ("/rollouts/other", START)):
                refused = c.post(path, json=body)
                assert refused.status_code == 409 and "is paused" in refused.json()["error"], refused.text
            assert main(["--home", str(settings.home), "rollout", "status", "mnist"]) == 0
            shown = capsys.readouterr().out
            assert "Progressing at step 0/2" in shown and "agent roller is paused" in shown

            assert c.post("/resume").json() == {"paused": False}  # the analysis goes on: promoted to the canary
            wait_for(lambda: c.get("/rollouts/mnist").json().get("settled"), timeout=30, what="the roll-out to finish")
            assert c.get("/rollouts/mnist").json()["state"]["phase"] == "Healthy"
            assert [(p.name, p.traffic) for p in platform.get_deployment("mnist").predictors] == [("canary", 100)]

            assert c.post("/rollouts/mnist", json={**START, "canary": "next"}).status_code == 201
            assert c.post("/pause").status_code == 200  # an abort of a paused agent's roll-out still goes through
            aborted = c.post("/rollouts/mnist/abort", json={"reason": "bob stops it"})
            assert aborted.status_code == 200 and aborted.json()["phase"] == "Degraded"
            assert [(p.name, p.traffic) for p in platform.get_deployment("mnist").predictors] == [("canary", 100)]
    finally:
        served.close()
