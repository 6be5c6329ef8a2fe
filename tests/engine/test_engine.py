"""The local engine run as a user would: real processes, real sandbox, real files on disk."""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest

from scanflow_argo.clock import ManualClock
from scanflow_argo.engine import prepare_run, run_workflow
from scanflow_argo.engine.core.durations import argo_seconds, go_seconds, int_seconds, timeout_seconds
from scanflow_argo.engine.core.state import node_id, read_status
from scanflow_argo.engine.features.images import image_of, strip_image
from scanflow_argo.engine.kinds import container as container_kind
from scanflow_argo.engine.kinds import container_set as container_set_kind
from scanflow_argo.errors import EngineError, ImageNotMapped, NotSupportedLocally

HAVE_BWRAP = shutil.which("bwrap") is not None


def wf(templates: list[dict], entrypoint: str = "main", **spec: object) -> dict:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "t-"},
        "spec": {"entrypoint": entrypoint, "templates": templates, **spec},
    }


def sh(name: str, script: str, **extra: object) -> dict:
    return {"name": name, "container": {"image": "busybox", "command": ["sh", "-c"], "args": [script]}, **extra}


def node(run, display: str):  # type: ignore[no-untyped-def]
    return run.node(display)


# -- small pure pieces --------------------------------------------------------------------------


def test_node_ids_are_argo_fnv_hashes() -> None:
    assert node_id("wf", "wf") == "wf"
    a, b = node_id("wf", "wf.A"), node_id("wf", "wf.B")
    assert a != b and a.startswith("wf-") and a == node_id("wf", "wf.A")


@pytest.mark.parametrize(
    ("parse", "text", "seconds"),
    [
        # suspend.duration, backoff.*: wfv1.ParseStringToDuration (pkg/apis/workflow/v1alpha1/utils.go)
        (argo_seconds, "90", 90.0),
        (argo_seconds, "1m30s", 90.0),
        (argo_seconds, "500ms", 0.5),
        (argo_seconds, "300us", 0.0003),
        (argo_seconds, "-1s", -1.0),
        (argo_seconds, "1.5h", 5400.0),
        (argo_seconds, "1d", 'unknown unit "d"'),
        (argo_seconds, "1.5", "missing unit"),
        (argo_seconds, "soon", "invalid duration"),
        # timeout: time.ParseDuration, a whole number refused (workflow/validate/validate.go)
        (timeout_seconds, "30s", 30.0),
        (timeout_seconds, "30", "invalid duration format in timeout"),
        # containerSet retryStrategy.duration: time.ParseDuration (container_set_template_types.go)
        (go_seconds, "2ms", 0.002),
        (go_seconds, "2", "missing unit"),
        # activeDeadlineSeconds: intstr.Int64 (workflowpod.go)
        (int_seconds, "30", 30),
        (int_seconds, 30, 30),
        (int_seconds, "1m", "cannot be resolved to an int"),
    ],
)
def test_durations_follow_argo_per_field(parse, text, seconds) -> None:  # type: ignore[no-untyped-def]
    if isinstance(seconds, str):
        with pytest.raises(EngineError, match=f"^retry: .*{seconds}"):
            parse(text, "retry")
    else:
        assert parse(text, "retry") == seconds


def test_images() -> None:
    assert strip_image("docker.io/library/python:3.11@sha256:abc") == "python"
    assert image_of("python:alpine3.23", {}).runtime == "python"
    assert image_of("argoproj/argosay:v2", {}).entrypoint == ("/argosay",)
    assert image_of("myorg/trainer:1", {"myorg/trainer": "python"}).runtime == "python"
    with pytest.raises(ImageNotMapped, match=r"redis.*SCANFLOW_ENGINE_IMAGE_MAP"):
        image_of("redis:7", {})


# -- semantics ------------------------------------------------------------------------------------


