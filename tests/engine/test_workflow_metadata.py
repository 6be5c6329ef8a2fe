"""A Workflow's metadata and its global and input variables, as Argo's controller makes them:

- labels from templates: ``workflow/controller/operator.go`` ``setWfTemplateLabel`` (a run of a (Cluster)WorkflowTemplate
  is labelled with its name; the template's own ``metadata.labels`` are not copied: ``setStoredWfSpec`` joins only
  the workflowDefaults' metadata), ``workflow/common/convert.go`` ``NewWorkflowFromWorkflowTemplate`` and
  ``ConvertCronWorkflowToWorkflowWithProperties`` (a cron run gets the creator labels, the cron's name, its
  ``spec.workflowMetadata``);
- ``workflowMetadata.labelsFrom``: ``operator.go`` ``updateWorkflowMetadata``, after ``setGlobalParameters``;
- ``workflow.labels.json`` / ``workflow.annotations.json`` / ``workflow.parameters.json``: ``setGlobalParameters``;
- input parameters: ``workflow/common/util.go`` ``SubstituteParams`` (globals first, then the inputs, so one input's
  value may read another) and ``substituteAndGetConfigMapValue`` (a ConfigMap's name and key substituted first).
"""

from __future__ import annotations

from typing import Any

import pytest

from scanflow_argo.engine import run_workflow
from scanflow_argo.engine.core.manifest import TemplateStore, resolve_workflow
from scanflow_argo.engine.core.state import read_status
from scanflow_argo.settings import Settings

TEMPLATE_SPEC = {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": "busybox", "command": ["true"]}}]}


def _template(kind: str) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": "tmpl", "labels": {"owner": "science"}},
        "spec": {**TEMPLATE_SPEC, "workflowMetadata": {"labels": {"dataset": "mnist"}}},
    }


def _ref(cluster: bool) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "run-", "labels": {"mine": "yes"}},
        "spec": {"workflowTemplateRef": {"name": "tmpl", **({"clusterScope": True} if cluster else {})}},
    }


CRON = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "CronWorkflow",
    "metadata": {"name": "nightly", "labels": {"team": "ops", "workflows.argoproj.io/creator": "ada"}},
    "spec": {
        "schedule": "0 1 * * *",
        "workflowMetadata": {"labels": {"dataset": "mnist"}, "annotations": {"note": "cron"}},
        "workflowSpec": TEMPLATE_SPEC,
    },
}


@pytest.mark.parametrize(
    ("manifest", "templates", "labels"),
    [
        (
            _ref(False),
            [_template("WorkflowTemplate")],
            {"mine": "yes", "workflows.argoproj.io/workflow-template": "tmpl"},
        ),
        (
            _ref(True),
            [_template("ClusterWorkflowTemplate")],
            {"mine": "yes", "workflows.argoproj.io/cluster-workflow-template": "tmpl"},
        ),
        (_template("WorkflowTemplate"), [], {"workflows.argoproj.io/workflow-template": "tmpl"}),
        (_template("ClusterWorkflowTemplate"), [], {"workflows.argoproj.io/cluster-workflow-template": "tmpl"}),
        (
            CRON,
            [],
            {"workflows.argoproj.io/creator": "ada", "workflows.argoproj.io/cron-workflow": "nightly", "dataset": "mnist"},
        ),
    ],
    ids=["workflowTemplateRef", "cluster workflowTemplateRef", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow"],
)
def test_a_run_is_labelled_with_what_it_runs_and_not_with_the_templates_own_labels(
    manifest: dict[str, Any], templates: list[dict[str, Any]], labels: dict[str, str]
) -> None:
    wf = resolve_workflow(manifest, TemplateStore(None, templates))
    assert wf["metadata"]["labels"] == labels  # never the template's owner: science, nor the cron's team: ops
    if manifest["kind"] == "CronWorkflow":
        assert wf["metadata"]["annotations"] == {"note": "cron"}


def _echo(args: list[str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "meta-", "labels": {"l": "a"}, "annotations": {"ann": "x<y"}},
        "spec": {
            "entrypoint": "main",
            "arguments": {"parameters": [{"name": "foo", "value": "bar"}]},
            "templates": [{"name": "main", "container": {"image": "busybox", "command": ["echo"], "args": args}}],
            **spec,
        },
    }


def test_labels_from_expressions_and_json_variables(engine_settings: Settings) -> None:
    manifest = _echo(
        [
            "{{workflow.labels.json}}",
            "{{workflow.annotations.json}}",
            "{{=jsonpath(workflow.parameters.json, '$[0].value')}}",
            "{{workflow.labels.my-label}}",
        ],
        workflowMetadata={"labelsFrom": {"my-label": {"expression": "workflow.parameters.foo + '-' + workflow.labels.l"}}},
    )
    run = run_workflow(manifest, engine_settings)
    assert run.phase == "Succeeded", run.message
    labels = read_status(engine_settings.home / "runs" / run.name)["metadata"]["labels"]
    assert labels["my-label"] == "bar-a"
    # json.Marshal of the labels: sorted keys, HTML-escaped; the label from the expression is one of them
    out = run.node(run.name).outputs["result"]
    assert out == '{"l":"a","my-label":"bar-a"} {"ann":"x\\u003cy"} bar bar-a'


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("1 + 1", 'failed to evaluate label "x" expression "1 + 1" evaluted to int but must be a string'),
        ("'not valid!'", 'invalid label value "not valid!" for label "x"'),
        ("nosuch.name", 'failed to evaluate label "x" expression "nosuch.name": unknown name nosuch'),
    ],
)
def test_a_label_from_a_bad_expression_errors_the_workflow(engine_settings: Settings, expression: str, message: str) -> None:
    manifest = _echo(["hi"], workflowMetadata={"labelsFrom": {"x": {"expression": expression}}})
    run = run_workflow(manifest, engine_settings)
    assert run.phase == "Error" and message in (run.message or "")
    assert not run.nodes  # nothing ran


def test_an_input_value_reads_another_input_and_a_configmap_name_is_substituted(engine_settings: Settings) -> None:
    (engine_settings.home / "configmaps" / "cm-bar").mkdir(parents=True)
    (engine_settings.home / "configmaps" / "cm-bar" / "msg").write_text("from the configmap")
    manifest = _echo(["{{inputs.parameters.list}}", "{{inputs.parameters.late}}", "{{inputs.parameters.cm}}"])
    manifest["spec"]["templates"][0]["inputs"] = {
        "parameters": [
            {"name": "test", "value": "true"},
            # steps_test.go TestStepsWhenExprWithParamFilter: a pipe over concat, reading another input
            {
                "name": "list",
                "value": "{{= concat(['always'], inputs.parameters.test == 'true' ? ['test'] : []) | join(',') }}",
            },
            {"name": "late", "value": "{{inputs.parameters.test}}-{{workflow.parameters.foo}}"},
            # workflow_configmap_substitution_test.go TestNameSubstitution
            {"name": "cm", "valueFrom": {"configMapKeyRef": {"name": "cm-{{ workflow.parameters.foo}}", "key": "msg"}}},
        ]
    }
    run = run_workflow(manifest, engine_settings)
    assert run.phase == "Succeeded", run.message
    assert run.node(run.name).outputs["result"] == "always,test true-bar from the configmap"
