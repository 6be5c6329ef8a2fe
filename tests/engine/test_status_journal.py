"""The status journal (engine/core/state.py): appends survive ``kill -9``, a torn line is ignored, compaction
changes nothing, and every reader (``load_status``, the local platform and its runs index) sees what is
still only in the journal. Argo keeps node status in the Workflow object (workflow/controller/operator.go
``persistUpdates``); locally the journal is what makes one node change cost one line, not the whole file."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from scanflow_argo import _proc
from scanflow_argo.clock import ManualClock
from scanflow_argo.engine import prepare_run, resume
from scanflow_argo.engine.core.state import JOURNAL, RunState, load_status, read_status
from scanflow_argo.platform.local import LocalPlatform

WORKFLOW = {"metadata": {"name": "jr"}, "spec": {"entrypoint": "main"}}


def _node(i: int, phase: str = "Succeeded") -> dict:
    return {"id": f"jr-{i}", "name": f"jr[{i}]", "type": "Suspend", "phase": phase}


def _state(run_dir: Path) -> RunState:
    state = RunState(run_dir, WORKFLOW, ManualClock())
    state.write()  # the first write compacts: status.json holds metadata and spec
    for i in range(3):
        state.put(_node(i, "Running"))
    state.nodes["jr-1"]["phase"] = "Succeeded"
    state.write()
    return state


def test_journal_lines_are_read_and_a_torn_last_line_is_ignored(tmp_path: Path) -> None:
    _state(tmp_path)
    assert len((tmp_path / JOURNAL).read_bytes().splitlines()) == 4  # one line per write, nothing compacted
    with (tmp_path / JOURNAL).open("ab") as f:
        f.write(b'{"metadata":{"name":"jr"},"status":{"phase":"Failed"},"nodes":{"jr-2":{"id":"jr-2","ph')
    for read in (read_status, load_status):
        doc = read(tmp_path)
        assert doc is not None
        assert doc["status"]["phase"] == "Running"
        assert {k: v["phase"] for k, v in doc["status"]["nodes"].items()} == {
            "jr-0": "Running",
            "jr-1": "Succeeded",
            "jr-2": "Running",
        }


@pytest.mark.parametrize("compact", ["compact", "final phase"])
def test_compaction_leaves_the_same_status_and_empties_the_journal(tmp_path: Path, compact: str) -> None:
    state = _state(tmp_path)
    before = load_status(tmp_path)
    assert before is not None and json.loads((tmp_path / "status.json").read_text()) != before
    if compact == "compact":
        state.compact()
    else:  # a write whose phase is final compacts
        state.status["phase"] = before["status"]["phase"] = "Succeeded"
        state.write()
    assert (tmp_path / JOURNAL).read_bytes() == b""
    assert json.loads((tmp_path / "status.json").read_text()) == before == load_status(tmp_path)


def test_readers_see_journal_entries_not_yet_compacted(engine_settings) -> None:  # type: ignore[no-untyped-def]
    run_dir = prepare_run(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"generateName": "jr-"},
            "spec": {"entrypoint": "main", "templates": [{"name": "main", "suspend": {"duration": "0"}}]},
        },
        engine_settings,
    )
    workflow = json.loads((run_dir / "status.json").read_text())
    platform = LocalPlatform(engine_settings)
    platform.runs_index.refresh()
    state = RunState(run_dir, workflow, ManualClock())
    state.write()
    state.put({"id": "jr-x", "name": "jr-x", "type": "Suspend", "phase": "Running"})
    assert (run_dir / JOURNAL).read_bytes()  # only in the journal
    assert "jr-x" in platform.get_workflow(run_dir.name)["status"]["nodes"]
    assert platform.get_run(run_dir.name).phase == "Running"
    assert [r.name for r in platform.list_runs()] == [run_dir.name]


def _fan_out(counter_dir: Path, finished: int) -> dict:
    """``finished`` items end at once (each appends a line to its own file), one waits for ``go``."""
    script = 'echo x >> "$0/$1"; if [ "$1" = hold ]; then while [ ! -e "$0/go" ]; do sleep 0.05; done; fi'
    items = [f"i{i}" for i in range(finished)] + ["hold"]
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "jfan-"},
        "spec": {
            "entrypoint": "main",
            "templates": [
                {"name": "main", "steps": [[{"name": "f", "template": "one", "withItems": items}]]},
                {
                    "name": "one",
                    "inputs": {"parameters": [{"name": "item"}]},
                    "container": {
                        "image": "busybox",
                        "command": ["sh", "-c", script, str(counter_dir), "{{inputs.parameters.item}}"],
                    },
                },
            ],
        },
    }


def test_kill_9_during_a_fan_out_loses_no_completed_node_and_resume_reruns_none(engine_settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    project = tmp_path / "project"
    project.mkdir()
    finished = 12
    wf = _fan_out(project, finished)
    wf["spec"]["templates"][0]["steps"][0][0]["arguments"] = {"parameters": [{"name": "item", "value": "{{item}}"}]}
    run_dir = prepare_run(wf, engine_settings, source_dir=project)
    engine = _proc.spawn(
        [engine_settings.engine.python, "-m", "scanflow_argo.platform.local_engine", str(run_dir)],
        name="engine",
        log=run_dir / "engine.log",
    )

    def succeeded() -> int:
        doc = load_status(run_dir) or {}
        nodes = (doc.get("status") or {}).get("nodes") or {}
        return sum(1 for n in nodes.values() if n.get("type") == "Pod" and n.get("phase") == "Succeeded")

    try:
        deadline = time.monotonic() + 60
        while succeeded() < finished and time.monotonic() < deadline:
            time.sleep(0.05)
        assert succeeded() == finished
        assert (run_dir / JOURNAL).read_bytes()  # the completed nodes are (at least partly) only in the journal
        os.killpg(engine.pid, signal.SIGKILL)  # kill -9: no chance to compact
        engine.popen.wait(timeout=10)
    finally:
        engine.stop(timeout=2)
    assert succeeded() == finished
    (project / "go").write_text("")
    run = resume(run_dir, engine_settings)
    assert run.phase == "Succeeded", run.message
    for i in range(finished):
        assert (project / f"i{i}").read_text() == "x\n"  # completed before the kill: not run again
    assert (project / "hold").read_text() == "x\nx\n"  # was running when killed: run again
    assert not (run_dir / JOURNAL).read_bytes()  # compacted at the run's end
