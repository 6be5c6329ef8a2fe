"""Sidecars and daemon templates in the local engine, run as a user runs workflows: real engine
processes, real servers on free loopback ports, processes checked by pid afterwards.

Argo's semantics: sidecars start with the main container and are killed when it ends (the main
container decides the node); a daemon counts as done for its dependants once ready, is killed when
the steps/DAG scope that started it completes and then shows Succeeded; ``{{steps.X.ip}}`` works.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from scanflow_argo import _proc
from scanflow_argo.engine import run_workflow
from scanflow_argo.engine.api import prepare_run
from scanflow_argo.engine.core.state import read_status
from scanflow_argo.engine.features.daemons import reap_leftovers
from scanflow_argo.engine.features.podnet import unavailable
from scanflow_argo.errors import ImageNotMapped, NotSupportedLocally
from scanflow_argo.settings import Settings

from .conformance import run_all

pytestmark = pytest.mark.timeout(120)

# A tiny HTTP server that prints its pid first (the test checks the process is gone afterwards).
SERVER = textwrap.dedent(
    """
    import http.server, os, sys
    print(os.getpid(), flush=True)
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = sys.argv[2].encode()
            self.send_response(200); self.end_headers(); self.wfile.write(body)
        def log_message(self, *a): pass
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
    """
)
# Fetch a URL (retrying while the server starts) and print the answer.
FETCH = textwrap.dedent(
    """
    import sys, time, urllib.request
    for _ in range(100):
        try:
            print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode()); break
        except OSError:
            time.sleep(0.1)
    else:
        sys.exit(7)
    """
)
# Run for argv[1] seconds, or until its engine dies (then it has a new parent): never left behind.
SLOW = "import os, sys, time\np = os.getppid()\nend = time.time() + float(sys.argv[1])\nwhile os.getppid() == p and time.time() < end: time.sleep(0.05)"
# Exit 0 when nothing listens on the port any more.
CLOSED = "import socket, sys; s = socket.socket(); sys.exit(1 if s.connect_ex(('127.0.0.1', int(sys.argv[1]))) == 0 else 0)"


def wf(templates: list[dict], **spec: object) -> dict:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "dmn-"},
        "spec": {"entrypoint": "main", "templates": templates, **spec},
    }


def py(name: str, code: str, *args: str, **extra: object) -> dict:
    return {"name": name, "container": {"image": "python:3.12", "command": ["python", "-c", code], "args": list(args)}, **extra}


def server(name: str, port: int | str, text: str, **extra: object) -> dict:
    return py(name, SERVER, str(port), text, **extra)


def pid_in(log: Path) -> int:
    return int(log.read_text().split()[0])


def gone(pid: int, timeout: float = 5.0) -> bool:
    """True when no process of the group ``pid`` led is left (polled briefly: stopping is asynchronous)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        if not _proc._has_live_member(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(autouse=True)
def _no_leftovers(engine_settings):  # type: ignore[no-untyped-def]
    """Whatever a failing test's runs leave running is stopped (by the records the engine keeps)."""
    yield
    for run_dir in sorted((engine_settings.home / "runs").glob("*")):
        reap_leftovers(run_dir)


def node_dir(settings: Settings, run_name: str, node_id: str) -> Path:
    return settings.home / "runs" / run_name / "nodes" / node_id


# -- sidecars --------------------------------------------------------------------------------------


def test_a_sidecar_serves_the_main_container_and_is_stopped_when_it_ends(engine_settings) -> None:  # type: ignore[no-untyped-def]
    port = _proc.free_port()
    main = py("main", FETCH, f"http://127.0.0.1:{port}/")
    main["sidecars"] = [{**server("web", port, "from-sidecar")["container"], "name": "web"}]
    run = run_workflow(wf([main]), engine_settings)  # the server runs forever: the run ends only if it is stopped
    assert run.phase == "Succeeded", run.message
    node = run.node(run.name)
    assert node.outputs["result"] == "from-sidecar"
    folder = node_dir(engine_settings, run.name, node.id)
    pid = pid_in(folder / "sidecar-web.log")  # its own log
    assert gone(pid), "the sidecar outlived its pod"
    assert not list(folder.glob("*.proc.json"))


def test_a_failing_main_container_fails_the_node_whatever_its_healthy_sidecar_does(engine_settings) -> None:  # type: ignore[no-untyped-def]
    bad_port, ok_port = _proc.free_port(), _proc.free_port()  # both pods run at once: one port each
    quitter = {"name": "quitter", "image": "busybox", "command": ["sh", "-c"], "args": ["exit 5"]}
    # "bad" talks to its healthy sidecar, then fails
    bad = {
        **py("bad", FETCH + "sys.exit(3)\n", f"http://127.0.0.1:{bad_port}/"),
        "sidecars": [{**server("web", bad_port, "ok")["container"], "name": "web"}],
    }
    ok = {
        **py("ok", FETCH, f"http://127.0.0.1:{ok_port}/"),
        "sidecars": [{**server("web", ok_port, "ok")["container"], "name": "web"}, quitter],
    }
    manifest = wf([{"name": "main", "steps": [[{"name": "bad", "template": "bad"}, {"name": "ok", "template": "ok"}]]}, bad, ok])
    run = run_workflow(manifest, engine_settings)
    assert run.phase == "Failed"
    assert run.node("bad").phase == "Failed" and "exit code 3" in (run.node("bad").message or "")
    # a sidecar that exits early (quitter) does not fail its node
    assert run.node("ok").phase == "Succeeded", run.node("ok").message
    for name in ("bad", "ok"):
        assert gone(pid_in(node_dir(engine_settings, run.name, run.node(name).id) / "sidecar-web.log"))


# -- daemons ---------------------------------------------------------------------------------------


def test_a_daemon_step_serves_later_steps_and_is_killed_when_its_scope_ends(engine_settings) -> None:  # type: ignore[no-untyped-def]
    port = _proc.free_port()
    probe = {"readinessProbe": {"httpGet": {"path": "/", "port": port}}}
    svc = server("svc", port, "from-daemon", daemon=True)
    svc["container"].update(probe)
    manifest = wf(
        [
            {
                "name": "main",
                "steps": [
                    [{"name": "inner", "template": "inner"}],
                    # the inner scope completed: its daemon is gone, nothing listens any more
                    [{"name": "after", "template": "closed"}],
                ],
            },
            {
                "name": "inner",
                "steps": [
                    # started beside another step: the daemon outlives the group's worker thread
                    [{"name": "svc", "template": "svc"}, {"name": "beside", "template": "beside"}],
                    [
                        {
                            "name": "client",
                            "template": "client",
                            "arguments": {"parameters": [{"name": "ip", "value": "{{steps.svc.ip}}"}]},
                        }
                    ],
                ],
            },
            svc,
            {**py("client", FETCH, f"http://{{{{inputs.parameters.ip}}}}:{port}/"), "inputs": {"parameters": [{"name": "ip"}]}},
            py("closed", CLOSED, str(port)),
            py("beside", "print('beside')"),
        ]
    )
    run = run_workflow(manifest, engine_settings)
    assert run.phase == "Succeeded", run.message
    assert run.node("client").outputs["result"] == "from-daemon"
    daemon = run.node("svc")
    assert daemon.phase == "Succeeded"  # Argo's phase for a daemon its scope killed
    assert run.node("after").phase == "Succeeded"
    assert gone(pid_in(node_dir(engine_settings, run.name, daemon.id) / "main.log"))
    doc = read_status(engine_settings.home / "runs" / run.name)
    assert "daemoned" not in doc["status"]["nodes"][daemon.id]
    # the client started only once the daemon was ready, and before it was killed
    assert daemon.finished_at >= run.node("client").finished_at


def test_a_dag_daemon_satisfies_depends_and_tasks_ip_with_an_exec_probe(engine_settings) -> None:  # type: ignore[no-untyped-def]
    port = _proc.free_port()
    ready = "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=1)"
    svc = server("svc", port, "dag-daemon", daemon=True)
    svc["container"]["readinessProbe"] = {"exec": {"command": ["python", "-c", ready, f"http://127.0.0.1:{port}/"]}}
    manifest = wf(
        [
            {
                "name": "main",
                "dag": {
                    "tasks": [
                        {"name": "svc", "template": "svc"},
                        {
                            "name": "client",
                            "template": "client",
                            "depends": "svc",
                            "arguments": {"parameters": [{"name": "ip", "value": "{{tasks.svc.ip}}"}]},
                        },
                    ]
                },
            },
            svc,
            {**py("client", FETCH, f"http://{{{{inputs.parameters.ip}}}}:{port}/"), "inputs": {"parameters": [{"name": "ip"}]}},
        ]
    )
    run = run_workflow(manifest, engine_settings)
    assert run.phase == "Succeeded", run.message
    assert run.node("client").outputs["result"] == "dag-daemon"
    assert run.node("svc").phase == "Succeeded"
    assert gone(pid_in(node_dir(engine_settings, run.name, run.node("svc").id) / "main.log"))


def test_a_daemon_that_exits_fails_and_a_second_daemon_on_its_port_is_an_error(engine_settings) -> None:  # type: ignore[no-untyped-def]
    port = _proc.free_port()
    probe = {"tcpSocket": {"port": port}}
    first = server("first", port, "x", daemon=True)
    first["container"]["readinessProbe"] = probe
    # its port comes from a parameter, so only the running engine can see the clash
    second = server("second", "{{inputs.parameters.port}}", "y", daemon=True, inputs={"parameters": [{"name": "port"}]})
    second["container"]["readinessProbe"] = {"tcpSocket": {"port": "{{inputs.parameters.port}}"}}
    quits = py("quits", "import time; time.sleep(0.3); print('bye')", daemon=True)
    quits["container"]["readinessProbe"] = {"tcpSocket": {"port": _proc.free_port()}}  # never ready: it exits first
    manifest = wf(
        [
            {
                "name": "main",
                "steps": [
                    [{"name": "first", "template": "first"}],
                    [
                        {
                            "name": "second",
                            "template": "second",
                            "continueOn": {"error": True},
                            "arguments": {"parameters": [{"name": "port", "value": str(port)}]},
                        }
                    ],
                    [{"name": "quits", "template": "quits"}],
                ],
            },
            first,
            second,
            quits,
        ]
    )
    run = run_workflow(manifest, engine_settings)
    assert run.phase == "Failed"
    assert run.node("second").phase == "Error"
    assert f"port {port} is already in use" in (run.node("second").message or "")
    assert "'first'" in (run.node("second").message or "")
    # Argo: a daemon pod that completes, even with code 0, fails (daemons must keep running)
    assert run.node("quits").phase == "Failed"
    assert "daemon exited with code 0" in (run.node("quits").message or "")
    assert run.node("first").phase == "Succeeded"
    assert gone(pid_in(node_dir(engine_settings, run.name, run.node("first").id) / "main.log"))


def test_a_daemon_retried_until_it_gets_ready_ends_with_its_retry_node(engine_settings) -> None:  # type: ignore[no-untyped-def]
    port = _proc.free_port()
    flaky = py("svc", "import sys\nif {{retries}} == 0: sys.exit(2)\n" + SERVER, str(port), "second-try", daemon=True)
    flaky["container"]["readinessProbe"] = {"tcpSocket": {"port": port}}
    flaky["retryStrategy"] = {"limit": 2}
    manifest = wf(
        [
            {
                "name": "main",
                "steps": [
                    [{"name": "svc", "template": "svc"}],
                    [
                        {
                            "name": "client",
                            "template": "client",
                            "arguments": {"parameters": [{"name": "ip", "value": "{{steps.svc.ip}}"}]},
                        }
                    ],
                ],
            },
            flaky,
            {**py("client", FETCH, f"http://{{{{inputs.parameters.ip}}}}:{port}/"), "inputs": {"parameters": [{"name": "ip"}]}},
        ]
    )
    run = run_workflow(manifest, engine_settings)
    assert run.phase == "Succeeded", run.message
    assert run.node("client").outputs["result"] == "second-try"
    assert run.node("svc(0)").phase == "Failed" and run.node("svc(1)").phase == "Succeeded"
    assert run.node("svc").phase == "Succeeded" and run.node("svc").type == "Retry"


@pytest.mark.parametrize(
    ("limit", "phases", "retry_message"),
    [
        (1, {"svc(0)": "Failed", "svc(1)": "Succeeded", "svc": "Succeeded"}, None),
        (0, {"svc(0)": "Failed", "svc": "Failed"}, "No more retries left"),
    ],
)
def test_a_daemon_that_fails_after_it_was_ready_is_retried(engine_settings, limit, phases, retry_message) -> None:  # type: ignore[no-untyped-def]
    """e2e daemon_pod_test.go TestDaemonPodRetry: a ready daemon whose pod fails later is retried like any failed
    attempt (operator.go processNodeRetries), while its dependants go on; the next attempt is killed with the scope
    and succeeds. With its retries spent, the Retry node fails with Argo's reason."""
    flaky = py("svc", "import sys, time\nif {{retries}} == 0:\n    time.sleep(0.5); sys.exit(1)\n" + SLOW, "30", daemon=True)
    flaky["retryStrategy"] = {"limit": limit}
    manifest = wf(
        [
            {
                "name": "main",
                "dag": {"tasks": [{"name": "svc", "template": "svc"}, {"name": "after", "template": "slow", "depends": "svc"}]},
            },
            flaky,
            py("slow", SLOW, "3"),
        ]
    )
    run = run_workflow(manifest, engine_settings)
    assert {k: run.node(k).phase for k in phases} == phases, run.message
    assert run.node("after").phase == "Succeeded"
    assert run.node("svc").message == retry_message


def test_two_daemons_that_may_share_a_port_need_their_own_networks(engine_settings) -> None:  # type: ignore[no-untyped-def]
    """They run where daemons get their own network (bubblewrap, root: test_daemon_networks.py); without the
    sandbox they are refused before anything runs, naming the daemons and the port."""
    port = _proc.free_port()
    svc = server("svc", port, "x", daemon=True)
    svc["container"]["readinessProbe"] = {"tcpSocket": {"port": port}}
    inner = {"name": "inner", "steps": [[{"name": "svc", "template": "svc"}]]}
    unsandboxed = replace(engine_settings, engine=replace(engine_settings.engine, sandbox="none"))
    # one scope after the other: the first daemon is gone before the second starts
    fine = wf(
        [{"name": "main", "steps": [[{"name": "a", "template": "inner"}], [{"name": "b", "template": "inner"}]]}, inner, svc]
    )
    prepare_run(fine, unsandboxed)
    # a daemon, then (while it lives) a nested scope starting another on its port
    clash = wf(
        [{"name": "main", "steps": [[{"name": "svc", "template": "svc"}], [{"name": "b", "template": "inner"}]]}, inner, svc]
    )
    with pytest.raises(NotSupportedLocally, match=f"port {port} at once.*sandbox=bwrap"):
        prepare_run(clash, unsandboxed)
    looped = wf([{"name": "main", "dag": {"tasks": [{"name": "s", "template": "svc", "withItems": [1, 2]}]}}, svc])
    with pytest.raises(NotSupportedLocally, match="its other loop iterations"):
        prepare_run(looped, unsandboxed)
    if unavailable(engine_settings) is None:
        prepare_run(clash, engine_settings)
        prepare_run(looped, engine_settings)
    # a long-running shell tool this machine lacks is said before anything runs
    missing = {
        "name": "main",
        "daemon": True,
        "container": {"image": "alpine", "command": ["sh", "-c"], "args": ["no-such-tool-xyz -l"]},
    }
    with pytest.raises(ImageNotMapped, match="'no-such-tool-xyz'"):
        prepare_run(wf([missing]), engine_settings)


# -- stop, kill -9 and resume ------------------------------------------------------------------------


def _detached(settings: Settings, manifest: dict) -> tuple[Path, _proc.Child]:
    run_dir = prepare_run(manifest, settings)
    child = _proc.spawn(
        [settings.engine.python, "-m", "scanflow_argo.platform.local_engine", str(run_dir)],
        name="engine",
        log=run_dir / "engine.log",
    )
    return run_dir, child


def _wait_for(run_dir: Path, check, timeout: float = 30.0) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = read_status(run_dir)["status"]
        except (OSError, ValueError):
            status = {}
        if status and check(status):
            return status
        time.sleep(0.05)
    raise AssertionError(f"timed out; status: {json.dumps(status)[:2000]}")


def _long_run(port: int, sidecar_port: int) -> dict:
    svc = server("svc", port, "d", daemon=True)
    svc["container"]["readinessProbe"] = {"tcpSocket": {"port": port}}
    slow = py("slow", SLOW, "60")
    slow["sidecars"] = [{"name": "web", **server("web", sidecar_port, "s")["container"]}]
    return wf(
        [
            {"name": "main", "steps": [[{"name": "svc", "template": "svc"}], [{"name": "slow", "template": "slow"}]]},
            svc,
            slow,
        ]
    )


def _by_name(status: dict, display: str) -> dict:
    return next((n for n in status["nodes"].values() if n["displayName"] == display), {})


def _running(status: dict) -> bool:
    return _by_name(status, "slow").get("phase") == "Running" and bool(_by_name(status, "svc").get("daemoned"))


def _pids(run_dir: Path, status: dict) -> list[int]:
    svc, slow = _by_name(status, "svc")["id"], _by_name(status, "slow")["id"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the sidecar prints its pid as it starts
        try:
            return [pid_in(run_dir / "nodes" / svc / "main.log"), pid_in(run_dir / "nodes" / slow / "sidecar-web.log")]
        except (IndexError, ValueError, OSError):
            time.sleep(0.05)
    raise AssertionError("no pid in the logs")


def test_a_run_stopped_mid_way_leaves_no_process(engine_settings) -> None:  # type: ignore[no-untyped-def]
    run_dir, engine = _detached(engine_settings, _long_run(_proc.free_port(), _proc.free_port()))
    try:
        status = _wait_for(run_dir, _running)
        pids = _pids(run_dir, status)
        os.kill(engine.pid, signal.SIGTERM)  # what `scanflow-argo stop` does
        assert engine.popen.wait(timeout=30) is not None
    finally:
        engine.stop(timeout=5)
    status = read_status(run_dir)["status"]
    assert status["phase"] == "Failed"
    assert all(gone(pid) for pid in pids)
    svc = _by_name(status, "svc")
    # a ready daemon is a fulfilled node: a Stop does not fail it, the workflow's end kills it, Succeeded
    # (exec_control.go applyExecutionControl, killDaemonedChildren; e2e signals_test.go TestStopBehaviorWithDaemon)
    assert svc["phase"] == "Succeeded" and "daemoned" not in svc
    assert _by_name(status, "slow")["phase"] == "Failed"  # the running pod is stopped


@pytest.mark.parametrize("sandbox", ["auto", "none"])
def test_resume_after_kill_9_restarts_the_daemon_and_leaves_nothing_behind(engine_settings, sandbox) -> None:  # type: ignore[no-untyped-def]
    engine_settings = replace(engine_settings, engine=replace(engine_settings.engine, sandbox=sandbox))
    run_dir, engine = _detached(engine_settings, _long_run(_proc.free_port(), _proc.free_port()))
    try:
        status = _wait_for(run_dir, _running)
        old = _pids(run_dir, status)
        os.kill(engine.pid, signal.SIGKILL)
        engine.popen.wait(timeout=10)
    finally:
        engine.stop(timeout=5)
    if sandbox == "none":  # no bubblewrap to kill them with their engine: they outlive it...
        assert not gone(old[0], timeout=0.3)
    # ...until another engine continues the run and stops them first
    # the resumed run reads workflow.yaml: let the slow step be quick this time
    doc = yaml.safe_load((run_dir / "workflow.yaml").read_text())
    slow = next(t for t in doc["spec"]["templates"] if t["name"] == "slow")
    slow["container"]["args"] = ["0.2"]
    (run_dir / "workflow.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    from scanflow_argo.engine.api import resume

    run = resume(run_dir)
    assert run.phase == "Succeeded", run.message
    assert all(gone(pid) for pid in old)
    new = pid_in(run_dir / "nodes" / run.node("svc").id / "main.log")
    assert gone(new)
    assert not list((run_dir / "nodes").glob("*/*.proc.json"))


# -- conformance -------------------------------------------------------------------------------------


@pytest.mark.shared
@pytest.mark.slow  # nginx and influxdb servers, ~20 s: outside the fast lane
def test_the_runnable_sidecar_and_daemon_examples_reach_argos_phase(shared_dir, engine_settings) -> None:  # type: ignore[no-untyped-def]
    outcomes = {
        o.path: o
        for o in run_all(
            shared_dir / "argo-examples",
            engine_settings,
            workers=2,
            timeout=60,
            only=["pod-resources-template-override", "variables-showcase", "sidecar", "daemon"],
        )
    }
    assert outcomes["pod-resources-template-override.yaml"].verdict == "passed", outcomes["pod-resources-template-override.yaml"]
    showcase = outcomes["variables-showcase.yaml"]
    # its daemon (`nc -lk -p 9999 -e /bin/true`) runs from the main steps and again from the DAG stage while the
    # first lives: each gets its own network, as on Argo each pod has its own IP (without them: refused)
    if unavailable(engine_settings) is None and shutil.which("busybox"):
        assert showcase.verdict == "passed", showcase
    else:
        assert showcase.verdict == "refused", showcase
    # nginx and influxdb 1.x servers: Debian's, with the official images' configuration (test_server_images.py),
    # else refused naming the package to install
    packages = {
        "sidecar.yaml": "influxdb",
        "daemon-step.yaml": "influxdb",
        "sidecar-nginx.yaml": "nginx",
        "daemon-nginx.yaml": "nginx",
    }
    for name, package in packages.items():
        have = shutil.which({"influxdb": "influxd", "nginx": "nginx"}[package], path="/usr/sbin:/usr/bin:/sbin:/bin")
        if have and shutil.which("bwrap"):
            assert outcomes[name].verdict == "passed", outcomes[name]
        elif not have:
            assert outcomes[name].verdict == "refused" and f"apt-get install {package}" in outcomes[name].detail, outcomes[name]
    assert not [o for o in outcomes.values() if o.verdict in ("wrong", "hang")]
