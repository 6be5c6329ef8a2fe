"""The traffic split read from spec.predictors: Seldon's webhook rules (table) and the seeded choice."""

from __future__ import annotations

import random

import pytest

from scanflow_argo.compile.schema import SchemaChecker
from scanflow_argo.errors import SpecError
from scanflow_argo.serving.traffic import TrafficSplit, split_of


@pytest.mark.parametrize(
    ("predictors", "weights", "shadows"),
    [
        ([{"name": "stable"}], (("stable", 100),), ()),
        ([{"name": "stable", "traffic": 0}], (("stable", 100),), ()),
        ([{"name": "stable", "traffic": 90}, {"name": "canary", "traffic": 10}], (("stable", 90), ("canary", 10)), ()),
        ([{"name": "stable", "traffic": 100}, {"name": "shadow", "shadow": True}], (("stable", 100),), ("shadow",)),
        (
            [{"name": "s", "traffic": 50}, {"name": "c", "traffic": 50}, {"name": "x", "shadow": True, "traffic": 7}],
            (("s", 50), ("c", 50)),
            ("x",),
        ),
    ],
)
def test_split_accepts(predictors, weights, shadows):
    split = split_of("mnist", predictors)
    assert split.weights == weights
    assert split.shadows == shadows


@pytest.mark.parametrize(
    ("predictors", "words"),
    [
        ([], "is empty"),
        ([{"graph": {}}], "name is missing"),
        ([{"name": "a", "traffic": 50}, {"name": "a", "traffic": 50}], "used twice"),
        ([{"name": "a", "traffic": 90}, {"name": "b", "traffic": 20}], "adds up to 110"),
        ([{"name": "a", "traffic": "50"}, {"name": "b", "traffic": 50}], "whole percent"),
        ([{"name": "a", "traffic": 101}], "whole percent"),
        ([{"name": "a", "shadow": True}], "every predictor is a shadow"),
    ],
)
def test_split_refuses(predictors, words):
    with pytest.raises(SpecError, match=words):
        split_of("mnist", predictors)


def test_choice_is_seeded_and_follows_the_weights():
    split = TrafficSplit((("stable", 90), ("canary", 10)))

    def draws(seed: int) -> list[str]:
        rng = random.Random(seed)
        return [split.choose(rng) for _ in range(2000)]

    first, again = draws(7), draws(7)
    assert first == again
    canary = first.count("canary") / len(first)
    assert 0.07 < canary < 0.13
    assert split.share("canary") == 10 and split.share("shadow") == 0


def test_zero_weight_is_never_chosen():
    split = TrafficSplit((("stable", 100), ("canary", 0)))
    rng = random.Random(1)
    assert {split.choose(rng) for _ in range(500)} == {"stable"}


def _sdep(predictors: list[dict]) -> dict:
    return {
        "apiVersion": "machinelearning.seldon.io/v1",
        "kind": "SeldonDeployment",
        "metadata": {"name": "mnist"},
        "spec": {"predictors": predictors},
    }


def _pred(name: str, **fields) -> dict:
    return {"name": name, "replicas": 1, "graph": {"name": "model", "modelUri": f"models:/mnist@{name}"}, **fields}


@pytest.mark.parametrize(
    ("predictors", "problem"),
    [
        ([_pred("stable", traffic=90), _pred("canary", traffic=10), _pred("shadow", shadow=True)], None),
        ([_pred("stable", traffic=90), _pred("canary", traffic="10")], "traffic"),
        ([_pred("stable", traffic=100), _pred("shadow", shadow="yes")], "shadow"),
    ],
)
def test_the_split_fields_are_the_crds(predictors, problem):
    """``predictors[].traffic`` (integer) and ``predictors[].shadow`` (boolean) as Seldon v1.18.2's CRD declares them."""
    problems = SchemaChecker().problems(_sdep(predictors))
    if problem is None:
        assert problems == []
        split_of("mnist", predictors)
    else:
        assert any(problem in p for p in problems), problems
