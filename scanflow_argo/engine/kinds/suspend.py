"""``suspend`` templates with a ``duration``: the node waits (through the run's clock, woken by a stop) and
succeeds with the ``default``/``value`` of its output parameters, a ``supplied`` one without any default failing
it (Argo's ``executeSuspend``, ``workflow/controller/operator.go``; the duration is ``wfv1.ParseStringToDuration``). A suspend without a
duration waits for a manual resume, which has no local counterpart: refused before anything runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...errors import EngineError, NotSupportedLocally
from ..core.context import Call
from ..core.durations import argo_seconds
from ..core.state import NodeDoc, node_id
from ..core.values import fmt_item
from .base import CheckContext, KindContext, NodeKind

__all__ = ["KIND", "check", "run", "timed_out_outputs"]


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
    if ctx.abort.is_set():
        return ctx.finish(node, "Failed", ctx.abort_message)
    try:
        params = timed_out_outputs(tmpl)
    except EngineError as err:  # operator.go executeTemplate: the error marks the node Error
        return ctx.finish(node, "Error", str(err))
    if params:
        node["outputs"] = {"parameters": params}
    return ctx.finish(node, "Succeeded")


def timed_out_outputs(tmpl: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The output parameters of a suspend node whose ``duration`` passed with nothing supplied.

    Argo records each ``valueFrom.supplied`` output on the node when it starts, its ``default`` being the
    output's own or else that of the template's input parameter of the same name (``addRawOutputFields``,
    ``workflow/controller/operator.go``); when the duration passes, each takes its default as its value, and
    one without any fails the node: ``raw output parameter 'NAME' has not been set and does not have a default
    value`` (``OverrideOutputParametersWithDefault``, ``workflow/util/util.go``). Outputs with a ``value`` keep it.
    """
    inputs = {str(p.get("name")): p for p in (tmpl.get("inputs") or {}).get("parameters") or []}
    params = []
    for p in (tmpl.get("outputs") or {}).get("parameters") or []:
        vf = p.get("valueFrom") or {}
        name = str(p.get("name"))
        if "supplied" in vf:
            default = vf["default"] if "default" in vf else inputs.get(name, {}).get("default")
            if default is None:
                raise EngineError(f"raw output parameter '{name}' has not been set and does not have a default value")
            params.append({"name": name, "value": fmt_item(default)})
        elif "default" in vf or "value" in p:
            params.append({"name": name, "value": fmt_item(p.get("value", vf.get("default")))})
    return params


KIND = NodeKind("suspend", "Suspend", check, run)
