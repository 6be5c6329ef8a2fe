"""Where a namespace's ConfigMaps and Secrets live on this machine: the one place that says it, for every
reader (env and parameter refs, configMap/secret volumes, semaphore limits, the memoization cache, artifact
repositories) and writer (``scanflow-argo apply``, the memoization cache).

One folder per object, one file per key, under the object's namespace::

    <home>/configmaps/.namespaces/<namespace>/<name>/<key>
    <home>/secrets/.namespaces/<namespace>/<name>/<key>

and a ConfigMap's annotations beside its folder, ``.namespaces/<namespace>/.annotations/<name>.json`` (a
ConfigMap's own folder holds only its keys, which pods may mount). On a cluster every one of these reads
resolves in a namespace: a Pod's ``configMapKeyRef``/``secretKeyRef`` and configMap/secret volumes in the Pod's
(the kubelet), a parameter's ``valueFrom.configMapKeyRef`` in the workflow's (Argo's ``GetConfigMapValue``,
keyed ``<namespace>/<name>``), a semaphore's limit in its lock's (``<namespace>/ConfigMap/<name>/<key>``, the
ConfigMap read with ``ConfigMaps(namespace)``), the memoization cache in the workflow's (``cacheFactory.GetCache``
keys it ``ConfigMapCache.<namespace>.<name>``, ``workflow/controller/cache/cache.go``), the artifact
repositories in the workflow's (``artifactRepositories.Resolve``). So here one name in two namespaces is two
objects, and a run sees its own namespace's.

Older versions kept one folder per name and no namespace, ``<home>/configmaps/<name>/<key>`` (and
``secrets/…``, ``configmaps/.annotations/<name>.json``). Nothing is moved, and every write goes to a namespace's
folder; such an entry is still *read*, when the namespace has no object of that name, by runs of the namespaces
those versions' runs landed in: ``scanflow`` (the platform's default, ``KubernetesSettings.namespace``) and
``default`` (a Workflow naming no namespace, run by the engine itself) — ``LEGACY_READERS``. A run of any other
namespace (a team's) never reads one: whose it was cannot be known, and reading it is how one team would see
another's values; it gets an error naming its namespace and how to apply the object there. The memoization
cache never reads one at all (``find_object(..., legacy=False)``): a miss runs the step again, while a hit on
an entry of unknown namespace could return another team's outputs without running anything.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

from ...errors import EngineError
from ...settings import KubernetesSettings
from .paths import safe_join

__all__ = [
    "CONFIGMAPS",
    "LEGACY_READERS",
    "NAMESPACES",
    "SECRETS",
    "check_namespace",
    "configmap_annotations",
    "find_object",
    "missing",
    "object_folder",
    "read_key",
    "valid_namespace",
    "write_configmap",
]

CONFIGMAPS = "configmaps"
SECRETS = "secrets"
_KINDS = {CONFIGMAPS: "ConfigMap", SECRETS: "Secret"}
NAMESPACES = ".namespaces"
"""The folder of ``<home>/configmaps`` (``secrets``) holding one folder per namespace (a dot name: no object
name starts with a dot, so no older entry can be taken for it)."""
ANNOTATIONS = ".annotations"
LEGACY_READERS = frozenset({"default", KubernetesSettings.namespace})
"""The namespaces whose runs still read an entry an older version kept without a namespace."""
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def valid_namespace(namespace: str) -> bool:
    """Whether ``namespace`` can name a Kubernetes namespace (a DNS label: lowercase letters, digits, '-')."""
    return bool(_NAMESPACE.fullmatch(namespace))


def check_namespace(namespace: str) -> str:
    """``namespace`` when it can name a Kubernetes namespace (``valid_namespace``), else ``EngineError``."""
    if not valid_namespace(namespace):
        raise EngineError(
            f"namespace {namespace!r} is no Kubernetes namespace name (lowercase letters, digits and '-', at most 63): "
            "fix metadata.namespace or --namespace"
        )
    return namespace


def _plain(name: str) -> bool:
    """Whether ``name`` can be one object's or key's file name (never a path, never a hidden file of ours)."""
    return bool(name) and "/" not in name and "\\" not in name and not name.startswith(".")


def _kind(kind: str) -> str:
    if kind not in _KINDS:
        raise ValueError(f"kind must be {CONFIGMAPS!r} or {SECRETS!r}, not {kind!r}")
    return kind


def object_folder(home: Path, kind: str, namespace: str, name: str) -> Path:
    """Where the ConfigMap (``configmaps``) or Secret (``secrets``) ``name`` of ``namespace`` is written."""
    if not _plain(name):
        raise EngineError(f"{_KINDS[_kind(kind)]} name {name!r} cannot be a folder name (a name, not a path)")
    base = home / kind / NAMESPACES / check_namespace(namespace)
    return safe_join(base, name, f"{_KINDS[kind]} {name!r}")


def find_object(home: Path, kind: str, namespace: str, name: str, *, legacy: bool = True) -> Path | None:
    """The folder of the object ``name`` a run of ``namespace`` sees: its namespace's, else (``legacy`` and a
    namespace of ``LEGACY_READERS``) the one an older version kept without a namespace; None when neither."""
    if not _plain(name):
        return None  # no object can have such a name
    folder = object_folder(home, kind, namespace, name)
    if folder.is_dir():
        return folder
    if legacy and namespace in LEGACY_READERS:
        old = safe_join(home / _kind(kind), name, f"{_KINDS[kind]} {name!r}")
        if old.is_dir():
            return old
    return None


def read_key(home: Path, kind: str, namespace: str, name: str, key: str) -> str | None:
    """The value of ``key`` of the object ``name`` a run of ``namespace`` sees (``find_object``), or None."""
    folder = find_object(home, kind, namespace, name)
    if folder is None or not key or "/" in key or "\\" in key:
        return None
    path = safe_join(folder, key, f"{_KINDS[kind]} {name!r} key {key!r}")
    return path.read_text() if path.is_file() else None


def configmap_annotations(home: Path, namespace: str, name: str) -> dict[str, str]:
    """The annotations of the ConfigMap ``name`` a run of ``namespace`` sees (none when not recorded)."""
    folder = find_object(home, CONFIGMAPS, namespace, name)
    if folder is None:
        return {}
    try:
        found = json.loads((folder.parent / ANNOTATIONS / f"{folder.name}.json").read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def write_configmap(home: Path, namespace: str, name: str, data: Mapping[str, str], notes: Mapping[str, str]) -> bool:
    """Write each key of the ConfigMap ``name`` into ``namespace`` (each file replaced whole, so a reader never
    sees half a value) and its annotations beside it; True when it existed already."""
    folder = object_folder(home, CONFIGMAPS, namespace, name)
    bad = [k for k in data if not _plain(k)]
    if bad:
        raise EngineError(f"ConfigMap {name!r}: {bad[0]!r} cannot be a file name (keys are names, not paths)")
    existed = folder.is_dir()
    folder.mkdir(parents=True, exist_ok=True)
    for key, value in data.items():
        tmp = folder / f".{key}.{os.getpid()}.tmp"
        tmp.write_text(value)
        os.replace(tmp, folder / key)
    path = folder.parent / ANNOTATIONS / f"{name}.json"
    if notes:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(dict(notes), indent=1, sort_keys=True))
    else:
        path.unlink(missing_ok=True)
    return existed


def missing(home: Path, kind: str, namespace: str, name: str, key: str | None = None) -> str:
    """Why the object ``name`` (its ``key``) is not there for a run of ``namespace``, and how to put it there."""
    what = _KINDS[_kind(kind)]
    found = find_object(home, kind, namespace, name)
    if found is None or key is None:
        head = f"{what} {name!r} not found in namespace {namespace!r}"
    else:
        head = f"{what} {name!r} has no key {key!r} in namespace {namespace!r}"
    others = _elsewhere(home, kind, namespace, name)
    if others:
        head += f" (it is in namespace {', '.join(map(repr, others))}: a run reads its own namespace's)"
    where = ""
    if _plain(name) and (key is None or _plain(key)):  # beside the object's other keys when it has some
        path = (found or object_folder(home, kind, namespace, name)) / (key or "KEY")
        where = f"write {'each key' if key is None else 'the value'} to {path}"
    if kind == CONFIGMAPS:
        fix = f"apply it with scanflow-argo --namespace {namespace} apply FILE" + (f", or {where}" if where else "")
    else:
        fix = f"{where or 'write it by hand'} (Secrets are never applied from manifests here)"
    return f"{head}: {fix}"


def _elsewhere(home: Path, kind: str, namespace: str, name: str) -> list[str]:
    """The other namespaces holding an object ``name`` (to say where the one looked for is)."""
    if not _plain(name):
        return []
    root = home / kind / NAMESPACES
    try:
        return sorted(p.name for p in root.iterdir() if p.name != namespace and (p / name).is_dir())
    except OSError:
        return []
