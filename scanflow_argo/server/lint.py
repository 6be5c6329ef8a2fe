"""What the server checks before it accepts an Argo object (create, lint, update): the project's lint.

Argo's server validates with ``workflow/validate`` and answers ``InvalidArgument`` (HTTP 400) with
the problem; here the same offline checks as ``scanflow-argo lint`` run — Argo's JSON schema when the
schemas are available (``compile.schema``) and the graph checks (``compile.graph``) — and every
problem found is in the message. The schema validators are built once, on first use, off the event loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from typing import Any

from ..compile.graph import check_graph
from ..compile.schema import SchemaChecker
from .http import ApiError, Codes

__all__ = ["Linter"]


class Linter:
    """Schema and graph checks of Argo objects; ``check`` raises ``InvalidArgument`` listing every problem."""

    def __init__(self, checker: SchemaChecker | None = None) -> None:
        self._checker = checker
        self._lock = threading.Lock()

    def problems(self, obj: Mapping[str, Any]) -> list[str]:
        with self._lock:
            if self._checker is None:
                self._checker = SchemaChecker()
            checker = self._checker
        found = checker.problems(obj) if checker.available else []
        return found + check_graph(obj)

    async def check(self, obj: Mapping[str, Any]) -> None:
        problems = await asyncio.to_thread(self.problems, obj)
        if problems:
            raise ApiError(Codes.INVALID_ARGUMENT, "; ".join(problems))
