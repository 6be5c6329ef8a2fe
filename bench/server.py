"""Server benchmark: listing 1,000 runs through the Argo API, and how soon a node's change reaches a watch.

Writes ``--runs`` finished runs (status documents shaped as the engine writes them, ``--nodes`` nodes
each) into a fresh state folder and starts ``scanflow-argo server``'s application on 127.0.0.1.

- **List**: ``GET /api/v1/workflows/{ns}`` with the fields the UI's list asks for, answered from the runs
  index (target < 200 ms), against the baseline measured in the same run — reading and parsing every
  ``status.json`` (what listing did before the index) — and the full list (every document, with nodes).
  Also the first list of a fresh process, which reads the index file instead of the status files.
- **Events**: a watch of one running workflow is open; the benchmark changes a node's phase through the
  engine's own writer (``engine/core/state.py`` ``RunState``: a line appended to ``status.journal`` and
  ``status.json`` touched, as every node change of a running engine is written) and times until the change
  arrives on the stream (target ≤ 1 s), ``--rounds`` times, with all the other runs present. Baseline: a
  loop that polls the file's modification time every 10 ms in this process (the floor any file-watching
  server has).

    .venv/bin/python bench/server.py [--runs 1000] [--nodes 12] [--rounds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from scanflow_argo.clock import SystemClock
from scanflow_argo.engine.core.state import JOURNAL, RunState
from scanflow_argo.platform._local.index import RunsIndex
from scanflow_argo.platform.base import RunStatus
from scanflow_argo.platform.local import LocalPlatform
from scanflow_argo.server import ArgoServer, ServerOptions, load_or_create_token
from scanflow_argo.settings import Settings

NS = "bench"
UI_FIELDS = (
    "metadata,items.metadata.name,items.metadata.namespace,items.metadata.uid,items.metadata.creationTimestamp,"
    "items.metadata.labels,items.status.phase,items.status.message,items.status.startedAt,items.status.finishedAt,"
    "items.status.progress,items.spec.suspend"
)


def status_doc(name: str, nodes: int, phase: str, i: int) -> dict[str, Any]:
    """A run's status document as the engine writes it: a DAG of ``nodes`` pods with inputs and outputs."""
    t = f"2024-05-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00Z"
    doc_nodes: dict[str, Any] = {name: {"id": name, "name": name, "displayName": name, "type": "DAG", "phase": phase,
                                        "templateName": "main", "startedAt": t, "finishedAt": t, "children": []}}  # fmt: skip
    for k in range(nodes):
        nid = f"{name}-{1000 + k}"
        doc_nodes[name]["children"].append(nid)
        doc_nodes[nid] = {
            "id": nid, "name": f"{name}.step-{k}", "displayName": f"step-{k}", "type": "Pod", "templateName": "step",
            "phase": "Succeeded" if phase != "Running" or k < nodes // 2 else "Running", "startedAt": t, "finishedAt": t,
            "podName": f"{name}-step-{1000 + k}", "inputs": {"parameters": [{"name": "epochs", "value": str(k)}]},
            "outputs": {"parameters": [{"name": "accuracy", "value": "0.9"}], "exitCode": "0", "result": "ok " * 20},
        }  # fmt: skip
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": f"uid-{i}",
            "creationTimestamp": t,
            "labels": {"app": "bench", "batch": str(i % 10)},
        },
        "spec": {
            "entrypoint": "main",
            "arguments": {"parameters": [{"name": "epochs", "value": "3"}]},
            "templates": [
                {"name": "main", "dag": {"tasks": [{"name": f"step-{k}", "template": "step"} for k in range(nodes)]}},
                {"name": "step", "script": {"image": "python:3.12", "source": "print('ok')\n" * 10}},
            ],
        },
        "status": {"phase": phase, "startedAt": t, "finishedAt": None if phase == "Running" else t, "nodes": doc_nodes},
    }


