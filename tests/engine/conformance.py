"""Runs Argo's own examples through the engine and compares phases with Argo's expectation.

Argo's end-to-end suite expects every example without a ``workflows.argoproj.io/no-test`` label
to succeed and those labelled ``expected-failure`` to fail; the other labels (``environment``,
``duration``, ``flaky``) are not run by Argo and are not run here either. Each example runs in a
real detached engine process (``python -m scanflow_argo.platform.local_engine RUN_DIR``) with a time limit.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scanflow_argo import _proc
from scanflow_argo.engine.api import prepare_run, split_documents
from scanflow_argo.engine.core.configstore import write_configmap
from scanflow_argo.engine.core.manifest import load_documents
from scanflow_argo.engine.core.state import read_status
from scanflow_argo.engine.features.images import image_of
from scanflow_argo.errors import EngineError, ImageNotMapped, NotSupportedLocally
from scanflow_argo.settings import Settings

LABEL = "workflows.argoproj.io/no-test"

# Examples whose outcome is decided by chance, so no single run can be compared with Argo's label.
RANDOM = {
    "template-defaults.yaml": "random exit codes with retries: fails only ~3% of the time although labelled expected-failure",
    # Not chance, but the label is not Argo's verdict either (checked against argoproj/argo-workflows
    # f016ad89, Aug 2026): the label came in with ae047b82 "move example suite from testify to go
    # subtest", where any no-test label just skips the example (test/e2e/examples_test.go:131-134), so
    # nothing checks that it fails. What Argo does with it: workflow/controller/steps.go:373-380
    # (executeStepGroup) fails a step group only for a failed child *without* continueOn, so the group
    # of B and C Succeeds, D runs, and steps.go:199 marks the steps node Succeeded; operator.go:551-563
    # gives the workflow its entry node's phase: Succeeded. Argo's own e2e test of the same shape,
    # test/e2e/functional_test.go:198-245 (TestContinueOnFail), waits for ToBeSucceeded.
    # tests/engine/test_tracking_and_refs.py runs this example and expects exactly that.
    "continue-on-fail.yaml": (
        "labelled expected-failure but Argo succeeds it: steps.go:373-380 (continueOn.failed child does not fail "
        "the step group), steps.go:199, operator.go:551-563; e2e functional_test.go:198-245 TestContinueOnFail "
        "expects Succeeded; examples_test.go:131-134 skips every no-test example (argo-workflows f016ad89)"
    ),
}

# Examples whose requests go to the internet (the HTTP templates, run locally since http templates are
# supported); tests reach 127.0.0.1 only, so their outcome says nothing about the engine. The engine's
# HTTP semantics are tested against a local server in tests/engine/test_http.py.
_INTERNET = "its http template calls {}, on the internet, which tests never reach (see tests/engine/test_http.py)"
NEEDS_NETWORK = {
    "http-hello-world.yaml": _INTERNET.format("raw.githubusercontent.com"),
    "life-cycle-hooks-tmpl-level.yaml": _INTERNET.format("raw.githubusercontent.com"),
    "life-cycle-hooks-wf-level.yaml": _INTERNET.format("raw.githubusercontent.com"),
}

# Examples Argo expects to succeed that still fail by chance in Argo too: a script failing 2 times in 3
# under ``retryStrategy.limit: 10`` fails all 11 attempts with probability (2/3)**11, about 1.2%. A failed
# run counts against the engine unless it made every attempt the strategy allows; then the example is
# run again, up to CHANCE_RUNS in all (a correct engine then misses with probability about 2e-6).
CHANCE = {"retry-script.yaml": 11, "retry-container.yaml": 11}
CHANCE_RUNS = 3


@dataclass
class Outcome:
    path: str
    expected: str | None
    verdict: str  # passed | wrong | refused | skipped | hang
    detail: str = ""
    seconds: float = 0.0
    attempts: int = 0  # pods the run started (for CHANCE examples: did it use every retry?)


def expectation(doc: dict) -> str | None:
    label = ((doc.get("metadata") or {}).get("labels") or {}).get(LABEL)
    if label is None:
        return "Succeeded"
    if label == "expected-failure":
        return "Failed"
    return None


# The e2e cluster's artifact repositories (argo-workflows f016ad89 manifests/quick-start/base/
# artifact-repositories-configmap.yaml, Apache-2.0): artifact-repository-ref.yaml names its key my-key.
E2E_ARTIFACT_REPOSITORIES = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {
        "name": "artifact-repositories",
        "annotations": {"workflows.argoproj.io/default-artifact-repository": "default-v1"},
    },
    "data": {
        key: "archiveLogs: true\ns3:\n  bucket: my-bucket\n  endpoint: minio:9000\n  insecure: true\n"
        "  accessKeySecret:\n    name: my-minio-cred\n    key: accesskey\n"
        "  secretKeySecret:\n    name: my-minio-cred\n    key: secretkey\n"
        for key in ("default-v1", "my-key")
    }
    | {"empty": ""},
}


def install_fixtures(examples: Path, settings: Settings) -> None:
    """What Argo's e2e setup applies first: WorkflowTemplates (for templateRef), ConfigMaps and PVCs, and the
    cluster's artifact-repositories ConfigMap."""
    install_documents([E2E_ARTIFACT_REPOSITORIES], settings)
    for path in sorted(examples.rglob("*.yaml")):
        try:
            docs = load_documents(path)
        except EngineError:
            continue
        install_documents(docs, settings)


