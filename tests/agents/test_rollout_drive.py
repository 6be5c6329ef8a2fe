"""The agent's roll-out driver against a real Prometheus: each outcome of Argo Rollouts' analysis, a person's
promote and abort, and a restarted agent (a new driver on the same state file) going on at its step.

The analysis metric reads a gauge the test sets on a real exporter scraped by Prometheus; the platform is
the in-memory one (it refuses a split Seldon's webhook refuses), so every ``set_predictors`` is inspected.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from _agent_helpers import Exporter, prom_value

from scanflow_argo.agents.canary import RolloutDriver, prometheus_result
from scanflow_argo.agents.rollouts import RolloutBook
from scanflow_argo.agents.state import AgentState
from scanflow_argo.agents.testing import InMemoryPlatform
from scanflow_argo.errors import ScanflowError, SpecError

ACCURACY = {  # Argo Rollouts' Metric fields; a vector result is a list: result[0]
    "name": "accuracy",
    "provider": {"prometheus": {"query": 'max(test_gauge{job="test", canary!="{{args.canary}}"})'}},
    "interval": "300ms",
    "count": 2,
    "successCondition": "result[0] >= 0.9",
    "failureCondition": "result[0] < 0.5",
}
STEPS = [{"shadow": {}}, {"setWeight": 50}, {"setWeight": 100}]


class Aliases:
    """The registry's aliases as the driver sees them (the MLflow round trip is tested in test_rollout_e2e)."""

    def __init__(self) -> None:
        self.aliases = {"champion": "1"}

    def get(self, model: str, alias: str) -> str | None:
        return self.aliases.get(alias)

    def set(self, model: str, alias: str, version: str) -> None:
        self.aliases[alias] = version


def _driver(tmp_path: Any, platform: InMemoryPlatform, prom: Any, aliases: Aliases, records: list) -> RolloutDriver:
    return RolloutDriver(
        RolloutBook(AgentState(tmp_path / "agent")),
        platform,
        prom.url,
        set_alias=aliases.set,
        get_alias=aliases.get,
        record=records.append,
    )


