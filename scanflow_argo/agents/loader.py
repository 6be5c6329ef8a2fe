"""Find an agent by reference: ``package.module:attribute`` — an ``Agent``, or a factory returning one."""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from typing import Any

from ..errors import AgentDefinitionError
from ..spec.agent import Agent

__all__ = ["load_agent", "parse_args"]


def parse_args(pairs: list[str] | None) -> dict[str, Any]:
    """``["interval=2s", "threshold=0.8"]`` → ``{"interval": "2s", "threshold": 0.8}`` (JSON values when they parse)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.isidentifier():
            raise AgentDefinitionError(f"--arg {pair!r}: write it as name=value, e.g. --arg interval=2s")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def load_agent(ref: str, kwargs: Mapping[str, Any] | None = None) -> Agent:
    """Import ``module:attr``; call it with ``kwargs`` when it is a factory; check it is an ``Agent``."""
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise AgentDefinitionError(f"agent reference {ref!r}: use MODULE:AGENT, e.g. agents.mnist:drift_supervisor")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise AgentDefinitionError(
            f"agent reference {ref!r}: cannot import {module_name!r} ({err}) — is it on PYTHONPATH?"
        ) from err
    try:
        obj = getattr(module, attr)
    except AttributeError as err:
        raise AgentDefinitionError(f"agent reference {ref!r}: {module_name} has no attribute {attr!r}") from err
    if isinstance(obj, Agent):
        if kwargs:
            raise AgentDefinitionError(f"agent reference {ref!r} is an Agent, not a factory: --arg needs a factory function")
        return obj
    if callable(obj):
        try:
            obj = obj(**dict(kwargs or {}))
        except TypeError as err:
            raise AgentDefinitionError(f"agent factory {ref!r}: {err}") from err
    if not isinstance(obj, Agent):
        raise AgentDefinitionError(
            f"agent reference {ref!r} is a {type(obj).__name__}, not an Agent (scanflow_argo.spec.agent.Agent)"
        )
    return obj
