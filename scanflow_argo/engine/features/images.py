"""Images on this machine: what a container's image offers it, and the argv the container runs.

An image maps to an ``Image``: a runtime (``python``: commands named ``python*`` run the configured
interpreter; ``shell``: this machine's tools; or an executable that stands for the image's entrypoint),
the image's ``ENTRYPOINT`` and ``CMD``, files it has at fixed paths (bound read-only into the node's root),
folders it adds to ``PATH``, the commands it offers that this machine must have (with the Debian
package that has them, and the program of this machine a command's file runs: alpine's ``nc`` is
busybox), the folders its process writes (``VOLUME``: the node's own) and the ports it listens on
(``EXPOSE``). The built-in table describes the images Argo's examples and tests use, as their
Dockerfiles make them; ``EngineSettings.image_map`` (``SCANFLOW_ENGINE_IMAGE_MAP``) adds or replaces
entries with the same vocabulary (``parse_image``). An image without a mapping is refused before
anything runs (``ImageNotMapped``), and so is one whose commands this machine lacks.

The argv follows Kubernetes (``command`` replaces ``ENTRYPOINT``, ``args`` replace ``CMD``; with a
``command`` and no ``args`` the image's ``CMD`` is dropped) after the kubelet's ``$(VAR)`` expansion
(``core/envvars.py``). A command that is not in the image is not refused up front: the node fails when
it starts, as a pod does (``Sandbox.locate``).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from ...errors import EngineError, ImageNotMapped, SetupError
from ...settings import Settings
from ..core.envvars import expand_all
from .sandbox import NodeFS, Sandbox

__all__ = [
    "ARGOSAY",
    "BUILTIN_IMAGES",
    "Image",
    "Launch",
    "check_first_command",
    "check_image",
    "container_argv",
    "image_of",
    "launch",
    "parse_image",
    "strip_image",
]

ARGOSAY = Path(__file__).with_name("argosay.sh")
"""The local twin of ``/argosay`` in ``argoproj/argosay:v2`` (a sh script, as the image's is)."""
BUSYBOX = "/bin/busybox"
"""Debian's busybox (package ``busybox``): alpine's applets."""
IMAGE_FILES = Path(__file__).with_name("image_files")
"""Files the built-in images have at fixed paths (nginx's and influxd's configurations, alpine's ``nc`` and
``apk``), each saying whose it is and where it comes from."""


@dataclass(frozen=True)
class Image:
    """What an image offers a container, as its Dockerfile makes it."""

    runtime: str = "shell"
    """``python`` (commands named ``python*`` run ``EngineSettings.python``), ``shell`` (this machine's
    tools) or an executable's absolute path (the image's entrypoint; a command of that name runs it)."""
    entrypoint: tuple[str, ...] = ()
    """The image's ``ENTRYPOINT``."""
    cmd: tuple[str, ...] = ()
    """The image's ``CMD``: run when the container gives neither ``command`` nor ``args``."""
    files: tuple[tuple[str, str], ...] = ()
    """``(container path, host path)``: files (or folders) the image has at fixed paths."""
    path: tuple[str, ...] = ()
    """Folders the image appends to ``PATH`` (``ENV PATH $PATH:/usr/games``)."""
    tools: tuple[tuple[str, str], ...] = ()
    """``(command, package)``: commands the image offers that must be on this machine."""
    providers: tuple[tuple[str, str], ...] = ()
    """``(command, program)``: tools whose file in the image (``files``) runs this machine's ``program``, which
    must then be here (alpine's ``nc`` is busybox)."""
    private: tuple[str, ...] = ()
    """Folders the image has and its process writes (its ``VOLUME``s): in a node, its own, made empty in its root."""
    ports: tuple[int, ...] = ()
    """The ports its process listens on when run as the image runs it (``EXPOSE``): nodes share this machine's
    network, so two such nodes at once collide."""


def _cowsay_image() -> Image:
    """Ubuntu with Debian's ``cowsay`` on ``PATH`` from ``/usr/games``, running ``cowsay`` by default:
    ``argoproj/argosay:v1`` (argo-workflows ``test/e2e/images/argosay/v1/Dockerfile``) and
    ``docker/whalesay`` (Ubuntu 14.04, the same lines; its default cow is a whale, here Debian's cow)."""
    return Image(cmd=("cowsay",), path=("/usr/games",), tools=(("cowsay", "cowsay"),))


def _nginx_image() -> Image:
    """The official nginx image (nginxinc/docker-nginx ``mainline/stretch/Dockerfile``, 1.13: the nginx.org
    package, ``EXPOSE 80``, ``CMD ["nginx", "-g", "daemon off;"]``, its logs linked to stdout/stderr) with
    Debian's nginx: its ``nginx.conf`` and ``conf.d/default.conf`` (the welcome page of
    ``/usr/share/nginx/html`` on port 80) are ``image_files/nginx``, which keep its pid and temporary files
    in the node's ``/tmp`` and log to stdout/stderr."""
    folder = IMAGE_FILES / "nginx"
    return Image(
        cmd=("nginx", "-g", "daemon off;"),
        files=(
            ("/etc/nginx/nginx.conf", str(folder / "nginx.conf")),
            ("/etc/nginx/conf.d/default.conf", str(folder / "default.conf")),
        ),
        path=("/usr/sbin",),  # the image's PATH has the sbin folders (Docker's default), where Debian puts nginx
        tools=(("nginx", "nginx"),),
        ports=(80,),
    )


def _influxdb_image() -> Image:
    """The official influxdb 1.x image (influxdata/influxdata-docker ``influxdb/1.2/Dockerfile``: ``EXPOSE 8086``,
    ``VOLUME /var/lib/influxdb``, ``CMD ["influxd"]``; its ``entrypoint.sh`` runs the command as given unless
    ``INFLUXDB_*`` variables ask it to create users or a database first, which the twin does not) with
    Debian's influxdb. Its ``influxdb.conf`` (``image_files/influxdb``) puts meta, data and WAL under
    ``/var/lib/influxdb`` as the image's does, which in a node is the node's own folder."""
    return Image(
        cmd=("influxd",),
        files=(("/etc/influxdb/influxdb.conf", str(IMAGE_FILES / "influxdb" / "influxdb.conf")),),
        tools=(("influxd", "influxdb"),),
        private=("/var/lib/influxdb",),
        ports=(8086,),
    )


def _busybox_image(cmd: tuple[str, ...]) -> Image:
    """Alpine's tools, which are busybox's (``/bin/sh`` is busybox's ash, ``/usr/bin/nc`` its nc: alpine's
    busybox package links its applets to ``/bin/busybox``): Debian's busybox at those paths (``nc`` behind
    ``image_files/alpine/nc``, which gives Debian's busybox alpine's ``-k``), this machine's other tools, and
    ``/sbin/apk`` (``image_files/alpine/apk``: this machine is its mirror, as nodes reach no network).
    Without Debian's busybox, this machine's ``sh`` stands in, and a container that runs ``nc`` is refused
    naming the package."""
    return Image(
        cmd=cmd,
        files=(
            ("/bin/sh", BUSYBOX),
            ("/usr/bin/nc", str(IMAGE_FILES / "alpine" / "nc")),
            ("/sbin/apk", str(IMAGE_FILES / "alpine" / "apk")),
        ),
        tools=(("nc", "busybox"),),
        providers=(("sh", BUSYBOX), ("nc", BUSYBOX), ("apk", "/bin/sh")),
    )


# Images that need no mapping: name without registry (and with a tag where the tag decides) → Image.
BUILTIN_IMAGES: dict[str, Image] = {
    "python": Image("python", cmd=("python3",)),
    # the busybox image: its /bin/sh is busybox's ash (Debian's busybox; else this machine's sh), this machine's other tools
    "busybox": Image(cmd=("sh",), files=(("/bin/sh", BUSYBOX),), providers=(("sh", BUSYBOX),)),
    "alpine": _busybox_image(cmd=("/bin/sh",)),
    # curlimages/curl is alpine with curl (its Dockerfile: FROM alpine; CMD ["curl"]): this machine's curl, alpine's sh
    "curlimages/curl": replace(_busybox_image(cmd=("curl",)), tools=(("curl", "curl"), ("nc", "busybox"))),
    "nginx": _nginx_image(),
    "influxdb:1": _influxdb_image(),  # 1.x only (a major version matches its tags 1.2, 1.8-alpine…): 2.x is another server
    "debian": Image(cmd=("bash",)),
    "ubuntu": Image(cmd=("/bin/bash",)),
    "bash": Image(cmd=("bash",)),
    "argoproj/argosay:v1": _cowsay_image(),
    # v2 is v1 plus /argosay as its ENTRYPOINT, which drops v1's CMD (test/e2e/images/argosay/v2/Dockerfile)
    "argoproj/argosay:v2": replace(_cowsay_image(), entrypoint=("/argosay",), cmd=(), files=(("/argosay", str(ARGOSAY)),)),
    "docker/whalesay": _cowsay_image(),
    # the official node images (CMD ["node"]): this machine's node, when it has it
    "node": Image(cmd=("node",), tools=(("node", "nodejs"),)),
    # this project's runtime image (docker/runtime.Dockerfile): the main environment's interpreter is its local twin
    "scanflow-argo/runtime": Image("python", cmd=("scanflow-argo", "--help")),
}
RUNTIMES = {
    "python": Image("python", cmd=("python3",)),
    "shell": Image(cmd=("sh",)),
    "argosay": BUILTIN_IMAGES["argoproj/argosay:v2"],
}
"""The runtimes a mapping starts from (an absolute executable path is the fourth)."""
_MAP_HELP = (
    "IMAGE=RUNTIME[;OPTION...] with RUNTIME python, shell, argosay or /path/to/executable and OPTIONs "
    "path=/dir[:/dir] (added to PATH), entrypoint=WORDS, cmd=WORDS, /container/path=/host/path (a file of the "
    "image), tool=COMMAND[:PACKAGE[:PROGRAM]] (a command the image offers; with PROGRAM, its file runs that program of "
    "this machine), private=/dir[:/dir] (folders the image's process writes, its VOLUMEs), port=N (a port it listens on)"
)


def strip_image(image: str) -> str:
    """``docker.io/library/python:3.11@sha256:…`` → ``python``."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    for prefix in ("docker.io/", "index.docker.io/", "library/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    if name.startswith("quay.io/argoproj/"):
        name = name[len("quay.io/") :]
    return name


def parse_image(value: str, key: str = "") -> Image:
    """An ``EngineSettings.image_map`` value (see ``_MAP_HELP``) as an ``Image``; ``key`` names the entry."""
    what = f"SCANFLOW_ENGINE_IMAGE_MAP entry {key!r}" if key else "SCANFLOW_ENGINE_IMAGE_MAP entry"
    runtime, *options = [part.strip() for part in value.split(";")]
    if runtime in RUNTIMES:
        img = RUNTIMES[runtime]
    elif runtime.startswith("/"):
        img = Image(runtime, entrypoint=(runtime,))
    else:
        raise SetupError(f"{what}: unknown runtime {runtime!r}: write {_MAP_HELP}")
    files, path, tools, providers = list(img.files), list(img.path), list(img.tools), list(img.providers)
    private, ports = list(img.private), list(img.ports)
    for option in filter(None, options):
        name, eq, arg = option.partition("=")
        if not eq or not arg:
            raise SetupError(f"{what}: option {option!r} has no value: write {_MAP_HELP}")
        if name == "path":
            path += [d for d in arg.split(":") if d]
        elif name == "entrypoint":
            img = replace(img, entrypoint=tuple(shlex.split(arg)))
        elif name == "cmd":
            img = replace(img, cmd=tuple(shlex.split(arg)))
        elif name == "tool":
            command, _, rest = arg.partition(":")
            package, _, program = rest.partition(":")
            tools.append((command, package or command))
            if program:
                providers.append((command, program))
        elif name == "private":
            private += [d for d in arg.split(":") if d]
        elif name == "port":
            if not arg.isdigit():
                raise SetupError(f"{what}: port {arg!r} is not a number: write {_MAP_HELP}")
            ports.append(int(arg))
        elif name.startswith("/"):
            if not os.path.isabs(arg):
                raise SetupError(f"{what}: the file for {name} must be an absolute path on this machine, not {arg!r}")
            files = [f for f in files if f[0] != name] + [(str(PurePosixPath(name)), arg)]
        else:
            raise SetupError(f"{what}: unknown option {name!r}: write {_MAP_HELP}")
    return replace(
        img,
        files=tuple(files),
        path=tuple(dict.fromkeys(path)),
        tools=tuple(tools),
        providers=tuple(providers),
        private=tuple(dict.fromkeys(private)),
        ports=tuple(dict.fromkeys(ports)),
    )


def image_of(image: str, image_map: Mapping[str, str], where: str = "") -> Image:
    """What ``image`` offers here: the user's mapping (full name, then without registry and tag), else the built-in
    table (``name:tag``, then ``name:major`` for a tag that starts with a version, then ``name``)."""
    for key in (image, strip_image(image)):
        if key in image_map:
            return parse_image(image_map[key], key)
    tag = image.split("@", 1)[0].rsplit("/", 1)[-1].partition(":")[2]
    name = strip_image(image)
    major = re.match(r"\d+", tag)
    found = (
        BUILTIN_IMAGES.get(f"{name}:{tag}")
        or (BUILTIN_IMAGES.get(f"{name}:{major.group()}") if major else None)
        or BUILTIN_IMAGES.get(name)
    )
    if found is None:
        raise ImageNotMapped(
            f"image {image!r}{' in ' + where if where else ''} has no local runtime: map it with "
            f"SCANFLOW_ENGINE_IMAGE_MAP='{strip_image(image)}=python|shell|argosay|/path/to/executable' "
            "(EngineSettings.image_map; options such as ';path=/usr/games' in docs/local-engine.md)"
        )
    return found


def container_argv(body: Mapping[str, Any], img: Image, settings: Settings, env: Mapping[str, str]) -> tuple[list[str], bool]:
    """The argv of a container (already substituted) in its image, Kubernetes' way, its ``$(VAR)``s
    expanded from ``env``; and whether its executable is the engine's own (an interpreter or a mapped
    executable: nothing to look up)."""
    command = expand_all([str(x) for x in body.get("command") or []], env)
    args = expand_all([str(x) for x in body.get("args") or []], env)
    argv = [*command, *args] if command else [*img.entrypoint, *(args or img.cmd)]
    if not argv:
        raise EngineError(f"the container of image {body.get('image')!r} has no command or args, and the image none to run")
    first = PurePosixPath(argv[0]).name
    if img.runtime == "python" and first.startswith("python"):
        return [settings.engine.python, *argv[1:]], True
    if img.runtime.startswith("/") and first == PurePosixPath(img.runtime).name:
        return [img.runtime, *argv[1:]], True
    return argv, False


@dataclass
class Launch:
    """A container ready to start in its node's sandbox."""

    argv: list[str]
    """The host argv (bubblewrap's, with the container's argv at its end)."""
    path: str
    """The container's ``PATH``: this machine's plus the image's folders, unless the container sets its own."""
    missing: str | None
    """Argo's executor error when the container's executable is not in its image (it then exits 64)."""


