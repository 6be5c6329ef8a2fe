"""Running a node's container or script as a host process: sandbox, finding its executable, process control.

With bubblewrap, each node
gets its own root folder ``<node>/root`` bound as ``/``, with the host's top-level folders bound
back in except ``/tmp`` and the folders the node's own paths use — so ``/tmp``, output paths and
artifact mount points are private to the node, as in a pod. A container's executable is looked up as
Argo's executor looks it up inside the container (``Sandbox.locate``); one that is not there ends the
container as the executor does (``not_started``). Processes lead their own process group, are argv lists
(never a shell we add), and are stopped by group.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..._proc import stop_pid
from ...errors import EngineError, SetupError
from ...settings import Settings

__all__ = ["EXEC_NOT_FOUND_CODE", "NodeFS", "ProcessResult", "Sandbox", "node_env", "not_started", "run_process"]

EXEC_NOT_FOUND_CODE = 64
"""The exit code of Argo's executor when it cannot start the container's command (``cmd/argoexec/main.go``)."""
# Host folders a node always shares (tools, libraries, devices); everything else at the top can be private.
SYSTEM_TOPS = frozenset(
    {"bin", "boot", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "run", "sbin", "sys", "usr", "var", "nix", "snap"}
)
PASS_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "USER", "LOGNAME", "SHELL", "TERM")


@dataclass
class NodeFS:
    """Where a node's container paths live on the host."""

    root: Path | None
    """The node's private root (bwrap), or None when running unisolated."""
    shared_tops: frozenset[str] = frozenset()
    binds: list[tuple[Path, str]] = field(default_factory=list)
    """Extra (host path, container path) binds: staged input artifacts under shared folders, volume mounts."""
    read_only: set[str] = field(default_factory=set)
    """Container paths of ``binds`` that are bound read-only (``readOnly`` volume mounts)."""

    def host_path(self, container_path: str) -> Path:
        """The host file behind ``container_path`` as the node sees it."""
        pure = PurePosixPath("/") / container_path
        if any(part == ".." for part in pure.parts):
            raise EngineError(f"path {container_path!r} contains '..': use an absolute path without '..'")
        if self.root is None:
            return Path(str(pure))
        # the innermost bind holding the path wins (a mount inside a mount)
        for host, cpath in sorted(self.binds, key=lambda b: -len(b[1])):
            if str(pure) == cpath or str(pure).startswith(cpath.rstrip("/") + "/"):
                return host / str(pure)[len(cpath) :].lstrip("/")
        top = pure.parts[1] if len(pure.parts) > 1 else ""
        if top and top != "tmp" and top in self.shared_tops:
            return Path(str(pure))
        return self.root / str(pure).lstrip("/")


@dataclass
class ProcessResult:
    exit_code: int
    stdout: str
    reason: str | None = None
    """``deadline`` or ``stopped`` when the engine killed the process."""
    message: str | None = None
    """The container's termination message (Argo's executor writes one when it cannot start the command)."""


