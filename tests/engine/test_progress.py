"""Progress (``N/M``) as Argo computes it: ``workflow/progress/updater.go`` (``UpdateProgress``,
``sumProgress``), ``pkg/apis/workflow/v1alpha1/progress.go`` (``IsValid``), docs/progress.md — the rules in
table form, the incremental tracker against Argo's whole pass, and runs through the scheduler with the fake
node kind of ``test_scheduler.py``."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest

from scanflow_argo.engine import prepare_run
from scanflow_argo.engine.api import execute
from scanflow_argo.engine.core.progress import ProgressTracker, parse_progress, update_progress
from scanflow_argo.engine.core.state import read_status

from .test_scheduler import FakePods, pod, wf


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("0/1", (0, 1)),
        ("50/100", (50, 100)),
        ("100/100", (100, 100)),
        ("0/0", None),  # M > 0
        ("2/1", None),  # N <= M
        ("-1/3", None),  # N >= 0
        ("x/3", (0, 3)),  # Go's ParseInt error is 0
        ("", None),  # ProgressUndefined
        ("5", None),  # no "/": Argo would index past parts()
        (None, None),
    ],
)
def test_parse_progress_is_argos_is_valid(text: Any, want: tuple[int, int] | None) -> None:
    """progress.go ``IsValid``: ``in != "" && N >= 0 && N <= M && M > 0``, N and M via ``strconv.ParseInt``."""
    assert parse_progress(text) == want


def test_update_progress_is_argos_updater() -> None:
    """updater_test.go ``TestUpdater``, node for node."""
    nodes: dict[str, dict[str, Any]] = {
        "pod-1": {"phase": "Succeeded", "type": "Pod", "progress": "25/50"},
        "pod-2": {"phase": "Running", "type": "Pod", "progress": "50/150"},
        "http": {"phase": "Failed", "type": "HTTP"},
        "plug": {"phase": "Succeeded", "type": "Plugin"},
        "dag": {"type": "DAG", "children": ["pod-1", "pod-2", "http", "plug"]},
    }
    assert update_progress(nodes) == "101/202"
    assert {k: n["progress"] for k, n in nodes.items()} == {
        "pod-1": "50/50",  # succeeded pod is completed
        "pod-2": "50/150",  # running pod is unchanged
        "http": "0/1",  # failed http is unchanged
        "plug": "1/1",  # succeeded plug is completed
        "dag": "101/202",  # dag is summed up
    }


@pytest.mark.parametrize(
    ("what", "nodes", "want_nodes", "want"),
    [
        (
            "a DAG's task nodes carry their dependants as children: each reached node counts once (sumProgress's visited)",
            {
                "dag": {"type": "DAG", "children": ["a"]},
                "a": {"type": "Pod", "phase": "Succeeded", "children": ["b", "c"]},
                "b": {"type": "Pod", "phase": "Succeeded", "children": ["d"]},
                "c": {"type": "Pod", "phase": "Running", "children": ["d"]},
                "d": {"type": "Pod", "phase": "Pending"},
            },
            {"dag": "2/4"},
            "2/4",
        ),
        (
            "skipped and omitted nodes are complete; Skipped-type nodes are not executable (no progress)",
            {
                "steps": {"type": "Steps", "children": ["g"]},
                "g": {"type": "StepGroup", "children": ["p", "s"]},
                "p": {"type": "Pod", "phase": "Omitted"},
                "s": {"type": "Skipped", "phase": "Skipped"},
            },
            {"steps": "1/1", "g": "1/1", "p": "1/1"},
            "1/1",
        ),
        (
            "a non-executable node reaching nothing executable keeps no progress (0/0 is not valid)",
            {"steps": {"type": "Steps", "children": ["g"]}, "g": {"type": "StepGroup"}},
            {},
            "0/0",
        ),
        (
            "suspend nodes count; a Retry node sums its attempts",
            {
                "retry": {"type": "Retry", "children": ["r0", "r1"]},
                "r0": {"type": "Pod", "phase": "Failed"},
                "r1": {"type": "Pod", "phase": "Failed"},
                "wait": {"type": "Suspend", "phase": "Succeeded"},
            },
            {"retry": "0/2", "wait": "1/1"},
            "1/3",
        ),
    ],
)
def test_update_progress_sums(what: str, nodes: dict[str, dict[str, Any]], want_nodes: dict[str, str], want: str) -> None:
    assert update_progress(nodes) == want, what
    got = {k: n["progress"] for k, n in nodes.items() if "progress" in n and n["type"] not in ("Pod", "Suspend")}
    got.update({k: nodes[k]["progress"] for k in want_nodes if k in nodes and "progress" in nodes[k]})
    assert got == want_nodes, what


@pytest.mark.parametrize("seed", range(40))
def test_the_tracker_agrees_with_argos_whole_pass(seed: int) -> None:
    """Random graphs built as the engine builds them (a node recorded, then linked under one or more
    parents, then changing phase or reporting progress): after every update the tracker's progress of every
    node and of the workflow equals ``UpdateProgress`` run on a copy."""
    rng = random.Random(seed)
    nodes: dict[str, dict[str, Any]] = {}
    tracker = ProgressTracker(nodes)
    changed: set[str] = set()
    types = ["Pod", "Pod", "Pod", "Suspend", "Steps", "StepGroup", "DAG", "Retry", "Skipped"]
    for step in range(60):
        op = rng.random()
        if op < 0.45 or not nodes:
            nid = f"n{step}"
            nodes[nid] = {"type": rng.choice(types), "phase": rng.choice(["Pending", "Running", "Succeeded"])}
            changed.add(nid)
            candidates = [k for k in nodes if k != nid]
            for parent in rng.sample(candidates, min(len(candidates), rng.choice([0, 1, 1, 1, 2]))):
                nodes[parent].setdefault("children", []).append(nid)
                tracker.edge(parent, nid)
        elif op < 0.8:
            nid = rng.choice(list(nodes))
            nodes[nid]["phase"] = rng.choice(["Running", "Succeeded", "Failed", "Omitted"])
            changed.add(nid)
        else:
            pods = [k for k, v in nodes.items() if v["type"] in ("Pod", "Suspend")] or list(nodes)
            nid = rng.choice(pods)  # what a pod reports (ARGO_PROGRESS_FILE)
            m = rng.randint(1, 100)
            nodes[nid]["progress"] = f"{rng.randint(0, m)}/{m}"
            changed.add(nid)
        if rng.random() < 0.5:
            tracker.update(changed)
            changed.clear()
            reference = {k: dict(v) for k, v in nodes.items()}
            want = update_progress(reference)
            assert tracker.workflow == want, (seed, step)
            got = {k: v.get("progress") for k, v in nodes.items()}
            assert got == {k: v.get("progress") for k, v in reference.items()}, (seed, step)


def _run(manifest: dict[str, Any], settings: Any, fake: FakePods) -> dict[str, Any]:
    """The run's status (with its workflow name as ``name``) as the engine wrote it."""
    run_dir = prepare_run(manifest, settings, kinds=fake.kinds)
    execute(run_dir, settings, kinds=fake.kinds)
    doc = read_status(run_dir)
    return {**doc["status"], "name": doc["metadata"]["name"]}


