"""Processes this project starts: own process group, free loopback ports, readiness, clean stop.

Every long-lived child (MLflow, Prometheus, Seldon replicas, routers, agents, detached engine runs)
is started through ``spawn`` so it leads its own process group, and stopped through ``stop``,
which signals that group only — never anything this project did not start.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from .errors import SetupError

__all__ = [
    "Child",
    "RecordedServer",
    "children_of",
    "cmdline_of",
    "free_port",
    "live_record",
    "port_in_use",
    "spawn",
    "start_recorded",
    "stop_pid",
    "stop_record",
    "wait_http",
    "write_record",
]


def free_port(host: str = "127.0.0.1") -> int:
    """An unused TCP port on ``host`` (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something already accepts connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


@dataclass
class Child:
    """A started process that leads its own process group."""

    popen: subprocess.Popen[bytes]
    name: str
    log: Path | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the group, wait, then SIGKILL it; returns the exit code."""
        stop_pid(self.popen.pid, timeout=timeout, popen=self.popen)
        return self.popen.returncode

    def tail(self, lines: int = 20) -> str:
        """The last ``lines`` of the log, for error messages."""
        if self.log is None or not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def spawn(
    argv: Sequence[str],
    *,
    name: str,
    log: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Child:
    """Start ``argv`` in a new session (own process group), output appended to ``log``."""
    out: int | IO[bytes] = subprocess.DEVNULL
    handle = None
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        handle = open(log, "ab")  # noqa: SIM115 - handed to the child, closed below
        out = handle
    try:
        popen = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    except FileNotFoundError as err:
        raise SetupError(f"cannot start {name}: {argv[0]!r} not found — install it or set its path in the settings") from err
    finally:
        if handle is not None:
            handle.close()
    return Child(popen=popen, name=name, log=log)


def stop_pid(pid: int, timeout: float = 10.0, popen: subprocess.Popen[bytes] | None = None) -> None:
    """Stop the process group led by ``pid``: SIGTERM, wait up to ``timeout``, then SIGKILL."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen is not None:
            if popen.poll() is not None and not _group_alive(pid):
                return
        elif not _group_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    if popen is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie leader still counts as present; reap-less callers poll the group instead.
    return _has_live_member(pgid)


def _processes() -> Iterator[tuple[int, list[str]]]:
    """Each process's pid and the fields of ``/proc/PID/stat`` after the command name (state, ppid, pgrp, …)."""
    proc = Path("/proc")
    if not proc.exists():
        return
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        yield int(entry.name), stat.rsplit(")", 1)[-1].split()


def _has_live_member(pgid: int) -> bool:
    if not Path("/proc").exists():
        return True
    return any(len(rest) > 2 and int(rest[2]) == pgid and rest[0] != "Z" for _, rest in _processes())


def children_of(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (from /proc; empty where /proc is missing)."""
    return [child for child, rest in _processes() if len(rest) > 1 and int(rest[1]) == pid]


def wait_http(url: str, timeout: float, child: Child | None = None, expect: int = 200) -> None:
    """Poll ``url`` until it answers ``expect``; fail early if ``child`` dies, with its log tail."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    last: str = "no answer"
    while time.monotonic() < deadline:
        if child is not None and not child.alive():
            raise SetupError(f"{child.name} exited with code {child.popen.returncode} before answering {url}:\n{child.tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == expect:
                    return
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as err:
            last = f"HTTP {err.code}"
        except (urllib.error.URLError, OSError) as err:
            last = str(err)
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
    name = child.name if child else url
    tail = f"\n{child.tail()}" if child else ""
    raise SetupError(f"{name} did not answer {url} within {timeout:.0f}s (last: {last}){tail}")


def cmdline_of(pid: int) -> list[str] | None:
    """The argv of a running process (from /proc), or None when it is gone or unreadable.

    Used before signalling a pid read from a file, to check it is still the process we started.
    """
    # Empty cmdline: gone, a zombie, or caught mid-exec (the kernel sets the new argv a moment
    # after it lets a vfork-ing parent run on) — only the last is worth another look.
    for _ in range(50):
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        if raw:
            return [part.decode(errors="replace") for part in raw.split(b"\0") if part]
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return None
        if state in ("Z", "X"):
            return None
        time.sleep(0.01)
    return None


def write_record(path: Path, child: Child, **info: object) -> None:
    """Record a detached server (pid, argv, ``info``) in ``path`` so another process can stop it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    args = child.popen.args
    argv = [str(a) for a in args] if isinstance(args, list | tuple) else [str(args)]
    record = {"pid": child.pid, "argv": argv, **info}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, path)


def live_record(path: Path, marker: str) -> dict[str, Any] | None:
    """The record in ``path`` when its pid is alive and its command line contains ``marker``.

    ``marker`` (e.g. the server's own state folder) guards against a recycled pid: we only ever
    signal a process whose command line proves it is the one we started.
    """
    try:
        record = json.loads(path.read_text())
        pid = int(record["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    argv = cmdline_of(pid)
    if argv is None or not any(marker in part for part in argv):
        return None
    try:
        if os.getpgid(pid) != pid:  # ours lead their own group (spawn); anything else is not ours
            return None
    except ProcessLookupError:
        return None
    return record


def stop_record(path: Path, marker: str, timeout: float = 10.0) -> bool:
    """Stop the server recorded in ``path`` (its process group) if it is ours; remove the record."""
    record = live_record(path, marker)
    if record is not None:
        stop_pid(int(record["pid"]), timeout=timeout)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return record is not None


def start_recorded(
    argv: Sequence[str],
    *,
    name: str,
    log: Path,
    ready_url: str,
    record: Path,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    **info: object,
) -> Child:
    """Start a detached server, wait until ``ready_url`` answers, then record it in ``record``
    (so another process can find and stop it); a server that never gets ready is stopped."""
    child = spawn(argv, name=name, log=log, env=env, cwd=cwd)
    try:
        wait_http(ready_url, timeout=timeout, child=child)
    except SetupError:
        child.stop(timeout=5)
        raise
    write_record(record, child, **info)
    return child


class RecordedServer:
    """A server this process starts with ``start_recorded`` and stops with its whole process group: the
    ``start``/``stop``/``alive`` and ``with`` of the local Prometheus and MLflow servers, written once.
    A subclass sets ``dir`` (its state folder, the record's marker), ``record_path`` and ``start()``."""

    dir: Path
    _child: Child | None = None

    @property
    def record_path(self) -> Path:
        raise NotImplementedError

    def start(self, timeout: float = 60.0) -> Self:
        raise NotImplementedError

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server this object started (its whole group) and drop its record, unless the record by now
        names another live server of ours (a successor in the same state folder); no-op when not running."""
        if self._child is None:
            return
        self._child.stop(timeout=timeout)
        self._child = None
        if live_record(self.record_path, str(self.dir)) is None:
            self.record_path.unlink(missing_ok=True)

    def alive(self) -> bool:
        return self._child is not None and self._child.alive()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
