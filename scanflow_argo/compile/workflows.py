"""Spec workflows → Argo ``Workflow``/``WorkflowTemplate``/``CronWorkflow`` through Hera objects.

Each distinct step becomes one template (``script`` or ``container``); the calls become the tasks of
a DAG template ``main``; an exit handler becomes a DAG template ``exit-handler``. Steps that talk to
MLflow (``tracking=True``) get ``MLFLOW_TRACKING_URI`` from the tracking ConfigMap, optional credentials
by secretKeyRef, and ``SCANFLOW_WORKFLOW_UID``/``SCANFLOW_WORKFLOW_NAME``. Steps that roll deployments
(``deploys=True``) also get ``SCANFLOW_PLATFORM`` and ``SCANFLOW_ARTIFACTS_DESTINATION`` from optional
keys of that ConfigMap (set only by the cluster's kustomization, so the local engine stays local) and
``SCANFLOW_NAMESPACE={{workflow.namespace}}``. ``autolog=False`` (workflow or step) becomes the annotation
``scanflow.io/tracking: "false"``. Hera's ``to_dict()`` gives the manifest; keys come out sorted, so the
output is deterministic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..spec.params import OutputRef, Param, ParamRef, Retry, render_value
from ..spec.step import Step, Task
from ..spec.validate import task_dependencies
from ..spec.workflow import TRACKING_ANNOTATION, CronWorkflow, Workflow, WorkflowTemplate
from .nesting import nest_dags
from .script import env_name, script_source

if TYPE_CHECKING:
    from ..spec.application import Application

__all__ = ["compile_workflow", "labels_for", "workflow_service_account"]

TITLE_ANNOTATION = "workflows.argoproj.io/title"
DESCRIPTION_ANNOTATION = "workflows.argoproj.io/description"
RUN_AS_USER = 1000


TEAM_SERVICE_ACCOUNT = "scanflow-team-{component}"
"""A team environment's ServiceAccount for ``component`` (workflows, agents, serving; ``compile.teams``)."""


def workflow_service_account(app: Application) -> str:
    """The ServiceAccount workflows of ``app`` run under: its own (Role compiled in ``compile.kube``), or, for an
    application in its team's environment, the team's ``scanflow-team-workflows`` (Role in ``compile.teams``)."""
    if app.in_team_environment:
        return TEAM_SERVICE_ACCOUNT.format(component="workflows")
    return f"{app.name}-workflows"


def labels_for(app: Application, component: str | None = None) -> dict[str, str]:
    """Labels every object of ``app`` carries."""
    labels = {"app.kubernetes.io/managed-by": "scanflow-argo", "app.kubernetes.io/part-of": app.name}
    if app.team:
        labels["scanflow.io/team"] = app.team
    if component:
        labels["app.kubernetes.io/component"] = component
    return labels


def compile_workflow(wf: Workflow, app: Application) -> dict[str, Any]:
    """One spec workflow as an Argo manifest (a dict)."""
    # Hera: ~2 s to import, only to compile
    from hera.workflows import CronWorkflow as HeraCron
    from hera.workflows import Parameter
    from hera.workflows import Workflow as HeraWorkflow
    from hera.workflows import WorkflowTemplate as HeraTemplate
    from hera.workflows.models import WorkflowTemplateRef

    annotations = dict(wf.annotations)
    if not wf.autolog:
        annotations[TRACKING_ANNOTATION] = "false"
    if wf.title:
        annotations[TITLE_ANNOTATION] = wf.title
    if wf.description:
        annotations[DESCRIPTION_ANNOTATION] = wf.description
    common: dict[str, Any] = {
        "namespace": app.namespace,
        "labels": {**labels_for(app, "workflow"), **wf.labels},
        "annotations": annotations or None,
        "arguments": [_workflow_parameter(p) for p in wf.parameters] or None,
    }
    spec = _spec_fields(wf, app)
    if isinstance(wf, CronWorkflow):
        cron: dict[str, Any] = {
            "name": wf.name,
            "schedules": list(wf.schedules),  # Argo >= 3.6 (docs/cluster.md); `schedule` is deprecated there
            "timezone": wf.timezone,
            "concurrency_policy": wf.concurrency_policy,
            "starting_deadline_seconds": wf.starting_deadline_seconds,
            "successful_jobs_history_limit": wf.successful_jobs_history_limit,
            "failed_jobs_history_limit": wf.failed_jobs_history_limit,
            **common,
        }
        if wf.template is not None:
            cron["workflow_template_ref"] = WorkflowTemplateRef(name=wf.template_name)
            cron["arguments"] = [Parameter(name=k, value=render_value(v)) for k, v in sorted(wf.arguments.items())] or None
        else:
            cron.update(spec)
        obj = HeraCron(**cron).to_dict()
        if "workflowSpec" in obj["spec"]:
            obj["spec"]["workflowSpec"] = nest_dags(obj["spec"]["workflowSpec"])
        return obj
    if isinstance(wf, WorkflowTemplate):
        obj = HeraTemplate(name=wf.name, **common, **spec).to_dict()
    elif wf.generate_name:
        obj = HeraWorkflow(generate_name=f"{wf.name}-", **common, **spec).to_dict()
    else:
        obj = HeraWorkflow(name=wf.name, **common, **spec).to_dict()
    obj["spec"] = nest_dags(obj["spec"])  # Argo 4: at most 200 tasks per DAG template
    return obj


