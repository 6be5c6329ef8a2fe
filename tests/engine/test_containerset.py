"""containerSet templates in the local engine, run as a user runs them: real engine, real sandbox
(bubblewrap), real processes. Argo's semantics: containers ordered by ``dependencies`` (independent
ones at once), one ``Container`` node each, a failure stops the pod, ``main`` makes the outputs,
``containerSet.retryStrategy`` re-runs a failed command ``retries`` times in all."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from scanflow_argo import _proc
from scanflow_argo.engine import prepare_run, resume, run_workflow
from scanflow_argo.engine.core.state import read_status
from scanflow_argo.errors import EngineError
from scanflow_argo.settings import Settings

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="bubblewrap is not installed: a pod's containers and volumes need the sandbox"
)
WORK = {"name": "work", "mountPath": "/mnt/work"}


def wf(*templates: dict, entrypoint: str = "main") -> dict:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "cset-"},
        "spec": {"entrypoint": entrypoint, "templates": list(templates)},
    }


def ctr(name: str, script: str, deps: list[str] | None = None, **extra: object) -> dict:
    c: dict = {"name": name, "image": "busybox", "command": ["sh", "-c"], "args": [script], **extra}
    if deps:
        c["dependencies"] = deps
    return c


def cset(*containers: dict, name: str = "main", volume: bool = True, **extra: object) -> dict:
    body: dict = {"containers": list(containers)}
    tmpl: dict = {"name": name, "containerSet": body, **extra}
    if volume:
        tmpl["volumes"] = [{"name": "work", "emptyDir": {}}]
        body["volumeMounts"] = [WORK]
    return tmpl


def status(settings: Settings, run_name: str) -> dict:
    return read_status(settings.home / "runs" / run_name)["status"]


def containers(st: dict) -> dict[str, dict]:
    return {n["displayName"]: n for n in st["nodes"].values() if n["type"] == "Container"}


def pod(st: dict) -> dict:
    (only,) = [n for n in st["nodes"].values() if n["type"] == "Pod"]
    return only


def stamp(name: str, seconds: float = 0.0) -> str:
    """A container that records when it starts and ends in the shared volume."""
    body = f"sleep {seconds}; " if seconds else ""
    return f"echo {name} start $(date +%s.%N) >> /mnt/work/times; {body}echo {name} end $(date +%s.%N) >> /mnt/work/times"


def test_dependencies_order_the_containers_and_independent_ones_run_at_once(engine_settings) -> None:  # type: ignore[no-untyped-def]
    manifest = wf(
        cset(
            ctr("a", stamp("a")),
            ctr("b", stamp("b", 0.6), ["a"]),
            ctr("c", stamp("c", 0.6), ["a"]),
            ctr("main", stamp("main") + "; cat /mnt/work/times", ["b", "c"]),
        )
    )
    run = run_workflow(manifest, engine_settings)
    assert run.phase == "Succeeded", run.message
    st = status(engine_settings, run.name)
    times: dict[tuple[str, str], float] = {}
    for line in pod(st)["outputs"]["result"].splitlines():  # main's stdout: every container's record
        who, what, at = line.split()
        times[(who, what)] = float(at)
    assert times[("a", "end")] <= min(times[("b", "start")], times[("c", "start")])
    # b and c depend only on a: they run at the same time
    assert times[("b", "start")] < times[("c", "end")] and times[("c", "start")] < times[("b", "end")]
    assert times[("main", "start")] >= max(times[("b", "end")], times[("c", "end")])
    # the status as Argo writes it: one Container node per container, linked along the graph
    p, kids = pod(st), containers(st)
    assert sorted(kids) == ["a", "b", "c", "main"]
    assert p["children"] == [kids["a"]["id"]]
    assert sorted(kids["a"]["children"]) == sorted([kids["b"]["id"], kids["c"]["id"]])
    assert kids["b"]["children"] == kids["c"]["children"] == [kids["main"]["id"]]
    for name, kid in kids.items():
        assert kid["name"] == f"{p['name']}.{name}"
        assert kid["boundaryID"] == p["id"] and kid["phase"] == "Succeeded" and kid["finishedAt"]
        assert kid["templateName"] == "main"
    # each container has its own log in the pod's folder
    node_dir = engine_settings.home / "runs" / run.name / "nodes" / p["id"]
    assert (node_dir / "b.log").read_text() == ""  # its output went to the volume
    assert "main start" in (node_dir / "main.log").read_text()
    assert not (node_dir / "volumes").exists()  # the pod's emptyDir goes with the pod


def test_a_failed_container_fails_the_pod_and_its_dependants_never_run(engine_settings) -> None:  # type: ignore[no-untyped-def]
    manifest = wf(
        cset(
            ctr("a", "echo a"),
            ctr("b", "echo broken >&2; exit 3", ["a"]),
            ctr("main", "touch /mnt/work/main-ran", ["b"]),
            # independent: it runs to its end, as Argo's wait container waits for every container of the set
            # (workflow/executor/emissary/emissary.go Wait; e2e TestWorkflowTemplateWithRetryStrategyInContainerSet)
            ctr("slow", "sleep 1; echo slow-done"),
        )
    )
    t0 = time.monotonic()
    run = run_workflow(manifest, engine_settings)
    assert time.monotonic() - t0 < 15
    assert run.phase == "Failed"
    st = status(engine_settings, run.name)
    kids = containers(st)
    assert kids["a"]["phase"] == "Succeeded"
    assert (kids["b"]["phase"], kids["b"]["message"]) == ("Failed", "b: Error (exit code 3)")
    assert kids["main"]["phase"] == "Failed"
    assert "dependency 'b' exited with non-zero code: 3" in kids["main"]["message"]
    assert kids["slow"]["phase"] == "Succeeded"
    p = pod(st)
    node_dir = engine_settings.home / "runs" / run.name / "nodes" / p["id"]
    assert not (node_dir / "main.log").exists()  # main never started
    assert "broken" in (node_dir / "b.log").read_text()
    # Argo's pod message prefers the main container's failure
    assert (p["phase"], p["message"]) == ("Failed", "main: dependency 'b' exited with non-zero code: 3")
    assert p["outputs"]["exitCode"] == "3"  # main exits with its dependency's code, as the emissary makes it


def test_the_main_container_makes_the_outputs_from_its_own_filesystem(engine_settings) -> None:  # type: ignore[no-untyped-def]
    group = cset(
        ctr("a", "echo from-a; echo a > /tmp/out.txt; echo shared > /mnt/work/note"),
        ctr("main", "echo from-main; cat /tmp/out.txt 2>/dev/null; echo $(cat /mnt/work/note)-main > /tmp/out.txt", ["a"]),
        name="group",
        outputs={
            "parameters": [{"name": "p", "valueFrom": {"path": "/tmp/out.txt"}}],
            "artifacts": [{"name": "f", "path": "/tmp/out.txt"}],
        },
    )
    use = {
        "name": "use",
        "inputs": {"parameters": [{"name": "r"}, {"name": "p"}], "artifacts": [{"name": "f", "path": "/tmp/in.txt"}]},
        "container": {
            "image": "busybox",
            "command": ["sh", "-c"],
            "args": ["echo '{{inputs.parameters.r}}|{{inputs.parameters.p}}|'$(cat /tmp/in.txt)"],
        },
    }
    dag = {
        "name": "main",
        "dag": {
            "tasks": [
                {"name": "g", "template": "group"},
                {
                    "name": "u",
                    "template": "use",
                    "dependencies": ["g"],
                    "arguments": {
                        "parameters": [
                            {"name": "r", "value": "{{tasks.g.outputs.result}}"},
                            {"name": "p", "value": "{{tasks.g.outputs.parameters.p}}"},
                        ],
                        "artifacts": [{"name": "f", "from": "{{tasks.g.outputs.artifacts.f}}"}],
                    },
                },
            ]
        },
    }
    run = run_workflow(wf(dag, group, use), engine_settings)
    assert run.phase == "Succeeded", run.message
    g = run.node("g")
    # main's stdout only; main does not see a's /tmp (each container has its own filesystem)
    assert g.outputs["result"] == "from-main" and g.outputs["exitCode"] == "0"
    assert g.outputs["parameters"] == [{"name": "p", "value": "shared-main"}]
    assert run.node("u").outputs["result"] == "from-main|shared-main|shared-main"


def test_outputs_without_a_main_container_are_refused_before_anything_runs(engine_settings) -> None:  # type: ignore[no-untyped-def]
    tmpl = cset(ctr("a", "echo hi > /mnt/work/x"), outputs={"parameters": [{"name": "x", "valueFrom": {"path": "/mnt/work/x"}}]})
    with pytest.raises(EngineError, match='must have a container named "main"'):
        run_workflow(wf(tmpl), engine_settings)


@pytest.mark.parametrize(
    ("graph", "message"),
    [
        ({"a": ["c"], "b": ["a"], "c": ["b"]}, r"container 'a' is in a dependency cycle \(a -> c -> b -> a\)"),
        ({"a": ["a"]}, r"container 'a' is in a dependency cycle \(a -> a\)"),
        ({"a": [], "b": ["nope"]}, r"container 'b' depends on 'nope', which is not a container of the set"),
    ],
)
def test_a_bad_dependency_graph_is_a_clear_error_before_anything_runs(engine_settings, graph, message) -> None:  # type: ignore[no-untyped-def]
    marker = engine_settings.home / "ran"
    tmpl = cset(*(ctr(n, f"touch {marker}", deps) for n, deps in graph.items()), volume=False)
    with pytest.raises(EngineError, match=message):
        run_workflow(wf(tmpl), engine_settings)
    assert not marker.exists()
    assert not any((engine_settings.home / "runs").glob("*/status.json"))


def test_duplicate_container_names_are_refused(engine_settings) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(EngineError, match="container name 'a' is used twice"):
        run_workflow(wf(cset(ctr("a", "true"), ctr("a", "true"), volume=False)), engine_settings)


FLAKY = (
    "n=$(cat /tmp/count 2>/dev/null || echo 0); n=$((n+1)); echo $n > /tmp/count; echo attempt $n $(date +%s.%N); [ $n -ge 3 ]"
)


@pytest.mark.parametrize(("retries", "phase"), [("3", "Succeeded"), (2, "Failed")])
def test_a_flaky_container_is_retried_in_place_retries_times_in_all(engine_settings, retries, phase) -> None:  # type: ignore[no-untyped-def]
    # succeeds on its 3rd attempt: Argo's executor makes `retries` attempts in all (its e2e tests say so)
    tmpl = cset(ctr("main", FLAKY), volume=False)
    tmpl["containerSet"]["retryStrategy"] = {"retries": retries, "duration": "300ms"}
    run = run_workflow(wf(tmpl), engine_settings)
    assert run.phase == phase, run.message
    st = status(engine_settings, run.name)
    p = pod(st)
    log = (engine_settings.home / "runs" / run.name / "nodes" / p["id"] / "main.log").read_text()
    lines = [line.split() for line in log.splitlines()]
    assert [n for _, n, _ in lines] == [str(i) for i in range(1, int(retries) + 1)]  # the same container, its log appended
    stamps = [float(at) for _, _, at in lines]
    assert all(b - a >= 0.3 for a, b in itertools.pairwise(stamps))  # `duration` apart
    assert len([n for n in st["nodes"].values() if n["type"] == "Pod"]) == 1  # no new pod, unlike retryStrategy
    assert containers(st)["main"]["phase"] == phase


def test_a_shared_volume_carries_files_between_containers(engine_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tmpl = cset(
        ctr("writer", "echo payload > /mnt/work/data; echo other > /tmp/private"),
        ctr("main", "cat /mnt/work/data; test ! -e /tmp/private && echo private-stays-private", ["writer"]),
    )
    run = run_workflow(wf(tmpl), engine_settings)
    assert run.phase == "Succeeded", run.message
    assert pod(status(engine_settings, run.name))["outputs"]["result"] == "payload\nprivate-stays-private"


def test_the_pod_deadline_stops_its_containers(engine_settings) -> None:  # type: ignore[no-untyped-def]
    tmpl = cset(ctr("a", "sleep 30"), ctr("main", "echo never", ["a"]), volume=False, activeDeadlineSeconds=1)
    t0 = time.monotonic()
    run = run_workflow(wf(tmpl), engine_settings)
    assert time.monotonic() - t0 < 10
    st = status(engine_settings, run.name)
    deadline = "Pod was active on the node longer than the specified deadline"
    assert (run.phase, pod(st)["message"]) == ("Failed", deadline)
    kids = containers(st)
    assert (kids["a"]["phase"], kids["a"]["message"]) == ("Failed", f"a: {deadline}")
    assert kids["main"]["phase"] == "Failed" and "not started" in kids["main"]["message"]


def test_init_containers_run_before_the_set_with_its_volumes(engine_settings) -> None:  # type: ignore[no-untyped-def]
    tmpl = cset(ctr("main", "cat /mnt/work/seed"))
    tmpl["initContainers"] = [
        {
            "name": "seed",
            "image": "busybox",
            "command": ["sh", "-c"],
            "args": ["echo seeded > /mnt/work/seed"],
            "volumeMounts": [WORK],
        }
    ]
    run = run_workflow(wf(tmpl), engine_settings)
    assert run.phase == "Succeeded", run.message
    assert pod(status(engine_settings, run.name))["outputs"]["result"] == "seeded"


def test_resume_after_kill_9_keeps_a_finished_container_set_with_its_container_nodes(engine_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    project = tmp_path / "project"  # visible inside every node's sandbox
    project.mkdir()
    count = f'echo x >> "{project}/$ARGO_CONTAINER_NAME"'
    group = cset(ctr("a", count), ctr("main", count, ["a"]), name="group", volume=False)
    slow = {
        "name": "slow",
        "container": {"image": "busybox", "command": ["sh", "-c", f"touch {project}/slow; test -e {project}/go || sleep 60"]},
    }
    manifest = wf(
        {"name": "main", "steps": [[{"name": "g", "template": "group"}], [{"name": "s", "template": "slow"}]]}, group, slow
    )
    run_dir = prepare_run(manifest, engine_settings, source_dir=project)
    engine = _proc.spawn(
        [engine_settings.engine.python, "-m", "scanflow_argo.platform.local_engine", str(run_dir)],
        name="engine",
        log=run_dir / "engine.log",
    )
    try:
        deadline = time.monotonic() + 30
        while not (project / "slow").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(engine.pid, signal.SIGKILL)
        engine.popen.wait(timeout=10)
    finally:
        engine.stop(timeout=2)
    (project / "go").write_text("")
    run = resume(run_dir, engine_settings)
    assert run.phase == "Succeeded", run.message
    assert (project / "a").read_text() == (project / "main").read_text() == "x\n"  # not run again
    kids = containers(status(engine_settings, run.name))
    assert sorted(kids) == ["a", "main"] and all(k["phase"] == "Succeeded" for k in kids.values())


def test_stopping_the_run_stops_every_container_and_the_logs_show_main(engine_settings) -> None:  # type: ignore[no-untyped-def]
    from scanflow_argo.platform.local import LocalPlatform

    platform = LocalPlatform(engine_settings)
    tmpl = cset(ctr("main", "echo started; sleep 60"), ctr("other", "sleep 60"), ctr("after", "true", ["other"]), volume=False)
    name = platform.submit(wf(tmpl))
    try:
        deadline = time.monotonic() + 30
        while "started" not in platform.logs(name) and time.monotonic() < deadline:
            time.sleep(0.05)
        t0 = time.monotonic()
        platform.stop(name)
        run = platform.wait(name, timeout=30, poll=0.1)
    finally:
        pid = platform.engine_pid(platform.run_dir(name))
        if pid is not None:
            _proc.stop_pid(pid, timeout=5)
    assert time.monotonic() - t0 < 10
    assert run.phase == "Failed" and "Stopped" in (run.message or "")
    kids = containers(status(engine_settings, name))
    assert all(k["phase"] == "Failed" and "Stopped" in k["message"] for k in kids.values())
