"""The two MNIST agents: a drift supervisor (retrains) and a throughput scaler (replicas for a p95 SLO).

``drift_supervisor`` watches online accuracy from Seldon's feedback counters and the model's
drift score gauge (``drift_score``). When accuracy stays under its threshold, or the drift
score stays high (hysteresis: fires at ``drift_fire``, clears under ``drift_clear``), it submits
the ``mnist-retrain`` WorkflowTemplate with ``feedback_window`` = ``<onset_epoch>..<now_epoch>``
(the window since the degradation began) and ``feedback_dir``; at most one retraining runs at a
time, counted on the platform. It also rolls out what a retraining proposes: the workflow registers
a challenger and names it the ``candidate`` (MLflow alias) only if it beats the champion on the
held-out set (``rollout=canary``, the retraining template's default) — the offline decision lives
next to the evaluation that justifies it. The supervisor reads the alias (``MlflowQuery``) and starts
one canary roll-out per candidate version (``StartRollout``, idempotency key ``rollout-<deployment>-<version>``):
steps of ``canary_steps`` percent of the traffic, each followed by ``canary_analysis`` of the canary's
p95 against ``slo``; at 100 % and a passed analysis the candidate becomes ``champion`` (the old one
``previous``), on a failed one all traffic goes back to the stable predictor at once and the aliases
stay. A model better offline but worse online never serves more than its canary's share. The canary
predictor is named ``v<version>``: a promoted canary stays the deployment's predictor, so the next
candidate's needs another name.

``throughput_scaler`` reads p95 latency of the router (Seldon's executor on the cluster) and the request rate —
of predictions only (``service="predictions"``: feedback, status and metadata calls are served by the same
executor and would skew both) — and sets the
deployment's replicas to hold p95 under ``slo`` (min/max bounds, fast scale-up, slow scale-down).
Two ways, as Kubernetes' HPA offers them:

- ``capacity`` unset: on latency — replicas × p95 / ``slo`` (HPA's ratio). It needs no knowledge of
  the model, but its steps depend on how slow the machine happens to be at that moment.
- ``capacity`` = the requests per second one replica serves with p95 under ``slo`` (measured once
  with a load test of one replica, with headroom: ``bench/capacity.py``): on load — ceil(request rate / capacity). The same traffic gets
  the same decisions on any machine that serves it; the SLO rule still reports every breach.

With no traffic p95 is NaN — no data, so the SLO rule stays unknown — but a request rate of ~0
(at most ``idle_rps``) is real data: after ``down_stabilization`` of it the scaler scales down to
``min_replicas``. Both are built by factories whose intervals, windows and thresholds are
arguments, so the demo and tests use short ones:
``scanflow-argo agent run agents.mnist:make_drift_supervisor --arg interval=1s --arg window=30s``.
``@agent_factory`` records those arguments in ``config()``, so the compiled ConfigMap rebuilds the
same agent in the pod.
"""

from __future__ import annotations

from typing import Any

from scanflow_argo.spec.agent import (
    Agent,
    AnyOf,
    Hysteresis,
    MlflowQuery,
    Plan,
    PromQuery,
    ScaleDeployment,
    StartRollout,
    SubmitWorkflow,
    Threshold,
    agent_factory,
)

__all__ = ["canary_analysis", "drift_supervisor", "make_drift_supervisor", "make_throughput_scaler", "throughput_scaler"]


@agent_factory
def make_drift_supervisor(
    *,
    name: str = "drift-supervisor",
    deployment: str = "mnist",
    template: str = "mnist-retrain",
    interval: float | str = "30s",
    window: str = "5m",
    accuracy_threshold: float = 0.85,
    drift_fire: float = 0.5,
    drift_clear: float = 0.3,
    for_: float | str = "2m",
    feedback_dir: str = "feedback/mnist",
    cooldown: float | str = "10m",
    stale_after: float | str | None = None,
    cluster_scope: bool = False,
    model: str = "mnist",
    canary_steps: tuple[int, ...] | list[int] | None = (20, 50, 100),
    slo: float = 0.1,
    analysis_window: str = "30s",
    analysis_interval: str = "10s",
    analysis_count: int = 3,
    analysis_delay: str = "30s",
) -> Agent:
    """The drift supervisor with these thresholds (defaults suit a production cadence).

    ``cluster_scope``: ``template`` is another team's published ClusterWorkflowTemplate, run in the agent's own
    namespace (docs/teams.md). ``canary_steps``: the traffic percent of each step of a candidate's roll-out, each
    analysed with ``canary_analysis(slo=slo, window=analysis_window, …)``; ``None`` rolls nothing out (the
    retraining template then runs with ``rollout=all-at-once``)."""
    selector = f'{{deployment_name="{deployment}"}}'
    accuracy = PromQuery(
        "accuracy",
        f"sum(rate(seldon_api_model_feedback_reward_total{selector}[{window}])) / sum(rate(seldon_api_model_feedback_total{selector}[{window}]))",
        interval=interval,
        stale_after=stale_after,
    )
    drift = PromQuery("drift", f"max(drift_score{selector})", interval=interval, stale_after=stale_after)
    degraded = AnyOf(
        Threshold("accuracy", "<", accuracy_threshold, for_=for_, name="accuracy-low"),
        Hysteresis("drift", fire=drift_fire, clear=drift_clear, for_=for_, name="drift-high"),
        name="model-degraded",
    )
    retrain = SubmitWorkflow(
        template,
        parameters={"feedback_window": "{window}", "feedback_dir": feedback_dir},
        max_concurrent=1,
        labels={"app": deployment},
        cooldown=cooldown,
        name="retrain",
        cluster_scope=cluster_scope,
    )
    sensors: tuple[Any, ...] = (accuracy, drift)
    rules: tuple[Any, ...] = (degraded,)
    plans: tuple[Plan, ...] = (Plan("model-degraded", (retrain,)),)
    if canary_steps:
        candidate = MlflowQuery("candidate", model=model, alias="candidate", interval=interval, stale_after=stale_after)
        rollout = StartRollout(
            deployment,
            model_uri=f"models:/{model}/{{sensor.candidate}}",
            version="{sensor.candidate}",
            model=model,
            alias="champion",
            canary="v{sensor.candidate}",
            steps=tuple({"setWeight": int(w)} for w in canary_steps),
            analysis=tuple(
                canary_analysis(
                    deployment=deployment,
                    slo=slo,
                    window=analysis_window,
                    interval=analysis_interval,
                    count=analysis_count,
                    initial_delay=analysis_delay,
                )
            ),
            idempotency_key=f"rollout-{deployment}-{{sensor.candidate}}",  # once per candidate version
            cooldown=interval,
            name="canary-rollout",
        )
        sensors += (candidate,)
        rules += (Threshold("candidate", ">", 0, name="candidate-named"),)
        # "while": each evaluation; the key makes it once per version (a new candidate while the rule holds too)
        plans += (Plan("candidate-named", (rollout,), on="while"),)
    return Agent(
        name,
        sensors=sensors,
        rules=rules,
        plans=plans,
        interval=interval,
        entrypoint="agents.mnist:drift_supervisor",
        description="Retrains the MNIST model when online accuracy drops or input drift stays high, and rolls out "
        "each candidate a retraining names as a canary judged on its live p95.",
    )


