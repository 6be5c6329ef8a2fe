"""Argo's own tests as an oracle (issue #12): the cases of ``argo_corpus/`` through real detached engines.

Prints ``N passed, M refused, K wrong`` and one line per case that does not pass (its key, what was
expected and what came, its citation). Fails when a case outside ``corpus_gaps.KNOWN_GAPS`` is wrong,
and when a case in it passes (delete its entry: the table is the parity work list and must shrink to
empty). The fast tests below check the data files and the check language without running anything.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from .corpus import (
    CORPUS,
    MISSING,
    Case,
    View,
    check_errors,
    evaluate,
    load_corpus,
    match,
    report_line,
    resolve,
    run_all,
    summary,
)
from .corpus_gaps import KINDS, KNOWN_GAPS


def test_corpus_data_is_well_formed() -> None:
    """Every case parses, cites its source file at a line, says why when excluded or allowed to be
    refused, checks something when it runs, and every KNOWN_GAPS entry names a runnable case and kinds."""
    cases = load_corpus()
    keys = {c.key for c in cases}
    assert len(cases) >= 300, len(cases)
    for c in cases:
        path, _, rest = c.cite.partition(":")
        assert rest.split(" ")[0].isdigit() and (path.startswith(("test/e2e/", "workflow/controller/", "docs/", "examples/"))), (
            c.cite
        )
        if c.excluded:
            assert not c.expect and c.workflow is None, f"{c.key}: an excluded case carries no workflow"
            continue
        assert c.expect, f"{c.key}: a case that runs must check something"
        assert c.workflow is not None or c.submit == "template", c.key
    stale = sorted(set(KNOWN_GAPS) - keys)
    assert not stale, f"KNOWN_GAPS names cases the corpus does not have: {stale}"
    runnable = {c.key for c in cases if not c.excluded}
    assert set(KNOWN_GAPS) <= runnable, sorted(set(KNOWN_GAPS) - runnable)
    for key, (kinds, diagnosis) in KNOWN_GAPS.items():
        assert kinds and all(k in KINDS for k in kinds) and diagnosis, key


# The check language follows Go's testify on Argo's structs: a nil container fails (Go would panic on
# the dereference), a missing bool/string leaf is its zero value.
NODE = {"id": "wf-1", "name": "wf[0].a", "displayName": "a", "phase": "Failed", "nodeFlag": {"retried": True}, "children": ["x"]}


@pytest.mark.parametrize(
    ("got_path", "want", "ok"),
    [
        ("phase", "Failed", True),
        ("phase", {"in": ["Error", "Failed"]}, True),
        ("phase", "Succeeded", False),
        ("nodeFlag.retried", True, True),
        ("nodeFlag.hooked", False, True),  # a zero-valued bool inside a present NodeFlag
        ("memoizationStatus.hit", False, False),  # Go: nil MemoizationStatus → panic → the test fails
        ("memoizationStatus", {"absent": True}, True),
        ("children", {"len": 1}, True),
        ("outboundNodes", {"len": 1}, False),
        ("message", {"empty": True}, True),
        ("message", {"contains": "x"}, False),
        ("inputs.parameters.0.value", {"absent": False}, False),
        ("displayName", {"suffix": "a", "prefix": "a"}, True),
    ],
)
def test_checks_follow_go_semantics(got_path: str, want: object, ok: bool) -> None:
    assert (match(resolve(NODE, got_path), want, "wf") is None) is ok


def test_node_checks_need_a_match_and_hold_for_every_match() -> None:
    doc = {
        "metadata": {"name": "wf"},
        "status": {
            "phase": "Failed",
            "nodes": {
                "wf": {"id": "wf", "name": "wf", "displayName": "wf", "type": "Retry", "children": ["wf-1", "wf-2"]},
                "wf-1": {"id": "wf-1", "name": "wf(0)", "displayName": "wf(0)", "type": "Pod", "phase": "Failed"},
                "wf-2": {"id": "wf-2", "name": "wf(1)", "displayName": "wf(1)", "type": "Pod", "phase": "Succeeded"},
            },
        },
    }
    view = View(doc)
    assert not evaluate({"node": {"root": True}, "type": "Retry"}, view)
    assert evaluate({"node": {"displayName": "nope"}, "phase": "Failed"}, view)  # no match is a failure
    assert evaluate({"node": {"type": "Pod"}, "phase": "Failed"}, view)  # one of two does not hold
    assert not evaluate({"some_node": {"type": "Pod", "phase": "Succeeded"}}, view)
    assert not evaluate({"node": {"displayName": "wf(1)"}, "child_of": {"type": "Retry"}}, view)
    assert not evaluate({"count": {"type": "Pod"}, "eq": 2}, view)
    assert evaluate({"no_node": {"displayName": "wf(0)"}}, view)
    assert not evaluate({"every_node": {"type": "Steps"}, "phase": "Succeeded"}, view)  # none: holds, as Go's loop
    assert resolve(doc, "status.nodes.wf.missing.x") is MISSING
    assert evaluate({"message": "x"}, view)  # the workflow's own fields come from its status


@pytest.mark.parametrize(
    ("check", "bad"),
    [
        ({"node": {"phase": {"in_text": "x"}}, "message": "y"}, True),  # a matcher that does not exist
        ({"logs": {"type": "Pod"}, "container": "c3", "count": ["failure", 2]}, False),  # logs may count
        ({"span": {"type": "HTTP"}, "field": "startedAt", "count": 4, "le": 1}, False),  # a span's count is a number
        ({"configmap": "cache", "outputs": {"absent": False}}, True),
        ({"all": [{"phase": {"inn": ["Failed"]}}]}, True),
    ],
)
def test_malformed_checks_are_found_when_the_corpus_loads(check: dict, bad: bool) -> None:
    assert bool(check_errors(check)) is bad


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_argo_corpus(engine_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cases: list[Case] = load_corpus(CORPUS)
    workers = max(2, min(6, (os.cpu_count() or 2) * 2))
    outcomes = run_all(cases, engine_settings, tmp_path, workers=workers)
    by_source = Counter(c.source.split("_")[0] for c in cases if not c.excluded)
    print(f"\nargo corpus: {summary(outcomes)}; cases run by source: {dict(by_source)}")
    for o in outcomes:
        if o.verdict in ("wrong", "refused"):
            gap = KNOWN_GAPS.get(o.key)
            note = f" [known gap, kind {'+'.join(gap[0])}]" if gap else ""
            print("  " + report_line(o) + note)
    kinds = Counter(k for kinds, _ in KNOWN_GAPS.values() for k in kinds[:1])
    print("  known gaps by root kind: " + ", ".join(f"{k}: {kinds[k]}" for k in sorted(kinds, key=int)))
    wrong = {o.key: o for o in outcomes if o.verdict == "wrong"}
    new = [report_line(wrong[k], 2000) for k in sorted(set(wrong) - set(KNOWN_GAPS))]
    fixed = sorted(k for k in KNOWN_GAPS if k not in wrong)
    problems = (["wrong, and not a known gap:", *new] if new else []) + (
        ["known gaps that now pass: delete them from tests/engine/corpus_gaps.py:", *fixed] if fixed else []
    )
    assert not problems, "\n".join(problems)
