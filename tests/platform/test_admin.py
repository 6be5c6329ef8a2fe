"""The local platform's ``WorkflowAdmin`` parts without a server: selectors, the runs index, the lifecycle documents.

Selectors follow the API server (``k8s.io/apimachinery/pkg/labels/selector_test.go``: ``TestSelectorMatches``,
``TestLexerParser``; ``fields/selector_test.go``: escapes); retry, resubmit and terminate follow Argo's
``workflow/util/util.go`` (``FormulateRetryWorkflow``, ``FormulateResubmitWorkflow``) and the controller's
terminate (``workflow/controller/operator.go``: ``Stopped with strategy 'Terminate'``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from scanflow_argo.engine.core.state import JOURNAL
from scanflow_argo.errors import InvalidRequest
from scanflow_argo.platform._local import control, index
from scanflow_argo.platform._local.index import RunsIndex
from scanflow_argo.platform.selectors import FieldSelector, LabelSelector

LABELS = {"app": "mnist", "tier": "ml", "count": "3"}

SELECTORS = [
    ("", True),
    ("app=mnist", True),
    ("app==mnist", True),
    ("app=other", False),
    ("app!=other", True),
    ("missing!=x", True),  # != also matches objects without the key
    ("app in (mnist,other)", True),
    ("app in (other)", False),
    ("missing in (x)", False),
    ("app notin (other)", True),
    ("missing notin (x)", True),
    ("app", True),
    ("missing", False),
    ("!missing", True),
    ("!app", False),
    ("count>2", True),
    ("count<3", False),
    ("app=mnist,tier in (ml, web),!gone", True),
    ("app=mnist,tier=web", False),
    ("workflows.argoproj.io/phase in (Running)", False),
]


@pytest.mark.parametrize(("text", "matches"), SELECTORS)
def test_label_selectors_match_as_the_api_server_does(text: str, matches: bool) -> None:
    assert LabelSelector.parse(text).matches(LABELS) is matches


@pytest.mark.parametrize("text", ["app in (a", "app=", "a,,b", "=x", "app=in valid", "count>x", "-bad-key=x", "app=mnist,"])
def test_label_selectors_that_do_not_parse_are_refused(text: str) -> None:
    if text == "app=":  # an empty value is a valid label value
        assert LabelSelector.parse(text).matches({"app": ""})
        return
    with pytest.raises(InvalidRequest, match="label selector"):
        LabelSelector.parse(text)


def test_field_selectors_with_escapes_and_allowed_fields() -> None:
    sel = FieldSelector.parse(r"metadata.name=a\,b,metadata.namespace!=kube-system")
    assert sel.terms == (("metadata.name", "=", "a,b"), ("metadata.namespace", "!=", "kube-system"))
    assert sel.matches({"metadata.name": "a,b", "metadata.namespace": "argo"})
    assert not sel.matches({"metadata.name": "a,b", "metadata.namespace": "kube-system"})
    assert sel.value("metadata.name") == "a,b"
    with pytest.raises(InvalidRequest, match=r"unsupported requirement spec\.x=1"):
        FieldSelector.parse("spec.x=1", allowed=lambda f: f.startswith("metadata."))
    with pytest.raises(InvalidRequest, match="expected FIELD=VALUE"):
        FieldSelector.parse("metadata.name")


def write_run(
    runs: Path, name: str, phase: str = "Running", labels: dict[str, str] | None = None, created: str = "2024-01-01T00:00:00Z"
) -> None:
    folder = runs / name
    folder.mkdir(parents=True, exist_ok=True)
    doc = {
        "metadata": {"name": name, "namespace": "argo", "labels": labels or {}, "creationTimestamp": created},
        "spec": {"entrypoint": "main", "templates": [{"name": "main"}]},
        "status": {
            "phase": phase,
            "startedAt": created,
            "finishedAt": None,
            "nodes": {f"{name}-1": {"type": "Pod", "phase": "Succeeded"}, f"{name}-2": {"type": "Pod", "phase": phase}},
        },
    }
    (folder / "status.json").write_text(json.dumps(doc))


def test_runs_index_reports_changes_and_keeps_summaries_small(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    write_run(runs, "a", labels={"app": "x"}, created="2024-01-01T00:00:00Z")
    write_run(runs, "b", phase="Succeeded", created="2024-01-02T00:00:00Z")
    idx = RunsIndex(runs)
    assert sorted((c.type, c.name) for c in idx.refresh()) == [("ADDED", "a"), ("ADDED", "b")]
    assert idx.refresh() == []
    summaries = idx.summaries()
    assert [s["metadata"]["name"] for s in summaries] == ["b", "a"]  # newest first
    a = summaries[1]
    assert "nodes" not in a["status"] and "templates" not in a["spec"]
    assert a["status"]["progress"] == "1/2" and "finishedAt" not in a["status"]  # no nulls
    assert a["metadata"]["labels"] == {
        "app": "x",
        "workflows.argoproj.io/phase": "Running",
        "workflows.argoproj.io/completed": "false",
    }
    write_run(runs, "a", phase="Failed", labels={"app": "x"})
    (runs / "c").mkdir()  # a run folder still being prepared: no status yet
    shutil.rmtree(runs / "b")
    assert sorted((c.type, c.name) for c in idx.refresh()) == [("DELETED", "b"), ("MODIFIED", "a")]


def test_runs_index_sees_a_journal_line_written_within_one_mtime_tick(tmp_path: Path) -> None:
    """The engine appends its last status change (the run's end) to the journal and touches status.json; two
    writes a few ms apart can leave its mtime where it was (CI: ``latest()`` found the run still Running)."""
    runs = tmp_path / "runs"
    write_run(runs, "a")
    status = runs / "a" / "status.json"
    mtime = status.stat().st_mtime_ns
    idx = RunsIndex(runs)
    idx.refresh()
    line = {"status": {"phase": "Succeeded", "nodes": {"a-2": {"type": "Pod", "phase": "Succeeded"}}}}
    (runs / "a" / JOURNAL).write_text(json.dumps(line) + "\n")
    os.utime(status, ns=(mtime, mtime))  # the same tick
    assert [(c.type, c.summary["status"]["phase"]) for c in idx.refresh()] == [("MODIFIED", "Succeeded")]
    assert [s["metadata"]["labels"]["workflows.argoproj.io/phase"] for s in idx.summaries()] == ["Succeeded"]


def test_runs_created_within_one_second_list_newest_first(tmp_path: Path) -> None:
    """``creationTimestamp`` has whole seconds (Kubernetes' metav1.Time serializes RFC 3339 without fractions); two
    runs of one second came back in name order (CI: ``Client.latest`` gave the older of two quick runs). The run's
    folder says which was prepared last (``run.json``, written once by ``engine/api.prepare_run``)."""
    runs = tmp_path / "runs"
    for name, prepared_ns in (("z-older", 1_000_000_000), ("a-newer", 1_500_000_000)):
        write_run(runs, name, created="2024-01-01T00:00:00Z")
        (runs / name / "run.json").write_text("{}")
        os.utime(runs / name / "run.json", ns=(prepared_ns, prepared_ns))
    assert [s["metadata"]["name"] for s in RunsIndex(runs).summaries()] == ["a-newer", "z-older"]


def test_runs_index_file_is_a_cache_rebuilt_when_damaged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = tmp_path / "runs"
    for i in range(5):
        write_run(runs, f"r{i}")
    RunsIndex(runs).refresh()
    reads: list[Path] = []
    real = index.read_run
    monkeypatch.setattr(index, "read_run", lambda d: reads.append(d) or real(d))
    other = RunsIndex(runs)  # another process: its summaries come from the file, no status file is read
    assert len(other.refresh()) == 5 and reads == []
    (runs / ".index.json").write_text("{not json")
    third = RunsIndex(runs)
    assert len(third.refresh()) == 5 and len(reads) == 5  # damaged: rebuilt from the status files
    assert json.loads((runs / ".index.json").read_text())["version"] == index.INDEX_VERSION


def nodes_doc(phase: str, nodes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"metadata": {"name": "wf"}, "spec": {"arguments": {"parameters": [{"name": "p", "value": "1"}]}},
            "status": {"phase": phase, "finishedAt": "t", "message": "m", "nodes": nodes}}  # fmt: skip


STEPS = {
    "wf": {"id": "wf", "name": "wf", "displayName": "wf", "type": "Steps", "phase": "Failed", "children": ["g0"]},
    "g0": {"id": "g0", "name": "wf[0]", "displayName": "[0]", "type": "StepGroup", "phase": "Succeeded", "children": ["a"]},
    "a": {
        "id": "a",
        "name": "wf[0].a",
        "displayName": "a",
        "type": "Pod",
        "phase": "Succeeded",
        "children": ["g1"],
        "templateName": "t-a",
    },
    "g1": {"id": "g1", "name": "wf[1]", "displayName": "[1]", "type": "StepGroup", "phase": "Succeeded", "children": ["b"]},
    "b": {"id": "b", "name": "wf[1].b", "displayName": "b", "type": "Pod", "phase": "Succeeded", "children": ["g2"]},
    "g2": {"id": "g2", "name": "wf[2]", "displayName": "[2]", "type": "StepGroup", "phase": "Failed", "children": ["c"]},
    "c": {"id": "c", "name": "wf[2].c", "displayName": "c", "type": "Pod", "phase": "Failed"},
    "x": {"id": "x", "name": "wf.onExit", "displayName": "wf.onExit", "type": "Pod", "phase": "Succeeded"},
}


RETRIES = [
    # (phase, restartSuccessful, nodeFieldSelector, nodes kept) or an error message
    ("Failed", False, "", {"g0", "a", "g1", "b"}),
    ("Error", False, "", {"g0", "a", "g1", "b"}),
    ("Failed", True, "templateName=t-a", {"g0"}),  # a restarted node runs again, with what came after it
    ("Failed", True, "displayName=b", {"g0", "a", "g1"}),
    ("Succeeded", False, "", "To retry a succeeded workflow, set the options restartSuccessful and nodeFieldSelector"),
    ("Running", False, "", "Cannot retry a workflow in phase Running"),
]


@pytest.mark.parametrize(("phase", "restart", "selector", "expected"), RETRIES)
def test_retry_keeps_what_succeeded_and_drops_the_rest(phase: str, restart: bool, selector: str, expected: Any) -> None:
    doc = nodes_doc(phase, json.loads(json.dumps(STEPS)))
    if isinstance(expected, str):
        with pytest.raises(InvalidRequest, match=expected):
            control.retry_document(doc, restart, selector)
        return
    out = control.retry_document(doc, restart, selector, ["p=2"] if restart else ())
    assert set(out["status"]["nodes"]) == expected
    assert out["status"]["phase"] == "Running" and "finishedAt" not in out["status"] and "message" not in out["status"]
    for node in out["status"]["nodes"].values():
        assert all(c in out["status"]["nodes"] for c in node.get("children", []))
    if restart:
        assert out["spec"]["arguments"]["parameters"] == [{"name": "p", "value": "2"}]


def test_resubmit_and_terminate_documents() -> None:
    wf = {"metadata": {"name": "old", "namespace": "argo", "labels": {"app": "x", "workflows.argoproj.io/phase": "Failed"}, "annotations": {"a": "b"}},
          "spec": {"entrypoint": "main", "shutdown": "Terminate", "activeDeadlineSeconds": 0, "arguments": {"parameters": [{"name": "p", "value": "1"}]}}}  # fmt: skip
    new = control.resubmit_manifest(wf, ["p=5"])
    assert new["metadata"] == {
        "generateName": "old-",
        "labels": {"app": "x", "workflows.argoproj.io/resubmitted-from-workflow": "old"},
        "namespace": "argo",
        "annotations": {"a": "b"},
    }
    assert new["spec"] == {"entrypoint": "main", "arguments": {"parameters": [{"name": "p", "value": "5"}]}}
    with pytest.raises(InvalidRequest, match="memoized"):
        control.resubmit_manifest(wf, memoized=True)
    with pytest.raises(InvalidRequest, match="NAME=VALUE"):
        control.resubmit_manifest(wf, ["oops"])
    done = control.terminated_document(
        nodes_doc("Running", {"a": {"phase": "Succeeded"}, "b": {"phase": "Running"}}), "2024-01-01T00:00:00Z"
    )
    assert done["status"]["phase"] == "Failed" and done["status"]["message"] == "Stopped with strategy 'Terminate'"
    assert done["status"]["nodes"]["a"]["phase"] == "Succeeded" and done["status"]["nodes"]["b"]["phase"] == "Failed"
