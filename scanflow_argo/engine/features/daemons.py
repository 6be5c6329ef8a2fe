"""Sidecars and daemon templates of the local engine, with Argo's semantics.

- **Sidecars** (``sidecars:``) start, each in its own root with the pod's volumes (its own
  ``volumeMounts``; ``mirrorVolumeMounts`` adds the main container's), argv, env and image mapping,
  logging to ``<node>/sidecar-<name>.log``, just before the main container. The main container
  decides the node; when it ends the sidecars are stopped by process group, as Argo's executor kills
  them. A sidecar that exits early does not fail the node.
- **Daemons** (``daemon: true``): the node turns ``Running`` (``daemoned: true``) and counts as done
  for its dependants once the process is up and its ``readinessProbe`` (``exec``, ``httpGet`` or
  ``tcpSocket`` on 127.0.0.1) passes. It is stopped when the steps/DAG scope that started it
  completes, and then shows ``Succeeded`` (Argo's ``killDaemonedChildren``). A daemon that exits by
  itself fails (exit code 0 included: daemons must keep running, as Argo says). Nodes share this
  machine's network, so ``{{steps.X.ip}}``/``{{tasks.X.ip}}`` are ``127.0.0.1`` and a daemon on a port
  another program holds is an error naming the port; except a daemon whose declared port another
  daemon of the run may hold at the same time (``contested_daemon_ports``): it gets its own network
  and IP (``podnet.py``), as every pod has on Argo, and its probes check its own ports.

Every process leads its own process group (``_proc.spawn``) and is recorded in
``<node>/<container>.proc.json``; the run stops them all when it ends, fails or is stopped, and an
engine that continues a run (``resume`` after ``kill -9``) first stops what the dead one left.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import subprocess
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..._proc import Child, spawn, stop_pid, stop_record, write_record
from ...errors import EngineError, NotSupportedLocally
from ...settings import Settings
from ..core.paths import safe_join
from ..core.state import NodeDoc
from ..core.values import DAEMON_IP
from .images import launch
from .podnet import PodNet, PodNetworks
from .sandbox import Sandbox, node_env, not_started
from .volumes import PodVolumes, mount_tops

__all__ = [
    "DAEMON_IP",
    "Daemons",
    "Probe",
    "Sidecars",
    "check_daemon_ports",
    "check_probe",
    "contested_daemon_ports",
    "daemon_ports",
    "reap_leftovers",
    "sidecar_containers",
]

STOP_GRACE = 2.0
"""Seconds between SIGTERM and SIGKILL for sidecars and daemons."""
STOP_WAIT = 4 * STOP_GRACE
"""How long the end of a run waits for a daemon another thread is stopping (its main and sidecars)."""
POLL = 0.1
RECORD_SUFFIX = ".proc.json"


# -- containers ------------------------------------------------------------------------------------
def sidecar_containers(tmpl: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The template's sidecars, named, with ``mirrorVolumeMounts`` turned into the main container's mounts."""
    body = tmpl.get("container") or tmpl.get("script") or {}
    out = []
    for i, c in enumerate(tmpl.get("sidecars") or []):
        c = dict(c)
        c.setdefault("name", f"sidecar-{i}")
        if c.pop("mirrorVolumeMounts", False):
            own = {m.get("mountPath") for m in c.get("volumeMounts") or []}
            extra = [m for m in body.get("volumeMounts") or [] if m.get("mountPath") not in own]
            c["volumeMounts"] = [*(c.get("volumeMounts") or []), *extra]
        out.append(c)
    return out


_SPAWNER: ThreadPoolExecutor | None = None
_SPAWNER_LOCK = threading.Lock()


def _spawner() -> ThreadPoolExecutor:
    """One thread that lives as long as the engine process and starts every sidecar and daemon.

    bubblewrap's ``--die-with-parent`` is tied to the *thread* that started it (PR_SET_PDEATHSIG):
    started from a step group's worker thread, a daemon would be killed when that thread ends,
    long before its scope does."""
    global _SPAWNER
    with _SPAWNER_LOCK:
        if _SPAWNER is None:
            _SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scanflow-spawner")
        return _SPAWNER