def test_steps_parameters_results_and_scripts(engine_settings) -> None:  # type: ignore[no-untyped-def]
    manifest = wf(
        [
            {
                "name": "main",
                "inputs": {"parameters": [{"name": "who"}]},
                "steps": [
                    [{"name": "gen", "template": "gen"}],
                    [
                        {
                            "name": "show",
                            "template": "show",
                            "arguments": {
                                "parameters": [
                                    {"name": "n", "value": "{{steps.gen.outputs.result}}"},
                                    {"name": "who", "value": "{{inputs.parameters.who}}"},
                                ]
                            },
                        },
                        {"name": "file", "template": "file"},
                    ],
                    [
                        {
                            "name": "echo-item",
                            "template": "show",
                            "arguments": {
                                "parameters": [
                                    {"name": "n", "value": "{{item}}"},
                                    {"name": "who", "value": "{{steps.file.outputs.parameters.word}}"},
                                ]
                            },
                            "withItems": [1, 2, 3],
                        }
                    ],
                ],
                "outputs": {
                    "parameters": [{"name": "final", "valueFrom": {"parameter": "{{steps.file.outputs.parameters.word}}"}}]
                },
            },
            {"name": "gen", "script": {"image": "python:3.11", "command": ["python"], "source": "print(6 * 7)"}},
            {
                "name": "show",
                "inputs": {"parameters": [{"name": "n"}, {"name": "who"}]},
                "container": {
                    "image": "alpine:3.23",
                    "command": ["echo"],
                    "args": ["{{inputs.parameters.who}}:{{inputs.parameters.n}}"],
                },
            },
            {
                **sh("file", "printf lemon > /tmp/word.txt"),
                "outputs": {"parameters": [{"name": "word", "valueFrom": {"path": "/tmp/word.txt"}}]},
            },
        ],
        arguments={"parameters": [{"name": "who", "value": "ada"}]},
    )
    run = run_workflow(manifest, engine_settings)
    assert run.phase == "Succeeded", run.message
    assert node(run, "show").outputs["result"] == "ada:42"
    assert sorted(n.outputs["result"] for n in run.nodes.values() if n.display_name.startswith("echo-item(")) == [
        "lemon:1",
        "lemon:2",
        "lemon:3",
    ]
    assert node(run, run.name).parameters()["final"] == "lemon"
    status = read_status(engine_settings.home / "runs" / run.name)
    assert status["kind"] == "Workflow" and status["status"]["phase"] == "Succeeded"
    assert all(
        {"id", "displayName", "type", "phase", "startedAt", "finishedAt"} <= set(n) for n in status["status"]["nodes"].values()
    )


def test_dag_depends_failfast_and_continue_on(engine_settings) -> None:  # type: ignore[no-untyped-def]
    manifest = wf(
        [
            {
                "name": "main",
                "dag": {
                    "failFast": False,
                    "tasks": [
                        {"name": "A", "template": "ok"},
                        {"name": "B", "template": "bad", "depends": "A"},
                        {"name": "handled", "template": "ok", "depends": "B.Failed"},
                        {"name": "skipped", "template": "ok", "depends": "B.Succeeded"},
                        {"name": "C", "template": "bad", "depends": "A"},
                        {"name": "after-c", "template": "ok", "depends": "C.Succeeded || C.Failed"},
                    ],
                },
            },
            sh("ok", "exit 0"),
            sh("bad", "exit 3"),
        ]
    )
    run = run_workflow(manifest, engine_settings)
    # 'skipped' is an omitted leaf whose branch carries B's failure: the DAG fails, as on Argo
    assert run.phase == "Failed"
    phases = {n.display_name: n.phase for n in run.nodes.values()}
    assert phases["handled"] == "Succeeded" and phases["skipped"] == "Omitted" and phases["after-c"] == "Succeeded"
    assert node(run, "B").outputs["exitCode"] == "3"
    # continueOn goes with `dependencies` (Argo 4's CRD refuses it beside `depends`): C's failure fails nothing
    # (Argo's examples/dag-continue-on-fail.yaml)
    tasks = [
        {"name": "A", "template": "ok"},
        {"name": "C", "template": "bad", "dependencies": ["A"], "continueOn": {"failed": True}},
        {"name": "after-c", "template": "ok", "dependencies": ["C"]},
    ]
    run = run_workflow(wf([{"name": "main", "dag": {"tasks": tasks}}, sh("ok", "exit 0"), sh("bad", "exit 3")]), engine_settings)
    phases = {n.display_name: n.phase for n in run.nodes.values()}
    assert (run.phase, phases["C"], phases["after-c"]) == ("Succeeded", "Failed", "Succeeded")


