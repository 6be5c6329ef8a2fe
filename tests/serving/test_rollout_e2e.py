"""A roll-out end to end on real pieces: an ``agent run`` process drives it on the local platform (router and
seldon-core replicas), measures it on a real Prometheus, and moves the alias in a real MLflow registry; a person
uses ``scanflow-argo rollout start|status|promote|abort``.

The analysis is made Inconclusive on purpose (neither condition can hold), so the roll-out pauses at each step and
waits for a person — which is when the agent is restarted and the serving engine is killed: the roll-out goes on at
its step, the split is set again. Promotion at the end moves ``champion`` to the canary's version and keeps the old
one as ``previous``; a second roll-out aborted by a person goes back to the stable predictor, aliases unchanged.
Meanwhile the UI (``scanflow-argo server`` on the same home) shows the roll-out's step and weight from the agent's
book — in its API and, where Debian's Chromium is installed, on the Deployments page in a real browser.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from scanflow_argo import _proc
from scanflow_argo.cli import main
from scanflow_argo.platform.local import LocalPlatform
from scanflow_argo.server import ArgoServer, ServerOptions, load_or_create_token
from scanflow_argo.serving.controller import LocalDeployments, deployment_manifest
from scanflow_argo.settings import Settings

from .conftest import Traffic

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
TOKEN = "rollout-test-token"
AGENT = """
from scanflow_argo.spec.agent import Agent, PromQuery

agent = Agent("roller", sensors=[PromQuery("up", "max(up)", interval="1s")], interval="300ms")
"""
HELD = {  # Inconclusive by construction: a count is never negative nor above 1e12
    "name": "canary-answers",
    "provider": {
        "prometheus": {
            "query": 'sum(seldon_api_executor_server_requests_seconds_count{deployment_name="mnist",'
            'predictor_name="{{args.canary}}"}) or vector(0)'
        }
    },
    "successCondition": "result[0] > 1e12",
    "failureCondition": "result[0] < 0",
}


@pytest.fixture(scope="module")
def msettings(tmp_path_factory: pytest.TempPathFactory, serving_python: Path, mlflow_server: Any) -> Settings:
    s = Settings.from_env(environ={}).with_home(tmp_path_factory.mktemp("rollout-home"))
    return replace(
        s,
        tracking=replace(s.tracking, uri=mlflow_server.url),
        serving=replace(s.serving, venv=ROOT / ".venv-serving", start_timeout=120.0, drain_seconds=2.0),
    )


class AgentProc:
    def __init__(self, settings: Settings, prom_url: str, folder: Path) -> None:
        self.ready = folder / f"ready-{time.monotonic_ns()}.json"
        env = {
            **os.environ,
            "PYTHONPATH": f"{folder}{os.pathsep}{ROOT}",
            "SCANFLOW_HOME": str(settings.home),
            "SCANFLOW_TRACKING": "0",  # the agent's own knowledge log; the registry is reached through MLFLOW_TRACKING_URI
            "MLFLOW_TRACKING_URI": str(settings.tracking.uri),
            "SCANFLOW_PROMETHEUS_URL": prom_url,
            "SCANFLOW_SERVING_VENV": str(settings.serving.venv),
            "SCANFLOW_SERVING_DRAIN_SECONDS": "2",
            "SCANFLOW_AGENT_TOKEN": TOKEN,
        }
        argv = [sys.executable, "-m", "scanflow_argo", "agent", "run", "rolleragent:agent", "--port", "0"]
        self.child = _proc.spawn([*argv, "--ready-file", str(self.ready)], name="agent", log=folder / "agent.log", env=env)
        deadline = time.monotonic() + 60
        while not self.ready.exists():
            assert self.child.alive(), self.child.tail(40)
            assert time.monotonic() < deadline, self.child.tail(40)
            time.sleep(0.1)

    def stop(self) -> None:
        self.child.stop(timeout=20)


def _cli(settings: Settings, capsys: Any, *argv: str) -> str:
    code = main(["--home", str(settings.home), "rollout", *argv])
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


def _status(settings: Settings, capsys: Any) -> dict:
    return json.loads(_cli(settings, capsys, "status", "mnist", "--json"))


def _until(settings: Settings, capsys: Any, done: Any, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        entry = _status(settings, capsys)
        if done(entry):
            return entry
        assert time.monotonic() < deadline, entry
        time.sleep(0.3)


def _ui_shows_rollout(settings: Settings, prom_url: str, expected: str) -> None:
    """``/scanflow/api/deployments`` and the Deployments page show the agent's roll-out as ``expected`` says."""
    ui = replace(settings, prometheus=replace(settings.prometheus, url=prom_url))
    token = load_or_create_token(ui)
    with ArgoServer(LocalPlatform(ui), ui, token, ServerOptions(port=0)) as server:
        items = httpx.get(f"{server.url}/scanflow/api/deployments", headers={"Authorization": f"Bearer {token}"}).json()
        (item,) = items["items"]
        shown = " · ".join(f"{k} {v}" for k, v in item["rollout"].items())
        assert expected in shown and "agent roller" in shown, item
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if chromium is None:
            return  # tests/server/test_browser.py skips with the reason; the API above is what the page draws
        from playwright.sync_api import expect, sync_playwright  # a browser only where one is installed

        profile = tempfile.mkdtemp(prefix="chromium-profile-")
        try:
            with sync_playwright() as pw:
                flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
                context = pw.chromium.launch_persistent_context(profile, executable_path=chromium, headless=True, args=flags)
                try:
                    page = context.new_page()
                    page.goto(server.url + "/login?next=%2Fdeployments")
                    page.fill("#token", token)
                    page.click("button[type=submit]")
                    row = page.locator("[data-deployment=mnist] tr", has_text="roll-out")
                    expect(row).to_contain_text(expected, timeout=30_000)
                finally:
                    context.close()
        finally:
            shutil.rmtree(profile, ignore_errors=True)