@agent_factory
def make_throughput_scaler(
    *,
    name: str = "throughput-scaler",
    deployment: str = "mnist",
    interval: float | str = "15s",
    window: str = "1m",
    slo: float = 0.2,
    min_replicas: int = 1,
    max_replicas: int = 4,
    up_stabilization: float | str = "0s",
    down_stabilization: float | str = "3m",
    idle_rps: float = 0.01,
    capacity: float | None = None,
    stale_after: float | str | None = None,
    fallback_replicas: int | None = None,
    failure_threshold: int = 3,
    fallback_behavior: str = "static",
    activation_threshold: float = 0.0,
) -> Agent:
    """The throughput scaler holding p95 latency (seconds) under ``slo``; on load when ``capacity`` is given.

    ``fallback_*`` and ``activation_threshold``: KEDA's fallback and activation (see ``ScaleDeployment``)."""
    selector = f'{{deployment_name="{deployment}",service="predictions"}}'
    p95 = PromQuery(
        "p95",
        f"histogram_quantile(0.95, sum by (le) (rate(seldon_api_executor_server_requests_seconds_bucket{selector}[{window}])))",
        interval=interval,
        stale_after=stale_after,
    )
    rps = PromQuery(
        "rps",
        f"sum(rate(seldon_api_executor_server_requests_seconds_count{selector}[{window}]))",
        interval=interval,
        stale_after=stale_after,
    )
    # On load, a rate of 0 already asks for min_replicas; on latency, it takes the idle rule.
    on_load = {"sensor": "rps", "policy": "capacity", "target": capacity}
    on_latency = {"sensor": "p95", "policy": "target", "target": slo, "idle_sensor": "rps", "idle_below": idle_rps}
    scale = ScaleDeployment(
        deployment,
        **(on_load if capacity else on_latency),
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        up_stabilization=up_stabilization,
        down_stabilization=down_stabilization,
        fallback_replicas=fallback_replicas,
        failure_threshold=failure_threshold,
        fallback_behavior=fallback_behavior,
        activation_threshold=activation_threshold,
        name="scale",
    )
    return Agent(
        name,
        sensors=(p95, rps),
        rules=(Threshold("p95", ">", slo, name="slo-breached"),),
        plans=(Plan(None, (scale,)),),
        interval=interval,
        entrypoint="agents.mnist:throughput_scaler",
        description="Scales the MNIST SeldonDeployment to hold p95 latency under the SLO.",
    )


def canary_analysis(
    *,
    deployment: str = "mnist",
    slo: float = 0.05,
    window: str = "10s",
    interval: str = "2s",
    count: int = 3,
    initial_delay: str = "5s",
    failure_limit: int = 1,
) -> list[dict[str, Any]]:
    """The analysis run after each step of an MNIST roll-out (``scanflow-argo rollout start --analysis``): the
    canary predictor's p95 latency against the SLO (seconds), measured by the router (Seldon's executor metric,
    ``predictor_name`` = the canary). Argo Rollouts' Metric fields (rollout/v1alpha1 ``Metric``): ``count``
    measurements every ``interval`` after ``initialDelay``; more than ``failureLimit`` breaches fail the step —
    the roll-out is aborted and all traffic goes back to the stable predictor. A canary that answers nothing
    in the window has no p95 (NaN): neither condition holds, so the measurement is Inconclusive (a person decides)."""
    selector = f'deployment_name="{deployment}",predictor_name="{{{{args.canary}}}}",service="predictions"'
    p95 = f"histogram_quantile(0.95, sum by (le) (rate(seldon_api_executor_server_requests_seconds_bucket{{{selector}}}[{window}])))"
    return [
        {
            "name": "canary-p95",
            "provider": {"prometheus": {"query": p95}},
            "interval": interval,
            "count": count,
            "initialDelay": initial_delay,
            "failureLimit": failure_limit,
            "successCondition": f"result[0] <= {slo}",
            "failureCondition": f"result[0] > {slo}",
        }
    ]


drift_supervisor = make_drift_supervisor()
throughput_scaler = make_throughput_scaler()