def _start(
    argv: Sequence[str], name: str, log: Path, env: Mapping[str, str], cwd: str | None, record: Path, marker: str
) -> Child:
    """Spawn a container process (own process group) and record it for a later engine."""
    child = _spawner().submit(spawn, argv, name=name, log=log, env=env, cwd=Path(cwd) if cwd else None).result()
    write_record(record, child, marker=marker)
    return child


def _stop(child: Child, record: Path) -> int | None:
    code = child.stop(timeout=STOP_GRACE)
    record.unlink(missing_ok=True)
    return code


def reap_leftovers(run_dir: Path) -> int:
    """Stop container processes a previous engine of this run left behind (it died, even by
    ``kill -9``): each record names a pid that is only signalled when its command line still carries
    the record's marker and it leads its own group. Returns how many were stopped."""
    stopped = 0
    for record in sorted((run_dir / "nodes").glob(f"*/*{RECORD_SUFFIX}")):
        try:
            marker = str(json.loads(record.read_text()).get("marker") or "")
        except (OSError, ValueError):
            marker = ""
        if marker and stop_record(record, marker, timeout=STOP_GRACE):
            stopped += 1
        record.unlink(missing_ok=True)
    return stopped


class Sidecars:
    """The sidecars of one pod: started before its main container, stopped when it ends."""

    def __init__(
        self,
        tmpl: Mapping[str, Any],
        pod: PodVolumes,
        sandbox: Sandbox,
        settings: Settings,
        node_dir: Path,
        env_of: Callable[[Mapping[str, Any]], dict[str, str]],
        pythonpath: Sequence[Path],
    ) -> None:
        self.containers = sidecar_containers(tmpl)
        self.pod = pod
        self.sandbox = sandbox
        self.settings = settings
        self.node_dir = node_dir
        self.env_of = env_of
        self.pythonpath = pythonpath
        self.running: list[tuple[Child, Path]] = []
        self.net: PodNet | None = None
        """The pod's own network, which its sidecars join as its main container does (set before ``start``)."""

    def start(self) -> None:
        """Start every sidecar; on an error the ones already started are stopped again."""
        try:
            for c in self.containers:
                name = str(c["name"])
                where = f"{self.pod.where} sidecar {name!r}"
                cdir = safe_join(self.node_dir / "sidecars", name, where)
                fs = self.sandbox.prepare(cdir)
                self.pod.place(self.pod.mounts(c, self.sandbox), fs)
                cwd = str(c.get("workingDir") or "/")
                if fs.root is None and not c.get("workingDir"):
                    cwd = str(cdir)
                fs.make_dir(cwd, f"{where} workingDir")
                private = mount_tops([*(c.get("volumeMounts") or []), {"mountPath": c.get("workingDir") or "/argo"}])
                declared = self.env_of(c)
                started = launch(c, self.settings, self.sandbox, fs, private, cwd, declared, where)
                if started.missing is not None:  # it ends at once, as Argo's executor ends it; the pod goes on
                    not_started(self.node_dir / f"sidecar-{name}.log", started.missing)
                    continue
                wrapped = self.net.wrap(started.argv) if self.net is not None else started.argv
                marker = str(cdir) if fs.root is not None else max(wrapped, key=len)  # its most telling argument
                record = self.node_dir / f"sidecar-{name}{RECORD_SUFFIX}"
                child = _start(
                    wrapped,
                    f"sidecar {name!r}",
                    self.node_dir / f"sidecar-{name}.log",
                    node_env({**declared, "PATH": started.path}, self.pythonpath),
                    None if fs.root is not None else cwd,
                    record,
                    marker,
                )
                self.running.append((child, record))
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every sidecar by process group (SIGTERM, then SIGKILL after a short grace)."""
        running, self.running = self.running, []
        threads = [threading.Thread(target=_stop, args=pair, daemon=True) for pair in running]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


# -- readiness probes ------------------------------------------------------------------------------
def check_probe(body: Mapping[str, Any], where: str) -> None:
    """Refuse a daemon's readiness probe that cannot be checked on this machine."""
    probe = body.get("readinessProbe")
    if not probe:
        return
    kinds = [k for k in ("exec", "httpGet", "tcpSocket", "grpc") if k in probe]
    if "grpc" in kinds:
        raise NotSupportedLocally("readinessProbe grpc (locally: exec, httpGet, tcpSocket)", where)
    for kind in ("httpGet", "tcpSocket"):
        host = str((probe.get(kind) or {}).get("host") or DAEMON_IP)
        if kind in probe and host not in (DAEMON_IP, "localhost", "::1"):
            raise NotSupportedLocally(
                f"readinessProbe {kind} host {host!r} (a daemon listens on this machine: leave host unset)", where
            )