def write_atomically(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(f".status.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, separators=(",", ":")))
    os.replace(tmp, path)


def timed(fn: Any, rounds: int) -> tuple[float, Any]:
    """Median seconds of ``rounds`` calls, and the last result."""
    times, result = [], None
    for _ in range(rounds):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def baseline_list(runs: Path) -> list[RunStatus]:
    """Listing as it was before the index: read and parse every status file, sort newest first."""
    out = []
    for entry in runs.iterdir():
        if (entry / "status.json").is_file():
            out.append(RunStatus.from_workflow(json.loads((entry / "status.json").read_text())))
    return sorted(out, key=lambda r: r.started_at or "", reverse=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        settings = Settings.from_env(environ={}).with_home(Path(tmp) / "home")
        settings = replace(settings, tracking=replace(settings.tracking, enabled=False))
        runs = settings.home / "runs"
        t0 = time.perf_counter()
        for i in range(args.runs):
            name = f"run-{i:05d}"
            (runs / name).mkdir(parents=True)
            write_atomically(runs / name / "status.json", status_doc(name, args.nodes, "Succeeded" if i else "Running", i))
        size = sum(p.stat().st_size for p in runs.glob("*/status.json")) / args.runs / 1024
        print(
            f"{args.runs} runs of {args.nodes} pods written ({size:.1f} KiB of status each) in {time.perf_counter() - t0:.1f} s"
        )

        platform = LocalPlatform(settings)
        token = load_or_create_token(settings)
        server = ArgoServer(platform, settings, token, ServerOptions(port=0)).start()
        try:
            with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as c:

                def ui_list() -> int:
                    resp = c.get(f"/api/v1/workflows/{NS}", params={"fields": UI_FIELDS})
                    resp.raise_for_status()
                    return len(resp.json()["items"])

                def full_list() -> int:
                    return len(c.get(f"/api/v1/workflows/{NS}").json()["items"])

                t0 = time.perf_counter()
                assert ui_list() == args.runs
                first = time.perf_counter() - t0
                api_ms, count = timed(ui_list, args.rounds)
                base_s, listed = timed(lambda: baseline_list(runs), max(3, args.rounds // 3))
                assert len(listed) == count
                full_s, _ = timed(full_list, 3)
                fresh_s, _ = timed(lambda: RunsIndex(runs).refresh(), 5)
                print(
                    f"list {count} runs, the UI's fields (runs index), median of {args.rounds}: {api_ms * 1000:7.1f} ms  (target < 200 ms: {'OK' if api_ms < 0.2 else 'MISSED'})"
                )
                print(f"  first list after start (index built from the status files):   {first * 1000:7.1f} ms")
                print(f"  a fresh process's first refresh (index file, no status read): {fresh_s * 1000:7.1f} ms")
                print(
                    f"  baseline, read and parse every status.json:                   {base_s * 1000:7.1f} ms   ratio baseline/index {base_s / api_ms:5.1f}x"
                )
                print(f"  full list through the API (every document, with nodes):       {full_s * 1000:7.1f} ms")

                print(f"events: one node's change → the watch stream, {args.rounds} rounds, {args.runs} runs present:")
                lat = events_latency(c, runs / "run-00000" / "status.json", args.rounds, args.nodes)
                floor = poll_floor(runs / "run-00000" / "status.json", args.rounds)
                print(
                    f"  server stream, median / worst: {statistics.median(lat) * 1000:6.0f} ms / {max(lat) * 1000:6.0f} ms  (target ≤ 1000 ms: {'OK' if max(lat) <= 1.0 else 'MISSED'})"
                )
                print(
                    f"  baseline 10 ms mtime poll in-process, median: {statistics.median(floor) * 1000:6.1f} ms   ratio {statistics.median(lat) / max(statistics.median(floor), 1e-4):5.1f}x"
                )
        finally:
            server.stop()
    return 0


def events_latency(c: httpx.Client, path: Path, rounds: int, nodes: int) -> list[float]:
    """Change the running run's nodes through the engine's writer (a pod goes Running → Succeeded, in turn)
    and time each change's arrival on the watch."""
    doc = json.loads(path.read_text())
    name = doc["metadata"]["name"]
    state = RunState(path.parent, {"metadata": doc["metadata"], "spec": doc["spec"]}, SystemClock(), previous=doc)
    for node in doc["status"]["nodes"].values():
        state.put(node, write=False)
    state.write()  # an engine's first write compacts; the changes below are journal lines
    pods = [nid for nid, n in state.nodes.items() if n["type"] == "Pod"]
    arrived: dict[str, float] = {}
    ready = threading.Event()

    def listen() -> None:
        with c.stream(
            "GET", f"/api/v1/workflow-events/{NS}", params={"listOptions.fieldSelector": f"metadata.name={name}"}
        ) as resp:
            for line in resp.iter_lines():
                ready.set()
                event = json.loads(line)["result"]["object"]
                marker = event["status"].get("message")
                if marker and marker not in arrived:
                    arrived[marker] = time.perf_counter()
                if len(arrived) >= rounds:
                    return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    ready.wait(30)
    out = []
    for i in range(rounds):
        time.sleep(0.35)  # changes spread out, as nodes finish
        pod = state.nodes[pods[i % nodes]]
        with state.lock:
            pod["phase"] = "Succeeded" if pod["phase"] == "Running" else "Running"
            state.status["message"] = f"change-{i}"
        sent = time.perf_counter()
        state.write()
        deadline = sent + 10
        while f"change-{i}" not in arrived and time.perf_counter() < deadline:
            time.sleep(0.002)
        out.append(arrived.get(f"change-{i}", float("inf")) - sent)
    thread.join(5)
    assert (path.parent / JOURNAL).stat().st_size > 0, "the changes were not journal lines: the engine's path was not measured"
    return out


def poll_floor(path: Path, rounds: int) -> list[float]:
    """How soon a 10 ms ``stat`` loop notices the same kind of rewrite (no server, no parsing)."""
    out = []
    doc = json.loads(path.read_text())
    for _ in range(rounds):
        before = path.stat().st_mtime_ns
        seen = threading.Event()
        t: dict[str, float] = {}

        def watch(before: int = before, seen: threading.Event = seen, t: dict[str, float] = t) -> None:
            while path.stat().st_mtime_ns == before:
                time.sleep(0.01)
            t["seen"] = time.perf_counter()
            seen.set()

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        time.sleep(0.05)
        sent = time.perf_counter()
        write_atomically(path, doc)
        seen.wait(5)
        out.append(t.get("seen", float("inf")) - sent)
    return out


if __name__ == "__main__":
    sys.exit(main())
