"""The web UI in a real browser: Debian's headless Chromium driven by Playwright, against a real server, engine
and agent on 127.0.0.1.

The flow a user follows: log in with the token, submit a WorkflowTemplate through the submit dialog
(its parameters' descriptions as help, its enum as a dropdown, defaults filled in) choosing an enum
value, watch the run reach Succeeded in the graph (updated by the events stream), open a node's logs,
pause and resume an agent. A screenshot of each page is kept under ``tmp/artefacts/ui/`` (or
``$SCANFLOW_TEST_ARTEFACTS``); ``SCANFLOW_UPDATE_SCREENSHOTS=1`` also refreshes the README's
``docs/ui-workflow.png``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright
from server_helpers import (
    NAMESPACE,
    Served,
    drive_rollout,
    greet_template,
    server_settings,
    shell_workflow,
    steps_workflow,
    write_deployment,
)

from scanflow_argo import _proc
from scanflow_argo.platform.local import LocalPlatform
from scanflow_argo.server import ArgoServer, ServerOptions

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agents"))
from _agent_helpers import Exporter

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
AGENT_TOKEN = "agent-token-that-must-stay-on-the-server"
AGENT_MODULE = """
from scanflow_argo.spec.agent import Agent, ArgoRuns, Threshold

agent = Agent(
    "greeter-watch",
    sensors=[ArgoRuns("greetings", labels={"workflows.argoproj.io/workflow-template": "greet"}, interval="1s")],
    rules=[Threshold("greetings", ">", 5, name="too-many-greetings")],
    interval="1s",
)
"""


@pytest.fixture(scope="module")
def artefacts() -> Path:
    folder = Path(os.environ.get("SCANFLOW_TEST_ARTEFACTS") or ROOT / "tmp" / "artefacts") / "ui"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def agent(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real agent process in the server's home (its API needs a token the server holds, the browser never)."""
    folder = tmp_path_factory.mktemp("agent")
    (folder / "uiagents.py").write_text(textwrap.dedent(AGENT_MODULE))
    ready = folder / "ready.json"
    env = {**os.environ, "PYTHONPATH": f"{folder}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "SCANFLOW_TRACKING": "0",
           "SCANFLOW_PLATFORM": "local", "SCANFLOW_AGENT_TOKEN": AGENT_TOKEN, "SCANFLOW_PROMETHEUS_URL": "http://127.0.0.1:9"}  # fmt: skip
    argv = [sys.executable, "-m", "scanflow_argo", "--home", str(served.settings.home), "agent", "run", "uiagents:agent",
            "--port", "0", "--ready-file", str(ready)]  # fmt: skip
    child = _proc.spawn(argv, name="agent", log=folder / "agent.log", env=env)
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert child.alive(), child.tail(30)
        assert time.monotonic() < deadline, child.tail(30)
        time.sleep(0.1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SCANFLOW_AGENT_TOKEN", AGENT_TOKEN)  # the server proxies with it
        yield json.loads(ready.read_text())["url"]
    child.stop(timeout=10)


@pytest.fixture(scope="module")
def page(served: Served) -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("no Chromium on this machine: scripts/setup installs Debian's chromium and chromium-driver (as root)")
    with served.client() as c:
        assert c.post(f"/api/v1/workflow-templates/{NAMESPACE}", json={"template": greet_template()}).status_code == 200
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        context.set_default_timeout(30_000)
        expect.set_options(timeout=30_000)  # runs start in a fresh engine process: seconds on a busy machine
        try:
            yield context.new_page()
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


def test_log_in_submit_a_template_and_watch_it_succeed(served: Served, page: Any, artefacts: Path) -> None:
    page.goto(served.url + "/workflows")
    expect(page).to_have_url(re.compile(r".*/login\?next=(%2F|/)workflows$"))
    page.screenshot(path=artefacts / "login.png")
    page.fill("#token", served.token)
    page.click("button[type=submit]")
    expect(page.locator("#workflow-list")).to_be_visible()
    page.screenshot(path=artefacts / "workflows-empty.png")

    page.click("a[data-nav=templates]")
    row = page.locator("tr[data-template=greet]")
    expect(row).to_be_visible()
    row.locator("button[data-submit=greet]").click()
    dialog = page.locator("#submit-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#param-who")).to_have_value("world")  # the default, filled in
    expect(dialog.locator("#param-mood")).to_have_value("happy")
    assert dialog.locator("#param-mood option").all_inner_texts() == ["happy", "sad", "calm"]  # the enum, as a dropdown
    expect(dialog.get_by_text("how to greet them")).to_be_visible()  # the description, as help
    dialog.locator("#param-mood").select_option("sad")
    page.screenshot(path=artefacts / "templates-submit-dialog.png")
    dialog.locator("#submit-send").click()

    expect(page).to_have_url(re.compile(rf".*/workflows/{NAMESPACE}/greet-[a-z0-9]+$"))  # submitting opens the run
    name = page.url.rsplit("/", 1)[-1]
    expect(page.locator("#workflow-phase [data-phase=Succeeded]")).to_be_visible()  # the events stream moved it
    expect(page.locator("#graph g.node[data-node=say][data-phase=Succeeded]")).to_be_visible()
    expect(page.locator("#graph g.node[data-node=thank][data-phase=Succeeded]")).to_be_visible()

    def row_of(node: str) -> float:  # the graph's layers go down: a task is drawn below what it depends on
        transform = page.locator(f"#graph g.node[data-node={node}]").get_attribute("transform") or ""
        return float(transform.rsplit(",", 1)[-1].rstrip(")"))

    assert row_of(name) < row_of("say") < row_of("sign") == row_of("count") < row_of("thank")
    page.locator("#graph g.node[data-node=say]").click()
    panel = page.locator("#node-panel")
    expect(panel.locator("pre.logs")).to_contain_text("hello world, sad")
    expect(panel).to_contain_text(f"{name}-say-")  # the pod
    page.screenshot(path=artefacts / "workflow.png", full_page=True)
    if os.environ.get("SCANFLOW_UPDATE_SCREENSHOTS"):
        shutil.copy(artefacts / "workflow.png", ROOT / "docs" / "ui-workflow.png")

    page.click("a[data-nav=workflows]")
    expect(page.locator(f"#workflow-list tr[data-name={name}] [data-phase=Succeeded]")).to_be_visible()
    page.select_option("#filter-phase", "Failed")
    expect(page.locator("#workflow-list tr[data-name]")).to_have_count(0)
    page.select_option("#filter-phase", "Succeeded")
    expect(page.locator(f"#workflow-list tr[data-name={name}]")).to_be_visible()
    page.screenshot(path=artefacts / "workflows.png")

    page.click("a[data-nav=deployments]")
    expect(page.locator("#no-deployments")).to_be_visible()
    page.screenshot(path=artefacts / "deployments.png")


