"""The Retry node's message says why Argo stopped retrying (``processNodeRetries`` in
``workflow/controller/operator.go``): ``retryStrategy.expression evaluated to false`` when the expression
stops it, ``No more retries left`` when the limit is spent, the last attempt's own message when the
``retryPolicy`` does not cover its phase. In-process, with the fake node kind of ``test_scheduler``.
"""

from __future__ import annotations

from typing import Any

import pytest

from scanflow_argo.engine import run_workflow

from .test_scheduler import FakePods, wf

# (what, retryStrategy, attempt phases, Retry node message expected, attempts run)
CASES: list[tuple[str, dict[str, Any], list[str], str | None, int]] = [
    ("limit spent", {"limit": 1}, ["Failed", "Failed"], "No more retries left", 2),
    ("expression false", {"limit": 3, "expression": "false"}, ["Failed"], "retryStrategy.expression evaluated to false", 1),
    (
        "expression false at the limit",
        {"limit": 0, "expression": "false"},
        ["Failed"],
        "retryStrategy.expression evaluated to false",
        1,
    ),
]


@pytest.mark.parametrize(("what", "rs", "phases", "message", "ran"), CASES, ids=[c[0] for c in CASES])
def test_retry_node_message(engine_settings, what, rs, phases, message, ran) -> None:  # type: ignore[no-untyped-def]
    fake = FakePods()
    run = run_workflow(wf([{"name": "main", "retryStrategy": rs, "fake": {"phases": phases}}]), engine_settings, kinds=fake.kinds)
    assert run.phase == "Failed", what
    assert run.node(run.name).message == message, (what, run.node(run.name))
    assert len(fake.ran) == ran, (what, fake.ran)
