"""Template kinds Argo has that cannot run on one machine, refused before anything runs: ``data`` (sources
from an artifact repository's listing) and ``plugin`` (executor plugins, sidecars of Argo's agent pod)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...errors import NotSupportedLocally
from ..core.context import Call
from ..core.state import NodeDoc
from .base import CheckContext, KindContext, NodeKind

__all__ = ["KINDS"]


def _refuse(key: str) -> NodeKind:
    def check(tmpl: Mapping[str, Any], where: str, cc: CheckContext) -> None:
        raise NotSupportedLocally(f"{key} templates", where)

    def run(ctx: KindContext, call: Call) -> NodeDoc:
        raise NotSupportedLocally(f"{key} templates", call.where)

    return NodeKind(key, "Pod", check, run)


KINDS = [_refuse("data"), _refuse("plugin")]
