"""Argo's own tests as an oracle: runs the cases of ``tests/engine/argo_corpus/*.yaml`` through real
detached engines and checks every assertion their Go test bodies make.

Each data file transcribes one Argo source file at argo-workflows f016ad89 (v4.1.2, the version of
``../shared/schemas``): the end-to-end suites ``test/e2e/*_test.go`` (workflows inline or from
``test/e2e/{functional,testdata,expectedfailures,smoke}``), the controller's unit tests
``workflow/controller/*_test.go`` whose outcome a real container command reproduces on one machine, and
documentation examples that state an outcome. The format is described in ``argo_corpus/README.md``.

A case runs in its own state folder (ConfigMaps, WorkflowTemplates, memoization caches do not leak
between cases): its WorkflowTemplates and ConfigMaps are applied first (as the e2e fixtures'
``CreateWorkflowTemplates``/``CreateConfigMap``), the workflow is prepared with
``scanflow_argo.engine.api.prepare_run`` and run by ``python -m scanflow_argo.platform.local_engine RUN_DIR``
(``conformance.run_detached``); ``during`` checks and ``actions`` are evaluated on every status
document while it runs, ``expect`` checks on the last one.

Verdicts: ``passed``; ``refused`` (the engine refused before running, and the case says why that is
right: a Kubernetes-only object); ``wrong`` (a check failed, the run hung, or the engine refused what
Argo runs); ``excluded`` (not run: needs Kubernetes, with the reason).
"""

from __future__ import annotations

import functools
import json
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from scanflow_argo import _proc
from scanflow_argo.clock import SystemClock, iso
from scanflow_argo.engine.api import prepare_run
from scanflow_argo.engine.core.configstore import CONFIGMAPS, read_key
from scanflow_argo.errors import EngineError, ImageNotMapped, NotSupportedLocally
from scanflow_argo.platform.local import LocalPlatform
from scanflow_argo.settings import Settings

from .conformance import install_documents, run_detached, stop_leftover_engines

CORPUS = Path(__file__).with_name("argo_corpus")
ARGO_COMMIT = "f016ad89eb"
DEFAULT_TIMEOUT = 60.0

# keys of a check that name its subject; every other key is a field of that subject
SUBJECTS = ("all", "any", "logs", "span", "configmap", "node", "every_node", "some_node", "no_node", "count")


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING = _Missing()


@dataclass
class Case:
    source: str
    """The data file's stem (``e2e_functional``): with ``id``, the case's key ``source/id``."""
    id: str
    cite: str
    workflow: str | None = None
    templates: list[str] = field(default_factory=list)
    configmaps: dict[str, dict[str, str]] = field(default_factory=dict)
    submit: str = "workflow"
    """``workflow``, or ``template``: run a Workflow whose ``workflowTemplateRef`` names the first of
    ``templates`` (the e2e fixtures' ``SubmitWorkflowsFromWorkflowTemplates``)."""
    repeat: int = 1
    """Submit the workflow this many times, one after another in the same state folder; checks see the last run."""
    background: list[str] = field(default_factory=list)
    """Workflows started first in the same state folder and left running (the e2e tests that submit two)."""
    substitute: dict[str, str] = field(default_factory=dict)
    """Text replaced in the workflow before it runs (the e2e cluster's services → local stand-ins: ``{httpbin}``)."""
    expect: list[dict[str, Any]] = field(default_factory=list)
    during: list[dict[str, Any]] = field(default_factory=list)
    always: list[dict[str, Any]] = field(default_factory=list)
    """Checks that must hold on every status document seen while the run goes on (a parallelism limit)."""
    actions: list[dict[str, Any]] = field(default_factory=list)
    timeout: float = DEFAULT_TIMEOUT
    seconds: float = 5.0
    """Roughly how long Argo's own run takes (its sleeps): the longest cases start first."""
    excluded: str | None = None
    refusal_ok: str | None = None
    not_checked: list[str] = field(default_factory=list)
    """Assertions of the Go test that have no local counterpart (pod specs, events), each with why."""
    how: str | None = None
    """For unit-test cases: how the test's hand-set pod phases are reproduced by real commands."""

    @property
    def key(self) -> str:
        return f"{self.source}/{self.id}"


