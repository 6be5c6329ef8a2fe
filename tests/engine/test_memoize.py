"""Memoization as Argo does it, in-process with the fake pod kind of ``test_scheduler`` and a manual clock.

Sources (argoproj/argo-workflows v4.1.2): ``workflow/controller/operator.go`` ``executeTemplate`` (the cache
is read after the locks, before the Retry node; ``initializeCacheHitNode``, ``initializeExecutableNode``),
the saves in ``podReconciliation`` (operator.go), ``executeSteps`` (steps.go) and ``executeDAG`` (dag.go);
``workflow/controller/cache/cache.go`` (``Entry``, ``Hit``, ``GetOutputsWithMaxAge``, ``cacheKeyRegex``) and
``configmap_cache.go`` (``load`` records ``lastHitTimestamp``; ``save`` writes both timestamps); the cases of
``workflow/controller/operator_test.go`` ``TestConfigMapCache*`` and ``TestMemoizationTemplateLevel*``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scanflow_argo.clock import ManualClock, iso
from scanflow_argo.engine import run_workflow
from scanflow_argo.engine.core.state import read_status
from scanflow_argo.engine.features.memo_cache import CONFIGMAP_LIMIT, ConfigMapCache, Entry
from scanflow_argo.errors import EngineError
from scanflow_argo.settings import Settings

from .test_scheduler import FakePods, wf

T0 = 1_700_000_000.0
CACHE = {"configMap": {"name": "my-cache"}}


def memo(key: str = "k-{{inputs.parameters.m}}", **extra: Any) -> dict[str, Any]:
    return {"key": key, "cache": CACHE, **extra}


def memo_pod(memoize: dict[str, Any], **fake: Any) -> dict[str, Any]:
    return {
        "name": "main",
        "inputs": {"parameters": [{"name": "m", "value": "hi"}]},
        "memoize": memoize,
        "fake": {"outputs": {"hello": "world"}, **fake},
    }


def entry_json(created: float | None, node_id: str = "old-node", outputs: Any = None) -> str:
    doc = {"nodeID": node_id, "outputs": outputs, "creationTimestamp": iso(created) if created else None}
    return json.dumps(doc)


SEEDED = {"parameters": [{"name": "hello", "value": "foobar"}], "exitCode": "0"}

# (what, template, seeded entry under my-cache/k-hi (None: none), ran, node type, phase, memoizationStatus.hit,
#  message contains, outputs expected on the node (None: none))
CASES: list[tuple[str, dict[str, Any], str | None, bool, str, str, bool | None, str, Any]] = [
    # TestConfigMapCacheSaveOperate: a miss runs the pod, hit false
    (
        "miss runs",
        memo_pod(memo()),
        None,
        True,
        "Pod",
        "Succeeded",
        False,
        "",
        {"parameters": [{"name": "hello", "value": "world"}]},
    ),
    # TestConfigMapCacheLoadOperate: a seeded entry is the node's outputs, the pod does not run
    ("hit", memo_pod(memo()), entry_json(T0 - 3600, outputs=SEEDED), False, "Pod", "Succeeded", True, "", SEEDED),
    # TestConfigMapCacheLoadOperateNoOutputs: outputs null → a hit with no outputs
    ("hit without outputs", memo_pod(memo()), entry_json(T0 - 3600), False, "Pod", "Succeeded", True, "", None),
    # TestMemoizationTemplateLevelCacheWithStepWithCache: Go's encoding/json matches field names case-insensitively
    (
        "Go field names",
        memo_pod(memo()),
        '{"ExpiresAt":"2020-06-18T17:11:05Z","NodeID":"memoize-abx4124-123129321123","Outputs":{}}',
        False,
        "Pod",
        "Succeeded",
        True,
        "",
        {},
    ),
    # TestConfigMapCacheLoadOperateMaxAge: 5 s old under maxAge 10s is a hit, 15 s old is not
    (
        "within maxAge",
        memo_pod(memo(maxAge="10s")),
        entry_json(T0 - 5, outputs=SEEDED),
        False,
        "Pod",
        "Succeeded",
        True,
        "",
        SEEDED,
    ),
    ("past maxAge", memo_pod(memo(maxAge="10s")), entry_json(T0 - 15, outputs=SEEDED), True, "Pod", "Succeeded", False, "", None),
    (
        "no creation time with maxAge",
        memo_pod(memo(maxAge="1h")),
        entry_json(None, outputs=SEEDED),
        True,
        "Pod",
        "Succeeded",
        False,
        "",
        None,
    ),
    # Entry.Hit: an entry without a nodeID is a miss
    ("empty nodeID", memo_pod(memo()), entry_json(T0, node_id="", outputs=SEEDED), True, "Pod", "Succeeded", False, "", None),
    # GetNodeType: a hit under a retryStrategy is a Retry node
    (
        "hit with retryStrategy",
        {**memo_pod(memo()), "retryStrategy": {"limit": 2}},
        entry_json(T0, outputs=SEEDED),
        False,
        "Retry",
        "Succeeded",
        True,
        "",
        SEEDED,
    ),
    # configMapCache.load / executeTemplate: a cache that cannot be read errors the node before it runs
    ("invalid key", memo_pod(memo(key="a.b")), None, False, "Skipped", "Error", None, "invalid cache key: a.b", None),
    ("malformed entry", memo_pod(memo()), "{not json", False, "Skipped", "Error", None, "malformed cache entry", None),
    ("nodeID not a string", memo_pod(memo()), '{"nodeID": 5}', False, "Skipped", "Error", None, "malformed cache entry", None),
    (
        "bad maxAge",
        memo_pod(memo(maxAge="ten")),
        entry_json(T0),
        False,
        "Skipped",
        "Error",
        None,
        'invalid maxAge: time: invalid duration "ten"',
        None,
    ),
]


def cm_dir(home: Path, name: str, namespace: str = "default") -> Path:
    """Where the ConfigMap ``name`` of ``namespace`` lives locally (docs/local-engine.md; ``wf`` names no namespace:
    ``default``)."""
    return home / "configmaps" / ".namespaces" / namespace / name


def seed(home: Path, name: str, key: str, value: str) -> Path:
    folder = cm_dir(home, name)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / key).write_text(value)
    return folder / key


def run(settings: Settings, templates: list[dict[str, Any]], clock: ManualClock, fake: FakePods) -> dict[str, Any]:
    status = run_workflow(wf(templates), settings, clock=clock, kinds=fake.kinds)
    return read_status(settings.home / "runs" / status.name)


@pytest.mark.parametrize(
    ("what", "tmpl", "seeded", "ran", "ntype", "phase", "hit", "message", "outputs"), CASES, ids=[c[0] for c in CASES]
)
def test_memoized_node(engine_settings, what, tmpl, seeded, ran, ntype, phase, hit, message, outputs) -> None:  # type: ignore[no-untyped-def]
    if seeded is not None:
        seed(engine_settings.home, "my-cache", "k-hi", seeded)
    fake = FakePods()
    doc = run(engine_settings, [tmpl], ManualClock(T0), fake)
    node = doc["status"]["nodes"][doc["metadata"]["name"]]
    assert bool(fake.ran) is ran, (what, fake.ran)
    assert (node["type"], node["phase"]) == (ntype, phase), (what, node)
    assert message in node.get("message", ""), (what, node)
    if hit is None:
        assert "memoizationStatus" not in node, what
    else:
        key = "a.b" if what == "invalid key" else "k-hi"
        assert node["memoizationStatus"] == {"hit": hit, "key": key, "cacheName": "my-cache"}, what
    if not ran or outputs is not None:
        assert node.get("outputs") == outputs, (what, node)


def test_a_miss_saves_an_argo_shaped_entry_and_the_next_run_hits_it(engine_settings) -> None:  # type: ignore[no-untyped-def]
    """TestConfigMapCacheSaveOperate, then docs/memoization.md's promise: the second run is served from the
    ConfigMap the first wrote (nodeID, outputs, creationTimestamp, lastHitTimestamp), which survives the run."""
    clock = FakePods()
    first = run(engine_settings, [memo_pod(memo())], ManualClock(T0), clock)
    path = cm_dir(engine_settings.home, "my-cache") / "k-hi"
    saved = json.loads(path.read_text())
    assert list(saved) == ["nodeID", "outputs", "creationTimestamp", "lastHitTimestamp"]
    assert saved["nodeID"] == first["metadata"]["name"]
    assert saved["outputs"] == {"parameters": [{"name": "hello", "value": "world"}]}
    assert saved["creationTimestamp"] == saved["lastHitTimestamp"] == iso(T0)

    second_pods = FakePods()
    second = run(engine_settings, [memo_pod(memo())], ManualClock(T0 + 60), second_pods)
    node = second["status"]["nodes"][second["metadata"]["name"]]
    assert not second_pods.ran
    assert node["memoizationStatus"]["hit"] is True
    assert node["outputs"] == saved["outputs"]
    after = json.loads(path.read_text())  # configMapCache.load: the hit is recorded, the creation time kept
    assert (after["creationTimestamp"], after["lastHitTimestamp"]) == (iso(T0), iso(T0 + 60))


def test_a_failed_node_saves_nothing(engine_settings) -> None:  # type: ignore[no-untyped-def]
    """podReconciliation saves only when the node succeeded."""
    doc = run(engine_settings, [memo_pod(memo(), phase="Failed")], ManualClock(T0), FakePods())
    assert doc["status"]["phase"] == "Failed"
    assert doc["status"]["nodes"][doc["metadata"]["name"]]["memoizationStatus"]["hit"] is False
    assert not (cm_dir(engine_settings.home, "my-cache") / "k-hi").exists()


STEPS = [
    {
        "name": "main",
        "steps": [
            [{"name": "one", "template": "memo-steps"}],
            [
                {
                    "name": "two",
                    "template": "echo",
                    "arguments": {"parameters": [{"name": "v", "value": "{{steps.one.outputs.parameters.out}}"}]},
                }
            ],
        ],
    },
    {
        "name": "memo-steps",
        "memoize": {"key": "steps-key", "cache": CACHE},
        "steps": [[{"name": "inner", "template": "produce"}]],
        "outputs": {"parameters": [{"name": "out", "valueFrom": {"parameter": "{{steps.inner.outputs.parameters.p}}"}}]},
    },
    {"name": "produce", "fake": {"outputs": {"p": "computed"}}},
    {"name": "echo", "inputs": {"parameters": [{"name": "v"}]}, "fake": {"outputs": {"got": "{{inputs.parameters.v}}"}}},
]


def test_steps_level_memoization(engine_settings) -> None:  # type: ignore[no-untyped-def]
    """executeSteps saves the steps node's outputs; a hit is a Steps node without children whose inner steps
    do not run, and its cached outputs feed the next step (TestStepLevelMemoize, TestGetOutboundNodesFromCacheHitSteps)."""
    pods = FakePods()
    first = run(engine_settings, STEPS, ManualClock(T0), pods)
    assert first["status"]["phase"] == "Succeeded"
    assert pods.ran == ["inner", "two"]
    saved = json.loads((cm_dir(engine_settings.home, "my-cache") / "steps-key").read_text())
    assert saved["outputs"] == {"parameters": [{"name": "out", "value": "computed"}]}

    pods = FakePods()
    second = run(engine_settings, STEPS, ManualClock(T0 + 1), pods)
    assert second["status"]["phase"] == "Succeeded"
    assert pods.ran == ["two"]
    nodes = {n["displayName"]: n for n in second["status"]["nodes"].values()}
    one = nodes["one"]
    assert (one["type"], one["memoizationStatus"]["hit"]) == ("Steps", True)
    assert "inner" not in nodes
    assert nodes["two"]["outputs"]["parameters"] == [{"name": "got", "value": "computed"}]


def test_memoize_without_a_cache_is_refused_before_running(engine_settings) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(EngineError, match=r"memoize needs a key and cache\.configMap\.name"):
        run(engine_settings, [memo_pod({"key": "k"})], ManualClock(T0), FakePods())


# (what, call, error expected) — configmap_cache.go on its own
CACHE_CASES = [
    ("save refuses a bad key", lambda c: c.save("a/b", "n", None), "invalid cache key: a/b"),
    ("load refuses a bad key", lambda c: c.load("-a"), "invalid cache key: -a"),
    ("a ConfigMap past 1 MiB", lambda c: c.save("big", "n", {"result": "x" * CONFIGMAP_LIMIT}), "Too long: must have at most"),
    ("a key past 253 characters", lambda c: c.save("k" * 254, "n", None), "must be no more than 253 characters"),
]


@pytest.mark.parametrize(("what", "call", "error"), CACHE_CASES, ids=[c[0] for c in CACHE_CASES])
def test_cache_refusals(tmp_path: Path, what, call, error) -> None:  # type: ignore[no-untyped-def]
    cache = ConfigMapCache(tmp_path, "default", "c", ManualClock(T0))
    with pytest.raises(EngineError, match=error):
        call(cache)
    assert not list(cm_dir(tmp_path, "c").glob("[!.]*")), "nothing written"


@pytest.mark.parametrize("name", ["../up", "a/b", "Upper", ".annotations", "x" * 254, ""])
def test_a_cache_name_no_configmap_can_have_is_a_miss_and_cannot_be_saved(tmp_path: Path, name: str) -> None:
    """Get finds no such ConfigMap (a miss); Create is refused by the API server (the node errors)."""
    cache = ConfigMapCache(tmp_path, "default", name, ManualClock(T0))
    assert cache.load("k") is None
    with pytest.raises(EngineError, match="a lowercase RFC 1123 subdomain"):
        cache.save("k", "n", None)
    assert not (tmp_path / "configmaps").exists()
    assert not (tmp_path / "up").exists()


def test_cache_miss_leaves_no_configmap(tmp_path: Path) -> None:
    assert ConfigMapCache(tmp_path, "default", "c", ManualClock(T0)).load("k") is None
    assert ConfigMapCache(tmp_path, "default", "c", ManualClock(T0)).load("k" * 300) is None  # no ConfigMap holds such a key
    assert not cm_dir(tmp_path, "c").exists()
    assert Entry.parse(
        '{"nodeID":"x","outputs":null,"creationTimestamp":"2020-09-21T18:12:56.5+02:00"}'
    ).created == pytest.approx(1600704776.5)


def test_memoization_behind_a_mutex(engine_settings) -> None:  # type: ignore[no-untyped-def]
    """TestWorkflowMemoizationWithMutex (workflow/controller/operator_concurrency_test.go): two steps of one
    group, one mutex, one key — the cache is read once the lock is held, so the step that waited hits what
    the other saved (exactly one runs; both succeed)."""
    sleep = {
        "name": "sleep",
        "synchronization": {"mutexes": [{"name": "mutex-example-steps-simple"}]},
        "inputs": {"parameters": [{"name": "d"}]},
        "memoize": {"key": "memo-key-1", "cache": {"configMap": {"name": "cache-example-steps-simple"}}},
        "fake": {"seconds": 0.2, "outputs": {"slept": "{{inputs.parameters.d}}"}},
    }
    steps = [
        [
            {"name": "job-1", "template": "sleep", "arguments": {"parameters": [{"name": "d", "value": "10"}]}},
            {"name": "job-2", "template": "sleep", "arguments": {"parameters": [{"name": "d", "value": "5"}]}},
        ]
    ]
    pods = FakePods()
    status = run_workflow(wf([{"name": "main", "steps": steps}, sleep]), engine_settings, kinds=pods.kinds)
    doc = read_status(engine_settings.home / "runs" / status.name)
    jobs = {n["displayName"]: n for n in doc["status"]["nodes"].values() if n["displayName"].startswith("job-")}
    assert doc["status"]["phase"] == "Succeeded"
    assert len(pods.ran) == 1, pods.ran
    hits = {name: n["memoizationStatus"]["hit"] for name, n in jobs.items()}
    assert sorted(hits.values()) == [False, True], hits
    ran, hit = (jobs[pods.ran[0]], next(n for n in jobs.values() if n["memoizationStatus"]["hit"]))
    assert hit["outputs"] == ran["outputs"] and {n["phase"] for n in jobs.values()} == {"Succeeded"}


def test_a_cache_that_cannot_be_created_errors_the_node_after_it_ran(engine_settings) -> None:  # type: ignore[no-untyped-def]
    """Load misses (Get finds nothing), the node runs, and the save fails as Create would: podReconciliation
    then marks the node Error with the cache's message."""
    pods = FakePods()
    tmpl = memo_pod({"key": "k", "cache": {"configMap": {"name": "Not_A_Name"}}})
    doc = run(engine_settings, [tmpl], ManualClock(T0), pods)
    node = doc["status"]["nodes"][doc["metadata"]["name"]]
    assert pods.ran == [doc["metadata"]["name"]]
    assert node["phase"] == "Error" and "could not save to config map cache" in node["message"]
    assert not (engine_settings.home / "configmaps").exists()
