"""What the server checks before it accepts an Argo object (create, lint, update): the project's lint.

Argo's server validates with ``workflow/validate`` and answers ``InvalidArgument`` (HTTP 400) with
the problem; here the same offline checks as ``scanflow-argo lint`` run — Argo's JSON schema when the
schemas are available (``compile.schema``) and the graph checks (``compile.graph``) — and every
problem found is in the message. The schema validators are built once, off the event loop: ``warm()``
builds them when the server starts (loading the CRDs and building the CEL parser take a fraction of a second,
which the first submission from the UI or a client would otherwise wait for — creating a run checks its
shape against the same cached CRD, ``engine/api.py`` ``check_shape``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping
from typing import Any

from ..compile.graph import check_graph
from ..compile.schema import SchemaChecker
from ..errors import ScanflowError
from .http import ApiError, Codes

__all__ = ["Linter"]

log = logging.getLogger("scanflow_argo.server")

WARM_UP = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Workflow",
    "metadata": {"generateName": "warm-up-"},
    "spec": {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": "alpine:3"}}]},
}
"""The smallest Workflow: checking it loads the Workflow CRD and compiles its rules."""


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

    def warm(self) -> None:
        """Build the validators now (a thread at the server's start); a failure is left to the first real check."""
        try:
            self.problems(WARM_UP)
        except ScanflowError as err:
            log.debug("schema checks not warmed: %s", err)

    async def check(self, obj: Mapping[str, Any]) -> None:
        problems = await asyncio.to_thread(self.problems, obj)
        if problems:
            raise ApiError(Codes.INVALID_ARGUMENT, "; ".join(problems))
