"""Per-step tracking overhead, against a real local MLflow server on a free 127.0.0.1 port.

Measures, in one run:
  * baseline  — a step process that does not track (``python -c`` importing the step helpers, untracked)
  * hooks     — the engine's MLflow hooks per pod node (REST: create nested run, params, outputs,
                log upload, end), in the engine process
  * rest step — a step process logging params/metrics through ``scanflow_argo.tracking.step`` (REST)
  * mlflow step — a step process that does ``import mlflow`` and logs inside ``step_run()``
and prints each figure with its ratio to the baseline step process.

Usage: ``.venv/bin/python bench/tracking.py [--nodes 20] [--reps 3]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scanflow_argo import _proc
from scanflow_argo.settings import Settings
from scanflow_argo.tracking.hooks import MlflowHooks
from scanflow_argo.tracking.server import MlflowServer

UNTRACKED = "import scanflow_argo.tracking.step as s; s.log_metrics({'loss': 0.1})"
REST = "import scanflow_argo.tracking.step as s; s.log_params({'lr': 0.01}); s.log_metrics({'loss': 0.1})"
MLFLOW = "import mlflow; from scanflow_argo.tracking.step import step_run\nwith step_run():\n    mlflow.log_metric('loss', 0.1)"


def time_process(code: str, env: dict[str, str], reps: int) -> float:
    """Median wall seconds of ``python -c code``."""
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_hooks(hooks: MlflowHooks, nodes: int, log: Path) -> tuple[float, float]:
    """(seconds per node, seconds for workflow start+finish)."""
    run = f"bench-{os.getpid()}-{time.time_ns()}"
    t0 = time.perf_counter()
    hooks.workflow_started(
        run, {"metadata": {"name": run}, "spec": {"arguments": {"parameters": [{"name": "epochs", "value": "1"}]}}}
    )
    t_wf = time.perf_counter() - t0
    inputs = {"parameters": [{"name": "lr", "value": "0.01"}, {"name": "batch", "value": "64"}]}
    outputs = {"parameters": [{"name": "accuracy", "value": "0.97"}], "exitCode": "0"}
    t1 = time.perf_counter()
    for i in range(nodes):
        node = {"type": "Pod", "displayName": f"step-{i}", "inputs": inputs}
        hooks.node_started(run, f"n{i}", node)
        hooks.node_finished(run, f"n{i}", {**node, "phase": "Succeeded", "outputs": outputs}, log)
    per_node = (time.perf_counter() - t1) / nodes
    t2 = time.perf_counter()
    hooks.workflow_finished(run, {"status": {"phase": "Succeeded"}})
    return per_node, t_wf + time.perf_counter() - t2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env(environ={}).with_home(tmp)
        with MlflowServer(settings, port=_proc.free_port()) as server:
            log = Path(tmp) / "main.log"
            log.write_text("epoch 1 loss 0.5\n" * 200)
            hooks = MlflowHooks(server.url, experiment="bench")
            base_env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SCANFLOW_"))}
            baseline = time_process(UNTRACKED, base_env, args.reps)
            time_hooks(hooks, 2, log)  # warm up the connection and the experiment
            per_node, per_workflow = time_hooks(hooks, args.nodes, log)
            env = hooks.workflow_started("bench-steps", {"metadata": {"name": "bench-steps"}})
            node_env = {**base_env, **env, **hooks.node_started("bench-steps", "s", {"type": "Pod", "displayName": "s"})}
            rest = time_process(REST, node_env, args.reps)
            with_mlflow = time_process(MLFLOW, node_env, args.reps)
    print(f"untracked step process (baseline):  {baseline * 1000:8.1f} ms")
    print(f"engine hooks per pod node (REST):   {per_node * 1000:8.1f} ms   ratio to baseline {per_node / baseline:6.2f}x")
    print(f"engine hooks per workflow (start+end): {per_workflow * 1000:5.1f} ms")
    print(
        f"step logging via REST helpers:      {rest * 1000:8.1f} ms   ratio {rest / baseline:6.2f}x  (+{(rest - baseline) * 1000:.0f} ms)"
    )
    print(
        f"step with import mlflow + step_run: {with_mlflow * 1000:8.1f} ms   ratio {with_mlflow / baseline:6.2f}x  (+{(with_mlflow - baseline) * 1000:.0f} ms)"
    )
    print(f"import mlflow vs REST helpers:      {with_mlflow / rest:6.2f}x slower per step")


if __name__ == "__main__":
    main()
