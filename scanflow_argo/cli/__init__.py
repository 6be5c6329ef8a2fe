"""The ``scanflow-argo`` command: one entry point, thin — parse, call the library, print.

Each command group lives in its own module with a ``register(subparsers)`` function; heavy
imports (mlflow, torch, kubernetes) happen inside the command functions, never at import time,
so ``scanflow-argo --help`` stays instant. A command function takes the parsed ``args`` and the
``Settings`` and returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from dataclasses import replace

from ..errors import ScanflowError, SetupError
from ..settings import Settings

__all__ = ["main"]

# Command-group modules, in --help order.
_GROUPS = ["compile", "workflows", "platform", "serving", "agent", "rollout", "team", "server", "demo"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scanflow-argo",
        description="Autonomic ML workflows on Argo Workflows, Seldon Core, Prometheus and MLflow.",
    )
    parser.add_argument("--home", help="state folder of the local platform (default: $SCANFLOW_HOME or ./.scanflow)")
    parser.add_argument("--platform", choices=["local", "kubernetes"], help="where to act (default: $SCANFLOW_PLATFORM or local)")
    parser.add_argument("--namespace", help="namespace of workflows and deployments (default: $SCANFLOW_NAMESPACE or scanflow)")
    parser.add_argument(
        "--team",
        dest="team_ref",
        metavar="APP/TEAM",
        help="act in the team's namespace scanflow-APP-TEAM (instead of --namespace)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for group in _GROUPS:
        importlib.import_module(f".{group}", __name__).register(sub)
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    if args.home:
        settings = settings.with_home(args.home)
    if args.platform:
        settings = replace(settings, platform=args.platform)
    namespace = args.namespace
    if args.team_ref:
        from ..compile.teams import team_namespace  # CLI start-up: only when --team is given (the compiler's package)

        app, _, team = args.team_ref.partition("/")
        team_ns = team_namespace(app, team)
        if namespace and namespace != team_ns:
            raise SetupError(
                f"--team {args.team_ref} means namespace {team_ns!r} but --namespace says {namespace!r} — give one of them"
            )
        namespace = team_ns
    if namespace:
        settings = replace(settings, kubernetes=replace(settings.kubernetes, namespace=namespace))
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = int(args.func(args, settings_from_args(args)) or 0)
        sys.stdout.flush()  # a pipe's reader that left is seen here, not in the interpreter's last flush
        return code
    except ScanflowError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `scanflow-argo list | head`: the reader left; say nothing more (Python's documented recipe:
        # point stdout at devnull so the interpreter's final flush cannot fail again)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader went away


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