def test_pause_resume_and_trigger_an_agent(served: Served, page: Any, agent: str, artefacts: Path) -> None:
    def paused() -> bool:
        status = httpx.get(agent + "/status", headers={"Authorization": f"Bearer {AGENT_TOKEN}"}, timeout=5).json()
        return bool(status["paused"])

    log_in(page, served.url, served.token)
    page.goto(served.url + "/agents")
    card = page.locator("[data-agent=greeter-watch]")
    expect(card.locator("[data-rule=too-many-greetings]")).to_contain_text("ok")
    card.locator("button.agent-pause").click()
    expect(card.locator(".badge-paused")).to_be_visible()
    assert paused()
    page.screenshot(path=artefacts / "agents.png", full_page=True)
    card.locator("button.agent-resume").click()
    expect(card.locator(".badge-paused")).to_have_count(0)
    assert not paused()
    expect(card.locator("table.decisions")).to_be_visible()
    card.locator("tr", has_text="greetings").get_by_role("button", name="Trigger").click()  # through the agent's API too
    expect(page.locator("#toast")).to_have_text("greeter-watch: trigger done")
    assert AGENT_TOKEN not in page.content() and served.token not in page.content()


def log_in(page: Any, url: str, token: str) -> None:
    """The login page with the token (each test can run alone)."""
    page.goto(url + "/login?next=%2Fworkflows")
    page.fill("#token", token)
    page.click("button[type=submit]")
    expect(page.locator("#workflow-list")).to_be_visible()


