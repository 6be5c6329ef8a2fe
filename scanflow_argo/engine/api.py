"""The engine's entry points: run in the foreground, prepare a run folder, run it detached, resume.

``prepare_run`` resolves and checks a manifest (refusing what cannot run locally before anything
runs) and writes ``<home>/runs/<name>/`` (workflow.yaml, run.json, a Pending status.json);
``execute(run_dir)`` runs a prepared folder; ``run_workflow`` does both in the foreground; ``resume``
continues a run whose engine died, skipping the nodes that already succeeded.

The engine knows no platform: what a run needs from outside — the run hooks (MLflow tracking) and the
applier of ``resource`` templates — is passed in. The local platform's composition root,
``scanflow_argo.platform.local_engine``, wires its own in (and is the detached engine:
``python -m scanflow_argo.platform.local_engine RUN_DIR``); without them a run tracks nothing and its
``resource`` nodes fail. ``kinds`` is the node-kind registry (tests add a fake kind to it).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from ..backoff import Backoff, retry
from ..clock import Clock, SystemClock, iso
from ..compile.crd import FieldError
from ..compile.schema import SchemaChecker
from ..errors import EngineError, InvalidWorkflow
from ..settings import Settings
from ..status import TERMINAL_PHASES, RunStatus
from .checks import check_supported
from .core.manifest import TemplateStore, apply_workflow_metadata, as_json_values, load_documents, load_yaml, resolve_workflow
from .core.state import RunState, read_status
from .features.run_hooks import NoHooks, RunHooks
from .kinds import REGISTRY, Registry, ResourceApplier
from .scheduler import Executor

__all__ = ["HooksFor", "execute", "prepare_run", "resume", "run_workflow", "settings_for", "split_documents"]

HooksFor = Callable[[Settings, dict[str, Any], TemplateStore, Callable[[str], None]], RunHooks]
"""Picks the run hooks of a run once its workflow and templates are known (the platform's ``make_hooks``)."""


def _settings_doc(settings: Settings) -> dict[str, Any]:
    eng = settings.engine
    return {
        "home": str(settings.home.resolve()),
        "parallelism": eng.parallelism,
        "sandbox": eng.sandbox,
        "python": eng.python,
        "image_map": dict(eng.image_map),
        "templates_dir": str(settings.templates_dir.resolve()),
        # a detached engine (or a resume) tracks where the run was meant to be tracked
        "tracking": {
            "uri": settings.tracking.uri,
            "enabled": settings.tracking.enabled,
            "experiment": settings.tracking.experiment,
            "port": settings.tracking.port,
        },
    }


def _namespace_of(manifest: Mapping[str, Any]) -> str:
    """The namespace whose WorkflowTemplates a run of ``manifest`` reads: the one it lands in (``default`` when it
    names none, as ``resolve_workflow`` places it)."""
    meta = manifest.get("metadata")
    return str((meta.get("namespace") if isinstance(meta, Mapping) else None) or "default")


SHAPE_PROBLEMS = ("must be of type", "should be greater than or equal to", "a lowercase RFC 1123", "must be no more than")
"""The structural schema problems refused here: a value of the wrong type, a number under its minimum, a name
Kubernetes cannot hold. Unknown fields are left to ``checks.py`` (which names what does not run here)."""

SCALAR_AS_STRING = re.compile(r'Invalid value: "(?:integer|number|boolean)": \S+ in body must be of type string')
"""A number or boolean where the schema wants a string (``args: [exit, 1]``, ``value: 1``) is not refused:
``argo submit`` and every Go client read the manifest through sigs.k8s.io/yaml into typed structs, whose
``yamlToJSON`` turns a scalar into the string its target field wants (yaml.go, ``convertToJSONableObject``
with a ``jsonTarget``), so the API server receives a string (Argo's e2e ``TestParametrizableLimit``,
operator_test.go ``TestDAGConfigMapCacheCreateWhenHaveRetryStrategy``)."""


def _refused_at_submit(err: FieldError) -> bool:
    """A field error the API server refuses a submission for that this engine must refuse too: every CEL rule of
    the CRD (``x-kubernetes-validations``: one template type, not both ``depends`` and ``dependencies``, no
    ``timeout`` on steps or a DAG, ``withSequence`` with both ``count`` and ``end``, …) and the shape problems above."""
    text = str(err)
    return err.rule or (any(k in text for k in SHAPE_PROBLEMS) and not SCALAR_AS_STRING.search(text))


def check_shape(manifest: Mapping[str, Any]) -> None:
    """Refuse a manifest Argo's API server refuses at submit, before a run folder exists: its Workflow CRD's
    schema (types, ``parallelism`` at least 1, names as Kubernetes' RFC 1123 rules) and CEL rules (the CRDs
    shipped in ``compile/schema.py``), in one line naming the field and what is allowed."""
    if not isinstance(manifest.get("metadata", {}), Mapping):
        raise EngineError("metadata: must be a mapping (name or generateName, labels, annotations), not a plain value")
    if manifest.get("kind") not in ("Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow"):
        return
    problems = SchemaChecker().problems(manifest, keep=_refused_at_submit)
    problems += _item_lists(manifest.get("spec"), "spec")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        first = re.sub(r"[^\s\"/:]{61,}", lambda m: m.group()[:40] + "…", problems[0])  # a 300-character name, once
        raise EngineError(f"refused as Argo's API server refuses it: {first}{more}")


def _item_lists(value: Any, path: str) -> list[str]:
    """``withItems`` that is no list, under ``path``: the CRD keeps its value unchecked
    (``x-kubernetes-preserve-unknown-fields``) but it is ``[]Item`` in Argo's Go types, so the argo CLI, the Argo
    Server and the controller (``controller.go``: "cannot unmarshall spec") all fail to decode it."""
    found: list[str] = []
    if isinstance(value, Mapping):
        items = value.get("withItems")
        if items is not None and not isinstance(items, list):
            kind = "object" if isinstance(items, Mapping) else "string" if isinstance(items, str) else "number"
            found.append(
                f"{path}.withItems: cannot unmarshal {kind} into []v1alpha1.Item: withItems must be a list of items "
                "(strings, numbers, booleans, lists or maps), as in withItems: [a, b]"
            )
        for key, sub in value.items():
            if key != "withItems":
                found += _item_lists(sub, f"{path}.{key}")
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            found += _item_lists(sub, f"{path}[{i}]")
    return found


def prepare_run(
    manifest: Mapping[str, Any],
    settings: Settings,
    parameters: Mapping[str, str] | None = None,
    *,
    entrypoint: str | None = None,
    templates: Iterable[Mapping[str, Any]] = (),
    source_dir: Path | None = None,
    labels: Mapping[str, str] | None = None,
    log: Callable[[str], None] | None = None,
    kinds: Registry = REGISTRY,
) -> Path:
    """Resolve and check ``manifest``; write its run folder and return it (nothing runs yet)."""
    check_shape(manifest)
    extra = list(templates)
    store = TemplateStore(settings.templates_dir, extra, _namespace_of(manifest))
    refused: InvalidWorkflow | None = None
    notes: list[str] = []
    wf: dict[str, Any] | None = None
    try:
        wf = resolve_workflow(manifest, store, parameters, entrypoint)
        if labels:
            wf["metadata"]["labels"] = {**(wf["metadata"].get("labels") or {}), **labels}
        apply_workflow_metadata(wf)  # after the submitter's labels: the controller's update comes later
        notes = check_supported(wf, store, settings, kinds)
    except InvalidWorkflow as err:  # Argo's controller accepts the workflow and ends it at once: so does the engine
        refused, wf = err, err.workflow or wf
        if wf is None:
            raise
        if log is not None and err.hint:
            log(err.hint)
    if notes and log is not None:
        log("ignored locally (Kubernetes-only): " + ", ".join(notes))
    runs = settings.home / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    run_dir = runs / wf["metadata"]["name"]
    try:
        run_dir.mkdir()
    except FileExistsError as err:
        raise EngineError(
            f"a run named {wf['metadata']['name']!r} already exists in {runs}: use generateName or another name"
        ) from err
    source = (source_dir or Path.cwd()).resolve()
    (run_dir / "workflow.yaml").write_text(yaml.safe_dump(wf, sort_keys=False))
    if extra:
        (run_dir / "templates.yaml").write_text(yaml.safe_dump_all([as_json_values(t) for t in extra], sort_keys=False))
    (run_dir / "run.json").write_text(
        json.dumps({"settings": _settings_doc(settings), "pythonpath": [str(source)], "notes": notes}, indent=1)
    )
    status = {**wf, "status": {"phase": "Pending", "nodes": {}, "startedAt": None, "finishedAt": None}}
    if refused is not None:
        now = iso(SystemClock().now())
        status["status"] = {
            "phase": refused.phase,
            "message": str(refused),
            "nodes": {},
            "startedAt": now,
            "finishedAt": now,
            "conditions": [{"type": "Completed", "status": "True"}],  # markWorkflowPhase on a completed phase
        }
    (run_dir / "status.json").write_text(json.dumps(status, indent=1))
    return run_dir


def settings_for(run_dir: Path, base: Settings | None = None) -> Settings:
    """The settings a run was prepared with (home, engine), on top of ``base``."""
    doc = json.loads((run_dir / "run.json").read_text())["settings"]
    base = base or Settings.from_env()
    eng = replace(
        base.engine,
        parallelism=int(doc["parallelism"]),
        sandbox=doc["sandbox"],
        python=doc["python"],
        image_map=dict(doc["image_map"]),
        templates_dir=Path(doc["templates_dir"]),
    )
    tracking = base.tracking
    if doc.get("tracking"):
        t = doc["tracking"]
        tracking = replace(tracking, uri=t["uri"], enabled=bool(t["enabled"]), experiment=t["experiment"], port=int(t["port"]))
    return replace(base, home=Path(doc["home"]), engine=eng, tracking=tracking)


class _RunLock:
    """One engine per run folder: an exclusive lock on ``engine.lock`` plus ``engine.pid``.

    Readers ask whether an engine holds a run by taking the lock for an instant
    (``platform._local.control.engine_lock_free``); an engine that meets such a probe waits ``grace``
    seconds for it before deciding that another engine runs the run (which holds it for good)."""

    def __init__(self, run_dir: Path, grace: float = 2.0) -> None:
        self.run_dir = run_dir
        self.grace = grace
        self.fh = open(run_dir / "engine.lock", "w")  # noqa: SIM115 - held for the run

    def __enter__(self) -> _RunLock:
        try:
            retry(
                lambda: fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB),
                Backoff(0.01, factor=1.0, max_elapsed=self.grace),
                SystemClock(),
                (BlockingIOError,),
            )
        except BlockingIOError as err:
            self.fh.close()
            raise EngineError(
                f"run {self.run_dir.name!r} is being run by another engine process (see {self.run_dir / 'engine.pid'})"
            ) from err
        (self.run_dir / "engine.pid").write_text(str(os.getpid()))
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            (self.run_dir / "engine.pid").unlink()
        self.fh.close()


