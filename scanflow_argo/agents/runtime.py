"""The agent loop: sense (due sensors) → decide (pure ``decide``) → act (through the Platform) → remember.

``AgentRuntime`` owns one agent's sensors, persisted state, audit log, metrics, leader lock and
MLflow recorder. ``step()`` is one iteration; ``run()`` repeats it until stopped, waking early
for ``trigger``, ``POST /messages``, pause and resume. Every action is guarded three ways, so a
killed and restarted agent neither repeats nor forgets one: the idempotency key is persisted as
*pending* before the action and *ok*/*failed* after; submitted runs carry the key's hash as a
label, so a pending key is settled against the platform on restart; and the concurrency limit
is counted on the platform (``list_runs``), not only in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from ..backoff import Backoff, aretry
from ..clock import Clock, SystemClock
from ..compile.teams import team_app
from ..errors import AgentError, ConflictError, NotFoundError, ScanflowError, UnavailableError, redact
from ..monitoring.prometheus import recorded_url
from ..platform import get_platform
from ..platform._k8s.api import load_api_client
from ..platform.base import workflow_from_template
from ..platform.publications import Publications
from ..platform.teams import NamespaceBound
from ..settings import Settings
from ..spec.agent import (
    Agent,
    ArgoRuns,
    MlflowQuery,
    PromQuery,
    Replicas,
    RollDeployment,
    ScaleDeployment,
    SendMessage,
    SetModelAlias,
    StartRollout,
    SubmitWorkflow,
)
from ..tracking import registry
from .auth import client_token
from .canary import RolloutDriver
from .decide import Decision, RuleState, Sample, decide, is_stale
from .knowledge import MlflowRecorder, NullRecorder
from .leader import FileLeader, Leader, LeaseLeader
from .metrics import AgentMetrics
from .narrate import Narrator
from .rollouts import RolloutBook
from .sensors import (
    ArgoRunsReader,
    MlflowReader,
    PrometheusReader,
    ReplicasReader,
    SensorError,
    SensorTrack,
    check_promql_online,
)
from .state import AgentState, AuditLog, ConfigMapAudit, ConfigMapState, admit_message

__all__ = ["LABEL_ACTION", "LABEL_AGENT", "LABEL_KEY", "AgentRuntime", "agent_dir", "key_label", "prometheus_url", "tracking_uri"]

log = logging.getLogger("scanflow_argo.agents")

LABEL_AGENT = "scanflow.io/agent"
LABEL_ACTION = "scanflow.io/action"
LABEL_KEY = "scanflow.io/idempotency-key"

_ACTION_BACKOFF = Backoff(0.2, factor=2.0, attempts=3)
"""A platform call of an action: tried 3 times, 0.2 s then 0.4 s apart when the platform is unavailable."""

_SEND_BACKOFF = Backoff(0.2, factor=2.0, cap=5.0, attempts=6)
"""A message to a peer that answers 503 (no leader yet): resent up to 5 times, 0.2 s doubling to 5 s."""


class _NoLeader(Exception):
    """A peer answered 503: resend after its ``Retry-After`` (kept within 0.05–5 s), else after the backoff."""

    def __init__(self, resp: Any) -> None:
        super().__init__(resp.status_code)
        self.resp = resp

    def delay(self, scheduled: float) -> float:
        try:
            header = self.resp.headers.get("Retry-After")
            return max(0.05, min(float(header), 5.0)) if header else scheduled
        except ValueError:
            return scheduled


def key_label(key: str) -> str:
    """A label-safe digest of an idempotency key (label values are at most 63 characters)."""
    return hashlib.sha256(key.encode()).hexdigest()[:40]


def agent_dir(settings: Settings, name: str) -> Path:
    return Path(settings.home) / "agents" / name


def prometheus_url(settings: Settings) -> str:
    """The configured Prometheus, else the local one recorded for this home, else the default port."""
    if settings.prometheus.url:
        return settings.prometheus.url
    with contextlib.suppress(Exception):
        url = recorded_url(settings)
        if url:
            return url
    return f"http://127.0.0.1:{settings.prometheus.port}"


def tracking_uri(settings: Settings) -> str:
    return settings.tracking.uri or f"http://127.0.0.1:{settings.tracking.port}"


class AgentRuntime:
    """One running agent. Use ``await start()``, then ``await run()`` (or ``step()`` in tests)."""

    def __init__(
        self,
        agent: Agent,
        settings: Settings,
        *,
        platform: Any = None,
        clock: Clock | None = None,
        dry_run: bool | None = None,
        state_dir: Path | None = None,
        prometheus: str | None = None,
        recorder: Any = None,
        leader: Leader | None = None,
        readers: Mapping[str, Any] | None = None,
        state: AgentState | None = None,
        team: str | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self.agent = agent
        # The team the agent works for: its platform is bound to settings.kubernetes.namespace
        # (platform.teams.NamespaceBound: anything naming another namespace is refused) and every
        # audit record names the team and the namespace.
        self.team = team
        self.settings = settings
        self.clock = clock or SystemClock()
        self.dry_run = settings.agent.dry_run if dry_run is None else dry_run
        folder = Path(state_dir) if state_dir else agent_dir(settings, agent.name)
        # A dry run keeps its own knowledge, so it never blocks (or fakes) the real agent's actions.
        self.folder = folder / "dry-run" if self.dry_run else folder
        self.state = state or self._default_state(explicit_folder=state_dir is not None)
        self.audit = audit or self._default_audit()
        self.narrator = Narrator(agent)
        self.metrics = AgentMetrics(agent.name)
        self._platform = self._bound(platform) if platform is not None else None
        self.prometheus = prometheus or prometheus_url(settings)
        self._own_lock = leader is None and not (settings.platform == "kubernetes" and agent.replicas > 1)
        self.leader: Leader = leader or self._default_leader()
        self.is_leader = False
        self._recorder = recorder
        self._readers: dict[str, Any] = dict(readers or {})
        now = self.clock.now()
        keep = agent.max_window()
        self.tracks = {s.name: SensorTrack(s, keep, now) for s in agent.sensors}
        self._forced: set[str] = set()
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self.last_eval: float | None = None
        self.last_loop_end: float | None = None
        self.iterations = 0
        self.started_at = now
        self.notes: list[str] = []
        self._unsettled = False
        self._last_error: str | None = None
        self._rollouts: RolloutDriver | None = None

    # -- wiring ----------------------------------------------------------------------------------
    def _default_state(self, explicit_folder: bool) -> AgentState:
        """On Kubernetes the pod's folder is an emptyDir: the state lives in the ``<agent>-state`` ConfigMap —
        unless a state folder is named explicitly (``--state-dir`` on a mounted volume). A dry run keeps its
        own state in the folder, never touching the real agent's."""
        if self.settings.platform == "kubernetes" and not self.dry_run and not explicit_folder:
            return ConfigMapState.from_settings(self.folder, self.agent.state_config_map(), self.settings)
        return AgentState(self.folder)

    def _default_audit(self) -> AuditLog:
        """A team's agent on Kubernetes also writes its trail to the team's ``scanflow-audit`` ConfigMap, where the
        platform admin reads every team's; a dry run, or an agent of no team, keeps only its folder's log."""
        if self.settings.platform == "kubernetes" and self.team and not self.dry_run:
            return ConfigMapAudit.from_settings(self.folder, self.agent.name, self.settings)
        return AuditLog(self.folder)

    def _default_leader(self) -> Leader:
        if self.settings.platform == "kubernetes" and self.agent.replicas > 1:
            from kubernetes import client  # Kubernetes client: ~1.5 s, cluster path only

            identity = os.environ.get("POD_NAME") or socket.gethostname()
            api = client.CustomObjectsApi(load_api_client(self.settings.kubernetes))  # Leases as JSON (see LeaseLeader)
            # renewed in its own thread on client-go's cadence (2 s retries, 10 s renew deadline, 15 s lease),
            # whatever the agent's interval
            namespace = self.settings.kubernetes.namespace
            return LeaseLeader(self.agent.lease_name(), namespace, identity, api=api, clock=self.clock, background=True)
        return FileLeader(self.folder / "leader.lock")

    def advertise(self, url: str) -> None:
        """The address this replica's API answers on; a Lease leader publishes it for followers to forward to."""
        if hasattr(self.leader, "url"):
            self.leader.url = url

    def leader_target(self) -> tuple[str | None, str | None] | None:
        """``None`` when this process handles writes itself; else the leader's (identity, URL) as last seen."""
        if self._own_lock or self.is_leader or not hasattr(self.leader, "holder"):
            return None
        return getattr(self.leader, "holder", None), getattr(self.leader, "holder_url", None)

    def _bound(self, platform: Any) -> Any:
        """``platform`` itself, or bound to the team's namespace when the agent works for a team."""
        return NamespaceBound(platform, self.settings.kubernetes.namespace) if self.team else platform

    @property
    def platform(self) -> Any:
        if self._platform is None:
            self._platform = self._bound(get_platform(self.settings))
        return self._platform

    @property
    def rollouts(self) -> RolloutDriver:
        """The agent's roll-outs (``agents/canary.py``), kept in its state, acting through its platform."""
        if self._rollouts is None:
            uri = tracking_uri(self.settings)

            def get_alias(model: str, alias: str) -> str | None:
                found = registry.get_alias(model, alias, tracking_uri=uri)
                return str(found.version) if found is not None else None

            self._rollouts = RolloutDriver(
                RolloutBook(self.state),
                self.platform,
                self.prometheus,
                set_alias=self._set_alias,
                get_alias=get_alias,
                record=self._record,
            )
        return self._rollouts

    @property
    def recorder(self) -> Any:
        if self._recorder is None:
            if not self.settings.tracking.enabled:
                self._recorder = NullRecorder()
            else:
                meta = self.state.get("meta") or {}

                def remember(run_id: str) -> None:
                    with self.state.update() as data:
                        data.setdefault("meta", {})["mlflow_run_id"] = run_id

                self._recorder = MlflowRecorder(tracking_uri(self.settings), self.agent.name, meta.get("mlflow_run_id"), remember)
        return self._recorder

    def _reader(self, kind: str) -> Any:
        if kind not in self._readers:
            if kind == PromQuery.kind:
                self._readers[kind] = PrometheusReader(self.prometheus, timeout=max(1.0, min(5.0, 2 * self.agent.interval)))
            elif kind == MlflowQuery.kind:
                self._readers[kind] = MlflowReader(tracking_uri(self.settings))
            elif kind == ArgoRuns.kind:
                self._readers[kind] = ArgoRunsReader(self.platform)
            elif kind == Replicas.kind:
                self._readers[kind] = ReplicasReader(self.platform)
            else:
                raise AgentError(f"no reader for sensor kind {kind!r}")
        return self._readers[kind]

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self, check_online: bool = True) -> None:
        """Validate against the real Prometheus (when reachable) and settle actions a crash left pending."""
        if self._own_lock and not await asyncio.to_thread(self.leader.acquire):
            raise AgentError(
                f"agent {self.agent.name!r} already runs with the state folder {self.folder} (lock {self.folder / 'leader.lock'}) — "
                "stop it first, or give this one another --state-dir"
            )
        if check_online and any(isinstance(s, PromQuery) for s in self.agent.sensors):
            queries = {
                f"agent {self.agent.name!r}.sensors[{s.name!r}].query": s.query
                for s in self.agent.sensors
                if isinstance(s, PromQuery)
            }
            self.notes.extend(await asyncio.to_thread(check_promql_online, self.prometheus, queries))
        if self._own_lock:  # a Lease follower must not settle what the leader may be doing: done on taking over
            await asyncio.to_thread(self._settle_pending)
        self._record({"kind": "start", "t": self.clock.now(), "dry_run": self.dry_run, "config": self.agent.declaration()})

    def _settle_pending(self) -> None:
        """A key left *pending* by a crash: adopt the run if the platform has it, else mark it failed (retried)."""
        self._unsettled = False
        keys = self.state.get("keys") or {}
        for key, record in keys.items():
            if record.get("result") != "pending":
                continue
            outcome: dict[str, Any] = {
                "result": "failed",
                "error": "interrupted before the result was known",
                "t": record.get("t"),
            }
            if record.get("kind") == SubmitWorkflow.kind and not self.dry_run:
                try:
                    runs = self.platform.list_runs({LABEL_KEY: key_label(key)})
                except ScanflowError as err:
                    log.warning("cannot settle pending key %s yet: %s", key, err)
                    self._unsettled = True  # tried again next iteration; the key blocks its action meanwhile
                    continue
                if runs:
                    outcome = {"result": "ok", "run": runs[0].name, "t": record.get("t"), "adopted": True}
                    with self.state.update() as data:
                        data["inflight"].setdefault(record["action"], []).append(
                            {"run": runs[0].name, "key": key, "t": record.get("t")}
                        )
            with self.state.update() as data:
                data["keys"][key] = {**record, **outcome}
            self._record({"kind": "settle", "t": self.clock.now(), "key": key, **outcome})

    def wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self.wake()

    async def close(self) -> None:
        self.leader.release()
        if self._recorder is not None:
            await asyncio.to_thread(self._recorder.close, 2.0)

    async def run(self) -> None:
        """Iterate until ``stop()``; an iteration's failure is logged and the loop goes on."""
        self._wake = asyncio.Event()
        while not self._stopping:
            try:
                await self.step()
                self._last_error = None
            except Exception as err:  # the loop must survive anything one iteration does
                log.exception("agent %s: iteration failed", self.agent.name)
                reason = redact(f"{type(err).__name__}: {err}")
                if reason != self._last_error:  # a persistent failure is recorded once, not every interval
                    self._record({"kind": "error", "t": self.clock.now(), "reason": reason})
                self._last_error = reason
            await self._sleep_until_due()

    async def _sleep_until_due(self) -> None:
        assert self._wake is not None
        now = self.clock.now()
        due = [t.next_due for t in self.tracks.values()]
        due.append((self.last_eval or now) + self.agent.interval)
        timeout = max(0.0, min(due) - now)
        if timeout > 0 and not self._wake.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()

    # -- one iteration ---------------------------------------------------------------------------
    async def step(self) -> list[dict[str, Any]]:
        """Sense what is due, decide, act; returns the audit records written."""
        t0 = time.perf_counter()
        await self._poll_due()
        self.narrator.sensors(self.windows(), self.clock.now())
        if self._unsettled:
            await asyncio.to_thread(self._settle_pending)
        leading = await asyncio.to_thread(self._acquire_leader)
        if leading and not self.is_leader and not self._own_lock:
            # Take over what the previous leader persisted before deciding anything; if that fails,
            # this is not a takeover yet (tried again next iteration).
            await asyncio.to_thread(self.state.refresh)
            await asyncio.to_thread(self._settle_pending)
        self.is_leader = leading
        self.metrics.leader.labels(self.agent.name).set(1 if self.is_leader else 0)
        records: list[dict[str, Any]] = []
        if self.is_leader:
            await asyncio.to_thread(self._refresh_inflight)
            records = await self._evaluate_and_act()
            if not self.dry_run:
                await asyncio.to_thread(self._tick_rollouts)
        self.iterations += 1
        self.last_loop_end = self.clock.now()
        self.metrics.loop_seconds.labels(self.agent.name).observe(time.perf_counter() - t0)
        return records

    def _tick_rollouts(self) -> None:
        """Move the roll-outs on; a platform or registry failure is recorded once and tried again next iteration."""
        if not (self.state.get("rollouts") or {}):
            return
        try:
            self.rollouts.tick(self.clock.now(), hold=lambda: bool(self.state.get("paused")))
        except ScanflowError as err:
            reason = redact(f"roll-out: {err}")
            if reason != self._last_error:
                self._record({"kind": "error", "t": self.clock.now(), "reason": reason})
            self._last_error = reason

    def _acquire_leader(self) -> bool:
        try:
            return self.leader.acquire()
        except ScanflowError as err:
            log.warning("leader election failed: %s", err)
            return False

    async def _poll_due(self) -> None:
        now = self.clock.now()
        due = [t for name, t in self.tracks.items() if t.next_due <= now + 1e-3 or name in self._forced]
        self._forced.clear()
        if due:
            await asyncio.gather(*(self._poll(t) for t in due))

    async def _poll(self, track: SensorTrack) -> None:
        sensor = track.sensor
        now = self.clock.now()
        name = self.agent.name
        try:
            samples = await asyncio.to_thread(self._reader(sensor.kind).read, sensor, now)
        except SensorError as err:
            track.fail(str(err), now)
            self.metrics.sensor_errors.labels(name, sensor.name).inc()
        except Exception as err:  # a reader bug must not kill the loop; the sensor is stale
            track.fail(f"{type(err).__name__}: {err}", now)
            self.metrics.sensor_errors.labels(name, sensor.name).inc()
        else:
            track.record(samples, now, isinstance(sensor, PromQuery) and sensor.range is not None)
            self.metrics.sensor_value.labels(name, sensor.name).set(samples[-1].v)
        self.metrics.sensor_stale.labels(name, sensor.name).set(1 if is_stale(track.window(), now) else 0)

    def windows(self) -> dict[str, Any]:
        return {name: t.window() for name, t in self.tracks.items()}

    async def _evaluate_and_act(self) -> list[dict[str, Any]]:
        now = self.clock.now()
        self.last_eval = now
        decisions = decide(self.agent, self.windows(), self.state.snapshot(), now)
        records: list[dict[str, Any]] = []
        if any(d.kind in ("rule", "recommend", "consume") for d in decisions):
            self._apply(decisions)
        for d in decisions:
            if d.kind == "rule" or (d.kind == "consume" and d.reason.startswith("dropped")):
                records.append(self._record(d.to_json()))
                self.metrics.decisions.labels(self.agent.name, d.kind, d.event or "dropped").inc()
        self._rule_metrics(now)
        states = self.state.get("rules") or {}
        self.narrator.held(
            {d.rule: d.event for d in decisions if d.kind == "rule" and d.rule and d.event},
            {name: RuleState.from_json(st).firing for name, st in states.items()},
            {d.action for d in decisions if d.kind == "action" and d.action},
            self.state.snapshot(),
            now,
        )
        for d in decisions:
            if d.kind == "action":
                rec = await self._act(d)
                if rec is not None:
                    records.append(rec)
        return records

    def _apply(self, decisions: list[Decision]) -> None:
        """Rule transitions, scaling history and consumed messages into the persisted state."""
        with self.state.update() as data:
            for d in decisions:
                if d.kind == "rule":
                    data["rules"][d.rule] = dict(d.state or {})
                elif d.kind == "recommend":
                    data["recommendations"][d.action] = d.params["history"]
                    data.setdefault("fallback", {})[d.action] = d.params.get("failures", 0)
                elif d.kind == "consume":
                    data["inbox"] = [m for m in data["inbox"] if str(m.get("id")) != d.message_id]

    def _rule_metrics(self, now: float) -> None:
        states = self.state.get("rules") or {}
        windows = self.windows()
        for rule in self.agent.rules:
            unknown = any(is_stale(windows.get(s), now) for s in rule.sensors())
            firing = RuleState.from_json(states.get(rule.name, {})).firing
            self.metrics.rule_firing.labels(self.agent.name, rule.name).set(-1 if unknown else 1 if firing else 0)

    # -- acting ----------------------------------------------------------------------------------
    async def _act(self, d: Decision) -> dict[str, Any] | None:
        action = next(a for a in self.agent.actions() if a.name == d.action)
        now = self.clock.now()
        if d.status == "skipped":  # decided against (e.g. a template without a value): say it once
            previous = (self.state.get("last_skip") or {}).get(action.name)
            if previous == d.reason:
                return None
            with self.state.update() as data:
                data.setdefault("last_skip", {})[action.name] = d.reason
            return self._finish(d, "skipped", d.reason)
        if self.dry_run:
            with self.state.update() as data:
                data["keys"][d.key] = {"result": "dry-run", "t": now, "action": action.name, "kind": action.kind}
                data["last_attempt"][action.name] = now
            return self._finish(d, "dry-run", "dry-run: decided, not done")
        if isinstance(action, SubmitWorkflow):
            blocked = await asyncio.to_thread(self._concurrency_block, action, d.key or "")
            if blocked:
                previous = (self.state.get("last_skip") or {}).get(action.name)
                with self.state.update() as data:
                    data.setdefault("last_skip", {})[action.name] = blocked
                if previous == blocked:
                    return None  # the same skip as the last evaluation: said once, not every interval
                return self._finish(d, "skipped", blocked)
            if (self.state.get("last_skip") or {}).get(action.name):
                with self.state.update() as data:
                    data["last_skip"].pop(action.name, None)
        # Persist the intent before acting: a crash from here on is settled on restart.
        with self.state.update() as data:
            data["keys"][d.key] = {"result": "pending", "t": now, "action": action.name, "kind": action.kind}
            data["last_attempt"][action.name] = now
        try:
            detail = await self._perform(action, d)
        except ScanflowError as err:
            with self.state.update() as data:
                data["keys"][d.key] = {
                    "result": "failed",
                    "error": str(err)[:500],
                    "t": now,
                    "action": action.name,
                    "kind": action.kind,
                }
            return self._finish(d, "failed", str(err))
        with self.state.update() as data:
            data["keys"][d.key] = {"result": "ok", "t": now, "action": action.name, "kind": action.kind, **detail}
            if "run" in detail:
                data["inflight"].setdefault(action.name, []).append({"run": detail["run"], "key": d.key, "t": now})
        return self._finish(d, "ok", "", detail)

    def _finish(self, d: Decision, result: str, reason: str, detail: Mapping[str, Any] | None = None) -> dict[str, Any]:
        self.metrics.actions.labels(self.agent.name, d.action or "", result).inc()
        self.metrics.decisions.labels(self.agent.name, "action", result).inc()
        rec = {**replace(d, status=result).to_json(), **({"result_detail": dict(detail)} if detail else {})}
        if reason:
            rec["reason"] = redact(reason)
        return self._record(rec)

    def _record(self, record: dict[str, Any]) -> dict[str, Any]:
        seq = self.state.next_seq()
        team = {"team": self.team, "namespace": self.settings.kubernetes.namespace} if self.team else {}
        record = {"seq": seq, "agent": self.agent.name, **team, **record}
        self.audit.append(record)
        self.narrator.record(record)
        with contextlib.suppress(Exception):  # knowledge is best effort, never blocks the loop
            self.recorder.record(seq, record)
        return record

    def _record_uses(self, run: str) -> list[str]:
        """A team's agent records in the application's trail every publication its run consumes by reference
        (``Publications.record_run``: the run's labels); what it could not read is said, never fatal (the run
        was submitted)."""
        app = team_app(self.settings.kubernetes.namespace, self.team) if self.team else None
        if not self.team or not app:
            return []
        try:
            status = self.platform.get_run(run)
            records = Publications(self.settings, app, self.clock).record_run(self.team, status, by=f"agent {self.agent.name}")
        except ScanflowError as err:
            return [f"not recorded: {redact(str(err))[:200]}"]
        return [f"{r.kind} {r.name}@{r.version}" for r in records]

    def _labels(self, action: SubmitWorkflow) -> dict[str, str]:
        return {**action.labels, LABEL_AGENT: self.agent.name, LABEL_ACTION: action.name}

    def _concurrency_block(self, action: SubmitWorkflow, key: str) -> str | None:
        """Why no new run may start now (counted on the platform), or ``None``."""
        try:
            listed = self.platform.list_runs(self._labels(action))
        except ScanflowError as err:
            return f"cannot count running workflows ({err}); not submitting blind"
        active = {r.name for r in listed if not r.done}
        known = {r.name for r in listed}
        for item in self.state.get("inflight", {}).get(action.name, []):
            if item["run"] not in known:  # submitted but not listed yet: still counts
                active.add(item["run"])
        if len(active) >= action.max_concurrent:
            return f"concurrency limit {action.max_concurrent} reached: {', '.join(sorted(active))} still running"
        return None

    async def _perform(self, action: Any, d: Decision) -> dict[str, Any]:
        p = dict(d.params)
        if isinstance(action, SubmitWorkflow):
            params = {k.split(".", 1)[1]: v for k, v in p.items() if k.startswith("parameters.")}
            labels = {**self._labels(action), LABEL_KEY: key_label(d.key or "")}
            target = workflow_from_template(action.template, cluster_scope=True) if action.cluster_scope else action.template
            run = await self._retry(lambda: self.platform.submit(target, params, labels))
            uses = await asyncio.to_thread(self._record_uses, run)
            return {"run": run, "parameters": params, **({"uses": uses} if uses else {})}
        if isinstance(action, ScaleDeployment):
            n = int(p["replicas"])
            status = await self._retry(
                lambda: self.platform.scale(action.deployment, n), reread=lambda: self.platform.get_deployment(action.deployment)
            )
            track = self.tracks.get(action.replicas_sensor)
            if track is not None:  # what we just set is the freshest reading of the replicas
                now = self.clock.now()
                track.record([Sample(now, float(n))], now, False)
            return {"replicas": getattr(status, "replicas", n)}
        if isinstance(action, RollDeployment):
            uri = p["model_uri"]
            await self._retry(
                lambda: self.platform.roll(action.deployment, uri), reread=lambda: self.platform.get_deployment(action.deployment)
            )
            return {"model_uri": uri}
        if isinstance(action, SetModelAlias):
            await asyncio.to_thread(self._set_alias, action.model, action.alias, p["version"])
            return {"alias": f"{action.model}@{action.alias}", "version": p["version"]}
        if isinstance(action, StartRollout):
            uri, version = p["model_uri"], p.get("version", "")
            now = self.clock.now()
            spec = action.rollout_spec(p.get("canary"))  # a rendered name that is none: AgentDefinitionError, recorded
            await asyncio.to_thread(self.rollouts.start, spec, uri, version, now)
            return {"rollout": action.deployment, "model_uri": uri, "version": version}
        if isinstance(action, SendMessage):
            payload = {k.split(".", 1)[1]: v for k, v in p.items() if k.startswith("payload.")}
            await self._send_message(action.to_agent, action.topic, payload, d.key or "")
            return {"to": action.to_agent, "topic": action.topic}
        raise AgentError(f"action {action.name!r}: unknown kind {action.kind!r}")

    async def _retry(self, call: Any, reread: Any = None) -> Any:
        """Retry ``call`` on UnavailableError with backoff; on ConflictError re-read, then re-apply at once."""

        async def again(err: BaseException) -> None:
            if isinstance(err, ConflictError) and reread is not None:
                await asyncio.to_thread(reread)

        return await aretry(
            lambda: asyncio.to_thread(call),
            _ACTION_BACKOFF,
            self.clock,
            (ConflictError, UnavailableError),
            before_retry=again,
            delay_of=lambda err, d: 0.0 if isinstance(err, ConflictError) else d,  # the re-read was the wait
        )

    def _set_alias(self, model: str, alias: str, version: str) -> None:
        registry.set_alias(model, alias, version, tracking_uri=tracking_uri(self.settings))

    async def _send_message(self, to: str, topic: str, payload: Mapping[str, str], key: str) -> None:
        url = self._peer_url(to)
        token = client_token(self.settings)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        body = {"topic": topic, "payload": dict(payload), "from": self.agent.name, "id": key_label(key)}
        # 503 + Retry-After: a follower replica with no reachable leader (or a leader change): the
        # receiver de-duplicates by id, so resending is safe. Bounded: the cooldown retries later.
        async with httpx.AsyncClient(timeout=5) as client:

            async def post() -> Any:
                try:
                    resp = await client.post(f"{url}/messages", json=body, headers=headers)
                except httpx.HTTPError as err:
                    raise UnavailableError(f"agent {to!r} at {url} unreachable: {type(err).__name__}") from err
                if resp.status_code == 503:
                    raise _NoLeader(resp)
                return resp

            try:
                resp = await aretry(
                    post,
                    _SEND_BACKOFF,
                    self.clock,
                    (_NoLeader,),
                    delay_of=lambda err, d: err.delay(d) if isinstance(err, _NoLeader) else d,
                )
            except _NoLeader as last:
                resp = last.resp
        if resp.status_code == 503:
            raise UnavailableError(f"agent {to!r} has no leader to take the message: {resp.text[:200]}")
        if resp.status_code >= 300:
            raise AgentError(f"agent {to!r} refused the message: HTTP {resp.status_code} {resp.text[:200]}")

    def _peer_url(self, to: str) -> str:
        if self.settings.platform == "kubernetes":
            return f"http://{to}.{self.settings.kubernetes.namespace}.svc:{self.settings.agent.port}"

        endpoint = agent_dir(self.settings, to) / "endpoint.json"
        try:
            return str(json.loads(endpoint.read_text())["url"])
        except (OSError, ValueError, KeyError) as err:
            raise UnavailableError(
                f"agent {to!r} is not running here (no {endpoint}) — start it with `scanflow-argo agent run`"
            ) from err

    def _refresh_inflight(self) -> None:
        """Drop finished runs from the in-flight list, recording how each ended."""
        inflight = self.state.get("inflight") or {}
        if not any(inflight.values()) or self.dry_run:
            return
        finished: list[tuple[str, dict[str, Any], str]] = []
        for action, items in inflight.items():
            for item in items:
                try:
                    run = self.platform.get_run(item["run"])
                except NotFoundError:
                    finished.append((action, item, "NotFound"))
                    continue
                except ScanflowError:
                    continue  # platform unavailable: keep counting it
                if run.done:
                    finished.append((action, item, run.phase))
        if not finished:
            return
        gone = {(a, i["run"]) for a, i, _ in finished}
        with self.state.update() as data:
            for action in list(data["inflight"]):
                data["inflight"][action] = [i for i in data["inflight"][action] if (action, i["run"]) not in gone]
        for action, item, phase in finished:
            self._record(
                {
                    "kind": "run-finished",
                    "t": self.clock.now(),
                    "action": action,
                    "run": item["run"],
                    "phase": phase,
                    "key": item["key"],
                }
            )

    # -- API hooks -------------------------------------------------------------------------------
    def trigger(self, sensor: str) -> None:
        if sensor not in self.tracks:
            raise KeyError(sensor)
        self._forced.add(sensor)
        self.wake()

    def set_paused(self, paused: bool) -> None:
        with self.state.update() as data:
            data["paused"] = paused
        if paused and self._rollouts is not None:
            self._rollouts.wait_idle()  # a roll-out tick already past its check finishes before the pause is answered
        self.metrics.paused.labels(self.agent.name).set(1 if paused else 0)
        self._record({"kind": "pause" if paused else "resume", "t": self.clock.now()})
        self.wake()

    def receive(self, topic: str, payload: Mapping[str, Any], sender: str = "", mid: str | None = None) -> str:
        mid = mid or uuid.uuid4().hex
        with self.state.update() as data:
            if any(str(m.get("id")) == mid for m in data["inbox"]) or (data["keys"].get(f"msg:{mid}")):
                return mid  # a resent message (sender retried): once only
            message = {"id": mid, "topic": topic, "payload": dict(payload), "from": sender, "t": self.clock.now()}
            admit_message(data["inbox"], message)
            data["inbox"].append(message)
            data["keys"][f"msg:{mid}"] = {"result": "ok", "t": self.clock.now(), "kind": "message"}
        self._record({"kind": "message", "t": self.clock.now(), "topic": topic, "from": sender, "message_id": mid})
        self.wake()
        return mid

    def status(self) -> dict[str, Any]:
        now = self.clock.now()
        state = self.state.snapshot()
        sensors = {}
        for name, t in self.tracks.items():
            latest = t.samples[-1] if t.samples else None
            sensors[name] = {
                "kind": t.sensor.kind,
                "value": latest.v if latest else None,
                "age": round(now - latest.t, 3) if latest else None,
                "stale": is_stale(t.window(), now),
                "errors": t.errors_total,
                "next_in": round(max(0.0, t.next_due - now), 3),
            }
        windows = self.windows()
        rules = {}
        for rule in self.agent.rules:
            rs = RuleState.from_json(state["rules"].get(rule.name, {}))
            unknown = [s for s in rule.sensors() if is_stale(windows.get(s), now)]
            rules[rule.name] = {"kind": rule.kind, **rs.to_json(), "unknown": bool(unknown)}
        return {
            "agent": self.agent.name,
            "role": self.agent.role,
            "dry_run": self.dry_run,
            "paused": bool(state.get("paused")),
            "leader": self.is_leader,
            "platform": self.settings.platform,
            "state": getattr(self.state, "what", str(self.state.path)),
            "prometheus": redact(self.prometheus),
            "iterations": self.iterations,
            "last_eval_age": round(now - self.last_eval, 3) if self.last_eval else None,
            "sensors": sensors,
            "rules": rules,
            "inflight": state.get("inflight"),
            "cooldowns": {
                a.name: round(a.cooldown - (now - state["last_attempt"][a.name]), 3)
                for a in self.agent.actions()
                if a.name in state["last_attempt"] and now - state["last_attempt"][a.name] < a.cooldown
            },
            "inbox": len(state.get("inbox") or []),
            "rollouts": {
                name: {**r["state"], "settled": bool(r.get("settled")), "model_uri": r["spec"].get("model_uri")}
                for name, r in (state.get("rollouts") or {}).items()
            },
            "notes": self.notes,
            "mlflow": {
                "sent": getattr(self._recorder, "sent", 0),
                "dropped": getattr(self._recorder, "dropped", 0),
                "error": getattr(self._recorder, "last_error", None),
            },
        }
