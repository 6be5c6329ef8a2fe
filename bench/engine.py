"""Engine overhead: 100 trivial script steps (20 sequential, then 80 fanned out) through the local
engine, against starting the same 100 processes directly with ``subprocess`` (2 at a time).

Prints both times and their ratio (target: at most 1.3), and the start-up time of a one-step
workflow (in process, and as the detached ``python -m scanflow_argo.platform.local_engine`` process).

    .venv/bin/python bench/engine.py [--sandbox auto|none] [--repeat 3] [--bwrap-only] [--baseline-ref REF]

``--baseline-ref REF`` (e.g. ``2edbef3``, the engine before its redesign) also runs the same 100 steps on
the code of REF — a temporary ``git worktree`` imported in a subprocess — interleaved with the current
code run the same way, and prints both and their ratio (current / baseline; no slowdown: about 1.0): the
first manifest check of the process (a one-time cost: the current code checks against Argo's full CRD
and its CEL rules, which the code before the redesign did not), the 100 steps after it, both together,
and the detached engine's start.

``--fanout`` prices status writes in large fan-outs (issue 13): the µs one ``RunState.write`` costs
(one node changed, one journal line appended) at 100, 1,000 and 10,000 nodes, against
``RunState.compact`` (the whole ``status.json`` rewritten, as every write did before the journal), the µs a
fan-out's parent costs when it gains one more child (its new id journaled, not the whole node), and the wall time and peak RSS of a ``withItems`` fan-out of ``--fanout-items``
zero-length suspends (``sandbox=none``). Targets: 10,000 nodes under 60 s, a write cost independent of
the number of nodes, peak RSS under 500 MiB.

``--bwrap-only`` (or the last part of a full run) prices bubblewrap's start-up flags: the engine's
sandbox argv against a bare process, the kernel's floor (a new mount namespace, ``unshare -m``), the
fewest binds, and the ``--unshare-*`` choices — interleaved rounds, best of each, on ``/bin/true``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

_CODE = os.environ.get("SCANFLOW_BENCH_CODE")
if _CODE:  # --baseline-ref: import the package from that tree, not from the editable install (whose finder runs first)
    sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
    sys.path.insert(0, _CODE)

from scanflow_argo.engine import prepare_run, run_workflow  # noqa: E402  (after choosing the code to import)

try:
    from scanflow_argo.engine.features.sandbox import Sandbox
except ImportError:  # the code before the redesign (--baseline-ref 2edbef3)
    from scanflow_argo.engine.runtime import Sandbox  # type: ignore[no-redef]  # the same class, before it moved
from scanflow_argo.settings import Settings  # noqa: E402

SOURCE = "print('ok')\n"
HELLO = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Workflow",
    "metadata": {"generateName": "hello-"},
    "spec": {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": "busybox", "command": ["true"]}}]},
}
"""A one-step workflow: the detached engine's start-up, and the first manifest check of a process."""


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


def bwrap_variants(tmp: Path, rounds: int = 8, batch: int = 30) -> dict[str, tuple[float, float]]:
    """(wall, CPU) milliseconds per ``/bin/true`` under each sandbox argv: best batch average over
    interleaved rounds. CPU is the children's user+system time, which other load on a shared machine
    disturbs far less than wall time."""
    import resource
    import shutil

    settings = Settings.from_env(environ={}).with_home(tmp / "bw-home")
    sandbox = Sandbox(replace(settings, engine=replace(settings.engine, sandbox="bwrap")), [tmp])
    fs = sandbox.prepare(tmp / "bw-node")
    engine = sandbox.wrap(["/bin/true"], fs, [], "/")
    head, rest = engine[:1], engine[1:]
    variants: dict[str, list[str]] = {"bare process": ["/bin/true"]}
    if shutil.which("unshare"):
        variants["unshare -m (a new mount namespace: the floor)"] = ["unshare", "-m", "/bin/true"]
    variants.update(
        {
            "bwrap --dev-bind / / --tmpfs /tmp (fewest binds)": ["bwrap", "--dev-bind", "/", "/", "--tmpfs", "/tmp", "/bin/true"],
            "engine's argv (own root + binds back)": engine,
            "engine's argv without --die-with-parent": [a for a in engine if a != "--die-with-parent"],
            "engine's argv + --unshare-pid": [*head, "--unshare-pid", *rest],
            "engine's argv + --unshare-ipc --unshare-uts": [*head, "--unshare-ipc", "--unshare-uts", *rest],
            "engine's argv + --unshare-net": [*head, "--unshare-net", *rest],
            "engine's argv + --unshare-user": [*head, "--unshare-user", *rest],
        }
    )
    wall = {name: float("inf") for name in variants}
    cpu = dict(wall)
    for _ in range(rounds):  # interleaved: the machine is shared, so each round sees the same load
        for name, argv in variants.items():
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            for _ in range(batch):
                subprocess.run(argv, check=True)
            t1 = time.perf_counter()
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            wall[name] = min(wall[name], (t1 - t0) / batch * 1000)
            used = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
            cpu[name] = min(cpu[name], used / batch * 1000)
    return {name: (wall[name], cpu[name]) for name in variants}


