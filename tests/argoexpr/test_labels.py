"""Label-selector requirements over an object's fields, as Argo's executor matches a resource template's
conditions (``workflow/executor/resource.go``: ``gjsonLabels`` over the object's JSON, k8s ``labels.Parse``)."""

from __future__ import annotations

import pytest

from scanflow_argo.argoexpr.labels import LabelSelector, gjson_lookup

OBJ = {
    "metadata": {"name": "wf", "labels": {"a.b/c": "x"}},
    "status": {"phase": "Succeeded", "progress": "1/1", "nodes": [{"n": 1}, {"n": 2}], "ok": True, "gone": None},
}

# (what, selector, matches OBJ)
CASES = [
    ("equals", "status.phase == Succeeded", True),
    ("single equals", "status.phase=Succeeded", True),
    ("not equals a missing field", "status.message != x", True),
    ("in", "status.phase in (Failed,Succeeded)", True),
    ("notin", "status.phase notin (Failed,Error)", True),
    ("exists", "status.progress", True),
    ("does not exist", "!status.message", True),
    ("array index", "status.nodes.1.n == 2", True),
    ("a number compared", "status.nodes.1.n > 1", True),
    ("a bool as gjson's String()", "status.ok == true", True),
    ("null exists, empty", "status.gone", True),
    ("a later requirement fails", "status.phase == Succeeded,status.phase == Failed", False),
    ("a missing field", "status.missing == x", False),
]


@pytest.mark.parametrize(("what", "selector", "ok"), CASES, ids=[c[0] for c in CASES])
def test_requirements_over_fields(what: str, selector: str, ok: bool) -> None:
    lookup = gjson_lookup(OBJ)
    assert all(r.matches_lookup(lookup) for r in LabelSelector.parse(selector).requirements) is ok, what


@pytest.mark.parametrize(
    ("selector", "text"),
    [
        ("status.phase == Failed", "{status.phase == [Failed]}"),  # resource_test.go: '{status.phase == [Error]}'
        ("status.phase in (b,a)", "{status.phase in [a b]}"),
        ("!status.x", "{status.x ! []}"),
        ("status.n > 3", "{status.n gt [3]}"),
    ],
)
def test_requirement_text_as_go_prints_it(selector: str, text: str) -> None:
    assert LabelSelector.parse(selector).requirements[0].go_value_text() == text