def install_documents(docs: Iterable[Mapping[str, Any]], settings: Settings) -> None:
    """Apply, as ``kubectl apply`` would before a run, the WorkflowTemplates, ClusterWorkflowTemplates,
    ConfigMaps and PersistentVolumeClaims among ``docs`` to the local state folder (other kinds are left)."""
    tdir = settings.templates_dir
    tdir.mkdir(parents=True, exist_ok=True)
    for i, doc in enumerate(docs):
        if doc.get("kind") in ("WorkflowTemplate", "ClusterWorkflowTemplate"):
            name = doc["metadata"]["name"]
            (tdir / f"{doc['kind']}-{name}-{i}.json").write_text(json.dumps(doc))
        if doc.get("kind") == "ConfigMap":  # into its namespace (the runs' own, default), as platform/apply.py does
            meta = doc["metadata"]
            data = {str(k): str(v) for k, v in (doc.get("data") or {}).items()}
            notes = {str(k): str(v) for k, v in (meta.get("annotations") or {}).items()}  # the default artifact repository
            write_configmap(settings.home, str(meta.get("namespace") or "default"), str(meta["name"]), data, notes)
        if doc.get("kind") == "PersistentVolumeClaim":  # testvolume.yaml: the claim volumes-existing.yaml uses
            ns = doc["metadata"].get("namespace") or "default"
            (settings.home / "volumes" / ns / doc["metadata"]["name"]).mkdir(parents=True, exist_ok=True)


def candidates(examples: Path) -> list[Path]:
    return sorted(p for p in examples.rglob("*.yaml"))


def run_one(path: Path, examples: Path, settings: Settings, timeout: float) -> Outcome:
    rel = str(path.relative_to(examples))
    t0 = time.monotonic()
    try:
        docs = load_documents(path)
        runnable = [d for d in docs if d.get("kind") == "Workflow"]
        if not runnable:
            return Outcome(rel, None, "skipped", "no Workflow in file")
        main, templates = split_documents(docs)
    except EngineError as err:
        return Outcome(rel, None, "skipped", str(err))
    expected = expectation(main)
    if expected is None:
        return Outcome(rel, None, "skipped", f"no-test: {main['metadata']['labels'][LABEL]}")
    if path.name in RANDOM:
        return Outcome(rel, expected, "skipped", RANDOM[path.name])
    if path.name in NEEDS_NETWORK:
        return Outcome(rel, expected, "skipped", NEEDS_NETWORK[path.name])
    try:
        run_dir = prepare_run(main, settings, templates=templates, source_dir=path.parent)
    except (NotSupportedLocally, ImageNotMapped) as err:
        return Outcome(rel, expected, "refused", str(err))
    except EngineError as err:
        return Outcome(rel, expected, "wrong", f"prepare failed: {err}")
    run = run_detached(run_dir, settings, rel, timeout)
    if run.hung:
        return Outcome(rel, expected, "hang", f"still running after {timeout:.0f}s", time.monotonic() - t0)
    status = run.doc["status"]
    phase = status.get("phase")
    # Argo's e2e treats Error like Failed for expected failures
    got = "Failed" if phase == "Error" else phase
    verdict = "passed" if got == expected else "wrong"
    attempts = sum(1 for n in status.get("nodes", {}).values() if n.get("type") == "Pod")
    detail = f"{phase}: {status.get('message', '')}" if verdict == "wrong" else ""
    if verdict == "wrong":
        bad = [
            f"{n['displayName']}={n['phase']} {n.get('message', '')}"
            for n in status.get("nodes", {}).values()
            if n["phase"] not in ("Succeeded", "Skipped", "Omitted")
        ]
        detail += " | " + "; ".join(bad[:4]) + " | " + run.tail
    return Outcome(rel, expected, verdict, detail, time.monotonic() - t0, attempts)


@dataclass
class Detached:
    """How a detached engine run ended: its last status document, whether it outlived its time limit
    (then it was stopped), and the end of the engine's log."""

    doc: dict[str, Any]
    hung: bool
    tail: str
    seconds: float


