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
READ_ONLY_TOPS = frozenset({"bin", "boot", "etc", "lib", "lib32", "lib64", "libx32", "sbin", "usr", "var", "nix", "snap"})
"""This machine's system folders are read-only in a node: a pod's are its image's own, so a node that writes
there must not change this machine (its own files there are in its root: ``NodeFS.claim``)."""
PASS_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "USER", "LOGNAME", "SHELL", "TERM")


@dataclass
class NodeFS:
    """Where a node's container paths live on the host.

    With the sandbox, a path under a folder the node shares with this machine (``shared_tops``: ``/usr``,
    ``/etc``, the project's…) that the node must have as its own — an input artifact, a working directory to
    make, a mount point that does not exist here — is *claimed*: the folders above it become the node's
    (``shadowed``: folders of its root into which ``Sandbox.wrap`` binds back everything this machine has
    there but the claimed entry), so nothing is ever made in this machine's folders."""

    root: Path | None
    """The node's private root (bwrap), or None when running unisolated."""
    shared_tops: frozenset[str] = frozenset()
    binds: list[tuple[Path, str]] = field(default_factory=list)
    """Extra (host path, container path) binds: volume mounts, an image's files."""
    read_only: set[str] = field(default_factory=set)
    """Container paths of ``binds`` that are bound read-only (``readOnly`` volume mounts, image files)."""
    own: set[str] = field(default_factory=set)
    """Claimed container paths under shared folders: the node's, in its root."""

    def host_path(self, container_path: str) -> Path:
        """The host file behind ``container_path`` as the node sees it."""
        pure = _absolute(container_path)
        if self.root is None:
            return Path(str(pure))
        # the innermost bind holding the path wins (a mount inside a mount)
        for host, cpath in sorted(self.binds, key=lambda b: -len(b[1])):
            if str(pure) == cpath or str(pure).startswith(cpath.rstrip("/") + "/"):
                return host / str(pure)[len(cpath) :].lstrip("/")
        top = pure.parts[1] if len(pure.parts) > 1 else ""
        if not top or top == "tmp" or top not in self.shared_tops:
            return self.root / str(pure).lstrip("/")
        pure = _canonical(pure)
        shadowed = self.shadowed()
        for depth in range(2, len(pure.parts) + 1):
            prefix = str(PurePosixPath(*pure.parts[:depth]))
            if prefix in self.own:
                break
            if prefix in shadowed:
                continue
            if depth == 2 or os.path.lexists(prefix):
                return Path(str(pure))  # this machine's, shared with the node (or bound back into its shadow)
            break
        return self.root / str(pure).lstrip("/")

    def claim(self, container_path: str) -> None:
        """Make ``container_path`` the node's own (see the class docstring); nothing to do outside shared folders."""
        pure = _absolute(container_path)
        top = pure.parts[1] if len(pure.parts) > 1 else ""
        if self.root is None or not top or top == "tmp" or top not in self.shared_tops:
            return
        if any(str(pure).startswith(c.rstrip("/") + "/") for _, c in self.binds):
            return  # in a mount: the volume's
        self.own.add(str(_canonical(pure)))

    def writable(self, container_path: str, what: str) -> Path:
        """Where the engine writes the node's ``container_path`` (claimed first). Unisolated, only ``/tmp``
        (which such nodes share) may be written: anything else would be this machine's own file."""
        if self.root is None:
            pure = _absolute(container_path)
            if pure.parts[1:2] != ("tmp",):
                raise EngineError(
                    f"{what}: nodes run unisolated (no bubblewrap), so {pure} would be written on this machine: "
                    "install bubblewrap (apt-get install bubblewrap) or use a path under /tmp"
                )
            return Path(str(pure))
        self.claim(container_path)
        return self.host_path(container_path)

    def make_dir(self, container_path: str, what: str) -> None:
        """The folder ``container_path`` exists for the node (made in its root when it does not)."""
        if not self.host_path(container_path).is_dir():
            self.writable(container_path, what).mkdir(parents=True, exist_ok=True)

    def shadowed(self) -> set[str]:
        """The folders of this machine above claimed paths: the node has them as its own, with their entries bound back."""
        out: set[str] = set()
        for own in self.own:
            parts = PurePosixPath(own).parts
            for depth in range(2, len(parts)):
                folder = str(PurePosixPath(*parts[:depth]))
                if not os.path.isdir(folder):
                    break
                out.add(folder)
        return out


def _absolute(container_path: str) -> PurePosixPath:
    pure = PurePosixPath("/") / container_path
    if any(part == ".." for part in pure.parts):
        raise EngineError(f"path {container_path!r} contains '..': use an absolute path without '..'")
    return pure


