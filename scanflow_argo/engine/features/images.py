"""Images on this machine: which local runtime an image maps to, and the host argv of a container under it.

An image maps to a runtime (``python``: the configured interpreter; ``shell``: ``/bin/sh`` and the host's
tools; ``argosay``: the local stand-in for ``argoproj/argosay:v2``; or an executable path) through
``EngineSettings.image_map`` or the built-in table; an image without one is refused before anything runs
(``ImageNotMapped``), and so is a command the image's runtime cannot find here.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...errors import EngineError, ImageNotMapped
from ...settings import Settings
from .sandbox import build_argv

__all__ = ["BUILTIN_IMAGES", "check_command", "check_first_command", "container_argv", "image_runtime", "strip_image"]

# Images that need no mapping: name without registry/tag → runtime.
BUILTIN_IMAGES = {
    "python": "python",
    "busybox": "shell",
    "alpine": "shell",
    "debian": "shell",
    "ubuntu": "shell",
    "bash": "shell",
    "argoproj/argosay:v2": "argosay",
    # this project's runtime image (docker/): the main environment's interpreter is its local twin
    "scanflow-argo/runtime": "python",
}


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


def image_runtime(image: str, image_map: Mapping[str, str], where: str = "") -> str:
    """The local runtime of ``image``: ``python``, ``shell``, ``argosay`` or an executable path."""
    for key in (image, strip_image(image)):
        if key in image_map:
            return image_map[key]
    tag = image.split("@", 1)[0].rsplit("/", 1)[-1].partition(":")[2]
    runtime = BUILTIN_IMAGES.get(f"{strip_image(image)}:{tag}") or BUILTIN_IMAGES.get(strip_image(image))
    if runtime is None:
        raise ImageNotMapped(
            f"image {image!r}{' in ' + where if where else ''} has no local runtime: map it with "
            f"SCANFLOW_ENGINE_IMAGE_MAP='{strip_image(image)}=python|shell|argosay|/path/to/executable' "
            "(EngineSettings.image_map)"
        )
    return runtime


def container_argv(body: Mapping[str, Any], settings: Settings, where: str, kind: str = "container") -> list[str]:
    """The host argv of one (already substituted) container of a pod — an init container, a sidecar,
    a containerSet's — under its image's runtime; ``kind`` names it in the error for a missing image."""
    image = str(body.get("image") or "")
    if not image:
        raise EngineError(f"{where}: the {kind} has no image")
    runtime = image_runtime(image, settings.engine.image_map, where)
    command, args = [str(x) for x in body.get("command") or []], [str(x) for x in body.get("args") or []]
    return build_argv(runtime, command, args, settings, image)


_SHELL_WORDS = frozenset(  # shell keywords and builtins: never looked up on the host
    "if then else elif fi for while until do done case esac in function { } ! [ [[ . : true false test echo printf "  # noqa: SIM905
    "exit return set unset export cd read eval exec trap wait shift local alias type command sleep kill pwd".split()
)


def check_first_command(body: Mapping[str, Any], where: str, settings: Settings) -> None:
    """A long-running ``sh -c '<tool> …'`` whose tool this machine lacks would fail when it starts
    (a daemon then never gets ready): say so before anything runs, as for a missing command."""
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
    raise ImageNotMapped(
        f"{where} runs {word!r} (in its shell command) from image {image!r}, which this machine lacks: install it, "
        f"or map the image to an executable with SCANFLOW_ENGINE_IMAGE_MAP='{strip_image(image)}=/path/to/executable'"
    )


def check_command(runtime: str, body: Mapping[str, Any], image: str, where: str, settings: Settings, script: bool) -> None:
    command = list(body.get("command") or [])
    if not command or "{{" in str(command[0]):
        return
    exe = str(command[0])
    if runtime == "python" and Path(exe).name.startswith("python"):
        return
    if runtime == "argosay" and exe in ("/argosay", "argosay"):
        return
    if runtime not in ("python", "shell", "argosay"):
        return
    if shutil.which(exe) is None:
        raise ImageNotMapped(
            f"{where} runs {exe!r} from image {image!r}, which this machine lacks: install it, or map the image "
            f"to an executable with SCANFLOW_ENGINE_IMAGE_MAP='{strip_image(image)}=/path/to/executable'"
        )
