"""Argo's own examples through real detached engines: the phase must match Argo's expectation.

Prints ``N passed, M refused, K wrong``; fails on any wrong phase or hang, or when fewer than 45
examples pass. Skips with a reason where ``../shared`` is absent.
"""

from __future__ import annotations

import os

import pytest

from .conformance import run_all, summary

pytestmark = [pytest.mark.slow, pytest.mark.shared, pytest.mark.timeout(600)]


def test_argo_examples_reach_argos_phase(shared_dir, engine_settings) -> None:  # type: ignore[no-untyped-def]
    workers = max(2, min(6, (os.cpu_count() or 2) * 2))
    outcomes = run_all(shared_dir / "argo-examples", engine_settings, workers=workers, timeout=120)
    line = summary(outcomes)
    print(f"\nconformance: {line}")
    for o in outcomes:
        if o.verdict not in ("skipped",):
            print(f"  {o.verdict:8} {o.seconds:5.1f}s {o.path} {o.detail[:200]}")
    for o in outcomes:  # excluded although labelled with an expectation: say why, in full
        if o.verdict == "skipped" and o.expected is not None:
            print(f"  excluded {o.path} (labelled {o.expected}): {o.detail}")
    bad = [o for o in outcomes if o.verdict in ("wrong", "hang")]
    assert not bad, "\n".join(f"{o.path}: expected {o.expected}, {o.verdict}: {o.detail}" for o in bad)
    assert sum(1 for o in outcomes if o.verdict == "passed") >= 45, line


@pytest.mark.parametrize(("limit", "attempts"), [("10", 11), ("2", 3)])
def test_chance_rule_still_fails_a_run_that_always_fails(shared_dir, engine_settings, tmp_path, limit, attempts) -> None:  # type: ignore[no-untyped-def]
    """A retry example that can never succeed is still wrong after the reruns, and a run that stopped
    retrying early is wrong at once (its attempt count is named)."""
    examples = tmp_path / "examples"
    examples.mkdir()
    source = (shared_dir / "argo-examples" / "retry-script.yaml").read_text()
    assert "random.choice([0, 1, 1])" in source and 'limit: "10"' in source
    broken = source.replace("random.choice([0, 1, 1])", "1").replace('limit: "10"', f'limit: "{limit}"')
    (examples / "retry-script.yaml").write_text(broken)
    [outcome] = run_all(examples, engine_settings, workers=1, timeout=60)
    assert outcome.verdict == "wrong" and outcome.attempts == attempts
    if attempts != 11:
        assert "made 3 attempts where the retry strategy allows 11" in outcome.detail
