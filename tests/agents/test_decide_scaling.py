"""The scaler's decision reads one frozen context (``decide._Scaling``) and stays a pure function of it."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from scanflow_argo.agents import decide as decide_module
from scanflow_argo.agents.decide import Sample, SensorWindow
from scanflow_argo.spec.agent import Agent, Plan, PromQuery, ScaleDeployment

T0 = 1_700_000_000.0


def _context(p95: float | None, replicas: int, state: dict[str, Any]) -> Any:
    scale = ScaleDeployment(
        "mnist", "p95", target=0.2, min_replicas=1, max_replicas=5, up_stabilization=0, fallback_replicas=2, name="scale"
    )
    agent = Agent("s", sensors=[PromQuery("p95", "up", interval=1)], plans=[Plan(None, [scale])], interval=1)
    windows = {
        "p95": SensorWindow("p95", (Sample(T0, p95),) if p95 is not None else (), None if p95 is not None else "unreachable"),
        "mnist-replicas": SensorWindow("mnist-replicas", (Sample(T0, replicas),)),
    }
    return decide_module._Scaling(agent, scale, None, windows, state, T0)


@pytest.mark.parametrize(
    ("p95", "replicas", "state", "expected"),
    [
        (0.5, 1, {}, 3),  # ceil(1 × 0.5/0.2)
        (0.21, 3, {}, None),  # within tolerance
        (None, 3, {"fallback": {"scale": 3}}, 2),  # fourth failed read: the fallback holds 2
        (None, 3, {}, None),  # first failed read: counted, no action
    ],
)
def test_scale_reads_one_frozen_context(p95: float | None, replicas: int, state: dict[str, Any], expected: int | None) -> None:
    ctx = _context(p95, replicas, state)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.now = T0 + 1
    first = decide_module._scale(ctx)
    assert first == decide_module._scale(ctx)  # pure: the same context, the same decisions
    acts = [d for d in first if d.kind == "action"]
    assert (acts[0].params["replicas"] if acts else None) == expected
