"""What users write: ``Application``, workflows of ``@step`` functions and ``container`` steps, ``Service``.

Everything here is plain Python with no I/O; ``validate`` checks it offline and
``scanflow_argo.compile`` turns it into manifests. Agent declarations live in ``spec/agent.py``.

    from scanflow_argo.spec import Application, ArtifactIn, ArtifactOut, Param, Retry, WorkflowTemplate, step

    @step(outputs={"rows": int}, retry=Retry(limit=2), timeout=600, resources={"cpu": "1", "memory": "1Gi"})
    def clean(raw: ArtifactIn, out: ArtifactOut, threshold: float = 0.5) -> dict:
        from mypkg import cleaning          # only the function's source travels: import inside
        return cleaning.run(raw, out, threshold)

    with WorkflowTemplate("prep", title="Prepare data", description="...",
                          parameters=[Param("threshold", float, 0.5, description="cut-off")]) as wf:
        got = fetch(url="https://example.org/data")               # another @step with an ArtifactOut `data`
        c = clean(raw=got.out.data, threshold=wf.params.threshold)   # depends on fetch: implied by data
        report(rows=c.out.rows).when(f"{c.out.rows} > 0")           # `when`; `.for_each(...)` fans out
        wf.on_exit(notify)                                           # exit handler

    app = Application("prep", namespace="ml", workflows=[wf])

Dependencies come from data flow, ``.after(task)`` or ``a >> b``; ``.named("x")`` renames a call.
The whole guide, with runnable snippets: docs/authoring.md; every feature in one app: examples/authoring/.
"""

from __future__ import annotations

from .application import DEFAULT_IMAGE, DEFAULT_SERVING_IMAGE, Application, ClusterStorage, MonitoringConfig, TrackingConfig
from .params import ITEM, NO_DEFAULT, ArtifactIn, ArtifactOut, Output, OutputRef, Param, ParamRef, Retry
from .service import Canary, Service, Shadow
from .step import ArtifactSpec, Step, Task, container, step
from .workflow import CronWorkflow, Workflow, WorkflowTemplate

__all__ = [
    "DEFAULT_IMAGE",
    "DEFAULT_SERVING_IMAGE",
    "ITEM",
    "NO_DEFAULT",
    "Application",
    "ArtifactIn",
    "ArtifactOut",
    "ArtifactSpec",
    "Canary",
    "ClusterStorage",
    "CronWorkflow",
    "MonitoringConfig",
    "Output",
    "OutputRef",
    "Param",
    "ParamRef",
    "Retry",
    "Service",
    "Shadow",
    "Step",
    "Task",
    "TrackingConfig",
    "Workflow",
    "WorkflowTemplate",
    "container",
    "step",
]
