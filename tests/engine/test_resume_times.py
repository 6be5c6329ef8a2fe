"""A resumed run keeps its times (issue #13): the nodes that hold others keep their ``startedAt`` and a retry
backoff the dead engine began waits only what is left of it, as Argo's controller, whose node status outlives
any controller restart, computes it (workflow/controller/operator.go ``processNodeRetries``:
``waitingDeadline := lastChildNode.FinishedAt.Add(timeToWait)``).

The engine is "killed" in the middle of the backoff by a clock whose sleep raises a ``BaseException`` (nothing
catches it, nothing more is written: what a ``kill -9`` leaves), then resumed on a clock 50 s later.
"""

from __future__ import annotations

import pytest

from scanflow_argo.clock import ManualClock, iso
from scanflow_argo.engine import execute, prepare_run, resume
from scanflow_argo.engine.core.state import read_status
from scanflow_argo.settings import Settings

T0 = 1_700_000_000.0
BACKOFF = 100


class Killed(BaseException):
    """The engine's end in the middle of a sleep."""


class DyingClock(ManualClock):
    """Dies once it has slept ``after`` seconds in all."""

    def __init__(self, after: float) -> None:
        super().__init__(T0)
        self.after = after

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        if self.monotonic() >= self.after:
            raise Killed


class CountingClock(ManualClock):
    def __init__(self, start: float) -> None:
        super().__init__(start)
        self.slept = 0.0

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        self.slept += seconds


WORKFLOW = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Workflow",
    "metadata": {"generateName": "resume-times-"},
    "spec": {
        "entrypoint": "main",
        "templates": [
            {"name": "main", "steps": [[{"name": "a", "template": "flaky"}]]},
            {
                "name": "flaky",
                "retryStrategy": {"limit": 1, "backoff": {"duration": str(BACKOFF)}},
                "container": {"image": "busybox", "command": ["false"]},
            },
        ],
    },
}


def test_resume_keeps_the_roots_start_and_waits_only_the_backoff_left(engine_settings: Settings) -> None:
    run_dir = prepare_run(WORKFLOW, engine_settings)
    with pytest.raises(Killed):
        execute(run_dir, engine_settings, clock=DyingClock(after=30))
    before = read_status(run_dir)["status"]
    assert before["phase"] == "Running"
    assert before["nodes"][run_dir.name]["startedAt"] == iso(T0)
    later = CountingClock(T0 + 50)  # 50 s after the first attempt ended, 30 of them spent waiting
    run = resume(run_dir, engine_settings, clock=later)
    retry = next(n for n in run.nodes.values() if n.type == "Retry")
    assert (run.phase, retry.message) == ("Failed", "No more retries left")
    assert later.slept == pytest.approx(BACKOFF - 50, abs=0.5)  # was the whole backoff again
    after = read_status(run_dir)["status"]
    assert after["nodes"][run_dir.name]["startedAt"] == iso(T0)  # was the resume's time
    assert after["startedAt"] == iso(T0)
    attempts = sorted(n["displayName"] for n in after["nodes"].values() if n["type"] == "Pod")
    assert attempts == ["a(0)", "a(1)"]  # the failed attempt kept, one more after the backoff