class Sandbox:
    """Per-node filesystem isolation with bubblewrap (or none, said once)."""

    def __init__(self, settings: Settings, needed: Iterable[Path], warn: Callable[[str], None] | None = None) -> None:
        mode = settings.engine.sandbox
        self.bwrap = shutil.which("bwrap") if mode in ("auto", "bwrap") else None
        if mode == "bwrap" and self.bwrap is None:
            raise SetupError("EngineSettings.sandbox is 'bwrap' but bubblewrap is not installed: apt-get install bubblewrap")
        if mode not in ("auto", "bwrap", "none"):
            raise SetupError(f"unknown sandbox {mode!r}: use auto, bwrap or none (SCANFLOW_ENGINE_SANDBOX)")
        if self.bwrap is None and mode == "auto" and warn is not None:
            warn("bubblewrap (bwrap) is not installed: nodes run unisolated and share /tmp (apt-get install bubblewrap)")
        resolved = list(dict.fromkeys(p.resolve() for p in needed))
        # a folder inside another needed one comes with it: one bind (and one mount point) fewer
        self.needed = [p for p in resolved if not any(q != p and p.is_relative_to(q) for q in resolved)]
        needed_tops = {p.parts[1] for p in self.needed if len(p.parts) > 1}
        self.entries: list[tuple[str, str | None]] = []  # (name, symlink target or None)
        for entry in sorted(os.scandir("/"), key=lambda e: e.name):
            if entry.name in ("tmp", "proc", "dev"):
                continue
            self.entries.append((entry.name, os.readlink(entry.path) if entry.is_symlink() else None))
        self.shared_tops = frozenset(SYSTEM_TOPS | (needed_tops - {"tmp"}))
        self.links = [(name, link) for name, link in self.entries if link is not None]
        self._binds: dict[frozenset[str], list[str]] = {}  # the host binds of each set of private tops

    @property
    def isolated(self) -> bool:
        return self.bwrap is not None

    def prepare(self, node_dir: Path) -> NodeFS:
        if not self.isolated:
            return NodeFS(root=None)
        root = node_dir / "root"
        (root / "tmp").mkdir(parents=True, exist_ok=True)
        return NodeFS(root=root, shared_tops=self.shared_tops)

    def _link(self, root: str) -> None:
        """The host's top-level symlinks (``/bin`` → ``usr/bin``) in a node's root."""
        for name, link in self.links:
            with contextlib.suppress(FileExistsError):  # made here, not by bwrap, so a second run in this root works
                os.symlink(link, f"{root}/{name}")

    def wrap(self, argv: Sequence[str], fs: NodeFS, private_tops: Iterable[str], cwd: str) -> list[str]:
        """``argv`` inside the node's sandbox; ``private_tops`` are host top-level folders the node replaces."""
        if fs.root is None:
            return list(argv)
        private = frozenset(private_tops) - self.shared_tops
        root = str(fs.root)
        self._link(root)
        for name, link in self.entries:
            if link is None and name in private:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(f"{root}/{name}")  # the image has these folders too
        out = [self.bwrap or "bwrap", "--die-with-parent", "--bind", root, "/", *self._host_binds(private)]
        # parents before what they hold: a bind inside another bind lands in it
        for host, cpath in sorted(fs.binds, key=lambda b: len(PurePosixPath(b[1]).parts)):
            out += ["--ro-bind" if cpath in fs.read_only else "--bind", str(host), cpath]
        out += ["--chdir", cwd, "--", *argv]
        return out

    def host_of(self, cpath: str, fs: NodeFS, private_tops: Iterable[str]) -> Path:
        """The host file behind the absolute container path ``cpath`` as ``wrap`` makes the node's root."""
        pure = PurePosixPath(cpath)
        if fs.root is None:
            return Path(str(pure))
        for host, bound in sorted(fs.binds, key=lambda b: -len(b[1])):
            if pure == PurePosixPath(bound) or pure.is_relative_to(bound):
                return host / pure.relative_to(bound)
        if any(pure == p or pure.is_relative_to(p) for p in map(PurePosixPath, map(str, self.needed))):
            return Path(str(pure))
        top = pure.parts[1] if len(pure.parts) > 1 else ""
        private = frozenset(private_tops) - self.shared_tops
        if top in ("tmp", "proc", "dev") or top in private or not any(name == top for name, _ in self.entries):
            return fs.root / str(pure).lstrip("/")
        return Path(str(pure))

    def locate(
        self, name: str, fs: NodeFS, private_tops: Iterable[str], path: str, cwd: str, files: Mapping[str, str]
    ) -> tuple[str | None, str | None]:
        """Find the container's executable ``name`` as Argo's executor does before it starts it (Go's
        ``exec.LookPath`` in ``cmd/argoexec/commands/emissary.go``: a name with ``/`` is that file, relative to
        the working directory; any other is searched on ``path``), in the node's root. Returns the path to run
        (a container path; the host file of an image's ``files`` without the sandbox), or the executor's error."""
        tops = list(private_tops)

        def problem(cpath: str) -> str | None:
            host = Path(files[cpath]) if fs.root is None and cpath in files else self.host_of(cpath, fs, tops)
            try:
                if host.is_dir():
                    return "is a directory"
                if not host.exists():
                    return f"stat {cpath}: no such file or directory"
            except OSError as err:
                return f"stat {cpath}: {err.strerror or err}"
            return None if os.access(host, os.X_OK) else "permission denied"

        if "/" in name:
            cpath = str(PurePosixPath(cwd, name))
            err = problem(cpath)
            if err is None:
                return (files.get(cpath, cpath) if fs.root is None else name), None
            if err.startswith("stat "):
                err = f"stat {name}: no such file or directory"
            return None, f"failed to find name in PATH: exec: {_go_quote(name)}: {err}"
        for folder in path.split(os.pathsep):
            cpath = str(PurePosixPath(cwd if folder in ("", ".") else folder, name))
            if problem(cpath) is None:
                return (files.get(cpath, cpath) if fs.root is None else cpath), None
        return None, f"failed to find name in PATH: exec: {_go_quote(name)}: executable file not found in $PATH"

    def _host_binds(self, private: frozenset[str]) -> list[str]:
        """The binds of the host's folders into a root whose ``private`` tops are the node's own
        (the same for every node of a template: built once)."""
        cached = self._binds.get(private)
        if cached is not None:
            return cached
        out: list[str] = []
        for name, link in self.entries:
            if name not in private and link is None:
                out += ["--dev-bind", f"/{name}", f"/{name}"]
        out += ["--dev-bind", "/dev", "/dev", "--dev-bind", "/proc", "/proc"]
        for path in self.needed:
            if path.parts[1:2] == ("tmp",) or (len(path.parts) > 1 and path.parts[1] in private):
                out += ["--bind", str(path), str(path)]
        self._binds[private] = out
        return out


