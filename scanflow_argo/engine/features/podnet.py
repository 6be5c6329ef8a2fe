"""A daemon pod's own network namespace and IP, for daemons whose ports another daemon of the run may hold.

On Argo every pod has its own network namespace and IP (Kubernetes' pod sandbox), and a daemon's
``{{steps.X.ip}}``/``{{tasks.X.ip}}`` is its pod's IP (``workflow/controller/operator.go``: ``node.PodIP =
pod.Status.PodIP`` for daemoned nodes; ``steps.go``/``dag.go`` ``buildLocalScope``; ``docs/variables.md``
``steps.<STEPNAME>.ip``), so two daemons may listen on one port at once. Locally nodes share this machine's
network, and a daemon keeps doing so (its IP ``127.0.0.1``) unless one of its declared ports (its readiness
probe's and its ``ports[].containerPort``) is *contested*: another daemon of the run may listen on it while
it lives (``daemons.contested_daemon_ports``, known before the run). Every daemon on a contested port then
gets, deterministically:

- its own network namespace, held by a helper process (``podnet_helper.py``, the pod's "pause" container)
  that every container of the pod (main, sidecars, ``exec`` probes) joins with ``nsenter --net``;
- its own IP on this machine's loopback, ``127.10.N.M`` (all of ``127.0.0.0/8`` is local on Linux: nothing
  is configured), the next free one of the run: that is the node's ``podIP`` and its ``.ip``;
- a relay: the engine listens on (pod IP, each declared port) and joins each accepted connection to one the
  helper opens to ``127.0.0.1:PORT`` inside the namespace and hands over (``SCM_RIGHTS``); a port the pod
  does not accept on resets the client, as a closed port does. Readiness probes (``tcpSocket``, ``httpGet``)
  connect the same way, so a daemon that does not listen is never ready.

Limits: only declared ports are reachable from other pods (an undeclared one is the pod's own); it needs the
node sandbox (bubblewrap), root (``nsenter``) and a machine that lets the engine make a network namespace
(asked once: ``unavailable``), else such a workflow is refused before it runs, naming the daemon and the
port. No host network configuration is changed (no interfaces, routes or rules); the
helper, listeners and relays end with the pod (the helper also when the engine dies: its channel closes).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import selectors
import shutil
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..._proc import Child, write_record
from ...errors import EngineError
from ...settings import Settings

__all__ = ["POD_NET", "PodNet", "PodNetworks", "unavailable"]

POD_NET = "127.10"
"""The first two octets of the IPs isolated pods get (``127.10.N.M``, on this machine's loopback)."""
HELPER = Path(__file__).with_name("podnet_helper.py")
HELPER_WAIT = 10.0
"""Seconds the helper has to make its namespace and say ready."""
RECORD = "podnet.proc.json"
"""The helper's process record in the pod's folder (``daemons.reap_leftovers`` stops it after a dead engine)."""
CONNECT_TIMEOUT = 1.0
MAX_TRIES = 1000


def unavailable(settings: Settings) -> str | None:
    """Why daemons cannot get their own network here (None when they can)."""
    if settings.engine.sandbox == "none" or shutil.which("bwrap") is None:
        return "the node sandbox is off (sandbox=none, or bubblewrap is not installed)"
    if os.geteuid() != 0:
        return "the engine does not run as root (a network namespace needs it)"
    if shutil.which("nsenter") is None:
        return "nsenter (util-linux) is not installed"
    return _namespace_refused()


@functools.cache
def _namespace_refused() -> str | None:
    """Why this machine refuses the engine a network namespace (None: it allows one), asked once per process:
    the helper makes one and exits. Root in a container without ``CAP_SYS_ADMIN`` (Docker's default) is refused
    though bubblewrap may still work there (through a user namespace)."""
    try:
        proc = subprocess.run(
            [sys.executable, "-I", "-S", str(HELPER), "--probe"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=HELPER_WAIT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"no network namespace could be made here ({err})"
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or ["no reason given"])[-1]
        return f"this machine refuses the engine a network namespace ({why})"
    return None


class PodNet:
    """One isolated pod's network: the helper holding its namespace, its IP, and the relays to its ports."""

    def __init__(self, ip: str, listeners: list[tuple[socket.socket, int]], node_dir: Path, name: str) -> None:
        self.ip = ip
        self.name = name
        self._listeners = listeners
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._closed = False
        self._record = node_dir / RECORD
        engine_end, helper_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._control = engine_end
        log = node_dir / "podnet.log"
        try:
            with helper_end, open(log, "ab") as out:
                popen = subprocess.Popen(
                    [sys.executable, "-I", "-S", str(HELPER), str(helper_end.fileno()), str(node_dir)],
                    pass_fds=(helper_end.fileno(),),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self._helper = Child(popen, f"network of {name}", log)
            write_record(self._record, self._helper, marker=str(node_dir))
            engine_end.settimeout(HELPER_WAIT)
            try:
                ready = engine_end.recv(16)
            except OSError:
                ready = b""
            engine_end.settimeout(None)
            if ready != b"ready":
                raise EngineError(f"{name}: its own network could not be made: {self._helper.tail(5) or 'no answer'}")
        except BaseException:
            self.close()
            raise
        self.prefix = ["nsenter", f"--net=/proc/{popen.pid}/ns/net", "--"]
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._accept, name=f"podnet-{ip}", daemon=True)
        self._thread.start()

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the pod's network namespace (the process keeps its pid: ``nsenter`` execs it)."""
        return [*self.prefix, *argv]

    def connect(self, port: int, timeout: float = CONNECT_TIMEOUT) -> socket.socket:
        """A TCP connection to the pod's ``127.0.0.1:port`` (OSError when the pod does not accept on it)."""
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with mine:
            with theirs, self._lock:
                if self._closed:
                    raise ConnectionRefusedError(errno.ECONNREFUSED, f"{self.name} has ended")
                socket.send_fds(self._control, [b"c"], [theirs.fileno()])
            mine.settimeout(timeout + 2.0)
            mine.sendall(f"{port} {timeout}".encode())
            answer, fds, _, _ = socket.recv_fds(mine, 16, 1)
        if fds:
            sock = socket.socket(fileno=fds[0])
            sock.settimeout(None)
            return sock
        code = int(answer[1:] or errno.ECONNREFUSED) if answer.startswith(b"E") else errno.ECONNREFUSED
        raise OSError(code or errno.ECONNREFUSED, f"{self.name} port {port}: {os.strerror(code or errno.ECONNREFUSED)}")

    # -- relays ----------------------------------------------------------------------------------
    def _accept(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self._wake_r, selectors.EVENT_READ, None)
            for listener, port in self._listeners:
                sel.register(listener, selectors.EVENT_READ, port)
            while True:
                for key, _ in sel.select():
                    if key.data is None:
                        return
                    with contextlib.suppress(OSError):
                        client, _ = key.fileobj.accept()  # type: ignore[union-attr]  # registered listeners are sockets
                        threading.Thread(target=self._relay, args=(client, key.data), daemon=True).start()

    def _relay(self, client: socket.socket, port: int) -> None:
        try:
            inner = self.connect(port)
        except OSError:
            # nothing accepts on that port in the pod: the client is reset, as by a closed port
            with contextlib.suppress(OSError):
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()
            return
        with self._lock:
            if self._closed:
                client.close()
                inner.close()
                return
            self._open |= {client, inner}
        back = threading.Thread(target=_copy, args=(inner, client), daemon=True)
        back.start()
        _copy(client, inner)
        back.join()
        with self._lock:
            self._open -= {client, inner}
        client.close()
        inner.close()

    def close(self) -> None:
        """Stop relaying, close the listeners and the pod's connections, and end the helper (and its namespace)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            live = list(self._open)
        if hasattr(self, "_wake_w"):  # the accepting thread ends first: no listener is closed under its selector
            with contextlib.suppress(OSError):
                self._wake_w.send(b"x")
            self._thread.join(timeout=5)
            self._wake_r.close()
            self._wake_w.close()
        for listener, _ in self._listeners:
            listener.close()
        for sock in live:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._control.close()  # the helper ends when its channel closes...
        helper = getattr(self, "_helper", None)
        if helper is not None:
            helper.stop(timeout=2.0)  # ...and is stopped with its group anyway
        self._record.unlink(missing_ok=True)


def _copy(src: socket.socket, dst: socket.socket) -> None:
    """Copy one direction of a relayed connection until its end; then half-close the other side."""
    with contextlib.suppress(OSError):
        while chunk := src.recv(65536):
            dst.sendall(chunk)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


class PodNetworks:
    """The isolated pod networks of one run: which daemons get one, and the next free pod IP."""

    def __init__(self, contested: Iterable[int], enabled: bool) -> None:
        self.contested = frozenset(contested)
        self.enabled = enabled
        self._lock = threading.Lock()
        self._next = 0

    def wants(self, ports: Iterable[int]) -> bool:
        """Whether a daemon declaring ``ports`` gets its own network (one of them is contested)."""
        return self.enabled and bool(self.contested & set(ports))

    def open(self, node_dir: Path, ports: Sequence[int], name: str) -> PodNet:
        """Make the pod's network: the run's next IP on which every declared port can be listened on."""
        with self._lock:
            for _ in range(MAX_TRIES):
                k, self._next = self._next, self._next + 1
                ip = f"{POD_NET}.{k // 254}.{k % 254 + 1}"
                listeners = _listen(ip, ports)
                if listeners is not None:
                    break
            else:
                raise EngineError(
                    f"{name}: no address {POD_NET}.N.M of this machine is free for ports {sorted(ports)}: a process "
                    "listening on all addresses holds one of them: stop it"
                )
        try:
            return PodNet(ip, listeners, node_dir, name)
        except BaseException:
            for listener, _ in listeners:
                listener.close()
            raise


def _listen(ip: str, ports: Sequence[int]) -> list[tuple[socket.socket, int]] | None:
    """Listening sockets on (``ip``, each port), or None when one is taken."""
    out: list[tuple[socket.socket, int]] = []
    try:
        for port in sorted(set(ports)):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            out.append((s, port))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((ip, port))
            s.listen(64)
    except OSError:
        for s, _ in out:
            s.close()
        return None
    return out
