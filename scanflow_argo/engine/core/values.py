"""Values as Argo writes them into parameters and node records, and the phases every layer compares.

``fmt_item`` is how a loop item, a parameter ``value`` or an env ``value`` becomes text (JSON for lists and
maps, ``true``/``false``, ``5`` for ``5.0``, as Argo's ``wfv1.Item``/``AnyString`` marshal them); ``item_label``
is the ``(index:label)`` suffix of a looped node's name (``workflow/controller/operator.go`` ``generateNodeName``).
"""

from __future__ import annotations

import json
import socket
from typing import Any

__all__ = ["DAEMON_IP", "DONE", "FAILED", "HOST_NODE_NAME", "fmt_item", "item_label", "json_or_str"]

FAILED = ("Failed", "Error")
"""Phases that fail a node's parent (unless ``continueOn`` says otherwise)."""
DONE = ("Succeeded", "Failed", "Error", "Skipped", "Omitted")
"""Phases after which a node does not change."""
DAEMON_IP = "127.0.0.1"
"""What ``{{steps.X.ip}}`` / ``{{tasks.X.ip}}`` give for a daemon on this machine's network (a daemon with its
own network has its own: the node's ``podIP``, ``engine/features/podnet.py``)."""
HOST_NODE_NAME = socket.gethostname()
"""The Kubernetes node every pod runs on here: this machine (``{{steps.X.hostNodeName}}``)."""


def fmt_item(value: Any) -> str:
    """A parameter/item value as Argo's text: strings as is, JSON for lists and maps, ``5`` for ``5.0``."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), sort_keys=isinstance(value, dict))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def item_label(value: Any) -> str:
    """The label of a loop item in its node's name: ``k:v,k2:v2`` for a map, else its text."""
    if isinstance(value, dict):
        return ",".join(f"{k}:{fmt_item(v)}" for k, v in sorted(value.items()))
    return fmt_item(value)


def json_or_str(value: str) -> Any:
    """A result or parameter text as JSON when it is JSON (aggregated outputs of a fan-out), else the text."""
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value
