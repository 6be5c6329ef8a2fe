"""Runs and results from Python — the same on this machine and on Argo.

``Client`` lists, reads, waits for, submits, resumes, stops and deletes workflow runs through the
``Platform`` protocol (``platform/base.py``), so one script works against the local engine and against a
cluster (``SCANFLOW_PLATFORM=kubernetes``); MLflow run ids come from the tracking server by the
``scanflow.run`` tag (``tracking/lookup.py``). Like Metaflow's ``Flow(...).latest_successful_run`` or
KFP's ``Client().get_run``, a ``Run`` reads its parameters, every step's outputs, artifacts (downloaded)
and logs::

    from scanflow_argo import Client

    client = Client()                                       # Settings.from_env(): local unless told otherwise
    run = client.submit("mnist-train", {"epochs": "2"}, wait=True)
    run.phase, run.parameters["epochs"], run.outputs["evaluate"]["accuracy"]
    run.artifact("train", "model", "./model")               # a file, or a folder for a folder artifact
    best = client.latest("mnist-train")                     # the newest Succeeded run of a workflow
    client.runs(workflow="mnist-train", phase="Failed", labels={"team": "vision"})
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .engine.core.manifest import created
from .errors import NotFoundError, PlatformError
from .platform import get_platform
from .platform.base import TERMINAL_PHASES, NodeStatus, Platform, RunStatus
from .settings import Settings
from .spec.application import Application
from .tracking.lookup import WorkflowRuns, safe_find
from .tracking.server import recorded_url, resolve_uri

__all__ = ["Client", "Run", "RunStep"]

PHASES = ("Pending", "Running", *sorted(TERMINAL_PHASES))


class Client:
    """The runs of one platform (``settings.platform``: ``local`` or ``kubernetes``) and their MLflow runs."""

    def __init__(self, settings: Settings | None = None, *, platform: Platform | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.platform: Platform = platform or get_platform(self.settings)

    # -- finding runs ---------------------------------------------------------------------------
    def runs(
        self,
        workflow: str | None = None,
        phase: str | None = None,
        labels: Mapping[str, str] | None = None,
        limit: int | None = None,
    ) -> list[Run]:
        """Runs, newest first, of ``workflow`` (a WorkflowTemplate, or a Workflow's name without its
        generated suffix), in ``phase``, carrying every label of ``labels``; at most ``limit``."""
        if phase is not None and phase not in PHASES:
            raise PlatformError(f"phase {phase!r} is not an Argo phase: use one of {', '.join(PHASES)}")
        out = []
        for status in self.platform.list_runs(dict(labels) if labels else None):
            if workflow is not None and status.workflow != workflow:
                continue
            if phase is not None and status.phase != phase:
                continue
            out.append(Run(self, status))
            if limit is not None and len(out) >= limit:
                break
        return out

    def run(self, name: str) -> Run:
        """The run named ``name``; ``NotFoundError`` when there is none."""
        return Run(self, self.platform.get_run(name))

    def latest(self, workflow: str, phase: str | None = "Succeeded") -> Run:
        """The newest run of ``workflow`` in ``phase`` (any phase with None); ``NotFoundError`` when none."""
        found = self.runs(workflow=workflow, phase=phase, limit=1)
        if not found:
            which = f"{phase} run" if phase else "run"
            raise NotFoundError(f"no {which} of workflow {workflow!r} on the {self.platform.name} platform")
        return found[0]

    # -- starting runs --------------------------------------------------------------------------
    def submit(
        self,
        workflow: Any,
        parameters: Mapping[str, Any] | None = None,
        labels: Mapping[str, str] | None = None,
        *,
        wait: bool = False,
        timeout: float | None = None,
    ) -> Run:
        """Start a run and return it at once (or when it ends, with ``wait``).

        ``workflow`` is the name of an applied WorkflowTemplate (as the Argo UI submits it), a Workflow
        or WorkflowTemplate manifest (a dict; a template is applied first), or a Python workflow —
        ``scanflow_argo`` or Hera, of any kind — compiled first. Values of ``parameters`` are turned
        into strings as Argo's are; undeclared names are refused."""
        target = _runnable(workflow)
        params = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in (parameters or {}).items()}
        if isinstance(target, Mapping) and target.get("kind") in ("WorkflowTemplate", "CronWorkflow"):
            target = created(target)  # Hera's WorkflowTemplate(generate_name=...): named as the API server names it
            self.platform.apply_template(target)
            target = str(target["metadata"]["name"])
        name = self.platform.submit(target, params, dict(labels or {}))
        run = self.run(name)
        return run.wait(timeout) if wait else run

    # -- MLflow ---------------------------------------------------------------------------------
    @property
    def tracking_uri(self) -> str:
        """Where runs are tracked: ``MLFLOW_TRACKING_URI`` / settings, else this home's local server."""
        if self.settings.platform == "local" and not self.settings.tracking.uri:
            return recorded_url(self.settings) or resolve_uri(self.settings)
        return resolve_uri(self.settings)

    def mlflow(self, run: str) -> WorkflowRuns | None:
        """The MLflow runs of workflow run ``run`` (None when it was not tracked or MLflow is away)."""
        return safe_find(self.tracking_uri, run, self.settings.tracking.experiment)


