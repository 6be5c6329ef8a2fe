"""The agent's own Prometheus metrics, in a private registry served at ``/metrics``.

Names: ``scanflow_agent_sensor_value``, ``scanflow_agent_sensor_stale``,
``scanflow_agent_sensor_errors_total``, ``scanflow_agent_rule_firing``,
``scanflow_agent_decisions_total``, ``scanflow_agent_actions_total``,
``scanflow_agent_loop_seconds``, ``scanflow_agent_paused``, ``scanflow_agent_leader`` —
every one labelled with ``agent``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["AgentMetrics"]


class AgentMetrics:
    """Gauges, counters and the loop-duration histogram of one agent."""

    def __init__(self, agent: str) -> None:
        self.agent = agent
        self.registry = CollectorRegistry()
        r = self.registry
        self.sensor_value = Gauge("scanflow_agent_sensor_value", "Latest value of each sensor", ["agent", "sensor"], registry=r)
        self.sensor_stale = Gauge(
            "scanflow_agent_sensor_stale", "1 when the sensor is stale (no action on it)", ["agent", "sensor"], registry=r
        )
        self.sensor_errors = Counter("scanflow_agent_sensor_errors", "Failed sensor reads", ["agent", "sensor"], registry=r)
        self.rule_firing = Gauge(
            "scanflow_agent_rule_firing", "1 firing, 0 not, -1 unknown (stale inputs)", ["agent", "rule"], registry=r
        )
        self.decisions = Counter(
            "scanflow_agent_decisions", "Decisions by kind and event/result", ["agent", "kind", "result"], registry=r
        )
        self.actions = Counter("scanflow_agent_actions", "Actions by name and result", ["agent", "action", "result"], registry=r)
        self.loop_seconds = Histogram(
            "scanflow_agent_loop_seconds",
            "Duration of one sense-decide-act iteration",
            ["agent"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.paused = Gauge("scanflow_agent_paused", "1 while paused", ["agent"], registry=r)
        self.leader = Gauge("scanflow_agent_leader", "1 when this replica acts", ["agent"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
