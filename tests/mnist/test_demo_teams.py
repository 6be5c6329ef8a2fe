"""The shortened scenario played by three teams, as a user runs it: ``scanflow-argo demo mnist --quick --teams``.

Real MLflow, Prometheus, local engine, Seldon microservices and agent processes on 127.0.0.1, each team in its
namespace. Asserts the handoff (the data team's dataset, the science team's model and template, the engineering
team serving the published model and its supervisor retraining with the science team's template in the
engineering namespace), that every publication and use is in the trail, that the report has a lane per team, the
same targets as the single-team demo, and that nothing was left running.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCIENCE, ENGINEERING = "scanflow-mnist-science", "scanflow-mnist-engineering"


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_three_teams_hand_off_and_the_loop_closes(tmp_path: Path, serving_python: Path, prometheus_binary: str) -> None:
    out, home = tmp_path / "report", tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCANFLOW_", "MLFLOW_"))}
    argv = [sys.executable, "-m", "scanflow_argo", "--home", str(home), "demo", "mnist", "--quick", "--teams", "--out", str(out)]
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1400)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    report = json.loads((out / "report.json").read_text())
    summary, timeline = report["summary"], report["timeline"]

    # each team worked in its own namespace: science trained, engineering retrained with science's template
    runs = {r["name"].rsplit("-", 1)[0]: r for r in timeline["runs"]}
    assert runs["mnist-train"]["namespace"] == SCIENCE and runs["mnist-train"]["phase"] == "Succeeded"
    assert runs["mnist-retrain"]["namespace"] == ENGINEERING and runs["mnist-retrain"]["phase"] == "Succeeded"
    assert runs["mnist-retrain"]["labels"]["scanflow.dev/dataset"] == "mnist"  # the run names what it consumed
    assert runs["mnist-retrain"]["labels"]["workflows.argoproj.io/cluster-workflow-template"] == "mnist-retrain"

    # every publication and use is in the trail, in order
    trail = [
        json.loads(line) for line in (home / "demo" / "mnist-teams" / "teams" / "mnist" / "audit.jsonl").read_text().splitlines()
    ]
    steps = [(r["team"], r["action"], r["kind"]) for r in trail]
    assert steps[:5] == [
        ("data", "publish", "dataset"),
        ("science", "use", "dataset"),
        ("science", "publish", "model"),
        ("science", "publish", "template"),
        ("engineering", "use", "model"),
    ], steps
    agent_uses = [
        (r["kind"], r["name"]) for r in trail if r["team"] == "engineering" and "by agent drift-supervisor" in r["detail"]
    ]
    assert agent_uses == [("dataset", "mnist"), ("template", "mnist-retrain")], trail
    assert ("engineering", "publish", "model") in steps  # the retrained version, published once rolled out

    # a lane per team in the report
    lanes = summary["teams"]
    assert set(lanes) == {"data", "science", "engineering"}
    assert any("drift-supervisor: retrain (ok)" in line for line in lanes["engineering"])
    assert "<h2>Teams</h2>" in (out / "index.html").read_text()

    # the same targets as the single-team demo
    assert summary["detection_s"] is not None and summary["detection_s"] <= 60
    assert summary["rollout_s"] is not None
    assert summary["drifted_accuracy_after"] >= summary["drifted_accuracy_before"] + 0.25, summary
    assert timeline["shutdown"] == {"processes_left": [], "ports_open": []}
    assert summary["failed_requests"] == 0