def test_stop_suspend_resume_and_retry_buttons_and_the_list_filters(served: Served, page: Any, artefacts: Path) -> None:
    """A run's buttons act through the API and the page follows from the events stream: suspend shows the run
    suspended, resume clears it, stop ends it as Argo's Stop does; retry runs a failed step again. The list filters
    by label and namespace."""
    log_in(page, served.url, served.token)
    labels = {"ui": "buttons"}
    failing = steps_workflow(second="sleep 2; exit 1", generate="ui-fail-")
    failing["metadata"]["labels"] = labels
    with served.client() as c:
        long = c.post(
            f"/api/v1/workflows/{NAMESPACE}",
            json={"workflow": shell_workflow("echo started; sleep 60", "ui-long-", labels=labels)},
        ).json()["metadata"]["name"]
        failed = c.post(f"/api/v1/workflows/{NAMESPACE}", json={"workflow": failing}).json()["metadata"]["name"]
    served.wait(long, phases=("Running",))

    page.goto(f"{served.url}/workflows/{NAMESPACE}/{long}")
    expect(page.locator("#workflow-phase [data-phase=Running]")).to_be_visible()
    page.click("#btn-suspend")
    expect(page.locator("#btn-resume")).to_be_visible()  # the page learnt of spec.suspend from the stream
    expect(page.locator(".badge-suspended")).to_be_visible()
    assert served.platform.get_workflow(long)["spec"].get("suspend") is True
    page.screenshot(path=artefacts / "workflow-suspended.png")
    page.click("#btn-resume")
    expect(page.locator(".badge-suspended")).to_have_count(0)
    assert not served.platform.get_workflow(long)["spec"].get("suspend")
    page.click("#btn-stop")
    expect(page.locator("#workflow-phase [data-phase=Failed]")).to_be_visible()
    expect(page.get_by_text("Stopped with strategy 'Stop'", exact=True)).to_be_visible()

    assert served.wait(failed)["status"]["phase"] == "Failed"
    page.goto(f"{served.url}/workflows/{NAMESPACE}/{failed}")
    expect(page.locator("#graph g.node[data-node=two][data-phase=Failed]")).to_be_visible()
    page.click("#btn-retry")
    expect(page.locator("#graph g.node[data-node=two][data-phase=Running]")).to_be_visible()  # runs again
    expect(page.locator("#graph g.node[data-node=one][data-phase=Succeeded]")).to_be_visible()  # kept
    expect(page.locator("#workflow-phase [data-phase=Failed]")).to_be_visible()  # and fails again
    page.screenshot(path=artefacts / "workflow-retried.png")

    with served.client() as c:  # a node's inputs, outputs and artifacts in its panel
        wf = shell_workflow("echo hi > /tmp/out.txt; echo done", "ui-io-")
        wf["spec"]["templates"][0] |= {
            "inputs": {"parameters": [{"name": "epochs", "value": "seven"}]},
            "outputs": {
                "parameters": [{"name": "said", "valueFrom": {"path": "/tmp/out.txt"}}],
                "artifacts": [{"name": "report", "path": "/tmp/out.txt"}],
            },
        }
        io = c.post(f"/api/v1/workflows/{NAMESPACE}", json={"workflow": wf}).json()["metadata"]["name"]
    page.goto(f"{served.url}/workflows/{NAMESPACE}/{io}")
    page.locator(f"#graph g.node[data-node={io}][data-phase=Succeeded]").click()
    panel = page.locator("#node-panel")
    expect(panel.locator("tr", has_text="epochs")).to_contain_text("seven")
    expect(panel.locator("tr", has_text="said")).to_contain_text("hi")
    expect(panel.locator("tr[data-artifact=report]")).to_contain_text(f"/tmp/out.txt → artifacts/{io}/{io}/report.tgz")
    expect(panel.locator("pre.logs")).to_contain_text("done")
    page.screenshot(path=artefacts / "workflow-node-io.png")

    page.click("a[data-nav=workflows]")
    page.fill("#filter-label", "ui=buttons")
    page.click("#filter-apply")
    expect(page).to_have_url(re.compile(r".*/workflows\?label=ui%3Dbuttons$"))
    rows = page.locator("#workflow-list tr[data-name]")
    expect(rows).to_have_count(2)
    assert sorted(rows.evaluate_all("rs => rs.map(r => r.dataset.name)")) == sorted([long, failed])
    page.screenshot(path=artefacts / "workflows-filtered.png")
    page.fill("#filter-namespace", "elsewhere")
    page.click("#filter-apply")
    expect(rows).to_have_count(0)
    page.fill("#filter-namespace", NAMESPACE)
    page.click("#filter-apply")
    expect(rows).to_have_count(2)


