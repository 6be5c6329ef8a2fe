"""The serving engine (a deployment's supervisor: router and replicas) SIGKILLed in the middle of a roll-out's
split, on real seldon-core replicas: what the deployment says while its successor starts, what callers see, and
that the split and the promotion after it serve every request.

A killed supervisor's replicas die with it (their parent-death signal) and its router with it, so requests are
refused until a successor listens — the agent driving the roll-out starts one when it sets the split again
(``agents/canary.py``). Found here: the successor's ``get()`` said ``Available`` with the dead one's ready
replicas (its ``status.json``), so the driver saw its split served while nothing answered; and the new router
answered 503 to every request until its first replica was ready. Now the status is the live supervisor's only,
and a starting router holds requests for its first replica (``router.py``, ``hold_seconds``).
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import replace
from pathlib import Path

import pytest

from scanflow_argo.serving.controller import LocalDeployments, deployment_manifest
from scanflow_argo.settings import Settings

from .conftest import Traffic

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
REFUSED = {"ConnectError", "ReadError", "RemoteProtocolError"}
"""What a caller sees while no router listens (the connection refused, or cut by the kill)."""


def test_a_killed_engine_comes_back_with_its_split_and_serves_every_request_after(
    tmp_path: Path, serving_python: Path, model_v1: Path, model_v2: Path
) -> None:
    settings = Settings.from_env(environ={}).with_home(tmp_path / "home")
    settings = replace(settings, serving=replace(settings.serving, venv=ROOT / ".venv-serving", start_timeout=120.0))
    deployments = LocalDeployments(settings)
    manifest = deployment_manifest("mnist", str(model_v1), 1)
    manifest["spec"]["predictors"][0]["name"] = "main"
    status = deployments.apply(manifest)
    stable = dict(status.predictors[0].spec)
    canary = {**stable, "name": "canary", "graph": {**stable["graph"], "modelUri": str(model_v2)}}
    split = [{**stable, "traffic": 50}, {**canary, "traffic": 50}]
    deployments.set_predictors("mnist", split)
    try:
        with Traffic(status.endpoint or "", threads=2, max_seconds=300) as traffic:
            traffic.wait_for(10)
            assert traffic.failed == 0, traffic.errors
            pid = json.loads((settings.home / "deployments" / "mnist" / "supervisor.json").read_text())["pid"]
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while deployments.get("mnist").state != "Failed":  # nobody supervises it: said at once
                assert time.monotonic() < deadline
                time.sleep(0.05)

            deployments._ensure_supervisor("mnist")  # what set_predictors does first when the engine is gone
            successor = deployments.get("mnist")
            assert (successor.state, [p.ready_replicas for p in successor.predictors]) == ("Creating", [0, 0])

            status = deployments.set_predictors("mnist", split)  # the agent sets its split again
            assert status.state == "Available" and [(p.name, p.traffic, p.ready_replicas) for p in status.predictors] == [
                ("main", 50, 1),
                ("canary", 50, 1),
            ]
            outage = dict(traffic.outcomes)
            assert set(outage) - {"200"} <= REFUSED, outage  # refused while no router listened; never a 503
            traffic.wait_for(40)
            assert dict(traffic.outcomes, **{"200": 0}) == dict(outage, **{"200": 0}), traffic.errors  # none since

            status = deployments.set_predictors("mnist", [{**canary, "traffic": 100}])  # promoted: the router goes on
            traffic.wait_for(40)
            assert dict(traffic.outcomes, **{"200": 0}) == dict(outage, **{"200": 0}), traffic.errors
            assert [p.name for p in deployments.get("mnist").predictors] == ["canary"]
    finally:
        deployments.delete("mnist")
