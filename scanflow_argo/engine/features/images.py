"""Images on this machine: what a container's image offers it, and the argv the container runs.

An image maps to an ``Image``: a runtime (``python``: commands named ``python*`` run the configured
interpreter; ``shell``: this machine's tools; or an executable that stands for the image's entrypoint),
the image's ``ENTRYPOINT`` and ``CMD``, files it has at fixed paths (bound read-only into the node's root),
folders it adds to ``PATH``, and the commands it offers that this machine must have (with the Debian
package that has them). The built-in table describes the images Argo's examples and tests use, as their
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
from collections.abc import Iterable, Mapping
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


def _cowsay_image() -> Image:
    """Ubuntu with Debian's ``cowsay`` on ``PATH`` from ``/usr/games``, running ``cowsay`` by default:
    ``argoproj/argosay:v1`` (argo-workflows ``test/e2e/images/argosay/v1/Dockerfile``) and
    ``docker/whalesay`` (Ubuntu 14.04, the same lines; its default cow is a whale, here Debian's cow)."""
    return Image(cmd=("cowsay",), path=("/usr/games",), tools=(("cowsay", "cowsay"),))


# Images that need no mapping: name without registry (and with a tag where the tag decides) → Image.
BUILTIN_IMAGES: dict[str, Image] = {
    "python": Image("python", cmd=("python3",)),
    "busybox": Image(cmd=("sh",)),
    "alpine": Image(cmd=("/bin/sh",)),
    "debian": Image(cmd=("bash",)),
    "ubuntu": Image(cmd=("/bin/bash",)),
    "bash": Image(cmd=("bash",)),
    "argoproj/argosay:v1": _cowsay_image(),
    # v2 is v1 plus /argosay as its ENTRYPOINT, which drops v1's CMD (test/e2e/images/argosay/v2/Dockerfile)
    "argoproj/argosay:v2": replace(_cowsay_image(), entrypoint=("/argosay",), cmd=(), files=(("/argosay", str(ARGOSAY)),)),
    "docker/whalesay": _cowsay_image(),
    # the official node images (CMD ["node"]) and curlimages/curl (curl as its command): this machine's, when it has them
    "node": Image(cmd=("node",), tools=(("node", "nodejs"),)),
    "curlimages/curl": Image(cmd=("curl",), tools=(("curl", "curl"),)),
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
    "image), tool=COMMAND[:PACKAGE] (a command the image offers)"
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
    files, path, tools = list(img.files), list(img.path), list(img.tools)
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
            command, _, package = arg.partition(":")
            tools.append((command, package or command))
        elif name.startswith("/"):
            if not os.path.isabs(arg):
                raise SetupError(f"{what}: the file for {name} must be an absolute path on this machine, not {arg!r}")
            files = [f for f in files if f[0] != name] + [(str(PurePosixPath(name)), arg)]
        else:
            raise SetupError(f"{what}: unknown option {name!r}: write {_MAP_HELP}")
    return replace(img, files=tuple(files), path=tuple(dict.fromkeys(path)), tools=tuple(tools))


def image_of(image: str, image_map: Mapping[str, str], where: str = "") -> Image:
    """What ``image`` offers here: the user's mapping (full name, then without registry and tag), else the built-in table."""
    for key in (image, strip_image(image)):
        if key in image_map:
            return parse_image(image_map[key], key)
    tag = image.split("@", 1)[0].rsplit("/", 1)[-1].partition(":")[2]
    found = BUILTIN_IMAGES.get(f"{strip_image(image)}:{tag}") or BUILTIN_IMAGES.get(strip_image(image))
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
        for cpath, host in img.files:
            fs.binds.append((Path(host), cpath))
            fs.read_only.add(cpath)
        # the image's own top-level folders (``/opt`` of ``/opt/tool``) are the node's, never made on this machine
        private = {*private, *(PurePosixPath(cpath).parts[1] for cpath, _ in img.files)}
    path = env.get("PATH") or _image_path(img)
    missing = None
    if not own:
        found, missing = sandbox.locate(argv[0], fs, private, path, cwd, dict(img.files))
        if found is not None:
            argv = [found, *argv[1:]]
    return Launch(sandbox.wrap(argv, fs, private, cwd), path, missing)


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
        if not os.path.exists(host):
            raise SetupError(f"{where}: image {image!r} has {cpath} from {host}, which does not exist on this machine")
    if not img.tools:
        return
    words = " ".join(str(x) for key in ("command", "args") for x in body.get(key) or [])
    words += " " + str(body.get("source") or "")
    if not body.get("command") and not body.get("args"):
        words += " " + " ".join(img.entrypoint or img.cmd)
    path = _image_path(img)
    for command, package in img.tools:
        if re.search(rf"(?<![\w.-]){re.escape(command)}(?![\w.-])", words) and shutil.which(command, path=path) is None:
            raise ImageNotMapped(
                f"{where} runs {command!r}, which image {image!r} offers and this machine lacks: install it "
                f"(Debian/Ubuntu: apt-get install {package})"
            )


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
        if shutil.which(word, path=_image_path(img)):
            return
    raise ImageNotMapped(
        f"{where} runs {word!r} (in its shell command) from image {image!r}, which this machine lacks: install it, "
        f"or map the image to an executable with SCANFLOW_ENGINE_IMAGE_MAP='{strip_image(image)}=/path/to/executable'"
    )
