"""Find an agent by reference: ``package.module:attribute`` — an ``Agent``, or a factory returning one.

With a compiled config (the ``<agent>-config`` ConfigMap's JSON, ``SCANFLOW_AGENT_CONFIG``) the agent
is rebuilt from its factory with the recorded ``factory_args`` (explicit ``--arg`` wins), so the pod
runs what was compiled, not the factory's defaults.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from .._imports import import_ref
from ..errors import AgentDefinitionError
from ..spec.agent import Agent, factory_arguments

__all__ = ["CONFIG_ENV", "load_agent", "parse_args", "read_config"]

CONFIG_ENV = "SCANFLOW_AGENT_CONFIG"
"""The compiled agent config: its JSON text (from the ConfigMap key), or the path of a file holding it."""


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


def read_config(value: str | Path | None = None, environ: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """The compiled config from ``value`` (JSON text or a file path), else ``$SCANFLOW_AGENT_CONFIG``; ``None`` when absent."""
    env = os.environ if environ is None else environ
    where = "--config" if value else f"${CONFIG_ENV}"
    raw = str(value) if value else env.get(CONFIG_ENV, "")
    if not raw.strip():
        return None
    text = raw
    if not raw.lstrip().startswith("{"):
        try:
            text = Path(raw).read_text(encoding="utf-8")
        except OSError as err:
            raise AgentDefinitionError(f"{where}: {raw!r} is neither JSON nor a readable file ({err})") from err
    try:
        data = json.loads(text)
    except ValueError as err:
        raise AgentDefinitionError(f"{where}: not valid JSON ({err}) — it should be the compiled agent.json") from err
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise AgentDefinitionError(
            f"{where}: expected the compiled agent config (an object with 'name'), got {type(data).__name__}"
        )
    return data


def _import(ref: str) -> Any:
    return import_ref(ref, error=AgentDefinitionError, example="agents.mnist:drift_supervisor")


def _call(ref: str, factory: Any, kwargs: Mapping[str, Any]) -> Agent:
    if not callable(factory) or isinstance(factory, Agent):
        raise AgentDefinitionError(f"agent factory {ref!r} is a {type(factory).__name__}, not a function")
    try:
        agent = factory(**dict(kwargs))
    except TypeError as err:
        raise AgentDefinitionError(f"agent factory {ref!r}: {err}") from err
    if not isinstance(agent, Agent):
        raise AgentDefinitionError(
            f"agent reference {ref!r} returned a {type(agent).__name__}, not an Agent (scanflow_argo.spec.agent.Agent)"
        )
    if not agent.factory:  # a plain function: record it, as @agent_factory does
        try:
            bound = inspect.signature(factory).bind(**dict(kwargs))
            bound.apply_defaults()
            agent = agent.with_factory(ref, factory_arguments(bound))
        except (TypeError, ValueError, AgentDefinitionError):
            agent = agent.with_factory(ref, {})
    return agent


def load_agent(ref: str, kwargs: Mapping[str, Any] | None = None, config: Mapping[str, Any] | None = None) -> Agent:
    """Import ``module:attr``; call it (or the factory that built it) with the config's ``factory_args``
    updated by ``kwargs``; check it is an ``Agent`` and, with a config, that it is the configured one."""
    obj = _import(ref)
    cli = dict(kwargs or {})
    want_factory = str((config or {}).get("factory") or "")
    args = {**dict((config or {}).get("factory_args") or {}), **cli}
    if isinstance(obj, Agent):
        if not args:
            agent = obj
        elif not obj.factory:
            what = "--arg" if cli else f"the config's factory_args ({', '.join(sorted(args))})"
            raise AgentDefinitionError(
                f"agent reference {ref!r} is an Agent not built by a factory: {what} needs a factory "
                "(decorate it with @agent_factory, or run MODULE:FACTORY)"
            )
        else:
            if want_factory and want_factory != obj.factory:
                raise AgentDefinitionError(
                    f"the compiled config was built by {want_factory!r} but {ref!r} comes from {obj.factory!r} — "
                    "recompile the manifests or fix the entrypoint"
                )
            agent = _call(obj.factory, _import(obj.factory), args)
    elif callable(obj):
        own = getattr(obj, "__scanflow_factory__", ref)
        if want_factory and want_factory not in (own, ref):
            raise AgentDefinitionError(
                f"the compiled config was built by {want_factory!r}, not by {ref!r} — recompile the manifests or fix the entrypoint"
            )
        agent = _call(ref, obj, args)
    else:
        raise AgentDefinitionError(
            f"agent reference {ref!r} is a {type(obj).__name__}, not an Agent (scanflow_argo.spec.agent.Agent)"
        )
    if not agent.entrypoint:
        agent = _with_entrypoint(agent, ref)
    if config is not None and config.get("name") != agent.name:
        raise AgentDefinitionError(
            f"the compiled config is for agent {config.get('name')!r} but {ref!r} builds {agent.name!r} — "
            "check the Deployment's command and its ConfigMap"
        )
    return agent


def _with_entrypoint(agent: Agent, ref: str) -> Agent:
    return replace(agent, entrypoint=ref)