def daemon_ports(tmpl: Mapping[str, Any]) -> set[int]:
    """The literal ports a daemon template listens on (its probe's and its container's ``ports``)."""
    if not tmpl.get("daemon"):
        return set()
    body = tmpl.get("container") or tmpl.get("script") or {}
    probe = body.get("readinessProbe") or {}
    raw = [(probe.get(kind) or {}).get("port") for kind in ("httpGet", "tcpSocket")]
    raw += [p.get("containerPort") for p in body.get("ports") or []]
    return {int(r) for r in raw if isinstance(r, int) or (isinstance(r, str) and r.isdigit())}


def contested_daemon_ports(
    spec: Mapping[str, Any], resolve: Callable[[Any, Mapping[str, Any]], tuple[Any, Any]], root: Any
) -> dict[int, tuple[str, str]]:
    """The literal ports two daemons of the workflow may listen on at once, each with the first such pair in
    words and the template where they meet. On Argo each pod has its own IP, so they can; locally such daemons get their own network
    (``podnet.py``), which needs the node sandbox (``check_daemon_ports``).

    ``resolve(scope, holder)`` gives the (scope, template) a step/task names (template None when it
    cannot be found: other checks report that). A daemon lives until its steps/DAG scope completes,
    so it overlaps the other steps of its group, every later group (steps) or every other task (DAG),
    everything they call, and the other iterations of its own loop."""
    memo: dict[tuple[str, str], Counter[int]] = {}
    found: dict[int, tuple[str, str]] = {}

    def calls(tmpl: Mapping[str, Any]) -> list[list[Mapping[str, Any]]]:
        if "steps" in tmpl:
            return [g if isinstance(g, list) else [g] for g in tmpl.get("steps") or []]
        return [list((tmpl.get("dag") or {}).get("tasks") or [])]

    def loops(holder: Mapping[str, Any]) -> bool:
        return any(k in holder for k in ("withItems", "withParam", "withSequence"))

    def reach(scope: Any, tmpl: Mapping[str, Any] | None, stack: frozenset[tuple[str, str]]) -> Counter[int]:
        """The ports of every daemon ``tmpl`` may start (itself included), counted per invocation."""
        if tmpl is None:
            return Counter()
        key = (str(getattr(scope, "key", "")), str(tmpl.get("name", "")))
        if key in memo:
            return memo[key]
        if key in stack:
            return Counter()  # recursion: counted once where it starts
        out: Counter[int] = Counter(daemon_ports(tmpl))
        for group in calls(tmpl):
            for holder in group:
                sub_scope, sub = resolve(scope, holder)
                ports = reach(sub_scope, sub, stack | {key})
                for port, n in ports.items():
                    out[port] += n * (2 if loops(holder) else 1)
        memo[key] = out
        return out

    def check(scope: Any, tmpl: Mapping[str, Any], seen: set[tuple[str, str]]) -> None:
        key = (str(getattr(scope, "key", "")), str(tmpl.get("name", "")))
        if key in seen:
            return
        seen.add(key)
        groups = [[(h, *resolve(scope, h)) for h in group] for group in calls(tmpl)]
        dag = "dag" in tmpl
        for i, group in enumerate(groups):
            for holder, sub_scope, sub in group:
                if sub is None:
                    continue
                if "steps" in sub or "dag" in sub:
                    check(sub_scope, sub, seen)
                for port in daemon_ports(sub):
                    others: Counter[int] = Counter()
                    later = [x for g in groups for x in g] if dag else [x for g in groups[i:] for x in g]
                    for other, o_scope, o_tmpl in later:
                        if other is not holder:
                            others += reach(o_scope, o_tmpl, frozenset())
                    if (others[port] or loops(holder)) and port not in found:
                        found[port] = (
                            f"template {sub.get('name')!r} started by {holder.get('name')!r} in template "
                            f"{tmpl.get('name')!r}, and "
                            f"{'its other loop iterations' if loops(holder) else 'another daemon of its scope'}",
                            f"template {tmpl.get('name')!r}",
                        )

    seen: set[tuple[str, str]] = set()
    for name in (spec.get("entrypoint"), spec.get("onExit")):
        if name:
            scope, tmpl = resolve(root, {"template": name})
            if tmpl is not None and ("steps" in tmpl or "dag" in tmpl):
                check(scope, tmpl, seen)
    return found


