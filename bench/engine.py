"""Engine overhead: 100 trivial script steps (20 sequential, then 80 fanned out) through the local
engine, against starting the same 100 processes directly with ``subprocess`` (2 at a time).

Prints both times and their ratio (target: at most 1.3), and the start-up time of a one-step
workflow (in process, and as the detached ``python -m scanflow_argo.engine`` process).

    .venv/bin/python bench/engine.py [--sandbox auto|none] [--repeat 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from scanflow_argo.engine import prepare_run, run_workflow
from scanflow_argo.engine.runtime import Sandbox
from scanflow_argo.settings import Settings

SOURCE = "print('ok')\n"


def workflow(sequential: int = 20, fanout: int = 80) -> dict:
    step = {"name": "s", "template": "trivial"}
    groups = [[{**step, "name": f"s{i}"}] for i in range(sequential)]
    groups.append([{"name": "fan", "template": "trivial", "withSequence": {"count": str(fanout)}}])
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "bench-"},
        "spec": {
            "entrypoint": "main",
            "templates": [
                {"name": "main", "steps": groups},
                {"name": "trivial", "script": {"image": "python:3.11", "command": ["python"], "source": SOURCE}},
            ],
        },
    }


def baseline(
    python: str, folder: Path, sequential: int = 20, fanout: int = 80, width: int = 2, wrap: list[str] | None = None
) -> float:
    """The same processes started directly: the script file run by the interpreter, 2 at a time
    (``wrap``: inside the same bubblewrap sandbox the engine uses, to separate its cost)."""
    script = folder / "script.py"
    script.write_text(SOURCE)

    def one() -> None:
        subprocess.run([*(wrap or []), python, str(script)], check=True, capture_output=True)

    t0 = time.perf_counter()
    for _ in range(sequential):
        one()
    with ThreadPoolExecutor(max_workers=width) as pool:
        list(pool.map(lambda _: one(), range(fanout)))
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox", default="auto", choices=["auto", "bwrap", "none"], help="sandbox of the main engine figure")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Settings.from_env(environ={}).with_home(Path(tmp) / "home")
        settings = replace(
            base,
            engine=replace(base.engine, parallelism=2, sandbox=args.sandbox),
            tracking=replace(base.tracking, enabled=False),
        )
        none = replace(settings, engine=replace(settings.engine, sandbox="none"))
        sandbox = Sandbox(settings, [Path(tmp)])
        wrap: list[str] | None = None
        if sandbox.isolated:
            fs = sandbox.prepare(Path(tmp) / "node")
            wrap = sandbox.wrap(["X"], fs, [], "/")[:-1]
        raw, raw_bwrap, eng, eng_none = [], [], [], []
        for _ in range(args.repeat):  # interleaved, best of each: the machine is shared
            raw.append(baseline(settings.engine.python, Path(tmp)))
            if wrap:
                raw_bwrap.append(baseline(settings.engine.python, Path(tmp), wrap=wrap))
            for target, s in ((eng, settings), (eng_none, none)):
                t0 = time.perf_counter()
                run = run_workflow(workflow(), s)
                target.append(time.perf_counter() - t0)
                if run.phase != "Succeeded":
                    print(f"engine run failed: {run.message}", file=sys.stderr)
                    return 1
        r, e, n = min(raw), min(eng), min(eng_none)
        print(f"100 trivial script steps (20 sequential + 80 fan-out), 2 at a time, best of {args.repeat}:")
        print(f"  subprocess directly                  : {r:6.2f} s")
        if raw_bwrap:
            print(f"  subprocess directly, in bubblewrap   : {min(raw_bwrap):6.2f} s")
        print(f"  local engine, sandbox={settings.engine.sandbox:<5}          : {e:6.2f} s   ratio {e / r:4.2f} (target <= 1.3)")
        if raw_bwrap:
            print(f"    … against the same sandboxed processes : ratio {e / min(raw_bwrap):4.2f} (the engine's own overhead)")
        print(f"  local engine, sandbox=none           : {n:6.2f} s   ratio {n / r:4.2f}")

        hello = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"generateName": "hello-"},
            "spec": {
                "entrypoint": "main",
                "templates": [{"name": "main", "container": {"image": "busybox", "command": ["true"]}}],
            },
        }
        t0 = time.perf_counter()
        run_workflow(hello, settings)
        inproc = time.perf_counter() - t0
        t0 = time.perf_counter()
        subprocess.run(["true"], check=True)
        bare = time.perf_counter() - t0
        run_dir = prepare_run(hello, settings)
        t0 = time.perf_counter()
        subprocess.run([settings.engine.python, "-m", "scanflow_argo.engine", str(run_dir)], check=True)
        detached = time.perf_counter() - t0
        t0 = time.perf_counter()
        subprocess.run([settings.engine.python, "-c", "pass"], check=True)
        interp = time.perf_counter() - t0
        print("one-step workflow (busybox `true`):")
        print(f"  in process          : {inproc * 1000:6.0f} ms   (the process alone: {bare * 1000:.0f} ms)")
        print(f"  detached engine     : {detached * 1000:6.0f} ms   (a bare interpreter start: {interp * 1000:.0f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
