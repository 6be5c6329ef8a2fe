"""Engine test fixtures: settings with a private home and 4 nodes at once, tracking off."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from scanflow_argo.settings import Settings


@pytest.fixture
def engine_settings(tmp_path: Path) -> Settings:
    s = Settings.from_env(environ={}).with_home(tmp_path / "home")
    return replace(s, engine=replace(s.engine, parallelism=4), tracking=replace(s.tracking, enabled=False))


@pytest.fixture(autouse=True)
def status_writes_match_a_full_dump(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Every status document the engine writes in these tests, from its cached per-node pieces, must
    be byte for byte what serialising the whole document gives (mismatches fail the test at its end)."""
    import json

    from scanflow_argo.engine.core.state import RunState

    mismatches: list[str] = []
    original = RunState.write

    def checked(self: RunState) -> None:
        with self.lock:
            original(self)
            # nodes change outside the lock (as before), so a difference must persist to count:
            # a stale cached piece does, a change racing with this check does not
            for _ in range(3):
                written = self.render()
                full = json.dumps(self.doc, separators=(",", ":"), default=str)
                if written == full:
                    return
            if len(mismatches) < 3:
                at = next(
                    (i for i, (a, b) in enumerate(zip(written, full, strict=False)) if a != b), min(len(written), len(full))
                )
                mismatches.append(f"{self.run_dir.name}: …{written[at - 150 : at + 80]!r} != …{full[at - 150 : at + 80]!r}")

    monkeypatch.setattr(RunState, "write", checked)
    yield
    assert not mismatches, "incremental status.json differs from a full dump:\n" + "\n".join(mismatches)
