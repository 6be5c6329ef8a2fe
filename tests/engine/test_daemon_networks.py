"""Daemons that may listen on one port at once get their own network (``engine/features/podnet.py``).

On Argo every pod has its own network namespace and IP, and a daemon's ``{{steps.X.ip}}``/``{{tasks.X.ip}}``
is its pod's IP (``workflow/controller/operator.go``: ``node.PodIP = pod.Status.PodIP`` for daemoned nodes;
``steps.go`` ``buildLocalScope``; ``docs/variables.md``: "IP address of a previous daemon container step"),
so two daemons on one port both serve, each at its own IP; a readiness probe checks the pod's own port
(Kubernetes probes connect to the pod's IP), so a daemon that does not listen is never ready.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest

from scanflow_argo import _proc
from scanflow_argo.engine import run_workflow
from scanflow_argo.engine.api import prepare_run
from scanflow_argo.engine.features import podnet
from scanflow_argo.engine.features.daemons import reap_leftovers
from scanflow_argo.engine.features.podnet import POD_NET, unavailable
from scanflow_argo.errors import NotSupportedLocally
from scanflow_argo.settings import Settings

from .test_daemons import SERVER, SLOW, _by_name, _detached, _wait_for, gone, pid_in, py, wf

pytestmark = pytest.mark.timeout(120)
needs_own_network = pytest.mark.skipif(
    unavailable(Settings.from_env(environ={})) is not None,
    reason=f"daemons get their own network only with bwrap, as root, where a network namespace may be made: {unavailable(Settings.from_env(environ={}))}",
)
needs_busybox = pytest.mark.skipif(not os.path.exists("/bin/busybox"), reason="alpine's nc is Debian's busybox here")

# Exit 0 once something accepts on 127.0.0.1:argv[1] (an exec probe: it runs in the pod's network).
# Fetch http://IP:argv[1]/ for each IP that follows, printing each answer.
FETCH_EACH = textwrap.dedent(
    """
    import sys, urllib.request
    for ip in sys.argv[2:]:
        print(urllib.request.urlopen(f"http://{ip}:{sys.argv[1]}/", timeout=5).read().decode())
    """
)
LISTENING = "import socket, sys; s = socket.socket(); sys.exit(0 if s.connect_ex(('127.0.0.1', int(sys.argv[1]))) == 0 else 1)"


@pytest.fixture(autouse=True)
def _no_leftovers(engine_settings):  # type: ignore[no-untyped-def]
    yield
    for run_dir in sorted((engine_settings.home / "runs").glob("*")):
        reap_leftovers(run_dir)


def _helpers(run_dir: Path) -> list[int]:
    """The pids of pod network helpers of the run still alive (by their command line)."""
    out = []
    for entry in os.listdir("/proc"):
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace") if entry.isdigit() else ""
        except OSError:
            continue  # gone
        if "podnet_helper" in argv and str(run_dir) in argv:
            out.append(int(entry))
    return out


def _refused(ip: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((ip, port)) != 0


def _bindable(ip: str, port: int) -> bool:
    """Nothing listens on (ip, port) any more: a server may take it (as servers do, with SO_REUSEADDR)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((ip, port))
            s.listen()
        except OSError:
            return False
        return True


def _svc(port: int, probe: dict) -> dict:
    """A daemon serving its ``text`` input on a literal port it declares (so two calls of it share the port)."""
    tmpl = py("svc", SERVER, str(port), "{{inputs.parameters.text}}", daemon=True, inputs={"parameters": [{"name": "text"}]})
    tmpl["container"]["readinessProbe"] = probe
    tmpl["container"]["ports"] = [{"containerPort": port}]
    return tmpl