def test_rollout_driven_by_an_agent_resumed_after_restarts_promoted_then_aborted(
    msettings: Settings, prom: Any, model_v1: Path, model_v2: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    from scanflow_argo.tracking import registry

    uri = str(msettings.tracking.uri)
    model = f"mnist-{uuid.uuid4().hex[:8]}"
    first = registry.register_model(model_v1, model, tracking_uri=uri)
    registry.set_alias(model, "champion", first.version, tracking_uri=uri)
    second = registry.register_model(model_v2, model, tracking_uri=uri)
    monkeypatch.setenv("SCANFLOW_AGENT_TOKEN", TOKEN)
    (tmp_path / "rolleragent.py").write_text(AGENT)
    (tmp_path / "held.json").write_text(json.dumps([HELD]))
    deployments = LocalDeployments(msettings)
    manifest = deployment_manifest("mnist", f"models:/{model}/{first.version}", 1)
    manifest["spec"]["predictors"][0]["name"] = "main"
    status = deployments.apply(manifest)
    agent = AgentProc(msettings, prom.url, tmp_path)
    try:
        with Traffic(status.endpoint or "", threads=2, max_seconds=600) as traffic:
            out = _cli(
                msettings, capsys, "start", "mnist", "--model-uri", f"models:/{model}/{second.version}",
                "--version", str(second.version), "--model", model, "--steps", "shadow,50,100",
                "--analysis", str(tmp_path / "held.json"),
            )  # fmt: skip
            assert "started by agent roller" in out
            entry = _until(msettings, capsys, lambda e: e["state"]["phase"] == "Paused")
            assert entry["state"]["step"] == 0 and "canary-answers" in entry["state"]["message"]
            split = [(p.name, p.traffic, p.shadow) for p in deployments.get("mnist").predictors]
            assert split == [("main", 100, False), ("canary", 0, True)]

            agent.stop()  # the agent restarts: status from its state file meanwhile, then it goes on at the step
            assert "Paused at step 0/3" in _cli(msettings, capsys, "status", "mnist")
            agent = AgentProc(msettings, prom.url, tmp_path)
            assert _status(msettings, capsys)["state"] == entry["state"]

            traffic.wait_for(10)
            assert traffic.failed == 0, traffic.errors  # no request failed through the shadow step and the agent's restart

            # The serving engine is killed: the agent sets the step's split again (the supervisor restarts).
            supervisor = json.loads((msettings.home / "deployments" / "mnist" / "supervisor.json").read_text())["pid"]
            os.kill(supervisor, signal.SIGKILL)
            deadline = time.monotonic() + 120
            while True:
                dep = deployments.get("mnist")
                if dep.state == "Available" and [p.ready_replicas for p in dep.predictors] == [1, 1]:
                    break
                assert time.monotonic() < deadline, dep
                time.sleep(0.3)
            assert [(p.name, p.shadow) for p in dep.predictors] == [("main", False), ("canary", True)]

            for step in (1, 2):  # a person promotes each paused step
                assert "Progressing at step" in _cli(msettings, capsys, "promote", "mnist")
                entry = _until(msettings, capsys, lambda e, s=step: e["state"]["phase"] == "Paused" and e["state"]["step"] == s)
                weights = {p.name: p.traffic for p in deployments.get("mnist").predictors}
                assert weights == ({"main": 50, "canary": 50} if step == 1 else {"main": 0, "canary": 100})
                if step == 1:
                    _ui_shows_rollout(msettings, prom.url, "step 1/3 · weight 50 · phase Paused")
            assert "Healthy" in _cli(msettings, capsys, "promote", "mnist")
            entry = _until(msettings, capsys, lambda e: bool(e.get("settled")))
        assert [p.name for p in deployments.get("mnist").predictors] == ["canary"]
        champion = registry.get_alias(model, "champion", tracking_uri=uri)
        previous = registry.get_alias(model, "previous", tracking_uri=uri)
        assert champion is not None and previous is not None
        assert (str(champion.version), str(previous.version)) == (str(second.version), str(first.version))
        shown = _cli(msettings, capsys, "status", "mnist")
        assert "Healthy at step 3/3" in shown and "canary-answers" in shown

        # A second roll-out, aborted by a person: back to the stable predictor, aliases unchanged.
        _cli(
            msettings, capsys, "start", "mnist", "--model-uri", f"models:/{model}/{first.version}", "--canary", "next",
            "--version", str(first.version), "--model", model, "--steps", "10,100", "--analysis", str(tmp_path / "held.json"),
        )  # fmt: skip
        _until(msettings, capsys, lambda e: e["state"]["phase"] == "Paused")
        assert {p.name: p.traffic for p in deployments.get("mnist").predictors} == {"canary": 90, "next": 10}
        assert "Degraded" in _cli(msettings, capsys, "abort", "mnist", "--reason", "alice saw slow answers")
        entry = _until(msettings, capsys, lambda e: bool(e.get("settled")))
        assert "alice saw slow answers" in entry["state"]["message"]
        assert [p.name for p in deployments.get("mnist").predictors] == ["canary"]
        after = registry.get_alias(model, "champion", tracking_uri=uri)
        assert after is not None and str(after.version) == str(second.version)
        code = main(["--home", str(msettings.home), "rollout", "promote", "mnist"])  # nothing left to promote
        assert code == 1 and "roll-out is Degraded" in capsys.readouterr().err
    finally:
        agent.stop()
        deployments.delete("mnist")