def _until(driver: RolloutDriver, name: str, done: Any, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        driver.tick(time.time())
        entry = driver.book.get(name)
        if done(entry):
            return entry
        assert time.monotonic() < deadline, entry
        time.sleep(0.1)


def _splits(platform: InMemoryPlatform) -> list[list[tuple[str, int, bool]]]:
    return [
        [(p["name"], p.get("traffic", 0), bool(p.get("shadow"))) for p in call[2]]
        for call in platform.calls()
        if call[0] == "set_predictors"
    ]


SPEC = {"deployment": "mnist", "canary": "canary", "steps": STEPS, "analysis": [ACCURACY], "model": "mnist", "alias": "champion"}


@pytest.mark.parametrize(
    ("gauge", "phase", "step", "champion", "last_split"),
    [
        (0.95, "Healthy", 3, "2", [("canary", 100, False)]),  # Successful at every step: promoted
        (0.30, "Degraded", 0, "1", [("default", 100, False)]),  # Failed: aborted at once, aliases unchanged
        (0.70, "Paused", 0, "1", [("default", 100, False), ("canary", 0, True)]),  # Inconclusive: split held
    ],
)
def test_each_analysis_outcome_moves_the_rollout(
    tmp_path, exporter: Exporter, prom, gauge, phase, step, champion, last_split
) -> None:
    platform = InMemoryPlatform()
    platform.add_deployment("mnist", replicas=1, model_uri="models:/mnist/1")
    exporter.set("test_gauge", gauge)
    deadline = time.monotonic() + 20
    while prom_value(prom, 'max(test_gauge{job="test"})') != gauge:
        assert time.monotonic() < deadline, "Prometheus never scraped the gauge"
        time.sleep(0.2)
    aliases, records = Aliases(), []
    driver = _driver(tmp_path, platform, prom, aliases, records)
    driver.start(SPEC, "models:/mnist/2", "2", time.time())
    assert _splits(platform)[0] == [("default", 100, False), ("canary", 0, True)]  # the shadow step
    entry = _until(driver, "mnist", lambda e: e["state"]["phase"] != "Progressing")
    assert (entry["state"]["phase"], entry["state"]["step"]) == (phase, step)
    assert _splits(platform)[-1] == last_split
    assert aliases.aliases["champion"] == champion
    if phase == "Healthy":
        assert aliases.aliases["previous"] == "1"
        assert _splits(platform) == [
            [("default", 100, False), ("canary", 0, True)],
            [("default", 50, False), ("canary", 50, False)],
            [("default", 0, False), ("canary", 100, False)],
            [("canary", 100, False)],
        ]
        assert [r["measurements"]["accuracy"][-1]["value"] for r in entry["runs"]] == [[gauge]] * 3
    else:  # the reason names the metric and its measurement
        assert "accuracy" in entry["state"]["message"]
    events = [r["event"] for r in records]
    assert events[0] == "start" and "analysis" in events


def test_a_person_promotes_or_aborts_a_paused_rollout_and_a_restarted_agent_goes_on(tmp_path, exporter, prom) -> None:
    platform = InMemoryPlatform()
    platform.add_deployment("mnist", replicas=1, model_uri="models:/mnist/1")
    exporter.set("test_gauge", 0.7)  # inconclusive: neither condition
    while prom_value(prom, 'max(test_gauge{job="test"})') != 0.7:
        time.sleep(0.2)
    aliases, records = Aliases(), []
    driver = _driver(tmp_path, platform, prom, aliases, records)
    driver.start(SPEC, "models:/mnist/2", "2", time.time())
    _until(driver, "mnist", lambda e: e["state"]["phase"] == "Paused")
    assert _splits(platform)[-1] == [("default", 100, False), ("canary", 0, True)]  # held while paused
    with pytest.raises(ScanflowError, match="already Paused"):  # never started twice
        driver.start(SPEC, "models:/mnist/3", "3", time.time())
    # The agent restarts: a new driver reads the same state file and a person promotes.
    restarted = _driver(tmp_path, platform, prom, aliases, records)
    assert restarted.promote("mnist", time.time()).step == 1
    assert _splits(platform)[-1] == [("default", 50, False), ("canary", 50, False)]
    exporter.set("test_gauge", 0.1)
    while prom_value(prom, 'max(test_gauge{job="test"})') != 0.1:
        time.sleep(0.2)
    entry = _until(restarted, "mnist", lambda e: e["state"]["phase"] != "Progressing")
    assert entry["state"]["phase"] == "Degraded" and entry["state"]["step"] == 1
    assert _splits(platform)[-1] == [("default", 100, False)] and aliases.aliases == {"champion": "1"}
    with pytest.raises(SpecError, match="already Degraded"):
        restarted.abort("mnist", "too late", time.time())


def test_a_lost_split_is_set_again_and_a_failed_query_is_an_error_measurement(tmp_path, exporter, prom) -> None:
    platform = InMemoryPlatform()
    platform.add_deployment("mnist", replicas=1, model_uri="models:/mnist/1")
    records: list = []
    errors = {**ACCURACY, "provider": {"prometheus": {"query": "max(test_gauge{"}}, "interval": "100ms", "count": 9}
    driver = _driver(tmp_path, platform, prom, Aliases(), records)
    driver.start({**SPEC, "analysis": [errors]}, "models:/mnist/2", "2", time.time())
    # The serving engine came back with the manifest it had (one predictor): the driver sets the step's split again.
    platform.apply_deployment({"metadata": {"name": "mnist"}, "spec": {"predictors": [{"name": "default", "replicas": 1}]}})
    driver.tick(time.time())
    assert _splits(platform)[-1] == [("default", 100, False), ("canary", 0, True)] and len(_splits(platform)) == 2
    entry = _until(driver, "mnist", lambda e: e["state"]["phase"] != "Progressing")
    assert entry["state"]["phase"] == "Degraded"  # consecutiveErrorLimit 4 → Error → abort
    assert "Error" in entry["state"]["message"] and "refused" in entry["state"]["message"]
    assert len(entry["runs"][-1]["measurements"]["accuracy"]) == 5


def test_prometheus_results_have_argo_rollouts_shape(prom, exporter) -> None:
    exporter.set("test_gauge", 0.5)
    while prom_value(prom, 'max(test_gauge{job="test"})') != 0.5:
        time.sleep(0.2)
    assert prometheus_result(prom.url, 'max(test_gauge{job="test"})', time.time()) == [0.5]  # a vector: a list
    assert prometheus_result(prom.url, "scalar(vector(2))", time.time()) == 2.0
    assert prometheus_result(prom.url, "absent_metric_xyz", time.time()) == []
    with pytest.raises(ScanflowError, match="refused"):
        prometheus_result(prom.url, "max(", time.time())
