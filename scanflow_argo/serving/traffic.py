"""A SeldonDeployment's traffic split: which predictor answers a request, and which ones mirror it.

Owns one thing: reading ``spec.predictors[].traffic`` and ``spec.predictors[].shadow`` (the CRD's
fields) into a ``TrafficSplit`` and choosing the predictor of each request from a seeded
``random.Random``, so a run with the same seed sends the same requests to the same predictors.
Pure: no I/O, no clock; the router (``serving/router.py``) owns the sending.

Rules, as seldon-core's admission webhook checks them (operator/apis/machinelearning.seldon.io/v1/
seldondeployment_webhook.go, ``checkTraffic`` and the predictor-name checks of ``ValidateSeldonDeployment``):
predictor names are unique; a shadow predictor takes no share (its ``traffic`` is not counted); with
more than one non-shadow predictor their ``traffic`` must add up to 100; a lone non-shadow predictor
takes all traffic whatever its ``traffic`` says (0 when unset). A shadow receives a copy of every
request and its answer is discarded (Seldon's shadow, mirrored by the ingress on the cluster).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import SpecError

__all__ = ["TrafficSplit", "split_of"]


@dataclass(frozen=True)
class TrafficSplit:
    """The predictors answering requests with their weights (percent, adding up to 100) and the shadows."""

    weights: tuple[tuple[str, int], ...]
    shadows: tuple[str, ...] = ()

    def choose(self, rng: random.Random) -> str:
        """The predictor that answers the next request: one draw of ``rng`` in [0, 100) over the cumulative weights."""
        draw = rng.random() * 100
        total = 0
        for name, weight in self.weights:
            total += weight
            if draw < total:
                return name
        return next(name for name, weight in reversed(self.weights) if weight > 0)

    def share(self, name: str) -> int:
        """``name``'s share of the traffic in percent (0 for a shadow or an unknown predictor)."""
        return dict(self.weights).get(name, 0)


def split_of(deployment: str, predictors: Sequence[Mapping[str, Any]]) -> TrafficSplit:
    """The traffic split of ``deployment``'s ``spec.predictors``; ``SpecError`` naming the predictor when Seldon refuses it."""
    if not predictors:
        raise SpecError(f"SeldonDeployment {deployment}: spec.predictors is empty — list at least one predictor")
    names: list[str] = []
    serving: list[tuple[str, int]] = []
    shadows: list[str] = []
    for i, pred in enumerate(predictors):
        name = pred.get("name")
        if not isinstance(name, str) or not name:
            raise SpecError(f"SeldonDeployment {deployment}: spec.predictors[{i}].name is missing — name each predictor")
        if name in names:
            raise SpecError(f"SeldonDeployment {deployment}: predictor name {name!r} is used twice — names must be unique")
        names.append(name)
        traffic = pred.get("traffic", 0)
        if isinstance(traffic, bool) or not isinstance(traffic, int) or not 0 <= traffic <= 100:
            raise SpecError(
                f"SeldonDeployment {deployment}: predictor {name!r} has traffic {traffic!r} — use a whole percent 0..100"
            )
        if pred.get("shadow") is True:
            shadows.append(name)
        else:
            serving.append((name, traffic))
    if not serving:
        raise SpecError(f"SeldonDeployment {deployment}: every predictor is a shadow — one must answer requests")
    if len(serving) == 1:
        return TrafficSplit(((serving[0][0], 100),), tuple(shadows))
    total = sum(w for _, w in serving)
    if total != 100:
        listed = ", ".join(f"{n}={w}" for n, w in serving)
        raise SpecError(
            f"SeldonDeployment {deployment}: the traffic of its non-shadow predictors adds up to {total} ({listed}) "
            "— Seldon requires 100"
        )
    return TrafficSplit(tuple(serving), tuple(shadows))
