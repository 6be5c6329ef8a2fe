"""``suspend`` templates with a ``duration``: the node waits (through the run's clock, woken by a stop) and
succeeds with the ``default``/``value`` of its output parameters (Argo's ``executeSuspend``,
``workflow/controller/operator.go``; the duration is ``wfv1.ParseStringToDuration``). A suspend without a
duration waits for a manual resume, which has no local counterpart: refused before anything runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...errors import NotSupportedLocally
from ..core.context import Call
from ..core.durations import argo_seconds
from ..core.state import NodeDoc, node_id
from ..core.values import fmt_item
from .base import CheckContext, KindContext, NodeKind

__all__ = ["KIND", "check", "run"]


def check(tmpl: Mapping[str, Any], where: str, cc: CheckContext) -> None:
    duration = (tmpl.get("suspend") or {}).get("duration")
    if not duration:
        raise NotSupportedLocally("suspend without a duration (it waits for a manual resume)", where)
    if "{{" not in str(duration):
        argo_seconds(duration, f"{where} suspend.duration")


def run(ctx: KindContext, call: Call) -> NodeDoc:
    """Wait ``suspend.duration`` (not again on resume once it was waited) and succeed."""
    tmpl, display = call.template, call.display
    reused = ctx.state.reusable(node_id(ctx.name, call.name))
    node = ctx.new_node(call.name, display, "Suspend", call.parent, tmpl)
    if reused is None:
        ctx.sleep(argo_seconds((tmpl.get("suspend") or {}).get("duration", "0"), f"suspend of {display!r}"))
    params = []
    for p in (tmpl.get("outputs") or {}).get("parameters") or []:
        vf = p.get("valueFrom") or {}
        if "default" in vf or "value" in p:
            params.append({"name": p["name"], "value": fmt_item(p.get("value", vf.get("default")))})
    if params:
        node["outputs"] = {"parameters": params}
    if ctx.abort.is_set():
        return ctx.finish(node, "Failed", ctx.abort_message)
    return ctx.finish(node, "Succeeded")


KIND = NodeKind("suspend", "Suspend", check, run)