def test_deployments_page_draws_live_charts_from_prometheus(
    served: Served, page: Any, artefacts: Path, tmp_path: Path, prometheus_server: Any
) -> None:
    """The Deployments page: a SeldonDeployment's replicas, the model alias it serves, its roll-out, and the request
    rate, p95 and online-accuracy charts drawn from a real Prometheus scraping Seldon's metric names. A second
    server on that home, with the same token (so the browser's cookie is good for both)."""
    exporter = Exporter(tmp_path)
    try:
        prometheus_server.set_targets("seldon-mnist-router", [exporter.target], {})
        labels = {"deployment_name": "mnist"}
        exporter.set("seldon_api_executor_server_requests_seconds_count", rate=20.0, service="predictions", **labels)
        for le, rate in (("0.05", 15.0), ("0.1", 19.0), ("+Inf", 20.0)):
            exporter.set("seldon_api_executor_server_requests_seconds_bucket", rate=rate, le=le, service="predictions", **labels)
        exporter.set("seldon_api_model_feedback_reward_total", rate=9.0, **labels)
        exporter.set("seldon_api_model_feedback_total", rate=10.0, **labels)
        base = server_settings(tmp_path / "home")
        settings = replace(
            base,
            prometheus=replace(base.prometheus, url=prometheus_server.url),
            tracking=replace(base.tracking, uri="http://127.0.0.1:9"),  # no MLflow: the alias's version stays unknown
        )
        write_deployment(settings.home, {"readyReplicas": 2, "model_uri": "models:/mnist@champion"})
        drive_rollout(settings.home)  # the agent's book: paused by its analysis at 50 %
        with ArgoServer(LocalPlatform(settings), settings, served.token, ServerOptions(port=0)) as other:
            log_in(page, other.url, served.token)
            page.click("a[data-nav=deployments]")
            card = page.locator("[data-deployment=mnist]")
            expect(card).to_contain_text("/2 replicas ready")
            expect(card).to_contain_text("mnist @champion")
            rollout = card.locator("tr", has_text="roll-out")
            expect(rollout).to_contain_text("step 0/2 · weight 50 · phase Paused")  # the agent's book, read, not JSON
            for chart in ("rate", "p95", "accuracy"):  # a line of a few points: Prometheus has each series a few scrapes later
                line = card.locator(f"[data-chart={chart}] svg polyline")
                expect(line).to_have_attribute("points", re.compile(r"^\S+ \S+ \S+"), timeout=45_000)
            expect(card.locator("[data-chart=accuracy] .title")).to_contain_text("%")
            page.screenshot(path=artefacts / "deployments-live.png", full_page=True)
    finally:
        exporter.stop()


def test_cron_workflows_on_the_templates_page(served: Served, page: Any, artefacts: Path) -> None:
    """A CronWorkflow is listed with its schedule and state, suspended and resumed from its row, and submitted
    through the same dialog (its workflowSpec's parameters); the run it opens carries Argo's cron label."""
    cron = {
        "metadata": {"name": "ui-nightly"},
        "spec": {
            "schedules": ["0 2 * * *"],
            "workflowSpec": {**shell_workflow("echo nightly {{workflow.parameters.size}}")["spec"],
                             "arguments": {"parameters": [{"name": "size", "value": "small", "enum": ["small", "large"],
                                                          "description": "how much to process"}]}},
        },
    }  # fmt: skip
    with served.client() as c:
        assert c.post(f"/api/v1/cron-workflows/{NAMESPACE}", json={"cronWorkflow": cron}).status_code == 200
    log_in(page, served.url, served.token)
    page.click("a[data-nav=templates]")
    row = page.locator("tr[data-cron=ui-nightly]")
    expect(row).to_contain_text("0 2 * * *")
    expect(row.locator("[data-phase=active]")).to_be_visible()
    row.get_by_role("button", name="Suspend").click()
    expect(row.locator("[data-phase=suspended]")).to_be_visible()
    with served.client() as c:
        assert c.get(f"/api/v1/cron-workflows/{NAMESPACE}/ui-nightly").json()["spec"]["suspend"] is True
    row.get_by_role("button", name="Resume").click()
    expect(row.locator("[data-phase=active]")).to_be_visible()
    row.get_by_role("button", name="Submit").click()
    dialog = page.locator("#submit-dialog")
    expect(dialog.get_by_text("how much to process")).to_be_visible()
    dialog.locator("#param-size").select_option("large")
    page.screenshot(path=artefacts / "templates-cron-submit.png")
    dialog.locator("#submit-send").click()
    expect(page).to_have_url(re.compile(rf".*/workflows/{NAMESPACE}/ui-nightly-[a-z0-9]+$"), timeout=30_000)
    name = page.url.rsplit("/", 1)[-1]
    expect(page.locator("#workflow-phase [data-phase=Succeeded]")).to_be_visible()
    run = served.wait(name)
    assert run["metadata"]["labels"]["workflows.argoproj.io/cron-workflow"] == "ui-nightly"
    assert {p["name"]: p["value"] for p in run["spec"]["arguments"]["parameters"]} == {"size": "large"}
