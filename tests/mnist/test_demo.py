"""The shortened scenario, run as a user runs it: ``scanflow-argo demo mnist --quick`` in a subprocess.

Real MLflow, Prometheus, local engine, Seldon microservices and agent processes on 127.0.0.1. Asserts
that both agents acted and made the decisions every run with these seeds makes, that accuracy on the
drifted stream recovered after the roll-out, and that nothing was left running — and both roll-out
stories (issue 17): the retrained candidate promoted after its canary steps; the deeper challenger,
better offline, rolled back on its canary's p95 having answered no more than its canary share, the
registry's aliases untouched, no request failed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_quick_scenario_agents_act_and_accuracy_recovers(tmp_path: Path, serving_python: Path, prometheus_binary: str) -> None:
    out = tmp_path / "report"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCANFLOW_", "MLFLOW_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "scanflow_argo", "--home", str(tmp_path / "home"), "demo", "mnist", "--quick", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1400,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert re.search(r"UI and Argo Server API at http://127\.0\.0\.1:\d+", proc.stdout), proc.stdout[
        :4000
    ]  # watch it in a browser
    report = json.loads((out / "report.json").read_text())
    summary, timeline = report["summary"], report["timeline"]
    assert (out / "index.html").read_text().count("data:image/png;base64,") == 1

    # Both agents acted, and their actions succeeded.
    decisions = summary["decisions"]
    assert decisions.get("drift-supervisor", {}).get("retrain:ok", 0) >= 1, decisions
    assert decisions.get("throughput-scaler", {}).get("scale:ok", 0) >= 1, decisions
    assert summary["max_replicas"] >= 2
    # The same decisions as every run with these seeds: one retraining that wins offline and, as a canary, online;
    # a deeper challenger that wins offline and fails its first analysis; and the scaler following the request
    # rate (20 → 125 → 20 req/s at 30 per replica) up and back down, one replica at a time.
    assert summary["decision_trace"] == [
        "mnist-train: Succeeded, v1 promoted",
        "drift-supervisor: retrain (ok)",
        "mnist-retrain: Succeeded, v2 candidate",
        "drift-supervisor: canary-rollout (ok)",
        "roll-out v2: analysis 1 Successful",
        "roll-out v2: analysis 2 Successful",
        "roll-out v2: analysis 3 Successful",
        "roll-out v2: promoted",
        "mnist-retrain: Succeeded, v3 candidate",
        "drift-supervisor: canary-rollout (ok)",
        "roll-out v3: analysis 1 Failed",
        "roll-out v3: rolled back",
        "throughput-scaler: scale 1 → 2 (ok)",
        "throughput-scaler: scale 2 → 3 (ok)",
        "throughput-scaler: scale 3 → 2 (ok)",
        "throughput-scaler: scale 2 → 1 (ok)",
    ], summary["decision_trace"]

    # The drift hurt, the retrained model was rolled out, and accuracy on unseen drifted digits recovered.
    assert summary["clean_accuracy_online"] >= 0.9
    assert summary["drifted_accuracy_before"] <= 0.7
    assert summary["rollout_s"] is not None, timeline["events"]
    assert summary["drifted_accuracy_after"] >= summary["drifted_accuracy_before"] + 0.25, summary
    assert summary["detection_s"] is not None and summary["detection_s"] <= 60

    # The roll-outs: v2 through 20 → 50 → 100 % to champion; v3 (a tower calibrated here to answer in 1.5 × the SLO)
    # better offline, rolled back at its first step having answered about its 20 % of the requests sent meanwhile
    # (the seeded split's 3-sigma bound), the aliases as they were, no request failed during either.
    checks = summary["checks"]
    assert checks["drift_candidate_promoted_after_its_canary"] and checks["slow_challenger_rolled_back"], summary["rollouts"]
    assert checks["slow_challenger_served_at_most_its_canary_share"], summary
    assert 0 < summary["challenger_served"] < summary["challenger_requests_during"]
    assert summary["challenger_forward_s"] >= timeline["config"]["challenger_slowness"] * timeline["config"]["slo"]
    assert summary["challenger_p95_max"] > timeline["config"]["slo"]
    challenger = timeline["models"]["challenger"]
    assert challenger["drifted_accuracy"] > timeline["models"]["retrained"]["drifted_accuracy"]  # better offline
    assert summary["aliases"] == {"champion": "2", "previous": "1", "candidate": "3"}
    assert summary["rollout_failed_requests"] == 0

    # Everything was stopped: no process of ours, no port left open; no request failed.
    assert timeline["shutdown"] == {"processes_left": [], "ports_open": []}
    assert summary["failed_requests"] == 0
