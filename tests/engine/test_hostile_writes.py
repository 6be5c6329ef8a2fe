"""Hostile inputs must not write outside the run (issue #13): root can write anywhere, so the engine must not.

A node may only write inside its own root and its mounts, as a pod writes only in its own filesystem: an input
artifact's name or path, a working directory or a mount point under a folder the node shares with this machine
(``/usr``, ``/etc``…) lands in the node's root (those folders' entries bound back around it), this machine's
system folders are read-only to the node, and stored artifacts are never more readable than their source.
"""

from __future__ import annotations

import itertools
import shutil
import stat
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from scanflow_argo.engine import run_workflow
from scanflow_argo.engine.features.sandbox import Sandbox
from scanflow_argo.settings import Settings

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap (apt-get install bubblewrap)")


def wf(template: dict, **spec: object) -> dict:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "hostile-"},
        "spec": {"entrypoint": "main", "templates": [{"name": "main", **template}], **spec},
    }


def shell(script: str, **container: object) -> dict:
    return {"container": {"image": "busybox", "command": ["sh", "-c"], "args": [script], **container}}


@pytest.fixture
def marker() -> str:
    """A name no host file has; the test checks this machine never gets it."""
    return f"scanflow-hostile-{uuid.uuid4().hex[:10]}"


def gone(*paths: str) -> None:
    left = [p for p in paths if Path(p).exists() or Path(p).is_symlink()]
    for p in left:  # the test failed: clean this machine up before saying so
        if Path(p).is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            Path(p).unlink(missing_ok=True)
    assert not left, f"written on this machine: {left}"


@needs_bwrap
def test_an_input_artifact_name_cannot_lead_outside_the_run(engine_settings: Settings, marker: str) -> None:
    name = "../" * 30 + f"var/tmp/{marker}"  # the old staging joined <node>/inputs/<name> as it was
    tmpl = shell(f"cat /usr/share/{marker}")
    tmpl["inputs"] = {"artifacts": [{"name": name, "path": f"/usr/share/{marker}", "raw": {"data": "planted"}}]}
    run = run_workflow(wf(tmpl), engine_settings)
    gone(f"/var/tmp/{marker}", f"/usr/share/{marker}")
    if run.phase == "Succeeded":
        assert run.node(run.name).outputs["result"] == "planted"  # in the node's own /usr/share


@needs_bwrap
@pytest.mark.parametrize("folder", ["/etc", "/usr/share", "/var/lib"])
def test_an_input_artifact_under_a_shared_folder_is_the_nodes_own(engine_settings: Settings, marker: str, folder: str) -> None:
    tmpl = shell(f"cat {folder}/{marker}; echo; test -r /etc/passwd && echo host-entries-still-there")
    tmpl["inputs"] = {"artifacts": [{"name": "a", "path": f"{folder}/{marker}", "raw": {"data": "mine"}}]}
    run = run_workflow(wf(tmpl), engine_settings)
    gone(f"{folder}/{marker}")
    assert run.phase == "Succeeded", run.node(run.name).message
    assert run.node(run.name).outputs["result"] == "mine\nhost-entries-still-there"


@needs_bwrap
def test_a_working_directory_is_made_in_the_node_not_on_the_host(engine_settings: Settings, marker: str) -> None:
    run = run_workflow(wf(shell("pwd; echo x > here; cat here", workingDir=f"/usr/{marker}/b")), engine_settings)
    gone(f"/usr/{marker}")
    assert run.phase == "Succeeded", run.node(run.name).message
    assert run.node(run.name).outputs["result"] == f"/usr/{marker}/b\nx"


@needs_bwrap
def test_the_hosts_system_folders_are_read_only_to_a_node(engine_settings: Settings, marker: str) -> None:
    script = f"for d in /usr /etc /var/lib; do touch $d/{marker} 2>/dev/null && echo wrote-$d; done; echo done"
    run = run_workflow(wf(shell(script)), engine_settings)
    gone(f"/usr/{marker}", f"/etc/{marker}", f"/var/lib/{marker}")
    assert run.phase == "Succeeded" and run.node(run.name).outputs["result"] == "done"


def test_unisolated_an_input_outside_tmp_is_refused_not_written(engine_settings: Settings, marker: str) -> None:
    s = replace(engine_settings, engine=replace(engine_settings.engine, sandbox="none"))
    tmpl = shell("true")
    tmpl["inputs"] = {"artifacts": [{"name": "a", "path": f"/etc/{marker}", "raw": {"data": "x"}}]}
    run = run_workflow(wf(tmpl), s)
    gone(f"/etc/{marker}")
    node = run.node(run.name)
    assert node.phase == "Error" and "bubblewrap" in (node.message or "") and f"/etc/{marker}" in (node.message or "")


@needs_bwrap
def test_a_stored_artifact_is_no_more_readable_than_its_source(engine_settings: Settings) -> None:
    tmpl = shell("umask 077; echo secret > /tmp/s; echo open > /tmp/o; chmod 644 /tmp/o")
    tmpl["outputs"] = {
        "artifacts": [
            {"name": "s", "path": "/tmp/s"},
            {"name": "o", "path": "/tmp/o"},
            {"name": "raw", "path": "/tmp/s", "archive": {"none": {}}},
        ]
    }
    run = run_workflow(wf(tmpl), engine_settings)
    assert run.phase == "Succeeded", run.node(run.name).message
    repo = engine_settings.home / "artifacts"
    assert stat.S_IMODE(repo.stat().st_mode) == 0o700
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in repo.rglob("*") if p.is_file()}
    assert modes == {"s.tgz": 0o600, "o.tgz": 0o644, "raw.tgz": 0o600}, modes


@needs_bwrap
def test_what_nodes_need_from_a_system_folder_stays_read_only_there(engine_settings: Settings, tmp_path: Path) -> None:
    """An interpreter under /usr (a system Python) is needed by nodes: it is readable, never made writable."""
    sandbox = Sandbox(engine_settings, [Path("/usr/lib"), tmp_path / "project"])
    fs = sandbox.prepare(tmp_path / "node")
    argv = sandbox.wrap(["true"], fs, [], "/")
    pairs = list(itertools.pairwise(argv))
    assert ("--ro-bind", "/usr") in pairs and ("--bind", "/usr/lib") not in pairs and ("--bind", "/usr") not in pairs
