"""Argument types shared by the command groups."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["group", "pair"]


def group(sub: Any, name: str, help: str, description: str | None = None, *, dest: str, metavar: str) -> Any:
    """Add the command group ``name`` (``scanflow-argo NAME ACTION ...``) to the top-level subparsers and
    return its own subparsers, an action required (argparse then names the choices when one is missing)."""
    parser = sub.add_parser(name, help=help, description=description)
    actions = parser.add_subparsers(dest=dest, metavar=metavar)
    actions.required = True
    return actions


def pair(text: str) -> tuple[str, str]:
    """``NAME=VALUE`` (for ``-p``, ``-l`` and ``--arg``)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return key, value