def _loop_index(display_name: str) -> tuple[int, str]:
    """``square(2:3)`` → 2: the order of a fan-out's children (Argo's ``loopNodes`` sort)."""
    inside = display_name.rpartition("(")[2].split(":")[0]
    return (int(inside), display_name) if inside.isdigit() else (1 << 30, display_name)


def _runnable(workflow: Any) -> Any:
    """A template name or manifest as is; a Python workflow compiled to its manifest."""
    if isinstance(workflow, (str, Mapping)):
        return workflow
    from .compile import compile_app  # compiling pulls in Hera: only when a Python object is submitted

    app = Application.of(workflow)
    runnable = [m for m in compile_app(app) if m.get("kind") in ("Workflow", "WorkflowTemplate", "CronWorkflow")]
    if len(runnable) != 1:
        raise PlatformError(f"{app!r} holds {len(runnable)} workflows: submit one of them (app.workflow(name))")
    return runnable[0]


@dataclass(frozen=True)
class RunStep:
    """One step (pod node) of a run: its phase, inputs and outputs by name."""

    name: str
    phase: str
    inputs: Mapping[str, str]
    outputs: Mapping[str, str]
    """Output parameters by name, plus ``result`` (what it printed) and ``exitCode`` as Argo reports them."""
    message: str | None
    started_at: str | None
    finished_at: str | None
    artifacts: tuple[str, ...]

    @classmethod
    def of(cls, node: NodeStatus) -> RunStep:
        return cls(
            name=node.display_name,
            phase=node.phase,
            inputs=node.input_parameters(),
            outputs=node.parameters(),
            message=node.message,
            started_at=node.started_at,
            finished_at=node.finished_at,
            artifacts=tuple(node.artifacts()),
        )


