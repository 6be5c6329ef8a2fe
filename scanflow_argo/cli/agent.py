"""CLI group ``agent``: ``scanflow-argo agent run MODULE:AGENT`` runs one agent until SIGTERM.

Where it acts (local engine and serving, or Argo and Kubernetes) depends on ``--platform`` /
``SCANFLOW_PLATFORM`` only. ``agent check MODULE:AGENT`` validates a definition and prints its
config and RBAC rules. Heavy imports happen inside the command functions.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import AgentDefinitionError
from ..settings import Settings
from ._args import group

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the ``agent`` group to the top-level subparsers."""
    actions = group(sub, "agent", "run or check an autonomic agent", dest="action", metavar="ACTION")

    run = actions.add_parser("run", help="run an agent (sense → decide → act) with its HTTP API, until stopped")
    run.add_argument(
        "ref", metavar="MODULE:AGENT", help="an Agent or a factory returning one, e.g. agents.mnist:drift_supervisor"
    )
    run.add_argument(
        "--arg", action="append", metavar="NAME=VALUE", help="keyword argument for a factory (repeatable; JSON values)"
    )
    run.add_argument(
        "--config",
        metavar="JSON|FILE",
        help="the compiled agent config (default: $SCANFLOW_AGENT_CONFIG, set from the agent's ConfigMap): "
        "rebuilds the agent from its factory with the recorded arguments; --arg wins",
    )
    run.add_argument("--dry-run", action="store_true", help="decide and record, never act")
    run.add_argument("--host", help="address of the HTTP API (default: $SCANFLOW_AGENT_HOST or 127.0.0.1)")
    run.add_argument("--port", type=int, help="port of the HTTP API; 0 picks a free one (default: $SCANFLOW_AGENT_PORT or 8080)")
    run.add_argument(
        "--state-dir",
        type=Path,
        help="state and audit folder (default: <home>/agents/<name>; on Kubernetes the state then stays in this "
        "folder — a mounted volume — instead of the <agent>-state ConfigMap)",
    )
    run.add_argument("--prometheus-url", help="Prometheus to query (default: $SCANFLOW_PROMETHEUS_URL, else the local one)")
    run.add_argument("--ready-file", type=Path, help="write {'url': ...} here once the API listens (for scripts and tests)")
    run.add_argument(
        "--platform-factory",
        metavar="MODULE:CALLABLE",
        help="build the platform with CALLABLE(settings) instead of --platform (tests: scanflow_argo.agents.testing:file_platform)",
    )
    run.add_argument("--log-level", help="DEBUG, INFO (default, or $SCANFLOW_AGENT_LOG_LEVEL), WARNING or ERROR")
    run.add_argument(
        "--log-format",
        choices=["text", "json"],
        help="text lines, or JSON lines with the event's fields (default: $SCANFLOW_AGENT_LOG_FORMAT or text)",
    )
    run.add_argument(
        "--team",
        help="the team the agent works for: it acts only in --namespace (the team's scanflow-APP-TEAM) and its audit names the team",
    )
    run.set_defaults(func=agent_run)

    check = actions.add_parser("check", help="validate an agent definition; print its config and RBAC rules")
    check.add_argument("ref", metavar="MODULE:AGENT")
    check.add_argument("--arg", action="append", metavar="NAME=VALUE")
    check.add_argument("--config", metavar="JSON|FILE", help="the compiled agent config to rebuild from (as `run`)")
    check.set_defaults(func=agent_check)


def agent_check(args: argparse.Namespace, settings: Settings) -> int:
    from ..agents.loader import load_agent, parse_args, read_config  # CLI start-up: this command only

    agent = load_agent(args.ref, parse_args(args.arg), config=read_config(args.config))
    print(json.dumps({"config": agent.config(), "rbac": agent.rbac_rules(), "secret_env": agent.secret_env()}, indent=2))
    return 0


def agent_run(args: argparse.Namespace, settings: Settings) -> int:
    # CLI start-up: the agent runtime (httpx, the API server, the loader) loads for this command only
    from ..agents.api import serve
    from ..agents.auth import api_token
    from ..agents.loader import load_agent, parse_args, read_config
    from ..agents.narrate import LOG_FORMATS, configure_logging
    from ..agents.runtime import AgentRuntime

    level = (args.log_level or settings.agent.log_level).upper()
    fmt = args.log_format or settings.agent.log_format
    if fmt not in LOG_FORMATS or not isinstance(logging.getLevelName(level), int):
        raise AgentDefinitionError(
            f"log level {level!r} / format {fmt!r}: use DEBUG, INFO, WARNING or ERROR and {' or '.join(LOG_FORMATS)}"
        )
    configure_logging(level, fmt)
    config = read_config(args.config)
    agent = load_agent(args.ref, parse_args(args.arg), config=config)
    if config is not None and not args.arg and json.loads(json.dumps(agent.declaration())) != config:
        logging.getLogger("scanflow_argo.agents").warning(
            "agent %s: the compiled config differs from what %s builds in this image — recompile the manifests",
            agent.name,
            args.ref,
        )
    host = args.host or settings.agent.host
    port = args.port if args.port is not None else settings.agent.port
    if args.prometheus_url:
        settings = replace(settings, prometheus=replace(settings.prometheus, url=args.prometheus_url))
    token, token_file = api_token(settings, host)
    platform = None
    if args.platform_factory:
        module, _, attr = args.platform_factory.partition(":")
        try:
            platform = getattr(importlib.import_module(module), attr)(settings)
        except (ImportError, AttributeError) as err:
            raise AgentDefinitionError(f"--platform-factory {args.platform_factory!r}: {err}") from err
    runtime = AgentRuntime(
        agent,
        settings,
        platform=platform,
        dry_run=args.dry_run or None,
        state_dir=args.state_dir,
        team=args.team or (args.team_ref.partition("/")[2] if args.team_ref else None),
    )
    asyncio.run(serve(runtime, host, port, token, ready_file=args.ready_file, token_file=token_file))
    return 0