def launch(
    body: Mapping[str, Any],
    settings: Settings,
    sandbox: Sandbox,
    fs: NodeFS,
    private: Iterable[str],
    cwd: str,
    env: Mapping[str, str],
    where: str,
) -> Launch:
    """Place the image's files in the node's root (``fs``, its mounts already placed), build the container's
    argv and find its executable as the container would, and wrap it in the sandbox. ``env`` is the
    environment the container declares (for ``$(VAR)`` and a ``PATH`` of its own)."""
    img = image_of(str(body.get("image") or ""), settings.engine.image_map, where)
    argv, own = container_argv(body, img, settings, env)
    if fs.root is not None:
        # a volume mounted over an image's folder hides what the image has there, as in a pod
        mounts = [cpath for _, cpath in fs.binds]
        files = _placed(img, body, mounts)
        for cpath, host in files:
            fs.binds.append((Path(host), cpath))
            fs.read_only.add(cpath)
        # the image's own top-level folders (``/opt`` of ``/opt/tool``) are the node's, never made on this machine
        private = {*private, *(PurePosixPath(cpath).parts[1] for cpath, _ in files)}
        for folder in img.private:
            if not _under_any(folder, mounts):
                fs.claim(folder)
                fs.make_dir(folder, f"{where}: the folder {folder} of image {body.get('image')!r}")
    elif img.private:
        fs.writable(img.private[0], f"{where}: image {body.get('image')!r} writes {img.private[0]}")  # refuses
    path = env.get("PATH") or _image_path(img)
    missing = None
    if not own:
        found, missing = sandbox.locate(argv[0], fs, private, path, cwd, dict(img.files))
        if found is not None:
            argv = [found, *argv[1:]]
    return Launch(sandbox.wrap(argv, fs, private, cwd), path, missing)


