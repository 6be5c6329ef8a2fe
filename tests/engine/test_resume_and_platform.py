"""Detached engines as users run them: kill -9 and resume, the local platform, the CLI."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest
import yaml

from scanflow_argo import _proc
from scanflow_argo.cli import main as cli_main
from scanflow_argo.engine import execute, prepare_run, resume
from scanflow_argo.engine.core.state import read_status
from scanflow_argo.errors import EngineError
from scanflow_argo.platform._local import control
from scanflow_argo.platform.local import LocalPlatform


def counting_workflow(counter_dir: Path) -> dict:
    """a → slow → b, each appending a line to its own counter file in ``counter_dir``."""

    def step(name: str, extra: str = "") -> dict:
        return {
            "name": name,
            "container": {"image": "busybox", "command": ["sh", "-c", f'echo x >> "$0/{name}"{extra}', str(counter_dir)]},
        }

    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "resume-"},
        "spec": {
            "entrypoint": "main",
            "templates": [
                {
                    "name": "main",
                    "steps": [
                        [{"name": "a", "template": "a"}],
                        [{"name": "slow", "template": "slow"}],
                        [{"name": "b", "template": "b"}],
                    ],
                },
                step("a"),
                step("slow", '; test -e "$0/go" || sleep 60'),
                step("b"),
            ],
        },
    }


def wait_for(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_resume_after_kill_9_does_not_rerun_succeeded_nodes(engine_settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    project = tmp_path / "project"  # the project folder is visible inside every node's sandbox
    project.mkdir()
    run_dir = prepare_run(counting_workflow(project), engine_settings, source_dir=project)
    engine = _proc.spawn(
        [engine_settings.engine.python, "-m", "scanflow_argo.platform.local_engine", str(run_dir)],
        name="engine",
        log=run_dir / "engine.log",
    )
    try:
        wait_for(lambda: lines(project / "slow") == 1)
        status = read_status(run_dir)
        assert status["status"]["phase"] == "Running"
        os.killpg(engine.pid, signal.SIGKILL)  # kill -9: no chance to write anything more
        engine.popen.wait(timeout=10)
    finally:
        engine.stop(timeout=2)
    assert lines(project / "a") == 1 and lines(project / "b") == 0
    (project / "go").write_text("")
    run = resume(run_dir, engine_settings)
    assert run.phase == "Succeeded", run.message
    assert lines(project / "a") == 1  # succeeded before the kill: not run again
    assert lines(project / "slow") == 2  # was running when killed: run again
    assert lines(project / "b") == 1
    with pytest.raises(EngineError, match="already finished"):
        resume(run_dir, engine_settings)


def test_an_engine_waits_out_a_readers_lock_probe_but_not_another_engine(engine_settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Readers (``wait``, ``get_run``) ask ``control.engine_lock_free``, which takes the run's lock for an
    instant. An engine starting in that instant must not take the probe for another engine (CI: the run
    was left Running, "the engine of run … stopped before the run ended"); a lock held for good still is one."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "go").write_text("")
    run_dir = prepare_run(counting_workflow(project), engine_settings, source_dir=project)
    probe = open(run_dir / "engine.lock", "a")  # noqa: SIM115 - released by the timer below
    fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert not control.engine_lock_free(run_dir)
    release = threading.Timer(0.3, probe.close)  # a probe, held far longer than a real one
    release.start()
    try:
        assert execute(run_dir, engine_settings).phase == "Succeeded"
    finally:
        release.join()
    assert control.engine_lock_free(run_dir)

    other = prepare_run(counting_workflow(project), engine_settings, source_dir=project)
    with open(other / "engine.lock", "a") as held:  # another engine holds this run
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(EngineError, match=f"run '{other.name}' is being run by another engine process"):
            execute(other, engine_settings)
    assert read_status(other)["status"]["phase"] == "Pending"  # nothing ran


def test_local_platform_submit_wait_logs_list_and_stop(engine_settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    platform = LocalPlatform(engine_settings)
    sleeper = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "stop-me-", "labels": {"team": "a"}},
        "spec": {
            "entrypoint": "main",
            "onExit": "bye",
            "templates": [
                {"name": "main", "container": {"image": "busybox", "command": ["sh", "-c", "echo started; sleep 60"]}},
                {"name": "bye", "container": {"image": "busybox", "command": ["echo", "cleanup ran"]}},
            ],
        },
    }
    name = platform.submit(sleeper, labels={"run": "one"})
    try:
        wait_for(lambda: "started" in platform.logs(name))
        assert [r.name for r in platform.list_runs({"team": "a", "run": "one"})] == [name]
        assert platform.list_runs({"team": "b"}) == []
        platform.stop(name)
        run = platform.wait(name, timeout=30, poll=0.1)
    finally:
        pid = platform.engine_pid(platform.run_dir(name))
        if pid is not None:
            _proc.stop_pid(pid, timeout=5)
    assert run.phase == "Failed" and "Stopped" in (run.message or "")
    assert platform.logs(name, f"{name}.onExit").strip() == "cleanup ran"


def test_cli_run_list_logs_and_exit_codes(engine_settings, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    ok = tmp_path / "ok.yaml"
    ok.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "Workflow",
                "metadata": {"name": "cli-ok"},
                "spec": {
                    "entrypoint": "main",
                    "arguments": {"parameters": [{"name": "msg", "value": "x"}]},
                    "templates": [
                        {"name": "main", "container": {"image": "busybox", "command": ["echo", "{{workflow.parameters.msg}}"]}}
                    ],
                },
            }
        )
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(ok.read_text().replace("cli-ok", "cli-bad").replace('"echo"', '"false"').replace("- echo", "- 'false'"))
    home = str(engine_settings.home)
    assert cli_main(["--home", home, "run", str(ok), "-p", "msg=hello there"]) == 0
    out = capsys.readouterr().out
    assert "Status:     Succeeded" in out and "cli-ok" in out
    assert cli_main(["--home", home, "run", str(bad), "--output", "json"]) == 1
    assert json.loads(capsys.readouterr().out)["status"]["phase"] == "Failed"
    assert cli_main(["--home", home, "logs", "cli-ok"]) == 0
    assert capsys.readouterr().out.strip() == "cli-ok: hello there"
    assert cli_main(["--home", home, "list"]) == 0
    listing = capsys.readouterr().out
    assert "cli-ok" in listing and "cli-bad" in listing
    assert cli_main(["--home", home, "run", str(tmp_path / "missing.yaml")]) == 1
    assert "no such file" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed: init containers with mounts need it")
def test_cli_logs_of_an_init_container(engine_settings, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    mount = {"name": "work", "mountPath": "/mnt/work"}
    wf = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "cli-init"},
        "spec": {
            "entrypoint": "main",
            "volumes": [{"name": "work", "emptyDir": {}}],
            "templates": [
                {
                    "name": "main",
                    "initContainers": [
                        {
                            "name": "fetch",
                            "image": "busybox",
                            "command": ["sh", "-c", "echo fetched; echo data > /mnt/work/x"],
                            "volumeMounts": [mount],
                        }
                    ],
                    "container": {"image": "busybox", "command": ["cat", "/mnt/work/x"], "volumeMounts": [mount]},
                }
            ],
        },
    }
    path = tmp_path / "init.yaml"
    path.write_text(yaml.safe_dump(wf))
    home = str(engine_settings.home)
    assert cli_main(["--home", home, "run", str(path)]) == 0
    capsys.readouterr()
    assert cli_main(["--home", home, "logs", "cli-init", "cli-init"]) == 0
    assert capsys.readouterr().out == "data\n"
    assert cli_main(["--home", home, "logs", "cli-init", "cli-init", "-c", "fetch"]) == 0
    assert capsys.readouterr().out == "fetched\n"
    assert cli_main(["--home", home, "logs", "cli-init", "-c", "fetch"]) == 0
    assert capsys.readouterr().out == "cli-init: fetched\n"
    assert cli_main(["--home", home, "logs", "cli-init", "cli-init", "-c", "nope"]) == 1
    assert "has no container 'nope': its logs are init-fetch.log, main.log" in capsys.readouterr().err
