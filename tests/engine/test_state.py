"""The status document's incremental serialisation: cached node JSON is dropped by every change."""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path

from scanflow_argo.clock import ManualClock
from scanflow_argo.engine.core.state import NodeDoc, RunState, read_status


def _state(tmp_path: Path) -> RunState:
    wf = {"metadata": {"name": "wf"}, "spec": {"entrypoint": "main", "templates": [{"name": "main"}]}}
    return RunState(tmp_path, wf, ManualClock())


def _on_disk(tmp_path: Path) -> dict:
    return read_status(tmp_path)  # status.json with its journal applied


def test_every_kind_of_change_reaches_the_file(tmp_path: Path) -> None:
    state = _state(tmp_path)
    root = state.put({"id": "wf", "name": "wf", "phase": "Running"})
    node = state.put({"id": "wf-1", "name": "wf.a", "phase": "Pending"}, write=False)
    state.add_child("wf", "wf-1")
    state.write()
    assert _on_disk(tmp_path)["status"]["nodes"]["wf"]["children"] == ["wf-1"]
    changes = [
        lambda: node.__setitem__("phase", "Running"),
        lambda: node.update(message="hi"),
        lambda: node.setdefault("outputs", {"result": "x"}),
        lambda: node.pop("message"),
        lambda: node.__delitem__("outputs"),
        lambda: root.__ior__({"phase": "Succeeded"}),
    ]
    for change in changes:
        change()
        state.write()
        assert _on_disk(tmp_path) == json.loads(json.dumps(state.doc, default=str))
    assert state.render() == json.dumps(state.doc, separators=(",", ":"), default=str)


def test_a_nested_change_needs_touch(tmp_path: Path) -> None:
    state = _state(tmp_path)
    node = state.put({"id": "wf-1", "outputs": {"parameters": []}})
    node["outputs"]["parameters"].append({"name": "p", "value": "1"})  # in place: the cache cannot see it
    node.touch()
    state.write()
    assert _on_disk(tmp_path)["status"]["nodes"]["wf-1"]["outputs"]["parameters"] == [{"name": "p", "value": "1"}]


def test_node_docs_copy_and_pickle_as_plain_data(tmp_path: Path) -> None:
    node = NodeDoc({"id": "x", "children": ["a"]})
    node.to_json()
    for other in (copy.copy(node), copy.deepcopy(node), pickle.loads(pickle.dumps(node)), node.copy()):
        assert other == node and isinstance(other, NodeDoc)
        other["phase"] = "Failed"
        assert json.loads(other.to_json())["phase"] == "Failed"
        assert "phase" not in json.loads(node.to_json())
