"""The memoization cache: Argo's ConfigMap cache (``workflow/controller/cache/configmap_cache.go``) as the
local ConfigMap of the workflow's namespace (its folder where ``core/configstore.py`` says), so entries survive
runs and engines, and ``scanflow-argo apply`` of a ConfigMap into that namespace seeds them as ``kubectl apply``
seeds Argo's.

As Argo's ``cacheFactory.GetCache`` (``workflow/controller/cache/cache.go``) keys a cache by the workflow's
namespace and name (``ConfigMapCache.<namespace>.<name>``), one cache name in two namespaces is two caches: a
memoized step never hits an entry another namespace's run saved. Entries an older version kept without a
namespace (``<home>/configmaps/<name>/<key>``) are never read: whose run saved them cannot be known, and a
miss only runs the step again.

An entry is one key of the ConfigMap holding the JSON of Argo's ``cache.Entry``
(``workflow/controller/cache/cache.go``): ``{"nodeID", "outputs", "creationTimestamp",
"lastHitTimestamp"}``. As there:

- keys must match ``^[a-zA-Z0-9][-a-zA-Z0-9]*$`` (``cacheKeyRegex``), else ``invalid cache key: KEY``;
- ``load`` reads the entry (a missing ConfigMap or key, or an empty value, is a miss), decodes it as Go's
  ``encoding/json`` does (field names match case-insensitively, unknown fields are dropped, a value of the
  wrong type is ``malformed cache entry: …``) and writes it back with ``lastHitTimestamp`` set to now;
- an entry is a hit when its ``nodeID`` is not empty (``Entry.Hit``); with a ``maxAge`` it is a hit only
  while ``now - creationTimestamp <= maxAge`` (``Entry.GetOutputsWithMaxAge``);
- ``save`` creates the ConfigMap when missing and writes the entry with both timestamps now; what the API
  server would refuse — a ConfigMap name that is not a DNS subdomain, a key over 253 characters, data past
  Kubernetes' 1 MiB — is an error in Argo's words (with its FAQ link); such a ConfigMap or key is a miss
  when loaded, as a Get finds nothing.

Unlike the cluster's, the local ConfigMaps carry no labels, so Argo's check of the label
``workflows.argoproj.io/configmap-type: Cache`` (``validateConfigmap``) has nothing to read. Readers and
writers of one ConfigMap take an ``flock`` on its folder, which stands for the API server's
resource-version conflicts that Argo retries on.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ...clock import Clock, iso
from ...errors import EngineError
from ..core.configstore import CONFIGMAPS, object_folder

__all__ = ["CONFIGMAP_LIMIT", "MAX_KEY", "ConfigMapCache", "Entry", "valid_key"]

KEY = re.compile(r"^[a-zA-Z0-9][-a-zA-Z0-9]*$")
"""``cacheKeyRegex`` (``workflow/controller/cache/cache.go``)."""
MAX_KEY = 253
"""The longest ConfigMap key Kubernetes accepts (``IsConfigMapKey``)."""
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
CONFIGMAP_LIMIT = 1024 * 1024
"""Kubernetes' limit on a ConfigMap's data, keys included (``ValidateConfigMap``: 1 MiB)."""
FAQ = "https://argo-workflows.readthedocs.io/en/latest/memoization/#faqs"
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_FIELDS = ("nodeID", "outputs", "creationTimestamp", "lastHitTimestamp")


def valid_key(key: str) -> bool:
    """Whether ``key`` may name a cache entry (a ConfigMap key Argo accepts)."""
    return bool(KEY.match(key))


@dataclass
class Entry:
    """Argo's ``cache.Entry``: who produced the outputs and when (times as Unix seconds; 0 is Go's zero time)."""

    node_id: str
    outputs: dict[str, Any] | None
    created: float
    last_hit: float

    @property
    def hit(self) -> bool:
        """``Entry.Hit``: an entry names the node it came from."""
        return self.node_id != ""

    def fresh(self, max_age_s: float, now: float) -> bool:
        """``Entry.GetOutputsWithMaxAge``: not older than ``max_age_s`` (a zero creation time is always older)."""
        return now - self.created <= max_age_s if self.created else False

    def to_json(self) -> str:
        """As Go's ``json.Marshal(entry)``: the four fields in order; a zero time is ``null``."""
        doc = {
            "nodeID": self.node_id,
            "outputs": self.outputs,
            "creationTimestamp": iso(self.created) if self.created else None,
            "lastHitTimestamp": iso(self.last_hit) if self.last_hit else None,
        }
        return json.dumps(doc, separators=(",", ":"))

    @classmethod
    def parse(cls, raw: str) -> Entry:
        """Decode an entry as Go's ``json.Unmarshal`` into ``cache.Entry`` would."""
        try:
            doc = json.loads(raw)
        except ValueError as err:
            raise _malformed(str(err)) from None
        if not isinstance(doc, dict):
            raise _malformed(f"cannot unmarshal {type(doc).__name__} into Go value of type cache.Entry")
        fields = _fields(doc)
        node_id = fields.get("nodeID")
        outputs = fields.get("outputs")
        if node_id is not None and not isinstance(node_id, str):
            raise _malformed("cannot unmarshal into Go struct field Entry.nodeID of type string")
        if outputs is not None and not isinstance(outputs, dict):
            raise _malformed("cannot unmarshal into Go struct field Entry.outputs of type v1alpha1.Outputs")
        return cls(node_id or "", outputs, _time(fields.get("creationTimestamp")), _time(fields.get("lastHitTimestamp")))