def _spec_fields(wf: Workflow, app: Application) -> dict[str, Any]:
    from hera.workflows import DAG  # Hera: ~2 s, only to compile
    from hera.workflows.models import PodSecurityContext  # Hera: ~2 s, only to compile

    steps: list[Step] = []
    for s in [t.step for t in wf.tasks] + ([wf.exit_step] if wf.exit_step else []):
        if s not in steps:
            steps.append(s)
    templates: list[Any] = [DAG(name="main", tasks=_tasks(wf.tasks))]
    if wf.exit_step is not None:
        exit_task = Task(step=wf.exit_step, name=wf.exit_step.name, args=wf.exit_args)
        templates.append(DAG(name="exit-handler", tasks=_tasks([exit_task])))
    templates += [_template(s, app) for s in steps]
    return {
        "entrypoint": "main",
        "templates": templates,
        "on_exit": "exit-handler" if wf.exit_step is not None else None,
        "service_account_name": wf.service_account or workflow_service_account(app),
        "parallelism": wf.parallelism,
        "active_deadline_seconds": wf.timeout,
        "security_context": PodSecurityContext(run_as_non_root=True, run_as_user=RUN_AS_USER),
    }


def _workflow_parameter(p: Param) -> Any:
    from hera.workflows import Parameter  # Hera: ~2 s, only to compile

    kwargs: dict[str, Any] = {"name": p.name, "description": p.description, "enum": p.rendered_enum()}
    if not p.required:
        kwargs["value"] = p.rendered_default()
    return Parameter(**kwargs)


def _input_parameter(p: Param) -> Any:
    from hera.workflows import Parameter  # Hera: ~2 s, only to compile

    kwargs: dict[str, Any] = {"name": p.name, "description": p.description, "enum": p.rendered_enum()}
    if not p.required:
        kwargs["default"] = p.rendered_default()
    return Parameter(**kwargs)


def _tasks(tasks: list[Task]) -> list[Any]:
    """The DAG's tasks. Argo 4 refuses ``continueOn`` beside ``depends`` and a DAG mixing ``depends`` with
    ``dependencies``: a DAG with a task that continues on failure lists its dependencies (``dependencies``,
    where ``continueOn`` lets dependents run after a failure), every other DAG uses ``depends``."""
    # Hera: ~2 s to import, only to compile
    from hera.workflows import Artifact, Parameter
    from hera.workflows import Task as HeraTask
    from hera.workflows.models import ContinueOn

    by_name = {t.name: t for t in tasks}
    listed = any(t.continue_on_failed for t in tasks)
    out = []
    for task in tasks:
        arguments: list[Any] = []
        for name in task.step.arg_order:
            if name not in task.args:
                continue
            value = task.args[name]
            if isinstance(value, OutputRef) and value.kind == "artifact":
                arguments.append(Artifact(name=name, from_=str(value)))
            else:
                arguments.append(Parameter(name=name, value=render_value(value)))
        deps = task_dependencies(task, by_name)
        with_param = task.param_items
        out.append(
            HeraTask(
                name=task.name,
                template=task.step.name,
                arguments=arguments or None,
                depends=None if listed else " && ".join(deps) or None,
                dependencies=deps or None if listed else None,
                when=task.condition,
                with_items=[_item(i) for i in task.items] if task.items is not None else None,
                with_param=str(with_param) if with_param is not None else None,
                continue_on=ContinueOn(failed=True) if task.continue_on_failed else None,
            )
        )
    return out


def _item(value: Any) -> Any:
    """A ``withItems`` element: Argo takes strings, numbers, booleans and objects as they are."""
    return str(value) if isinstance(value, (OutputRef, ParamRef)) else value


