"""``retryStrategy``: a ``Retry`` node whose children are the attempts ``name(0)``, ``name(1)``… (Argo's
``processNodeRetries`` in ``workflow/controller/operator.go``): ``limit``, ``retryPolicy`` (``OnFailure``
by default, ``OnError``, ``Always``), ``expression`` over ``lastRetry``, and ``backoff`` (``duration`` ×
``factor``^n, ``cap``, ``maxDuration``; durations as ``wfv1.ParseStringToDuration``). The Retry node
ends with its last attempt's phase and outputs; its message is Argo's reason for stopping
(``processNodeRetries``: ``retryStrategy.expression evaluated to false``, then ``No more retries left``
when the limit is spent), else the last attempt's; a daemon attempt keeps it Running with it.

``limit`` is read as ``util/intstr`` ``Int32`` reads it, when a failed attempt needs it: a value that is no
whole number errors the Retry node ("value 'abc' cannot be resolved to an int"), a negative one allows no
retry. A backoff waits from the last attempt's end and ``maxDuration`` counts from the first attempt's start
(``waitingDeadline := lastChildNode.FinishedAt.Add(timeToWait)``, ``firstChildNode.StartedAt.Add(maxDuration)``),
so a resumed run waits only what is left of a backoff its dead engine had begun.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any

from ...argoexpr.expr import eval_expr_bool
from ...argoexpr.golang import go_atoi
from ...clock import from_iso
from ...errors import EngineError
from ..core.context import Call
from ..core.durations import argo_seconds
from ..core.inputs import inputs_doc, template_vars
from ..core.state import NodeDoc, node_id
from ..core.subst import substitute
from ..core.values import FAILED
from ..kinds.base import KindContext

__all__ = ["retry_limit", "should_retry", "wrap"]


def wrap(ctx: KindContext, call: Call, proceed: Callable[[Call], NodeDoc]) -> NodeDoc:
    """Run ``call`` under its retry strategy (straight through when it has none)."""
    tmpl, display = call.template, call.display
    strategy = tmpl.get("retryStrategy") or ctx.spec.get("retryStrategy")  # operator.go retryStrategy(): the workflow's
    if not strategy:
        return proceed(call)
    vars_ = template_vars(ctx.global_scope(), tmpl, call.inputs, ctx.name, call.name, 0)
    rs = substitute(strategy, vars_, strict=False, where=f"retryStrategy of {display!r}")
    node = ctx.new_node(call.name, display, "Retry", call.parent, tmpl)
    node["inputs"] = inputs_doc(call.inputs)
    return _attempts(ctx, call, proceed, node, rs, 0, ctx.clock.monotonic())


def _attempts(
    ctx: KindContext,
    call: Call,
    proceed: Callable[[Call], NodeDoc],
    node: NodeDoc,
    rs: Mapping[str, Any],
    first: int,
    start: float,
) -> NodeDoc:
    """Attempts ``first``, ``first + 1``… of the Retry node ``node`` until one succeeds or the strategy stops;
    a daemon attempt keeps the node Running with it, and is retried the same way if it fails later."""
    attempt: Mapping[str, Any] = {}
    flags = ctx.flag(call.name)  # the Retry node's (a hook's is hooked); its attempts are retried too
    i = first
    for i in itertools.count(first):
        ctx.flag(f"{call.name}({i})", **flags, retried=True)
        attempt = proceed(call.attempt(i, node["id"], _last_retry(ctx, call, i, attempt)))
        if i == 0 and "_t0" not in attempt and attempt.get("startedAt"):  # ended before a resume: count from its start
            start -= max(0.0, ctx.clock.now() - from_iso(str(attempt["startedAt"])))
        if attempt["phase"] == "Succeeded" or attempt.get("daemoned") or ctx.abort.is_set():
            break
        try:
            again, attempt = _after_failure(ctx, rs, attempt, i, start, call.display)
        except EngineError as err:  # processNodeRetries returns the error: markNodeError on the Retry node
            return ctx.finish(node, "Error", str(err))
        if not again:
            break
    if attempt.get("daemoned"):
        tried = i

        def failed(daemon: NodeDoc) -> bool:
            """The daemon attempt failed after it was ready: the next attempt, as for any failed attempt, or the
            Retry node ends with Argo's reason."""
            if ctx.abort.is_set():
                return False
            try:
                again, ended = _after_failure(ctx, rs, daemon, tried, start, call.display)
            except EngineError as err:
                ctx.finish(node, "Error", str(err))
                return True
            if again:
                _attempts(ctx, call, proceed, node, rs, tried + 1, start)
            else:
                ctx.finish(node, str(daemon.get("phase", "Failed")), ended.get("message"))
            return True

        if ctx.daemons.attach(str(attempt["id"]), node, failed):
            ctx.changed()
            return node  # Running and daemoned with its pod; both end with it, unless it is retried
    if attempt.get("outputs"):
        node["outputs"] = attempt["outputs"]
    return ctx.finish(node, attempt.get("phase", "Error"), attempt.get("message"))


