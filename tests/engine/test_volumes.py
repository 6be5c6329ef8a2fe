"""Volumes and init containers in the local engine, run as a user runs workflows: real engine, real
sandbox (bubblewrap), real files. Kubernetes/Argo semantics: emptyDir per pod, claim templates per
run (removed per volumeClaimGC), existing claims persist, configMap/secret volumes read-only."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from scanflow_argo.engine import run_workflow
from scanflow_argo.engine.core.state import read_status
from scanflow_argo.errors import EngineError, NotSupportedLocally
from scanflow_argo.settings import Settings

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed: mounts need the sandbox")


def wf(templates: list[dict], entrypoint: str = "main", **spec: object) -> dict:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "vol-"},
        "spec": {"entrypoint": entrypoint, "templates": templates, **spec},
    }


def sh(name: str, script: str, mounts: list[dict] | None = None, **extra: object) -> dict:
    body: dict = {"image": "busybox", "command": ["sh", "-c"], "args": [script]}
    if mounts:
        body["volumeMounts"] = mounts
    return {"name": name, "container": body, **extra}


def mount(name: str, path: str, **extra: object) -> dict:
    return {"name": name, "mountPath": path, **extra}


def steps(*groups: list[dict]) -> dict:
    return {"name": "main", "steps": [list(g) for g in groups]}


CLAIM = {"metadata": {"name": "work"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}


def claim_folder(settings: Settings, run_name: str) -> Path:
    return settings.home / "runs" / run_name / "volumes" / f"{run_name}-work"


# -- volumeClaimTemplates ----------------------------------------------------------------------


@needs_bwrap
def test_a_claim_template_is_shared_by_the_steps_of_a_run_and_removed_when_it_succeeds(engine_settings) -> None:  # type: ignore[no-untyped-def]
    manifest = wf(
        [
            steps([{"name": "write", "template": "write"}], [{"name": "read", "template": "read"}]),
            sh("write", "echo hello > /mnt/vol/msg.txt", [mount("work", "/mnt/vol")]),
            sh("read", "cat /mnt/vol/msg.txt", [mount("work", "/mnt/vol")]),
        ],
        volumeClaimTemplates=[CLAIM],
    )
    run = run_workflow(manifest, engine_settings)
    assert run.phase == "Succeeded", run.message
    assert run.node("read").outputs["result"] == "hello"
    # Argo's default volumeClaimGC (OnWorkflowSuccess) deletes the PVC of a succeeded run
    assert not claim_folder(engine_settings, run.name).exists()
    status = read_status(engine_settings.home / "runs" / run.name)["status"]
    assert "persistentVolumeClaims" not in status


@needs_bwrap
@pytest.mark.parametrize(("strategy", "kept"), [(None, True), ("OnWorkflowCompletion", False)])
def test_a_failed_run_keeps_its_claim_unless_gc_is_on_completion(engine_settings, strategy, kept) -> None:  # type: ignore[no-untyped-def]
    gc = {"volumeClaimGC": {"strategy": strategy}} if strategy else {}
    manifest = wf(
        [
            steps([{"name": "write", "template": "write"}]),
            sh("write", "echo partial > /mnt/vol/msg.txt; exit 3", [mount("work", "/mnt/vol")]),
        ],
        volumeClaimTemplates=[CLAIM],
        **gc,
    )
    run = run_workflow(manifest, engine_settings)
    assert run.phase == "Failed"
    folder = claim_folder(engine_settings, run.name)
    assert folder.exists() is kept
    if kept:  # there for a retry of the failed run, with what it wrote, and listed as Argo lists it
        assert (folder / "msg.txt").read_text() == "partial\n"
        status = read_status(engine_settings.home / "runs" / run.name)["status"]
        assert status["persistentVolumeClaims"] == [{"name": "work", "persistentVolumeClaim": {"claimName": f"{run.name}-work"}}]


# -- emptyDir, subPath, readOnly -----------------------------------------------------------------


@needs_bwrap
def test_an_empty_dir_is_private_to_each_pod_and_outputs_can_come_from_it(engine_settings) -> None:  # type: ignore[no-untyped-def]
    manifest = wf(
        [
            steps(
                [
                    {
                        "name": "w",
                        "template": "w",
                        "arguments": {"parameters": [{"name": "who", "value": "{{item}}"}]},
                        "withItems": ["a", "b"],
                    }
                ]
            ),
            {
                **sh(
                    "w",
                    "echo {{inputs.parameters.who}} > /scratch/f; sleep 0.3; cat /scratch/f; ls /scratch | tr '\\n' ' '",
                    [mount("scratch", "/scratch")],
                ),
                "inputs": {"parameters": [{"name": "who"}]},
                "outputs": {"parameters": [{"name": "f", "valueFrom": {"path": "/scratch/f"}}]},
            },
        ],
        volumes=[{"name": "scratch", "emptyDir": {}}],
    )
    run = run_workflow(manifest, engine_settings)
    assert run.phase == "Succeeded", run.message
    by_item = {n.display_name: n for n in run.nodes.values() if n.type == "Pod"}
    # both wrote /scratch/f at the same time: each reads back only its own
    assert by_item["w(0:a)"].outputs["result"] == "a\nf"
    assert by_item["w(1:b)"].outputs["result"] == "b\nf"
    assert by_item["w(0:a)"].parameters()["f"] == "a"
    # the pod is over: its emptyDir is gone
    assert not list((engine_settings.home / "runs" / run.name / "nodes").glob("*/volumes/scratch"))


@needs_bwrap
def test_sub_path_and_read_only_mounts(engine_settings) -> None:  # type: ignore[no-untyped-def]
    manifest = wf(
        [
            steps(
                [{"name": "write-sub", "template": "write-sub"}],
                [{"name": "read-all", "template": "read-all"}],
                [{"name": "write-ro", "template": "write-ro", "continueOn": {"failed": True}}],
            ),
            sh("write-sub", "echo in-sub > /data/f", [mount("work", "/data", subPath="part/one")]),
            sh("read-all", "cat /all/part/one/f", [mount("work", "/all", readOnly=True)]),
            sh("write-ro", "echo no > /all/g", [mount("work", "/all", readOnly=True)]),
        ],
        volumeClaimTemplates=[CLAIM],
    )
    run = run_workflow(manifest, engine_settings)
    assert run.node("read-all").outputs["result"] == "in-sub"
    assert run.node("write-ro").phase == "Failed"
    assert run.phase == "Succeeded", run.message  # continueOn.failed


# -- existing claims, configMap and secret volumes -----------------------------------------------


@needs_bwrap
def test_an_existing_claim_persists_across_runs_and_a_missing_one_is_refused_first(engine_settings) -> None:  # type: ignore[no-untyped-def]
    manifest = wf(
        [sh("main", "echo run >> /mnt/vol/log; wc -l < /mnt/vol/log", [mount("data", "/mnt/vol")])],
        volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "shared-data"}}],
    )
    with pytest.raises(
        EngineError, match=r"persistentVolumeClaim 'shared-data' not found .*mkdir -p .*volumes/default/shared-data"
    ):
        run_workflow(manifest, engine_settings)
    assert not (engine_settings.home / "runs").exists() or not list((engine_settings.home / "runs").iterdir())
    folder = engine_settings.home / "volumes" / "default" / "shared-data"
    folder.mkdir(parents=True)
    first = run_workflow(manifest, engine_settings)
    second = run_workflow(manifest, engine_settings)
    assert (first.phase, second.phase) == ("Succeeded", "Succeeded"), second.message
    assert (first.node(first.name).outputs["result"], second.node(second.name).outputs["result"]) == ("1", "2")
    assert (folder / "log").read_text() == "run\nrun\n"
    # a claim named by a workflow parameter resolves when the pod starts
    templated = wf(
        manifest["spec"]["templates"],
        volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "{{workflow.parameters.claim}}"}}],
        arguments={"parameters": [{"name": "claim", "value": "shared-data"}]},
    )
    third = run_workflow(templated, engine_settings)
    assert third.node(third.name).outputs["result"] == "3", third.message


@needs_bwrap
def test_config_map_and_secret_volumes(engine_settings) -> None:  # type: ignore[no-untyped-def]
    cm = engine_settings.home / "configmaps" / "app-config"
    cm.mkdir(parents=True)
    (cm / "mode").write_text("fast")
    (cm / "level").write_text("3")
    secret = engine_settings.home / "secrets" / "creds"
    secret.mkdir(parents=True)
    (secret / "token").write_text("s3cr3t")
    manifest = wf(
        [
            steps(
                [{"name": "read", "template": "read"}],
                [{"name": "write", "template": "write", "continueOn": {"failed": True}}],
            ),
            sh(
                "read",
                "cat /cfg/mode /cfg/level; echo; cat /pick/sub/m.txt; echo; cat /sec/token; echo; ls -A /opt-none | wc -l",
                [mount("cfg", "/cfg"), mount("pick", "/pick"), mount("sec", "/sec"), mount("none", "/opt-none")],
            ),
            sh("write", "echo x > /cfg/mode", [mount("cfg", "/cfg")]),
        ],
        volumes=[
            {"name": "cfg", "configMap": {"name": "app-config"}},
            {"name": "pick", "configMap": {"name": "app-config", "items": [{"key": "mode", "path": "sub/m.txt"}]}},
            {"name": "sec", "secret": {"secretName": "creds", "defaultMode": 0o400}},
            {"name": "none", "secret": {"secretName": "absent", "optional": True}},
        ],
    )
    run = run_workflow(manifest, engine_settings)
    assert run.node("read").outputs["result"] == "fast3\nfast\ns3cr3t\n0"
    assert run.node("write").phase == "Failed"  # configMap volumes are read-only
    assert (cm / "mode").read_text() == "fast"
    # projected secret files do not outlive the pod
    assert not list((engine_settings.home / "runs" / run.name).rglob("token"))


# -- refusals ------------------------------------------------------------------------------------


def test_bad_volume_declarations_are_clear_errors(engine_settings) -> None:  # type: ignore[no-untyped-def]
    # a mount naming no volume is Kubernetes' refusal of the pod, when Argo creates it: the node errors and, being the
    # entrypoint, the workflow says so as Argo's operator.go does (e2e TestWorkflowTemplateInvalidEntryPoint)
    undeclared = wf([sh("main", "true", [mount("nope", "/mnt/x")])], volumes=[{"name": "scratch", "emptyDir": {}}])
    run = run_workflow(undeclared, engine_settings)
    assert run.phase == "Error" and run.node(run.name).phase == "Error"
    assert re.search(
        r"^error in entry template execution: .*volumeMount 'nope' .* names no declared volume \(declared: scratch\)",
        run.message or "",
    )
    # as an exit handler: "error in exit template execution : …" (TestWorkflowTemplateInvalidOnExit)
    exit_bad = wf([sh("main", "true"), sh("bye", "true", [mount("nope", "/mnt/x")])], onExit="bye")
    run = run_workflow(exit_bad, engine_settings)
    assert run.phase == "Error" and (run.message or "").startswith("error in exit template execution : ")
    host = wf([sh("main", "true", [mount("h", "/mnt/x")])], volumes=[{"name": "h", "hostPath": {"path": "/etc"}}])
    with pytest.raises(NotSupportedLocally, match="hostPath volume 'h'"):
        run_workflow(host, engine_settings)
    gc = wf([sh("main", "true")], volumeClaimGC={"strategy": "Sometimes"})
    with pytest.raises(EngineError, match=r"volumeClaimGC\.strategy 'Sometimes'"):
        run_workflow(gc, engine_settings)
    no_sandbox = replace(engine_settings, engine=replace(engine_settings.engine, sandbox="none"))
    scratch = wf([sh("main", "true", [mount("s", "/mnt/x")])], volumes=[{"name": "s", "emptyDir": {}}])
    with pytest.raises(NotSupportedLocally, match="apt-get install bubblewrap"):
        run_workflow(scratch, no_sandbox)


# -- init containers -----------------------------------------------------------------------------


@needs_bwrap
def test_init_containers_run_first_with_the_pods_volumes(engine_settings) -> None:  # type: ignore[no-untyped-def]
    main = sh("main", "cat /data/a /data/b", [mount("w", "/data")])
    main["initContainers"] = [
        {
            "name": "one",
            "image": "alpine:3.23",
            "command": ["sh", "-c", "echo from-one > /data/a; echo one-says-hi"],
            "mirrorVolumeMounts": True,
        },
        {
            "name": "two",
            "image": "python:3.11",
            "command": ["python", "-c", "open('/w2/b','w').write('from-two')"],
            "volumeMounts": [mount("w", "/w2")],
        },
    ]
    run = run_workflow(wf([main], volumes=[{"name": "w", "emptyDir": {}}]), engine_settings)
    assert run.phase == "Succeeded", run.message
    assert run.node(run.name).outputs["result"] == "from-one\nfrom-two"
    node_dir = engine_settings.home / "runs" / run.name / "nodes" / run.node(run.name).id
    assert (node_dir / "init-one.log").read_text() == "one-says-hi\n"


@needs_bwrap
def test_a_failing_init_container_fails_the_node_and_the_main_container_never_runs(engine_settings) -> None:  # type: ignore[no-untyped-def]
    main = sh("main", "echo main-ran > /keep/ran", [mount("keep", "/keep")])
    main["initContainers"] = [{"name": "check", "image": "busybox", "command": ["sh", "-c", "echo nope >&2; exit 4"]}]
    folder = engine_settings.home / "volumes" / "default" / "keep"
    folder.mkdir(parents=True)
    run = run_workflow(wf([main], volumes=[{"name": "keep", "persistentVolumeClaim": {"claimName": "keep"}}]), engine_settings)
    assert run.phase == "Failed"
    pod = run.node(run.name)
    # Argo's words: a user's init container is ranked first and named (operator.go inferFailedReason)
    assert pod.phase == "Failed" and pod.message == "check: Error (exit code 4)"
    assert not (folder / "ran").exists()
    node_dir = engine_settings.home / "runs" / run.name / "nodes" / pod.id
    assert (node_dir / "init-check.log").read_text() == "nope\n"


def test_init_containers_without_mounts_run_without_the_sandbox_too(engine_settings) -> None:  # type: ignore[no-untyped-def]
    no_sandbox = replace(engine_settings, engine=replace(engine_settings.engine, sandbox="none"))
    main = sh("main", "echo main")
    main["initContainers"] = [{"name": "first", "image": "busybox", "command": ["sh", "-c", "echo first"]}]
    run = run_workflow(wf([main]), no_sandbox)
    assert run.phase == "Succeeded", run.message
    node_dir = engine_settings.home / "runs" / run.name / "nodes" / run.node(run.name).id
    assert (node_dir / "init-first.log").read_text() == "first\n"


@needs_bwrap
def test_mount_points_under_folders_shared_with_the_host_are_made_in_the_node_never_on_the_host(engine_settings) -> None:  # type: ignore[no-untyped-def]
    # /etc is this machine's, shared with the node: the mount point is made in the node's own /etc (the host's
    # entries bound back into it), as a pod's image would have it; nothing appears in this machine's /etc
    tmpl = sh(
        "main",
        "echo data > /etc/scanflow-not-there/f; cat /etc/scanflow-not-there/f; test -e /etc/passwd",
        [mount("s", "/etc/scanflow-not-there")],
    )
    run = run_workflow(wf([tmpl], volumes=[{"name": "s", "emptyDir": {}}]), engine_settings)
    assert run.phase == "Succeeded" and run.node(run.name).outputs["result"] == "data"
    assert not Path("/etc/scanflow-not-there").exists()
    tmpl = sh("main", "true", [mount("s", "/")])
    run = run_workflow(wf([tmpl], volumes=[{"name": "s", "emptyDir": {}}]), engine_settings)
    assert run.phase == "Error" and "cannot be mounted at /" in (run.node(run.name).message or "")