def test_a_run_records_progress_as_argo(engine_settings) -> None:  # type: ignore[no-untyped-def]
    """docs/progress.md "Workflow Progress": a pod is 1/1 once completed, a non-leaf node the sum of its
    children, the workflow the sum of its leaves (a DAG of two pods and a steps node of two more)."""
    fake = FakePods()
    templates = [
        {
            "name": "main",
            "dag": {
                "tasks": [
                    {"name": "a", "template": "ok"},
                    {"name": "b", "template": "ok", "depends": "a"},
                    {"name": "c", "template": "steps", "depends": "a"},
                    {"name": "d", "template": "bad", "depends": "a"},
                ]
            },
        },
        {"name": "steps", "steps": [[{"name": "s1", "template": "ok"}, {"name": "s2", "template": "ok"}]]},
        pod("ok"),
        pod("bad", phase="Failed"),
    ]
    status = _run(wf(templates), engine_settings, fake)
    assert status["progress"] == "4/5"
    by_name = {n["displayName"]: n for n in status["nodes"].values()}
    assert by_name[status["name"]]["progress"] == "4/5"
    assert by_name["c"]["progress"] == "2/2"
    assert by_name["d"]["progress"] == "0/1"  # a failed pod is not complete
    assert {n["progress"] for n in by_name.values() if n["type"] == "Pod" and n["phase"] == "Succeeded"} == {"1/1"}


def test_a_retried_pod_counts_each_attempt(engine_settings) -> None:  # type: ignore[no-untyped-def]
    """e2e retry_test.go ``TestRetryLimit``: a Retry node with one failed attempt is 0/1, and so is the workflow."""
    fake = FakePods()
    status = _run(
        wf([{"name": "main", "retryStrategy": {"limit": 1}, "fake": {"phases": ["Failed", "Succeeded"]}}]), engine_settings, fake
    )
    assert status["progress"] == "1/2"
    assert status["nodes"][status["name"]]["progress"] == "1/2"


