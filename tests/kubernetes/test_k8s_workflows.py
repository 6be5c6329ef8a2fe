"""KubernetesPlatform workflows against the fake API servers: both backends (Argo Server and Workflow objects)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from fakeapi import FakeCluster, node_status
from k8s_helpers import ARGO_TOKEN, NAMESPACE, TOKEN_ENV, make_platform, template

from scanflow_argo.errors import NotFoundError, PlatformError, UnavailableError
from scanflow_argo.platform.base import workflow_from_template
from scanflow_argo.platform.kubernetes import KubernetesPlatform
from scanflow_argo.settings import describe


def _tpl_path(backend: str, name: str = "") -> str:
    base = (
        f"/api/v1/workflow-templates/{NAMESPACE}"
        if backend == "argo"
        else f"/apis/argoproj.io/v1alpha1/namespaces/{NAMESPACE}/workflowtemplates"
    )
    return f"{base}/{name}" if name else base


def _succeed_with(outputs: dict[str, str]):
    """A controller plan: Pending → Running → Succeeded with one ``fit`` Pod node carrying ``outputs``."""

    def plan(wf: dict) -> list[dict]:
        name = wf["metadata"]["name"]
        node_id, node = node_status(
            name, "fit", "Succeeded", outputs={"parameters": [{"name": k, "value": v} for k, v in outputs.items()]}
        )
        root = {"id": name, "name": name, "displayName": name, "type": "DAG", "phase": "Succeeded", "children": [node_id]}
        return [
            {"phase": "Running", "startedAt": "2026-01-01T00:00:00Z"},
            {
                "phase": "Succeeded",
                "startedAt": "2026-01-01T00:00:00Z",
                "finishedAt": "2026-01-01T00:01:00Z",
                "nodes": {name: root, node_id: node},
            },
        ]

    return plan


def test_apply_template_creates_then_updates_with_resource_version(
    platform: KubernetesPlatform, fake: FakeCluster, backend: str
) -> None:
    platform.apply_template(template(params={"epochs": "1"}))
    created = fake.get("workflowtemplates", NAMESPACE, "train")
    assert [(r.method, r.status) for r in fake.calls(contains=_tpl_path(backend))] == [
        ("GET", 404),
        ("POST", 200 if backend == "argo" else 201),
    ]

    platform.apply_template(template(params={"epochs": "5"}))
    updated = fake.get("workflowtemplates", NAMESPACE, "train")
    put = fake.calls("PUT", _tpl_path(backend, "train"))[-1]
    sent = put.body["template"] if backend == "argo" else put.body
    assert sent["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert updated["spec"]["arguments"]["parameters"][0]["value"] == "5"
    assert int(updated["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    assert updated["metadata"]["uid"] == created["metadata"]["uid"]  # updated in place: the UI keeps it


def test_apply_template_retries_a_conflict(platform: KubernetesPlatform, fake: FakeCluster, backend: str) -> None:
    platform.apply_template(template())

    # Another writer changes the template between our read and our write: a real 409 from the resourceVersion check.
    def concurrent_writer(cluster: FakeCluster, rec) -> None:
        if rec.method == "PUT" and not cluster.calls("PUT")[:-1]:
            cluster.bump("workflowtemplates", NAMESPACE, "train")

    fake.hooks.append(concurrent_writer)
    platform.apply_template(template(params={"epochs": "9"}))
    puts = fake.calls("PUT", _tpl_path(backend, "train"))
    assert [p.status for p in puts] == [409, 200]
    assert fake.get("workflowtemplates", NAMESPACE, "train")["spec"]["arguments"]["parameters"][0]["value"] == "9"


def test_apply_cron_workflow(platform: KubernetesPlatform, fake: FakeCluster) -> None:
    cron = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "CronWorkflow",
        "metadata": {"name": "nightly"},
        "spec": {"schedules": ["0 2 * * *"], "workflowSpec": {"workflowTemplateRef": {"name": "train"}}},
    }
    platform.apply_template(cron)
    platform.apply_template({**cron, "spec": {**cron["spec"], "schedules": ["0 3 * * *"]}})
    assert fake.get("cronworkflows", NAMESPACE, "nightly")["spec"]["schedules"] == ["0 3 * * *"]


def test_apply_template_refuses_other_kinds(platform: KubernetesPlatform) -> None:
    with pytest.raises(PlatformError, match="WorkflowTemplate or CronWorkflow"):
        platform.apply_template({"kind": "Deployment", "metadata": {"name": "x"}})


def test_submit_template_passes_parameters_as_the_ui_does(platform: KubernetesPlatform, fake: FakeCluster, backend: str) -> None:
    platform.apply_template(template())
    name = platform.submit("train", {"epochs": "3"}, labels={"scanflow.io/agent": "supervisor"})
    assert name.startswith("train-")

    if backend == "argo":
        (req,) = fake.calls("POST", f"/api/v1/workflows/{NAMESPACE}/submit")
        assert req.body["resourceKind"] == "WorkflowTemplate"
        assert req.body["resourceName"] == "train"
        assert req.body["submitOptions"]["parameters"] == ["epochs=3"]
        assert req.body["submitOptions"]["labels"] == "scanflow.io/agent=supervisor"
    else:
        (req,) = fake.calls("POST", f"/apis/argoproj.io/v1alpha1/namespaces/{NAMESPACE}/workflows")
        assert req.body["spec"]["workflowTemplateRef"] == {"name": "train"}
    wf = fake.get("workflows", NAMESPACE, name)
    assert wf["spec"]["workflowTemplateRef"] == {"name": "train"}
    assert wf["spec"]["arguments"]["parameters"] == [{"name": "epochs", "value": "3"}]
    assert wf["metadata"]["labels"]["scanflow.io/agent"] == "supervisor"
    assert wf["metadata"]["labels"]["workflows.argoproj.io/workflow-template"] == "train"
    run = platform.get_run(name)
    assert run.parameters == {"epochs": "3"}
    assert run.namespace == NAMESPACE


def test_submit_unknown_template_names_it(platform: KubernetesPlatform) -> None:
    with pytest.raises(NotFoundError, match=r"train-typo.*scanflow|scanflow.*train-typo"):
        platform.submit("train-typo", {"epochs": "3"})


def test_submit_manifest_with_parameter_overrides(platform: KubernetesPlatform, fake: FakeCluster) -> None:
    manifest = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "hello-", "labels": {"app": "demo"}},
        "spec": {
            "entrypoint": "main",
            "arguments": {"parameters": [{"name": "msg", "value": "hi"}, {"name": "n", "value": "1"}]},
            "templates": [
                {"name": "main", "container": {"image": "busybox", "command": ["echo", "{{workflow.parameters.msg}}"]}}
            ],
        },
    }
    name = platform.submit(manifest, {"msg": "bye"}, {"team": "ml"})
    wf = fake.get("workflows", NAMESPACE, name)
    assert wf["spec"]["arguments"]["parameters"] == [{"name": "msg", "value": "bye"}, {"name": "n", "value": "1"}]
    assert wf["metadata"]["labels"] == {"app": "demo", "team": "ml"}
    assert manifest["spec"]["arguments"]["parameters"][0]["value"] == "hi"  # the caller's manifest is untouched
    with pytest.raises(PlatformError, match="apply_template"):
        platform.submit(template())


def test_wait_follows_phases_and_reads_outputs_by_display_name(platform: KubernetesPlatform, fake: FakeCluster) -> None:
    platform.apply_template(template())
    fake.plan = _succeed_with({"accuracy": "0.97"})
    name = platform.submit("train", {"epochs": "2"})
    run = platform.wait(name, timeout=60, poll=0.5)
    assert run.phase == "Succeeded" and run.done
    assert run.node("fit").parameters() == {"accuracy": "0.97"}
    assert run.node("fit").id != "fit"  # Argo keys nodes by hashed ids; we found it by display name
    assert len(fake.calls("GET", f"/{name}")) == 2  # Running, then Succeeded: one poll each


def test_wait_times_out_with_the_phase(platform: KubernetesPlatform, fake: FakeCluster) -> None:
    platform.apply_template(template())
    fake.plan = lambda wf: [{"phase": "Running"}]
    name = platform.submit("train")
    with pytest.raises(UnavailableError, match=r"still Running after 5s"):
        platform.wait(name, timeout=5, poll=1)


def test_server_gone_mid_wait_is_a_clear_error(platform: KubernetesPlatform, fake: FakeCluster) -> None:
    platform.apply_template(template())
    fake.plan = lambda wf: [{"phase": "Running"}] * 3

    def drop_after_running(cluster: FakeCluster, rec) -> None:
        if rec.method == "GET" and len(cluster.calls("GET", "/workflows/")) == 2:
            cluster.drop_after_response = True  # answers this poll, then goes away

    name = platform.submit("train")
    fake.hooks.append(drop_after_running)
    with pytest.raises(UnavailableError, match=rf"lost the cluster while waiting for run '{name}' \(last phase Running"):
        platform.wait(name, timeout=600, poll=0.5)


def test_list_runs_by_label_newest_first(platform: KubernetesPlatform, fake: FakeCluster, backend: str) -> None:
    platform.apply_template(template())
    first = platform.submit("train", labels={"scanflow.io/agent": "a"})
    fake.objects[("workflows", NAMESPACE, first)]["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    second = platform.submit("train", labels={"scanflow.io/agent": "a"})
    platform.submit("train", labels={"scanflow.io/agent": "b"})
    runs = platform.list_runs({"scanflow.io/agent": "a"})
    assert [r.name for r in runs] == [second, first]
    key = "listOptions.labelSelector" if backend == "argo" else "labelSelector"
    assert fake.calls("GET")[-1].query[key] == ["scanflow.io/agent=a"]
    assert len(platform.list_runs()) == 3


def test_stop(platform: KubernetesPlatform, fake: FakeCluster, backend: str) -> None:
    platform.apply_template(template())
    name = platform.submit("train")
    platform.stop(name)
    assert fake.get("workflows", NAMESPACE, name)["spec"]["shutdown"] == "Stop"
    if backend == "argo":
        assert fake.calls("PUT", f"/{name}/stop")
    else:
        (patch,) = fake.calls("PATCH", f"/workflows/{name}")
        assert patch.headers["content-type"] == "application/merge-patch+json"
    with pytest.raises(NotFoundError):
        platform.stop("no-such-run")


def test_stopping_a_finished_run_says_so_the_same_way_on_every_path(
    platform: KubernetesPlatform, fake: FakeCluster, backend: str, tmp_path
) -> None:
    """The Argo Server answers Argo's AlreadyShutdownError as codes.Internal, HTTP 500
    (server/workflow/workflow_server.go StopWorkflow, workflow/util/util.go patchShutdownStrategy); the direct
    path reads the phase first as that function does; both, and the local platform, say the same thing."""
    from scanflow_argo.platform.base import already_finished
    from scanflow_argo.platform.local import LocalPlatform

    platform.apply_template(template())
    name = platform.submit("train")
    fake.set_status("workflows", NAMESPACE, name, {"phase": "Failed", "finishedAt": "2026-01-01T00:00:00Z"})
    with pytest.raises(PlatformError) as err:
        platform.stop(name)
    assert (
        str(err.value)
        == str(already_finished(name, "Failed"))
        == f"run {name!r} already finished (Failed): there is nothing to stop"
    )
    assert "shutdown" not in fake.get("workflows", NAMESPACE, name)["spec"]
    if backend == "argo":
        (answer,) = fake.calls("PUT", f"/{name}/stop")
        assert answer.status == 500
    else:
        assert not fake.calls("PATCH", f"/workflows/{name}")
    # the local platform, with a run that has ended
    local = LocalPlatform(dataclasses.replace(platform.settings, platform="local").with_home(tmp_path / "local"))
    run_dir = local.settings.home / "runs" / "done-run"
    run_dir.mkdir(parents=True)
    (run_dir / "status.json").write_text(
        json.dumps({"metadata": {"name": "done-run"}, "spec": {}, "status": {"phase": "Failed", "nodes": {}}})
    )
    with pytest.raises(PlatformError) as local_err:
        local.stop("done-run")
    assert str(local_err.value) == str(already_finished("done-run", "Failed"))


def test_logs_of_a_node_and_of_the_run(platform: KubernetesPlatform, fake: FakeCluster, backend: str) -> None:
    platform.apply_template(template())
    fake.plan = _succeed_with({"accuracy": "0.9"})
    name = platform.submit("train")
    run = platform.wait(name, timeout=10)
    node = run.node("fit")
    pod = f"{name}-fit-{node.id.rsplit('-', 1)[1]}"  # Argo's v2 pod name: <workflow>-<template>-<hash>
    fake.pod_logs[pod] = "epoch 1 loss 0.3\nepoch 2 loss 0.1\n"
    assert platform.logs(name, "fit") == "epoch 1 loss 0.3\nepoch 2 loss 0.1\n"
    assert platform.logs(name) == "==> fit <==\nepoch 1 loss 0.3\nepoch 2 loss 0.1\n"
    if backend == "argo":
        assert fake.calls("GET", f"/api/v1/workflows/{NAMESPACE}/{name}/log")[-1].query["podName"] == [pod]
    else:
        assert fake.calls("GET", f"/pods/{pod}/log")
    with pytest.raises(PlatformError, match="only Pod nodes have logs"):
        platform.logs(name, name)
    fake.pod_logs[f"{pod}/fetch"] = "fetched\n"  # an init container, a sidecar, a containerSet's container
    assert platform.logs(name, "fit", container="fetch") == "fetched\n"


def test_server_errors_are_unavailable(platform: KubernetesPlatform, fake: FakeCluster) -> None:
    fake.fail_next(5, 500)
    with pytest.raises(UnavailableError):
        platform.get_run("anything")


def test_argo_token_comes_from_the_named_env_var_and_never_shows(kube_settings, fake: FakeCluster) -> None:
    platform = make_platform(kube_settings, fake, "argo")
    platform.apply_template(template())
    assert {r.headers.get("authorization") for r in fake.calls(contains="/api/v1/")} == {f"Bearer {ARGO_TOKEN}"}
    assert ARGO_TOKEN not in json.dumps(describe(kube_settings))

    wrong = make_platform(kube_settings, fake, "argo", environ={TOKEN_ENV: "not-the-token"})
    with pytest.raises(PlatformError, match=rf"valid token in \${TOKEN_ENV}") as info:
        wrong.submit("train")
    assert "not-the-token" not in str(info.value)


def test_argo_server_unreachable_is_unavailable(kube_settings, fake: FakeCluster) -> None:
    settings = dataclasses.replace(kube_settings, kubernetes=dataclasses.replace(kube_settings.kubernetes, argo_server=fake.url))
    fake.drop()
    platform = KubernetesPlatform(settings, environ={})
    with pytest.raises(UnavailableError, match="did not answer"):
        platform.get_run("x")


def test_argo_server_url_needs_a_scheme(kube_settings) -> None:
    settings = dataclasses.replace(
        kube_settings, kubernetes=dataclasses.replace(kube_settings.kubernetes, argo_server="argo:2746")
    )
    with pytest.raises(PlatformError, match="needs a scheme"):
        KubernetesPlatform(settings).get_run("x")


def test_resume_on_the_cluster_is_argos_retry_or_resume(platform: KubernetesPlatform, fake: FakeCluster, backend: str) -> None:
    """A local resume continues after a dead engine, keeping what succeeded; on the cluster the controller never dies
    with a run, so ``resume`` is Argo's retry of a failed run (server/workflow/workflow_server.go RetryWorkflow,
    workflow/util/util.go FormulateRetryWorkflow: failed nodes reset, succeeded kept) or its resume of a suspended
    one (ResumeWorkflow); the direct path cannot rewrite a run's status, and says what to use."""
    platform.apply_template(template())
    failed = platform.submit("train")
    ok_id, ok_node = node_status(failed, "fit", "Succeeded")
    bad_id, bad_node = node_status(failed, "score", "Failed")
    fake.set_status("workflows", NAMESPACE, failed, {"phase": "Failed", "nodes": {ok_id: ok_node, bad_id: bad_node}})
    if backend == "argo":
        assert platform.resume(failed) == f"retrying {failed} (Failed): Argo re-runs its failed nodes and keeps what succeeded"
        assert fake.calls("PUT", f"/{failed}/retry")
        after = fake.get("workflows", NAMESPACE, failed)["status"]
        assert after["phase"] == "Running" and set(after["nodes"]) == {ok_id}
    else:
        with pytest.raises(PlatformError, match=rf"set SCANFLOW_ARGO_SERVER .* or run `argo retry {failed} -n {NAMESPACE}`"):
            platform.resume(failed)
    paused = platform.submit("train")
    fake.objects[("workflows", NAMESPACE, paused)]["spec"]["suspend"] = True
    fake.set_status("workflows", NAMESPACE, paused, {"phase": "Running"})
    assert platform.resume(paused) == f"resumed {paused}"
    assert "suspend" not in fake.get("workflows", NAMESPACE, paused)["spec"]
    with pytest.raises(
        PlatformError, match=r"is Running on the cluster, where Argo's controller carries it on: nothing to resume"
    ):
        platform.resume(paused)
    fake.set_status("workflows", NAMESPACE, paused, {"phase": "Succeeded"})
    with pytest.raises(PlatformError, match=r"already finished \(Succeeded\): nothing to resume"):
        platform.resume(paused)


def test_submit_of_a_published_cluster_template_leaves_its_parameters_to_argo(
    platform: KubernetesPlatform, fake: FakeCluster
) -> None:
    # a team's agent runs another team's ClusterWorkflowTemplate in its namespace: the namespaced template of the
    # same name (which declares other parameters) is not the one referenced, and the cluster one is not read here
    platform.apply_template(template())  # WorkflowTemplate "train", declaring only "epochs"
    name = platform.submit(workflow_from_template("train", cluster_scope=True), {"feedback_window": "1h"})
    wf = fake.get("workflows", NAMESPACE, name)
    assert wf["spec"]["workflowTemplateRef"] == {"name": "train", "clusterScope": True}
    assert wf["spec"]["arguments"]["parameters"] == [{"name": "feedback_window", "value": "1h"}]
    assert wf["metadata"]["labels"]["workflows.argoproj.io/cluster-workflow-template"] == "train"
