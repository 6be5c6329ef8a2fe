"""Real Argo clients, not ours, against ``scanflow-argo server``: Hera's ``WorkflowsService``, the ``argo-workflows``
Python SDK (typed models, its return types checked), and this project's Kubernetes platform in its Argo Server
mode (``platform/_k8s/argo.py``, what runs against a cluster's Argo Server) pointed at the local one.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import argo_workflows
import pytest
from argo_workflows.api import workflow_service_api, workflow_template_service_api
from argo_workflows.model.io_argoproj_workflow_v1alpha1_workflow_create_request import (
    IoArgoprojWorkflowV1alpha1WorkflowCreateRequest,
)
from argo_workflows.model.io_argoproj_workflow_v1alpha1_workflow_lint_request import (
    IoArgoprojWorkflowV1alpha1WorkflowLintRequest,
)
from argo_workflows.model.io_argoproj_workflow_v1alpha1_workflow_template_create_request import (
    IoArgoprojWorkflowV1alpha1WorkflowTemplateCreateRequest,
)
from hera.exceptions import BadRequest, NotFound
from hera.workflows import Container, Parameter, Workflow, WorkflowsService, WorkflowTemplate
from hera.workflows import models as m
from server_helpers import NAMESPACE, Served, greet_template, shell_workflow

from scanflow_argo.platform.kubernetes import KubernetesPlatform

pytestmark = pytest.mark.slow


def wait_phase(get: Any, name: str, phases: tuple[str, ...] = ("Succeeded", "Failed", "Error"), timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        wf = get(name)
        if wf.status and wf.status.phase in phases:
            return wf
        assert time.monotonic() < deadline, f"{name} is still {wf.status.phase if wf.status else None}"
        time.sleep(0.1)


def test_hera_workflows_service(served: Served) -> None:
    """Hera: create a WorkflowTemplate and a Workflow, list, get, submit the template with parameters,
    read logs, stop a running workflow; a refused enum value is Hera's ``BadRequest``."""
    svc = WorkflowsService(host=served.url, token=served.token, namespace=NAMESPACE)
    with WorkflowTemplate(
        name="hera-greet",
        entrypoint="main",
        namespace=NAMESPACE,
        workflows_service=svc,
        arguments=[
            Parameter(name="who", value="world", description="whom to greet"),
            Parameter(name="mood", value="happy", enum=["happy", "sad"]),
        ],
    ) as template:
        Container(
            name="main",
            image="alpine:3",
            command=["sh", "-c", "echo hello {{workflow.parameters.who}} {{workflow.parameters.mood}}"],
        )
    assert template.create().metadata.name == "hera-greet"

    submitted = svc.submit_workflow(
        m.WorkflowSubmitRequest(
            resource_kind="WorkflowTemplate",
            resource_name="hera-greet",
            submit_options=m.SubmitOpts(parameters=["who=hera", "mood=sad"]),
        )
    )
    name = submitted.metadata.name
    assert submitted.metadata.labels["workflows.argoproj.io/workflow-template"] == "hera-greet"
    done = wait_phase(svc.get_workflow, name)
    assert done.status.phase == "Succeeded"
    listed = svc.list_workflows(label_selector="workflows.argoproj.io/workflow-template=hera-greet")
    assert [w.metadata.name for w in listed.items] == [name]
    pod = next(n for n in done.status.nodes.values() if n.type == "Pod")
    # Hera reads the log call's answer as one LogEntry (Argo frames it as {"result": {...}} lines, which Hera
    # does not unwrap, against Argo's server too): the call must succeed; the lines are checked below and
    # through the project's own client in test_kubernetes_platform_through_the_local_argo_server.
    assert svc.workflow_logs(name, pod_name=pod.id, container="main") is not None
    with served.client() as c:
        assert (
            c.get(f"/api/v1/workflows/{NAMESPACE}/{name}/log", params={"podName": pod.id}).json()["result"]["content"]
            == "hello hera sad"
        )

    with pytest.raises(BadRequest, match=r"mood\.value should be present in"):
        svc.submit_workflow(
            m.WorkflowSubmitRequest(
                resource_kind="WorkflowTemplate",
                resource_name="hera-greet",
                submit_options=m.SubmitOpts(parameters=["mood=angry"]),
            )
        )
    with pytest.raises(NotFound):
        svc.get_workflow("no-such-workflow")

    with Workflow(generate_name="hera-long-", entrypoint="main", namespace=NAMESPACE, workflows_service=svc) as wf:
        Container(name="main", image="alpine:3", command=["sh", "-c", "echo started; sleep 60"])
    created = wf.create()
    wait_phase(svc.get_workflow, created.metadata.name, phases=("Running",))
    svc.stop_workflow(created.metadata.name, m.WorkflowStopRequest(name=created.metadata.name, namespace=NAMESPACE))
    stopped = wait_phase(svc.get_workflow, created.metadata.name)
    assert (stopped.status.phase, stopped.status.message) == ("Failed", "Stopped with strategy 'Stop'")