def _template(step: Step, app: Application) -> Any:
    from hera.workflows import Artifact, Container, Env, Parameter, Script  # Hera: ~2 s, only to compile
    from hera.workflows.models import SecurityContext, ValueFrom  # Hera: ~2 s, only to compile

    inputs: list[Any] = [_input_parameter(p) for p in step.inputs]
    inputs += [Artifact(name=a.name, path=a.path, optional=a.optional or None) for a in step.artifacts_in]
    outputs: list[Any] = []
    for o in step.outputs:
        path = o.path or f"/tmp/outputs/parameters/{o.name}"
        outputs.append(Parameter(name=o.name, value_from=ValueFrom(path=path), description=o.description))
    outputs += [Artifact(name=a.name, path=a.path) for a in step.artifacts_out]
    env: list[Any] = []
    if step.kind == "script":
        env += [Env(name=env_name(p.name), value=f"{{{{inputs.parameters.{p.name}}}}}") for p in step.inputs]
    env += [Env(name=k, value=v) for k, v in sorted(step.env.items())]
    env += _secret_env(step.secrets)
    if step.tracking:
        env += _tracking_env(app)
    if step.deploys:
        env += _platform_env(app)
    common: dict[str, Any] = {
        "name": step.name,
        "image": step.image or app.image,
        "inputs": inputs or None,
        "outputs": outputs or None,
        "env": env or None,
        "retry_strategy": _retry(step.retry),
        "active_deadline_seconds": step.timeout,
        "resources": _resources(step.resources),
        "security_context": SecurityContext(allow_privilege_escalation=False, run_as_non_root=True),
        "annotations": None if step.autolog else {TRACKING_ANNOTATION: "false"},
    }
    if step.kind == "script":
        return Script(command=["python"], source=script_source(step), **common)
    return Container(command=step.command, args=step.args, **common)


def _secret_env(secrets: Any, optional: bool | None = None) -> list[Any]:
    from hera.workflows import SecretEnv  # Hera: ~2 s, only to compile

    return [
        SecretEnv(name=k, secret_name=secret, secret_key=key, optional=optional)
        for k, (secret, key) in sorted(dict(secrets).items())
    ]


def _tracking_env(app: Application) -> list[Any]:
    from hera.workflows import ConfigMapEnv, Env, SecretEnv  # Hera: ~2 s, only to compile

    t = app.tracking
    return [
        ConfigMapEnv(name="MLFLOW_TRACKING_URI", config_map_name=t.config_map, config_map_key=t.uri_key),
        SecretEnv(name="MLFLOW_TRACKING_USERNAME", secret_name=t.secret, secret_key=t.username_key, optional=True),
        SecretEnv(name="MLFLOW_TRACKING_PASSWORD", secret_name=t.secret, secret_key=t.password_key, optional=True),
        Env(name="SCANFLOW_WORKFLOW_UID", value="{{workflow.uid}}"),
        Env(name="SCANFLOW_WORKFLOW_NAME", value="{{workflow.name}}"),
        # MLflow prints "View run … at: URL" to stdout when a run ends: it would land in outputs.result
        Env(name="MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", value="true"),
    ]


def _platform_env(app: Application) -> list[Any]:
    """What ``get_platform(Settings.from_env())`` needs in a step that rolls deployments on the cluster.

    Both ConfigMap keys are optional: absent (a local run, or the base install without a bucket),
    the variable is unset, so the step uses the local platform, or rolls only to storage URIs.
    """
    from hera.workflows import ConfigMapEnv, Env  # Hera: ~2 s, only to compile

    t = app.tracking
    return [
        ConfigMapEnv(name="SCANFLOW_PLATFORM", config_map_name=t.config_map, config_map_key=t.platform_key, optional=True),
        Env(name="SCANFLOW_NAMESPACE", value="{{workflow.namespace}}"),
        ConfigMapEnv(
            name="SCANFLOW_ARTIFACTS_DESTINATION",
            config_map_name=t.config_map,
            config_map_key=t.artifacts_destination_key,
            optional=True,
        ),
        ConfigMapEnv(
            name="SCANFLOW_SELDON_STORAGE_CONFIG",
            config_map_name=t.config_map,
            config_map_key=t.seldon_storage_key,
            optional=True,
        ),
    ]


def _retry(retry: Any) -> Any:
    from hera.workflows import RetryStrategy  # Hera: ~2 s, only to compile
    from hera.workflows.models import Backoff, IntOrString  # Hera: ~2 s, only to compile

    if retry is None or isinstance(retry, RetryStrategy):
        return retry
    assert isinstance(retry, Retry)
    backoff = None
    if retry.backoff or retry.factor or retry.max_duration:
        factor = None if retry.factor is None else IntOrString(retry.factor)
        backoff = Backoff(duration=retry.backoff, factor=factor, max_duration=retry.max_duration)
    return RetryStrategy(limit=retry.limit, retry_policy=retry.policy, backoff=backoff)


def _resources(res: Any) -> Any:
    from hera.workflows import Resources  # Hera: ~2 s, only to compile

    if res is None or isinstance(res, Resources):
        return res
    return Resources(
        cpu_request=res.get("cpu"),
        memory_request=res.get("memory"),
        cpu_limit=res.get("cpu_limit"),
        memory_limit=res.get("memory_limit"),
        gpus=res.get("gpu"),
    )
