"""Every command in the README and docs runs as written (the convention: ``docblocks.py``, docs/architecture.md).

Each page runs in a scratch copy of the project (its tracked files, the venvs linked, ``../shared`` beside it)
with its own state folder (``./.scanflow`` there, the default) and free ports, so the docs' commands never touch this checkout or another test.
After a page, nothing it started may still run: a page that leaves a server, a deployment or an agent behind
fails (what it left is stopped first).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from docblocks import Block, blocks, shell_script

from scanflow_argo import _proc
from scanflow_argo.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "agents" / "README.md"]
SLOW_PAGES = {"README.md", "tutorial.md", "authoring.md"}
"""Pages whose commands train MNIST, serve models or run several workflows (a minute or more): marked slow."""


def _project(tmp: Path) -> Path:
    """A copy of the project's tracked files at ``tmp/project`` with ``tmp/shared`` → ../shared and the venvs linked."""
    project = tmp / "project"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    for raw in files:
        if not raw:
            continue
        rel = Path(raw.decode())
        if rel.parts[0] in ("tests", "bench") or not (ROOT / rel).is_file():
            continue
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, project / rel)
    for venv in (".venv", ".venv-serving"):
        if (ROOT / venv).exists():
            (project / venv).symlink_to((ROOT / venv).resolve())
    if (ROOT.parent / "shared").is_dir():
        (tmp / "shared").symlink_to((ROOT.parent / "shared").resolve())
    return project


def _env(project: Path) -> dict[str, str]:
    """A user's environment: the venv first on PATH, no scanflow or MLflow settings but free ports."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCANFLOW_", "MLFLOW_", "PYTHONPATH"))}
    env.update(
        {
            "PATH": f"{project / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}",
            "SCANFLOW_MLFLOW_PORT": str(_proc.free_port()),
            "SCANFLOW_PROMETHEUS_PORT": str(_proc.free_port()),
            "SCANFLOW_AGENT_PORT": str(_proc.free_port()),
            "SCANFLOW_SERVING_VENV": str(project / ".venv-serving"),
            "SCANFLOW_AGENT_TOKEN": "docs-test-token",
        }
    )
    return env


def _left_running(home: Path) -> list[str]:
    """What a page left running in ``home`` (each stopped here), as ``what: how it should have been stopped``."""
    from scanflow_argo.monitoring import prometheus
    from scanflow_argo.serving.controller import LocalDeployments
    from scanflow_argo.tracking import server

    settings = Settings.from_env(environ={}).with_home(home)
    left = []
    for name in LocalDeployments(settings).list():
        left.append(f"deployment {name}: scanflow-argo unserve {name}")
        LocalDeployments(settings).delete(name)
    if prometheus.recorded_url(settings):
        left.append("Prometheus: scanflow-argo prometheus down")
        prometheus.stop_recorded(settings)
    if server.recorded_url(settings):
        left.append("MLflow: scanflow-argo mlflow down")
        server.stop_recorded(settings)
    for endpoint in (home / "agents").glob("*/endpoint.json"):
        left.append(f"agent {endpoint.parent.name}: stop it (kill %1)")
    return left


def _runnable(page: Path) -> list[Block]:
    return [b for b in blocks(page) if b.kind and not b.skipped]


def _params() -> Iterator[object]:
    for page in PAGES:
        marks = [pytest.mark.slow, pytest.mark.timeout(1800)] if page.name in SLOW_PAGES else []
        yield pytest.param(page, marks=marks, id=page.relative_to(ROOT).as_posix())


@pytest.mark.parametrize("page", _params())
def test_page_runs_as_written(page: Path, tmp_path: Path) -> None:
    runnable = _runnable(page)
    if not runnable:
        pytest.skip(f"{page.name} has no runnable blocks (each is shown only, or skipped with a reason)")
    project = _project(tmp_path)
    home = project / ".scanflow"  # the default home of a user working in the project folder
    env = _env(project)
    program: list[str] = []
    try:
        for block in runnable:
            if block.kind == "python":
                program.append(f"# {block.where()}\n{block.text}\n")
                continue
            _run_python(page, program, project, env)
            out = subprocess.run(
                ["bash", "-c", shell_script(block)], cwd=project, env=env, capture_output=True, text=True, timeout=1500
            )
            assert out.returncode == 0, f"{block.where()}:\n{out.stderr[-4000:]}\n{out.stdout[-2000:]}"
        _run_python(page, program, project, env)
    finally:
        left = _left_running(home)
    assert not left, f"{page.name} leaves running: {left}"


def _run_python(page: Path, program: list[str], project: Path, env: dict[str, str]) -> None:
    """The Python blocks seen since the last shell block, as one program (they build on each other)."""
    if not program:
        return
    script = project / f"_doc_{page.stem}.py"  # steps need a source file: only their source travels to a pod
    script.write_text("\n".join(program))
    program.clear()
    out = subprocess.run([sys.executable, str(script)], cwd=project, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"the Python blocks of {page.name}:\n{out.stderr[-4000:]}"


def test_every_skip_says_why() -> None:
    reasons = {b.where(): b.skipped for page in PAGES for b in blocks(page) if b.directive}
    assert all(reasons.values()), reasons


def test_the_convention(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- doctest: skip (needs a cluster) -->\n```bash\nkubectl get pods\n```\n\n"
        "```bash\ntrue; false  # exits 1: on purpose\ntrue \\\n  && echo joined\n```\n"
        "```yaml\nnot: run\n```\n<!-- doctest: skip -->\n```sh\nx\n```\n"
    )
    found = blocks(page)
    assert [(b.lang, b.kind) for b in found] == [("bash", "shell"), ("bash", "shell"), ("yaml", None), ("sh", "shell")]
    assert found[0].skipped == "needs a cluster" and found[1].skipped is None
    with pytest.raises(ValueError, match="needs a reason"):
        _ = found[3].skipped
    ok = subprocess.run(["bash", "-c", shell_script(found[1])], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.strip() == "joined"
    bad = Block(page, 1, "bash", "true\nfalse  # a comment, not an exit status\ntrue", None)
    out = subprocess.run(["bash", "-c", shell_script(bad)], capture_output=True, text=True)
    assert out.returncode == 97 and "page.md:3: `false` exited 1 (expected 0)" in out.stderr