def test_argo_workflows_sdk(served: Served) -> None:
    """The ``argo-workflows`` SDK with its typed models and return-type checks: create, get, list with a label
    selector, lint, templates, logs as a stream, and Argo's error body on a miss."""
    config = argo_workflows.Configuration(host=served.url)
    config.api_key["BearerToken"] = served.token
    config.api_key_prefix["BearerToken"] = "Bearer"
    with argo_workflows.ApiClient(config) as client:
        workflows = workflow_service_api.WorkflowServiceApi(client)
        templates = workflow_template_service_api.WorkflowTemplateServiceApi(client)
        manifest = shell_workflow("echo from the sdk", generate="sdk-", labels={"client": "sdk"})
        created = workflows.create_workflow(
            NAMESPACE, IoArgoprojWorkflowV1alpha1WorkflowCreateRequest(workflow=manifest, _check_type=False)
        )
        name = created.metadata.name
        done = wait_phase(lambda n: workflows.get_workflow(NAMESPACE, n), name)
        assert done.status.phase == "Succeeded" and done.status.progress == "1/1"
        listed = workflows.list_workflows(
            NAMESPACE, list_options_label_selector="client=sdk,workflows.argoproj.io/completed=true"
        )
        assert [w.metadata.name for w in listed.items] == [name]
        linted = workflows.lint_workflow(
            NAMESPACE, IoArgoprojWorkflowV1alpha1WorkflowLintRequest(workflow=manifest, _check_type=False)
        )
        assert linted.spec.entrypoint == "main"
        templates.create_workflow_template(
            NAMESPACE,
            IoArgoprojWorkflowV1alpha1WorkflowTemplateCreateRequest(template=greet_template("sdk-greet"), _check_type=False),
        )
        assert "sdk-greet" in [t.metadata.name for t in templates.list_workflow_templates(NAMESPACE).items]
        raw = workflows.workflow_logs(NAMESPACE, name, pod_name=name, log_options_container="main", _preload_content=False)
        assert b'"content":"from the sdk"' in raw.data
        with pytest.raises(argo_workflows.ApiException) as missing:
            workflows.get_workflow(NAMESPACE, "no-such-workflow")
        assert missing.value.status == 404 and '"code": 5' in missing.value.body


def test_kubernetes_platform_through_the_local_argo_server(served: Served) -> None:
    """The project's cluster path (``KubernetesPlatform`` with ``SCANFLOW_ARGO_SERVER``) against the local server:
    apply a template, submit it by name with parameters and labels, wait, read a node's log, list by label, stop."""
    kube = replace(
        served.settings.kubernetes,
        namespace=NAMESPACE,
        argo_server=served.url,
        argo_token_env="LOCAL_ARGO_TOKEN",
        verify_tls=False,
    )
    platform = KubernetesPlatform(
        replace(served.settings, platform="kubernetes", kubernetes=kube), environ={"LOCAL_ARGO_TOKEN": served.token}
    )
    platform.apply_template(greet_template("k8s-greet"))
    platform.apply_template(greet_template("k8s-greet"))  # again: an update with the current resourceVersion
    name = platform.submit("k8s-greet", {"who": "cluster path", "mood": "calm"}, labels={"via": "k8s"})
    run = platform.wait(name, timeout=30, poll=0.1)
    assert run.phase == "Succeeded" and run.parameters["who"] == "cluster path"
    assert platform.logs(name, "say") == "hello cluster path, calm\n"
    assert [r.name for r in platform.list_runs({"via": "k8s"})] == [name]
    long = platform.submit(shell_workflow("sleep 60", generate="k8s-long-"), labels={"via": "k8s"})
    served.wait(long, phases=("Running",))
    platform.stop(long)
    assert platform.wait(long, timeout=30, poll=0.1).phase == "Failed"
