"""Node wrappers: what happens around a call before its kind runs it, in Argo's order (``executeTemplate``
in ``workflow/controller/operator.go``: take the template's locks, then look the node up in its
memoization cache, then the Retry node and its attempts).

Each wrapper is ``wrap(ctx, call, proceed) -> node``: it decides whether the template asks for it, and
calls ``proceed(call)`` (the next wrapper, finally the kind) once or more, or not at all (a cache hit).
A per-node feature is one more module here and one more entry in ``CHAIN``.
"""

from __future__ import annotations

from collections.abc import Callable

from ..core.context import Call
from ..core.state import NodeDoc
from ..kinds.base import KindContext
from . import memoize, retry, synchronization

__all__ = ["CHAIN", "Proceed", "Wrapper"]

Proceed = Callable[[Call], NodeDoc]
Wrapper = Callable[[KindContext, Call, Proceed], NodeDoc]

CHAIN: list[Wrapper] = [synchronization.wrap, memoize.wrap, retry.wrap]
"""The wrappers every call goes through, outermost first."""
