"""Monitoring: the local Prometheus server the agents query (config, file service discovery, lifecycle)."""

from __future__ import annotations

from .prometheus import PrometheusServer, set_targets

__all__ = ["PrometheusServer", "set_targets"]