def _words(body: Mapping[str, Any], img: Image) -> str:
    """The text of what a container runs (its command, args and script, else the image's)."""
    words = " ".join(str(x) for key in ("command", "args") for x in body.get(key) or [])
    words += " " + str(body.get("source") or "")
    if not body.get("command") and not body.get("args"):
        words += " " + " ".join(img.entrypoint or img.cmd)
    return words


def _names(words: str, command: str) -> bool:
    """Whether ``words`` name ``command`` (as a word of its own)."""
    return re.search(rf"(?<![\w.-]){re.escape(command)}(?![\w.-])", words) is not None


def _placed(img: Image, body: Mapping[str, Any], mounts: Sequence[str]) -> list[tuple[str, str]]:
    """The image's files a node gets: not those under a volume (it hides them, as in a pod), nor a tool's
    whose program this machine lacks; and a tool's file at a path this machine lacks (placing it costs the
    node its own copy of the folder: a bind per entry, ~1 s for /usr/bin) only when the container names it."""
    providers = dict(img.providers)
    words = _words(body, img) if providers else ""
    out = []
    for cpath, host in img.files:
        name = PurePosixPath(cpath).name
        if _under_any(cpath, mounts) or not os.path.exists(host):
            continue
        if name in providers and (not os.path.exists(providers[name]) or not (os.path.lexists(cpath) or _names(words, name))):
            continue
        out.append((cpath, host))
    return out