def check_daemon_ports(
    spec: Mapping[str, Any],
    resolve: Callable[[Any, Mapping[str, Any]], tuple[Any, Any]],
    root: Any,
    no_own_network: Callable[[], str | None],
) -> None:
    """Refuse a workflow that may run two daemons on one literal port at once when daemons cannot get their
    own network here (``no_own_network()`` says why: ``podnet.unavailable``, only asked when a port is contested:
    it may start a process)."""
    contested = contested_daemon_ports(spec, resolve, root)
    reason = no_own_network() if contested else None
    if reason is None:
        return
    for port, (pair, where) in sorted(contested.items()):
        raise NotSupportedLocally(
            f"two daemons that may listen on port {port} at once ({pair}): on Argo each pod has its own network, "
            f"and locally such daemons get their own, but {reason}: run with sandbox=bwrap as root "
            "(SCANFLOW_ENGINE_SANDBOX=bwrap, bubblewrap and nsenter installed), or give each daemon its own port",
            where,
        )


@dataclass
class Probe:
    """A container's ``readinessProbe``: ``exec`` (run in the container's root and network), ``httpGet`` or
    ``tcpSocket`` on the pod's 127.0.0.1 (``connect``). It is polled every 0.1 s after ``initialDelaySeconds``
    (not every ``periodSeconds``), so a daemon counts as ready as soon as it is."""

    spec: Mapping[str, Any]
    ports: Mapping[str, int] = field(default_factory=dict)
    """The container's named ports (``ports[].name`` → ``containerPort``)."""
    exec_argv: Callable[[Sequence[str]], list[str]] | None = None
    """Turns an ``exec`` command into the argv that runs it in the container's sandbox."""
    env: Mapping[str, str] | None = None
    connect: Callable[[int, float], socket.socket] | None = None
    """Opens a TCP connection to the pod's port (its own network's: ``PodNet.connect``); None: 127.0.0.1 here."""

    @property
    def initial_delay(self) -> float:
        return float(self.spec.get("initialDelaySeconds") or 0)

    @property
    def timeout(self) -> float:
        return float(self.spec.get("timeoutSeconds") or 1)

    def port(self, kind: str) -> int:
        raw = (self.spec.get(kind) or {}).get("port")
        if isinstance(raw, str) and not raw.isdigit():
            if raw not in self.ports:
                raise EngineError(f"readinessProbe {kind} names port {raw!r}, which the container does not declare in ports")
            return self.ports[raw]
        try:
            return int(raw)  # type: ignore[arg-type]  # any YAML value: what int() refuses is the error below
        except (TypeError, ValueError) as err:
            raise EngineError(f"readinessProbe {kind} has no valid port ({raw!r})") from err

    def listen_port(self) -> int | None:
        """The port the daemon will listen on, when the probe names one."""
        for kind in ("httpGet", "tcpSocket"):
            if kind in self.spec:
                return self.port(kind)
        return None

    def ready(self) -> bool:
        """One probe (failures and timeouts are 'not ready yet')."""
        if "exec" in self.spec:
            return self._exec()
        if "httpGet" in self.spec:
            return self._http()
        if "tcpSocket" in self.spec:
            try:
                self._connect(self.port("tcpSocket")).close()
            except OSError:
                return False
            return True
        return True

    def _connect(self, port: int) -> socket.socket:
        if self.connect is not None:
            return self.connect(port, self.timeout)
        return socket.create_connection((DAEMON_IP, port), timeout=self.timeout)

    def _exec(self) -> bool:
        command = [str(c) for c in (self.spec["exec"] or {}).get("command") or []]
        if not command or self.exec_argv is None:
            return True
        try:
            proc = subprocess.Popen(
                self.exec_argv(command),
                env=dict(self.env) if self.env is not None else None,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError:
            return False
        try:
            return proc.wait(timeout=self.timeout) == 0
        except subprocess.TimeoutExpired:
            stop_pid(proc.pid, timeout=0.5, popen=proc)  # the whole probe, not only its first process
            return False

    def _http(self) -> bool:
        spec = self.spec["httpGet"] or {}
        port = self.port("httpGet")
        path = str(spec.get("path") or "/")
        headers = {str(h["name"]): str(h.get("value", "")) for h in spec.get("httpHeaders") or [] if "name" in h}
        if str(spec.get("scheme") or "HTTP").upper() == "HTTPS":
            # the kubelet does not verify the certificate either
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            conn: http.client.HTTPConnection = _Via(self._connect, port, self.timeout, context)
        else:
            conn = _Via(self._connect, port, self.timeout, None)
        try:
            conn.request("GET", path if path.startswith("/") else f"/{path}", headers=headers)
            status = conn.getresponse().status
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()
        return 200 <= status < 400


class _Via(http.client.HTTPConnection):
    """An HTTP connection to ``DAEMON_IP:port`` whose socket the probe opens (in the pod's own network, if it
    has one), TLS on it when ``context`` is given (HTTPS)."""

    def __init__(self, open_: Callable[[int], socket.socket], port: int, timeout: float, context: ssl.SSLContext | None) -> None:
        super().__init__(DAEMON_IP, port, timeout=timeout)
        self._open = open_
        self._tls = context

    def connect(self) -> None:
        sock = self._open(int(self.port))
        sock.settimeout(self.timeout)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host) if self._tls is not None else sock


