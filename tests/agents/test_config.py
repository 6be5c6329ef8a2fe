"""The compiled ConfigMap means something: ``config()`` carries the factory's arguments, and
``agent run`` rebuilds the agent from its factory with them (``--arg`` wins); a compiled agent
needs an entrypoint, never a silent default."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
from _agent_helpers import wait_for

from agents.mnist import make_drift_supervisor, make_throughput_scaler
from scanflow_argo import _proc
from scanflow_argo.agents.loader import load_agent, read_config
from scanflow_argo.errors import AgentDefinitionError

ROOT = Path(__file__).resolve().parents[2]


def compiled(agent: object) -> dict:
    """What the pod reads: the ConfigMap's JSON text, parsed."""
    return json.loads(json.dumps(agent.config(), sort_keys=True))  # type: ignore[attr-defined]


def test_run_rebuilds_the_compiled_agent_from_its_factory() -> None:
    config = compiled(make_drift_supervisor(interval="2s", accuracy_threshold=0.7, window="1m"))
    agent = load_agent("agents.mnist:drift_supervisor", config=config)  # the Deployment's command
    assert agent.interval == 2.0 and agent.factory_args["accuracy_threshold"] == 0.7
    assert "[1m]" in agent.sensor("accuracy").query
    assert json.loads(json.dumps(agent.declaration())) == config, "the very agent that was compiled"
    # An explicit --arg wins over the ConfigMap.
    assert load_agent("agents.mnist:drift_supervisor", {"interval": "3s"}, config=config).interval == 3.0
    # Without a config: the module's defaults, as before.
    assert load_agent("agents.mnist:drift_supervisor").interval == 30.0
    # The factory itself as the reference works too.
    assert load_agent("agents.mnist:make_drift_supervisor", config=config).interval == 2.0


def test_a_config_for_another_agent_is_refused() -> None:
    scaler = compiled(make_throughput_scaler(slo=0.3))
    with pytest.raises(AgentDefinitionError, match=r"built by 'agents\.mnist:make_throughput_scaler'"):
        load_agent("agents.mnist:drift_supervisor", config=scaler)
    renamed = compiled(make_drift_supervisor(name="other"))
    renamed["name"] = "someone-else"
    with pytest.raises(AgentDefinitionError, match="is for agent 'someone-else'"):
        load_agent("agents.mnist:drift_supervisor", config=renamed)


def test_read_config_from_env_text_or_file(tmp_path: Path) -> None:
    text = json.dumps(compiled(make_throughput_scaler(slo=0.4)))
    assert read_config(environ={"SCANFLOW_AGENT_CONFIG": text})["factory_args"]["slo"] == 0.4
    (tmp_path / "agent.json").write_text(text)
    assert read_config(str(tmp_path / "agent.json"), environ={})["name"] == "throughput-scaler"
    assert read_config(environ={}) is None
    with pytest.raises(AgentDefinitionError, match=r"\$SCANFLOW_AGENT_CONFIG: not valid JSON"):
        read_config(environ={"SCANFLOW_AGENT_CONFIG": "{oops"})
    with pytest.raises(AgentDefinitionError, match="neither JSON nor a readable file"):
        read_config(str(tmp_path / "missing.json"), environ={})


def test_plain_agents_get_their_entrypoint_from_the_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "myagents.py").write_text(
        textwrap.dedent(
            """
            from scanflow_argo.spec.agent import Agent, PromQuery, Threshold
            watcher = Agent("watcher", sensors=[PromQuery("x", "up")], rules=[Threshold("x", "<", 1)])
            def build(limit=1):
                return Agent("built", sensors=[PromQuery("x", "up")], rules=[Threshold("x", "<", limit)])
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    plain = load_agent("myagents:watcher")
    assert plain.entrypoint == "myagents:watcher" and plain.config()["entrypoint"] == "myagents:watcher"
    built = load_agent("myagents:build", {"limit": 2})
    assert (built.entrypoint, built.factory, built.factory_args) == ("myagents:build", "myagents:build", {"limit": 2})
    assert load_agent("myagents:build", config=compiled(built)).rules[0].value == 2.0
    with pytest.raises(AgentDefinitionError, match="not built by a factory"):
        load_agent("myagents:watcher", {"limit": 3})


@pytest.mark.slow
def test_agent_run_reads_scanflow_agent_config(tmp_path: Path) -> None:
    """The real command of the compiled Deployment, with the ConfigMap's JSON in its environment."""
    config = compiled(make_throughput_scaler(interval="300ms", slo=0.5, max_replicas=7))
    ready = tmp_path / "ready.json"
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "SCANFLOW_HOME": str(tmp_path / "home"),
        "SCANFLOW_TRACKING": "0",
        "SCANFLOW_PROMETHEUS_URL": f"http://127.0.0.1:{_proc.free_port()}",  # nobody: sensors stale, fine here
        "SCANFLOW_AGENT_TOKEN": "tok",
        "SCANFLOW_AGENT_CONFIG": json.dumps(config, sort_keys=True, indent=2),
    }
    argv = [sys.executable, "-m", "scanflow_argo", "agent", "run", "agents.mnist:throughput_scaler", "--port", "0"]
    argv += ["--ready-file", str(ready), "--platform-factory", "scanflow_argo.agents.testing:file_platform"]
    child = _proc.spawn(argv, name="agent", log=tmp_path / "agent.log", env=env, cwd=tmp_path)
    try:

        def url() -> str | None:
            assert child.alive(), child.tail(40)
            return json.loads(ready.read_text())["url"] if ready.exists() else None

        base = wait_for(url, timeout=60, what="the agent to listen")
        page = httpx.get(f"{base}/decisions", headers={"Authorization": "Bearer tok"}, timeout=5).json()
        start = next(r for r in page["decisions"] if r["kind"] == "start")
        assert start["config"]["interval"] == 0.3 and start["config"]["factory_args"]["max_replicas"] == 7
        assert start["config"] == config
        assert "differs from what" not in (tmp_path / "agent.log").read_text()
    finally:
        child.stop(timeout=10)
