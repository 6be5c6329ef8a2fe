"""One local replica: seldon-core 1.18.2's microservice, listening on 127.0.0.1 and for the router only.

Runs in the serving environment (stdlib + seldon-core). seldon-core's ``microservice.py`` binds every
server it starts to ``0.0.0.0`` with no option to change it: gunicorn's ``bind`` is written in
``_make_rest_server_prod`` (REST) and ``_make_rest_metrics_server`` (metrics), Flask's ``app.run`` in
debug mode and ``_make_grpc_server`` use the literal too (seldon_core/microservice.py, v1.18.2), and
its Flask apps allow every CORS origin (``CORS(app)`` in seldon_core/wrapper.py). Locally a replica
is meant to be reached through the router only, so this module runs the microservice's own
``main()`` after replacing the two gunicorn applications it builds (``StandaloneApplication``,
``UserModelApplication`` from seldon_core/gunicorn_utils.py, looked up in the microservice module
when its servers start) with subclasses that

* rewrite the host of the ``bind`` option in ``load_config`` (gunicorn reads the option there; the
  port and every other option stay as the microservice set them), and
* answer 403, in Seldon's error shape, to a request that names another host (``Host``: DNS
  rebinding) or comes from another site's web page (``Origin``), as ``httpguard.refusal`` decides —
  the router and Prometheus send neither.

The servers without such a hook are refused before anything starts: ``--debug`` (Flask's server)
and gRPC workers (``--grpc-workers`` must be 0). The controller starts a replica as::

    python -m scanflow_argo.serving.replica --bind-host 127.0.0.1 MODEL_CLASS --http-port … --metrics-port … --grpc-workers=0
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from typing import Any

from seldon_core import gunicorn_utils, microservice

from ..httpguard import is_loopback, refusal

__all__ = ["bound_application", "main"]


class _RouterOnly:
    """WSGI middleware: 403 for requests from web pages of other sites and, on loopback, for other ``Host`` names."""

    def __init__(self, app: Any, loopback: bool) -> None:
        self.app = app
        self.loopback = loopback

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        why = refusal(environ.get("HTTP_HOST"), environ.get("HTTP_ORIGIN"), self.loopback)
        if why is None:
            return self.app(environ, start_response)
        body = json.dumps({"status": {"code": 403, "info": why, "reason": "FORBIDDEN", "status": "FAILURE"}}).encode()
        start_response("403 Forbidden", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


def bound_application(base: type, host: str) -> type:
    """A subclass of seldon-core's gunicorn application ``base`` that binds to ``host`` and answers the router only."""

    class Bound(base):
        options: dict[str, Any]  # set by StandaloneApplication.__init__ before it loads the config

        def load_config(self) -> None:
            port = str(self.options["bind"]).rsplit(":", 1)[1]
            self.options = {**self.options, "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}"}
            super().load_config()

        def load(self) -> Any:
            return _RouterOnly(super().load(), is_loopback(host))

    Bound.__name__ = Bound.__qualname__ = f"Bound{base.__name__}"
    return Bound


def main(argv: list[str] | None = None) -> None:
    """Parse ``--bind-host``, check the microservice options, run seldon-core's ``main()`` bound to that host."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="python -m scanflow_argo.serving.replica",
        description="seldon-core-microservice with its REST and metrics servers bound to one address",
    )
    parser.add_argument("--bind-host", default="127.0.0.1", help="address both servers listen on (default 127.0.0.1)")
    own, rest = parser.parse_known_args(argv)
    sys.argv = ["seldon-core-microservice", *rest]
    options, _ = microservice.parse_args()
    if options.debug:
        parser.error("--debug (SELDON_DEBUG) starts Flask's server on 0.0.0.0: not allowed for a local replica")
    if int(options.grpc_workers) > 0:
        parser.error("gRPC binds 0.0.0.0: start a local replica with --grpc-workers=0 (REST only)")
    microservice.StandaloneApplication = bound_application(gunicorn_utils.StandaloneApplication, own.bind_host)
    microservice.UserModelApplication = bound_application(gunicorn_utils.UserModelApplication, own.bind_host)
    microservice.main()


if __name__ == "__main__":
    main()