def execute(
    run_dir: Path,
    settings: Settings | None = None,
    hooks: RunHooks | HooksFor | None = None,
    clock: Clock | None = None,
    on_change: Callable[[RunState], None] | None = None,
    log: Callable[[str], None] | None = None,
    handle_signals: bool = False,
    applier: ResourceApplier | None = None,
    kinds: Registry = REGISTRY,
) -> RunStatus:
    """Run (or continue) the prepared run in ``run_dir`` in this process; returns its final status.

    ``hooks`` are the run hooks, or a function that picks them for the run (``HooksFor``); ``applier``
    applies ``resource`` templates' manifests."""
    run_dir = Path(run_dir)
    settings = settings_for(run_dir, settings)
    wf = load_yaml((run_dir / "workflow.yaml").read_text())
    previous = read_status(run_dir)
    if previous.get("status", {}).get("phase") in TERMINAL_PHASES:
        return RunStatus.from_workflow(previous)
    extra = load_documents(run_dir / "templates.yaml") if (run_dir / "templates.yaml").exists() else []
    store = TemplateStore(settings.templates_dir, extra, _namespace_of(wf))
    meta = json.loads((run_dir / "run.json").read_text())
    # keep uid and creation time across resumes: they are part of the run's identity
    for key in ("uid", "creationTimestamp"):
        if previous.get("metadata", {}).get(key):
            wf["metadata"][key] = previous["metadata"][key]
    log = log or (lambda m: print(f"scanflow-argo: {m}", file=sys.stderr))
    with _RunLock(run_dir):
        if hooks is None:
            run_hooks: RunHooks = NoHooks()
        elif isinstance(hooks, RunHooks):
            run_hooks = hooks
        else:
            run_hooks = hooks(settings, wf, store, log)
        executor = Executor(
            run_dir,
            wf,
            settings,
            run_hooks,
            clock or SystemClock(),
            store,
            previous=previous if previous.get("status", {}).get("nodes") else None,
            pythonpath=[Path(p) for p in meta.get("pythonpath") or []],
            log=log,
            on_change=on_change,
            applier=applier,
            kinds=kinds,
        )
        if handle_signals and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: executor.stop())
            signal.signal(signal.SIGINT, lambda *_: executor.stop("Stopped by the user (Ctrl-C)"))
        try:
            doc = executor.run()
        except Exception as err:
            _mark_error(executor.state, err)
            raise
    return RunStatus.from_workflow(doc)