def _go_quote(text: str) -> str:
    """Go's ``strconv.Quote`` for the printable text of a command name."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def not_started(log_path: Path, message: str) -> ProcessResult:
    """A container whose command is not in its image: Argo's executor prints why, writes it as the
    container's termination message and exits 64 (``cmd/argoexec/main.go``), and nothing else runs."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log:
        log.write(message + "\n")
    return ProcessResult(exit_code=EXEC_NOT_FOUND_CODE, stdout="", message=message)


def node_env(extra: Mapping[str, str], pythonpath: Sequence[Path]) -> dict[str, str]:
    """A pod-like environment: a few host basics, PYTHONPATH for project imports, then ``extra``."""
    env = {k: os.environ[k] for k in PASS_ENV if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    paths = [str(p) for p in pythonpath]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_process(
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: str | None,
    log_path: Path,
    deadline: float | None,
    stopped: threading.Event,
    monotonic: Callable[[], float],
    grace: float = 5.0,
) -> ProcessResult:
    """Run ``argv`` in its own process group; stdout is captured (``result``) and logged with stderr."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab", buffering=0) as log:
        try:
            proc = subprocess.Popen(
                list(argv),
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as err:
            raise EngineError(f"cannot start {argv[0]!r}: {err}") from err
        chunks: list[bytes] = []
        ticket = _WATCHDOG.watch(proc, deadline, stopped, monotonic, grace)
        try:
            code = _pump_and_wait(proc, chunks, log)
        finally:
            _WATCHDOG.forget(ticket)
        if ticket.killer is not None:
            ticket.killer.join(timeout=grace + 5)
        reason = ticket.reason
    stdout = b"".join(chunks).decode("utf-8", errors="replace")
    return ProcessResult(exit_code=code, stdout=stdout, reason=reason)


def _stop_leftovers(proc: subprocess.Popen[bytes]) -> None:
    """The main process is done: stop whatever it left behind in its group."""
    try:
        os.killpg(proc.pid, 0)
        stop_pid(proc.pid, timeout=1.0, popen=proc)
    except (ProcessLookupError, PermissionError):
        pass


def _pump_and_wait(proc: subprocess.Popen[bytes], chunks: list[bytes], log: Any) -> int:
    """Copy the process's stdout into ``chunks`` and the log until it exits, then drain what is left.

    One thread does it all: ``poll`` on the stdout pipe and a pidfd of the process, so there is no
    reader thread to start and hand over to, and no polling interval. Where pidfds are missing
    (Linux < 5.3), a reader thread does the copying while this one waits."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()

    def take(chunk: bytes) -> None:
        chunks.append(chunk)
        log.write(chunk)

    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        pidfd = None
    if pidfd is None:
        reader = threading.Thread(target=_drain, args=(fd, take, None), daemon=True)
        reader.start()
        code = proc.wait()  # blocking: no polling latency when the process ends
        _stop_leftovers(proc)
        reader.join(timeout=5)
        if not reader.is_alive():
            proc.stdout.close()
        return code
    open_pipe = True
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.register(pidfd, select.POLLIN)
        exited = False
        while not exited:
            for ready, _ in poller.poll():
                if ready == pidfd:
                    exited = True
                elif open_pipe:
                    chunk = os.read(fd, 65536)
                    if chunk:
                        take(chunk)
                    else:
                        open_pipe = False
                        poller.unregister(fd)
    finally:
        os.close(pidfd)
    code = proc.wait()
    _stop_leftovers(proc)
    if open_pipe:
        _drain(fd, take, time.monotonic() + 5)  # what the process wrote last, and its children's
    proc.stdout.close()
    return code


def _drain(fd: int, take: Callable[[bytes], None], until: float | None) -> None:
    """Read ``fd`` to its end (or until the monotonic time ``until``)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while True:
        if until is not None:
            left = until - time.monotonic()
            if left <= 0 or not poller.poll(left * 1000):
                return
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        take(chunk)


@dataclass
class _Ticket:
    proc: subprocess.Popen[bytes]
    deadline: float | None
    stopped: threading.Event
    monotonic: Callable[[], float]
    grace: float
    reason: str | None = None
    killer: threading.Thread | None = None


class _Watchdog:
    """One thread that stops processes past their deadline or of a stopped run (by process group)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_id: dict[int, _Ticket] = {}
        self.thread: threading.Thread | None = None

    def watch(
        self,
        proc: subprocess.Popen[bytes],
        deadline: float | None,
        stopped: threading.Event,
        monotonic: Callable[[], float],
        grace: float,
    ) -> _Ticket:
        ticket = _Ticket(proc, deadline, stopped, monotonic, grace)
        with self.lock:
            self.by_id[id(ticket)] = ticket
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._loop, name="scanflow-watchdog", daemon=True)
                self.thread.start()
        return ticket

    def forget(self, ticket: _Ticket) -> None:
        with self.lock:
            self.by_id.pop(id(ticket), None)

    def _loop(self) -> None:
        while True:
            with self.lock:
                tickets = list(self.by_id.values())
            for t in tickets:
                if t.reason is not None:
                    continue
                if t.stopped.is_set():
                    t.reason = "stopped"
                elif t.deadline is not None and t.monotonic() >= t.deadline:
                    t.reason = "deadline"
                else:
                    continue
                t.killer = threading.Thread(target=stop_pid, args=(t.proc.pid, t.grace, t.proc), daemon=True)
                t.killer.start()
            threading.Event().wait(0.1)


_WATCHDOG = _Watchdog()


def warn_stderr(message: str) -> None:
    print(f"scanflow-argo: {message}", file=sys.stderr)
