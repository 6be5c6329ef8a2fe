"""``LocalPlatform``: the embedded default — workflows through the local engine, models through local Seldon.

Declarative like Kubernetes: a submitted run is a folder ``<home>/runs/<name>/`` that a detached
engine process (``python -m scanflow_argo.platform.local_engine RUN_DIR``) works on; its status is read back from
``status.json``. WorkflowTemplates live in ``settings.templates_dir`` (``<home>/templates``).
Deployments are delegated to ``scanflow_argo.serving.controller.LocalDeployments``.

Beyond ``Platform`` it implements ``WorkflowAdmin`` (``base.py``), what an Argo Server serves: whole
Workflow documents listed through the runs index (``_local/index.py``) and selected as the API server
selects them, every lifecycle verb (``_local/control.py``), templates and CronWorkflows by kind, pod
logs by pod name and a change feed of runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from .._proc import cmdline_of, spawn
from ..clock import Clock, SystemClock, iso
from ..engine.api import prepare_run
from ..engine.core.manifest import TemplateStore
from ..engine.core.state import JOURNAL, load_status
from ..engine.features.artifacts import ArtifactRepo
from ..errors import ConflictError, EngineError, InvalidRequest, NotFoundError, PlatformError, UnavailableError
from ..serving.controller import LocalDeployments
from ..settings import Settings
from ._local import control
from ._local.claims import delete_owned
from ._local.index import RunsIndex, argo_view, read_run, resource_version, run_stat
from .base import (
    DeploymentStatus,
    Pairs,
    PodLog,
    RunStatus,
    SubmitTarget,
    already_exists,
    already_finished,
    check_parameters,
    declared_parameters,
)
from .selectors import LabelSelector

__all__ = ["LocalPlatform"]

TEMPLATE_KINDS = ("WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow")
_OBJECT_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
ENGINE_GONE = "the engine running this run is gone (killed or the machine restarted)"
"""The start of a run's ``message`` while it is ``Running`` without an engine (``get_run``, ``list``)."""