def test_retries_with_backoff_use_the_clock(engine_settings) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock()
    manifest = wf(
        [
            {
                "name": "main",
                "retryStrategy": {"limit": "4", "backoff": {"duration": "1", "factor": "2"}},
                "script": {
                    "image": "python:3.11",
                    "command": ["python"],
                    "source": "import sys; sys.exit(0 if {{retries}} >= 2 else 1)",
                },
            }
        ]
    )
    start = clock.monotonic()
    run = run_workflow(manifest, engine_settings, clock=clock)
    assert run.phase == "Succeeded"
    attempts = sorted(n.display_name for n in run.nodes.values() if n.type == "Pod")
    assert attempts == [f"{run.name}(0)", f"{run.name}(1)", f"{run.name}(2)"]
    assert [run.node(a).phase for a in attempts] == ["Failed", "Failed", "Succeeded"]
    assert clock.monotonic() - start >= 3.0  # 1 s then 2 s of backoff, slept through the clock


def test_retry_policy_and_limit(engine_settings) -> None:  # type: ignore[no-untyped-def]
    manifest = wf([{**sh("main", "exit 1"), "retryStrategy": {"limit": 2, "retryPolicy": "OnError"}}])
    run = run_workflow(manifest, engine_settings)
    assert run.phase == "Failed"
    assert sum(1 for n in run.nodes.values() if n.type == "Pod") == 1  # a failure is not an error: no retry


def test_timeouts_kill_the_process_group(engine_settings) -> None:  # type: ignore[no-untyped-def]
    manifest = wf([{**sh("main", "sleep 30 & sleep 30"), "activeDeadlineSeconds": 1}])
    t0 = time.monotonic()
    run = run_workflow(manifest, engine_settings)
    assert time.monotonic() - t0 < 15
    assert run.phase == "Failed" and "deadline" in (node(run, run.name).message or "")


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        (container_kind, {"container": {"image": "busybox", "command": ["true"]}}),
        (container_set_kind, {"containerSet": {"containers": [{"name": "main", "image": "busybox", "command": ["true"]}]}}),
    ],
    ids=["container", "containerSet"],
)
def test_a_pod_holds_its_parallelism_slot_until_its_node_is_recorded(engine_settings, monkeypatch, kind, body) -> None:  # type: ignore[no-untyped-def]
    """operator.go countActivePods counts Pod nodes whose phase is Pending or Running, so a pod whose
    process has ended still counts until its node completes; no status may show more than ``parallelism``
    pods Running (CI saw 3 of 2 in TestWorkflowParallelismLimit). Collecting outputs is made slow here so the
    window between a process's end and its node's record is wide."""
    real = kind.collect_outputs

    def slow_collect(*args, **kwargs):  # type: ignore[no-untyped-def]
        time.sleep(0.3)
        return real(*args, **kwargs)

    monkeypatch.setattr(kind, "collect_outputs", slow_collect)
    seen: list[int] = []

    def count(state) -> None:  # type: ignore[no-untyped-def]
        seen.append(sum(1 for n in list(state.nodes.values()) if n.get("type") == "Pod" and n.get("phase") == "Running"))

    main = {"name": "main", "steps": [[{"name": "p", "template": "p", "withItems": ["a", "b", "c"]}]]}
    run = run_workflow(wf([main, {"name": "p", **body}], parallelism=1), engine_settings, on_change=count)
    assert run.phase == "Succeeded", run.message
    assert max(seen) == 1, seen


def test_workflow_deadline_and_exit_handler(engine_settings) -> None:  # type: ignore[no-untyped-def]
    manifest = wf(
        [
            {"name": "main", "steps": [[{"name": "slow", "template": "slow"}]]},
            sh("slow", "sleep 30"),
            {
                "name": "bye",
                "container": {"image": "busybox", "command": ["echo"], "args": ["{{workflow.status}} {{workflow.failures}}"]},
            },
        ],
        onExit="bye",
        activeDeadlineSeconds=1,
    )
    run = run_workflow(manifest, engine_settings)
    assert run.phase == "Failed"
    bye = node(run, f"{run.name}.onExit")
    assert bye.phase == "Succeeded"
    status, failures = bye.outputs["result"].split(" ", 1)
    assert status == "Failed" and json.loads(failures)[0]["displayName"] == "slow"


