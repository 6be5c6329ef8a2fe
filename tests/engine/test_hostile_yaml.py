"""A YAML alias bomb ("billion laughs") is refused while it is read, with one line naming the document and the
bound, before a run folder exists (issue #13, "Unbounded growth").

The API server reads manifests with go-yaml through ``sigs.k8s.io/yaml``, which refuses "excessive aliasing"
(go-yaml ``decode.go`` ``allowedAliasRatio``, the fix of CVE-2019-11253); every reader of manifests here goes
through ``engine/core/manifest.py``'s ``KubeLoader``, which counts each document's nodes, aliases at full size.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scanflow_argo.engine import run_workflow
from scanflow_argo.engine.core.manifest import MAX_YAML_NODES, load_documents, load_yaml
from scanflow_argo.errors import ScanflowError
from scanflow_argo.platform.apply import load_sources
from scanflow_argo.settings import Settings


def bomb(levels: int = 9, width: int = 10) -> str:
    """A Workflow whose one parameter value expands to ``width ** levels`` strings from ~600 bytes."""
    anchors = ["  a0: &a0 [" + ",".join(['"lol"'] * width) + "]"]
    anchors += [f"  a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels + 1)]
    return (
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {generateName: bomb-}\n"
        "x-anchors:\n" + "\n".join(anchors) + "\n"
        "spec:\n  entrypoint: main\n  templates:\n  - name: main\n"
        f"    container: {{image: busybox, command: [echo], args: [*a{levels}]}}\n"
    )


def test_a_small_document_with_aliases_still_reads() -> None:
    assert load_yaml("a: &x [1, 2]\nb: *x\n") == {"a": [1, 2], "b": [1, 2]}
    assert len(bomb(levels=4)) < 1000 and load_documents(bomb(levels=4))  # 10**4 nodes: fine


@pytest.mark.parametrize(
    "read",
    [
        pytest.param(lambda path, settings: load_documents(path), id="engine load_documents"),
        pytest.param(lambda path, settings: run_workflow(path, settings), id="engine run_workflow"),
        pytest.param(lambda path, settings: load_sources([str(path)], cwd=path.parent), id="platform apply"),
    ],
)
def test_an_alias_bomb_is_refused_in_one_line_and_leaves_no_run(read, tmp_path: Path, engine_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb())
    assert len(path.read_bytes()) < 1000
    with pytest.raises(ScanflowError) as err:
        read(path, engine_settings)
    message = str(err.value)
    assert "\n" not in message
    assert str(path) in message and f"{MAX_YAML_NODES:,} YAML nodes" in message
    assert not list(tmp_path.rglob("workflow.yaml")) and not list(tmp_path.rglob("status.json"))