def _two_on_one_port(svc: dict, client: dict) -> dict:
    """Steps ``a`` then ``b`` start the same daemon (``a`` still runs when ``b`` starts), then ``client``."""
    call = lambda name, text: {  # noqa: E731 - two literal calls
        "name": name,
        "template": "svc",
        "arguments": {"parameters": [{"name": "text", "value": text}]},
    }
    ips = {"parameters": [{"name": "a", "value": "{{steps.a.ip}}"}, {"name": "b", "value": "{{steps.b.ip}}"}]}
    steps = [[call("a", "one")], [call("b", "two")], [{"name": "client", "template": "client", "arguments": ips}]]
    return wf([{"name": "main", "steps": steps}, svc, {**client, "inputs": {"parameters": [{"name": "a"}, {"name": "b"}]}}])


def _probe(kind: str, port: int) -> dict:
    if kind == "exec":
        return {"exec": {"command": ["python", "-c", LISTENING, str(port)]}}
    return {kind: {"port": port, **({"path": "/"} if kind == "httpGet" else {})}}


@needs_own_network
@pytest.mark.parametrize("probe", ["httpGet", "tcpSocket", "exec"])
def test_two_daemons_on_one_port_both_serve_each_at_its_own_ip(engine_settings: Settings, probe: str) -> None:
    port = _proc.free_port()
    client = py("client", FETCH_EACH, str(port), "{{inputs.parameters.a}}", "{{inputs.parameters.b}}")
    run = run_workflow(_two_on_one_port(_svc(port, _probe(probe, port)), client), engine_settings)
    assert run.phase == "Succeeded", run.message
    # each request reached its own daemon, at the IP its step published (steps.a.ip, steps.b.ip)
    assert run.node("client").outputs["result"] == "one\ntwo"
    ips = [run.node("client").input_parameters()[n] for n in ("a", "b")]
    assert ips[0] != ips[1] and all(ip.startswith(f"{POD_NET}.") for ip in ips), ips
    # both were stopped with their scope; nothing of their networks is left: helpers, listeners, relays
    run_dir = engine_settings.home / "runs" / run.name
    for n in ("a", "b"):
        assert gone(pid_in(run_dir / "nodes" / run.node(n).id / "main.log"))
    assert _helpers(run_dir) == []
    assert all(_refused(ip, port) and _bindable(ip, port) for ip in ips)
    assert _bindable("127.0.0.1", port)
    assert not list((run_dir / "nodes").glob("*/*.proc.json"))


@needs_own_network
@needs_busybox
def test_alpines_nc_daemons_on_one_port_answer_each_at_its_own_ip(engine_settings: Settings) -> None:
    """variables-showcase.yaml's daemon twice at once: ``nc -lk -p PORT -e PROG``, probed by ``tcpSocket``."""
    port = _proc.free_port()
    svc = {
        "name": "svc",
        "daemon": True,
        "inputs": {"parameters": [{"name": "text"}]},
        "container": {
            "image": "alpine:3.23",
            "command": ["sh", "-c"],
            "args": [f"nc -lk -p {port} -e /bin/echo {{{{inputs.parameters.text}}}}"],
            "readinessProbe": {"tcpSocket": {"port": port}, "initialDelaySeconds": 1, "timeoutSeconds": 1},
        },
    }
    client = {
        "name": "client",
        "container": {
            "image": "alpine:3.23",
            "command": ["sh", "-c"],
            "args": [f"nc {{{{inputs.parameters.a}}}} {port} </dev/null; nc {{{{inputs.parameters.b}}}} {port} </dev/null"],
        },
    }
    run = run_workflow(_two_on_one_port(svc, client), engine_settings)
    assert run.phase == "Succeeded", run.message
    assert run.node("client").outputs["result"] == "one\ntwo"
    assert _helpers(engine_settings.home / "runs" / run.name) == []


