"""``bench/capacity.py`` as a user runs it: a real replica (then two) loaded through the router.

Only the shape of its figures is checked, not their size (speed belongs to benchmarks, not tests):
every step is reported for both replica counts, JSON and printout agree, and its replicas are gone.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_capacity_bench_ramps_one_and_two_replicas(tmp_path: Path, serving_python: Path) -> None:
    out = tmp_path / "capacity.json"
    cmd = [sys.executable, "bench/capacity.py", "--rates", "10,20", "--step-seconds", "1.5", "--json", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=280)
    result = json.loads(out.read_text())
    assert proc.returncode == (0 if result["capacity"] is not None else 1), proc.stdout[-3000:] + proc.stderr[-3000:]
    assert set(result["runs"]) == {"1", "2"}
    for run in result["runs"].values():
        offered = [s["offered"] for s in run["steps"]]
        assert offered == [10.0, 20.0][: len(offered)] and offered
        assert all(s["served"] > 0 and s["failed"] == 0 and 0 < s["p95"] < 10 for s in run["steps"])
    assert result["raw_rps"] > 0 and "baseline: raw forward pass" in proc.stdout
    assert proc.stdout.count("loading http://127.0.0.1:") == 2
    leftover = subprocess.run(["pgrep", "-f", "bench-capacity-"], capture_output=True, text=True).stdout.strip()
    assert not leftover, f"replica processes left behind: {leftover}"


def test_capacity_bench_rejects_bad_arguments() -> None:
    for args, says in (
        (["--replicas", "2,3"], "start at 1"),
        (["--rates", "ten"], "comma-separated"),
        (["--headroom", "2"], "(0, 1]"),
    ):
        proc = subprocess.run([sys.executable, "bench/capacity.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and says in proc.stderr, proc.stderr
