"""containerSet templates in the local engine: several containers in one pod, ordered by ``dependencies``.

Argo's semantics (docs/container-set-template.md, the controller's container_set_template.go, the
emissary executor), as this module owns them:

- the pod node has one child node per container (type ``Container``, named ``<pod>.<container>``,
  boundary the pod); a container without dependencies is a child of the pod, a dependant a child of
  each container it depends on;
- containers start as soon as what they depend on succeeded, independent ones at once; each runs
  with its own command/args/env/image mapping and its own log (``nodes/<pod id>/<container>.log``),
  in its own root, with the pod's volumes (``containerSet.volumeMounts`` go to every container);
- a container that fails fails the pod: its dependants never start (failed, as the emissary makes
  them exit with the dependency's code); the others run to their end, as Argo's wait container waits for
  every container of the set (``workflow/executor/emissary/emissary.go`` ``Wait`` over
  ``Template.GetMainContainerNames``; e2e ``TestWorkflowTemplateWithRetryStrategyInContainerSet``: a
  sibling of a failed container still makes its retries); the pod's message is the ``main`` container's
  failure if it has one, else the first failed one's;
- ``containerSet.retryStrategy`` re-runs a failed command inside its container, ``duration`` apart.
  Argo's executor makes ``retries`` attempts in all (``wait.Backoff{Steps: retries}``: its e2e tests
  TestContainerSetRetry* and emissary_test RetryContainerSet* check exactly that), not ``retries + 1``
  as the field's comment says; with ``retries: 0`` Argo never runs the command, here it runs once;
- inputs are placed for, and ``outputs.result``/``exitCode``/parameters/artifacts come from, the
  container named ``main`` (Argo's rule; templates with input artifacts or outputs must have one).
"""

from __future__ import annotations

import copy
import re
import shutil
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import EngineError
from ..core.context import Call
from ..core.durations import go_seconds
from ..core.inputs import inputs_doc
from ..core.paths import safe_join
from ..core.state import NodeDoc, node_id
from ..features.images import check_image
from ..features.sandbox import NodeFS, ProcessResult, node_env, not_started, run_process
from ..features.volumes import PodVolumes, init_containers, mount_tops, run_init_containers
from .base import CheckContext, KindContext, NodeKind
from .pod import (
    DEADLINE,
    IGNORED_CONTAINER_FIELDS,
    argo_env,
    collect_outputs,
    container_env,
    finish_refused,
    place_inputs,
    pod_message,
    prepare_container,
    private_tops,
    timed,
)

__all__ = ["KIND", "MAIN", "ContainerSpec", "check", "check_container_set", "container_graph", "run"]

MAIN = "main"
RESERVED = ("init", "wait", "supervisor")
_NAME_RE = re.compile(r"[a-zA-Z0-9][-a-zA-Z0-9]*")


