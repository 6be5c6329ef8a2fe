"""Plain Hera objects, as Hera users write them, through ``scanflow-argo run | compile | lint MODULE:w``.

The oracle is Hera's own on-cluster test (argoproj-labs/hera ``tests/submissions/test_examples.py``
``test_submission``: every example not in ``SKIP_SUBMISSION_EXAMPLES`` must reach ``Succeeded`` on Argo,
``w`` taken from the module as is). ``corpus/`` holds one module per distinct feature those examples
exercise, each citing the example it follows; ``test_upstream_examples`` runs Hera's real examples when a
Hera checkout is at ``$HERA_SOURCE`` (slow: ~40 runs).
"""

from __future__ import annotations

import ast
import fnmatch
import importlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from scanflow_argo.cli import main

CORPUS = Path(__file__).parent / "corpus"
MODULES = sorted(p.stem for p in CORPUS.glob("hera_*.py"))


@pytest.fixture
def in_corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's environment (no tracking, a private home) with the corpus as the current folder."""
    home = tmp_path / "home"
    for key in ("MLFLOW_TRACKING_URI", "SCANFLOW_ENGINE_TEMPLATES"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SCANFLOW_HOME", str(home))
    monkeypatch.setenv("SCANFLOW_PLATFORM", "local")
    monkeypatch.setenv("SCANFLOW_TRACKING", "0")
    monkeypatch.chdir(CORPUS)
    monkeypatch.syspath_prepend(str(CORPUS))  # for EXPECT; `scanflow-argo` itself imports from the current folder
    return home


def _results(doc: dict[str, Any]) -> dict[str, Any]:
    """Node display name → its ``outputs.result`` (None for a node that did not run)."""
    out: dict[str, Any] = {}
    for node in doc["status"]["nodes"].values():
        if node.get("type") not in ("Pod", "Skipped"):
            continue
        ran = node.get("phase") not in ("Skipped", "Omitted")
        out[node["displayName"]] = ((node.get("outputs") or {}).get("result") or "").strip() if ran else None
    return out


@pytest.mark.parametrize("module", MODULES)
def test_hera_object_runs(module: str, in_corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``scanflow-argo run MODULE:w`` on a bare Hera object reaches Succeeded with the outputs it prints."""
    expect = importlib.import_module(module).EXPECT
    code = main(["run", f"{module}:w", "-o", "json"])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    doc = json.loads(captured.out)
    assert (code, doc["status"]["phase"]) == (0, "Succeeded"), doc["status"].get("message")
    results = _results(doc)
    for pattern, want in expect.items():
        names = fnmatch.filter(results, pattern)
        assert names, f"no node {pattern!r} in {sorted(results)}"
        assert results[names[0]] == want, (pattern, results)


def test_generate_name_is_honoured(in_corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Hera's usual ``Workflow(generate_name="corpus-hello-")``: each run gets the prefix and 5 random characters."""
    names = []
    for _ in range(2):
        assert main(["run", "hera_hello:w", "-o", "name"]) == 0
        names.append(capsys.readouterr().out.strip())
    assert all(n.startswith("corpus-hello-") and len(n) == len("corpus-hello-") + 5 for n in names)
    assert names[0] != names[1]


@pytest.mark.parametrize("module", MODULES)
def test_hera_object_compiles_and_lints(module: str, in_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", f"{module}:w", "-o", str(tmp_path / "out")]) == 0
    written = sorted(p.name for p in (tmp_path / "out").glob("*.yaml"))
    kind = type(importlib.import_module(module).w).__name__.lower()
    assert [n for n in written if n != "kustomization.yaml"] == [n for n in written if n.startswith(kind)]  # no stray RBAC
    assert main(["lint", f"{module}:w"]) == 0
    assert main(["lint", str(tmp_path / "out")]) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_a_fixed_name_that_exists_is_refused_as_the_argo_api_does(
    in_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Kubernetes refuses a create whose name is taken (409 AlreadyExists: ``workflows.argoproj.io "x" already
    exists``); the message carries the command that deletes the old run, which then frees the name."""
    (tmp_path / "fixed_flow.py").write_text(
        "from hera.workflows import Container, Workflow\n"
        "with Workflow(name='fixed-flow', entrypoint='c') as w:\n"
        "    Container(name='c', image='alpine:3.20', command=['echo', 'fixed'])\n"
    )
    monkeypatch.chdir(tmp_path)
    assert main(["run", "fixed_flow:w", "-o", "name"]) == 0
    assert capsys.readouterr().out.strip() == "fixed-flow"
    assert main(["run", "fixed_flow:w"]) == 1
    err = capsys.readouterr().err
    assert 'workflows.argoproj.io "fixed-flow" already exists' in err and "scanflow-argo delete fixed-flow" in err
    assert err.count("\n") == 1  # one line, no traceback
    assert main(["delete", "fixed-flow"]) == 0
    assert main(["run", "fixed_flow:w", "-o", "name"]) == 0


@pytest.mark.parametrize(
    ("ref", "code", "said"),
    [
        ("hera_hello.py:w", 0, ""),
        ("./hera_hello.py:w", 0, ""),
        ("sub/flow.py:w", 0, ""),
        ("nope.py:w", 1, "nope.py: no such file"),
        ("../outside.py:w", 1, "is outside the current folder"),
        ("sub/bad-name.py:w", 1, "'sub.bad-name' is not a module name"),
    ],
)
def test_a_file_of_the_current_folder_is_a_module(
    ref: str,
    code: int,
    said: str,
    in_corpus: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``scanflow-argo run my_flow.py:w`` (a path, as a shell completes it) is ``run my_flow:w``."""
    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    hello = (CORPUS / "hera_hello.py").read_text()
    for rel in ("hera_hello.py", "sub/flow.py", "sub/bad-name.py", "../outside.py"):
        (project / rel).write_text(hello)
    monkeypatch.chdir(project)
    for command in (["run", ref, "-o", "name"], ["lint", ref]):
        assert main(command) == code
        captured = capsys.readouterr()
        assert said in captured.err and "Traceback" not in captured.err


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("from hera.workflows import Workflow\nw = Workflow(entrypoint='x')\n", "has neither name nor generate_name"),
        ("w = 42\n", "is a int, not a scanflow_argo Application nor a Workflow"),
        ("from hera.workflows import Workflow\nw = Workflow(name='Bad_Name', entrypoint='x')\n", "not a DNS-1123 label"),
    ],
)
def test_what_cannot_run_is_one_line(
    source: str,
    message: str,
    tmp_path: Path,
    in_corpus: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    module = f"bad_{abs(hash(source))}"
    (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.chdir(tmp_path)
    for command in (["run", f"{module}:w"], ["compile", f"{module}:w", "-o", str(tmp_path / "o")], ["lint", f"{module}:w"]):
        assert main(command) == 1
        err = capsys.readouterr()
        assert message in err.err + err.out and "Traceback" not in err.err


# -- Hera's own examples (slow; needs a checkout of argoproj-labs/hera at $HERA_SOURCE) ---------------------------

ENGINE_GAPS: dict[str, str] = {}
"""Examples Argo runs that the local engine refuses today (reported to the engine's parity work)."""


def _upstream_examples() -> list[Any]:
    source = os.environ.get("HERA_SOURCE")
    if not source or not (Path(source) / "tests" / "submissions" / "test_examples.py").is_file():
        return [pytest.param(None, marks=pytest.mark.skip(reason="set HERA_SOURCE to a checkout of argoproj-labs/hera"))]
    root = Path(source)
    tree = ast.parse((root / "tests" / "submissions" / "test_examples.py").read_text())
    skip: set[str] = set()
    for node in ast.walk(tree):  # SKIP_LINT_EXAMPLES | {...}: every string literal of the two sets
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "").startswith("SKIP_") for t in node.targets):
            skip |= {c.value for c in ast.walk(node.value) if isinstance(c, ast.Constant) and isinstance(c.value, str)}
    out = []
    for path in sorted((root / "examples" / "workflows").rglob("*.py")):
        rel = path.relative_to(root).with_suffix("")
        if "upstream" in rel.parts or path.stem in skip or path.name == "__init__.py":
            continue
        marks = (
            [pytest.mark.xfail(reason=f"local engine: {ENGINE_GAPS[path.stem]}", strict=True)] if path.stem in ENGINE_GAPS else []
        )
        out.append(pytest.param(".".join(rel.parts), marks=marks, id=path.stem))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("module", _upstream_examples())
def test_upstream_examples(
    module: str | None, in_corpus: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hera's example ``w`` as is, through the CLI, must reach Succeeded (Hera's ``test_submission``)."""
    root = os.environ["HERA_SOURCE"]
    monkeypatch.chdir(root)
    monkeypatch.setattr(sys, "path", [root, *sys.path])
    code = main(["run", f"{module}:w", "-o", "json"])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert code == 0, captured.err[-500:]
    assert json.loads(captured.out)["status"]["phase"] == "Succeeded"


def test_a_generated_template_is_named_when_submitted_from_python(in_corpus: Path) -> None:
    """``Client().submit`` of a Hera ``WorkflowTemplate(generate_name=...)`` creates it (named from the prefix, as
    the API server names it) and submits it, as Hera's ``create()`` then ``argo submit --from`` do."""
    from hera_template_generated import w  # type: ignore[import-not-found]

    from scanflow_argo import Client

    run = Client().submit(w, wait=True, timeout=120)
    assert run.succeeded and run.output("shout") == "MADE"
    assert re.fullmatch(r"corpus-tmpl-[bcdfghjklmnpqrstvwxz2456789]{5}-[bcdfghjklmnpqrstvwxz2456789]{5}", run.name), run.name
