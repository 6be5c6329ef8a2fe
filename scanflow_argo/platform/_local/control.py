"""Argo's lifecycle verbs on a local run folder: suspend, resume, stop, terminate, retry, resubmit, delete.

Argo asks its controller through the Workflow's spec (``spec.suspend``, ``spec.shutdown``) and, for
retry, rewrites the status (``workflow/util/util.go``: ``SuspendWorkflow``, ``ResumeWorkflow``,
``StopWorkflow``, ``TerminateWorkflow``, ``FormulateRetryWorkflow``, ``FormulateResubmitWorkflow``).
Locally a detached engine process owns the run and its ``status.json``, so each verb acts on that
process and records what was asked in ``control.json`` (merged into the served spec):

- **suspend** freezes the engine (``SIGSTOP``): no node starts until **resume** (``SIGCONT``), as no pod is
  created while Argo's ``spec.suspend`` is set. Running nodes keep running; what they print on stdout
  reaches their log when the engine runs again.
- **stop** is the engine's own stop (``SIGTERM``): running nodes are stopped, exit handlers still run.
- **terminate** ends the run now without exit handlers: the engine is frozen, the process groups of
  its nodes and the engine are killed, and the status is closed as Argo closes it
  (``Stopped with strategy 'Terminate'``).
- **retry** keeps what succeeded and starts the engine again on the same folder (the engine's resume
  reuses succeeded nodes by id); **resubmit** is a new run of the same resolved Workflow.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import os
import signal
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..._proc import children_of
from ...errors import InvalidRequest, PlatformError
from ..base import TERMINAL_PHASES
from ..selectors import FieldSelector
from .index import CONTROL_FILE, LABEL_COMPLETED, LABEL_PHASE

__all__ = [
    "LABEL_RESUBMITTED_FROM",
    "engine_lock_free",
    "kill_engine",
    "read_control",
    "resubmit_manifest",
    "retry_document",
    "terminated_document",
    "write_control",
]

LABEL_RESUBMITTED_FROM = "workflows.argoproj.io/resubmitted-from-workflow"
"""Argo's ``common.LabelKeyPreviousWorkflowName``: the run a resubmitted one came from."""
_FULFILLED = frozenset({"Succeeded", "Failed", "Error", "Skipped", "Omitted"})
_KEEP_ON_RETRY = frozenset({"Succeeded", "Skipped", "Omitted"})
_NOT_CARRIED = frozenset({LABEL_PHASE, LABEL_COMPLETED, "workflows.argoproj.io/creator"})


# -- control.json ------------------------------------------------------------------------------