def _canonical(pure: PurePosixPath) -> PurePosixPath:
    """``pure`` with this machine's symlinks in its existing part resolved (``/lib/x`` → ``/usr/lib/x``)."""
    parts = pure.parts
    for depth in range(len(parts), 1, -1):
        head = str(PurePosixPath(*parts[:depth]))
        if os.path.lexists(head):
            return PurePosixPath(os.path.realpath(head), *parts[depth:])
    return pure


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
        self.home = settings.home.resolve()  # the state folder: nodes write there (the local "cluster")
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
        for _, cpath in fs.binds:  # a mount point this machine lacks is made in the node's root, never here
            if not os.path.lexists(cpath):
                fs.claim(cpath)
        shadowed = fs.shadowed()
        private = (frozenset(private_tops) - self.shared_tops) | {o.split("/")[1] for o in fs.own if o.count("/") == 1}
        hidden = private | {s.split("/")[1] for s in shadowed}
        root = str(fs.root)
        self._link(root)
        for name, link in self.entries:
            if link is None and name in hidden:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(f"{root}/{name}")  # the image has these folders too
        out = [self.bwrap or "bwrap", "--die-with-parent", "--bind", root, "/", *self._host_binds(frozenset(hidden))]
        out += self._shadow_binds(fs, shadowed)
        for path in self.needed:  # what nodes need, also where its folder is the node's or read-only
            top = path.parts[1] if len(path.parts) > 1 else ""
            if top == "tmp" or top in hidden:
                out += ["--bind", str(path), str(path)]
        if len(self.home.parts) > 1 and self.home.parts[1] in READ_ONLY_TOPS and self.home.exists():
            out += ["--bind", str(self.home), str(self.home)]  # a state folder under /var…: nodes write there
        # parents before what they hold: a bind inside another bind lands in it
        for host, cpath in sorted(fs.binds, key=lambda b: len(PurePosixPath(b[1]).parts)):
            out += ["--ro-bind" if cpath in fs.read_only else "--bind", str(host), cpath]
        for path in self.needed:  # a mount over what nodes need (a volume at /tmp above the state folder): bound back
            if any(path.is_relative_to(cpath) for _, cpath in fs.binds):
                out += ["--bind", str(path), str(path)]
        out += ["--chdir", cwd, "--", *argv]
        return out

    def _shadow_binds(self, fs: NodeFS, shadowed: set[str]) -> list[str]:
        """Each shadowed folder made in the node's root, with what this machine has in it bound back (its
        symlinks copied), except the node's own entries."""
        assert fs.root is not None
        out: list[str] = []
        for folder in sorted(shadowed, key=lambda f: f.count("/")):
            mine = fs.root / folder.lstrip("/")
            mine.mkdir(parents=True, exist_ok=True)
            bind = "--ro-bind" if folder.split("/")[1] in READ_ONLY_TOPS else "--dev-bind"
            with os.scandir(folder) as entries:
                for entry in entries:
                    child = f"{folder}/{entry.name}"
                    if child in shadowed or child in fs.own:
                        continue
                    if entry.is_symlink():
                        with contextlib.suppress(FileExistsError):
                            os.symlink(os.readlink(entry.path), mine / entry.name)
                    else:
                        out += [bind, child, child]
        return out

    def host_of(self, cpath: str, fs: NodeFS, private_tops: Iterable[str]) -> Path:
        """The host file behind the absolute container path ``cpath`` as ``wrap`` makes the node's root."""
        pure = PurePosixPath(cpath)
        if fs.root is None:
            return Path(str(pure))
        if any(pure == p or pure.is_relative_to(p) for p in map(PurePosixPath, map(str, self.needed))):
            return Path(str(pure))  # bound last: over any mount
        for host, bound in sorted(fs.binds, key=lambda b: -len(b[1])):
            if pure == PurePosixPath(bound) or pure.is_relative_to(bound):
                return host / pure.relative_to(bound)
        top = pure.parts[1] if len(pure.parts) > 1 else ""
        if top in self.shared_tops and top not in ("tmp", "proc", "dev"):
            return fs.host_path(cpath)  # this machine's, or the node's own where it claimed a path
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

    def _host_binds(self, hidden: frozenset[str]) -> list[str]:
        """The binds of the host's top-level folders into a root whose ``hidden`` tops are the node's own
        (the same for every node with the same: built once); system folders read-only."""
        cached = self._binds.get(hidden)
        if cached is not None:
            return cached
        out: list[str] = []
        for name, link in self.entries:
            if name not in hidden and link is None:
                out += ["--ro-bind" if name in READ_ONLY_TOPS else "--dev-bind", f"/{name}", f"/{name}"]
        out += ["--dev-bind", "/dev", "/dev", "--dev-bind", "/proc", "/proc"]
        self._binds[hidden] = out
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
    tty: bool = False,
) -> ProcessResult:
    """Run ``argv`` in its own process group; stdout is captured (``result``) and logged with stderr. Its
    stdin is empty, or with ``tty`` a terminal (a container's ``tty: true``: Kubernetes gives it a TTY; nothing
    is typed into it)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    terminal = os.openpty() if tty else None
    with open(log_path, "ab", buffering=0) as log:
        try:
            proc = subprocess.Popen(
                list(argv),
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=terminal[1] if terminal else subprocess.DEVNULL,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as err:
            raise EngineError(f"cannot start {argv[0]!r}: {err}") from err
        finally:
            if terminal:
                os.close(terminal[1])  # the process has it
        chunks: list[bytes] = []
        ticket = _WATCHDOG.watch(proc, deadline, stopped, monotonic, grace)
        try:
            code = _pump_and_wait(proc, chunks, log)
        finally:
            _WATCHDOG.forget(ticket)
            if terminal:
                os.close(terminal[0])
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