@needs_own_network
def test_a_daemon_with_its_own_network_that_never_listens_is_never_ready(engine_settings: Settings) -> None:
    """Its probe checks its own port, not this machine's: a server on 127.0.0.1:PORT here does not make it ready."""
    port = _proc.free_port()
    svc = py("svc", "import time; time.sleep(60)", daemon=True, activeDeadlineSeconds=3)
    svc["container"]["readinessProbe"] = {"tcpSocket": {"port": port}}
    # a loop of daemons on one literal port: each iteration gets its own network
    manifest = wf([{"name": "main", "steps": [[{"name": "svc", "template": "svc", "withItems": [1]}]]}, svc])
    with socket.socket() as here:
        here.bind(("127.0.0.1", port))
        here.listen()
        started = time.monotonic()
        run = run_workflow(manifest, engine_settings)
    assert run.phase == "Failed"
    node = run.node("svc(0:1)")
    assert node.phase == "Failed" and node.message == "Pod was active on the node longer than the specified deadline"
    assert time.monotonic() - started >= 3
    assert _helpers(engine_settings.home / "runs" / run.name) == []


def test_without_the_sandbox_two_daemons_on_one_port_are_refused_naming_daemon_and_port(engine_settings: Settings) -> None:
    port = _proc.free_port()
    svc = _svc(port, {"tcpSocket": {"port": port}})
    client = py("client", "print(1)")
    unsandboxed = replace(engine_settings, engine=replace(engine_settings.engine, sandbox="none"))
    with pytest.raises(NotSupportedLocally, match=f"port {port} at once") as err:
        prepare_run(_two_on_one_port(svc, client), unsandboxed)
    assert "template 'svc' started by 'a'" in str(err.value) and "sandbox=bwrap" in str(err.value)


def test_where_the_machine_refuses_a_network_namespace_such_daemons_are_refused_up_front(
    engine_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root in a container without CAP_SYS_ADMIN (Docker's default) may run bubblewrap but not make a network
    namespace: the workflow is refused before it runs, saying so, rather than each daemon failing as it starts."""
    if engine_settings.engine.sandbox == "none":
        pytest.skip("the sandbox is off here: the refusal names that instead")
    monkeypatch.setattr(podnet, "_namespace_refused", lambda: "this machine refuses the engine a network namespace (EPERM)")
    port = _proc.free_port()
    with pytest.raises(NotSupportedLocally, match=f"port {port} at once") as err:
        prepare_run(_two_on_one_port(_svc(port, {"tcpSocket": {"port": port}}), py("client", "print(1)")), engine_settings)
    assert "this machine refuses the engine a network namespace (EPERM)" in str(err.value)


def test_the_namespace_probe_answers_as_unshare_does() -> None:
    """The probe (the helper with ``--probe``) agrees with util-linux's ``unshare --net`` on this machine."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and util-linux's unshare to compare with")
    allowed = subprocess.run(["unshare", "--net", "true"], capture_output=True, check=False).returncode == 0
    assert (podnet._namespace_refused() is None) == allowed


@needs_own_network
def test_after_kill_9_of_the_engine_no_network_of_its_daemons_is_left(engine_settings: Settings) -> None:
    """The helpers end when their engine dies (their channel closes), the daemons with bubblewrap's
    ``--die-with-parent``, the relays with the engine: nothing is left, even before a ``resume``."""
    port = _proc.free_port()
    svc = _svc(port, {"tcpSocket": {"port": port}})
    manifest = _two_on_one_port(svc, py("client", SLOW, "60"))
    manifest["spec"]["templates"][2]["inputs"] = {"parameters": [{"name": "a"}, {"name": "b"}]}
    run_dir, engine = _detached(engine_settings, manifest)
    try:
        status = _wait_for(run_dir, lambda st: _by_name(st, "client").get("phase") == "Running")
        daemons = [pid_in(run_dir / "nodes" / _by_name(status, n)["id"] / "main.log") for n in ("a", "b")]
        assert len(_helpers(run_dir)) == 2
        os.kill(engine.pid, signal.SIGKILL)
        engine.popen.wait(timeout=10)
    finally:
        engine.stop(timeout=5)
    assert all(gone(pid) for pid in daemons)
    deadline = time.monotonic() + 5
    while _helpers(run_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _helpers(run_dir) == []
    ips = [_by_name(status, n)["podIP"] for n in ("a", "b")]
    assert all(_refused(ip, port) for ip in ips)