def read_control(run_dir: Path) -> dict[str, Any]:
    try:
        doc = json.loads((run_dir / CONTROL_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def write_control(run_dir: Path, **changes: Any) -> None:
    """Set (or, with ``None``, remove) keys of ``control.json``; touches ``status.json`` so indexes re-read it."""
    doc = read_control(run_dir)
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    path = run_dir / CONTROL_FILE
    if doc:
        tmp = path.with_name(f".{CONTROL_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, path)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    with contextlib.suppress(OSError):
        os.utime(run_dir / "status.json")


# -- the engine process --------------------------------------------------------------------------


def signal_engine(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def engine_lock_free(run_dir: Path) -> bool:
    """True when no engine holds the run's lock (it never started, or it ended, even killed)."""
    lock = run_dir / "engine.lock"
    if not lock.exists():
        return True
    with open(lock) as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(fh, fcntl.LOCK_UN)
    return True


def kill_engine(run_dir: Path, pid: int, timeout: float = 10.0) -> None:
    """End the engine ``pid`` and everything it runs, now: freeze it (no node starts meanwhile), kill
    the process group of each of its children (nodes, sidecars, daemons lead their own), then its own
    group; wait until its lock on the run is free."""
    signal_engine(pid, signal.SIGSTOP)
    for child in children_of(pid):
        try:
            group = os.getpgid(child)
        except ProcessLookupError:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group == child:
                os.killpg(group, signal.SIGKILL)
            else:
                os.kill(child, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    signal_engine(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while not engine_lock_free(run_dir):
        if time.monotonic() > deadline:
            raise PlatformError(f"the engine of run {run_dir.name!r} (pid {pid}) did not end within {timeout:.0f}s")
        time.sleep(0.02)


# -- documents -----------------------------------------------------------------------------------


def terminated_document(doc: Mapping[str, Any], now: str, strategy: str = "Terminate") -> dict[str, Any]:
    """The status after Argo's shutdown with ``strategy`` and no engine left to run an exit handler: the run
    and every unfinished node Failed, ``Stopped with strategy '<strategy>'``."""
    message = f"Stopped with strategy '{strategy}'"
    out = copy.deepcopy(dict(doc))
    status = out.setdefault("status", {})
    for node in (status.get("nodes") or {}).values():
        if node.get("phase") not in _FULFILLED:
            node["phase"] = "Failed"
            node["message"] = message
            node["finishedAt"] = now
    status["phase"] = "Failed"
    status["message"] = message
    status["finishedAt"] = now
    return out


def node_fields(node: Mapping[str, Any]) -> dict[str, str]:
    """The fields a node field selector matches on (Argo's ``SelectorMatchesNode``)."""
    ref = node.get("templateRef") or {}
    out = {
        "displayName": str(node.get("displayName", "")),
        "templateName": str(ref.get("template") or node.get("templateName") or ""),
        "phase": str(node.get("phase", "")),
        "name": str(node.get("name", "")),
        "id": str(node.get("id", "")),
    }
    if ref:
        out["templateRef.name"] = str(ref.get("name", ""))
        out["templateRef.template"] = str(ref.get("template", ""))
    for p in (node.get("inputs") or {}).get("parameters") or []:
        if "name" in p:
            out[f"inputs.parameters.{p['name']}.value"] = str(p.get("value", ""))
    return out


def retry_document(
    doc: Mapping[str, Any], restart_successful: bool = False, node_field_selector: str = "", parameters: Sequence[str] = ()
) -> dict[str, Any]:
    """The status to continue from after Argo's retry: failed nodes (and, with ``restart_successful``,
    the nodes the selector picks and everything after them) dropped, so the engine runs them again;
    succeeded nodes kept, so it reuses them. Refuses what Argo refuses, with Argo's messages."""
    name = str((doc.get("metadata") or {}).get("name", ""))
    phase = (doc.get("status") or {}).get("phase")
    if phase == "Succeeded":
        if not restart_successful or not node_field_selector:
            raise InvalidRequest("To retry a succeeded workflow, set the options restartSuccessful and nodeFieldSelector")
    elif phase not in ("Failed", "Error"):
        raise InvalidRequest(f"Cannot retry a workflow in phase {phase}")
    out = copy.deepcopy(dict(doc))
    nodes: dict[str, Any] = dict((out.get("status") or {}).get("nodes") or {})
    drop = {nid for nid, n in nodes.items() if n.get("phase") not in _KEEP_ON_RETRY}
    drop |= {nid for nid, n in nodes.items() if str(n.get("name", "")).startswith(f"{name}.onExit")}
    if restart_successful and node_field_selector:
        selector = FieldSelector.parse(node_field_selector)
        chosen = [nid for nid, n in nodes.items() if selector.matches(node_fields(n))]
        todo = list(chosen)
        while todo:  # what ran after a restarted node used its outputs: run it again too
            nid = todo.pop()
            if nid in drop and nid not in chosen:
                continue
            drop.add(nid)
            todo.extend(c for c in (nodes.get(nid) or {}).get("children") or [] if c not in drop)
    kept = {}
    for nid, node in nodes.items():
        if nid in drop:
            continue
        node = dict(node)
        if node.get("children"):
            node["children"] = [c for c in node["children"] if c not in drop]
        kept[nid] = node
    status = out.setdefault("status", {})
    status["nodes"] = kept
    status["phase"] = "Running"
    for key in ("finishedAt", "message", "outputs"):
        status.pop(key, None)
    if parameters:
        out["spec"] = _with_parameters(out.get("spec") or {}, parameters)
    return out


def resubmit_manifest(workflow: Mapping[str, Any], parameters: Sequence[str] = (), memoized: bool = False) -> dict[str, Any]:
    """The Workflow Argo's resubmit creates: the same spec, a generated name, the user's labels and
    annotations carried over, ``resubmitted-from-workflow`` naming the original."""
    if memoized:
        raise InvalidRequest(
            "resubmit with memoized=true is not supported by the local engine: resubmit without it, "
            "or retry the failed run (retry keeps what succeeded)"
        )
    meta = workflow.get("metadata") or {}
    spec = copy.deepcopy(dict(workflow.get("spec") or {}))
    spec.pop("shutdown", None)
    spec.pop("suspend", None)
    if spec.get("activeDeadlineSeconds") == 0:
        spec.pop("activeDeadlineSeconds")  # a terminated run's deadline: not carried over, as on Argo
    if parameters:
        spec = _with_parameters(spec, parameters)
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k not in _NOT_CARRIED}
    labels[LABEL_RESUBMITTED_FROM] = str(meta.get("name", ""))
    new_meta: dict[str, Any] = {"generateName": meta.get("generateName") or f"{meta.get('name', 'workflow')}-", "labels": labels}
    if meta.get("namespace"):
        new_meta["namespace"] = meta["namespace"]
    if meta.get("annotations"):
        new_meta["annotations"] = dict(meta["annotations"])
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": new_meta, "spec": spec}


def parse_parameters(parameters: Sequence[str]) -> list[tuple[str, str]]:
    """``NAME=VALUE`` strings as Argo's ``overrideParameters`` reads them."""
    out = []
    for text in parameters:
        name, sep, value = str(text).partition("=")
        if not sep:
            raise InvalidRequest(f"expected parameter of the form: NAME=VALUE. Received: {text}")
        out.append((name, value))
    return out


def _with_parameters(spec: Mapping[str, Any], parameters: Sequence[str]) -> dict[str, Any]:
    given = parse_parameters(parameters)
    names = {n for n, _ in given}
    args = dict(spec.get("arguments") or {})
    old = {p.get("name"): p for p in args.get("parameters") or []}
    new = [
        {**{k: v for k, v in old.get(n, {}).items() if k not in ("valueFrom", "value")}, "name": n, "value": v} for n, v in given
    ]
    args["parameters"] = new + [p for p in args.get("parameters") or [] if p.get("name") not in names]
    return {**spec, "arguments": args}


def is_done(doc: Mapping[str, Any]) -> bool:
    return (doc.get("status") or {}).get("phase") in TERMINAL_PHASES
