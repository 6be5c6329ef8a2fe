"""Paths that stay where they belong: ``safe_join`` keeps a relative path (an artifact key, a ConfigMap
key, a claim name) inside its base folder, so no user-given name can reach outside the state folder."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from ...errors import EngineError

__all__ = ["safe_join"]


def safe_join(base: Path, relative: str, what: str) -> Path:
    """``base / relative`` refusing absolute parts, ``..`` and symlinks that lead outside ``base``."""
    rel = PurePosixPath(relative.lstrip("/"))
    if any(part == ".." for part in rel.parts):
        raise EngineError(f"{what}: path {relative!r} contains '..'; use a path inside the run's folder")
    target = (base / rel).resolve()
    root = base.resolve()
    if target != root and root not in target.parents:
        raise EngineError(f"{what}: path {relative!r} leads outside {root}")
    return target