def _namespace_of(run_dir: Path) -> str:
    """The namespace of the run in ``run_dir`` (``default`` when its ``workflow.yaml`` cannot say)."""
    try:
        doc = yaml.safe_load((run_dir / "workflow.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return "default"
    meta = doc.get("metadata") if isinstance(doc, Mapping) else None
    return str((meta or {}).get("namespace") or "default") if isinstance(meta, Mapping) else "default"


class LocalPlatform:
    """The ``Platform`` (and ``WorkflowAdmin``) on this machine (state in ``settings.home``)."""

    name = "local"

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.namespace = settings.kubernetes.namespace
        self.clock = clock or SystemClock()
        self._index: RunsIndex | None = None

    # -- workflows --------------------------------------------------------------------------
    @property
    def runs_dir(self) -> Path:
        return self.settings.home / "runs"

    def _template_path(self, manifest: Mapping[str, Any]) -> Path:
        """Where a template lives: ``<templates>/<namespace>/<name>.yaml`` for a WorkflowTemplate or CronWorkflow
        (namespaced, as on the API server: one name in two namespaces is two objects; the manifest's namespace,
        else this platform's), ``<templates>/cluster-<name>.yaml`` for a ClusterWorkflowTemplate."""
        kind = manifest.get("kind")
        if kind not in TEMPLATE_KINDS:
            raise PlatformError(f"apply_template takes a {' or '.join(TEMPLATE_KINDS)}, not a {kind}")
        meta = manifest.get("metadata") or {}
        name = meta.get("name")
        if not name or "/" in name or name.startswith("."):
            raise PlatformError(f"the {kind} needs a valid metadata.name to be applied (got {name!r})")
        folder = self.settings.templates_dir
        if kind == "ClusterWorkflowTemplate":
            return folder / f"cluster-{name}.yaml"
        namespace = str(meta.get("namespace") or self.namespace)
        if not _NAMESPACE.fullmatch(namespace):
            raise PlatformError(
                f"the {kind} {name!r} names namespace {namespace!r}, which is no Kubernetes namespace name "
                "(lowercase letters, digits and '-', at most 63): fix metadata.namespace or --namespace"
            )
        migrate_templates(folder, self.namespace)
        return folder / namespace / f"{name}.yaml"

    def has_template(self, manifest: Mapping[str, Any]) -> bool:
        """True when a template of this kind and name is applied already."""
        return self._template_path(manifest).is_file()

    def apply_template(self, manifest: Mapping[str, Any], *, project_dir: Path | None = None) -> None:
        """Write the template to ``<templates>/<name>.yaml`` and record the project it belongs to.

        The project folder (default: the current one) is what script steps of runs from this
        template import from (``pipelines.*``), as the image holds the code on a cluster; it is
        kept beside the template in ``.<name>.project``, so ``submit(name, parameters)`` needs nothing more."""
        path = self._template_path(manifest)
        if manifest.get("kind") != "ClusterWorkflowTemplate":  # stored with the namespace it lives in
            meta = dict(manifest.get("metadata") or {})
            meta.setdefault("namespace", self.namespace)
            manifest = {**manifest, "metadata": meta}
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, yaml.safe_dump(dict(manifest), sort_keys=False))
        _atomic_write(_project_file(path), str((project_dir or Path.cwd()).resolve()))

    def project_dir(self, template: str, cluster: bool = False, namespace: str | None = None) -> Path | None:
        """The project folder recorded when ``template`` (of ``namespace``, default this platform's) was applied
        (None when unknown)."""
        kind = "ClusterWorkflowTemplate" if cluster else "WorkflowTemplate"
        try:
            path = self._template_path({"kind": kind, "metadata": {"name": template, "namespace": namespace}})
        except PlatformError:
            return None
        try:
            folder = Path(_project_file(path).read_text().strip())
        except OSError:
            return None
        return folder if folder.is_dir() else None

    def submit(self, workflow: SubmitTarget, parameters: Pairs | None = None, labels: Pairs | None = None) -> str:
        """Prepare the run (refusing what cannot run locally) and start its detached engine.

        Steps import the project's code from the folder recorded when the template was applied
        (``apply_template``), else from the current folder."""
        if isinstance(workflow, str):
            # as `argo submit --from workflowtemplate/NAME`: the server reads the template first, a missing one is
            # the caller's error (a Workflow naming it in workflowTemplateRef is accepted, and errored when run)
            migrate_templates(self.settings.templates_dir, self.namespace)
            try:  # Argo reads a WorkflowTemplate in the submitter's namespace only
                TemplateStore(self.settings.templates_dir, namespace=self.namespace).get(workflow)
            except EngineError:
                owners = [
                    t["metadata"]["namespace"]
                    for t in self.list_templates("WorkflowTemplate")
                    if t["metadata"]["name"] == workflow
                ]
                if not owners:
                    raise
                raise NotFoundError(
                    f'workflowtemplates.argoproj.io "{workflow}" not found in namespace {self.namespace!r} (it is in '
                    f"{', '.join(map(repr, owners))}): another namespace's template is run through its published "
                    "ClusterWorkflowTemplate (scanflow-argo team publish APP TEAM template FILE VERSION; docs/teams.md)"
                ) from None
            manifest: Mapping[str, Any] = {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "Workflow",
                "metadata": {"generateName": f"{workflow}-"},
                "spec": {"workflowTemplateRef": {"name": workflow}},
            }
        else:
            manifest = workflow
            if manifest.get("kind") in ("WorkflowTemplate", "ClusterWorkflowTemplate"):
                self.apply_template(manifest)
        if manifest.get("kind") == "Workflow":
            manifest = self._stamped(manifest)
        run_dir = self.prepare(manifest, parameters, labels=labels, source_dir=self._source_of(manifest))
        self.start_engine(run_dir)
        return run_dir.name

    def prepare(
        self,
        manifest: Mapping[str, Any],
        parameters: Mapping[str, str] | None = None,
        *,
        labels: Mapping[str, str] | None = None,
        entrypoint: str | None = None,
        templates: Iterable[Mapping[str, Any]] = (),
        source_dir: Path | None = None,
        log: Callable[[str], None] | None = None,
    ) -> Path:
        """The run folder of a new run of ``manifest`` (nothing runs yet), refused as the Argo API
        refuses it: a fixed name that is taken (``already exists``) and parameters the workflow does
        not declare; then the engine's own checks (``engine.api.prepare_run``)."""
        extra = list(templates)
        if parameters:
            namespace = (manifest.get("metadata") or {}).get("namespace") or self.namespace
            store = TemplateStore(self.settings.templates_dir, extra, namespace)
            declared = declared_parameters(manifest, lambda name, cluster: store.get(name, cluster))
            if declared is not None:
                check_parameters(parameters, declared, _describe(manifest))
        name = (manifest.get("metadata") or {}).get("name")
        if manifest.get("kind") == "Workflow" and name and (self.runs_dir / str(name)).exists():
            raise already_exists(str(name))
        return prepare_run(
            manifest,
            self.settings,
            parameters,
            entrypoint=entrypoint,
            templates=extra,
            source_dir=source_dir,
            labels=labels,
            log=log,
        )

    def _stamped(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """The manifest with the ``uid`` and ``creationTimestamp`` the API server gives an object at
        creation (the engine keeps them), so a run is identified before its engine starts; one naming no
        namespace is created in this platform's, as a create request to the API server lands in its URL's
        namespace (``argo submit -n NS``), not in ``default``."""
        meta = dict(manifest.get("metadata") or {})
        meta.setdefault("namespace", self.namespace)
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", iso(self.clock.now()))
        return {**manifest, "metadata": meta}

    def _source_of(self, manifest: Mapping[str, Any]) -> Path | None:
        spec = manifest.get("spec") or {}
        if manifest.get("kind") in ("WorkflowTemplate", "ClusterWorkflowTemplate"):
            ref = {"name": (manifest.get("metadata") or {}).get("name"), "clusterScope": manifest["kind"].startswith("Cluster")}
        else:
            ref = spec.get("workflowTemplateRef") or {}
        name = ref.get("name")
        namespace = (manifest.get("metadata") or {}).get("namespace")
        return self.project_dir(str(name), bool(ref.get("clusterScope")), namespace) if name else None

    def start_engine(self, run_dir: Path) -> int:
        """Start ``python -m scanflow_argo.platform.local_engine RUN_DIR`` in its own process group; returns its pid."""
        child = spawn(
            [self.settings.engine.python, "-m", "scanflow_argo.platform.local_engine", str(run_dir.resolve())],
            name=f"engine for {run_dir.name}",
            log=run_dir / "engine.log",
        )
        return child.pid

    def restart_engine(self, run_dir: Path, timeout: float = 15.0) -> int:
        """Start the engine again on a run that had one (resume, retry) and wait until it holds the run's
        lock, so no reader mistakes the moment before for an engine that died."""
        pid = self.start_engine(run_dir)
        deadline = time.monotonic() + timeout
        while control.engine_lock_free(run_dir):
            if cmdline_of(pid) is None or time.monotonic() > deadline:
                break  # it ended already (its log says why), or it is slow: readers will see
            time.sleep(0.02)
        return pid

    def run_dir(self, name: str) -> Path:
        if not name or len(name) > 253 or not _OBJECT_NAME.fullmatch(name):
            raise NotFoundError(f"no run named {name!r}")
        path = self.runs_dir / name
        if not (path / "status.json").is_file():
            raise NotFoundError(f"no run named {name!r} in {self.runs_dir} (scanflow-argo list shows the runs)")
        return path

    def _read(self, name: str) -> dict[str, Any]:
        run_dir = self.run_dir(name)
        for _ in range(5):  # the engine replaces the file atomically; retry a torn read of an older copy
            doc = load_status(run_dir)
            if doc is not None:
                return doc
            time.sleep(0.02)
        raise PlatformError(f"{run_dir / 'status.json'} cannot be read as JSON")

    def get_run(self, name: str) -> RunStatus:
        """The run as its ``status.json`` says; a run still ``Running``/``Pending`` whose engine is gone
        (killed, machine restarted) keeps its phase, as Argo would, and says so in ``message`` with the
        command that continues it."""
        return self._with_engine_state(self.run_dir(name), RunStatus.from_workflow(self._read(name)))

    def _with_engine_state(self, run_dir: Path, run: RunStatus) -> RunStatus:
        if run.done or not _engine_exited(run_dir) or self.engine_pid(run_dir) is not None:
            return run
        return replace(run, message=f"{ENGINE_GONE}: scanflow-argo resume {run.name}")

    def engine_alive(self, name: str) -> bool:
        """True while the run's engine process is running."""
        pid = self.engine_pid(self.run_dir(name))
        return pid is not None

    def engine_pid(self, run_dir: Path) -> int | None:
        try:
            pid = int((run_dir / "engine.pid").read_text())
        except (OSError, ValueError):
            return None
        argv = cmdline_of(pid)
        # only a process whose command line names this run folder is ours
        if argv is None or not any(str(run_dir.resolve()) in a or a.endswith(run_dir.name) for a in argv):
            return None
        return pid

    def list_runs(self, labels: Mapping[str, str] | None = None) -> list[RunStatus]:
        """Runs whose labels include ``labels``, newest first (chosen through the runs index: only the
        status files of the runs that match are read)."""
        out: list[RunStatus] = []
        for summary in self.list_workflows(selector=LabelSelector.of(labels)):
            with contextlib.suppress(PlatformError):  # deleted, or unreadable for now: as the old listing skipped it
                name = summary["metadata"]["name"]
                out.append(self._with_engine_state(self.runs_dir / name, RunStatus.from_workflow(self._read(name))))
        return out

    def wait(self, name: str, timeout: float | None = None, poll: float = 0.5) -> RunStatus:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            run = self.get_run(name)
            if run.done:
                return run
            if deadline is not None and time.monotonic() >= deadline:
                raise UnavailableError(f"run {name!r} did not finish within {timeout:.0f}s (phase {run.phase})")
            if not self.engine_alive(name) and run.phase in ("Running", "Pending"):
                # the engine may be starting (no pid yet) or gone; give it a moment before deciding
                time.sleep(min(poll, 0.5))
                if self.get_run(name).done:
                    continue
                if (
                    not self.engine_alive(name)
                    and (self.run_dir(name) / "engine.log").exists()
                    and _engine_exited(self.run_dir(name))
                ):
                    raise EngineError(f"the engine of run {name!r} stopped before the run ended: scanflow-argo resume {name}")
            time.sleep(poll)

    def logs(self, name: str, node: str | None = None, container: str = "main") -> str:
        run = self.get_run(name)
        run_dir = self.run_dir(name)
        pods = [n for n in run.nodes.values() if n.type == "Pod"]
        pods.sort(key=lambda n: (n.started_at or "", n.id))
        if node is not None:
            chosen = [n for n in pods if n.display_name == node or n.id == node]
            if not chosen:
                # a retry, steps or DAG node: the logs of the pods under it, in the order of its children
                # (``deploy`` → ``deploy(0)``, ``deploy(1)``: attempts can start within the same second)
                chosen = _pods_under(run, run.node(node) if node not in run.nodes else run.nodes[node])
            pods = chosen
        parts = []
        for n in pods:
            log = _container_log(run_dir / "nodes" / n.id, container)
            if log is None:
                if node is None:
                    continue  # only the pods that have this container
                found = sorted(p.name for p in (run_dir / "nodes" / n.id).glob("*.log"))
                raise PlatformError(
                    f"pod {n.display_name!r} of run {name!r} has no container {container!r}: its logs are {', '.join(found) or 'none yet'}"
                )
            text = log.read_text(errors="replace") if log.exists() else ""
            if node is not None:
                parts.append(text)
            else:
                parts.extend(f"{n.display_name}: {line}" for line in text.splitlines())
        return "".join(parts) if node is not None else "\n".join(parts) + ("\n" if parts else "")

    def stop(self, name: str) -> None:
        """Ask the run's engine to stop (SIGTERM): running nodes are stopped, exit handlers still run."""
        run_dir = self.run_dir(name)
        run = self.get_run(name)
        if run.done:
            raise already_finished(name, run.phase)
        pid = self.engine_pid(run_dir)
        if pid is None:
            raise PlatformError(f"run {name!r} has no engine running: resume it, or leave it")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)

    # -- WorkflowAdmin: what an Argo Server serves ---------------------------------------------
    @property
    def runs_index(self) -> RunsIndex:
        """The index of this home's runs (one per platform object; ``refresh()`` reports changes)."""
        if self._index is None:
            self._index = RunsIndex(self.runs_dir)
        return self._index

    def change_feed(self) -> RunsIndex:
        """A feed of run changes of its own (the Argo Server's watch streams read one); it reads the index
        file as a cache and leaves writing it to listing."""
        return RunsIndex(self.runs_dir, persist=False)

    def list_workflows(
        self, namespace: str | None = None, selector: LabelSelector | None = None, *, full: bool = False
    ) -> list[dict[str, Any]]:
        """Workflows (newest first) in ``namespace`` (None: all) whose labels match ``selector``: their
        summaries from the runs index, or with ``full`` the whole documents of the matching runs."""
        out = []
        for summary in self.runs_index.summaries():
            meta = summary.get("metadata") or {}
            if namespace and meta.get("namespace") != namespace:
                continue
            if selector and not selector.matches(meta.get("labels") or {}):
                continue
            if full:
                try:
                    summary = self.get_workflow(str(meta.get("name")))
                except NotFoundError:
                    continue  # deleted meanwhile
            out.append(summary)
        return out

    def get_workflow(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        """The whole Workflow document of run ``name`` as Argo serves it (``NotFoundError`` also when it
        is in another namespace than ``namespace``)."""
        try:
            run_dir = self.run_dir(name)
        except NotFoundError as err:
            raise NotFoundError(f'workflows.argoproj.io "{name}" not found') from err
        for _ in range(5):  # the engine replaces status.json atomically: retry a torn read
            found = run_stat(run_dir)
            doc = read_run(run_dir)
            if doc is not None and found is not None:
                break
            time.sleep(0.02)
        else:
            raise PlatformError(f"{run_dir / 'status.json'} cannot be read as JSON")
        if namespace and (doc.get("metadata") or {}).get("namespace") != namespace:
            raise NotFoundError(
                f'workflows.argoproj.io "{name}" not found (it is in namespace {doc["metadata"].get("namespace")!r})'
            )
        return argo_view(doc, resource_version(*found))

    def create_workflow(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Create (start) a Workflow; ``ConflictError`` when its name is taken. Returns it as created."""
        if manifest.get("kind") not in (None, "Workflow"):
            raise InvalidRequest(f"a Workflow is expected, not a {manifest.get('kind')}")
        wf = self._stamped({**manifest, "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow"})
        name = (wf.get("metadata") or {}).get("name")
        if name and (self.runs_dir / str(name)).exists():
            raise ConflictError(f'workflows.argoproj.io "{name}" already exists')
        run_dir = prepare_run(wf, self.settings, source_dir=self._source_of(wf))
        self.start_engine(run_dir)
        return self.get_workflow(run_dir.name)

    def delete_workflow(self, name: str) -> None:
        """Delete a run: its engine and nodes are ended first (as deleting a Workflow deletes its pods), and the
        claims it owns (a ``resource`` template's ``setOwnerReference``) go with it, as Kubernetes' garbage
        collector deletes what a deleted owner owned."""
        run_dir = self.run_dir(name)
        pid = self.engine_pid(run_dir)
        if pid is not None:
            control.kill_engine(run_dir, pid)
        namespace = _namespace_of(run_dir)
        shutil.rmtree(run_dir)
        delete_owned(self.settings.home, namespace, name)
        self.runs_index.refresh()

    def _live(self, name: str, verb: str) -> tuple[Path, dict[str, Any], int | None]:
        run_dir = self.run_dir(name)
        doc = self.get_workflow(name)
        if control.is_done(doc):
            ns = (doc.get("metadata") or {}).get("namespace", "")
            if verb == "suspend":
                raise InvalidRequest("cannot suspend completed workflows")
            # Argo answers this one as an internal error (util.AlreadyShutdownError), not a bad request
            raise PlatformError(f'cannot {verb} a completed workflow: workflow: "{name}", namespace: "{ns}"')
        return run_dir, doc, self._engine_pid_soon(run_dir)

    def _engine_pid_soon(self, run_dir: Path, timeout: float = 10.0) -> int | None:
        """The engine's pid; a run just submitted gets a moment for its engine to start (None: it has none)."""
        deadline = time.monotonic() + timeout
        while True:
            pid = self.engine_pid(run_dir)
            if pid is not None or time.monotonic() > deadline:
                return pid
            if _engine_exited(run_dir):
                return None  # it ran and ended (or died): nothing is starting
            time.sleep(0.02)

    def suspend(self, name: str) -> dict[str, Any]:
        """Argo's suspend: no node starts until ``resume`` (the engine is frozen; running nodes go on)."""
        run_dir, _, pid = self._live(name, "suspend")
        control.write_control(run_dir, suspend=True)
        if pid is not None:
            control.signal_engine(pid, signal.SIGSTOP)
        return self.get_workflow(name)

    def resume(self, name: str) -> dict[str, Any]:
        """Argo's resume: a suspended run goes on (an engine that died meanwhile is started again)."""
        run_dir = self.run_dir(name)
        control.write_control(run_dir, suspend=None)
        pid = self.engine_pid(run_dir)
        if pid is not None:
            control.signal_engine(pid, signal.SIGCONT)
        elif (
            not control.is_done(self.get_workflow(name))
            and (run_dir / "engine.lock").exists()
            and control.engine_lock_free(run_dir)
        ):
            self.restart_engine(run_dir)  # its engine was killed while suspended: continue, keeping what succeeded
        return self.get_workflow(name)

    def shutdown(self, name: str, strategy: str) -> dict[str, Any]:
        """Argo's ``stop`` (``Stop``: exit handlers run) or ``terminate`` (``Terminate``: they do not)."""
        if strategy not in ("Stop", "Terminate"):
            raise InvalidRequest(f"shutdown strategy {strategy!r}: use Stop or Terminate")
        run_dir, doc, pid = self._live(name, "shutdown")
        control.write_control(run_dir, shutdown=strategy, suspend=None)
        if strategy == "Stop" and pid is not None:
            control.signal_engine(pid, signal.SIGTERM)
            control.signal_engine(pid, signal.SIGCONT)  # a suspended engine must run to stop
            return self.get_workflow(name)
        if pid is not None:
            control.kill_engine(run_dir, pid)
            doc = read_run(run_dir) or doc
        # no engine (any more): the run is closed here, as Argo's controller closes it (no exit handler runs)
        _write_status(run_dir, control.terminated_document(doc, iso(self.clock.now()), strategy))
        self.runs_index.refresh()
        return self.get_workflow(name)

    def retry(
        self, name: str, restart_successful: bool = False, node_field_selector: str = "", parameters: Sequence[str] = ()
    ) -> dict[str, Any]:
        """Argo's retry: run the failed part again in the same run, reusing what succeeded."""
        run_dir = self.run_dir(name)
        doc = read_run(run_dir) or {}
        new = control.retry_document(doc, restart_successful, node_field_selector, parameters)
        if not control.engine_lock_free(run_dir):
            raise ConflictError(f"run {name!r} still has an engine ending: retry in a moment")
        if parameters:
            wf = yaml.safe_load((run_dir / "workflow.yaml").read_text())
            wf["spec"] = new["spec"]
            _atomic_write(run_dir / "workflow.yaml", yaml.safe_dump(wf, sort_keys=False))
        control.write_control(run_dir, shutdown=None, suspend=None)
        new["spec"] = {k: v for k, v in (new.get("spec") or {}).items() if k not in ("shutdown", "suspend")}
        _write_status(run_dir, new)
        self.restart_engine(run_dir)
        return self.get_workflow(name)

    def resubmit(self, name: str, parameters: Sequence[str] = (), memoized: bool = False) -> dict[str, Any]:
        """Argo's resubmit: a new run of the same Workflow (``resubmitted-from-workflow`` names this one)."""
        run_dir = self.run_dir(name)
        workflow = yaml.safe_load((run_dir / "workflow.yaml").read_text())
        manifest = self._stamped(control.resubmit_manifest(workflow, parameters, memoized))
        source = None
        with contextlib.suppress(OSError, ValueError, KeyError, IndexError):
            source = Path(json.loads((run_dir / "run.json").read_text())["pythonpath"][0])
        new_dir = prepare_run(manifest, self.settings, source_dir=source)
        self.start_engine(new_dir)
        return self.get_workflow(new_dir.name)

    def pod_log(self, name: str, pod: str, container: str = "main") -> PodLog:
        """Where the log of ``container`` of pod ``pod`` (its pod name, or its node id) is written."""
        run = self.get_workflow(name)
        nodes = (run.get("status") or {}).get("nodes") or {}
        found = [n for nid, n in nodes.items() if n.get("type") == "Pod" and (n.get("podName") == pod or nid == pod)]
        if not found:
            raise NotFoundError(f'pods "{pod}" not found (run {name!r} has no pod of that name)')
        node = found[0]
        node_dir = self.run_dir(name) / "nodes" / str(node["id"])
        path = _container_log(node_dir, container)
        if path is None:
            have = sorted(p.stem for p in node_dir.glob("*.log")) or ["main"]
            raise InvalidRequest(f"container {container} is not valid for pod {pod}: its containers are {', '.join(have)}")
        return PodLog(run=name, pod=str(node.get("podName") or node["id"]), node_id=str(node["id"]), path=path)

    def pod_done(self, name: str, node_id: str) -> bool:
        """True once the pod node (or its run) finished: its log will not grow any more."""
        try:
            run = self.get_workflow(name)
        except NotFoundError:
            return True
        node = ((run.get("status") or {}).get("nodes") or {}).get(node_id) or {}
        return node.get("phase") in ("Succeeded", "Failed", "Error", "Skipped", "Omitted") or control.is_done(run)

    # templates and CronWorkflows ------------------------------------------------------------
    def list_templates(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Applied templates of ``kind`` (WorkflowTemplate, ClusterWorkflowTemplate, CronWorkflow) by name: those of
        ``namespace``, or of every namespace when it is ``None`` (as a list at the API server's cluster scope);
        ClusterWorkflowTemplates are cluster-scoped and ignore it."""
        folder = self.settings.templates_dir
        if not folder.is_dir():
            return []
        if kind == "ClusterWorkflowTemplate":
            paths = sorted(folder.glob("cluster-*.yaml"))
        else:
            migrate_templates(folder, self.namespace)
            spaces = (
                [folder / namespace]
                if namespace
                else sorted(p for p in folder.iterdir() if p.is_dir() and _NAMESPACE.fullmatch(p.name))
            )
            paths = [p for d in spaces for p in sorted(d.glob("*.yaml"))]
        out = []
        for path in paths:
            doc = self._template_doc(path)
            if doc is not None and doc.get("kind") == kind:
                out.append(doc)
        return out

    def get_template(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        """One applied template of ``namespace`` (default this platform's; a ClusterWorkflowTemplate has none);
        ``NotFoundError`` as the API server words it."""
        path = (
            self._template_path({"kind": kind, "metadata": {"name": name, "namespace": namespace}})
            if _OBJECT_NAME.fullmatch(name or "") and (namespace is None or _NAMESPACE.fullmatch(namespace))
            else None
        )
        doc = self._template_doc(path) if path is not None else None
        plural = _PLURALS.get(kind, kind.lower())
        if doc is None or doc.get("kind") != kind:
            raise NotFoundError(f'{plural}.argoproj.io "{name}" not found')
        return doc

    def create_template(self, manifest: Mapping[str, Any], *, project_dir: Path | None = None) -> dict[str, Any]:
        """Create a template; ``ConflictError`` when its namespace has one of that name (a WorkflowTemplate and a
        CronWorkflow of one namespace share its folder)."""
        path = self._template_path(manifest)
        if path.exists():
            other = (self._template_doc(path) or {}).get("kind", "template")
            raise ConflictError(
                f'{_PLURALS.get(str(manifest.get("kind")), "templates")}.argoproj.io "{path.stem}" already exists'
                + (
                    f" (as a {other}: a namespace's local WorkflowTemplates and CronWorkflows share one folder)"
                    if other != manifest.get("kind")
                    else ""
                )
            )
        meta = {**(manifest.get("metadata") or {})}
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", iso(self.clock.now()))
        self.apply_template({**manifest, "metadata": meta}, project_dir=project_dir)
        return self._template_doc(path) or {}

    def update_template(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Replace an existing template; a stale ``metadata.resourceVersion`` is ``ConflictError``."""
        kind, name = str(manifest.get("kind")), str((manifest.get("metadata") or {}).get("name", ""))
        namespace = None if kind == "ClusterWorkflowTemplate" else (manifest.get("metadata") or {}).get("namespace")
        current = self.get_template(kind, name, namespace)
        wanted = (manifest.get("metadata") or {}).get("resourceVersion")
        if wanted and wanted != current["metadata"].get("resourceVersion"):
            raise ConflictError(
                f'Operation cannot be fulfilled on {_PLURALS.get(kind, kind)}.argoproj.io "{name}": the object has been '
                "modified; please apply your changes to the latest version and try again"
            )
        meta = {**(manifest.get("metadata") or {})}
        for key in ("uid", "creationTimestamp"):
            if current["metadata"].get(key):
                meta[key] = current["metadata"][key]
        meta.pop("resourceVersion", None)
        project = self.project_dir(name, kind == "ClusterWorkflowTemplate", namespace)
        self.apply_template({**manifest, "metadata": meta}, project_dir=project)
        return self.get_template(kind, name, namespace)

    def delete_template(self, kind: str, name: str, namespace: str | None = None) -> None:
        self.get_template(kind, name, namespace)
        path = self._template_path({"kind": kind, "metadata": {"name": name, "namespace": namespace}})
        path.unlink()
        with contextlib.suppress(FileNotFoundError):
            _project_file(path).unlink()

    def set_cron_suspended(self, name: str, suspend: bool, namespace: str | None = None) -> dict[str, Any]:
        """Suspend or resume a CronWorkflow (``spec.suspend``)."""
        doc = self.get_template("CronWorkflow", name, namespace)
        doc["spec"] = {**doc.get("spec", {}), "suspend": suspend}
        return self.update_template(doc)

    def _template_doc(self, path: Path) -> dict[str, Any] | None:
        """A template file as the API serves it (``resourceVersion`` from its file; no nulls)."""
        try:
            stat = path.stat()
            doc = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError):
            return None
        if not isinstance(doc, dict):
            return None
        meta = dict(doc.get("metadata") or {})
        meta.setdefault("name", path.stem.removeprefix("cluster-") if doc.get("kind") == "ClusterWorkflowTemplate" else path.stem)
        if doc.get("kind") != "ClusterWorkflowTemplate":
            meta.setdefault("namespace", path.parent.name)
        meta.setdefault("creationTimestamp", iso(stat.st_mtime))
        where = f"{meta['namespace']}/" if meta.get("namespace") else ""
        meta.setdefault("uid", str(uuid.uuid5(uuid.NAMESPACE_URL, f"scanflow-argo:{doc.get('kind')}/{where}{meta['name']}")))
        meta["resourceVersion"] = resource_version(stat)
        return {**doc, "metadata": meta}

    def list_deployments(self) -> list[DeploymentStatus]:
        """Every local SeldonDeployment, as ``get_deployment`` describes it."""
        deployments = self._deployments()
        out = []
        for name in deployments.list():
            with contextlib.suppress(NotFoundError):
                out.append(deployments.get(name))
        return out

    def delete_run(self, name: str) -> None:
        """``delete_workflow`` (its engine and nodes ended first), and the artifacts it stored in the local
        repository (``<home>/artifacts/<run>/``) with it: nothing of the run is left."""
        namespace = self._namespace_of_run(name)
        self.delete_workflow(name)
        for artifacts in (
            ArtifactRepo(self.settings.home / "artifacts", namespace).base / name,
            self.settings.home / "artifacts" / name,
        ):
            if artifacts.is_dir():
                shutil.rmtree(artifacts)

    def _namespace_of_run(self, name: str) -> str:
        """The namespace of run ``name`` (``default`` when its folder cannot say)."""
        return _namespace_of(self.runs_dir / name) if _OBJECT_NAME.fullmatch(name or "") else "default"

    def download_artifact(self, name: str, node: str, artifact: str, dest: Path) -> Path:
        """Copy an output artifact from the local repository (``<home>/artifacts``) to ``dest``."""
        target = self.get_run(name).node(node)
        arts = target.artifacts()
        if artifact not in arts:
            raise NotFoundError(
                f"node {node!r} of run {name!r} has no output artifact {artifact!r} (its artifacts: {', '.join(arts) or 'none'})"
            )
        location = arts[artifact].get("local")
        if not isinstance(location, Mapping) or not location.get("key"):
            raise PlatformError(f"artifact {artifact!r} of node {node!r} of run {name!r} is not in the local repository")
        dest = Path(dest)
        try:
            repo = ArtifactRepo(self.settings.home / "artifacts", self._namespace_of_run(name))
            repo.load(dict(location), dest, f"artifact {artifact!r} of {name}/{node}")
        except EngineError as err:
            raise NotFoundError(str(err)) from err
        return dest

    # -- model deployments ------------------------------------------------------------------
    def _deployments(self) -> Any:
        return LocalDeployments(self.settings)

    def apply_deployment(self, manifest: Mapping[str, Any]) -> None:
        self._deployments().apply(manifest)

    def get_deployment(self, name: str) -> DeploymentStatus:
        return self._deployments().get(name)

    def scale(self, name: str, replicas: int) -> DeploymentStatus:
        return self._deployments().scale(name, replicas)

    def roll(self, name: str, model_uri: str) -> DeploymentStatus:
        return self._deployments().roll(name, model_uri)

    def set_predictors(self, name: str, predictors: list[dict[str, Any]]) -> DeploymentStatus:
        return self._deployments().set_predictors(name, predictors)

    def delete_deployment(self, name: str) -> None:
        self._deployments().delete(name)


def _describe(manifest: Mapping[str, Any]) -> str:
    """``Workflow hello-`` / ``WorkflowTemplate mnist-train`` (with the template it refers to) for messages."""
    meta = manifest.get("metadata") or {}
    ref = ((manifest.get("spec") or {}).get("workflowTemplateRef") or {}).get("name")
    what = f"{manifest.get('kind', 'Workflow')} {meta.get('name') or meta.get('generateName') or '?'}"
    return f"WorkflowTemplate {ref}" if ref and not meta.get("name") else what


_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
"""A namespace name (an RFC 1123 label, as the API server validates ``metadata.namespace``)."""


def migrate_templates(folder: Path, namespace: str) -> list[Path]:
    """Move WorkflowTemplates and CronWorkflows kept at the top of ``folder`` (before templates were namespaced)
    into the folder of their namespace: their ``metadata.namespace``, else ``namespace`` (the one every
    namespace read them as). Nothing is lost: a file whose place is taken stays where it is, its project
    file moves with it, and ClusterWorkflowTemplates (``cluster-<name>.yaml``) stay. Returns the new paths."""
    moved: list[Path] = []
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        if path.name.startswith("cluster-"):
            continue
        try:
            doc = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError):
            continue
        if not isinstance(doc, dict) or doc.get("kind") not in ("WorkflowTemplate", "CronWorkflow"):
            continue
        raw = doc.get("metadata")
        meta: dict[str, Any] = raw if isinstance(raw, dict) else {}
        owner = str(meta.get("namespace") or namespace)
        if not _NAMESPACE.fullmatch(owner):
            continue
        target = folder / owner / path.name
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if not meta.get("namespace"):  # say where it lives, as every template written since does
            _atomic_write(path, yaml.safe_dump({**doc, "metadata": {**meta, "namespace": owner}}, sort_keys=False))
        with contextlib.suppress(FileNotFoundError):  # another process moved it first
            os.replace(_project_file(path), _project_file(target))
        try:
            os.replace(path, target)
        except FileNotFoundError:
            continue
        moved.append(target)
    return moved


def _project_file(template: Path) -> Path:
    """``.<name>.project`` beside ``<name>.yaml`` (a dot file: the engine's template store skips it)."""
    return template.with_name(f".{template.stem}.project")


_PLURALS = {
    "WorkflowTemplate": "workflowtemplates",
    "ClusterWorkflowTemplate": "clusterworkflowtemplates",
    "CronWorkflow": "cronworkflows",
}


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:
        return None


def _write_status(run_dir: Path, doc: Mapping[str, Any]) -> None:
    """Replace a run's status document (only while no engine runs it)."""
    _atomic_write(run_dir / "status.json", json.dumps(doc, separators=(",", ":"), default=str))
    with contextlib.suppress(FileNotFoundError):  # ``doc`` was read with the journal applied: it is compacted
        (run_dir / JOURNAL).unlink()


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _pods_under(run: RunStatus, top: Any) -> list[Any]:
    """The pod nodes below ``top`` (children followed transitively) that are inside it: Argo's children also lead
    out of a template (the next StepGroup hangs under the last pods of a nested steps template), the boundaries
    (``boundaryID``) say what is inside."""
    out, todo, seen = [], list(top.children), set()
    while todo:
        nid = todo.pop(0)
        if nid in seen or nid not in run.nodes:
            continue
        seen.add(nid)
        child = run.nodes[nid]
        if not _inside(run, child, top.id):
            continue
        if child.type == "Pod":
            out.append(child)
        todo.extend(child.children)
    return out


def _inside(run: RunStatus, node: Any, top: str) -> bool:
    """Whether ``top`` is among the boundaries around ``node``."""
    seen: set[str] = set()
    boundary = node.boundary_id
    while boundary and boundary not in seen:
        if boundary == top:
            return True
        seen.add(boundary)
        above = run.nodes.get(boundary)
        boundary = above.boundary_id if above is not None else None
    return False


def _engine_exited(run_dir: Path) -> bool:
    """True when the run has been started before (a lock exists) and no engine holds its lock."""
    return (run_dir / "engine.lock").exists() and control.engine_lock_free(run_dir)


def _container_log(node_dir: Path, container: str) -> Path | None:
    """The log file of one container of a pod: ``main.log``, a containerSet's ``<name>.log``, an init
    container's ``init-<name>.log`` or a sidecar's ``sidecar-<name>.log`` (None: no such container)."""
    if container == "main":
        return node_dir / "main.log"  # may not exist yet: the pod has not started
    for name in (f"{container}.log", f"init-{container}.log", f"sidecar-{container}.log"):
        if "/" not in container and (node_dir / name).is_file():
            return node_dir / name
    return None
