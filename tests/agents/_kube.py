"""The fake Kubernetes API (``tests/kubernetes/fakeapi.py``) with the two core resources agents use:
``v1`` ConfigMaps (persisted state) and ``coordination.k8s.io/v1`` Leases (leader election).

Same store and semantics as the fake's custom objects (cluster-wide resourceVersion, 409 on a stale
PUT, 404/409 ``Status`` bodies), so the real ``kubernetes`` client talks to it as to an API server.
"""

from __future__ import annotations

import re
import sys
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kubernetes"))

import fakeapi

from scanflow_argo._proc import free_port

NAMESPACE = "scanflow"

_CORE = [
    (re.compile(r"/api/v1/namespaces/([^/]+)/configmaps(?:/([^/]+))?"), "configmaps"),
    (re.compile(r"/apis/coordination\.k8s\.io/v1/namespaces/([^/]+)/leases(?:/([^/]+))?"), "leases"),
]


class _Handler(fakeapi._Handler):
    def _kube(self, method: str, path: str, query: dict[str, list[str]], body: Any, ctype: str) -> tuple[int, Any, str]:
        for pattern, plural in _CORE:
            m = pattern.fullmatch(path)
            if not m:
                continue
            fake, (ns, name) = self.fake, m.groups()
            if name is None and method == "POST":
                return 201, fake._create(plural, ns, dict(body)), "application/json"
            if name is None and method == "GET":
                return 200, fake._list(plural, ns, None), "application/json"
            if name is not None and method == "GET":
                return 200, fake._get(plural, ns, name), "application/json"
            if name is not None and method == "PUT":
                return 200, fake._replace(plural, ns, name, body), "application/json"
            raise fakeapi._Error(405, "MethodNotAllowed", f"{method} is not allowed on {path}")
        return super()._kube(method, path, query, body, ctype)


class AgentCluster(fakeapi.FakeCluster):
    """``FakeCluster`` serving ConfigMaps and Leases too."""

    def start(self) -> AgentCluster:
        self.port = free_port()
        cluster = self

        class Handler(_Handler):
            fake = cluster

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def config_map(self, name: str, data: dict[str, str] | None = None, namespace: str = NAMESPACE) -> dict[str, Any]:
        """Create a ConfigMap as ``kubectl apply`` of the compiled manifests would."""
        obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, **({"data": data} if data else {})}
        with self._lock:
            return self._create("configmaps", namespace, obj)
