"""The MNIST autonomic scenario, end to end on this machine: ``scanflow-argo demo mnist [--quick]``.

1. **setup** — MLflow and Prometheus on 127.0.0.1 (free ports), the application compiled
   (``pipelines.mnist:app``) and its WorkflowTemplates applied, ``mnist-train`` run on the local
   engine, the champion served by one replica, the two MNIST agents started as processes
   (``scanflow-argo agent run agents.mnist:make_…`` with short intervals);
2. **clean** — the traffic generator sends held-out digits (never training ones) at a steady rate,
   with feedback carrying the true label;
3. **drift** — the traffic switches to corrupted digits (``corrupt.DRIFT``); the drift supervisor
   sees accuracy fall and submits ``mnist-retrain`` on the feedback since the degradation began;
   the workflow names the challenger ``candidate`` if it wins offline, and the supervisor rolls it
   out as a canary (``canary_steps``, each step's p95 analysed against the SLO) until it is champion;
   **recovered** — the drifted traffic continues on digits the feedback never held, to measure the
   recovered accuracy;
4. **challenger** — a data scientist submits ``mnist-retrain`` with a much deeper network
   (``depth``: a residual tower as deep as this machine needs for an answer to take
   ``challenger_slowness`` × the SLO, measured first) fine-tuned from the champion on all the
   feedback: better offline, too slow online. The supervisor's canary of it breaches the p95 SLO,
   the analysis fails and all traffic goes back to the champion;
5. **load** — the rate rises ``load_factor``-fold; the throughput scaler adds replicas; **cooldown**
   — the rate falls back and the scaler removes them;
6. everything started is stopped (agents, runs, deployment, Prometheus, MLflow), leftovers are
   checked (processes, ports) and the report is written (``report.py``).

All state lives in a fresh folder ``<home>/demo/mnist``; the scenario never touches anything else.
Seeds are fixed (split, training, traffic, corruptions) and the scaler sizes the deployment on the
request rate, so two runs make the same decisions (``summary.decision_trace``) as long as the machine
serves the traffic it is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from scanflow_argo import _proc
from scanflow_argo.agents.rollouts import home_rollouts
from scanflow_argo.client import Client, Run
from scanflow_argo.clock import Clock, SystemClock
from scanflow_argo.errors import ScanflowError, SetupError
from scanflow_argo.settings import Settings

from .config import ScenarioConfig
from .report import rollout_log
from .traffic import ROW_FIELDS, Pool, Traffic

__all__ = ["ROOT", "Scenario", "run_scenario"]

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENT = "mnist"
MODEL_NAME = "mnist"
SUPERVISOR = "drift-supervisor"
SCALER = "throughput-scaler"
_SELECTOR = f'{{deployment_name="{DEPLOYMENT}"}}'
_PREDICTIONS = f'{{deployment_name="{DEPLOYMENT}",service="predictions"}}'
"""The executor's (router's) metrics of prediction requests only, as the agents read them."""


def _iso_to_epoch(value: str | None) -> float | None:
    if not value:
        return None
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class Scenario:
    """One run of the scenario; ``run()`` returns the report's summary."""

    STATE_FOLDER = "mnist"
    """``<home>/demo/<this>``: the scenario's own state (fresh each run)."""
    CANARY = True
    """Winners are rolled out as canaries by the supervisor (and the challenger story is played); else all at once."""

    def __init__(
        self,
        config: ScenarioConfig,
        settings: Settings,
        out_dir: Path,
        console: Any = None,
        clock: Clock | None = None,
    ) -> None:
        from rich.console import Console

        self.config = config
        self.out_dir = Path(out_dir)
        self.console = console or Console()
        self.clock = clock or SystemClock()
        self.home = (settings.home / "demo" / self.STATE_FOLDER).resolve()
        self.settings = settings.with_home(self.home)
        self.timeline: dict[str, Any] = {
            "config": config.as_dict(),
            "phases": [],
            "samples": [],
            "decisions": [],
            "runs": [],
            "events": {},
            "models": {},
        }
        self.children: dict[str, _proc.Child] = {}
        self.ports: dict[str, int] = {}
        self.platform: Any = None
        self.prometheus: Any = None
        self.traffic: Traffic | None = None
        self.initial_model_uri: str | None = None
        self.endpoint: str | None = None
        self._failed_runs: set[str] = set()
        self._challenger_run: str | None = None
        self._challenger_calibration: dict[str, Any] = {}

    # -- the whole run -----------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        from .report import write_report

        started = self.clock.monotonic()
        self.timeline["t0"] = self.clock.now()
        if self.home.exists():
            shutil.rmtree(self.home)  # our own folder from a previous demo: start fresh
        self.home.mkdir(parents=True)
        with self._environment(), contextlib.ExitStack() as stack:
            stack.callback(self._shutdown_check)
            try:
                self._setup(stack)
                asyncio.run(self._phases())
            finally:
                self._collect_decisions()
                self._record_runs()
                self._step("shutdown")
        self.timeline["duration"] = self.clock.monotonic() - started
        summary = write_report(self.timeline, self.out_dir)
        self._print_summary(summary)
        return summary

    @contextlib.contextmanager
    def _environment(self) -> Iterator[None]:
        """Processes we start (engines, agents) find the state folder and the servers through it."""
        saved = dict(os.environ)
        os.environ["SCANFLOW_HOME"] = str(self.home)
        os.environ["SCANFLOW_PLATFORM"] = "local"
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def _step(self, name: str) -> None:
        self.timeline["phases"].append({"name": name, "start": self.clock.now()})
        self.console.rule(f"[bold]{name}")

    def _event(self, key: str, t: float | None = None, note: str = "") -> None:
        if key in self.timeline["events"]:
            return
        t = self.clock.now() if t is None else t
        self.timeline["events"][key] = t
        self.console.log(f"[cyan]{key}[/] at +{t - self.timeline['t0']:.1f}s {note}")

    # -- 1. setup ----------------------------------------------------------------------------------

    def _setup(self, stack: contextlib.ExitStack) -> None:
        from scanflow_argo.platform import get_platform

        self._step("setup")
        self._start_servers(stack)
        self.platform = get_platform(self.settings)
        self._serve_ui(stack)
        service = self._apply_application()
        stack.callback(self._stop_runs)
        self._train_first_model()
        self._serve(service, stack)
        self._start_agents(stack)

    def _start_servers(self, stack: contextlib.ExitStack) -> None:
        """MLflow and Prometheus on free ports of 127.0.0.1; the settings and the environment point at them."""
        from scanflow_argo.monitoring.prometheus import PrometheusServer
        from scanflow_argo.tracking.server import MlflowServer

        mlflow = MlflowServer(self.settings, port=_proc.free_port())
        with self.console.status("starting MLflow and Prometheus on 127.0.0.1"):
            mlflow.start(timeout=120)
            stack.callback(mlflow.stop)
            self.prometheus = PrometheusServer(self.settings, port=_proc.free_port()).start(timeout=60)
            stack.callback(self.prometheus.stop)
        self.ports.update(mlflow=mlflow.port, prometheus=self.prometheus.port)
        os.environ["MLFLOW_TRACKING_URI"] = mlflow.url
        os.environ["SCANFLOW_PROMETHEUS_URL"] = self.prometheus.url
        self.settings = replace(
            self.settings,
            tracking=replace(self.settings.tracking, uri=mlflow.url),
            prometheus=replace(self.settings.prometheus, url=self.prometheus.url),
        )
        self.console.log(f"MLflow {mlflow.url}, Prometheus {self.prometheus.url}, state in {self.home}")

    def _serve_ui(self, stack: contextlib.ExitStack) -> None:
        """The Argo Server API and web UI on the demo's state (port 2746 when free): watch it happen in a browser."""
        from scanflow_argo.server import ArgoServer, ServerOptions, load_or_create_token  # as the other servers: when set up

        token = load_or_create_token(self.settings)
        try:
            server = ArgoServer(self.platform, self.settings, token, ServerOptions(port=2746)).start()
        except SetupError:  # 2746 is taken (another server): any free port
            server = ArgoServer(self.platform, self.settings, token, ServerOptions(port=0)).start()
        stack.callback(server.stop)
        self.ports["ui"] = server.port
        self.console.print(  # one line, never wrapped: people and scripts copy the address from it
            f"[bold]UI and Argo Server API at {server.url}[/] (token: scanflow-argo --home {self.home} server token)",
            soft_wrap=True,
        )

    def _apply_application(self) -> dict[str, Any]:
        """Apply ``pipelines.mnist:app`` as ``scanflow-argo apply`` does (its WorkflowTemplates with this
        scenario's defaults, its ConfigMaps pointed at the local MLflow); returns its SeldonDeployment,
        which is served once the first model is trained."""
        from scanflow_argo.platform.apply import TEMPLATE_KINDS, apply_objects, load_sources

        sources = load_sources(["pipelines.mnist:app"], cwd=ROOT)
        services = [s.obj for s in sources if s.kind == "SeldonDeployment" and s.name == DEPLOYMENT]
        if not services:
            raise SetupError(f"pipelines.mnist:app has no SeldonDeployment named {DEPLOYMENT!r}: the demo serves it")
        local = [s for s in sources if s.kind in (*TEMPLATE_KINDS, "ConfigMap")]
        apply_objects(self.platform, local, self.settings, echo=self.console.log, transform=lambda s: self._with_defaults(s.obj))
        return services[0]

    def _with_defaults(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """The template with this scenario's defaults for parameters the agents do not pass.

        The supervisor passes only the feedback window and folder; retraining must train as long as
        the first training did (the template itself promotes retrained models on drifted accuracy).
        """
        doc = json.loads(json.dumps(manifest))
        defaults = {
            "epochs": str(self.config.epochs),
            "seed": str(self.config.seed),
            "batch_size": str(self.config.batch_size),
            "lr": str(self.config.lr),
            "data_source": self.config.data_source,
            "test_fraction": str(self.config.test_fraction),
        }
        if not self.CANARY:  # every winner rolled at once (the templates' defaults: retraining's winners are canaries)
            defaults["rollout"] = "all-at-once"
        for param in (doc.get("spec", {}).get("arguments") or {}).get("parameters") or []:
            if param.get("name") in defaults:
                param["value"] = defaults[param["name"]]
        return doc

    def _submit(self, template: str, parameters: Mapping[str, str] | None = None) -> str:
        return self.platform.submit(template, parameters)

    def _train_first_model(self) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        run = self._submit("mnist-train", {"epochs": str(self.config.epochs)})
        self.console.log(f"submitted mnist-train as {run}")
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                      console=self.console, transient=False) as bar:  # fmt: skip
            task = bar.add_task("mnist-train", total=self.config.epochs, info="")
            while True:
                status = self.platform.get_run(run)
                nodes = {n.display_name: n.phase for n in status.nodes.values() if n.type == "Pod"}
                running = [k for k, v in nodes.items() if v == "Running"]
                epoch = self._epochs_done(run)
                bar.update(task, completed=epoch, info=f"{status.phase} {','.join(running)} epoch {epoch}/{self.config.epochs}")
                if status.done:
                    break
                self.clock.sleep(1.0)
        self.timeline["runs"].append(self._run_record(status))
        if status.phase != "Succeeded":
            raise ScanflowError(f"mnist-train ended {status.phase}: {status.message or ''}\n{self._tail_logs(run)}")
        self.timeline["models"]["first"] = self._evaluation(Run(self._client, status))
        self.console.log(f"first model: {self.timeline['models']['first']}")

    def _epochs_done(self, run: str) -> int:
        try:
            text = self.platform.logs(run)
        except (ScanflowError, OSError):
            return 0
        done = [int(m.group(1)) for m in re.finditer(r"epoch (\d+)/\d+", text)]
        return max(done, default=0)

    def _tail_logs(self, run: str) -> str:
        try:
            return "\n".join(self.platform.logs(run).splitlines()[-30:])
        except (ScanflowError, OSError):
            return ""

    @staticmethod
    def _evaluation(run: Run) -> dict[str, Any]:
        """The first model's figures: the named outputs of its steps, read back as a user would (``Run``)."""
        out: dict[str, Any] = {"run": run.name}
        for step in ("evaluate", "register", "promote", "train"):
            for key in (run.outputs.get(step) or {}).keys() - {"result", "exitCode", "metrics"}:
                try:
                    out[key] = run.output(step, key, as_json=True)
                except ValueError:  # not JSON: the text as is
                    out[key] = run.output(step, key)
        return out

    @staticmethod
    def _run_record(status: Any) -> dict[str, Any]:
        return {
            "name": status.name,
            "phase": status.phase,
            "started": _iso_to_epoch(status.started_at),
            "finished": _iso_to_epoch(status.finished_at),
            "namespace": status.namespace,
            "parameters": dict(status.parameters),
            "labels": dict(status.labels),
        }

    def _serve(self, service: Mapping[str, Any], stack: contextlib.ExitStack) -> None:
        with self.console.status("serving the champion with one replica"):
            self.platform.apply_deployment(service)
            stack.callback(self._delete_deployment)
            status = self.platform.get_deployment(DEPLOYMENT)
        self.initial_model_uri = status.model_uri
        self.endpoint = status.endpoint
        self.console.log(f"serving {status.model_uri} at {status.endpoint} ({status.ready_replicas}/{status.replicas} ready)")

    def _delete_deployment(self) -> None:
        with contextlib.suppress(ScanflowError):
            self.platform.delete_deployment(DEPLOYMENT)

    def _agent_args(self) -> dict[str, list[str]]:
        c = self.config
        feedback = self.home / "feedback" / DEPLOYMENT
        supervisor = {
            "interval": c.agent_interval, "window": c.accuracy_window, "accuracy_threshold": c.accuracy_threshold,
            "drift_fire": c.drift_fire, "drift_clear": c.drift_clear, "for_": c.degraded_for,
            "feedback_dir": str(feedback), "cooldown": c.retrain_cooldown,
            "canary_steps": list(c.canary_steps) if self.CANARY else None, "slo": c.slo,
            "analysis_window": c.analysis_window, "analysis_interval": c.analysis_interval,
            "analysis_count": c.analysis_count, "analysis_delay": c.analysis_delay,
        }  # fmt: skip
        scaler = {
            "interval": c.agent_interval, "window": c.scale_window, "slo": c.slo, "max_replicas": c.max_replicas,
            "capacity": c.replica_capacity, "up_stabilization": 0, "down_stabilization": c.scale_down_stabilization,
        }  # fmt: skip
        return {
            "agents.mnist:make_drift_supervisor": [f"{k}={json.dumps(v)}" for k, v in supervisor.items()],
            "agents.mnist:make_throughput_scaler": [f"{k}={json.dumps(v)}" for k, v in scaler.items()],
        }

    def _agent_globals(self) -> list[str]:
        """Global options of the agents' command line (before ``agent run``)."""
        return []

    def _start_agents(self, stack: contextlib.ExitStack) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
        ready_files = {}
        for ref, args in self._agent_args().items():
            name = ref.split("make_")[-1].replace("_", "-")
            ready = self.home / "agents" / f"{name}.ready.json"
            ready.parent.mkdir(parents=True, exist_ok=True)
            argv = [sys.executable, "-m", "scanflow_argo", "--home", str(self.home), *self._agent_globals(), "agent", "run", ref,
                    "--port", "0", "--ready-file", str(ready), "--prometheus-url", self.prometheus.url]  # fmt: skip
            for arg in args:
                argv += ["--arg", arg]
            child = _proc.spawn(argv, name=f"agent {name}", log=self.home / "agents" / f"{name}.log", env=env, cwd=ROOT)
            self.children[name] = child
            stack.callback(child.stop)
            ready_files[name] = ready
        deadline = self.clock.monotonic() + 60
        for name, ready in ready_files.items():
            while not ready.is_file():
                child = self.children[name]
                if not child.alive():
                    raise SetupError(f"agent {name} exited with code {child.popen.returncode}:\n{child.tail()}")
                if self.clock.monotonic() > deadline:
                    raise SetupError(f"agent {name} did not start within 60 s:\n{child.tail()}")
                self.clock.sleep(0.2)
            url = json.loads(ready.read_text()).get("url", "")
            with contextlib.suppress(ValueError):
                self.ports[f"agent {name}"] = int(url.rsplit(":", 1)[-1].split("/")[0])
            self.console.log(f"agent {name} running at {url}")

    # -- 2-4. traffic phases -------------------------------------------------------------------------

    def _pools(self) -> dict[str, Pool]:
        """Held-out digits only: the same stratified split as the pipeline's ``split`` step (same seed)."""
        from pipelines.mnist import corrupt, data

        digits = data.load_digits(self.config.data_source)
        images, labels = digits.images, digits.labels
        _, test_idx = data.split_indices(digits, self.config.test_fraction, self.config.seed)
        half = len(test_idx) // 2
        a, b = test_idx[:half], test_idx[half:]
        seed = self.config.seed
        return {
            "clean": Pool(images[a], labels[a]),
            # Two corrupted variants of each digit of the first half: what feedback (and retraining) sees.
            "drift": Pool(
                corrupt.drift(np.concatenate([images[a], images[a]]), seed + 101), np.concatenate([labels[a], labels[a]])
            ),
            # Digits the feedback never held: the honest measure of the recovered accuracy.
            "drift-eval": Pool(corrupt.drift(images[b], seed + 202), labels[b]),
        }

    async def _phases(self) -> None:
        c = self.config
        if not self.endpoint:
            raise SetupError(f"deployment {DEPLOYMENT!r} reports no endpoint: is its router running?")
        pools = await asyncio.to_thread(self._pools)
        self.traffic = Traffic(self.endpoint, pools, rate=c.base_rps, pool="clean", phase="clean",
                               feedback_share=c.feedback_share, seed=c.seed, max_in_flight=c.max_in_flight, clock=self.clock)  # fmt: skip
        sender = asyncio.create_task(self.traffic.run())
        sampler = asyncio.create_task(self._sample_forever())
        try:
            await self._phase("clean", c.clean_seconds)
            self._event("drift_onset")
            self.traffic.set(pool="drift", phase="drift")
            await self._phase("drift", c.drift_max, until=lambda: "rollout" in self.timeline["events"])
            if "rollout" not in self.timeline["events"]:
                self.console.log("[red]no roll-out within drift_max: continuing with the load phase")
            self.traffic.set(pool="drift-eval", phase="recovered")
            await self._phase("recovered", c.after_roll_seconds)
            if self.CANARY and c.challenger:
                await self._challenger_story()
            self._event("spike_start")
            self.traffic.set(rate=c.base_rps * c.load_factor, phase="load", feedback_share=c.load_feedback_share)
            await self._phase("load", c.load_seconds)
            self._event("spike_end")
            self.traffic.set(rate=c.base_rps, phase="cooldown", feedback_share=c.feedback_share)
            await self._phase("cooldown", c.cooldown_max, until=self._scaled_down, at_least=5.0)
        finally:
            self.traffic.stop()
            await sender
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
            self.timeline["requests"] = {"fields": ROW_FIELDS, "rows": self.traffic.rows()}
            self.timeline["traffic"] = {"dropped": self.traffic.dropped, "errors": dict(self.traffic.errors)}

    async def _challenger_story(self) -> None:
        """A data scientist's retraining: a tower as deep as this machine needs for each answer to take
        ``challenger_slowness`` × the SLO (measured now), fine-tuned from the champion on every feedback since the
        drift began, submitted as ``mnist-retrain`` with ``depth`` and ``init_model``. The supervisor takes it
        from there; the phase ends once its roll-out settled (or the run lost, or failed)."""
        from pipelines.mnist import model  # torch: only for this story

        c = self.config
        assert self.traffic is not None
        if "rollout" not in self.timeline["events"]:  # its story starts from the drift story's champion
            self.console.log("[red]the drift candidate was not promoted: no challenger story")
            return
        self.traffic.set(phase="challenger")
        self._step("challenger")
        at_least = c.challenger_slowness * c.slo
        depth, seconds = await asyncio.to_thread(model.depth_for, at_least)
        self._challenger_calibration = {"depth": depth, "forward_s": round(seconds, 4), "at_least_s": at_least, "slo": c.slo}
        self.console.log(
            f"a tower of {depth} layers computes one answer in {seconds * 1000:.0f} ms of CPU here (wanted ≥ {at_least * 1000:.0f} ms)"
        )
        onset = self.timeline["events"].get("drift_onset") or self.clock.now()
        params = {
            "depth": str(depth),
            "init_model": f"models:/{MODEL_NAME}@champion",
            "epochs": str(c.challenger_epochs),
            "batch_size": "256",  # the tower's cost is per step, not per digit: fewer, larger steps
            "max_samples": str(c.challenger_samples),
            "feedback_dir": str(self.home / "feedback" / DEPLOYMENT),
            "feedback_window": f"{int(onset)}..{int(self.clock.now())}",
        }
        self._challenger_run = await asyncio.to_thread(self._submit, "mnist-retrain", params)
        self._event("challenger_submitted", note=f"({self._challenger_run}: depth {depth})")
        await self._phase(
            "challenger", c.challenger_max, until=lambda: "challenger_settled" in self.timeline["events"], step=False
        )
        if "challenger_settled" not in self.timeline["events"]:
            self.console.log(
                "[red]the challenger's roll-out did not settle within challenger_max: continuing with the load phase"
            )

    def _scaled_down(self) -> bool:
        """Back to one replica, and the scaler's audit trail says so (the scale is visible on the
        deployment before the agent records its outcome: stopping at the first would lose the record)."""
        samples = self.timeline["samples"]
        spike_end = self.timeline["events"].get("spike_end", float("inf"))
        if not samples or samples[-1]["t"] <= spike_end or (samples[-1].get("replicas") or 0) > 1:
            return False
        return any(
            d.get("kind") == "action" and d.get("status") != "planned" and (d.get("params") or {}).get("replicas") == 1
            for d in self._decisions(SCALER)
            if float(d.get("t", 0)) > spike_end
        )

    async def _phase(
        self, name: str, seconds: float, until: Callable[[], bool] | None = None, at_least: float = 0.0, step: bool = True
    ) -> None:
        """Keep the traffic going for ``seconds`` (or until ``until()``), with a progress bar (``step``: the phase starts now)."""
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        if step:
            self._step(name)
        assert self.traffic is not None
        start = self.clock.monotonic()
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                      console=self.console) as bar:  # fmt: skip
            task = bar.add_task(name, total=seconds, info="")
            while True:
                elapsed = self.clock.monotonic() - start
                done = elapsed >= seconds or (until is not None and elapsed >= at_least and until())
                last = self.timeline["samples"][-1] if self.timeline["samples"] else {}
                recent = [r for r in self.traffic.records[-200:] if r.predicted is not None]
                acc = np.mean([r.predicted == r.truth for r in recent]) if recent else float("nan")
                bar.update(task, completed=min(elapsed, seconds), info=(
                    f"{self.traffic.rate:.0f} req/s, sent {len(self.traffic.records)}, accuracy {acc:.2f}, "
                    f"replicas {last.get('replicas')}, model {str(last.get('model_uri', '')).split('/')[-1]}"))  # fmt: skip
                if done:
                    break
                await asyncio.sleep(0.5)

    # -- sampling ----------------------------------------------------------------------------------

    async def _sample_forever(self) -> None:
        while True:
            tick = self.clock.monotonic()
            try:
                sample = await asyncio.to_thread(self._sample)
                self.timeline["samples"].append(sample)
                await asyncio.to_thread(self._watch_events, sample)
            except Exception as err:  # sampling is best effort; the scenario must go on
                self.console.log(f"[yellow]sampling failed: {type(err).__name__}: {err}")
            await asyncio.sleep(max(0.1, 1.0 - (self.clock.monotonic() - tick)))

    def _query(self, promql: str) -> float | None:
        try:
            result = self.prometheus.query(promql, timeout=2.0)
        except (ScanflowError, OSError, ValueError, KeyError):
            return None
        if not result:
            return None
        value = float(result[0]["value"][1])
        return None if np.isnan(value) or np.isinf(value) else value

    def _sample(self) -> dict[str, Any]:
        c = self.config
        sample: dict[str, Any] = {"t": self.clock.now()}
        with contextlib.suppress(ScanflowError):
            status = self.platform.get_deployment(DEPLOYMENT)
            sample.update(replicas=status.replicas, ready=status.ready_replicas, model_uri=status.model_uri, state=status.state)
        w, sw = c.accuracy_window, c.scale_window
        sample["accuracy"] = self._query(
            f"sum(rate(seldon_api_model_feedback_reward_total{_SELECTOR}[{w}])) / sum(rate(seldon_api_model_feedback_total{_SELECTOR}[{w}]))"
        )
        sample["drift"] = self._query(f"max(drift_score{_SELECTOR}) or max(drift_score{_SELECTOR})")
        sample["rps"] = self._query(f"sum(rate(seldon_api_executor_server_requests_seconds_count{_PREDICTIONS}[{sw}]))")
        sample["p95"] = self._query(
            f"histogram_quantile(0.95, sum by (le) (rate(seldon_api_executor_server_requests_seconds_bucket{_PREDICTIONS}[{sw}])))"
        )
        if self.CANARY:  # per predictor: answers so far (the router's counter), request rate and p95
            sample["served"] = self._by_predictor(
                f"sum by (predictor_name) (seldon_api_executor_server_requests_seconds_count{_PREDICTIONS})"
            )
            sample["rps_by"] = self._by_predictor(
                f"sum by (predictor_name) (rate(seldon_api_executor_server_requests_seconds_count{_PREDICTIONS}[{sw}]))"
            )
            sample["p95_by"] = self._by_predictor(
                "histogram_quantile(0.95, sum by (le, predictor_name) "
                f"(rate(seldon_api_executor_server_requests_seconds_bucket{_PREDICTIONS}[{c.analysis_window}])))"
            )
        return sample

    def _by_predictor(self, promql: str) -> dict[str, float]:
        try:
            result = self.prometheus.query(promql, timeout=2.0)
        except (ScanflowError, OSError, ValueError, KeyError):
            return {}
        out = {}
        for series in result or []:
            value = float(series["value"][1])
            if not (np.isnan(value) or np.isinf(value)):
                out[str(series["metric"].get("predictor_name", ""))] = value
        return out

    def _watch_events(self, sample: Mapping[str, Any]) -> None:
        events = self.timeline["events"]
        onset = events.get("drift_onset")
        if onset is None:
            return
        if "drift_detected" not in events:
            for d in self._decisions(SUPERVISOR):
                if float(d.get("t", 0)) >= onset and (
                    d.get("event") == "fire" or (d.get("kind") == "action" and d.get("status") in ("ok", "planned"))
                ):
                    self._event("drift_detected", float(d["t"]), f"({d.get('rule') or d.get('action')})")
                    break
        if "retrain_done" not in events:
            for run in self._retrain_runs():
                if run.phase == "Succeeded":
                    self._event("retrain_done", _iso_to_epoch(run.finished_at), f"({run.name})")
                    self.timeline["models"]["retrained"] = self._evaluation(run)
                    break
                if run.done and run.name not in self._failed_runs:
                    self._failed_runs.add(run.name)
                    self.console.log(f"[red]{run.name} ended {run.phase}: {run.message or ''}")
        if self.CANARY:
            self._watch_rollouts(onset)
            return
        uri = sample.get("model_uri")
        if "rollout" not in events and uri and uri != self.initial_model_uri and sample.get("ready") == sample.get("replicas"):
            self._event("rollout", sample["t"], f"(now serving {uri})")

    def _watch_rollouts(self, onset: float) -> None:
        """The supervisor's roll-outs as its records tell them: the drift story ends when the retrained version is
        promoted, the challenger's when its roll-out settled (or its run lost offline, or failed)."""
        events = self.timeline["events"]
        for r in rollout_log(self._decisions(SUPERVISOR)):
            if r["start"] < onset:
                continue
            self._event(f"rollout_start_v{r['version']}", r["start"])
            if r["outcome"] == "promoted":
                self._event(f"rollout_promoted_v{r['version']}", r["end"])
                self._event("rollout", r["end"], f"(v{r['version']} promoted after its canary steps)")
            elif r["outcome"] == "rolled back":
                self._event(f"rollout_aborted_v{r['version']}", r["end"], f"({r.get('reason', '')})")
        if self._challenger_run is None or "challenger_settled" in events:
            return
        try:
            status = self.platform.get_run(self._challenger_run)
        except ScanflowError:
            return
        if not status.done:
            return
        if "challenger_trained" not in events:
            self._event("challenger_trained", _iso_to_epoch(status.finished_at), f"({status.name} {status.phase})")
            found = self._evaluation(Run(self._client, status)) if status.phase == "Succeeded" else {"run": status.name}
            self.timeline["models"]["challenger"] = {**found, "calibration": self._challenger_calibration}
        model = self.timeline["models"].get("challenger") or {}
        if status.phase != "Succeeded" or not model.get("promoted"):
            self._event("challenger_settled", note="(its run did not name a candidate: nothing to roll out)")
            return
        entry = home_rollouts(self.home).get(DEPLOYMENT) or {}
        if str((entry.get("spec") or {}).get("version")) == str(model.get("version")) and entry.get("settled"):
            self._event("challenger_settled", float(entry["settled"]), f"({entry['state']['phase']})")

    def _retrain_runs(self) -> list[Run]:
        with contextlib.suppress(ScanflowError):
            return sorted(self._client.runs(workflow="mnist-retrain"), key=lambda r: r.started_at or "")
        return []

    @property
    def _client(self) -> Client:
        """Runs and their results read back as a user would, through the same platform."""
        return Client(self.settings, platform=self.platform)

    def _decisions(self, agent: str) -> list[dict[str, Any]]:
        path = self.home / "agents" / agent / "decisions.jsonl"
        out = []
        with contextlib.suppress(OSError):
            for line in path.read_text().splitlines():
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
        return out

    def _collect_decisions(self) -> None:
        keep = ("seq", "agent", "team", "kind", "t", "rule", "event", "action", "action_kind", "status", "reason", "params",
                "rollout", "outcome", "phase", "step", "message", "predictors", "model_uri", "alias", "version", "previous")  # fmt: skip
        decisions = []
        for agent in (SUPERVISOR, SCALER):
            for d in self._decisions(agent):
                if d.get("kind") in ("rule", "action", "run-finished", "rollout"):
                    run = (d.get("result_detail") or {}).get("run")  # the run an action submitted
                    decisions.append(
                        {k: d[k] for k in keep if k in d} | {"agent": d.get("agent", agent)} | ({"run": run} if run else {})
                    )
        self.timeline["decisions"] = sorted(decisions, key=lambda d: float(d.get("t", 0)))
        if self.CANARY:
            self.timeline["aliases"] = self._aliases()

    def _aliases(self) -> dict[str, str | None]:
        """Where the registry's aliases point at the end (the challenger's abort must leave them as they were)."""
        from scanflow_argo.tracking import MlflowRest

        out: dict[str, str | None] = {}
        with contextlib.suppress(ScanflowError, OSError):
            rest = MlflowRest(self.settings.tracking.uri or "")
            for alias in ("champion", "previous", "candidate"):
                found = rest.get_alias(MODEL_NAME, alias)
                out[alias] = str(found.get("version")) if found else None
        return out

    def _record_runs(self) -> None:
        if self.platform is None:
            return
        with contextlib.suppress(ScanflowError):
            self.timeline["runs"] = [self._run_record(r) for r in self.platform.list_runs()]

    # -- 5. shutdown -------------------------------------------------------------------------------

    def _stop_runs(self) -> None:
        """Stop runs still going (a late retraining), and wait for their engines to end."""
        with contextlib.suppress(ScanflowError):
            for run in self.platform.list_runs():
                if not run.done:
                    with contextlib.suppress(ScanflowError):
                        self.platform.stop(run.name)
                    with contextlib.suppress(ScanflowError):
                        self.platform.wait(run.name, timeout=30)

    def _shutdown_check(self) -> None:
        """After everything was stopped: which of our processes or ports are left (should be none)."""
        status: dict[str, Any] = {"processes_left": [], "ports_open": []}
        for name, child in self.children.items():
            if child.alive():
                status["processes_left"].append(f"{name} (pid {child.pid})")
        deadline = self.clock.monotonic() + 10
        ports = dict(self.ports)
        if self.endpoint:
            with contextlib.suppress(ValueError):
                ports["router"] = int(str(self.endpoint).rstrip("/").rsplit(":", 1)[-1].split("/")[0])
        for name, port in ports.items():
            while _proc.port_in_use(port) and self.clock.monotonic() < deadline:
                self.clock.sleep(0.2)
            if _proc.port_in_use(port):
                status["ports_open"].append(f"{name}:{port}")
        self.timeline["shutdown"] = status
        colour = "green" if not status["processes_left"] and not status["ports_open"] else "red"
        self.console.log(
            f"[{colour}]shutdown: {len(status['processes_left'])} process(es) and {len(status['ports_open'])} port(s) left {status}"
        )

    def _print_summary(self, summary: Mapping[str, Any]) -> None:
        from rich.table import Table

        from .report import _ROWS, _fmt

        table = Table(title=f"MNIST scenario ({self.config.name}) — report in {self.out_dir / 'index.html'}")
        table.add_column("figure")
        table.add_column("value", justify="right")
        for key, label, unit in _ROWS:
            table.add_row(label, _fmt(summary.get(key), unit))
        for name, ok in summary["checks"].items():
            table.add_row(name.replace("_", " "), "—" if ok is None else ("[green]met" if ok else "[red]NOT met"))
        self.console.print(table)


def run_scenario(config: ScenarioConfig, settings: Settings, out_dir: Path | str, console: Any = None) -> dict[str, Any]:
    """Run the scenario; returns the summary (also in ``out_dir/report.json``)."""
    return Scenario(config, settings, Path(out_dir), console=console).run()
