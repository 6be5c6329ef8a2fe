"""The process that holds an isolated daemon pod's own network namespace, and opens connections inside it.

Kubernetes gives every pod its own network namespace, held by the pod's sandbox ("pause") container, which
the pod's containers join; Argo's ``{{steps.X.ip}}``/``{{tasks.X.ip}}`` of a daemon is that pod's IP
(``workflow/controller/operator.go``: ``node.PodIP = pod.Status.PodIP`` for daemoned nodes; ``steps.go``
``buildLocalScope``: ``steps.<name>.ip``). This script is that holder for the local engine
(``engine/features/podnet.py`` starts it and joins the pod's containers to its namespace with ``nsenter``).

Run as ``python -I -S podnet_helper.py FD POD_DIR`` (root): ``FD`` is the engine's end of a ``SOCK_SEQPACKET``
socket pair, ``POD_DIR`` the pod's folder (only there so the process can be recognised by its command line).
It moves itself into a new network namespace (``unshare(CLONE_NEWNET)``), brings its loopback up, and says
``ready``. Each message then carries, as ``SCM_RIGHTS``, one end of a fresh stream socket pair on which the
engine asks ``"PORT TIMEOUT"``: the helper connects a TCP socket to ``127.0.0.1:PORT`` inside the namespace
and passes it back (``ok`` with the descriptor), or answers ``E<errno>``. The helper ends when the engine
closes its end (or dies). Only the standard library: it runs isolated from the project's environment.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct
import sys
import threading

CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
IFREQ = "16sH14x"
"""``struct ifreq`` with ``ifr_flags``: the interface name, its flags, padding to 32 bytes."""


def enter_own_namespace() -> None:
    """Unshare the network namespace (a new one has only ``lo``, down) and bring ``lo`` up, as bubblewrap's
    ``--unshare-net`` does; nothing of this machine's network is touched."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWNET): {os.strerror(err)} (a pod's own network needs root)")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = struct.unpack(IFREQ, fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack(IFREQ, b"lo", 0)))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack(IFREQ, b"lo", flags | IFF_UP))


def serve(channel: socket.socket) -> None:
    """Answer one request: connect to the asked port inside the namespace and pass the socket back."""
    with channel:
        try:
            port_text, timeout_text = channel.recv(64).decode().split()
            port, timeout = int(port_text), float(timeout_text)
        except (OSError, ValueError):
            return
        try:
            tcp = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        except OSError as err:
            channel.sendall(b"E%d" % (err.errno or 0))
            return
        with tcp:
            socket.send_fds(channel, [b"ok"], [tcp.fileno()])


def main(argv: list[str]) -> int:
    try:
        enter_own_namespace()
    except OSError as err:
        print(f"scanflow-argo pod network: {err}", file=sys.stderr, flush=True)
        return 1
    if argv[1] == "--probe":
        return 0  # asked whether this machine lets the engine make a namespace: it does (this one ends with us)
    control = socket.socket(fileno=int(argv[1]))
    control.send(b"ready")
    while True:
        message, fds, _, _ = socket.recv_fds(control, 16, 4)
        if not message and not fds:
            return 0  # the engine closed its end: the pod is over
        for fd in fds:
            threading.Thread(target=serve, args=(socket.socket(fileno=fd),), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