def _under_any(cpath: str, folders: Iterable[str]) -> bool:
    """Whether the container path ``cpath`` is one of ``folders`` or inside one."""
    pure = PurePosixPath(cpath)
    return any(pure == PurePosixPath(f) or pure.is_relative_to(f) for f in folders)


def _image_path(img: Image) -> str:
    """This machine's ``PATH`` (the images' tools are its tools) with the image's folders appended."""
    base = [d for d in (os.environ.get("PATH") or "/usr/local/bin:/usr/bin:/bin").split(os.pathsep) if d]
    return os.pathsep.join(dict.fromkeys([*base, *img.path]))


def check_image(body: Mapping[str, Any], where: str, settings: Settings, kind: str = "container") -> None:
    """Before anything runs: the container has an image, the image a mapping, a mapped executable exists,
    and the commands of the image that the container uses are on this machine (else: which package)."""
    image = str(body.get("image") or "")
    if not image:
        raise EngineError(f"{where}: the {kind} has no image")
    if "{{" in image:
        return  # known when the node runs
    img = image_of(image, settings.engine.image_map, where)
    if img.runtime.startswith("/") and not os.access(img.runtime, os.X_OK):
        raise SetupError(f"{where}: image {image!r} maps to {img.runtime}, which is not an executable on this machine")
    for cpath, host in img.files:
        if not os.path.exists(host) and PurePosixPath(cpath).name not in dict(img.providers):
            raise SetupError(f"{where}: image {image!r} has {cpath} from {host}, which does not exist on this machine")
    if not img.tools:
        return
    providers = dict(img.providers)
    words = _words(body, img)
    path = _image_path(img)
    for command, package in img.tools:
        if _names(words, command) and shutil.which(providers.get(command, command), path=path) is None:
            raise ImageNotMapped(
                f"{where} runs {command!r}, which image {image!r} offers and this machine lacks: install it "
                f"(Debian/Ubuntu: apt-get install {package})"
            )
    if "apk" in providers:
        lacking = [name for name in apk_added(words) if shutil.which(name, path=path) is None]
        if lacking:
            raise ImageNotMapped(
                f"{where} runs 'apk add {' '.join(lacking)}': the local apk installs from this machine, which has no "
                f"command {', '.join(map(repr, lacking))}: install what provides it here (Debian/Ubuntu: apt-get install …)"
            )