class Run:
    """One workflow run as it was when read (``refresh()`` reads it again)."""

    def __init__(self, client: Client, status: RunStatus) -> None:
        self._client = client
        self.status = status

    def __repr__(self) -> str:
        return f"Run({self.name!r}, workflow={self.workflow!r}, phase={self.phase!r})"

    # -- what it is -------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.status.name

    @property
    def workflow(self) -> str:
        return self.status.workflow

    @property
    def phase(self) -> str:
        return self.status.phase

    @property
    def done(self) -> bool:
        return self.status.done

    @property
    def succeeded(self) -> bool:
        return self.status.phase == "Succeeded"

    @property
    def message(self) -> str | None:
        """Why it is where it is (the first step that failed, the engine gone…), or None."""
        return self.status.reason()

    @property
    def parameters(self) -> dict[str, str]:
        return dict(self.status.parameters)

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.status.labels)

    @property
    def started_at(self) -> str | None:
        return self.status.started_at

    @property
    def finished_at(self) -> str | None:
        return self.status.finished_at

    # -- what it produced -------------------------------------------------------------------------
    @property
    def steps(self) -> dict[str, RunStep]:
        """Every pod node by display name, in the order they started (a retried step's attempts are
        ``name(0)``, ``name(1)``…; ``output``/``artifact`` take ``name`` and read the one that succeeded)."""
        pods = sorted((n for n in self.status.nodes.values() if n.type == "Pod"), key=lambda n: (n.started_at or "", n.id))
        return {n.display_name: RunStep.of(n) for n in pods}

    @property
    def outputs(self) -> dict[str, dict[str, str]]:
        """Step display name → its outputs by name (``result`` is what it printed). A retried step is listed
        under its own name too (``fit``, beside its attempts ``fit(0)``, ``fit(1)``…) with the outputs of the
        attempt that succeeded, as Argo's Retry node carries them (``workflow/controller/operator.go``,
        ``processNodeRetries`` copies the last child's outputs onto it)."""
        out = {name: dict(step.outputs) for name, step in self.steps.items() if step.outputs}
        for node in self.status.nodes.values():
            if node.type == "Retry" and node.display_name not in out:
                attempts = [n for n in self._attempts(node) if n.type == "Pod" and n.display_name in out]
                if attempts:
                    out[node.display_name] = out[attempts[0].display_name]
        return out

    def output(self, step: str, name: str = "result", *, as_json: bool = False) -> Any:
        """One output of one step (``as_json`` decodes it). For a fan-out (``withItems``/``withParam``) it is
        what a later step receives, as Argo aggregates it (``processAggregateNodeOutputs`` in
        ``workflow/controller/operator.go``): a JSON list of the succeeded children's values in loop order
        — results decoded as JSON, parameters as strings."""
        steps = self.steps
        step = self._pod(step)
        if step in steps:
            value = steps[step].outputs.get(name)
            if value is None:
                known = ", ".join(steps[step].outputs) or "none"
                raise NotFoundError(f"step {step!r} of run {self.name!r} has no output {name!r} (its outputs: {known})")
        else:
            value = json.dumps(self._aggregate(self.status.node(step), name))
        return json.loads(value) if as_json else value

    def _pod(self, step: str) -> str:
        """``step`` itself when it is a pod; for a retried step (``fit``, whose pods are ``fit(0)``, ``fit(1)``…)
        the attempt that succeeded last, as Argo's retry node reports its outputs."""
        if step in self.steps:
            return step
        try:
            node = self.status.node(step)
        except NotFoundError:
            return step
        if node.type == "Retry":
            attempts = [n for n in self._attempts(node) if n.type == "Pod"]
            if attempts:
                return attempts[0].display_name
        return step

    def _aggregate(self, node: NodeStatus, name: str) -> list[Any]:
        children = [self.status.nodes[c] for c in node.children if c in self.status.nodes]
        children.sort(key=lambda n: _loop_index(n.display_name))
        values: list[Any] = []
        for child in children:
            if child.phase != "Succeeded":
                continue
            value = child.parameters().get(name)
            if value is None and child.type != "Pod":  # a retry node: its last attempt holds the outputs
                value = next((a.parameters().get(name) for a in self._attempts(child)), None)
            if value is None:
                continue
            if name == "result":
                with contextlib.suppress(ValueError):  # Argo decodes each result as JSON where it is JSON
                    value = json.loads(value)
            values.append(value)
        return values

    def _attempts(self, node: NodeStatus) -> list[NodeStatus]:
        found = [self.status.nodes[c] for c in node.children if c in self.status.nodes]
        return sorted((n for n in found if n.phase == "Succeeded"), key=lambda n: n.finished_at or "", reverse=True)

    def artifact(self, step: str, name: str, dest: str | Path | None = None) -> Path:
        """Download output artifact ``name`` of ``step`` to ``dest`` (default: a folder under
        ``<home>/downloads/<run>/<step>/``) and return its path: the file, or the folder."""
        target = Path(dest) if dest is not None else self._client.settings.home / "downloads" / self.name / step / name
        return self._client.platform.download_artifact(self.name, self._pod(step), name, target)

    def logs(self, step: str | None = None, container: str = "main") -> str:
        """The log of ``step`` (by display name; a retried step's: every attempt's), or of every step, each
        line prefixed with its name."""
        return self._client.platform.logs(self.name, step, container)

    # -- MLflow -----------------------------------------------------------------------------------
    @property
    def mlflow(self) -> WorkflowRuns | None:
        """Its MLflow runs: ``.run_id`` (the workflow's), ``.nodes`` (step → nested run id), ``.url``."""
        return self._client.mlflow(self.name)

    @property
    def mlflow_run_id(self) -> str | None:
        found = self.mlflow
        return found.run_id if found else None

    # -- acting on it -----------------------------------------------------------------------------
    def refresh(self) -> Run:
        self.status = self._client.platform.get_run(self.name)
        return self

    def wait(self, timeout: float | None = None, poll: float = 0.5) -> Run:
        """Block until it ends (``UnavailableError`` after ``timeout`` seconds); returns itself, refreshed."""
        self.status = self._client.platform.wait(self.name, timeout=timeout, poll=poll)
        return self

    def stop(self) -> Run:
        """Stop it as ``argo stop`` does (exit handlers still run)."""
        self._client.platform.stop(self.name)
        return self.refresh()

    def resume(self) -> Run:
        """Continue it: locally after its engine stopped (nothing that succeeded runs again); on Argo a suspended one."""
        self._client.platform.resume(self.name)
        return self.refresh()

    def delete(self) -> None:
        """Delete it and what it stored (a running one is stopped first)."""
        self._client.platform.delete_run(self.name)