def _mark_error(state: RunState, err: BaseException) -> None:
    with state.lock:
        state.status["phase"] = "Error"
        state.status["message"] = f"engine error: {type(err).__name__}: {err}"
        state.status["finishedAt"] = iso(state.clock.now())
        state.write()


def run_workflow(
    manifest: Mapping[str, Any] | str | Path,
    settings: Settings,
    parameters: Mapping[str, str] | None = None,
    hooks: RunHooks | HooksFor | None = None,
    clock: Clock | None = None,
    *,
    entrypoint: str | None = None,
    source_dir: Path | None = None,
    on_change: Callable[[RunState], None] | None = None,
    applier: ResourceApplier | None = None,
    kinds: Registry = REGISTRY,
) -> RunStatus:
    """Run a Workflow (or WorkflowTemplate) manifest in the foreground; returns the final status.

    ``manifest`` may be a dict, a YAML string or a path; WorkflowTemplates in the same file are
    made available to ``templateRef``. Raises ``NotSupportedLocally``/``ImageNotMapped`` before
    anything runs."""
    docs: list[dict[str, Any]]
    if isinstance(manifest, Mapping):
        docs = [dict(manifest)]
    else:
        docs = load_documents(Path(manifest) if isinstance(manifest, Path) else manifest)
        if isinstance(manifest, Path):
            source_dir = source_dir or manifest.resolve().parent
    main, templates = split_documents(docs)
    run_dir = prepare_run(
        main, settings, parameters, entrypoint=entrypoint, templates=templates, source_dir=source_dir, kinds=kinds
    )
    return execute(run_dir, settings, hooks=hooks, clock=clock, on_change=on_change, applier=applier, kinds=kinds)