def test_exit_handler_failure_fails_a_successful_run(engine_settings) -> None:  # type: ignore[no-untyped-def]
    run = run_workflow(wf([sh("main", "true"), sh("bye", "exit 2")], onExit="bye"), engine_settings)
    assert run.phase == "Failed"


def test_artifacts_pass_between_nodes_archived_or_raw(engine_settings) -> None:  # type: ignore[no-untyped-def]
    manifest = wf(
        [
            {
                "name": "main",
                "steps": [
                    [{"name": "make", "template": "make"}],
                    [
                        {
                            "name": "read",
                            "template": "read",
                            "arguments": {"artifacts": [{"name": "in", "from": "{{steps.make.outputs.artifacts.dir}}"}]},
                        },
                        {
                            "name": "read-raw",
                            "template": "read",
                            "arguments": {"artifacts": [{"name": "in", "from": "{{steps.make.outputs.artifacts.raw}}"}]},
                        },
                    ],
                ],
            },
            {
                **sh("make", "mkdir -p /out/sub && echo one > /out/sub/a.txt && echo two > /out/b.txt"),
                "outputs": {
                    "artifacts": [{"name": "dir", "path": "/out"}, {"name": "raw", "path": "/out", "archive": {"none": {}}}]
                },
            },
            {**sh("read", "cat /in/sub/a.txt /in/b.txt"), "inputs": {"artifacts": [{"name": "in", "path": "/in"}]}},
        ]
    )
    run = run_workflow(manifest, engine_settings)
    assert run.phase == "Succeeded", run.message
    assert node(run, "read").outputs["result"] == "one\ntwo"
    assert node(run, "read-raw").outputs["result"] == "one\ntwo"
    assert list((engine_settings.home / "artifacts" / ".namespaces" / "default" / run.name).rglob("dir.tgz"))


@pytest.mark.skipif(not HAVE_BWRAP, reason="bubblewrap is not installed: nodes run unisolated")
def test_parallel_nodes_with_the_same_absolute_paths_do_not_collide(engine_settings) -> None:  # type: ignore[no-untyped-def]
    manifest = wf(
        [
            {
                "name": "main",
                "steps": [
                    [
                        {
                            "name": "w",
                            "template": "w",
                            "arguments": {"parameters": [{"name": "v", "value": "{{item}}"}]},
                            "withItems": ["a", "b", "c", "d"],
                        }
                    ]
                ],
            },
            {
                "name": "w",
                "inputs": {"parameters": [{"name": "v"}]},
                "container": {
                    "image": "busybox",
                    "command": [
                        "sh",
                        "-c",
                        'echo "$0" > /tmp/same.txt; mkdir -p /data; echo "$0" > /data/x; sleep 0.5; cat /tmp/same.txt /data/x',
                        "{{inputs.parameters.v}}",
                    ],
                },
                "outputs": {
                    "parameters": [{"name": "seen", "valueFrom": {"path": "/tmp/same.txt"}}],
                    "artifacts": [{"name": "d", "path": "/data/x"}],
                },
            },
        ]
    )
    run = run_workflow(manifest, engine_settings)
    assert run.phase == "Succeeded", run.message
    for n in run.nodes.values():
        if n.type == "Pod":
            v = n.inputs["parameters"][0]["value"]
            assert n.outputs["result"] == f"{v}\n{v}" and n.parameters()["seen"] == v
    assert not Path("/data/x").exists() or Path("/data/x").read_text().strip() not in "abcd"


# -- safety ---------------------------------------------------------------------------------------

HOSTILE = [
    "; touch {canary}",
    "$(touch {canary})",
    "`touch {canary}`",
    "' && touch {canary} && '",
    "a\nb; touch {canary}",
    "../../{canary}",
]


