"""Agent benchmark: reaction time (breaching sample visible in Prometheus → action issued), idle RSS and CPU.

Starts a real Prometheus (1 s scrape), a real exporter and a real ``scanflow-argo agent run``
process on 127.0.0.1, then flips a gauge across a threshold ``--rounds`` times. For each round it
records when Prometheus first answers the breaching value (polled every 10 ms) and when the
agent's submit reaches the platform (the shared-file test platform). Target: at most one
evaluation interval + 1 s. Baseline measured in the same run: a bare loop that queries the same
Prometheus at the same interval and "acts" with no agent machinery (the floor the agent adds to).

    .venv/bin/python bench/agents.py [--interval 1.0] [--rounds 5] [--idle 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "agents"))

from _agent_helpers import Exporter  # noqa: E402

from scanflow_argo import _proc  # noqa: E402
from scanflow_argo.agents.testing import InMemoryPlatform  # noqa: E402
from scanflow_argo.monitoring.prometheus import PrometheusServer  # noqa: E402
from scanflow_argo.settings import Settings  # noqa: E402

AGENT = """
from scanflow_argo.spec.agent import Agent, Plan, PromQuery, SubmitWorkflow, Threshold

def make(interval=1.0):
    return Agent(
        "bench",
        sensors=[PromQuery("x", "max(bench_gauge)", interval=interval)],
        rules=[Threshold("x", ">", 5, name="high")],
        plans=[Plan("high", [SubmitWorkflow("retrain", cooldown=0, name="act")])],
        interval=interval,
    )
"""


def visible(prom: str, value: float, metric: str = "bench_gauge") -> bool:
    try:
        r = httpx.get(f"{prom}/api/v1/query", params={"query": f"max({metric})"}, timeout=2).json()["data"]["result"]
    except (httpx.HTTPError, ValueError, KeyError):
        return False
    return bool(r) and float(r[0]["value"][1]) == value


def wait(pred, timeout: float = 30.0, poll: float = 0.01) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return time.time()
        time.sleep(poll)
    raise SystemExit("benchmark: timed out")


def proc_stats(pid: int) -> tuple[float, float]:
    """(RSS MiB of the whole process, CPU seconds user+system)."""
    rss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss, (int(fields[11]) + int(fields[12])) / ticks


def baseline_round(prom: str, exporter: Exporter, interval: float) -> float:
    """A bare polling loop: query, compare, 'act' — the least any agent can do at this interval."""
    acted: list[float] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                r = httpx.get(f"{prom}/api/v1/query", params={"query": "max(bench_base_gauge)"}, timeout=2).json()["data"][
                    "result"
                ]
                if r and float(r[0]["value"][1]) > 5:
                    acted.append(time.time())
                    return
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            stop.wait(interval)

    exporter.set("bench_base_gauge", 1)
    wait(lambda: visible(prom, 1, "bench_base_gauge"))
    th = threading.Thread(target=loop, daemon=True)
    th.start()
    time.sleep(interval * 0.37)  # desynchronise from the scrape
    exporter.set("bench_base_gauge", 9)
    t_vis = wait(lambda: visible(prom, 9, "bench_base_gauge"))
    wait(lambda: bool(acted))
    stop.set()
    return acted[0] - t_vis


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--interval", type=float, default=1.3, help="agent interval; not a multiple of the 1 s scrape, so rounds see every phase"
    )
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--idle", type=float, default=10.0, help="seconds of idle measurement")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-agents-"))
    (tmp / "benchagent.py").write_text(textwrap.dedent(AGENT))
    home = tmp / "home"
    settings = Settings.from_env(environ={}).with_home(home)
    exporter = Exporter(tmp)
    server = PrometheusServer(settings, port=_proc.free_port()).start(timeout=30)
    agent = None
    try:
        server.set_targets("bench", [exporter.target], {})
        platform = InMemoryPlatform(home / "fake-platform")
        platform.apply_template({"metadata": {"name": "retrain"}})
        exporter.set("bench_gauge", 1)
        wait(lambda: visible(server.url, 1))
        ready = tmp / "ready.json"
        env = {
            **os.environ,
            "PYTHONPATH": str(tmp),
            "SCANFLOW_HOME": str(home),
            "SCANFLOW_TRACKING": "0",
            "SCANFLOW_PROMETHEUS_URL": server.url,
        }
        env.pop("SCANFLOW_AGENT_TOKEN", None)
        t_spawn = time.time()
        agent = _proc.spawn(
            [sys.executable, "-m", "scanflow_argo", "agent", "run", "benchagent:make", "--arg", f"interval={args.interval}",
             "--port", "0", "--ready-file", str(ready), "--platform-factory", "scanflow_argo.agents.testing:file_platform"],
            name="agent", log=tmp / "agent.log", env=env,
        )  # fmt: skip
        wait(ready.exists, timeout=60)
        found = json.loads(ready.read_text())
        url = found["url"]
        auth = {"Authorization": "Bearer " + Path(found["token_file"]).read_text().strip()}  # the home's generated token
        t_ready = time.time()

        # Idle: no breach; the agent polls and evaluates every interval.
        time.sleep(2.0)
        _rss0, cpu0 = proc_stats(agent.pid)
        time.sleep(args.idle)
        rss1, cpu1 = proc_stats(agent.pid)
        idle_cpu = (cpu1 - cpu0) / args.idle * 100

        reactions, baselines = [], []
        for i in range(args.rounds):
            n = len(platform.calls("submit"))
            time.sleep(args.interval * (0.13 + 0.61 * i % 1))  # vary the phase against scrapes and evaluations
            exporter.set("bench_gauge", 9)
            t_vis = wait(lambda: visible(server.url, 9))
            t_act = wait(lambda n=n: len(platform.calls("submit")) > n)
            reactions.append(t_act - t_vis)
            for run in platform.list_runs():
                if not run.done:
                    platform.finish(run.name)
            exporter.set("bench_gauge", 1)
            wait(lambda: not httpx.get(f"{url}/status", headers=auth, timeout=2).json()["rules"]["high"]["firing"])
            baselines.append(baseline_round(server.url, exporter, args.interval))
    finally:
        if agent is not None:
            agent.stop()
        server.stop()
        exporter.stop()

    target = args.interval + 1.0
    worst, median = max(reactions), statistics.median(reactions)
    base = statistics.median(baselines)
    print(f"agent startup (spawn → API listening):     {t_ready - t_spawn:6.2f} s")
    print(f"reaction time, median / worst of {args.rounds}:       {median:6.3f} s / {worst:6.3f} s  (target ≤ {target:.1f} s)")
    print(f"baseline bare polling loop, median:         {base:6.3f} s")
    print(f"ratio agent/baseline (median):              {median / base if base > 0 else float('inf'):6.2f}")
    print(f"ratio worst/target:                         {worst / target:6.2f}  ({'OK' if worst <= target else 'MISSED'})")
    print(f"idle RSS:                                   {rss1:6.1f} MiB")
    print(f"idle CPU (interval {args.interval:g} s):               {idle_cpu:6.2f} % of one core")


if __name__ == "__main__":
    main()
