"""Kubernetes API access for the platform: client configuration, custom objects, and error mapping.

Configuration comes only from settings: an explicit kubeconfig (and context), else the in-cluster
service account, else ``~/.kube/config``. ``KUBECONFIG=a:b`` (several files, ``os.pathsep``-separated) is
merged as kubectl merges it (client-go ``tools/clientcmd/loader.go`` ``ClientConfigLoadingRules.Load``): missing
files are skipped, the first file to name a cluster, user or context wins it, and so does the first file that
sets ``current-context``. Every call goes through ``call``, which turns the client's
exceptions into the project's: 404 → ``NotFoundError`` naming namespace and name, 409 →
``ConflictError``, network errors and 5xx → ``UnavailableError``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, TypeVar

from ...backoff import Backoff, retry
from ...clock import Clock
from ...errors import AlreadyExistsError, ConflictError, NotFoundError, PlatformError, SetupError, UnavailableError
from ...settings import KubernetesSettings

__all__ = [
    "CONFLICT_ATTEMPTS",
    "CustomObjects",
    "ResourceRef",
    "call",
    "load_api_client",
    "merge_patch",
    "retry_conflicts",
    "selector",
]

T = TypeVar("T")

MERGE_PATCH = "application/merge-patch+json"

CONFLICT_ATTEMPTS = 5
"""Writes tried (re-reading before each) before a 409 becomes ``ConflictError``."""

CONFLICT_BACKOFF = Backoff(0.05, factor=2.0, cap=1.0, attempts=CONFLICT_ATTEMPTS)
"""Waits between those writes: 0.05 s doubling (client-go's ``retry.RetryOnConflict`` waits too)."""


def load_api_client(kube: KubernetesSettings) -> Any:
    """A ``kubernetes.client.ApiClient`` for the configured cluster (kubeconfig, else in-cluster, else ~/.kube/config)."""
    from kubernetes import client, config  # Kubernetes client: ~1.5 s, cluster path only
    from kubernetes.config.config_exception import ConfigException  # Kubernetes client: ~1.5 s, cluster path only

    cfg = client.Configuration()
    try:
        if kube.kubeconfig is not None and os.pathsep in str(kube.kubeconfig):
            _load_merged(str(kube.kubeconfig), kube.context, cfg)
        elif kube.kubeconfig is not None:
            if not kube.kubeconfig.exists():
                raise SetupError(
                    f"kubeconfig {kube.kubeconfig} does not exist — fix KUBECONFIG or settings.kubernetes.kubeconfig"
                )
            config.load_kube_config(config_file=str(kube.kubeconfig), context=kube.context, client_configuration=cfg)
        else:
            try:
                config.load_incluster_config(client_configuration=cfg)
            except ConfigException:
                # Named explicitly: the library's default is frozen from $KUBECONFIG at its import time.
                default = os.path.expanduser("~/.kube/config")
                config.load_kube_config(config_file=default, context=kube.context, client_configuration=cfg)
    except ConfigException as err:
        raise SetupError(
            f"no Kubernetes configuration: {err} — set KUBECONFIG (and SCANFLOW_KUBE_CONTEXT) or run inside a pod"
        ) from err
    # Fail fast: the platform has its own bounded retries where they make sense.
    cfg.retries = 1
    return client.ApiClient(cfg)


def _load_merged(paths: str, context: str | None, cfg: Any) -> None:
    """Several kubeconfig files merged by clientcmd's rules (module docstring). The client's own merger keeps the
    *last* file's ``current-context``; kubectl keeps the first one that sets it."""
    from kubernetes.config.kube_config import KubeConfigLoader, KubeConfigMerger  # Kubernetes client: ~1.5 s, cluster path only

    merger = KubeConfigMerger(paths)
    if not merger.paths:
        raise SetupError(f"none of the kubeconfig files in KUBECONFIG={paths} exists — fix KUBECONFIG")
    current = next((c for p in merger.paths if (c := (merger.config_files[p] or {}).get("current-context"))), None)
    merger.config.value["current-context"] = current
    KubeConfigLoader(config_dict=merger.config, config_base_path=None, active_context=context).load_and_set(cfg)


def _status_message(err: Any) -> str:
    body = getattr(err, "body", None)
    if body:
        try:
            return str(json.loads(body).get("message") or body)
        except (ValueError, AttributeError):
            return str(body)[:300]
    return str(getattr(err, "reason", "") or err)


def _reason(err: Any) -> str:
    """The Kubernetes ``Status.reason`` of an API error (``AlreadyExists``, ``Conflict`` …), else ``""``."""
    try:
        return str(json.loads(getattr(err, "body", None) or "{}").get("reason") or "")
    except (ValueError, AttributeError):
        return ""


def call(fn: Callable[[], T], what: str) -> T:
    """Run one API call; map its failure to the project's errors. ``what`` names the object for messages."""
    from kubernetes.client.exceptions import ApiException  # Kubernetes client: ~1.5 s, cluster path only
    from urllib3.exceptions import HTTPError as Urllib3Error  # with the Kubernetes client: cluster path only

    try:
        return fn()
    except ApiException as err:
        status = int(err.status or 0)
        message = _status_message(err)
        if status == 404:
            raise NotFoundError(f"{what} not found ({message})") from err
        if status == 409 and _reason(err) == "AlreadyExists":
            raise AlreadyExistsError(f"{what}: {message}") from err
        if status == 409:
            raise ConflictError(f"{what}: conflict ({message})") from err
        if status in (401, 403):
            raise PlatformError(
                f"{what}: the Kubernetes API refused access (HTTP {status}: {message}) — check the kubeconfig's "
                "credentials or the service account's Role"
            ) from err
        if status == 0 or status >= 500:
            raise UnavailableError(f"{what}: the Kubernetes API failed (HTTP {status}: {message})") from err
        raise PlatformError(f"{what}: the Kubernetes API rejected the request (HTTP {status}: {message})") from err
    except (Urllib3Error, OSError) as err:
        raise UnavailableError(f"{what}: the Kubernetes API did not answer ({type(err).__name__}: {err})") from err


def _body(answer: object, what: str) -> dict[str, Any]:
    """A custom-object answer as the JSON object it is (the client types these answers ``object``)."""
    if not isinstance(answer, dict):
        raise PlatformError(f"{what}: the Kubernetes API answered {type(answer).__name__}, not a JSON object")
    return answer


def selector(labels: Mapping[str, str] | None) -> str | None:
    """A label selector matching every ``key=value`` in ``labels`` (None when empty)."""
    if not labels:
        return None
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: what the API server does with ``application/merge-patch+json``."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


class ResourceRef:
    """One custom resource type: API group, version, plural and kind."""

    def __init__(self, group: str, version: str, plural: str, kind: str) -> None:
        self.group, self.version, self.plural, self.kind = group, version, plural, kind

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    def describe(self, namespace: str, name: str | None = None) -> str:
        return f"{self.kind} {namespace}/{name}" if name else f"{self.kind}s in namespace {namespace}"


class CustomObjects:
    """Namespaced custom objects of one type through ``CustomObjectsApi``, errors mapped."""

    def __init__(self, api_client: Any, ref: ResourceRef, namespace: str, timeout: float) -> None:
        from kubernetes import client  # Kubernetes client: ~1.5 s, cluster path only

        self._api = client.CustomObjectsApi(api_client)
        self.ref = ref
        self.namespace = namespace
        self._timeout = timeout

    def _args(self) -> tuple[str, str, str, str]:
        return self.ref.group, self.ref.version, self.namespace, self.ref.plural

    def get(self, name: str) -> dict[str, Any]:
        what = self.ref.describe(self.namespace, name)
        return _body(
            call(lambda: self._api.get_namespaced_custom_object(*self._args(), name, _request_timeout=self._timeout), what), what
        )

    def list(self, labels: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        what = self.ref.describe(self.namespace)
        result = call(
            lambda: self._api.list_namespaced_custom_object(
                *self._args(), label_selector=selector(labels), _request_timeout=self._timeout
            ),
            what,
        )
        return list(_body(result, what).get("items") or [])

    def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name = (body.get("metadata") or {}).get("name") or (body.get("metadata") or {}).get("generateName", "?")
        what = self.ref.describe(self.namespace, name)
        return _body(
            call(
                lambda: self._api.create_namespaced_custom_object(*self._args(), dict(body), _request_timeout=self._timeout), what
            ),
            what,
        )

    def replace(self, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """PUT; ``body.metadata.resourceVersion`` makes it conditional (409 when stale)."""
        what = self.ref.describe(self.namespace, name)
        return _body(
            call(
                lambda: self._api.replace_namespaced_custom_object(
                    *self._args(), name, dict(body), _request_timeout=self._timeout
                ),
                what,
            ),
            what,
        )

    def patch(self, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """JSON merge patch; a ``metadata.resourceVersion`` in it makes it conditional (409 when stale)."""
        what = self.ref.describe(self.namespace, name)
        result = call(
            lambda: self._api.patch_namespaced_custom_object(
                *self._args(), name, dict(patch), _content_type=MERGE_PATCH, _request_timeout=self._timeout
            ),
            what,
        )
        return _body(result, what)

    def delete(self, name: str) -> None:
        call(
            lambda: self._api.delete_namespaced_custom_object(*self._args(), name, _request_timeout=self._timeout),
            self.ref.describe(self.namespace, name),
        )


def retry_conflicts(fn: Callable[[], T], clock: Clock, what: str, attempts: int = CONFLICT_ATTEMPTS) -> T:
    """Run a read-modify-write ``fn``; on ``ConflictError`` re-run it (it re-reads) with bounded backoff."""
    try:
        return retry(fn, replace(CONFLICT_BACKOFF, attempts=attempts), clock, (ConflictError,))
    except ConflictError as err:
        raise ConflictError(f"{what}: still conflicting after {attempts} attempts — another writer keeps changing it") from err