def apk_added(script: str) -> list[str]:
    """The package names of the literal ``apk add`` commands in ``script`` (options, versions, redirections and
    names known only at run time left out)."""
    out: list[str] = []
    script = re.sub(r"(?<!\S)\d*(?:>>|>|<)&?\s*[^\s;&|)]+", " ", script)  # redirections: 2>&1, >/dev/null, < in
    for match in re.finditer(r"(?<![\w.-])apk\s+add\s+([^;&|)\n]*)", script):
        for word in match.group(1).split():
            if word.startswith(("-", "$", "`")):
                continue
            out.append(re.split(r"[=<>~]", word.strip("'\""), maxsplit=1)[0])
    return [w for w in dict.fromkeys(out) if w]


_SHELL_WORDS = frozenset(  # shell keywords and builtins: never looked up on the host
    "if then else elif fi for while until do done case esac in function { } ! [ [[ . : true false test echo printf "  # noqa: SIM905
    "exit return set unset export cd read eval exec trap wait shift local alias type command sleep kill pwd".split()
)


def check_first_command(body: Mapping[str, Any], where: str, settings: Settings) -> None:
    """A long-running ``sh -c '<tool> …'`` (a daemon, a sidecar) whose tool this machine lacks would stand
    for a server the real image has (a daemon then never gets ready): say so before anything runs."""
    command = [str(c) for c in body.get("command") or []]
    args = [str(a) for a in body.get("args") or []]
    if len(command) < 2 or Path(command[0]).name not in ("sh", "bash", "ash", "dash") or command[1] != "-c" or not args:
        return
    script = args[0] if len(command) == 2 else command[2]
    words = script.strip().split(None, 1)
    word = words[0] if words else ""
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*", word) or word in _SHELL_WORDS or shutil.which(word):
        return
    image = str(body.get("image") or "")
    if "{{" not in image:
        img = image_of(image, settings.engine.image_map, where)
        if shutil.which(word, path=_image_path(img)) or word in dict(img.providers):
            return  # the image's (a tool it offers through this machine's program: check_image says which package)
    raise ImageNotMapped(
        f"{where} runs {word!r} (in its shell command) from image {image!r}, which this machine lacks: install it, "
        f"or map the image to an executable with SCANFLOW_ENGINE_IMAGE_MAP='{strip_image(image)}=/path/to/executable'"
    )
