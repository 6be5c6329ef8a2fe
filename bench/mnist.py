"""Benchmark of the MNIST case study: the issue's numbers from the last scenario report.

    .venv/bin/python bench/mnist.py                    # read report/report.json (scanflow-argo demo mnist)
    .venv/bin/python bench/mnist.py path/report.json
    .venv/bin/python bench/mnist.py --run [--quick]    # run the scenario first (minutes), then print
    .venv/bin/python bench/mnist.py A/report.json --compare B/report.json   # did two runs decide the same?

Prints clean accuracy, accuracy on the drifted stream before and after retraining, the times from
drift onset to detection, retraining and roll-out, p95 latency before/during/after the load spike,
time to scale, and ratios against baselines measured in the same run (recovered vs clean accuracy,
p95 during vs before the spike), each next to the issue's target; the roll-outs (issue 17): the
drift candidate's time from roll-out start to promotion, the slow challenger's requests answered
against its canary share of those sent while it was judged, failed requests during roll-outs and
the abort; then the decisions in order (agent actions, workflow outcomes, each roll-out's analyses
and end) and, with ``--compare``, whether a second run made the same ones.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(quick: bool, out: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from examples.mnist.config import FULL, QUICK
    from examples.mnist.scenario import run_scenario
    from scanflow_argo.settings import Settings

    run_scenario(QUICK if quick else FULL, Settings.from_env(), out)


def _fmt(value: object, unit: str = "") -> str:
    if value is None:
        return "—"
    if unit == "%":
        return f"{float(value) * 100:.1f}%"  # type: ignore[arg-type]
    if unit == "ms":
        return f"{float(value) * 1000:.0f} ms"  # type: ignore[arg-type]
    if unit == "s":
        return f"{float(value):.1f} s"  # type: ignore[arg-type]
    return str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", nargs="?", type=Path, default=ROOT / "report" / "report.json")
    parser.add_argument("--run", action="store_true", help="run the scenario first")
    parser.add_argument("--quick", action="store_true", help="with --run: the shortened scenario")
    parser.add_argument("--compare", type=Path, help="a second run's report.json: were the same decisions made?")
    args = parser.parse_args(argv)
    if args.run:
        _run(args.quick, args.report.parent)
    if not args.report.is_file():
        print(f"no report at {args.report}: run `scanflow-argo demo mnist` (or this script with --run) first", file=sys.stderr)
        return 2
    doc = json.loads(args.report.read_text())
    s, config = doc["summary"], doc["timeline"].get("config", {})
    slo = config.get("slo")
    rows = [
        ("clean test accuracy, first model", _fmt(s.get("clean_accuracy_test"), "%"), ">= 96% (5k subset) / 99% (full set)"),
        ("online accuracy, clean", _fmt(s.get("clean_accuracy_online"), "%"), ""),
        ("online accuracy under drift, before", _fmt(s.get("drifted_accuracy_before"), "%"), ""),
        ("online accuracy under drift, after", _fmt(s.get("drifted_accuracy_after"), "%"), "within 5 points of clean"),
        ("drift onset -> detection", _fmt(s.get("detection_s"), "s"), "<= 60 s"),
        ("drift onset -> retraining done", _fmt(s.get("retrain_done_s"), "s"), ""),
        ("drift onset -> roll-out", _fmt(s.get("rollout_s"), "s"), ""),
        ("p95 before the spike (client)", _fmt(s.get("p95_before_spike"), "ms"), f"SLO {_fmt(slo, 'ms')}"),
        ("p95 during the spike (client)", _fmt(s.get("p95_during_spike"), "ms"), ""),
        ("p95 after the spike (client)", _fmt(s.get("p95_after_spike"), "ms"), ""),
        ("spike -> router p95 under the SLO", _fmt(s.get("router_p95_recovery_s"), "s"), "<= 30 s"),
        ("spike -> replica added", _fmt(s.get("time_to_scale_s"), "s"), f"(replicas at spike: {s.get('replicas_at_spike')})"),
        ("spike end -> one replica", _fmt(s.get("time_to_scale_down_s"), "s"), ""),
        ("whole scenario", _fmt(s.get("total_s"), "s"), "< 600 s"),
    ]
    if s.get("rollouts"):
        served, sent, weight = s.get("challenger_served"), s.get("challenger_requests_during"), s.get("challenger_weight")
        rows += [
            ("drift candidate: roll-out start -> promoted", _fmt(s.get("rollout_to_promotion_s"), "s"), str(s.get("drift_rollout_outcome"))),
            ("slow challenger: tower depth (measured here)", _fmt(s.get("challenger_depth")), f"one answer: {_fmt(s.get('challenger_forward_s'), 'ms')} of CPU"),
            ("slow challenger: canary p95 (router)", _fmt(s.get("challenger_p95_max"), "ms"), f"SLO {_fmt(slo, 'ms')}"),
            ("slow challenger: answered / sent while judged", f"{served}/{sent}", f"<= its canary share ({_fmt(weight, '%')})"),
            ("slow challenger: roll-out start -> rolled back", _fmt(s.get("challenger_decided_s"), "s"), str(s.get("challenger_outcome"))),
            ("failed requests during roll-outs and abort", _fmt(s.get("rollout_failed_requests")), "0"),
        ]  # fmt: skip
    print(
        f"MNIST scenario '{config.get('name')}' ({s.get('requests')} requests, {s.get('failed_requests')} failed) — {args.report}"
    )
    width = max(len(r[0]) for r in rows)
    for name, value, target in rows:
        print(f"  {name:<{width}}  {value:>10}  {target}")
    clean, after, before = (
        s.get("clean_accuracy_test") or s.get("clean_accuracy_online"),
        s.get("drifted_accuracy_after"),
        s.get("drifted_accuracy_before"),
    )
    if clean and after is not None:
        print(
            f"  ratio recovered/clean accuracy: {after / clean:.3f} (drifted before: {(before or 0) / clean:.3f}; target >= {(clean - 0.05) / clean:.3f})"
        )
    if s.get("challenger_requests_during"):
        print(
            f"  slow challenger's share of the requests while judged: {s.get('challenger_share', 0):.3f} (canary weight {s.get('challenger_weight')})"
        )
    if s.get("aliases"):
        print(f"  registry aliases at the end: {s['aliases']}")
    if s.get("p95_before_spike") and s.get("p95_during_spike"):
        print(f"  ratio p95 during/before the spike: {s['p95_during_spike'] / s['p95_before_spike']:.2f}")
    for name, ok in (s.get("checks") or {}).items():
        print(f"  [{'--' if ok is None else ('ok' if ok else 'NO')}] {name}")
    trace = s.get("decision_trace") or []
    print("  decisions, in order:")
    for step in trace:
        print(f"    {step}")
    if args.compare:
        other = json.loads(args.compare.read_text())["summary"].get("decision_trace") or []
        if other == trace:
            print(f"  same decisions as {args.compare}: yes ({len(trace)} steps)")
        else:
            print(f"  same decisions as {args.compare}: NO")
            for step in difflib.unified_diff(trace, other, str(args.report), str(args.compare), lineterm="", n=0):
                print(f"    {step}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
