"""The fake Kubernetes API (``tests/kubernetes/fakeapi.py``) for the agent tests, which need its ConfigMaps
(persisted state) and Leases (leader election): this puts ``tests/kubernetes`` on ``sys.path`` and
re-exports ``FakeCluster``, so these tests talk to the very fake the platform tests use."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kubernetes"))

from fakeapi import FakeCluster

__all__ = ["NAMESPACE", "FakeCluster"]

NAMESPACE = "scanflow"
