"""``script`` templates: a container pod whose ``source`` Argo's executor writes to an executable file
(``/argo/staging/script``) and appends to the command (``workflow/executor`` ``script``); everything else
is the container kind's (``kinds/container.py``)."""

from __future__ import annotations

from .base import NodeKind
from .container import check_body, run_pod

__all__ = ["KIND"]

KIND = NodeKind("script", "Pod", check_body, run_pod)
