"""The case study's second challenger on real pieces: a network with much more compute per answer (too slow
online) rolled out as a canary with ``agents/mnist.py``'s ``canary_analysis`` — its p95 measured by a real
Prometheus from the router's metrics breaches the SLO, the analysis fails, and the agent's roll-out driver
(``agents/canary.py``) sends all traffic back to the stable predictor at once; only the canary's share of the
requests ever reached it and no request failed. A small challenger then goes through the same steps and is
promoted (the registry's alias moved, the old version kept as ``previous``).
"""

from __future__ import annotations

import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from agents.mnist import canary_analysis
from scanflow_argo.agents.canary import RolloutDriver
from scanflow_argo.agents.rollouts import RolloutBook
from scanflow_argo.agents.state import AgentState
from scanflow_argo.platform.local import LocalPlatform
from scanflow_argo.serving.controller import deployment_manifest
from scanflow_argo.settings import Settings

from ._models import make_slow_model_dir
from .conftest import Traffic

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow
SLO = 0.05
"""p95 objective (seconds; an executor bucket bound): the small MLPs answer in a few ms; the wide one is made to
take at least 0.08 s to compute (above the next bucket bound, 0.075 s), so every answer it gives lands above the SLO."""
STEPS = [{"setWeight": 20}, {"setWeight": 100}]


@pytest.fixture(scope="module")
def msettings(tmp_path_factory: pytest.TempPathFactory, serving_python: Path) -> Settings:
    s = Settings.from_env(environ={}).with_home(tmp_path_factory.mktemp("challenger-home"))
    return replace(
        s,
        serving=replace(s.serving, venv=ROOT / ".venv-serving", start_timeout=120.0, drain_seconds=2.0),
        tracking=replace(s.tracking, enabled=False),
    )


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """As much compute per answer as this machine needs 0.08 s for (``make_slow_model_dir``: convolutions of
    ~29 M multiply-adds each; the small MLPs need ~25 k), measured here: a fixed architecture was fast enough
    on a CI machine with faster memory."""
    return make_slow_model_dir(tmp_path_factory.mktemp("models") / "wide", at_least=0.08)


def _served(endpoint: str) -> dict[str, float]:
    """Predictions answered per predictor, from the router's own executor metric."""
    out: dict[str, float] = {}
    for line in httpx.get(f"{endpoint}/metrics", timeout=10).text.splitlines():
        if line.startswith("seldon_api_executor_server_requests_seconds_count{") and 'service="predictions"' in line:
            found = re.search(r'predictor_name="([^"]*)"', line)
            assert found is not None
            out[found.group(1)] = out.get(found.group(1), 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def _until(driver: RolloutDriver, done: Any, timeout: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        driver.tick(time.time())
        entry = driver.book.get("mnist")
        if done(entry):
            return entry
        assert time.monotonic() < deadline, entry
        time.sleep(0.25)


def test_a_slow_challenger_is_rolled_back_on_its_p95_and_a_fast_one_promoted(
    msettings: Settings, prom: Any, model_v1: Path, model_v2: Path, wide_model: Path, tmp_path: Path
) -> None:
    platform = LocalPlatform(msettings)
    aliases = {"champion": "1"}
    driver = RolloutDriver(
        RolloutBook(AgentState(tmp_path / "agent")),
        platform,
        prom.url,
        set_alias=lambda model, alias, version: aliases.__setitem__(alias, version),
        get_alias=lambda model, alias: aliases.get(alias),
        record=lambda record: None,
    )
    manifest = deployment_manifest("mnist", str(model_v1), 1)
    manifest["spec"]["predictors"][0]["name"] = "main"
    platform.apply_deployment(manifest)
    status = platform.get_deployment("mnist")
    spec = {"deployment": "mnist", "steps": STEPS, "analysis": canary_analysis(slo=SLO), "model": "mnist"}
    try:
        with Traffic(status.endpoint or "", threads=2, max_seconds=400) as traffic:
            traffic.wait_for(20)
            started = time.monotonic()
            driver.start({**spec, "canary": "wide"}, str(wide_model), "3", time.time())  # returns once 20 % go to it
            before = _served(status.endpoint or "")
            entry = _until(driver, lambda e: e.get("settled"))
            after = _served(status.endpoint or "")
            assert entry["state"]["phase"] == "Degraded" and "canary-p95" in entry["state"]["message"], entry["state"]
            assert entry["state"]["step"] == 0  # failed at its first step: never past 20 %
            measured = entry["runs"][-1]["measurements"]["canary-p95"]
            assert sum(m["phase"] == "Failed" for m in measured) == 2, measured  # more than failureLimit (1)
            assert all(v > SLO for m in measured if m["phase"] == "Failed" for v in m["value"])
            wide = after.get("wide", 0.0)
            total = sum(after.values()) - sum(before.values())
            print(
                f"slow challenger: {wide:.0f} of {total:.0f} requests in its analysis ({wide / total:.1%}), "
                f"rolled back {time.monotonic() - started:.1f} s after its start"
            )
            assert 0 < wide <= 0.2 * total * 1.5, (wide, total)  # about its share, drawn from the seeded split
            assert [p.name for p in platform.get_deployment("mnist").predictors] == ["main"]
            assert aliases == {"champion": "1"}  # aliases unchanged
            assert traffic.failed == 0, traffic.errors  # none during the roll-out and its abort

            started = time.monotonic()
            driver.start({**spec, "canary": "small"}, str(model_v2), "2", time.time())
            entry = _until(driver, lambda e: e.get("settled"), timeout=120)
            assert entry["state"]["phase"] == "Healthy", entry["state"]
            print(f"fast challenger: promoted in {time.monotonic() - started:.1f} s")
            assert [p.name for p in platform.get_deployment("mnist").predictors] == ["small"]
            assert aliases == {"champion": "2", "previous": "1"}
            traffic.wait_for(20)
        assert traffic.failed == 0, traffic.errors
    finally:
        platform.delete_deployment("mnist")