def test_hostile_parameter_values_never_reach_a_shell(engine_settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    canary = tmp_path / "canary"
    values = [h.format(canary=canary) for h in HOSTILE]
    manifest = wf(
        [
            {
                "name": "main",
                "steps": [
                    [
                        {
                            "name": "argv",
                            "template": "argv",
                            "arguments": {"parameters": [{"name": "x", "value": "{{item}}"}]},
                            "withParam": "{{workflow.parameters.values}}",
                        },
                        {"name": "env", "template": "env", "arguments": {"parameters": [{"name": "x", "value": values[1]}]}},
                    ]
                ],
            },
            {
                "name": "argv",
                "inputs": {"parameters": [{"name": "x"}]},
                "container": {"image": "busybox", "command": ["echo"], "args": ["{{inputs.parameters.x}}"]},
            },
            {
                "name": "env",
                "inputs": {"parameters": [{"name": "x"}]},
                "script": {
                    "image": "python:3.11",
                    "command": ["python"],
                    "env": [{"name": "X", "value": "{{inputs.parameters.x}}"}],
                    "source": "import os; print(os.environ['X'])",
                },
            },
        ],
        arguments={"parameters": [{"name": "values"}]},
    )
    run = run_workflow(manifest, engine_settings, parameters={"values": json.dumps(values)})
    assert run.phase == "Succeeded", run.message
    echoed = sorted(n.outputs["result"] for n in run.nodes.values() if n.display_name.startswith("argv("))
    assert echoed == sorted(values)  # byte for byte
    assert node(run, "env").outputs["result"] == values[1]
    assert not canary.exists()


def test_hostile_workflow_parameter_from_the_command_line(engine_settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    canary = tmp_path / "canary2"
    manifest = wf(
        [{"name": "main", "container": {"image": "busybox", "command": ["echo"], "args": ["{{workflow.parameters.msg}}"]}}],
        arguments={"parameters": [{"name": "msg", "value": "hi"}]},
    )
    run = run_workflow(manifest, engine_settings, parameters={"msg": f"$(touch {canary}); rm -rf /"})
    assert run.phase == "Succeeded" and node(run, run.name).outputs["result"] == f"$(touch {canary}); rm -rf /"
    assert not canary.exists()


@pytest.mark.parametrize(
    ("outputs", "inputs_from"),
    [
        ({"artifacts": [{"name": "x", "path": "/tmp/x", "s3": {"key": "../../../escape.tgz"}}]}, None),
        ({"artifacts": [{"name": "../x", "path": "/tmp/x"}]}, None),
        (None, {"name": "in", "path": "/tmp/in", "s3": {"key": "../../../../etc/passwd"}}),
    ],
)
def test_artifact_paths_cannot_escape_the_repository(engine_settings, outputs, inputs_from) -> None:  # type: ignore[no-untyped-def]
    tmpl = sh("main", "echo data > /tmp/x")
    if outputs:
        tmpl["outputs"] = outputs
    if inputs_from:
        tmpl["inputs"] = {"artifacts": [inputs_from]}
    run = run_workflow(wf([tmpl]), engine_settings)
    assert run.phase in ("Error", "Failed")
    assert re.search(r"'\.\.'|outside|artifact names may use", node(run, run.name).message or "")
    assert not (engine_settings.home / "escape.tgz").exists() and not (engine_settings.home.parent / "escape.tgz").exists()


def test_refused_before_anything_runs(engine_settings) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NotSupportedLocally, match=r"not supported locally: hostPath volume 'v' .* in spec\.volumes"):
        prepare_run(wf([sh("main", "true")], volumes=[{"name": "v", "hostPath": {"path": "/srv"}}]), engine_settings)
    daemon = {**sh("main", "true"), "daemon": True}  # daemons run (test_daemons.py); a gRPC probe cannot be checked here
    daemon["container"]["readinessProbe"] = {"grpc": {"port": 9000}}
    with pytest.raises(NotSupportedLocally, match=r"not supported locally: readinessProbe grpc .* in template 'main'"):
        prepare_run(wf([daemon]), engine_settings)
    with pytest.raises(ImageNotMapped, match=r"image 'redis:7' in template 'main'.*SCANFLOW_ENGINE_IMAGE_MAP"):
        prepare_run(wf([{"name": "main", "container": {"image": "redis:7"}}]), engine_settings)
    assert not (engine_settings.home / "runs").exists() or not any((engine_settings.home / "runs").iterdir())


def test_image_map_setting_maps_unknown_images(engine_settings) -> None:  # type: ignore[no-untyped-def]
    s = replace(engine_settings, engine=replace(engine_settings.engine, image_map={"myorg/tool": "shell"}))
    run = run_workflow(wf([{"name": "main", "container": {"image": "myorg/tool:3", "command": ["echo"], "args": ["mapped"]}}]), s)
    assert run.phase == "Succeeded" and node(run, run.name).outputs["result"] == "mapped"


def test_secret_env_from_the_local_folder_or_a_clear_error(engine_settings) -> None:  # type: ignore[no-untyped-def]
    tmpl = {
        "name": "main",
        "container": {
            "image": "busybox",
            "command": ["sh", "-c", "echo $TOKEN"],
            "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}],
        },
    }
    run = run_workflow(wf([tmpl]), engine_settings)
    message = node(run, run.name).message or ""  # names the run's namespace and where the key goes
    assert run.phase == "Error" and "Secret 'creds' not found in namespace 'default'" in message
    assert "secrets/.namespaces/default/creds/token" in message
    folder = engine_settings.home / "secrets" / "creds"
    folder.mkdir(parents=True)
    (folder / "token").write_text("s3cr3t")
    run = run_workflow(wf([tmpl]), engine_settings)
    assert run.phase == "Succeeded" and node(run, run.name).outputs["result"] == "s3cr3t"


def test_templates_from_the_folder_and_workflow_template_submission(engine_settings) -> None:  # type: ignore[no-untyped-def]
    from scanflow_argo.platform.local import LocalPlatform

    platform = LocalPlatform(engine_settings)
    platform.apply_template(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "WorkflowTemplate",
            "metadata": {"name": "greet"},
            "spec": {
                "entrypoint": "main",
                "arguments": {"parameters": [{"name": "who", "value": "world"}]},
                "templates": [
                    {
                        "name": "main",
                        "container": {"image": "busybox", "command": ["echo"], "args": ["hello {{workflow.parameters.who}}"]},
                    }
                ],
            },
        }
    )
    ref = wf(
        [{"name": "main", "steps": [[{"name": "call", "templateRef": {"name": "greet", "template": "main"}}]]}],
        workflowTemplateRef=None,
    )
    ref["spec"].pop("workflowTemplateRef")
    ref["metadata"]["namespace"] = platform.namespace  # a WorkflowTemplate is read in its own namespace only
    ref["spec"]["arguments"] = {"parameters": [{"name": "who", "value": "ref"}]}
    assert run_workflow(ref, engine_settings).node("call").outputs["result"] == "hello ref"
    name = platform.submit("greet", {"who": "local"})
    run = platform.wait(name, timeout=60, poll=0.1)
    assert run.phase == "Succeeded" and platform.logs(name).strip() == f"{name}: hello local"


