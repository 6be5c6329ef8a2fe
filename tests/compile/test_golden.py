"""The committed manifests/generated/ is exactly what the compiler produces now; output is deterministic; no inline secrets.

Regenerate after an intended change:  SCANFLOW_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/compile/test_golden.py
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from _compile_helpers import build_app

from scanflow_argo.cli.compile import load_app
from scanflow_argo.compile import compile_app, dump_yaml, file_name, write_manifests

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "manifests" / "generated"
SECRETISH = re.compile(r"(?i)(password|passwd|secret|token|api[_-]?key|access[_-]?key|credential)")


def render(objs: list[dict[str, Any]]) -> dict[str, str]:
    return {file_name(o): dump_yaml(o) for o in objs}


def test_committed_manifests_match_the_compiler(tmp_path: Path) -> None:
    objs = compile_app(load_app("pipelines.mnist:app"))
    if os.environ.get("SCANFLOW_UPDATE_GOLDEN") == "1":
        write_manifests(objs, GOLDEN)
    fresh = tmp_path / "fresh"
    write_manifests(objs, fresh)
    expected = {p.name: p.read_text() for p in fresh.iterdir()}
    actual = {p.name: p.read_text() for p in GOLDEN.glob("*.yaml")} if GOLDEN.is_dir() else {}
    hint = "run: SCANFLOW_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/compile/test_golden.py (or scanflow-argo compile pipelines.mnist:app -o manifests/generated)"
    assert sorted(actual) == sorted(expected), f"manifests/generated lists other files than the compiler produces — {hint}"
    changed = [name for name in expected if actual[name] != expected[name]]
    assert not changed, f"manifests/generated is stale: {changed} — {hint}"


def test_compiling_twice_is_byte_identical() -> None:
    assert render(compile_app(build_app())) == render(compile_app(build_app()))
    mnist = load_app("pipelines.mnist:app")
    assert render(compile_app(mnist)) == render(compile_app(mnist))


def test_output_does_not_depend_on_hash_seed(tmp_path: Path) -> None:
    here = render(compile_app(load_app("pipelines.mnist:app")))
    out = tmp_path / "seeded"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    proc = subprocess.run(
        [sys.executable, "-m", "scanflow_argo", "compile", "pipelines.mnist:app", "-o", str(out), "--no-schema-check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    there = {p.name: p.read_text() for p in out.glob("*.yaml") if p.name != "kustomization.yaml"}
    assert there == here


def _env_entries(node: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "env" and isinstance(v, list):
                found += [e for e in v if isinstance(e, dict)]
            found += _env_entries(v)
    elif isinstance(node, list):
        for v in node:
            found += _env_entries(v)
    return found


@pytest.mark.parametrize("source", ["golden", "demo"])
def test_no_secret_is_inline(source: str) -> None:
    if source == "golden":
        docs = [d for p in sorted(GOLDEN.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text())]
    else:
        docs = compile_app(build_app())
    entries = [e for d in docs for e in _env_entries(d)]
    secretish = [e for e in entries if SECRETISH.search(str(e.get("name", "")))]
    assert secretish, "the scan must see secret-looking env names to mean anything"
    inline = [e for e in secretish if "value" in e]
    assert not inline, f"secret-looking env with inline values: {inline}"
    assert all("secretKeyRef" in e.get("valueFrom", {}) for e in secretish)