def run_detached(
    run_dir: Path,
    settings: Settings,
    name: str,
    timeout: float,
    on_poll: Callable[[dict[str, Any], _proc.Child], None] | None = None,
    poll: float = 0.05,
) -> Detached:
    """Run a prepared run folder in a real detached engine (``python -m scanflow_argo.platform.local_engine RUN_DIR``)
    with a time limit; ``on_poll`` sees each status document while it runs (and may signal the engine)."""
    t0 = time.monotonic()
    child = _proc.spawn(
        [settings.engine.python, "-m", "scanflow_argo.platform.local_engine", str(run_dir)], name=name, log=run_dir / "engine.log"
    )
    try:
        deadline = time.monotonic() + timeout
        while child.alive() and time.monotonic() < deadline:
            if on_poll is not None:  # the engine replaces status.json atomically: every read is whole
                on_poll(read_status(run_dir), child)
            time.sleep(poll)
        hung = child.alive()
    finally:
        child.stop(timeout=5)
    doc = read_status(run_dir)
    return Detached(doc, hung, child.tail(5), time.monotonic() - t0)


def run_judged(path: Path, examples: Path, settings: Settings, timeout: float) -> Outcome:
    """``run_one``, with the CHANCE examples run again when they failed only by chance."""
    outcome = run_one(path, examples, settings, timeout)
    runs = 1
    while outcome.verdict == "wrong" and path.name in CHANCE and runs < CHANCE_RUNS:
        if outcome.attempts != CHANCE[path.name]:
            outcome.detail += f" | made {outcome.attempts} attempts where the retry strategy allows {CHANCE[path.name]}"
            return outcome
        outcome = run_one(path, examples, settings, timeout)
        runs += 1
    if runs > 1 and outcome.verdict == "passed":
        outcome.detail = f"passed on run {runs} of {CHANCE_RUNS} (each earlier run failed all {CHANCE[path.name]} attempts)"
    return outcome


def listen_ports(path: Path, settings: Settings) -> set[int]:
    """The ports an example's servers may listen on: its containers' ``ports``, their probes' ports and what
    their images listen on (``Image.ports``: nginx on 80, influxd on 8086)."""
    try:
        docs = load_documents(path)
    except EngineError:
        return set()
    out: set[int] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            image = node.get("image")
            if isinstance(image, str) and "{{" not in image:
                with contextlib.suppress(EngineError):
                    out.update(image_of(image, settings.engine.image_map).ports)
            declared = node.get("ports") if isinstance(node.get("ports"), list) else []
            out.update(p["containerPort"] for p in declared if isinstance(p, dict) and isinstance(p.get("containerPort"), int))
            for kind in ("httpGet", "tcpSocket"):
                probe = node.get(kind)
                if isinstance(probe, dict) and isinstance(probe.get("port"), int):
                    out.add(probe["port"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(docs)
    return out


def run_all(
    examples: Path, settings: Settings, workers: int = 4, timeout: float = 90.0, only: list[str] | None = None
) -> list[Outcome]:
    """Run the examples, ``workers`` at a time, except that examples whose servers listen on one port run one
    after the other: nodes share this machine's network, so two at once would collide on it (the engine says
    so, and the later example would fail for a reason that is not the engine's)."""
    install_fixtures(examples, settings)
    paths = candidates(examples)
    if only:
        paths = [p for p in paths if any(o in str(p) for o in only)]
    ports = {p: sorted(listen_ports(p, settings)) for p in paths}
    locks = {port: threading.Lock() for found in ports.values() for port in found}

    def judged(path: Path) -> Outcome:
        with contextlib.ExitStack() as held:
            for port in ports[path]:  # in order: no two examples wait on each other
                held.enter_context(locks[port])
            return run_judged(path, examples, settings, timeout)

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(judged, paths))
    finally:
        stop_leftover_engines(settings)


def stop_leftover_engines(settings: Settings) -> None:
    """Engines started by the runs themselves (a resource template creating a Workflow) are ours too."""
    from scanflow_argo.platform.local import LocalPlatform

    platform = LocalPlatform(settings)
    for run_dir in sorted((settings.home / "runs").glob("*")):
        pid = platform.engine_pid(run_dir)
        if pid is not None:
            _proc.stop_pid(pid, timeout=5)


def summary(outcomes: list[Outcome]) -> str:
    count = {v: sum(1 for o in outcomes if o.verdict == v) for v in ("passed", "refused", "wrong", "hang", "skipped")}
    return f"{count['passed']} passed, {count['refused']} refused, {count['wrong'] + count['hang']} wrong ({count['hang']} hung), {count['skipped']} not run by Argo's suite"


if __name__ == "__main__":  # python tests/engine/conformance.py [NAME...]: a quick look
    import sys
    import tempfile

    home = Path(tempfile.mkdtemp()) / "home"
    s = Settings.from_env(environ={}).with_home(home)
    res = run_all(Path(__file__).resolve().parents[3] / "shared" / "argo-examples", s, only=sys.argv[1:] or None)
    for o in res:
        if o.verdict != "skipped":
            print(f"{o.verdict:8} {o.seconds:5.1f}s {o.path} {o.detail[:300]}")
        elif o.expected is not None:
            print(f"excluded {o.path} (labelled {o.expected}): {o.detail}")
    print(summary(res))
