"""Workflows as DAGs of step calls: ``Workflow``, ``WorkflowTemplate`` (for the Argo UI) and ``CronWorkflow``.

Build one in a ``with`` block; each step called inside becomes a DAG task::

    with WorkflowTemplate("mnist-train", title="Train MNIST", description="...",
                          parameters=[Param("epochs", int, 3, description="passes over the data")]) as wf:
        d = ingest(source=wf.params.data_source)
        t = train(data=d.out.data, epochs=wf.params.epochs)

A ``CronWorkflow`` either holds its own DAG or runs a WorkflowTemplate by reference
(``template="mnist-retrain"``, ``arguments={...}``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Self

from ..errors import SpecError
from .params import Param, ParamRef
from .step import Step, Task, _building

__all__ = ["TRACKING_ANNOTATION", "CronWorkflow", "Workflow", "WorkflowTemplate"]

TRACKING_ANNOTATION = "scanflow.io/tracking"
"""``"false"`` on a workflow's or a template's ``metadata.annotations``: the local engine records no MLflow
run there (``autolog=False`` sets it; ``scanflow_argo.tracking.hooks`` reads it)."""


class _Params:
    """``wf.params.<name>``: references to the workflow's parameters."""

    def __init__(self, wf: Workflow) -> None:
        self._wf = wf

    def __getattr__(self, name: str) -> ParamRef:
        if name.startswith("__"):
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, name: str) -> ParamRef:
        for p in self._wf.parameters:
            if p.name == name:
                return ParamRef(p)
        known = ", ".join(p.name for p in self._wf.parameters) or "none"
        raise SpecError(f"workflow {self._wf.name!r} has no parameter {name!r} (parameters: {known}) — add Param({name!r}, ...)")


class Workflow:
    """An Argo ``Workflow``: a DAG of step calls with parameters, an optional exit handler and limits."""

    kind = "Workflow"

    def __init__(
        self,
        name: str,
        *,
        parameters: Sequence[Param] = (),
        title: str | None = None,
        description: str | None = None,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        service_account: str | None = None,
        parallelism: int | None = None,
        timeout: int | None = None,
        generate_name: bool = False,
        autolog: bool = True,
    ) -> None:
        self.name = name
        self.parameters = list(parameters)
        self.title = title
        self.description = description
        self.labels = dict(labels or {})
        self.annotations = dict(annotations or {})
        self.service_account = service_account
        self.parallelism = parallelism
        self.timeout = timeout
        self.generate_name = generate_name
        self.autolog = autolog
        """False: the local engine records no MLflow run for it (annotation ``scanflow.io/tracking: "false"``)."""
        self.tasks: list[Task] = []
        self.exit_step: Step | None = None
        self.exit_args: dict[str, Any] = {}
        self._token: Any = None

    @property
    def params(self) -> _Params:
        return _Params(self)

    def on_exit(self, step: Step, **arguments: Any) -> None:
        """Run ``step`` when the workflow ends, whatever its outcome (``{{workflow.status}}`` tells which)."""
        self.exit_step = step
        self.exit_args = dict(arguments)

    def _add_task(self, task: Task) -> None:
        self.tasks.append(task)

    def __enter__(self) -> Self:
        if _building.get() is not None:
            raise SpecError(f"workflow {self.name!r}: `with` blocks of workflows cannot be nested")
        self._token = _building.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _building.reset(self._token)
        self._token = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, tasks={len(self.tasks)})"


class WorkflowTemplate(Workflow):
    """An Argo ``WorkflowTemplate`` made for the Argo UI: every parameter needs a ``description``;
    enums become dropdowns; ``title``/``description`` become the UI annotations."""

    kind = "WorkflowTemplate"


class CronWorkflow(Workflow):
    """An Argo ``CronWorkflow``: its own DAG, or ``template=`` (a WorkflowTemplate or its name) run by
    reference with ``arguments``; ``schedule`` is a cron expression in ``timezone``, or a list of them.

    Compiles to ``spec.schedules`` (a list), the field of Argo Workflows 3.6 and later; the singular
    ``schedule`` of older releases is deprecated there, and the schema this project checks against
    has only ``schedules``."""

    kind = "CronWorkflow"

    def __init__(
        self,
        name: str,
        *,
        schedule: str | Sequence[str],
        timezone: str = "UTC",
        concurrency_policy: str = "Forbid",
        template: WorkflowTemplate | str | None = None,
        arguments: Mapping[str, Any] | None = None,
        starting_deadline_seconds: int | None = None,
        successful_jobs_history_limit: int | None = None,
        failed_jobs_history_limit: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, **kwargs)
        self.schedules = [schedule] if isinstance(schedule, str) else list(schedule)
        self.timezone = timezone
        self.concurrency_policy = concurrency_policy
        self.template = template
        self.arguments = dict(arguments or {})
        self.starting_deadline_seconds = starting_deadline_seconds
        self.successful_jobs_history_limit = successful_jobs_history_limit
        self.failed_jobs_history_limit = failed_jobs_history_limit

    @property
    def schedule(self) -> str:
        """The schedules joined by ``, `` (for messages)."""
        return ", ".join(self.schedules)

    @property
    def template_name(self) -> str | None:
        if self.template is None:
            return None
        return self.template if isinstance(self.template, str) else self.template.name
