"""The local artifact repository (``<home>/artifacts``) and safe paths into it.

Output artifacts are stored under ``<home>/artifacts/<key>`` (key ``<run>/<node-id>/<name>.tgz``
by default, tar-gz or raw per ``archive``); input artifacts are placed at their path in the node's
filesystem. Every key and path is checked so nothing can escape the repository or the node folder.
Nothing becomes more readable than it was: the repository is private to its owner (0700), a stored
artifact keeps its source's mode (the archive of a 0600 file is 0600), and an artifact placed from an
archive gets the mode its member had (as Argo's executor untars it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tarfile
from pathlib import Path, PurePosixPath
from typing import Any

from ...errors import EngineError
from ..core.paths import safe_join

__all__ = ["ArtifactRepo"]


class ArtifactRepo:
    """Save and load artifacts in a local folder; a location is ``{"key": ..., "archive": ...}``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def save(self, src: Path, key: str, archive: dict[str, Any] | None, what: str) -> dict[str, Any]:
        """Store ``src`` (file or folder) under ``key``; returns the Argo-shaped artifact location."""
        self._private_root()
        dest = safe_join(self.root, key, what)
        dest.parent.mkdir(parents=True, exist_ok=True)
        raw = archive is not None and "none" in archive
        mode = stat.S_IMODE(src.stat().st_mode)
        if raw:
            if src.is_dir():
                if dest.exists():
                    shutil.rmtree(dest)
                shutil.copytree(src, dest, symlinks=True)  # copy2: modes kept
            else:
                shutil.copyfile(src, dest)
                os.chmod(dest, mode)
        else:
            tmp = dest.with_name(dest.name + ".part")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # never readable by others while written
            with (
                os.fdopen(fd, "wb") as fh,
                tarfile.open(
                    fileobj=fh, mode="w:gz", compresslevel=int((archive or {}).get("tar", {}).get("compressionLevel", 6) or 6)
                ) as tar,
            ):
                tar.add(src, arcname=src.name or "artifact")
            os.chmod(tmp, 0o600 | (mode & 0o044))  # readable by whom the source is (group, others), no more
            os.replace(tmp, dest)
        return {"key": key, "archived": not raw}

    def _private_root(self) -> None:
        """The repository folder, private to its owner."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        if stat.S_IMODE(self.root.stat().st_mode) != 0o700:
            with contextlib.suppress(PermissionError):  # not ours: leave it as its owner set it
                self.root.chmod(0o700)

    def load(self, location: dict[str, Any], dest: Path, what: str) -> None:
        """Place a stored artifact at ``dest`` (a file or folder, as it was saved)."""
        src = safe_join(self.root, str(location.get("key", "")), what)
        if not src.exists():
            raise EngineError(f"{what}: artifact {location.get('key')!r} is missing from the local repository {self.root}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        archived = location.get("archived")
        if archived is None:  # a key given by the user (key-only artifacts): look at what is stored
            archived = src.is_file() and src.read_bytes()[:2] == b"\x1f\x8b"
        if not archived:
            if src.is_dir():
                shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True)
            else:
                shutil.copyfile(src, dest)
                shutil.copymode(src, dest)
            return
        with tarfile.open(src, "r:gz") as tar:
            members = tar.getmembers()
            tops = {PurePosixPath(m.name).parts[0] for m in members if m.name}
            single = len(members) == 1 and members[0].isfile()
            if single:
                fh = tar.extractfile(members[0])
                assert fh is not None
                dest.write_bytes(fh.read())
                os.chmod(dest, members[0].mode & 0o777)
                return
            # a folder: its content goes to dest (Argo strips the top folder)
            staging = dest.parent / f".{dest.name}.extract"
            if staging.exists():
                shutil.rmtree(staging)
            tar.extractall(staging, filter="data")
            top = staging / next(iter(tops)) if len(tops) == 1 else staging
            if dest.exists() and dest.is_dir():
                shutil.copytree(top, dest, dirs_exist_ok=True, symlinks=True)
                shutil.rmtree(staging)
            else:
                os.replace(top, dest)
                if staging.exists():
                    shutil.rmtree(staging)

    @staticmethod
    def write_raw(data: str, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(data)
