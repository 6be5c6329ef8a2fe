"""ConfigMaps and Secrets are namespaced, as on Kubernetes: one name in two namespaces is two objects, and a run
reads its own namespace's, through every reader the engine has.

Oracles: a Pod's ``configMapKeyRef``/``secretKeyRef`` env and its configMap/secret volumes resolve in the Pod's
namespace (Kubernetes: the kubelet gets them from the Pod's namespace); a parameter's ``valueFrom.configMapKeyRef``
in the workflow's (Argo's ``substituteAndGetConfigMapValue`` → ``GetConfigMapValue(store, namespace, name, key)``,
``workflow/common/util.go``, its error ``unable to retrieve inputs.parameters.X from ConfigMap``); a semaphore's
limit in the lock's namespace (``<namespace>/ConfigMap/<name>/<key>``, the ConfigMap read with
``ConfigMaps(namespace)``, ``workflow/sync``; a semaphore's own ``namespace`` field names another); the
memoization cache in the workflow's (``cacheFactory.GetCache`` keys it ``ConfigMapCache.<namespace>.<name>``,
``workflow/controller/cache/cache.go``; ``configmap_cache.go`` reads ``ConfigMaps(c.namespace)``); the
artifact repositories ConfigMap in the workflow's (``artifactRepositories.Resolve``).

The local layout is ``<home>/configmaps|secrets/.namespaces/<namespace>/<name>/<key>`` (docs/local-engine.md);
entries older versions kept at ``<home>/configmaps/<name>/<key>`` stay readable by runs of ``default`` and
``scanflow`` only, and the memoization cache never reads them (docs/teams.md, Honest boundaries)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scanflow_argo.engine import prepare_run, run_workflow
from scanflow_argo.engine.core.state import read_status
from scanflow_argo.errors import EngineError
from scanflow_argo.settings import Settings

from .test_volumes import needs_bwrap

A, B = "scanflow-mnist-science", "scanflow-mnist-engineering"
LEGACY = None
"""Where an older version kept an object: no namespace."""


def put(home: Path, kind: str, namespace: str | None, name: str, data: dict[str, str]) -> Path:
    """An object as the documented layout keeps it (``namespace`` None: as an older version kept it)."""
    folder = home / kind / ".namespaces" / namespace / name if namespace else home / kind / name
    folder.mkdir(parents=True, exist_ok=True)
    for key, value in data.items():
        (folder / key).write_text(value)
    return folder


def wf(namespace: str, templates: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "cm-", "namespace": namespace},
        "spec": {"entrypoint": "main", "templates": templates, **spec},
    }


def sh(script: str, **extra: Any) -> dict[str, Any]:
    container = {"image": "busybox", "command": ["sh", "-c"], "args": [script], **extra.pop("container", {})}
    return {"name": "main", "container": container, **extra}


# -- every reader of one key: (kind, workflow of a namespace printing the key's value) -------------------------------
def _env(ref: str) -> Any:
    return lambda ns: wf(ns, [sh('echo "$WHO"', container={"env": [{"name": "WHO", "valueFrom": {ref: REF}}]})])


def _input_parameter(ns: str) -> dict[str, Any]:
    tmpl = sh("echo {{inputs.parameters.who}}", inputs={"parameters": [{"name": "who", "valueFrom": {"configMapKeyRef": REF}}]})
    return wf(ns, [tmpl])


def _workflow_parameter(ns: str) -> dict[str, Any]:
    arguments = {"parameters": [{"name": "who", "valueFrom": {"configMapKeyRef": REF}}]}
    return wf(ns, [sh("echo {{workflow.parameters.who}}")], arguments=arguments)


def _volume(kind: str) -> Any:
    source = {"configMap": {"name": "shared"}} if kind == "configmaps" else {"secret": {"secretName": "shared"}}
    mounts = [{"name": "v", "mountPath": "/v"}]
    return lambda ns: wf(ns, [sh("cat /v/who", container={"volumeMounts": mounts})], volumes=[{"name": "v", **source}])


REF = {"name": "shared", "key": "who"}
READERS = [
    pytest.param("configmaps", _env("configMapKeyRef"), id="env configMapKeyRef"),
    pytest.param("secrets", _env("secretKeyRef"), id="env secretKeyRef"),
    pytest.param("configmaps", _input_parameter, id="input parameter valueFrom.configMapKeyRef"),
    pytest.param("configmaps", _workflow_parameter, id="workflow parameter valueFrom.configMapKeyRef"),
    pytest.param("configmaps", _volume("configmaps"), id="configMap volume", marks=needs_bwrap),
    pytest.param("secrets", _volume("secrets"), id="secret volume", marks=needs_bwrap),
]
WHAT = {"configmaps": "ConfigMap", "secrets": "Secret"}


def _result(run: Any) -> str:
    assert run.phase == "Succeeded", f"{run.message} {run.node(run.name).message}"
    return str(run.node(run.name).outputs["result"]).strip()


def _error(run: Any) -> str:
    """The run's message and its entry node's (a workflow parameter's ConfigMap is read before any node exists)."""
    assert run.phase in ("Error", "Failed"), run.outputs
    nodes = [n.message or "" for n in run.nodes.values() if n.display_name == run.name]
    return " ".join([run.message or "", *nodes])


@pytest.mark.parametrize(("kind", "reader"), READERS)
def test_each_namespace_reads_its_own_object_of_one_name(engine_settings: Settings, kind: str, reader: Any) -> None:
    home = engine_settings.home
    put(home, kind, A, "shared", {"who": "science"})
    put(home, kind, B, "shared", {"who": "engineering"})
    put(home, kind, LEGACY, "shared", {"who": "legacy"})  # shadowed by each namespace's own
    assert _result(run_workflow(reader(A), engine_settings)) == "science"
    assert _result(run_workflow(reader(B), engine_settings)) == "engineering"


@pytest.mark.parametrize(("kind", "reader"), READERS)
def test_another_namespaces_object_is_not_found_and_the_error_names_the_namespace(
    engine_settings: Settings, kind: str, reader: Any
) -> None:
    put(engine_settings.home, kind, A, "shared", {"who": "s3cr3t-a"})
    message = _error(run_workflow(reader(B), engine_settings))
    assert f"{WHAT[kind]} 'shared' not found in namespace '{B}' (it is in namespace '{A}'" in message
    assert "s3cr3t-a" not in message  # A's value never leaks into B's message
    own = engine_settings.home / kind / ".namespaces" / B / "shared"
    if kind == "configmaps":
        assert f"apply it with scanflow-argo --namespace {B} apply FILE" in message
    assert str(own) in message  # where to put it


@pytest.mark.parametrize(("kind", "reader"), READERS[:4])  # the readers of one key
def test_a_missing_key_is_named_with_its_namespace(engine_settings: Settings, kind: str, reader: Any) -> None:
    folder = put(engine_settings.home, kind, A, "shared", {"other": "x"})
    message = _error(run_workflow(reader(A), engine_settings))
    assert f"{WHAT[kind]} 'shared' has no key 'who' in namespace '{A}'" in message
    assert f"write the value to {folder.resolve() / 'who'}" in message


@pytest.mark.parametrize(("kind", "reader"), READERS)
@pytest.mark.parametrize(
    ("namespace", "own", "expected"),
    [
        ("default", None, "legacy"),  # a Workflow naming no namespace, run by the engine: where older runs landed
        ("scanflow", None, "legacy"),  # the platform's default namespace
        ("default", "new", "new"),  # the namespace's own object wins over the older one
        (A, None, None),  # a team's namespace never reads an entry of unknown owner
    ],
)
def test_entries_kept_without_a_namespace_are_read_by_the_default_namespaces_only(
    engine_settings: Settings, kind: str, reader: Any, namespace: str, own: str | None, expected: str | None
) -> None:
    put(engine_settings.home, kind, LEGACY, "shared", {"who": "legacy"})
    if own is not None:
        put(engine_settings.home, kind, namespace, "shared", {"who": own})
    run = run_workflow(reader(namespace), engine_settings)
    if expected is None:
        assert f"{WHAT[kind]} 'shared' not found in namespace '{namespace}'" in _error(run)
    else:
        assert _result(run) == expected


@pytest.mark.parametrize(
    ("semaphore", "limits", "outcome"),
    [
        ({}, {A: "1", B: "1"}, None),  # B's own limit
        ({}, {A: "1", B: "lots"}, "ConfigMap limits key n of namespace 'scanflow-mnist-engineering' holds 'lots'"),
        ({}, {A: "1"}, f"ConfigMap 'limits' not found in namespace '{B}' (it is in namespace '{A}'"),
        ({"namespace": A}, {A: "1"}, None),  # a semaphore naming its namespace reads the limit there
        ({}, {None: "1"}, f"ConfigMap 'limits' not found in namespace '{B}'"),  # not an entry of unknown owner
    ],
)
def test_a_semaphore_reads_its_limit_in_the_locks_namespace(
    engine_settings: Settings, semaphore: dict[str, str], limits: dict[str | None, str], outcome: str | None
) -> None:
    for namespace, limit in limits.items():
        put(engine_settings.home, "configmaps", namespace, "limits", {"n": limit})
    sync = {"semaphores": [{"configMapKeyRef": {"name": "limits", "key": "n"}, **semaphore}]}
    manifest = wf(B, [sh("echo ran")], synchronization=sync)
    if outcome is None:
        assert _result(run_workflow(manifest, engine_settings)) == "ran"
    else:
        with pytest.raises(EngineError) as err:  # checked before anything runs
            prepare_run(manifest, engine_settings)
        assert outcome in str(err.value)


def test_a_semaphore_of_the_default_namespace_reads_an_older_limit(engine_settings: Settings) -> None:
    put(engine_settings.home, "configmaps", LEGACY, "limits", {"n": "1"})
    sync = {"semaphore": {"configMapKeyRef": {"name": "limits", "key": "n"}}}
    assert _result(run_workflow(wf("default", [sh("echo ran")], synchronization=sync), engine_settings)) == "ran"


# -- the memoization cache ---------------------------------------------------------------------------------------
def _memoized(namespace: str, says: str, key: str = "k") -> dict[str, Any]:
    return wf(namespace, [sh(f"echo {says}", memoize={"key": key, "cache": {"configMap": {"name": "memo"}}})])


def _memo(settings: Settings, manifest: dict[str, Any]) -> tuple[bool, str]:
    """(hit, the node's result) of a run of ``manifest``."""
    run = run_workflow(manifest, settings)
    node = read_status(settings.home / "runs" / run.name)["status"]["nodes"][run.name]
    return node["memoizationStatus"]["hit"], _result(run)


def test_a_memoized_step_never_hits_another_namespaces_cache(engine_settings: Settings) -> None:
    """The wrong success this guards against: B's step returning A's outputs without running."""
    home = engine_settings.home
    assert _memo(engine_settings, _memoized(A, "science-1")) == (False, "science-1")
    assert _memo(engine_settings, _memoized(B, "engineering-1")) == (False, "engineering-1")  # a miss: it ran
    assert _memo(engine_settings, _memoized(A, "science-2")) == (True, "science-1")  # A's own entry
    assert _memo(engine_settings, _memoized(B, "engineering-2")) == (True, "engineering-1")  # B's own entry
    for namespace, result in ((A, "science-1"), (B, "engineering-1")):
        entry = json.loads((home / "configmaps" / ".namespaces" / namespace / "memo" / "k").read_text())
        assert entry["outputs"]["result"] == result
    assert not (home / "configmaps" / "memo").exists()  # never the un-namespaced folder


@pytest.mark.parametrize("namespace", ["default", "scanflow", A])
def test_a_memoized_step_never_hits_an_entry_kept_without_a_namespace(engine_settings: Settings, namespace: str) -> None:
    """Whose run saved an older entry cannot be known: a miss (the step runs) is right, a hit could be another
    team's outputs."""
    entry = {"nodeID": "old-node", "outputs": {"result": "someone's"}, "creationTimestamp": "2026-01-01T00:00:00Z"}
    put(engine_settings.home, "configmaps", LEGACY, "memo", {"k": json.dumps(entry)})
    assert _memo(engine_settings, _memoized(namespace, "fresh")) == (False, "fresh")


def test_apply_seeds_the_cache_of_its_namespace_only(engine_settings: Settings) -> None:
    """``kubectl apply -n A`` of a cache ConfigMap seeds A's cache (Argo's docs: memoization FAQ), not B's."""
    from scanflow_argo.engine.core.configstore import write_configmap

    entry = {"nodeID": "seeded", "outputs": {"result": "from-apply"}, "creationTimestamp": "2026-01-01T00:00:00Z"}
    write_configmap(engine_settings.home, A, "memo", {"k": json.dumps(entry)}, {})
    assert _memo(engine_settings, _memoized(A, "ran")) == (True, "from-apply")
    assert _memo(engine_settings, _memoized(B, "ran")) == (False, "ran")


# -- artifact repository ConfigMaps ------------------------------------------------------------------------------
REPO = "s3:\n  bucket: my-bucket\n  endpoint: minio:9000\n"


def _writes_artifact(namespace: str, **spec: Any) -> dict[str, Any]:
    tmpl = sh("echo hi > /tmp/a", outputs={"artifacts": [{"name": "a", "path": "/tmp/a"}]})
    return wf(namespace, [tmpl], **spec)


def test_artifact_repository_configmaps_are_read_in_the_workflows_namespace(engine_settings: Settings) -> None:
    home = engine_settings.home
    folder = put(home, "configmaps", A, "artifact-repositories", {"team": REPO})
    notes = folder.parent / ".annotations" / "artifact-repositories.json"  # its annotations, beside it
    notes.parent.mkdir()
    notes.write_text(json.dumps({"workflows.argoproj.io/default-artifact-repository": "team"}))
    ref = {"artifactRepositoryRef": {"key": "team"}}

    def resolved(namespace: str, **spec: Any) -> Any:
        run = run_workflow(_writes_artifact(namespace, **spec), engine_settings)
        assert run.phase == "Succeeded", run.message
        return read_status(home / "runs" / run.name)["status"]["artifactRepositoryRef"]

    assert resolved(A, **ref) == {"namespace": A, "configMap": "artifact-repositories", "key": "team"}
    assert resolved(A) == {"namespace": A, "configMap": "artifact-repositories", "key": "team"}  # A's annotation
    assert resolved(B) == {"default": True}  # B has no such ConfigMap: the default repository, not A's
    run = run_workflow(_writes_artifact(B, **ref), engine_settings)
    assert run.phase == "Error"
    assert (run.message or "").startswith("failed to resolve artifact repository: failed to find any artifact repository")


@pytest.mark.parametrize(
    ("reader", "says"),
    [
        # workflow/common/util.go substituteAndGetConfigMapValue: the template's input errors the node
        (_input_parameter, "unable to retrieve inputs.parameters.who from ConfigMap: ConfigMap 'shared' not found in namespace"),
        # operator.go setGlobalParameters: the workflow errors before any node
        (
            _workflow_parameter,
            "failed to set global parameter who from configmap with name shared and key who: ConfigMap 'shared' not found in "
            "namespace",
        ),
    ],
)
def test_a_parameter_from_a_configmap_of_another_namespace_fails_in_argos_words(
    engine_settings: Settings, reader: Any, says: str
) -> None:
    put(engine_settings.home, "configmaps", A, "shared", {"who": "science"})
    run = run_workflow(reader(B), engine_settings)
    assert run.phase == "Error"
    assert f"{says} '{B}'" in _error(run)


# -- names that cannot be a namespace's or an object's never reach outside the store ------------------------------
@pytest.mark.parametrize("namespace", ["../up", "Team", "a/b", "", "x" * 64, "ok\n", ".namespaces"])
def test_a_namespace_kubernetes_refuses_names_no_folder(tmp_path: Path, namespace: str) -> None:
    from scanflow_argo.engine.core.configstore import read_key, write_configmap

    with pytest.raises(EngineError, match="is no Kubernetes namespace name"):
        write_configmap(tmp_path, namespace, "cm", {"k": "v"}, {})
    with pytest.raises(EngineError, match="is no Kubernetes namespace name"):
        read_key(tmp_path, "secrets", namespace, "cm", "k")
    assert not list(tmp_path.rglob("*"))


@pytest.mark.parametrize("name", ["../up", "a/b", ".annotations", ""])
def test_an_object_name_that_is_no_name_is_not_found_and_cannot_be_written(tmp_path: Path, name: str) -> None:
    from scanflow_argo.engine.core.configstore import read_key, write_configmap

    put(tmp_path, "configmaps", LEGACY, "up", {"k": "outside"})  # what '../up' would reach from a namespace's folder
    assert read_key(tmp_path, "configmaps", "default", name, "k") is None
    with pytest.raises(EngineError, match="cannot be a folder name"):
        write_configmap(tmp_path, "default", name, {"k": "v"}, {})
    with pytest.raises(EngineError, match="cannot be a file name"):
        write_configmap(tmp_path, "default", "cm", {"../k": "v"}, {})
    assert not (tmp_path / "configmaps" / ".namespaces").exists()  # nothing written
