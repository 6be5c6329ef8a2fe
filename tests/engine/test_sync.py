"""Synchronization (mutexes, semaphores) across real detached engines sharing one state folder."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from scanflow_argo import _proc
from scanflow_argo.engine import prepare_run, resume
from scanflow_argo.engine.core.state import read_status
from scanflow_argo.errors import EngineError, NotSupportedLocally

# Each guarded node records its real start and end (status.json stamps are to the second).
STAMP = """
import pathlib, sys, time
d, t0 = pathlib.Path(sys.argv[1]), time.time()
while not (d / "go").exists() and time.time() < t0 + float(sys.argv[3]):
    time.sleep(0.02)
(d / (sys.argv[2] + "-" + str(t0))).write_text(f"{t0} {time.time()}")
"""


def pod(name: str, marks: Path, seconds: float = 1.0, sync: dict | None = None) -> dict[str, Any]:
    tmpl: dict[str, Any] = {
        "name": name,
        "inputs": {"parameters": [{"name": "tag", "default": name}]},
        "container": {
            "image": "python:3.12",
            "command": ["python", "-c", STAMP, str(marks), "{{inputs.parameters.tag}}", str(seconds)],
        },
    }
    if sync:
        tmpl["synchronization"] = sync
    return tmpl


def workflow(prefix: str, templates: list[dict], sync: dict | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"entrypoint": templates[0]["name"], "templates": templates, **spec}
    if sync:
        body["synchronization"] = sync
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"generateName": prefix}, "spec": body}


def start(run_dir: Path, python: str) -> _proc.Child:
    return _proc.spawn(
        [python, "-m", "scanflow_argo.platform.local_engine", str(run_dir)], name=run_dir.name, log=run_dir / "engine.log"
    )


def status(run_dir: Path) -> dict[str, Any]:
    return read_status(run_dir)["status"]


def wait_for(predicate, timeout: float = 30.0) -> Any:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def intervals(marks: Path, prefix: str = "") -> list[tuple[float, float]]:
    out = []
    for f in marks.glob(f"{prefix}*"):
        if "-" in f.name and f.name != "go":
            a, b = f.read_text().split()
            out.append((float(a), float(b)))
    return sorted(out)


def most_at_once(spans: list[tuple[float, float]]) -> int:
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans], key=lambda e: (e[0], e[1]))
    now = best = 0
    for _, step in events:
        now += step
        best = max(best, now)
    return best


def pods(st: dict[str, Any]) -> list[dict[str, Any]]:
    return [n for n in st["nodes"].values() if n["type"] == "Pod"]


@pytest.fixture
def marks(tmp_path: Path) -> Path:
    folder = tmp_path / "project"  # the project folder is visible (and writable) inside every node
    folder.mkdir()
    return folder


def test_workflow_mutex_serialises_two_engines_and_shows_the_wait(engine_settings, marks) -> None:  # type: ignore[no-untyped-def]
    sync = {"mutexes": [{"name": "train"}]}
    runs = [
        prepare_run(workflow(f"train{i}-", [pod("main", marks, 20)], sync), engine_settings, source_dir=marks) for i in (1, 2)
    ]
    engines = [start(r, engine_settings.engine.python) for r in runs]
    try:
        # one of them waits, Pending with Argo's message and the holder in status.synchronization
        def waiting_run() -> tuple[Path, dict[str, Any]] | None:
            for r in runs:
                st = status(r)
                if st.get("phase") == "Pending" and (st.get("synchronization") or {}).get("mutex", {}).get("waiting"):
                    return r, st
            return None

        waiting, st = wait_for(waiting_run)
        holder = next(r for r in runs if r is not waiting)
        assert st["message"] == "Waiting for default/Mutex/train lock. Lock status: 0/1"
        assert st["synchronization"]["mutex"]["waiting"] == [{"mutex": "default/Mutex/train", "holder": f"default/{holder.name}"}]
        assert not pods(st)
        (marks / "go").write_text("")  # the holder's node ends (it would wait up to 20 s)
        wait_for(lambda: all(not e.alive() for e in engines), timeout=40)
    finally:
        for e in engines:
            e.stop(timeout=5)
    first, second = status(holder), status(waiting)
    assert [first["phase"], second["phase"]] == ["Succeeded", "Succeeded"]
    assert "synchronization" not in first and "synchronization" not in second
    (a,), (b,) = pods(first), pods(second)
    assert a["finishedAt"] <= b["startedAt"]  # the stamps of status.json never overlap
    spans = intervals(marks)
    assert len(spans) == 2 and spans[0][1] <= spans[1][0]


def test_semaphore_of_two_lets_two_of_three_workflows_run_at_once(engine_settings, marks) -> None:  # type: ignore[no-untyped-def]
    cm = engine_settings.home / "configmaps" / "limits"
    cm.mkdir(parents=True)
    (cm / "training").write_text("2\n")
    sync = {"semaphores": [{"configMapKeyRef": {"name": "limits", "key": "training"}}]}
    runs = [
        prepare_run(workflow(f"sem{i}-", [pod("main", marks, 20)], sync), engine_settings, source_dir=marks) for i in range(3)
    ]
    engines = [start(r, engine_settings.engine.python) for r in runs]
    try:
        message = "Waiting for default/ConfigMap/limits/training lock. Lock status: 0/2"
        waiting = wait_for(lambda: next((r for r in runs if status(r).get("message") == message), None))
        holders = sorted(f"default/{r.name}" for r in runs if r is not waiting)
        expected = [{"semaphore": "default/ConfigMap/limits/training", "holders": holders}]
        wait_for(
            lambda: (
                [{**e, "holders": sorted(e["holders"])} for e in status(waiting)["synchronization"]["semaphore"]["waiting"]]
                == expected
            )
        )
        wait_for(lambda: sum(p["phase"] == "Running" for r in runs for p in pods(status(r))) == 2)
        time.sleep(0.3)  # the two holders' nodes are well under way: a third would start now if it could
        (marks / "go").write_text("")
        wait_for(lambda: all(not e.alive() for e in engines), timeout=40)
    finally:
        for e in engines:
            e.stop(timeout=5)
    assert [status(r)["phase"] for r in runs] == ["Succeeded"] * 3
    spans = intervals(marks)
    assert len(spans) == 3 and most_at_once(spans) == 2


def test_template_mutex_serialises_only_its_nodes_in_a_fan_out(engine_settings, marks) -> None:  # type: ignore[no-untyped-def]
    fan = {
        "name": "fan",
        "steps": [
            [
                {
                    "name": "locked",
                    "template": "locked",
                    "arguments": {"parameters": [{"name": "tag", "value": "locked{{item}}"}]},
                    "withItems": [1, 2, 3],
                },
                {
                    "name": "free",
                    "template": "free",
                    "arguments": {"parameters": [{"name": "tag", "value": "free{{item}}"}]},
                    "withItems": [1, 2],
                },
            ]
        ],
    }
    locked = pod("locked", marks, 0.8, sync={"mutex": {"name": "gpu"}})  # the singular (3.5) form
    wf = workflow("fan-", [fan, locked, pod("free", marks, 2.0)], parallelism=5)
    run_dir = prepare_run(wf, engine_settings, source_dir=marks)
    engine = start(run_dir, engine_settings.engine.python)
    try:
        node = wait_for(lambda: next((n for n in status(run_dir)["nodes"].values() if n.get("synchronizationStatus")), None))
        assert node["phase"] == "Pending" and node["synchronizationStatus"] == {"waiting": "default/Mutex/gpu"}
        assert node["message"] == "Waiting for default/Mutex/gpu lock. Lock status: 0/1"
        wait_for(lambda: not engine.alive(), timeout=40)
    finally:
        engine.stop(timeout=5)
    st = status(run_dir)
    assert st["phase"] == "Succeeded", engine.tail()
    assert "synchronization" not in st
    assert most_at_once(intervals(marks, "locked")) == 1
    assert most_at_once(intervals(marks)) >= 3  # both free nodes ran beside a locked one


def test_bad_synchronization_is_a_clear_error_before_anything_runs(engine_settings, marks) -> None:  # type: ignore[no-untyped-def]
    sem = {"semaphores": [{"configMapKeyRef": {"name": "limits", "key": "training"}}]}
    path = engine_settings.home / "configmaps" / ".namespaces" / "default" / "limits" / "training"  # the run's namespace
    missing = "ConfigMap 'limits' not found in namespace 'default': apply it with scanflow-argo --namespace default apply"
    with pytest.raises(EngineError, match=f"{missing} FILE, or write the value to {path}"):
        prepare_run(workflow("bad-", [pod("main", marks)], sem), engine_settings)
    path.parent.mkdir(parents=True)
    path.write_text("two")
    with pytest.raises(EngineError, match="ConfigMap limits key training of namespace 'default' holds 'two', not a positive"):
        prepare_run(workflow("bad-", [pod("main", marks)], sem), engine_settings)
    with pytest.raises(EngineError, match="unknown synchronization field"):
        prepare_run(workflow("bad-", [pod("main", marks)], {"mutexs": [{"name": "x"}]}), engine_settings)
    with pytest.raises(EngineError, match="duplicate synchronization item"):
        prepare_run(workflow("bad-", [pod("main", marks)], {"mutexes": [{"name": "x"}, {"name": "x"}]}), engine_settings)
    with pytest.raises(NotSupportedLocally, match="database-backed semaphores"):
        prepare_run(workflow("bad-", [pod("main", marks)], {"semaphores": [{"database": {"key": "w"}}]}), engine_settings)
    assert not list((engine_settings.home / "runs").glob("*"))


def test_a_killed_engine_releases_its_lock_and_resume_takes_it_again(engine_settings, marks) -> None:  # type: ignore[no-untyped-def]
    sync = {"mutexes": [{"name": "train", "database": True}]}  # a database mutex is a local mutex here
    first = prepare_run(workflow("kill-", [pod("main", marks, 60)], sync), engine_settings, source_dir=marks)
    a = start(first, engine_settings.engine.python)
    engines = [a]
    try:
        wait_for(lambda: pods(status(first)) and pods(status(first))[0]["phase"] == "Running")
        assert status(first)["synchronization"]["mutex"]["holding"] == [
            {"mutex": "default/Database/train", "holder": f"default/{first.name}"}
        ]
        second = prepare_run(workflow("next-", [pod("main", marks, 0.2)], sync), engine_settings, source_dir=marks)
        b = start(second, engine_settings.engine.python)
        engines.append(b)
        wait_for(lambda: status(second).get("phase") == "Pending" and status(second).get("message"))
        third = prepare_run(workflow("stop-", [pod("main", marks, 0.2)], sync), engine_settings, source_dir=marks)
        c = start(third, engine_settings.engine.python)
        engines.append(c)
        wait_for(lambda: status(third).get("phase") == "Pending" and status(third).get("message"))
        t0 = time.monotonic()
        c.stop(timeout=5)  # SIGTERM, as `scanflow-argo stop` does: a waiting run ends at once
        assert time.monotonic() - t0 < 2
        assert status(third)["phase"] == "Failed" and "synchronization" not in status(third)
        assert not pods(status(third))
        os.killpg(a.pid, signal.SIGKILL)  # kill -9: the kernel drops its flock
        a.popen.wait(timeout=10)
        wait_for(lambda: not b.alive(), timeout=30)
        assert status(second)["phase"] == "Succeeded"
        (marks / "go").write_text("")  # the resumed node need not wait a minute
        result = resume(first, engine_settings)
        assert result.phase == "Succeeded"
        assert "synchronization" not in status(first)
    finally:
        for e in engines:
            e.stop(timeout=2)


def test_argo_synchronization_examples_are_accepted_except_database_semaphores(engine_settings, shared_dir) -> None:  # type: ignore[no-untyped-def]
    from scanflow_argo.engine.api import split_documents
    from scanflow_argo.engine.core.manifest import load_documents

    cm = engine_settings.home / "configmaps" / "my-config"  # the ConfigMap the examples' comments describe
    cm.mkdir(parents=True)
    (cm / "workflow").write_text("3")
    (cm / "template").write_text("3")
    outcome = {}
    for path in sorted((shared_dir / "argo-examples").glob("synchronization-*.yaml")):
        main, templates = split_documents(load_documents(path))
        try:
            prepare_run(main, engine_settings, templates=templates)
            outcome[path.stem] = "accepted"
        except NotSupportedLocally:
            outcome[path.stem] = "refused"
    assert outcome == {
        "synchronization-db-mutex-tmpl-level": "accepted",
        "synchronization-db-mutex-wf-level": "accepted",
        "synchronization-db-tmpl-level": "refused",
        "synchronization-db-wf-level": "refused",
        "synchronization-mutex-tmpl-level": "accepted",
        "synchronization-mutex-wf-level": "accepted",
        "synchronization-tmpl-level": "accepted",
        "synchronization-wf-level": "accepted",
    }


def test_waiters_take_the_lock_by_priority_then_age(engine_settings, marks) -> None:  # type: ignore[no-untyped-def]
    sync = {"mutexes": [{"name": "train"}]}
    runs = {
        "first": workflow("first-", [pod("first", marks, 60)], sync),
        "low": workflow("low-", [pod("low", marks, 0.1)], sync),  # older, priority 0
        "high": workflow("high-", [pod("high", marks, 0.1)], sync, priority=5),
    }
    engines = []
    try:
        for key in ("first", "low", "high"):
            run_dir = prepare_run(runs[key], engine_settings, source_dir=marks)
            engines.append(start(run_dir, engine_settings.engine.python))
            expected = "Running" if key == "first" else "Pending"
            wait_for(lambda r=run_dir, p=expected: status(r).get("phase") == p and (p == "Running" or status(r).get("message")))
            if key == "low":
                time.sleep(1.0)  # creationTimestamp is to the second: make "low" clearly the older waiter
        (marks / "go").write_text("")  # the holder ends; the waiters take the lock in Argo's order
        wait_for(lambda: all(not e.alive() for e in engines), timeout=30)
    finally:
        for e in engines:
            e.stop(timeout=2)
    started = sorted(marks.glob("*-*"), key=lambda f: float(f.read_text().split()[0]))
    assert [f.name.split("-")[0] for f in started] == ["first", "high", "low"]


def test_a_limit_gone_after_submit_fails_the_run_naming_the_file(engine_settings, marks) -> None:  # type: ignore[no-untyped-def]
    from scanflow_argo.engine import execute

    path = engine_settings.home / "configmaps" / ".namespaces" / "default" / "limits" / "training"
    path.parent.mkdir(parents=True)
    path.write_text("1")
    sem = {"semaphore": {"configMapKeyRef": {"name": "limits", "key": "training"}}}
    at_wf = prepare_run(workflow("wf-", [pod("main", marks, 0.1)], sem), engine_settings)
    at_tmpl = prepare_run(workflow("tmpl-", [pod("main", marks, 0.1, sync=sem)]), engine_settings)
    path.write_text("lots")
    result = execute(at_wf, engine_settings)
    assert result.phase == "Failed"
    assert status(at_wf)["message"].startswith("Failed to acquire the synchronization lock. ")
    holds = "ConfigMap limits key training of namespace 'default' holds 'lots'"
    assert holds in status(at_wf)["message"] and not status(at_wf)["nodes"]
    assert execute(at_tmpl, engine_settings).phase in ("Failed", "Error")
    (node,) = status(at_tmpl)["nodes"].values()
    assert node["phase"] == "Error" and holds in node["message"]
    assert not list(marks.iterdir())  # nothing ran