def print_bwrap(tmp: Path) -> None:
    best = bwrap_variants(tmp)
    bare_wall, bare_cpu = best["bare process"]
    print("bubblewrap start-up per process (/bin/true; best batch of 30 over 8 interleaved rounds):")
    print(f"  {'':52s}   wall ms (+ over bare)   CPU ms (+ over bare)")
    for name, (w, c) in best.items():
        print(f"  {name:52s}: {w:6.2f} (+{w - bare_wall:5.2f})      {c:5.2f} (+{c - bare_cpu:5.2f})")
    print("  (CPU with --unshare-pid undercounts: bwrap's pid-1 in the new namespace is never waited for by us)")


def measure(sandbox: str) -> dict[str, Any]:
    """One timing of the 100 steps (and of the detached engine's start) with whatever ``scanflow_argo`` this
    interpreter imports: run by ``--measure`` in a subprocess, for the current code and a baseline alike."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Settings.from_env(environ={}).with_home(Path(tmp) / "home")
        settings = replace(
            base, engine=replace(base.engine, parallelism=2, sandbox=sandbox), tracking=replace(base.tracking, enabled=False)
        )
        t0 = time.perf_counter()
        run_dir = prepare_run(HELLO, settings)  # the first manifest check of a process (the CRD, the CEL parser)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        run = run_workflow(workflow(), settings)
        steps = time.perf_counter() - t0
        if run.phase != "Succeeded":
            raise SystemExit(f"engine run failed: {run.message}")
        detached = "scanflow_argo.platform.local_engine"  # the redesign's detached engine; before it, the engine's own
        if importlib.util.find_spec(detached) is None:
            detached = "scanflow_argo.engine"
        # the detached engine imports the same code: the editable install's finder removed, the tree first
        boot = (
            "import runpy, sys; sys.meta_path[:] = [f for f in sys.meta_path if '__editable__' not in getattr(f, '__module__', '')]; "
            f"sys.path.insert(0, {_CODE or ''!r}); sys.argv = ['engine', {str(run_dir)!r}]; runpy.run_module({detached!r}, run_name='__main__')"
        )
        t0 = time.perf_counter()
        subprocess.run(
            [settings.engine.python, "-c", boot] if _CODE else [settings.engine.python, "-m", detached, str(run_dir)], check=True
        )
        return {
            "first": first,
            "steps": steps,
            "detached": time.perf_counter() - t0,
            "code": str(Path(sys.modules["scanflow_argo"].__file__ or "").parent),
        }


def compare_with(ref: str, sandbox: str, repeat: int) -> None:
    """The same run on the current code and on ``ref`` (a temporary git worktree), interleaved, best of each."""
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "baseline"
        subprocess.run(["git", "-C", str(root), "worktree", "add", "--detach", "--quiet", str(tree), ref], check=True)
        try:
            results: dict[str, list[dict[str, Any]]] = {"current": [], ref: []}
            for _ in range(repeat):
                for label, code in (("current", root), (ref, tree)):
                    env = {**os.environ, "SCANFLOW_BENCH_CODE": str(code)}
                    out = subprocess.run(
                        [sys.executable, str(Path(__file__).resolve()), "--measure", "--sandbox", sandbox],
                        env=env,
                        cwd=str(code),
                        check=False,
                        capture_output=True,
                        text=True,
                    )
                    if out.returncode != 0:
                        raise SystemExit(f"the {label} code failed to run the bench:\n{out.stderr[-3000:]}")
                    result = json.loads(out.stdout.strip().splitlines()[-1])
                    assert result.pop("code").startswith(str(code)), f"{label} imported the wrong code"
                    results[label].append(result)
        finally:
            subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(tree)], check=False)
            shutil.rmtree(tree, ignore_errors=True)
    keys = ("first", "steps", "detached")
    cur = {k: min(r[k] for r in results["current"]) for k in keys}
    old = {k: min(r[k] for r in results[ref]) for k in keys}
    whole = {label: min(r["first"] + r["steps"] for r in results[label]) for label in results}
    print(f"against {ref} (same machine, interleaved, best of {repeat}, sandbox={sandbox}):")
    rows = (
        ("first check", "once per process: the first workflow's manifest check", cur["first"], old["first"]),
        ("100 steps", "after it: the per-step cost", cur["steps"], old["steps"]),
        ("both", "a fresh process running the 100 steps", whole["current"], whole[ref]),
        ("detached engine", "python -m … RUN_DIR of a one-step run", cur["detached"], old["detached"]),
    )
    for name, what, c, o in rows:
        print(f"  {name:16s}: current {c * 1000:7.0f} ms   {ref} {o * 1000:7.0f} ms   ratio {c / o:5.2f}   ({what})")


def _suspend_fanout(count: int) -> dict:
    items = [str(i) for i in range(count)]
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "fanout-"},
        "spec": {
            "entrypoint": "main",
            "templates": [
                {"name": "main", "steps": [[{"name": "s", "template": "wait", "withItems": items}]]},
                {"name": "wait", "suspend": {"duration": "0"}},
            ],
        },
    }


def print_fanout(tmp: Path, items: int) -> None:
    """Status-write cost per node at growing sizes against a one-node append, then a real fan-out run."""
    import resource  # stdlib, Unix only: peak RSS of this process (the engine runs in it)

    from scanflow_argo.clock import SystemClock
    from scanflow_argo.engine.core.state import RunState

    print("status write per node change (one node changed, then written), best of 3 batches of 50:")
    print(f"  {'nodes':>7}   journal write µs   whole-file rewrite µs (before)   rewrite / journal   new child µs")
    for size in (100, 1_000, 10_000):
        run_dir = tmp / f"state-{size}"
        run_dir.mkdir()
        wf = {"metadata": {"name": "bench"}, "spec": {"entrypoint": "main"}}
        state = RunState(run_dir, wf, SystemClock())
        node = {"name": "bench[0]", "type": "Suspend", "phase": "Succeeded", "startedAt": state.now(), "finishedAt": None}
        for i in range(size):
            state.put({**node, "id": f"bench-{i}", "name": f"bench[{i}]"}, write=False)
        state.write()
        rewrite, append = [], []
        for _ in range(3):
            t0 = time.perf_counter()
            for i in range(50):
                state.nodes[f"bench-{i}"]["phase"] = "Running"
                state.compact()
            rewrite.append((time.perf_counter() - t0) / 50)
            t0 = time.perf_counter()
            for i in range(50):
                state.nodes[f"bench-{i}"]["phase"] = "Succeeded"
                state.write()
            append.append((time.perf_counter() - t0) / 50)
        # a fan-out's parent holding ``size`` children gains one more (the parent was written whole before b048613)
        state.put({**node, "id": "bench-p", "name": "bench", "type": "StepGroup", "children": list(state.nodes)[:size]})
        child = []
        for b in range(3):
            t0 = time.perf_counter()
            for i in range(50):
                nid = f"bench-new-{b}-{i}"
                state.put({**node, "id": nid, "name": nid}, write=False)
                state.add_child("bench-p", nid)
                state.write()
            child.append((time.perf_counter() - t0) / 50)
        w, a, c = min(rewrite) * 1e6, min(append) * 1e6, min(child) * 1e6
        print(f"  {size:>7}   {a:16.0f}   {w:30.0f}   {w / a:17.0f}   {c:12.0f}")
    base = Settings.from_env(environ={}).with_home(tmp / "fanout-home")
    settings = replace(base, engine=replace(base.engine, sandbox="none"), tracking=replace(base.tracking, enabled=False))
    t0 = time.perf_counter()
    run = run_workflow(_suspend_fanout(items), settings)
    took = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"withItems of {items} zero-length suspends, sandbox=none: {took:6.1f} s ({run.phase}), "
        f"{took / items * 1000:.1f} ms/node, peak RSS {rss:.0f} MiB (targets: 10,000 in < 60 s, < 500 MiB)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox", default="auto", choices=["auto", "bwrap", "none"], help="sandbox of the main engine figure")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bwrap-only", action="store_true", help="only price bubblewrap's start-up flags")
    parser.add_argument("--baseline-ref", help="also run the code of this git ref (a temporary worktree) and print the ratio")
    parser.add_argument("--fanout", action="store_true", help="only price status writes and a large fan-out (issue 13)")
    parser.add_argument("--fanout-items", type=int, default=1000, help="size of the --fanout run (10000: the target)")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)  # one timing, as JSON (compare_with)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.sandbox)))
        return 0
    if args.baseline_ref:
        compare_with(args.baseline_ref, args.sandbox, args.repeat)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        if args.bwrap_only:
            print_bwrap(Path(tmp))
            return 0
        if args.fanout:
            print_fanout(Path(tmp), args.fanout_items)
            return 0
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

        t0 = time.perf_counter()
        run_workflow(HELLO, settings)
        inproc = time.perf_counter() - t0
        t0 = time.perf_counter()
        subprocess.run(["true"], check=True)
        bare = time.perf_counter() - t0
        run_dir = prepare_run(HELLO, settings)
        t0 = time.perf_counter()
        subprocess.run([settings.engine.python, "-m", "scanflow_argo.platform.local_engine", str(run_dir)], check=True)
        detached = time.perf_counter() - t0
        t0 = time.perf_counter()
        subprocess.run([settings.engine.python, "-c", "pass"], check=True)
        interp = time.perf_counter() - t0
        print("one-step workflow (busybox `true`):")
        print(f"  in process          : {inproc * 1000:6.0f} ms   (the process alone: {bare * 1000:.0f} ms)")
        print(f"  detached engine     : {detached * 1000:6.0f} ms   (a bare interpreter start: {interp * 1000:.0f} ms)")
        if sandbox.isolated:
            print_bwrap(Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