def _tcp_open(port: int, timeout: float) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        return s.connect_ex((DAEMON_IP, port)) == 0


# -- daemons ---------------------------------------------------------------------------------------
@dataclass
class _Daemon:
    node: NodeDoc
    child: Child
    record: Path
    sidecars: Sidecars | None
    scopes: set[str]
    """The ids of the nodes above it: the daemon ends with the first steps/DAG scope among them."""
    on_end: Callable[[], None]
    also: list[tuple[NodeDoc, Callable[[NodeDoc], bool] | None]] = field(default_factory=list)
    """Nodes that end with it (its Retry node), each with what retries the daemon when it fails (True: that took
    care of the node: the next attempt runs, or it ended the node with its own reason)."""
    port: int | None = None
    net: PodNet | None = None
    """The pod's own network (``podnet.py``), closed when it ends."""
    ending: bool = False
    done: threading.Event = field(default_factory=threading.Event)


class Daemons:
    """The live daemons of one run.

    ``finish(node, phase, message)`` records a node's end; ``write()`` saves the run's state after
    a node changed. A daemon is started by ``start`` (which returns once it is ready, or failed), watched by
    a thread (it may exit, be stopped with the run, or pass its deadline) and ended by ``end_scope``
    when the template that started it completes, or by ``stop_all`` at the end of the run."""

    def __init__(
        self,
        nodes: Mapping[str, Mapping[str, Any]],
        write: Callable[[], None],
        finish: Callable[[NodeDoc, str, str | None], NodeDoc],
        abort: threading.Event,
        abort_message: Callable[[], str],
        monotonic: Callable[[], float],
        networks: PodNetworks | None = None,
    ) -> None:
        self.nodes = nodes
        self.networks = networks or PodNetworks((), enabled=False)
        self.write = write
        self.finish = finish
        self.abort = abort
        self.abort_message = abort_message
        self.monotonic = monotonic
        self.lock = threading.Lock()
        self.live: dict[str, _Daemon] = {}
        self.started: list[_Daemon] = []  # every daemon of the run, ended or not

    def network(self, tmpl: Mapping[str, Any], node_dir: Path, name: str) -> PodNet | None:
        """The daemon pod's own network when one of its declared ports is contested (``podnet.py``), else None
        (it shares this machine's). The caller hands it to ``start``, or closes it when the pod does not start."""
        ports = daemon_ports(tmpl)
        return self.networks.open(node_dir, sorted(ports), name) if self.networks.wants(ports) else None

    def _ancestors(self, node: Mapping[str, Any]) -> set[str]:
        out: set[str] = set()
        parent = node.get("boundaryID")
        while parent and parent not in out:
            out.add(str(parent))
            parent = (self.nodes.get(parent) or {}).get("boundaryID")
        return out

    def start(
        self,
        node: NodeDoc,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: str | None,
        log: Path,
        marker: str,
        probe: Probe,
        sidecars: Sidecars | None,
        deadline: float | None,
        on_end: Callable[[], None],
        net: PodNet | None = None,
    ) -> NodeDoc:
        """Start the daemon and wait until it is ready: the node is then ``Running`` and daemoned.
        A daemon that exits, is stopped or passes its deadline first ends the node (Failed). With ``net``
        (its own network) its processes join it, and its ``podIP`` is the network's."""
        port = probe.listen_port()
        if net is None and port is not None and _tcp_open(port, 0.2):
            if sidecars is not None:
                sidecars.stop()
            on_end()
            with self.lock:
                holder = next((d.node.get("displayName") for d in self.live.values() if d.port == port), None)
            by = f" (daemon {holder!r} of this run)" if holder else ""
            return self.finish(
                node,
                "Error",
                f"port {port} is already in use on this machine{by}: nodes share this machine's network locally, "
                "so two daemons on one port collide: give each its own port",
            )
        node["phase"] = "Pending"  # as on Argo, a daemon's node stays Pending until it is ready
        self.write()
        record = log.with_name(f"main{RECORD_SUFFIX}")
        try:
            child = _start(
                net.wrap(argv) if net is not None else argv, f"daemon {node.get('displayName')!r}", log, env, cwd, record, marker
            )
        except BaseException:
            if sidecars is not None:
                sidecars.stop()
            if net is not None:
                net.close()
            raise
        daemon = _Daemon(node, child, record, sidecars, self._ancestors(node), on_end, port=port, net=net)
        try:
            failure = self._wait_ready(daemon, probe, deadline)
        except BaseException:
            _stop(child, record)  # a probe that cannot run (its command is missing): nothing stays behind
            if sidecars is not None:
                sidecars.stop()
            if net is not None:
                net.close()
            raise
        if failure is not None:
            self._end(daemon, *failure)
            return node
        with self.lock:
            self.live[str(node["id"])] = daemon
            self.started.append(daemon)
        node["phase"] = "Running"
        node["daemoned"] = True
        if net is not None:  # operator.go: a daemoned node records its pod's IP (its steps.X.ip)
            node["podIP"] = net.ip
        self.write()
        threading.Thread(target=self._watch, args=(daemon, deadline), name=f"daemon-{node['id']}", daemon=True).start()
        return node

    def _wait_ready(self, daemon: _Daemon, probe: Probe, deadline: float | None) -> tuple[str, str] | None:
        ready_from = self.monotonic() + probe.initial_delay
        while True:
            failure = self._failure(daemon, deadline)
            if failure is not None:
                return failure
            if self.monotonic() >= ready_from and probe.ready():
                return None
            with contextlib.suppress(subprocess.TimeoutExpired):
                daemon.child.popen.wait(timeout=POLL)

    def _failure(self, daemon: _Daemon, deadline: float | None) -> tuple[str, str] | None:
        """Why the daemon must end now (phase, message), or None."""
        code = daemon.child.popen.poll()
        if code is not None:
            return (
                "Failed",
                f"main: Error (exit code {code})" if code else "daemon exited with code 0: a daemon must keep running",
            )
        if self.abort.is_set():
            return "Failed", self.abort_message() or "Stopped"
        if deadline is not None and self.monotonic() >= deadline:
            return "Failed", "Pod was active on the node longer than the specified deadline"
        return None

    def _watch(self, daemon: _Daemon, deadline: float | None) -> None:
        while not daemon.done.is_set():
            with contextlib.suppress(subprocess.TimeoutExpired):
                daemon.child.popen.wait(timeout=POLL)
            with self.lock:
                if daemon.ending:
                    return
                failure: tuple[str, str | None] | None = self._failure(daemon, deadline)
                if failure is None:
                    continue
                if self.abort.is_set() and daemon.child.popen.poll() is None:
                    # a stopped run ends its daemons as the workflow's end does: killed, Succeeded (a daemoned node
                    # counts as fulfilled, so exec_control.go applyExecutionControl leaves it; killDaemonedChildren)
                    failure = ("Succeeded", None)
                daemon.ending = True
                self.live.pop(str(daemon.node["id"]), None)
            self._end(daemon, *failure)

    def _end(self, daemon: _Daemon, phase: str, message: str | None) -> None:
        """Stop the daemon's processes (main and sidecars) and record its end."""
        _stop(daemon.child, daemon.record)
        if daemon.sidecars is not None:
            daemon.sidecars.stop()
        if daemon.net is not None:
            daemon.net.close()
        daemon.node.pop("daemoned", None)
        code = daemon.child.popen.returncode
        if phase != "Succeeded" and code is not None:
            daemon.node["outputs"] = {"exitCode": str(code)}
        self.finish(daemon.node, phase, message)
        daemon.on_end()
        daemon.done.set()
        for other, retry in daemon.also:
            other.pop("daemoned", None)
            if phase != "Succeeded" and retry is not None and retry(daemon.node):
                continue  # a daemon that failed after it was ready is retried as any failed attempt (TestDaemonPodRetry)
            self.finish(other, phase, message)

    def attach(self, daemon_id: str, node: NodeDoc, retry: Callable[[NodeDoc], bool] | None = None) -> bool:
        """``node`` (the daemon's Retry node) ends with the daemon ``daemon_id``, unless ``retry(daemon's node)``
        takes care of it when the daemon fails (see ``_Daemon.also``); False when the daemon is gone."""
        with self.lock:
            daemon = self.live.get(daemon_id)
            if daemon is None or daemon.ending:
                return False
            daemon.also.append((node, retry))
            node["daemoned"] = True
            return True

    def _take(self, pick: Callable[[_Daemon], bool]) -> list[_Daemon]:
        with self.lock:
            chosen = [d for d in self.live.values() if pick(d) and not d.ending]
            for d in chosen:
                d.ending = True
                self.live.pop(str(d.node["id"]), None)
        return chosen

    def _end_all(self, daemons: list[_Daemon]) -> None:
        # killed with their scope, or by a stopped run, they succeed (exec_control.go killDaemonedChildren: a ready
        # daemon's node is fulfilled, so a Stop's applyExecutionControl does not fail it; e2e TestStopBehaviorWithDaemon)
        outcome: tuple[str, str | None] = ("Succeeded", None)
        threads = [threading.Thread(target=self._end, args=(d, *outcome), daemon=True) for d in daemons]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def end_scope(self, scope_id: str) -> None:
        """The steps/DAG node ``scope_id`` completed: its daemons are stopped and succeed (Argo)."""
        self._end_all(self._take(lambda d: scope_id in d.scopes))

    def stop_all(self) -> None:
        """The run is over (or breaking off): stop every daemon still running, and wait for those
        another thread is ending (a scope that just completed) so the final status records their end."""
        self._end_all(self._take(lambda d: True))
        with self.lock:
            started = list(self.started)
        for daemon in started:
            daemon.done.wait(STOP_WAIT)
