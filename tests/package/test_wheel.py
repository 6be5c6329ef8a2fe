"""The package as a user gets it: the wheel, installed into a fresh virtual environment outside this checkout.

Built once per session (``pip wheel``, no build isolation, no network); installed with ``pip --python`` and
``--no-index`` into a ``--without-pip`` venv; its dependencies are this venv's (a ``.pth`` line added *after*
the install, so pip never sees them and the editable install stays untouched). Then, from a folder with no
``../shared`` and no checkout: the wheel installs no ``pipelines``/``agents`` packages, ``lint`` checks against
the CRDs shipped with it (CEL rules included), ``compile`` compiles a user's module, ``run`` runs a workflow.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

WORKFLOW = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: hello-}
spec:
  entrypoint: main
  arguments: {parameters: [{name: who, value: wheel}]}
  templates:
  - name: main
    dag:
      tasks:
      - {name: greet, template: say, arguments: {parameters: [{name: msg, value: "{{workflow.parameters.who}}"}]}}
  - name: say
    inputs: {parameters: [{name: msg}]}
    outputs: {parameters: [{name: said, valueFrom: {path: /tmp/said}}]}
    container: {image: alpine:3.20, command: [sh, -c], args: ["echo hello {{inputs.parameters.msg}} | tee /tmp/said"]}
"""

BROKEN = WORKFLOW.replace("{name: greet, template: say,", "{name: greet, template: say, dependencies: [x], depends: x,")

USER_APP = """\
from scanflow_argo.spec import Application, Workflow, step


@step(outputs={"total": int})
def add(a: int, b: int) -> dict:
    return {"total": a + b}


with Workflow("adding") as wf:
    add(a=1, b=2)

app = Application("mine", namespace="team", workflows=[wf])
"""


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (built,) = out.glob("scanflow_argo-*.whl")
    return built


@pytest.fixture(scope="session")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("user")
    env_dir = home / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(env_dir)], check=True, timeout=120)
    python = env_dir / "bin" / "python"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # the dependencies, from this environment (no network): a plain path line, so its .pth files (the editable
    # install's finder among them) are not run in the user's environment
    Path(site, "zz-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    yield env_dir


def _run(venv: Path, cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCANFLOW_", "PYTHON", "VIRTUAL_ENV", "MLFLOW_"))}
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", SCANFLOW_HOME=str(cwd / ".scanflow"), SCANFLOW_TRACKING="0"
    )
    return subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_wheel_holds_the_library_its_crds_and_no_application(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names if "/" in n and not n.split("/", 1)[0].endswith((".dist-info", ".data"))}
    assert tops == {"scanflow_argo"}, tops  # no generic top-level `pipelines` or `agents` in site-packages
    crds = {n.rsplit("/", 1)[-1] for n in names if n.startswith("scanflow_argo/compile/schemas/")}
    assert {"argoproj.io_workflows.yaml.xz", "seldondeployment-crd.yaml.xz", "README.md"} <= crds
    assert {"argoproj.io_workflows.json.xz", "seldondeployment-crd.json.xz"} <= crds  # their JSON digests (load_crd)
    # the files the built-in images have at fixed paths (features/images.py: argosay, nginx, influxdb, alpine)
    features = "scanflow_argo/engine/features/"
    shipped = {n[len(features) :] for n in names if n.startswith(features) and not n.endswith(".py")}
    assert {
        "argosay.sh",
        "image_files/nginx/nginx.conf",
        "image_files/nginx/default.conf",
        "image_files/influxdb/influxdb.conf",
        "image_files/alpine/nc",
        "image_files/alpine/apk",
    } <= shipped, shipped


def test_lint_compile_and_run_from_the_installed_package(venv: Path, tmp_path: Path) -> None:
    work = tmp_path / "project"  # no ../shared beside it, no checkout above it
    work.mkdir()
    where = _run(venv, work, str(venv / "bin" / "python"), "-c", "import scanflow_argo; print(scanflow_argo.__file__)")
    assert where.stdout.startswith(str(venv)), where.stdout + where.stderr
    for package in ("pipelines", "agents"):
        probe = _run(venv, work, str(venv / "bin" / "python"), "-c", f"import {package}")
        assert f"No module named '{package}'" in probe.stderr

    (work / "hello.yaml").write_text(WORKFLOW)
    (work / "broken.yaml").write_text(BROKEN)
    lint = _run(venv, work, "scanflow-argo", "lint", "hello.yaml")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "schema checks against Argo Workflows v4.1.2 CRDs with their CEL rules" in lint.stderr
    assert "(shipped with scanflow-argo)" in lint.stderr
    bad = _run(venv, work, "scanflow-argo", "lint", "broken.yaml")
    assert bad.returncode == 1
    assert "spec.templates[0].dag.tasks[0]: Invalid value: cannot use both 'depends' and 'dependencies'" in bad.stdout

    (work / "mine.py").write_text(USER_APP)
    built = _run(venv, work, "scanflow-argo", "compile", "mine:app", "-o", "out")
    assert built.returncode == 0, built.stdout + built.stderr
    assert "schema checks passed against Argo Workflows v4.1.2 CRDs" in built.stderr
    assert (work / "out" / "workflow-adding.yaml").is_file() and (work / "out" / "kustomization.yaml").is_file()

    ran = _run(venv, work, "scanflow-argo", "run", "hello.yaml", "-o", "json")
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    assert '"phase": "Succeeded"' in ran.stdout and "hello wheel" in ran.stdout