class ConfigMapCache:
    """One memoization cache: the local ConfigMap ``name`` of ``namespace`` (Argo's ``configMapCache``)."""

    def __init__(self, home: Path, namespace: str, name: str, clock: Clock) -> None:
        self.namespace = namespace
        self.name = name
        self.clock = clock
        self.valid = bool(_DNS_SUBDOMAIN.match(name)) and len(name) <= 253
        # an invalid name is never a folder (it cannot exist on the API server either): nothing is read or written
        self.folder = object_folder(home, CONFIGMAPS, namespace, name) if self.valid else home / CONFIGMAPS / ".invalid"

    def load(self, key: str) -> Entry | None:
        """The entry under ``key``, its ``lastHitTimestamp`` now recorded; None on a miss (``configMapCache.load``)."""
        if not valid_key(key):
            raise EngineError(f"invalid cache key: {key}")
        if not self.valid or len(key) > MAX_KEY or not self.folder.is_dir():
            return None  # "config map cache miss: config map does not exist" (or a key no ConfigMap can hold)
        with self._locked():
            path = self.folder / key
            try:
                raw = path.read_text()
            except FileNotFoundError:
                return None
            if raw == "":
                return None  # "config map cache miss: entry does not exist"
            entry = Entry.parse(raw)
            entry.last_hit = self.clock.now()
            self._write(key, entry.to_json())
        return entry

    def save(self, key: str, node_id: str, outputs: Mapping[str, Any] | None) -> None:
        """Record ``outputs`` of node ``node_id`` under ``key``, created now (``configMapCache.save``)."""
        if not valid_key(key):
            raise EngineError(f"invalid cache key: {key}")
        if not self.valid:  # the API server refuses to create it
            raise EngineError(
                f'could not save to config map cache: ConfigMap "{self.name}" is invalid: metadata.name: Invalid value: '
                f'"{self.name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '
                "'-' or '.', and must start and end with an alphanumeric character"
            )
        if len(key) > MAX_KEY:
            raise EngineError(
                f'error creating cache entry: ConfigMap "{self.name}" is invalid: data[{key}]: Invalid value: "{key}": '
                f"must be no more than {MAX_KEY} characters. Please check out this page for help: {FAQ}"
            )
        now = self.clock.now()
        text = Entry(node_id, dict(outputs) if outputs is not None else None, now, now).to_json()
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._locked():
            size = len(key) + len(text.encode())
            for other in self.folder.iterdir():
                if other.is_file() and not other.name.startswith(".") and other.name != key:
                    size += len(other.name) + other.stat().st_size
            if size > CONFIGMAP_LIMIT:
                raise EngineError(
                    f'error creating cache entry: ConfigMap "{self.name}" is invalid: []: Too long: must have at most '
                    f"{CONFIGMAP_LIMIT} bytes. Please check out this page for help: {FAQ}"
                )
            self._write(key, text)

    def _write(self, key: str, text: str) -> None:
        tmp = self.folder / f".{key}.{os.getpid()}.tmp"
        tmp.write_text(text)
        os.replace(tmp, self.folder / key)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing drops the lock


def _fields(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Go's ``encoding/json`` field matching: an exact name first, else the last case-insensitive match."""
    out: dict[str, Any] = {}
    for name in _FIELDS:
        if name in doc:
            out[name] = doc[name]
            continue
        for key, value in doc.items():
            if key.lower() == name.lower():
                out[name] = value
    return out


def _time(value: Any) -> float:
    """``metav1.Time.UnmarshalJSON``: ``null`` or ``""`` is the zero time, else RFC 3339."""
    if value is None or value == "":
        return 0.0
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise _malformed(f"parsing time {json.dumps(value)} as RFC 3339")
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC).timestamp()


def _malformed(why: str) -> EngineError:
    return EngineError(f"malformed cache entry: could not unmarshal JSON; unable to parse: {why}")
