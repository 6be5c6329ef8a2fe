"""Argument types shared by the command groups."""

from __future__ import annotations

import argparse

__all__ = ["pair"]


def pair(text: str) -> tuple[str, str]:
    """``NAME=VALUE`` (for ``-p``, ``-l`` and ``--arg``)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return key, value