@dataclass
class Outcome:
    key: str
    cite: str
    verdict: str  # passed | refused | wrong | excluded
    failures: list[str] = field(default_factory=list)
    detail: str = ""
    seconds: float = 0.0


def load_corpus(folder: Path = CORPUS) -> list[Case]:
    """Every case of every data file, in file order; duplicate keys and unknown fields are errors."""
    cases: list[Case] = []
    known = set(Case.__dataclass_fields__) - {"source"}
    for path in sorted(folder.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        for raw in doc["cases"]:
            unknown = set(raw) - known - {"workflow_file", "templates_files"}
            if unknown:
                raise ValueError(f"{path.name}: case {raw.get('id')!r} has unknown fields {sorted(unknown)}")
            fields = {k: v for k, v in raw.items() if k in known}
            case = Case(source=path.stem, **fields)
            errors = [e for i, c in enumerate([*case.expect, *case.during, *case.always]) for e in check_errors(c, f"check {i}")]
            errors += [e for a in case.actions for e in check_errors(a.get("when"), "action")]
            if errors:
                raise ValueError(f"{path.name}: case {case.id!r}: " + "; ".join(errors))
            for text in [case.workflow or "", *case.templates, *case.background]:
                try:
                    yaml.safe_load(text)
                except yaml.YAMLError as err:
                    raise ValueError(f"{path.name}: case {case.id!r} holds YAML that does not parse: {err}") from err
            cases.append(case)
    keys = [c.key for c in cases]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise ValueError(f"duplicate case keys: {dupes}")
    return cases


# -- checks -------------------------------------------------------------------------------------


def resolve(obj: Any, path: str) -> Any:
    """``a.b.0.c`` in ``obj``; MISSING when a container on the way is absent (Go would dereference
    nil and fail), None when only the last key is absent (Go's zero value). ``\\.`` is a dot inside
    a key (``metadata.labels.workflows\\.argoproj\\.io/workflow-template``)."""
    parts = [p.replace("\\.", ".") for p in re.split(r"(?<!\\)\.", path)]
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(obj, Mapping):
            if part not in obj:
                return None if last else MISSING
            obj = obj[part]
        elif isinstance(obj, list) and part.isdigit():
            if int(part) >= len(obj):
                return MISSING
            obj = obj[int(part)]
        else:
            return MISSING
        if obj is None and not last:
            return MISSING
    return obj


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def match(got: Any, want: Any, wf: str) -> str | None:
    """None when ``got`` satisfies ``want`` (a scalar: equality; a dict: matchers); else why not."""
    if isinstance(want, str):
        want = want.replace("{wf}", wf)
    if not isinstance(want, dict):
        if got is MISSING:
            return f"missing (expected {want!r})"
        if isinstance(want, bool):
            ok = bool(got) == want and (got is None or isinstance(got, bool))
        elif want is None:
            ok = got is None
        else:
            ok = got is not None and _text(got) == _text(want)
        return None if ok else f"{got!r} != {want!r}"
    for op, arg in want.items():
        if isinstance(arg, str):
            arg = arg.replace("{wf}", wf)
        why = _matcher(op, got, arg, wf)
        if why:
            return why
    return None


def _matcher(op: str, got: Any, arg: Any, wf: str) -> str | None:
    if op == "absent":
        return None if (got is MISSING or got is None) == bool(arg) else f"{'present' if arg else 'absent'}: {got!r}"
    if op == "empty":
        empty = got is MISSING or got is None or got == "" or got == [] or got == {}
        return None if empty == bool(arg) else f"{got!r} is {'not ' if arg else ''}empty"
    if op == "not":
        return None if match(got, arg, wf) else f"{got!r} matches {arg!r}"
    if got is MISSING:
        return f"missing (expected {op} {arg!r})"
    if op == "eq":
        return match(got, arg, wf)
    if op == "ne":
        return None if match(got, arg, wf) else f"{got!r} == {arg!r}"
    if op == "in":
        return None if any(match(got, a, wf) is None for a in arg) else f"{got!r} not in {arg!r}"
    if op == "contains":
        if isinstance(got, list):
            if isinstance(arg, dict):  # an element whose fields match: {value: x} on a list of parameters
                hit = any(isinstance(g, dict) and all(match(resolve(g, k), v, wf) is None for k, v in arg.items()) for g in got)
            else:
                hit = any(match(g, arg, wf) is None for g in got)
            return None if hit else f"{got!r} does not contain {arg!r}"
        return None if got is not None and str(arg) in _text(got) else f"{got!r} does not contain {arg!r}"
    if op == "within":  # Go's assert.Contains(t, arg, got): got (its zero value "" when absent) is part of arg
        return None if _text(got if got is not None else "") in str(arg) else f"{got!r} is not part of {arg!r}"
    if op == "count":  # [substring, n]: how often the substring occurs
        n = _text(got).count(arg[0]) if got is not None else 0
        return None if n == arg[1] else f"{arg[0]!r} occurs {n} times, not {arg[1]}"
    if op == "not_contains":
        return None if got is None or str(arg) not in _text(got) else f"{got!r} contains {arg!r}"
    if op == "prefix":
        return None if got is not None and _text(got).startswith(arg) else f"{got!r} does not start with {arg!r}"
    if op == "suffix":
        return None if got is not None and _text(got).endswith(arg) else f"{got!r} does not end with {arg!r}"
    if op == "regex":
        return None if got is not None and re.search(arg, _text(got)) else f"{got!r} does not match /{arg}/"
    if op == "len":
        n = len(got) if isinstance(got, (list, dict, str)) else 0 if got is None else None
        return match(n, arg, wf) if n is not None else f"{got!r} has no length"
    if op in ("le", "lt", "ge", "gt"):
        try:
            value = float(got)
        except (TypeError, ValueError):
            return f"{got!r} is not a number"
        ok = {"le": value <= arg, "lt": value < arg, "ge": value >= arg, "gt": value > arg}[op]
        return None if ok else f"{got!r} not {op} {arg!r}"
    raise ValueError(f"unknown matcher {op!r}")


@dataclass
class View:
    """One status document as the checks see it, plus what a check may read beside it (logs)."""

    doc: dict[str, Any]
    logs: Callable[[str, str], str] | None = None
    home: Path | None = None
    """The case's state folder: its local ConfigMaps are where ``engine/core/configstore.py`` says."""

    @property
    def wf(self) -> str:
        return str(self.doc.get("metadata", {}).get("name", ""))

    @property
    def nodes(self) -> dict[str, dict[str, Any]]:
        return self.doc.get("status", {}).get("nodes") or {}

    def node_field(self, node: dict[str, Any], path: str) -> Any:
        if path == "root":
            return node.get("id") == self.wf
        return resolve(node, path)

    def selects(self, node: dict[str, Any], selector: Mapping[str, Any]) -> bool:
        for key, want in selector.items():
            if key == "child_of":
                if not any(node["id"] in (p.get("children") or []) for p in self.nodes.values() if self.selects(p, want)):
                    return False
            elif match(self.node_field(node, key), want, self.wf) is not None:
                return False
        return True

    def select(self, selector: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [n for n in self.nodes.values() if self.selects(n, selector)]

    def field_failures(self, node: dict[str, Any], fields: Mapping[str, Any]) -> list[str]:
        out = []
        for key, want in fields.items():
            if key == "child_of":
                if not self.selects(node, {"child_of": want}):
                    out.append(f"child_of {want}: no such parent")
                continue
            if isinstance(want, dict) and "same_as" in want:  # another node's field: [selector, path]
                selector, path = want["same_as"]
                others = self.select(selector)
                if not others:
                    out.append(f"{key}: no node matches {describe(selector)}")
                    continue
                want = {**{k: v for k, v in want.items() if k != "same_as"}, "eq": resolve(others[0], path)}
            why = match(self.node_field(node, key), want, self.wf)
            if why:
                out.append(f"{key}: {why}")
        return out


def _seconds(stamp: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _span(check: Mapping[str, Any], fields: dict[str, Any], view: View) -> list[str]:
    """Seconds between the earliest and latest of a time: ``span: workflow`` (startedAt → finishedAt)
    or ``span: SELECTOR, field: startedAt`` (across the selected nodes; ``count`` of them required)."""
    fields = dict(fields)
    if check["span"] == "workflow":
        status = view.doc.get("status", {})
        times = [_seconds(status.get("startedAt")), _seconds(status.get("finishedAt"))]
        what = "workflow startedAt→finishedAt"
    else:
        nodes = view.select(check["span"])
        path = fields.pop("field")
        count = fields.pop("count", None)
        if count is not None and len(nodes) != count:
            return [f"{len(nodes)} nodes match {describe(check['span'])}, not {count}"]
        times = [_seconds(resolve(n, path)) for n in nodes]
        what = f"{path} of {describe(check['span'])}"
    if not times or any(t is None for t in times):
        return [f"span of {what}: missing times {times}"]
    spread = max(t for t in times if t is not None) - min(t for t in times if t is not None)
    why = match(spread, fields, view.wf)
    return [f"span of {what}: {why}"] if why else []


MATCHERS = frozenset(
    {"eq", "ne", "in", "contains", "not_contains", "within", "prefix", "suffix", "regex", "len"}
    | {"le", "lt", "ge", "gt", "count", "absent", "empty", "not", "same_as"}
)


def check_errors(check: Any, where: str = "check") -> list[str]:
    """What is malformed in a check (unknown matchers, a selector that is not a mapping): data
    errors are found when the corpus loads, not when a case happens to reach them."""
    if not isinstance(check, Mapping):
        return [f"{where}: a check is a mapping, not {check!r}"]
    subject = subject_of(check)
    rest = {k: v for k, v in check.items() if k != subject}
    if subject in ("all", "any"):
        return [e for i, sub in enumerate(check[subject]) for e in check_errors(sub, f"{where}.{subject}[{i}]")]
    if subject == "logs":  # matchers on the log's text
        rest.pop("container", None)
        return _fields_errors(check["logs"], f"{where}.logs") + _fields_errors({"text": rest}, where)
    if subject == "span":
        rest.pop("field", None)
        rest.pop("count", None)
        out = [] if check["span"] == "workflow" else _fields_errors(check["span"], f"{where}.span")
        return out + _fields_errors({"seconds": rest}, where)
    if subject == "count":
        return _fields_errors(check["count"], f"{where}.count") + _fields_errors({"count": rest}, where)
    if subject == "configmap" and not (isinstance(check["configmap"], list) and len(check["configmap"]) == 2):
        return [f"{where}: configmap takes [name, key]"]
    out = (
        _fields_errors(check[subject], f"{where}.{subject}") if subject in ("node", "every_node", "some_node", "no_node") else []
    )
    return out + _fields_errors(rest, where)


def _fields_errors(fields: Any, where: str) -> list[str]:
    if not isinstance(fields, Mapping):
        return [f"{where}: expected a mapping of fields, got {fields!r}"]
    out: list[str] = []
    for name, want in fields.items():
        if name == "child_of":
            out += _fields_errors(want, f"{where}.child_of")
        elif isinstance(want, Mapping):
            out += [f"{where}.{name}: unknown matcher {op!r}" for op in want if op not in MATCHERS]
            if isinstance(want.get("not"), Mapping):
                out += _fields_errors({name: want["not"]}, where)
    return out


def describe(check: Mapping[str, Any]) -> str:
    return json.dumps(check, separators=(",", ":"), default=str)


def subject_of(check: Mapping[str, Any]) -> str | None:
    """What a check is about: the first subject key it has, in this order (a logs check may use the
    ``count`` matcher and a span a ``count`` of nodes, so those subjects come first); None: the workflow."""
    return next((k for k in SUBJECTS if k in check), None)


def evaluate(check: Mapping[str, Any], view: View) -> list[str]:
    """The failures of one check against one status document (empty: it holds)."""
    subject = subject_of(check)
    fields = {k: v for k, v in check.items() if k != subject}
    if subject == "all":
        return [f for c in check["all"] for f in evaluate(c, view)]
    if subject == "any":
        results = [evaluate(c, view) for c in check["any"]]
        return [] if any(not r for r in results) else [f"none of {describe(check)}: " + "; ".join(r[0] for r in results)]
    if subject == "node":
        chosen = view.select(check["node"])
        if not chosen:
            return [f"no node matches {describe(check['node'])}"]
        return [f"node {n['displayName']!r} ({n['name']}): {f}" for n in chosen for f in view.field_failures(n, fields)]
    if subject == "every_node":
        return [
            f"node {n['displayName']!r} ({n['name']}): {f}"
            for n in view.select(check["every_node"])
            for f in view.field_failures(n, fields)
        ]
    if subject == "span":
        return _span(check, fields, view)
    if subject == "count":  # how many nodes match: {count: SELECTOR, eq: 4}
        why = match(len(view.select(check["count"])), fields, view.wf)
        return [f"count of {describe(check['count'])}: {why}"] if why else []
    if subject == "some_node":
        return [] if view.select(check["some_node"]) else [f"no node matches {describe(check['some_node'])}"]
    if subject == "no_node":
        found = view.select(check["no_node"])
        return [f"unexpected node {n['displayName']!r} ({n['name']}, {n.get('phase')})" for n in found]
    if subject == "logs":
        nodes = view.select(check["logs"])
        if not nodes or view.logs is None:
            return [f"no node matches {describe(check['logs'])} for logs"]
        container = fields.pop("container", "main")
        out = []
        for n in nodes:
            try:
                text = view.logs(n["id"], container)
            except Exception as err:  # a missing log is a failed check, said in full
                out.append(f"logs of {n['displayName']!r}/{container}: {err}")
                continue
            out += [f"logs of {n['displayName']!r}/{container}: {why}" for why in [match(text, fields, view.wf)] if why]
        return out
    if subject == "configmap":  # [name, key]: a JSON entry of a local ConfigMap (the memoization cache)
        name, key = check["configmap"]
        namespace = str(view.doc.get("metadata", {}).get("namespace") or "default")  # the run's own: the cache's
        text = read_key(view.home or Path("/nonexistent"), CONFIGMAPS, namespace, name, key)
        if text is None:
            return [f"ConfigMap {name!r} has no key {key!r} in namespace {namespace!r}"]
        try:
            entry = json.loads(text)
        except ValueError as err:
            return [f"ConfigMap {name!r} key {key!r} is not JSON: {err}"]
        return [
            f"ConfigMap {name}/{key} {k}: {why}" for k, want in fields.items() if (why := match(resolve(entry, k), want, view.wf))
        ]
    # the workflow itself: paths under metadata/spec from the document, the rest from its status
    out = []
    for key, want in fields.items():
        root = view.doc if key.split(".")[0] in ("metadata", "spec") else view.doc.get("status", {})
        why = match(resolve(root, key), want, view.wf)
        if why:
            out.append(f"workflow {key}: {why}")
    return out


# -- running ------------------------------------------------------------------------------------

WORKFLOW_HEAD = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow"}


def manifests(case: Case, locals_: Mapping[str, str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The workflow to submit and the templates to apply first. Argo's e2e fixtures unmarshal the
    text into a typed Workflow, so a document without ``apiVersion``/``kind`` is a Workflow."""
    templates = [yaml.safe_load(t) for t in case.templates]
    if case.submit == "template":
        first = templates[0]
        ref: dict[str, Any] = {"name": first["metadata"]["name"]}
        if first.get("kind") == "ClusterWorkflowTemplate":
            ref["clusterScope"] = True
        # common.NewWorkflowFromWorkflowTemplate: generateName "<template>-" and a workflowTemplateRef
        main = {
            **WORKFLOW_HEAD,
            "metadata": {"generateName": first["metadata"]["name"] + "-"},
            "spec": {"workflowTemplateRef": ref},
        }
        return main, templates
    assert case.workflow is not None, case.key
    text = case.workflow
    for old, new in case.substitute.items():
        text = text.replace(old, new.format(**locals_))
    main = yaml.safe_load(text)
    return {**main, **WORKFLOW_HEAD}, templates


def _configmap_docs(case: Case) -> list[dict[str, Any]]:
    """The case's ConfigMaps; ``{now-15s}`` in a value is that moment, RFC 3339 (memoization entries' ages)."""

    def when(m: re.Match[str]) -> str:
        return iso(SystemClock().now() - int(m.group(1)))

    return [
        {"kind": "ConfigMap", "metadata": {"name": n}, "data": {k: re.sub(r"\{now-(\d+)s\}", when, str(v)) for k, v in d.items()}}
        for n, d in case.configmaps.items()
    ]


class Watch:
    """What a case watches while its run goes on: which ``during`` checks were seen, which actions were taken."""

    def __init__(self, case: Case, terminate: Callable[[], None] | None = None) -> None:
        self.case = case
        self.terminate = terminate
        self.seen: set[int] = set()
        self.broken: dict[int, list[str]] = {}
        self.acted: set[int] = set()
        self.unsupported: list[str] = []

    def observe(self, view: View) -> None:
        for i, check in enumerate(self.case.during):
            if i not in self.seen and not evaluate(check, view):
                self.seen.add(i)
        for i, check in enumerate(self.case.always):
            if i not in self.broken and (why := evaluate(check, view)):
                self.broken[i] = why

    def act(self, view: View, child: _proc.Child) -> None:
        for i, action in enumerate(self.case.actions):
            if i in self.acted or evaluate(action["when"], view):
                continue
            self.acted.add(i)
            if action["do"] == "stop":  # Argo's Stop strategy: what LocalPlatform.stop sends the engine
                child.popen.send_signal(signal.SIGTERM)
            elif action["do"] == "terminate" and self.terminate is not None:
                self.terminate()  # Argo's Terminate strategy: LocalPlatform.shutdown(name, "Terminate")
            else:  # nothing to send: end the run now, the case is wrong anyway
                self.unsupported.append(action["do"])
                child.stop(timeout=5)

    def failures(self) -> list[str]:
        out = [f"never observed while running: {describe(c)}" for i, c in enumerate(self.case.during) if i not in self.seen]
        out += [f"broken while running: {'; '.join(why)}" for why in self.broken.values()]
        out += [
            f"action {a['do']!r} never taken: {describe(a['when'])} never held"
            for i, a in enumerate(self.case.actions)
            if i not in self.acted
        ]
        return out


def run_case(case: Case, base: Settings, root: Path, locals_: Mapping[str, str]) -> Outcome:
    """Run one case in its own state folder under ``root`` and judge it."""
    if case.excluded:
        return Outcome(case.key, case.cite, "excluded", detail=case.excluded)
    t0 = time.monotonic()

    def outcome(verdict: str, failures: list[str], detail: str = "") -> Outcome:
        return Outcome(case.key, case.cite, verdict, failures, detail, time.monotonic() - t0)

    settings = base.with_home(root / case.key.replace("/", "--"))
    main, templates = manifests(case, locals_)
    install_documents([*templates, *_configmap_docs(case)], settings)
    platform = LocalPlatform(settings)
    for text in case.background:  # started and left to run: the main run may wait on them (a mutex)
        background = prepare_run({**yaml.safe_load(text), **WORKFLOW_HEAD}, settings)
        platform.start_engine(background)
    for attempt in range(case.repeat):
        last = attempt == case.repeat - 1
        try:
            run_dir = prepare_run(main, settings)
        except (NotSupportedLocally, ImageNotMapped) as err:
            if case.refusal_ok:
                return outcome("refused", [], f"{case.refusal_ok} (engine: {err})")
            return outcome("wrong", [f"refused although Argo runs it: {err}"])
        except EngineError as err:
            # rejected at submission: the checks see a workflow in Error with the engine's message
            view = View({**main, "status": {"phase": "Error", "message": f"(rejected before running) {err}", "nodes": {}}})
            failures = [f for check in case.expect for f in evaluate(check, view)]
            return outcome("wrong" if failures else "passed", [f"rejected before running: {err}", *failures] if failures else [])
        except Exception as err:  # a crash is an answer too: the case is wrong, with the crash named
            return outcome("wrong", [f"the engine crashed preparing the run: {type(err).__name__}: {err}"])

        def logs(node: str, container: str, name: str = run_dir.name) -> str:
            return platform.logs(name, node, container)

        watch = Watch(case, functools.partial(platform.shutdown, run_dir.name, "Terminate"))

        def on_poll(
            doc: dict[str, Any], child: _proc.Child, watch: Watch = watch, logs: Callable[[str, str], str] = logs
        ) -> None:
            view = View(doc, logs)
            watch.observe(view)
            watch.act(view, child)

        run = run_detached(run_dir, settings, case.key, case.timeout, on_poll if last else None)
        if run.hung:
            return outcome("wrong", [f"still {run.doc['status'].get('phase')} after {case.timeout:.0f}s"], run.tail)
        if not last:
            continue
        if watch.unsupported:
            return outcome("wrong", [f"no local entry point for Argo's {', '.join(watch.unsupported)}"])
        view = View(run.doc, logs, settings.home)
        watch.observe(view)  # the last document counts for `during` too
        failures = watch.failures() + [f for check in case.expect for f in evaluate(check, view)]
        return outcome("wrong" if failures else "passed", failures, run.tail if failures else "")
    raise AssertionError("repeat must be at least 1")


@contextmanager
def httpbin() -> Iterator[str]:
    """A stand-in for the e2e cluster's ``httpbin`` service on 127.0.0.1: ``/status/N`` answers N, any
    other GET (or PUT) 200, each with a small JSON document naming the path."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet
            return

        def do_GET(self) -> None:
            code = int(self.path.split("/")[2]) if self.path.startswith("/status/") else 200
            body = json.dumps({"url": self.path, "args": {}}).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_PUT(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.do_GET()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def corpus_settings(base: Settings) -> Settings:
    """Argo schedules every ready pod at once: the engine may run 8 nodes at a time, tracking off."""
    return replace(base, engine=replace(base.engine, parallelism=8), tracking=replace(base.tracking, enabled=False))


def run_all(cases: list[Case], base: Settings, root: Path, workers: int = 4) -> list[Outcome]:
    """Every case, the longest first (by its ``seconds``) so that the slow ones overlap the rest."""
    settings = corpus_settings(base)
    order = sorted(range(len(cases)), key=lambda i: -cases[i].seconds)
    results: list[Outcome | None] = [None] * len(cases)
    with httpbin() as url:
        locals_ = {"httpbin": url}

        def one(i: int) -> None:
            results[i] = run_case(cases[i], settings, root, locals_)

        try:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(one, order))
        finally:
            for case in cases:
                home = root / case.key.replace("/", "--")
                if home.exists():
                    stop_leftover_engines(settings.with_home(home))
    return [r for r in results if r is not None]


def summary(outcomes: list[Outcome]) -> str:
    n = {v: sum(1 for o in outcomes if o.verdict == v) for v in ("passed", "refused", "wrong", "excluded")}
    return f"{n['passed']} passed, {n['refused']} refused, {n['wrong']} wrong ({n['excluded']} excluded, each with its reason)"


def report_line(o: Outcome, width: int = 400) -> str:
    what = "; ".join(o.failures) or o.detail
    return f"{o.verdict:8} {o.seconds:5.1f}s {o.key} [{o.cite}]: {what[:width]}"


if __name__ == "__main__":  # python -m tests.engine.corpus [KEY-SUBSTRING...]: a quick look
    import sys
    import tempfile

    only = sys.argv[1:]
    chosen = [c for c in load_corpus() if not only or any(o in c.key for o in only)]
    tmp = Path(tempfile.mkdtemp(prefix="argo-corpus-"))
    res = run_all(chosen, Settings.from_env(environ={}).with_home(tmp / "home"), tmp, workers=4)
    for o in res:
        if o.verdict != "passed":
            print(report_line(o, 2000))
    print(summary(res))
