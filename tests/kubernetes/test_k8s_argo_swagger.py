"""What the platform sends the Argo Server is what Argo's OpenAPI spec defines: every recorded request
matches a path and method of ``argo-server.swagger.json``, uses only its query parameters, and its
body validates against the operation's body schema. The same run also shows the fake serves those paths."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fakeapi import FakeCluster, node_status
from k8s_helpers import NAMESPACE, make_platform, template


def _operations(swagger: dict[str, Any]) -> list[tuple[re.Pattern[str], str, dict[str, Any]]]:
    ops = []
    for path, methods in swagger["paths"].items():
        pattern = re.compile("^" + re.sub(r"\{[^}]+\}", r"[^/]+", path) + "$")
        for method, op in methods.items():
            ops.append((pattern, method.upper(), op))
    # Literal segments beat placeholders (…/{name}/log before …/{name}/{podName}).
    ops.sort(key=lambda o: o[0].pattern.count("[^/]+"))
    return ops


@pytest.mark.shared
def test_requests_follow_the_argo_server_swagger(kube_settings, fake: FakeCluster, shared_dir: Path) -> None:
    swagger = json.loads((shared_dir / "schemas" / "argo-server.swagger.json").read_text())
    platform = make_platform(kube_settings, fake, "argo")

    platform.apply_template(template())
    platform.apply_template(template(params={"epochs": "2"}))
    platform.apply_template(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "CronWorkflow",
            "metadata": {"name": "nightly"},
            "spec": {"schedules": ["0 2 * * *"], "workflowSpec": {"workflowTemplateRef": {"name": "train"}}},
        }
    )
    fake.plan = lambda wf: [{"phase": "Succeeded", "nodes": dict([node_status(wf["metadata"]["name"], "fit", "Succeeded")])}]
    name = platform.submit("train", {"epochs": "3"}, {"team": "ml"})
    platform.wait(name, timeout=10)
    platform.logs(name, "fit")
    platform.list_runs({"team": "ml"})
    other = platform.submit(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"generateName": "w-"},
            "spec": {"workflowTemplateRef": {"name": "train"}},
        }
    )
    fake.plan = None
    platform.stop(other)

    ops = _operations(swagger)
    seen = set()
    for rec in fake.calls(contains="/api/v1/"):
        match = next(((p, m, op) for p, m, op in ops if m == rec.method and p.match(rec.path)), None)
        assert match, f"{rec.method} {rec.path} is not in Argo Server's API"
        _, _, op = match
        seen.add(op["operationId"])
        params = {p["name"]: p for p in op.get("parameters", [])}
        unknown = set(rec.query) - {n for n, p in params.items() if p["in"] == "query"}
        assert not unknown, f"{rec.method} {rec.path}: query parameters {unknown} are not in the spec"
        body = params.get("body")
        if body is not None:
            schema = {**body["schema"], "definitions": swagger["definitions"]}
            errors = [e.message for e in jsonschema.Draft4Validator(schema).iter_errors(rec.body)]
            assert not errors, f"{rec.method} {rec.path}: {errors[:3]}"
            assert rec.headers["content-type"].startswith("application/json")
        assert rec.status == 200 or (rec.method == "GET" and rec.status == 404), f"{rec.method} {rec.path} -> {rec.status}"
    assert {
        "WorkflowTemplateService_GetWorkflowTemplate",
        "WorkflowTemplateService_CreateWorkflowTemplate",
        "WorkflowTemplateService_UpdateWorkflowTemplate",
        "CronWorkflowService_CreateCronWorkflow",
        "WorkflowService_SubmitWorkflow",
        "WorkflowService_CreateWorkflow",
        "WorkflowService_GetWorkflow",
        "WorkflowService_ListWorkflows",
        "WorkflowService_WorkflowLogs",
        "WorkflowService_StopWorkflow",
    } <= seen
    assert NAMESPACE in fake.calls("POST", "/submit")[0].path