def _after_failure(
    ctx: KindContext, rs: Mapping[str, Any], attempt: Mapping[str, Any], i: int, start: float, display: str
) -> tuple[bool, Mapping[str, Any]]:
    """After failed attempt ``i``: ``(True, attempt)`` once the backoff has passed and attempt ``i + 1`` may run,
    else ``(False, attempt)`` with Argo's reason for stopping as its message (``processNodeRetries``); raises
    EngineError for a ``limit`` that is no whole number."""
    policy = str(rs.get("retryPolicy") or "OnFailure")
    backoff = rs.get("backoff") or {}
    if not should_retry(ctx, policy, rs, attempt, expression=False):
        return False, attempt
    if rs.get("expression") and not should_retry(ctx, policy, rs, attempt):
        return False, {**attempt, "message": "retryStrategy.expression evaluated to false"}
    limit = retry_limit(rs.get("limit"))
    if limit is not None and i >= limit:
        return False, {**attempt, "message": "No more retries left"}
    if backoff:
        delay = (
            argo_seconds(backoff.get("duration", "0"), f"{display!r} retryStrategy.backoff.duration")
            * float(backoff.get("factor", 1) or 1) ** i
        )
        if backoff.get("cap"):
            delay = min(delay, argo_seconds(backoff["cap"], f"{display!r} retryStrategy.backoff.cap"))
        delay -= _since_end(ctx, attempt)  # what is left of it (all of it, unless a dead engine began it)
        if backoff.get("maxDuration"):
            max_d = argo_seconds(backoff["maxDuration"], f"{display!r} retryStrategy.backoff.maxDuration")
            if ctx.clock.monotonic() - start + delay > max_d:
                return False, {**attempt, "message": "Backoff would exceed max duration limit"}
        ctx.sleep(max(0.0, delay))
    return True, attempt


def _last_retry(ctx: KindContext, call: Call, index: int, last: Mapping[str, Any]) -> dict[str, str]:
    """``lastRetry.*`` of attempt ``index`` (``operator.go`` ``executeTemplate``: ``exitCode`` and ``duration``
    ``"0"``, ``status`` and ``message`` empty for the first; else the previous attempt's exit code, phase, duration
    in seconds (``GetDuration().Seconds()``) and message). A resumed run reads the previous attempt's node."""
    if not last and index > 0:
        with ctx.state.lock:
            last = dict(ctx.state.nodes.get(node_id(ctx.name, f"{call.name}({index - 1})")) or {})
    if not last:
        return {"exitCode": "0", "duration": "0", "status": "", "message": ""}
    seconds = 0.0
    if last.get("startedAt") and last.get("finishedAt"):
        seconds = max(0.0, from_iso(str(last["finishedAt"])) - from_iso(str(last["startedAt"])))
    return {
        "exitCode": str((last.get("outputs") or {}).get("exitCode", "0")),
        "duration": str(int(seconds)) if seconds == int(seconds) else repr(seconds),  # Go's fmt.Sprint of a float64
        "status": str(last.get("phase", "")),
        "message": str(last.get("message") or ""),
    }


def retry_limit(value: Any) -> int | None:
    """``retryStrategy.limit`` as Argo's ``intstr.Int32`` reads it (``util/intstr/parametrizable.go``): a number,
    or text that ``strconv.Atoi`` reads; None when there is none (retry without limit)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return go_atoi(str(value))
    except ValueError:
        raise EngineError(
            f"retryStrategy.limit: value '{value}' cannot be resolved to an int (a whole number, or a variable that gives one)"
        ) from None


def _since_end(ctx: KindContext, attempt: Mapping[str, Any]) -> float:
    """Seconds since ``attempt`` ended: from its pod's monotonic end, or (an attempt a dead engine ran, reused
    on resume) from its recorded ``finishedAt``."""
    if "_t1" in attempt:
        return max(0.0, ctx.clock.monotonic() - float(attempt["_t1"]))
    if attempt.get("finishedAt"):
        return max(0.0, ctx.clock.now() - from_iso(str(attempt["finishedAt"])))
    return 0.0


def should_retry(
    ctx: KindContext, policy: str, rs: Mapping[str, Any], attempt: Mapping[str, Any], *, expression: bool = True
) -> bool:
    """Whether a failed attempt is retried: its phase against ``retryPolicy``, then (unless ``expression``
    is false) ``expression``."""
    phase = attempt.get("phase")
    ok = {
        "Always": phase in FAILED,
        "OnFailure": phase == "Failed",
        "OnError": phase == "Error",
        "OnTransientError": False,
    }.get(policy, phase in FAILED)
    if not ok:
        return False
    if expression and rs.get("expression"):
        started, finished = attempt.get("_t0", 0.0), attempt.get("_t1", 0.0)
        last = {
            "exitCode": str((attempt.get("outputs") or {}).get("exitCode", "-1")),
            "status": phase,
            "duration": str(int(max(0.0, finished - started))),
            "message": attempt.get("message", ""),
        }
        return eval_expr_bool(str(rs["expression"]), {"lastRetry": last}, clock=ctx.clock)
    return True
