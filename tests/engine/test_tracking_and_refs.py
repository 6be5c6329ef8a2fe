"""Tracking started on demand, Kubernetes semantics of optional env refs, and steps that see the platform.

The on-demand test starts a real MLflow server (detached, recorded under ``<home>/mlflow/``) on a
free port through a real detached engine (``LocalPlatform.submit``), and stops it by its record.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from scanflow_argo import _proc
from scanflow_argo.engine import NoHooks, run_workflow
from scanflow_argo.engine.core.manifest import TemplateStore
from scanflow_argo.engine.features.run_hooks import workflow_tracks
from scanflow_argo.platform.local_engine import make_hooks

from .test_engine import sh, wf


def tracking_step(name: str = "main", script: str = 'echo "uri=$MLFLOW_TRACKING_URI"') -> dict:
    """A container as the compiler emits for ``@step(tracking=True)``: the URI from the scanflow-mlflow ConfigMap."""
    tmpl = sh(name, script)
    tmpl["container"]["env"] = [
        {
            "name": "MLFLOW_TRACKING_URI",
            "valueFrom": {"configMapKeyRef": {"name": "scanflow-mlflow", "key": "MLFLOW_TRACKING_URI"}},
        },
        {
            "name": "MLFLOW_TRACKING_USERNAME",
            "valueFrom": {
                "secretKeyRef": {"name": "scanflow-mlflow-credentials", "key": "MLFLOW_TRACKING_USERNAME", "optional": True}
            },
        },
    ]
    return tmpl


# -- Kubernetes semantics of env refs -----------------------------------------------------------------


def test_missing_optional_refs_leave_the_variable_unset(engine_settings) -> None:  # type: ignore[no-untyped-def]
    tmpl = sh("main", 'echo "${OPT_SECRET-unset} ${OPT_CM-unset} ${PRESENT-unset}"')
    tmpl["container"]["env"] = [
        {"name": "OPT_SECRET", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": True}}},
        {"name": "OPT_CM", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k", "optional": True}}},
        {"name": "PRESENT", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k", "optional": True}}},
    ]
    folder = engine_settings.home / "configmaps" / "cm"
    folder.mkdir(parents=True)
    (folder / "k").write_text("here")
    run = run_workflow(wf([tmpl]), engine_settings)
    assert run.phase == "Succeeded", run.message
    # Kubernetes omits an env var whose optional key is missing: not set to "" (that would print "  here")
    assert run.node(run.name).outputs["result"] == "unset unset here"


class UriHooks(NoHooks):
    """Hooks that supply the tracking variable, as MlflowHooks does."""

    def workflow_started(self, run: str, workflow: dict) -> dict[str, str]:
        return {"MLFLOW_TRACKING_URI": "http://127.0.0.1:9/from-hooks"}


def test_a_missing_tracking_config_map_is_fine_when_the_hooks_supply_the_uri(engine_settings) -> None:  # type: ignore[no-untyped-def]
    manifest = wf([tracking_step()])
    run = run_workflow(manifest, engine_settings)  # no hooks, no ConfigMap folder: a clear error naming the file
    message = run.node(run.name).message or ""
    assert run.phase == "Error" and "ConfigMap 'scanflow-mlflow' not found in namespace 'default'" in message
    assert "configmaps/.namespaces/default/scanflow-mlflow/MLFLOW_TRACKING_URI" in message
    run = run_workflow(manifest, engine_settings, hooks=UriHooks())
    assert run.phase == "Succeeded", run.node(run.name).message
    assert run.node(run.name).outputs["result"] == "uri=http://127.0.0.1:9/from-hooks"


# -- which runs track --------------------------------------------------------------------------------


def test_workflow_tracks_finds_the_tracking_env_also_through_template_refs() -> None:
    assert not workflow_tracks(wf([sh("main", "echo hi")]))
    assert workflow_tracks(wf([tracking_step()]))
    library = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": {"name": "lib"},
        "spec": {"templates": [tracking_step("train")]},
    }
    caller = wf([{"name": "main", "steps": [[{"name": "t", "templateRef": {"name": "lib", "template": "train"}}]]}])
    assert workflow_tracks(caller, TemplateStore(None, [library]))
    assert not workflow_tracks(caller)  # without the store the reference cannot be followed


def test_make_hooks_starts_the_local_server_only_for_workflows_that_track(engine_settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from scanflow_argo.tracking import server
    from scanflow_argo.tracking.hooks import MlflowHooks

    started: list[str] = []

    def fake_ensure(settings, timeout: float = 60) -> str:  # type: ignore[no-untyped-def]
        started.append(str(settings.home))
        return "http://127.0.0.1:5999"

    monkeypatch.setattr(server, "ensure_local_server", fake_ensure)
    said: list[str] = []
    on = replace(engine_settings, tracking=replace(engine_settings.tracking, enabled=True, uri=None, experiment="exp-x"))
    assert isinstance(make_hooks(on, wf([sh("main", "echo hi")]), log=said.append), NoHooks)
    assert started == [] and said == []  # a trivial workflow never pays MLflow's start
    hooks = make_hooks(on, wf([tracking_step()]), log=said.append)
    assert isinstance(hooks, MlflowHooks)
    assert (hooks.tracking_uri, hooks.experiment) == ("http://127.0.0.1:5999", "exp-x")
    assert started == [str(on.home)]
    assert said[-1] == "tracking in MLflow at http://127.0.0.1:5999 (experiment 'exp-x')"
    assert isinstance(make_hooks(replace(on, tracking=replace(on.tracking, enabled=False)), wf([tracking_step()])), NoHooks)
    assert len(started) == 1


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_submit_starts_mlflow_on_demand_for_a_tracking_workflow(engine_settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from scanflow_argo.platform.local import LocalPlatform
    from scanflow_argo.tracking._rest import MlflowRest
    from scanflow_argo.tracking.server import recorded_url, stop_recorded

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the detached engine must find no server configured

    port = _proc.free_port()
    s = replace(
        engine_settings, tracking=replace(engine_settings.tracking, enabled=True, uri=None, port=port, experiment="on-demand")
    )
    platform = LocalPlatform(s)
    try:
        trivial = platform.wait(platform.submit(wf([sh("main", "echo hi")])), timeout=60)
        assert trivial.phase == "Succeeded" and recorded_url(s) is None  # nothing started for it
        # two at once: both engines want the server; one starts it, the other waits for it
        name, other = platform.submit(wf([tracking_step()])), platform.submit(wf([tracking_step()]))
        run = platform.wait(name, timeout=150)
        assert run.phase == "Succeeded", run.message
        assert platform.wait(other, timeout=150).phase == "Succeeded"
        url = f"http://127.0.0.1:{port}"
        assert platform.get_run(other).node(other).outputs["result"] == f"uri={url}"
        assert recorded_url(s) == url
        assert run.node(name).outputs["result"] == f"uri={url}"
        assert f"tracking in MLflow at {url}" in (platform.run_dir(name) / "engine.log").read_text()
        rest = MlflowRest(url)
        try:
            exp = rest.experiment_id("on-demand")
            found = rest.search_runs([exp], f"tags.`scanflow.run` = '{name}' and tags.`scanflow.role` = 'workflow'")
            assert len(found) == 1 and found[0]["info"]["status"] == "FINISHED"
        finally:
            rest.close()
    finally:
        stop_recorded(s)
    assert recorded_url(s) is None


# -- steps see the platform's state ------------------------------------------------------------------


def test_steps_see_the_homes_platform_state(engine_settings) -> None:  # type: ignore[no-untyped-def]
    """A step that rolls a deployment reads and writes ``<home>`` (SCANFLOW_HOME), as a pod reaches the API server."""
    run = run_workflow(
        wf([sh("main", 'mkdir -p "$SCANFLOW_HOME/deployments/d" && echo seen > "$SCANFLOW_HOME/deployments/d/x"')]),
        engine_settings,
    )
    assert run.phase == "Succeeded", run.node(run.name).message
    assert (Path(engine_settings.home) / "deployments" / "d" / "x").read_text() == "seen\n"


def test_logs_of_a_retried_step_by_its_name(engine_settings) -> None:  # type: ignore[no-untyped-def]
    from scanflow_argo.platform.local import LocalPlatform

    manifest = wf(
        [
            {"name": "main", "steps": [[{"name": "deploy", "template": "flaky"}]]},
            sh("flaky", 'echo "try {{retries}}"; test {{retries}} -ge 1', retryStrategy={"limit": 2}),
        ]
    )
    run = run_workflow(manifest, engine_settings)
    assert run.phase == "Succeeded"
    # `logs RUN deploy` shows the attempts under the retry node (deploy(0), deploy(1)), as `argo logs` does
    assert LocalPlatform(engine_settings).logs(run.name, "deploy") == "try 0\ntry 1\n"


@pytest.mark.shared
def test_continue_on_fail_example_succeeds_as_on_argo(shared_dir, engine_settings) -> None:  # type: ignore[no-untyped-def]
    """Argo's examples/continue-on-fail.yaml ends Succeeded on Argo despite its expected-failure label
    (steps.go:373-380, operator.go:551-563; e2e TestContinueOnFail): see tests/engine/conformance.py."""
    run = run_workflow(shared_dir / "argo-examples" / "continue-on-fail.yaml", engine_settings)
    assert run.phase == "Succeeded"
    assert (run.node("C").phase, run.node("D").phase) == ("Failed", "Succeeded")


def test_a_submitted_workflow_template_runs_in_its_namespace(engine_settings) -> None:  # type: ignore[no-untyped-def]
    """As on Argo, where a run of a WorkflowTemplate lands in the template's namespace (deploy steps
    get ``SCANFLOW_NAMESPACE={{workflow.namespace}}``)."""
    template = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": {"name": "ns-check", "namespace": "team-a"},
        "spec": {"entrypoint": "main", "templates": [sh("main", "echo {{workflow.namespace}}")]},
    }
    run = run_workflow(template, engine_settings)
    assert run.phase == "Succeeded" and run.node(run.name).outputs["result"] == "team-a"
