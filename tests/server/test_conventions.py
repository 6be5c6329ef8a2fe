"""The server's pure parts: Argo's ``fields`` filtering (``util/fields``), the Workflow a submission builds
(``workflow/common/convert.go``, ``workflow/util/util.go``: ``ApplySubmitOpts``) and the argument checks
(``workflow/validate/validate.go``: ``validateArgumentsValues``), and the state the Agents page shows for a
rule (Prometheus' alert states, ``rules/alerting.go``: inactive → ok, pending, firing)."""

from __future__ import annotations

from typing import Any

import pytest

from scanflow_argo.server.agent_proxy import rule_state
from scanflow_argo.server.http import ApiError, clean_fields, needs_nodes
from scanflow_argo.server.workflows import arguments_problem, workflow_from_template

DOC = {
    "metadata": {"name": "a", "labels": {"x": "1"}},
    "items": [{"metadata": {"name": "w"}, "status": {"phase": "Running", "nodes": {"n": {}}}}],
}

FIELDS = [
    (None, DOC),
    ("items.metadata.name", {"items": [{"metadata": {"name": "w"}}]}),
    ("metadata,items.status.phase", {"metadata": DOC["metadata"], "items": [{"status": {"phase": "Running"}}]}),
    (
        "-items.status.nodes,metadata.labels",
        {"metadata": {"name": "a"}, "items": [{"metadata": {"name": "w"}, "status": {"phase": "Running"}}]},
    ),
    ("nothing.here", {}),
]


@pytest.mark.parametrize(("spec", "expected"), FIELDS)
def test_fields_keep_or_drop_dotted_paths(spec: str | None, expected: Any) -> None:
    assert clean_fields(DOC, spec) == expected


@pytest.mark.parametrize(
    ("spec", "needed"),
    [(None, True), ("items.metadata,items.status.phase", False), ("items.status.nodes", True), ("-items.status.nodes", True),
     ("-items.status.nodes,items.spec", False), ("items.spec.templates", True)],
)  # fmt: skip
def test_list_answered_from_summaries_only_when_the_fields_allow(spec: str | None, needed: bool) -> None:
    assert needs_nodes(spec, "items.") is needed


TEMPLATE_PARAMS = [{"name": "who", "value": "world"}, {"name": "mood", "value": "happy", "enum": ["happy", "sad"]}]


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ([], None),
        ([("mood", "sad")], None),
        ([("mood", "angry")], "spec.arguments.mood.value should be present in spec.arguments.mood.enum list"),
    ],
)
def test_enum_arguments_are_checked_as_argo_validates_them(given: list[tuple[str, str]], problem: str | None) -> None:
    assert arguments_problem(TEMPLATE_PARAMS, given) == problem
    assert arguments_problem([{"name": "e", "enum": []}], []) == "spec.arguments.e.enum should contain at least one value"


def test_the_workflow_a_submission_builds() -> None:
    wf = workflow_from_template(
        "WorkflowTemplate",
        "greet",
        "argo",
        {},
        {"parameters": ["who=x", "mood=sad=really"], "labels": "a=1,b=2", "entryPoint": "other"},
        "now",
    )
    assert wf["metadata"] == {
        "generateName": "greet-",
        "labels": {"workflows.argoproj.io/workflow-template": "greet", "a": "1", "b": "2"},
        "namespace": "argo",
    }
    assert wf["spec"] == {"workflowTemplateRef": {"name": "greet"}, "entrypoint": "other",
                          "arguments": {"parameters": [{"name": "who", "value": "x"}, {"name": "mood", "value": "sad=really"}]}}  # fmt: skip
    cron = {
        "spec": {
            "workflowSpec": {"entrypoint": "main", "arguments": {"parameters": [{"name": "p", "value": "1"}]}},
            "workflowMetadata": {"labels": {"k": "v"}},
        }
    }
    run = workflow_from_template(
        "CronWorkflow", "nightly", "argo", cron, {"parameters": ["p=2"], "name": "fixed"}, "2024-01-01T00:00:00Z"
    )
    assert run["metadata"]["name"] == "fixed" and run["metadata"]["labels"] == {
        "workflows.argoproj.io/cron-workflow": "nightly",
        "k": "v",
    }
    assert run["metadata"]["annotations"] == {"workflows.argoproj.io/scheduled-time": "2024-01-01T00:00:00Z"}
    assert run["spec"]["arguments"]["parameters"] == [{"name": "p", "value": "2"}]
    with pytest.raises(ApiError, match="expected labels of the form"):
        workflow_from_template("WorkflowTemplate", "greet", "argo", {}, {"labels": "nokey"}, "now")


RULES = [
    # (a rule of an agent's /status — agents/decide.py RuleState.to_json —, the state shown)
    ({"firing": False, "since": None, "fired_at": None, "cleared_at": None}, "ok"),
    ({"firing": False, "since": None, "fired_at": 10.0, "cleared_at": 20.0}, "ok"),  # fired once, cleared since
    ({"firing": False, "since": 30.0, "fired_at": None, "cleared_at": None}, "pending"),  # holds, its `for` not passed
    ({"firing": True, "since": 30.0, "fired_at": 40.0, "cleared_at": None}, "firing"),
    ({}, "ok"),
]


@pytest.mark.parametrize(("rule", "state"), RULES)
def test_a_rules_state_is_ok_pending_or_firing(rule: dict[str, Any], state: str) -> None:
    assert rule_state(rule) == state