def split_documents(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The document to run and the WorkflowTemplates beside it."""
    runnable = [d for d in docs if d.get("kind") in ("Workflow", "CronWorkflow")]
    templates = [d for d in docs if d.get("kind") in ("WorkflowTemplate", "ClusterWorkflowTemplate")]
    if len(runnable) > 1:
        raise EngineError(f"{len(runnable)} Workflows in one file: run them one at a time")
    if runnable:
        return runnable[0], templates
    if len(templates) == 1:
        return templates[0], []
    kinds = ", ".join(sorted({str(d.get("kind")) for d in docs})) or "nothing"
    raise EngineError(f"nothing to run: expected a Workflow (or a single WorkflowTemplate), found {kinds}")


def resume(
    run_dir: Path | str,
    settings: Settings | None = None,
    hooks: RunHooks | HooksFor | None = None,
    clock: Clock | None = None,
    on_change: Callable[[RunState], None] | None = None,
    applier: ResourceApplier | None = None,
    kinds: Registry = REGISTRY,
) -> RunStatus:
    """Continue a run whose engine stopped (even ``kill -9``) without re-running succeeded nodes."""
    run_dir = Path(run_dir)
    status = read_status(run_dir)
    phase = status.get("status", {}).get("phase")
    if phase in TERMINAL_PHASES:
        raise EngineError(f"run {run_dir.name!r} already finished ({phase}): nothing to resume")
    return execute(run_dir, settings, hooks=hooks, clock=clock, on_change=on_change, applier=applier, kinds=kinds)
