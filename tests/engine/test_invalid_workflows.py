"""What Argo's controller refuses when it first operates a workflow ends the run at once, in Argo's phase and words.

Sources (argo-workflows f016ad89): ``workflow/controller/operator.go`` ``setExecWorkflow`` (a missing
``workflowTemplateRef`` target errors the workflow; a validation error fails it with ``invalid spec: …``),
``workflow/validate/validate.go`` (``validateArgumentsValues``, ``validateTemplateType``,
``validateTemplateHolder``; two template types in one template are refused before, at submit, by Argo 4's
CRD: ``test_manifest_shapes.py``), e2e ``test/e2e/malformed_resources_test.go`` and ``functional_test.go``
TestWorkflowTemplateRefWithExitHandlerError, ``operator_test.go`` TestUnsuppliedArgValue.
"""

from __future__ import annotations

import pytest

from scanflow_argo.engine import prepare_run, run_workflow
from scanflow_argo.engine.core.state import read_status
from scanflow_argo.settings import Settings


def wf(templates: list[dict], **spec: object) -> dict:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "invalid-"},
        "spec": {"entrypoint": "main", "templates": templates, **spec},
    }


ECHO = {"name": "main", "container": {"image": "busybox", "command": ["echo", "ran"]}}


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (
            wf([ECHO], arguments={"parameters": [{"name": "missing"}]}),
            "invalid spec: spec.arguments.missing.value or spec.arguments.missing.valueFrom is required",
        ),
        (  # a default alone is no value for a workflow argument (validateArgumentsValues)
            wf([ECHO], arguments={"parameters": [{"name": "d", "default": "x"}]}),
            "invalid spec: spec.arguments.d.value or spec.arguments.d.valueFrom is required",
        ),
        (
            wf([{"name": "main", "steps": [[{"name": "a", "template": "nope"}]]}]),
            "invalid spec: template name 'nope' undefined",
        ),
        (
            wf([{"name": "main", "steps": [[{"name": "a", "templateRef": {"name": "absent", "template": "t"}}]]}]),
            "invalid spec: template reference absent.t not found",
        ),
        (
            wf([ECHO, {"name": "bye"}], onExit="bye"),
            "invalid spec: templates.bye template type unspecified. choose one of: container, containerSet, steps, script, "
            "resource, dag, suspend, template, template ref",
        ),
    ],
)
def test_what_argos_validator_refuses_fails_the_run_at_once(engine_settings: Settings, manifest: dict, message: str) -> None:
    run = run_workflow(manifest, engine_settings)
    assert (run.phase, run.message, dict(run.nodes)) == ("Failed", message, {})
    status = read_status(engine_settings.home / "runs" / run.name)["status"]
    assert {"type": "Completed", "status": "True"} in status["conditions"]  # markWorkflowPhase on a completed phase


@pytest.mark.parametrize(("cluster", "kind"), [(False, "workflowtemplates"), (True, "clusterworkflowtemplates")])
def test_a_workflow_template_ref_to_nothing_errors_the_run_with_its_name_kept(
    engine_settings: Settings, cluster: bool, kind: str
) -> None:
    manifest = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "wellformed"},
        "spec": {"workflowTemplateRef": {"name": "malformed", "clusterScope": cluster}},
    }
    hints: list[str] = []
    run_dir = prepare_run(manifest, engine_settings, log=hints.append)
    assert run_dir.name == "wellformed"
    run = run_workflow({**manifest, "metadata": {"name": "wellformed-2"}}, engine_settings)
    assert (run.name, run.phase, run.message) == ("wellformed-2", "Error", f'{kind}.argoproj.io "malformed" not found')
    assert hints and "not found: apply it first" in hints[0]  # the engine's own words, printed beside Argo's


def dag(*tasks: dict) -> dict:
    return wf([{"name": "main", "dag": {"tasks": list(tasks)}}, {**ECHO, "name": "echo"}])


@pytest.mark.parametrize(
    ("manifest", "message"),
    [  # validate.go validateDAG → verifyNoCycles: a cycle used to end Succeeded with nothing run (issue #13)
        (
            dag({"name": "a", "template": "echo", "dependencies": ["a"]}),
            "invalid spec: templates.main.tasks dependency cycle detected: a->a",
        ),
        (
            dag(
                {"name": "a", "template": "echo", "dependencies": ["b"]},
                {"name": "b", "template": "echo", "dependencies": ["a"]},
            ),
            "invalid spec: templates.main.tasks dependency cycle detected: b->a->b",
        ),
        (
            dag(
                {"name": "a", "template": "echo", "depends": "c.Succeeded"},
                {"name": "b", "template": "echo", "depends": "a"},
                {"name": "c", "template": "echo", "depends": "b || a"},
            ),
            "invalid spec: templates.main.tasks dependency cycle detected: c->b->a->c",
        ),
        (  # validateWorkflowFieldNames: one of two same-named tasks was silently dropped
            dag({"name": "a", "template": "echo"}, {"name": "a", "template": "echo"}),
            "invalid spec: templates.main.tasks[1].name 'a' is not unique",
        ),
        (  # validateSteps: step names are unique across the groups
            wf(
                [
                    {"name": "main", "steps": [[{"name": "s", "template": "echo"}], [{"name": "s", "template": "echo"}]]},
                    {**ECHO, "name": "echo"},
                ]
            ),
            "invalid spec: templates.main.steps[1].name 's' is not unique",
        ),
        (  # ValidateWorkflow: spec.templates + validateWorkflowFieldNames
            wf([ECHO, {**ECHO, "container": {"image": "busybox", "command": ["echo", "other"]}}]),
            "invalid spec: spec.templates[1].name 'main' is not unique",
        ),
    ],
)
def test_argos_validator_refuses_cycles_and_duplicate_names(manifest: dict, message: str, engine_settings: Settings) -> None:
    status = run_workflow(manifest, engine_settings)
    assert (status.phase, status.message) == ("Failed", message)
    assert all(n.type != "Pod" for n in status.nodes.values())  # nothing ran