# (what, shell script of the pod, the template's progress annotation, its node's progress at the end)
REPORTS = [
    (
        "a failed pod keeps the last N/M it wrote",
        'echo 1/4 > "$ARGO_PROGRESS_FILE"; echo 3/4 >> "$ARGO_PROGRESS_FILE"; exit 1',
        None,
        "3/4",
    ),
    ("a succeeded pod is complete whatever it wrote", 'echo 1/4 > "$ARGO_PROGRESS_FILE"', None, "4/4"),
    ("a last line that is no valid progress is ignored", 'printf "9/5\\n\\n" > "$ARGO_PROGRESS_FILE"; exit 1', None, "0/1"),
    ("the annotation is the first progress", "exit 1", "5/10", "5/10"),
    ("an invalid annotation is ignored", "exit 1", "abc", "0/1"),
]


@pytest.mark.parametrize(("what", "script", "annotation", "want"), REPORTS, ids=[r[0] for r in REPORTS])
def test_a_pod_reports_its_own_progress(engine_settings, what, script, annotation, want) -> None:  # type: ignore[no-untyped-def]
    """docs/progress.md "Self reporting progress" and executor.go ``monitorProgress``: the last non-empty line of
    ``$ARGO_PROGRESS_FILE`` that parses as a valid ``N/M``; workflowpod.go: the ``workflows.argoproj.io/progress``
    annotation as the initial progress; updater.go: complete once Succeeded."""
    tmpl: dict[str, Any] = {"name": "main", "container": {"image": "alpine:3.23", "command": ["sh", "-c", script]}}
    if annotation is not None:
        tmpl["metadata"] = {"annotations": {"workflows.argoproj.io/progress": annotation}}
    run_dir = prepare_run(wf([tmpl]), engine_settings)
    execute(run_dir, engine_settings)
    status = read_status(run_dir)["status"]
    (node,) = status["nodes"].values()
    assert (node["progress"], status["progress"]) == (want, want), what


def test_the_progress_file_without_the_sandbox(engine_settings) -> None:  # type: ignore[no-untyped-def]
    """Unisolated nodes (no bubblewrap) write their progress to a file of their node folder, never this machine's
    /var/run/argo."""
    settings = replace(engine_settings, engine=replace(engine_settings.engine, sandbox="none"))
    script = 'case "$ARGO_PROGRESS_FILE" in /var/*) exit 3;; esac; echo 2/3 > "$ARGO_PROGRESS_FILE"; exit 1'
    run_dir = prepare_run(
        wf([{"name": "main", "container": {"image": "alpine:3.23", "command": ["sh", "-c", script]}}]), settings
    )
    execute(run_dir, settings)
    (node,) = read_status(run_dir)["status"]["nodes"].values()
    assert (node["progress"], node["outputs"]["exitCode"]) == ("2/3", "1")


def test_the_tracker_sums_a_group_chained_under_a_fan_out_once() -> None:
    """A next StepGroup hangs under every pod of the fan-out before it (steps.go ``executeSteps``): the Steps
    node reaches the next group's pod through all of them and counts it once, as ``sumProgress`` does."""
    nodes: dict[str, dict[str, Any]] = {"s": {"type": "Steps", "phase": "Running"}}
    tracker = ProgressTracker(nodes)
    tracker.update({"s"})

    def add(nid: str, ntype: str, parents: list[str]) -> None:
        nodes[nid] = {"type": ntype, "phase": "Running"}
        for parent in parents:
            nodes[parent].setdefault("children", []).append(nid)
            tracker.edge(parent, nid)

    add("g0", "StepGroup", ["s"])
    fan = [f"p{i}" for i in range(50)]
    for pid in fan:
        add(pid, "Pod", ["g0"])
    tracker.update(set(fan))
    for pid in fan:
        nodes[pid]["phase"] = "Succeeded"
    add("g1", "StepGroup", fan)
    add("q", "Pod", ["g1"])
    tracker.update({*fan, "q"})
    assert (nodes["s"]["progress"], nodes["g0"]["progress"], nodes["g1"]["progress"]) == ("50/51", "50/51", "0/1")
    nodes["q"]["phase"] = "Succeeded"
    tracker.update({"q"})
    reference = {k: dict(v) for k, v in nodes.items()}
    assert tracker.workflow == update_progress(reference) == "51/51"
    assert {k: v.get("progress") for k, v in nodes.items()} == {k: v.get("progress") for k, v in reference.items()}