def test_suspend_with_duration_and_when(engine_settings) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock()
    manifest = wf(
        [
            {
                "name": "main",
                "steps": [
                    [{"name": "pause", "template": "pause"}],
                    [
                        {"name": "yes", "template": "ok", "when": "{{workflow.parameters.go}} == yes"},
                        {"name": "no", "template": "ok", "when": "{{workflow.parameters.go}} != yes"},
                    ],
                ],
            },
            {"name": "pause", "suspend": {"duration": "2m"}},
            sh("ok", "true"),
        ],
        arguments={"parameters": [{"name": "go", "value": "yes"}]},
    )
    start = clock.monotonic()
    run = run_workflow(manifest, engine_settings, clock=clock)
    assert run.phase == "Succeeded"
    assert clock.monotonic() - start >= 120  # slept through the injected clock, not the wall clock
    assert node(run, "yes").phase == "Succeeded" and node(run, "no").phase == "Skipped"


def test_without_bubblewrap_nodes_run_unisolated_and_it_is_said_once(engine_settings, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    import scanflow_argo.engine.features.sandbox as runtime

    real_which = shutil.which
    monkeypatch.setattr(runtime.shutil, "which", lambda name, *a, **k: None if name == "bwrap" else real_which(name, *a, **k))
    manifest = wf(
        [
            {"name": "main", "steps": [[{"name": "a", "template": "ok"}, {"name": "b", "template": "ok"}]]},
            # the shell's $$ (its pid) is written $$$$ in args: the kubelet turns $$ into $
            sh("ok", "f=/tmp/scanflow-unisolated-$$$$; echo hi > $f; cat $f; rm $f"),
        ]
    )
    run = run_workflow(manifest, engine_settings)
    assert run.phase == "Succeeded" and node(run, "a").outputs["result"] == "hi"
    assert capsys.readouterr().err.count("bubblewrap (bwrap) is not installed") == 1


class RecordingHooks:
    """A RunHooks implementation that records calls and gives nodes an environment (as MlflowHooks does)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def workflow_started(self, run: str, workflow: dict) -> dict[str, str]:
        self.calls.append(("workflow_started", run))
        return {"RUN_ENV": run}

    def node_started(self, run: str, node_id: str, node: dict) -> dict[str, str]:
        self.calls.append(("node_started", node["displayName"]))
        return {"NODE_ENV": node["displayName"]}

    def node_finished(self, run: str, node_id: str, node: dict, log_path: Path | None) -> None:
        assert log_path is not None and log_path.exists()
        self.calls.append(("node_finished", f"{node['displayName']}={node['phase']}"))

    def workflow_finished(self, run: str, status: dict) -> None:
        self.calls.append(("workflow_finished", status["status"]["phase"]))


def test_hooks_are_called_and_give_nodes_their_environment(engine_settings) -> None:  # type: ignore[no-untyped-def]
    from scanflow_argo.engine import RunHooks

    hooks = RecordingHooks()
    assert isinstance(hooks, RunHooks)
    manifest = wf([{"name": "main", "container": {"image": "busybox", "command": ["sh", "-c", "echo $RUN_ENV $NODE_ENV"]}}])
    run = run_workflow(manifest, engine_settings, hooks=hooks)
    assert node(run, run.name).outputs["result"] == f"{run.name} {run.name}"
    assert hooks.calls == [
        ("workflow_started", run.name),
        ("node_started", run.name),
        ("node_finished", f"{run.name}=Succeeded"),
        ("workflow_finished", "Succeeded"),
    ]


def test_cron_workflow_runs_its_workflow_spec_under_a_generated_name(engine_settings) -> None:  # type: ignore[no-untyped-def]
    cron = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "CronWorkflow",
        "metadata": {"name": "nightly"},
        "spec": {"schedule": "0 1 * * *", "workflowSpec": {"entrypoint": "main", "templates": [sh("main", "echo cron")]}},
    }
    first, second = run_workflow(cron, engine_settings), run_workflow(cron, engine_settings)
    assert first.phase == second.phase == "Succeeded"
    assert first.name != second.name and first.name.startswith("nightly-")


def test_bad_with_param_fails_the_step_clearly(engine_settings) -> None:  # type: ignore[no-untyped-def]
    manifest = wf(
        [
            {"name": "main", "steps": [[{"name": "loop", "template": "ok", "withParam": "not json"}]]},
            sh("ok", "true"),
        ]
    )
    run = run_workflow(manifest, engine_settings)
    assert run.phase in ("Failed", "Error")
    assert "withParam value is not a JSON list" in (node(run, "loop").message or "")
    assert all(n.phase != "Running" for n in run.nodes.values())


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap: the bug was in what the sandbox shows a node")
def test_an_interpreter_environment_under_tmp_stays_whole_inside_the_sandbox(engine_settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Nodes get a private /tmp; a venv (or a clone) living under /tmp must still be visible to them."""
    import subprocess
    import sys

    assert str(tmp_path).startswith("/tmp/")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python*/site-packages"))
    (site / "only_in_this_venv.py").write_text("VALUE = 'found'\n")
    settings = replace(engine_settings, engine=replace(engine_settings.engine, python=str(venv / "bin" / "python")))
    script = {"image": "python:3.11", "command": ["python"], "source": "import only_in_this_venv\nprint(only_in_this_venv.VALUE)"}
    status = run_workflow(wf([{"name": "main", "script": script}]), settings)
    assert status.phase == "Succeeded", status.message
    assert next(iter(status.nodes.values())).outputs.get("result") == "found"