def check_container_set(tmpl: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    """Validate a containerSet template as Argo's validator does; returns its containers with the
    set's ``volumeMounts`` appended to each (Argo's ``GetContainers``)."""
    cset = tmpl.get("containerSet") or {}
    raw = cset.get("containers") or []
    if not raw:
        raise EngineError(f"{where}: containerSet.containers must have at least one container")
    seen: set[str] = set()
    for i, c in enumerate(raw):
        name = str((c or {}).get("name") or "")
        if not name:
            raise EngineError(f"{where}: containerSet.containers[{i}] has no name: name each container")
        if "{{" not in name and not _NAME_RE.fullmatch(name):
            raise EngineError(f"{where}: containerSet container name {name!r} is invalid: use letters, digits and '-'")
        if name in seen:
            raise EngineError(f"{where}: containerSet container name {name!r} is used twice: container names must be unique")
        if name in RESERVED:
            raise EngineError(f"{where}: containerSet container name {name!r} is reserved by Argo: rename the container")
        seen.add(name)
    paths: dict[str, str] = {}
    for m in cset.get("volumeMounts") or []:
        path = str(m.get("mountPath") or "")
        if path in paths:
            raise EngineError(f"{where}: containerSet.volumeMounts mountPath {path!r} is already mounted by {paths[path]!r}")
        paths[path] = str(m.get("name"))
    container_graph(raw, where)
    outs = tmpl.get("outputs") or {}
    if ((tmpl.get("inputs") or {}).get("artifacts") or outs.get("parameters") or outs.get("artifacts")) and MAIN not in seen:
        raise EngineError(
            f'{where}: containerSet.containers must have a container named "main" for input or output '
            "(Argo loads inputs and saves outputs only from the main container): rename the one that makes them"
        )
    retry_attempts(cset.get("retryStrategy"), where)
    shared = list(cset.get("volumeMounts") or [])
    out = []
    for c in raw:
        c = {k: v for k, v in c.items() if k != "dependencies"}
        c["volumeMounts"] = [*(c.get("volumeMounts") or []), *shared]
        out.append(c)
    return out


def container_graph(containers: Sequence[Mapping[str, Any]], where: str) -> dict[str, list[str]]:
    """Each container's dependencies; an unknown dependency or a cycle is an error naming the container."""
    deps = {str(c.get("name")): [str(d) for d in c.get("dependencies") or []] for c in containers}
    for name, ds in deps.items():
        for d in ds:
            if d not in deps:
                raise EngineError(
                    f"{where}: containerSet container {name!r} depends on {d!r}, which is not a container of the set "
                    f"(containers: {', '.join(deps)})"
                )
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = [*path[path.index(name) :], name]
            raise EngineError(
                f"{where}: containerSet container {name!r} is in a dependency cycle ({' -> '.join(cycle)}): "
                "remove one of these dependencies"
            )
        state[name] = 1
        for d in deps[name]:
            visit(d, [*path, name])
        state[name] = 2

    for name in deps:
        visit(name, [])
    return deps


def retry_attempts(strategy: Mapping[str, Any] | None, where: str) -> tuple[int, float]:
    """(attempts per container, seconds between them) of ``containerSet.retryStrategy``."""
    if not strategy or strategy.get("retries") is None:
        return 1, 0.0
    try:
        retries = int(str(strategy["retries"]))
    except ValueError as err:
        raise EngineError(f"{where}: containerSet.retryStrategy.retries {strategy['retries']!r} is not a number") from err
    if retries < 0:
        raise EngineError(f"{where}: containerSet.retryStrategy.retries must not be negative")
    duration = strategy.get("duration")
    seconds = go_seconds(duration, f"{where} containerSet.retryStrategy.duration") if duration else 0.0
    return max(1, retries), seconds


@dataclass
class ContainerSpec:
    """One container of the set, ready to run."""

    name: str
    deps: list[str]
    argv: list[str]
    env: dict[str, str]
    cwd: str | None
    log: Path
    node: NodeDoc
    missing: str | None = None
    """Argo's executor error when the command is not in the image (the container exits 64 at once)."""
    result: ProcessResult | None = None
    message: str | None = None
    phase: str = "Pending"


def run(ex: KindContext, call: Call) -> NodeDoc:
    """Run one attempt of a containerSet pod as node ``call.name``; returns the pod node (with ``_t0``/``_t1``)."""
    name, display, tmpl, inputs, parent, deadline = (
        call.name,
        call.display,
        call.template,
        call.inputs,
        call.parent,
        call.deadline,
    )
    vars_ = call.vars or {}
    nid = node_id(ex.name, name)
    if ex.state.reusable(nid) is not None:
        return _reuse(ex, nid, name, parent, tmpl)
    where = f"template {tmpl.get('name')!r}"
    node = ex.new_node(name, display, "Pod", parent, tmpl, phase="Pending")
    node["inputs"] = inputs_doc(inputs)
    node["podName"] = vars_["pod.name"]
    node_dir = ex.run_dir / "nodes" / nid
    if node_dir.exists():
        shutil.rmtree(node_dir, ignore_errors=True)
    node_dir.mkdir(parents=True)
    try:
        bodies = check_container_set(tmpl, where)
        deps = container_graph(tmpl["containerSet"]["containers"], where)
        attempts, pause = retry_attempts(tmpl["containerSet"].get("retryStrategy"), where)
    except EngineError as err:
        return ex.finish(node, "Error", str(err))
    kids = _container_nodes(ex, name, nid, tmpl, bodies, deps)
    try:
        pod = ex.volumes.pod(tmpl, node_dir, where, vars_)
        specs, main_fs = _prepare(ex, tmpl, vars_, inputs, nid, node_dir, pod, bodies, deps, kids, where)
    except EngineError as err:
        _close_kids(ex, kids, "Error", str(err))
        return finish_refused(ex, node, err)
    with ex.pod_slots:
        if ex.abort.is_set():
            _close_kids(ex, kids, "Failed", ex.abort_message or "Stopped")
            return ex.finish(node, "Failed", ex.abort_message or "Stopped")
        node["phase"] = "Running"
        node["startedAt"] = ex.state.now()
        extra = dict(ex.hook_env)
        extra.update(ex.run_hooks.node_started(ex.name, nid, node) or {})
        for spec in specs.values():
            spec.env = node_env({"SCANFLOW_HOME": ex.home_env, **spec.env, **extra}, ex.pythonpath)
        ex.changed()
        t0 = ex.clock.monotonic()
        failure = _run_inits(ex, tmpl, pod, node_dir, extra, deadline, where)
        if failure is not None:
            failed_phase, failed_message, log_path = failure
            pod.cleanup()
            _close_kids(ex, kids, "Failed", f"not started: {failed_message}")
            ex.finish(node, failed_phase, failed_message)
            ex.run_hooks.node_finished(ex.name, nid, node, log_path)
            return timed(node, t0, ex.clock.monotonic())
        culprit = _run_graph(ex, specs, deadline, attempts, pause)
        t1 = ex.clock.monotonic()
        # recorded finished before the slot is given back, as in container.py
        phase, message = _pod_phase(ex, specs, culprit)
        outputs: dict[str, Any] = {}
        main = specs.get(MAIN)
        if main is not None and main.result is not None and main_fs is not None:
            outputs = {"result": main.result.stdout.rstrip(), "exitCode": str(main.result.exit_code)}
            try:
                collect_outputs(ex, tmpl, main_fs, nid, outputs, failed=phase != "Succeeded", where=where)
            except EngineError as err:
                if phase == "Succeeded":
                    phase, message = "Error", str(err)
        pod.cleanup()
        if outputs:
            node["outputs"] = outputs
        ex.finish(node, phase, message)
    log = main.log if main is not None and main.log.exists() else next(iter(specs.values())).log
    ex.run_hooks.node_finished(ex.name, nid, node, log)
    return timed(node, t0, t1)


def _run_inits(
    ex: KindContext,
    tmpl: Mapping[str, Any],
    pod: PodVolumes,
    node_dir: Path,
    extra: Mapping[str, str],
    deadline: float | None,
    where: str,
) -> tuple[str, str, Path | None] | None:
    """The pod's init containers, before any container of the set; (phase, message, log) when one failed."""
    try:
        failed = run_init_containers(
            init_containers(tmpl),
            pod,
            ex.sandbox,
            ex.settings,
            node_dir,
            lambda c: {
                "SCANFLOW_HOME": ex.home_env,
                **container_env(ex, c, where),
                **extra,
                "ARGO_CONTAINER_NAME": str(c["name"]),
            },
            ex.pythonpath,
            deadline,
            ex.abort,
            ex.clock.monotonic,
        )
    except EngineError as err:
        return "Error", str(err), None
    if failed is None:
        return None
    name, result = failed
    message = pod_message(name, result)
    if result.reason is not None:
        message = DEADLINE if result.reason == "deadline" else ex.abort_message or "Stopped"
    return "Failed", message, node_dir / f"init-{name}.log"


def _reuse(ex: KindContext, nid: str, name: str, parent: str | None, tmpl: Mapping[str, Any]) -> NodeDoc:
    """Resume: the pod that already finished, with its container nodes, as it was."""
    for c in (tmpl.get("containerSet") or {}).get("containers") or []:
        prev = ex.state.previous_nodes.get(node_id(ex.name, f"{name}.{c.get('name')}"))
        if prev is not None:
            ex.state.put(copy.deepcopy(prev), write=False)
    reused = ex.reuse(nid, parent, tmpl)
    assert reused is not None  # reusable(nid) was checked by the caller
    return reused


def _container_nodes(
    ex: KindContext,
    name: str,
    nid: str,
    tmpl: Mapping[str, Any],
    bodies: Sequence[Mapping[str, Any]],
    deps: Mapping[str, list[str]],
) -> dict[str, NodeDoc]:
    """The pod's Container nodes (Pending), linked as Argo links them: roots under the pod, each
    dependant under what it depends on."""
    kids: dict[str, NodeDoc] = {}
    now = ex.state.now()
    for body in bodies:
        cname = str(body["name"])
        doc: dict[str, Any] = {
            "id": node_id(ex.name, f"{name}.{cname}"),
            "name": f"{name}.{cname}",
            "displayName": cname,
            "type": "Container",
            "phase": "Pending",
            "startedAt": now,
            "finishedAt": None,
        }
        if tmpl.get("name"):
            doc["templateName"] = tmpl["name"]
        doc["boundaryID"] = nid
        kids[cname] = ex.state.put(doc, write=False)
    for cname, ds in deps.items():
        for parent_name in ds or [""]:  # "": no dependency, a child of the pod
            ex.state.add_child(kids[parent_name]["id"] if parent_name else nid, kids[cname]["id"])
    ex.state.write()
    return kids


def _close_kids(ex: KindContext, kids: Mapping[str, NodeDoc], phase: str, message: str) -> None:
    with ex.state.lock:
        for kid in kids.values():
            if kid["phase"] in ("Pending", "Running"):
                kid["phase"], kid["finishedAt"], kid["message"] = phase, ex.state.now(), message
        ex.state.write()


def _prepare(
    ex: KindContext,
    tmpl: Mapping[str, Any],
    vars_: Mapping[str, Any],
    inputs: Mapping[str, Any],
    nid: str,
    node_dir: Path,
    pod: PodVolumes,
    bodies: Sequence[Mapping[str, Any]],
    deps: Mapping[str, list[str]],
    kids: Mapping[str, NodeDoc],
    where: str,
) -> tuple[dict[str, ContainerSpec], NodeFS | None]:
    """Each container's sandboxed argv, environment and log (``kinds/pod.py`` prepares each); ``main`` gets the
    pod's inputs and root."""
    specs: dict[str, ContainerSpec] = {}
    main_fs: NodeFS | None = None
    for body in bodies:
        cname = str(body["name"])
        cwhere = f"{where} container {cname!r}"
        # main's root is the pod's (as for a container template): inputs and outputs live there
        cdir = node_dir if cname == MAIN else safe_join(node_dir / "containers", cname, cwhere)
        if cname == MAIN:
            private = private_tops(tmpl, inputs, body)
        else:
            private = mount_tops([*(body.get("volumeMounts") or []), {"mountPath": body.get("workingDir") or "/argo"}])

        def stage(fs: NodeFS, main: bool = cname == MAIN) -> list[str]:
            if main:
                place_inputs(ex, inputs, fs, node_dir, where)
            return []

        prepared = prepare_container(
            ex,
            body,
            own_dir=cdir,
            pod=pod,
            private=private,
            env=argo_env(nid, str(vars_["pod.name"]), cname, tmpl.get("name")),
            where=cwhere,
            stage=stage,
        )
        if cname == MAIN:
            main_fs = prepared.fs
        specs[cname] = ContainerSpec(
            name=cname,
            deps=list(deps[cname]),
            argv=prepared.argv,
            env=prepared.env,
            cwd=prepared.cwd,
            missing=prepared.missing,
            log=node_dir / f"{cname}.log",
            node=kids[cname],
        )
    return specs, main_fs


def _run_graph(
    ex: KindContext, specs: dict[str, ContainerSpec], deadline: float | None, attempts: int, pause: float
) -> str | None:
    """Start each container once what it depends on succeeded; the dependants of a failed one fail
    without running, the others run on. Returns the name of the container that failed first, if one did."""
    halt = threading.Event()  # stops this pod's processes: the run stopped, or the pod's deadline
    cond = threading.Condition()
    running: set[str] = set()
    failed: list[str] = []

    def go(spec: ContainerSpec) -> None:
        try:
            _run_container(ex, spec, deadline, halt, attempts, pause)
        except Exception as err:  # an engine fault fails this container, not the engine
            spec.phase, spec.message = "Error", f"{spec.name}: {type(err).__name__}: {err}"
        with cond:
            running.discard(spec.name)
            if spec.phase != "Succeeded" and not failed:
                failed.append(spec.name)
            if spec.result is not None and spec.result.reason == "deadline":
                halt.set()  # the pod's deadline ends the whole pod
            cond.notify_all()

    with ThreadPoolExecutor(max_workers=len(specs)) as pool, cond:
        while True:
            if ex.abort.is_set():
                halt.set()
            for spec in specs.values():
                if spec.phase != "Pending" or spec.name in running:
                    continue
                # a dependency that failed by itself fails its dependants; one the pod's end stopped does not
                bad = next((d for d in spec.deps if _failed_by_itself(specs[d])), None)
                if bad is not None:
                    _skip(ex, spec, bad, specs[bad])
                elif not halt.is_set() and all(specs[d].phase == "Succeeded" for d in spec.deps):
                    running.add(spec.name)
                    spec.phase = "Running"
                    pool.submit(go, spec)
            if not running and (halt.is_set() or all(s.phase != "Pending" for s in specs.values())):
                break
            cond.wait(0.1)
    culprit = failed[0] if failed else None
    for spec in specs.values():
        if spec.phase == "Pending":  # never started: the run was stopped or the pod's deadline passed first
            reason = (ex.abort_message or "Stopped") if ex.abort.is_set() else f"not started: {DEADLINE}"
            _end(ex, spec, "Failed", f"{spec.name}: {reason}")
    return culprit


def _failed_by_itself(spec: ContainerSpec) -> bool:
    return spec.phase in ("Failed", "Error") and (spec.result is None or spec.result.reason is None)


def _skip(ex: KindContext, spec: ContainerSpec, dep: str, dep_spec: ContainerSpec) -> None:
    """A dependant of a failed container does not run; the emissary exits it with the dependency's code."""
    code = dep_spec.result.exit_code if dep_spec.result is not None else 1
    spec.result = ProcessResult(exit_code=code or 1, stdout="")
    _end(ex, spec, "Failed", f"{spec.name}: dependency {dep!r} exited with non-zero code: {code}")


def _end(ex: KindContext, spec: ContainerSpec, phase: str, message: str | None) -> None:
    spec.phase, spec.message = phase, message
    with ex.state.lock:
        spec.node["phase"] = phase
        spec.node["finishedAt"] = ex.state.now()
        if message:
            spec.node["message"] = message
    ex.changed()


def _run_container(
    ex: KindContext, spec: ContainerSpec, deadline: float | None, halt: threading.Event, attempts: int, pause: float
) -> None:
    """Run the container's command, again on failure as the retry strategy allows (the log grows)."""
    with ex.state.lock:
        spec.node["phase"] = "Running"
        spec.node["startedAt"] = ex.state.now()
    ex.changed()
    result = None
    for attempt in range(attempts):
        if attempt:
            _pause(ex, pause, halt)
            if halt.is_set():
                break
        if spec.missing is not None:  # Argo's executor looks the command up before its retries: no retry
            result = not_started(spec.log, spec.missing)
            break
        result = run_process(spec.argv, spec.env, spec.cwd, spec.log, deadline, halt, ex.clock.monotonic)
        if result.exit_code == 0 or result.reason is not None:
            break
    assert result is not None
    spec.result = result
    if result.reason == "deadline":
        _end(ex, spec, "Failed", f"{spec.name}: {DEADLINE}")
    elif result.reason == "stopped":
        _end(ex, spec, "Failed", f"{spec.name}: {ex.abort_message or 'Stopped'}")
    elif result.exit_code != 0:
        _end(ex, spec, "Failed", pod_message(spec.name, result))
    else:
        _end(ex, spec, "Succeeded", None)


def _pause(ex: KindContext, seconds: float, halt: threading.Event) -> None:
    """Wait between attempts through the run's clock, waking early when the pod is halted."""
    end = ex.clock.monotonic() + seconds
    while not halt.is_set():
        left = end - ex.clock.monotonic()
        if left <= 0:
            return
        ex.clock.sleep(min(left, 0.05))


def _pod_phase(ex: KindContext, specs: Mapping[str, ContainerSpec], culprit: str | None) -> tuple[str, str | None]:
    """Argo's pod verdict: Succeeded when every container did; else the main container's failure
    first (unless the pod's termination stopped it), then the container that failed first (a
    deadline or a stopped run says so instead)."""
    bad = [s for s in specs.values() if s.phase != "Succeeded"]
    if not bad:
        return "Succeeded", None
    if ex.abort.is_set():
        return "Failed", ex.abort_message or "Stopped"
    if any(s.result is not None and s.result.reason == "deadline" for s in bad):
        return "Failed", DEADLINE
    main = specs.get(MAIN)
    own = main is not None and main in bad and main.result is not None and main.result.reason is None
    first = main if own and main is not None else specs[culprit] if culprit is not None and culprit in specs else bad[0]
    phase = "Error" if first.phase == "Error" else "Failed"
    return phase, first.message


def check(tmpl: Mapping[str, Any], where: str, cc: CheckContext) -> None:
    """A containerSet's graph (names, dependencies, no cycle) and each container's image and command."""
    for c in check_container_set(tmpl, where):
        cwhere = f"{where} container {c['name']!r}"
        for key in IGNORED_CONTAINER_FIELDS:
            if key in c:
                cc.notes.add(f"container {key}")
        check_image(c, cwhere, cc.settings)


KIND = NodeKind("containerSet", "Pod", check, run)
