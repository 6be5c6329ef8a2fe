"""The UI's Deployments view: each SeldonDeployment, the model it serves, and its live figures from Prometheus.

``GET /scanflow/api/deployments`` lists what ``Platform.get_deployment`` says of each local
deployment (desired and ready replicas, state, model URI, endpoint) plus the registered model
version and alias behind a ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` URI (MLflow's REST API)
and its roll-out as the agent driving it records it in its book (``agents/rollouts.py`` ``home_rollouts``:
the step, the canary's weight, the phase, and whether a paused agent holds the split). ``GET
/scanflow/api/deployments/{name}/metrics?minutes=N`` answers the request rate, p95 latency and online
accuracy over the last N minutes from Prometheus, with the same Seldon metric names and PromQL the
MNIST agents use (``agents/mnist.py``); the browser never talks to Prometheus or MLflow itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import asdict
from typing import Any

from aiohttp import web

from ..agents.rollouts import home_rollouts, summary
from ..agents.runtime import prometheus_url, tracking_uri
from ..agents.sensors import PrometheusReader, SensorError
from ..clock import Clock
from ..errors import ScanflowError, redact
from ..platform.base import WorkflowAdmin
from ..settings import Settings
from ..spec.agent import PromQuery
from ..tracking._rest import MlflowRest
from .http import ApiError, Codes, from_scanflow, json_response, name_param, query_int

__all__ = ["QUERIES", "DeploymentsApi", "model_ref"]

QUERIES = {
    "rate": 'sum(rate(seldon_api_executor_server_requests_seconds_count{{deployment_name="{d}",service="predictions"}}[{w}]))',
    "p95": 'histogram_quantile(0.95, sum by (le) (rate(seldon_api_executor_server_requests_seconds_bucket{{deployment_name="{d}",service="predictions"}}[{w}])))',
    "accuracy": 'sum(rate(seldon_api_model_feedback_reward_total{{deployment_name="{d}"}}[{w}])) / sum(rate(seldon_api_model_feedback_total{{deployment_name="{d}"}}[{w}]))',
}
"""Request rate (per second), p95 latency (seconds) and online accuracy (reward / feedback) of a deployment."""
WINDOW = "1m"


def model_ref(model_uri: str | None) -> dict[str, str]:
    """``models:/NAME@ALIAS`` → name and alias; ``models:/NAME/VERSION`` → name and version; else nothing."""
    if not model_uri:
        return {}
    hit = re.fullmatch(r"models:/([^/@]+)@([^/]+)", model_uri)
    if hit:
        return {"name": hit.group(1), "alias": hit.group(2)}
    hit = re.fullmatch(r"models:/([^/@]+)/(\d+)", model_uri)
    if hit:
        return {"name": hit.group(1), "version": hit.group(2)}
    return {}


def _rollout(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    """The roll-out's summary; a book entry that cannot be read is said so, not a failed page."""
    if entry is None:
        return None
    try:
        return summary(entry)
    except (ScanflowError, KeyError, TypeError, ValueError) as err:
        return {"agent": entry.get("agent"), "error": f"its book entry cannot be read ({type(err).__name__})"}


class DeploymentsApi:
    """The handlers of ``/scanflow/api/deployments``."""

    def __init__(self, platform: WorkflowAdmin, settings: Settings, clock: Clock) -> None:
        self.platform = platform
        self.settings = settings
        self.clock = clock

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/scanflow/api/deployments", self.index),
            web.get("/scanflow/api/deployments/{name}/metrics", self.metrics),
        ]

    async def index(self, request: web.Request) -> web.Response:
        try:
            items = await asyncio.to_thread(self._describe)
        except ScanflowError as err:
            raise from_scanflow(err) from err
        return json_response({"items": items})

    def _describe(self) -> list[dict[str, Any]]:
        out = []
        registry: MlflowRest | None = None
        rollouts = home_rollouts(self.settings.home)
        try:
            for status in self.platform.list_deployments():
                item = asdict(status)
                item["model"] = model_ref(status.model_uri)
                if item["model"].get("alias"):
                    with contextlib.suppress(ScanflowError):
                        registry = registry or MlflowRest(tracking_uri(self.settings), timeout=3.0)
                        version = registry.model_version_by_alias(item["model"]["name"], item["model"]["alias"])
                        if version:
                            item["model"]["version"] = str(version.get("version", ""))
                item["rollout"] = _rollout(rollouts.get(status.name))
                out.append(item)
        finally:
            if registry is not None:
                registry.close()
        return out

    async def metrics(self, request: web.Request) -> web.Response:
        name = name_param(request)
        given = query_int(request, "minutes")
        minutes = 10 if given is None else given
        if not 1 <= minutes <= 24 * 60:
            raise ApiError(Codes.INVALID_ARGUMENT, f"minutes={minutes}: ask for 1 to 1440 minutes")
        return json_response(await asyncio.to_thread(self._series, name, minutes * 60.0))

    def _series(self, name: str, seconds: float) -> dict[str, Any]:
        url = prometheus_url(self.settings)
        reader = PrometheusReader(url, timeout=3.0)
        now = self.clock.now()
        step = max(1.0, seconds / 120)
        series: dict[str, list[list[float]]] = {}
        errors = {}
        for key, template in QUERIES.items():
            query = PromQuery(key, template.format(d=name, w=WINDOW), range=seconds, step=step)
            try:
                series[key] = [[s.t, s.v] for s in reader.read(query, now)]
            except SensorError as err:
                series[key] = []
                if "no data" not in str(err):
                    errors[key] = str(err)
        return {"series": series, "errors": errors, "prometheus": redact(url), "window": WINDOW}
