"""Runs and results from Python on the local engine (``scanflow_argo.Client``), and the CLI's edges a user hits
around them: a killed engine, a failed run's reason, ``list | head``, misspelt parameters."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from scanflow_argo import Client
from scanflow_argo.cli import main
from scanflow_argo.errors import NotFoundError, PlatformError
from scanflow_argo.settings import Settings

FLOW = '''
"""A pipeline as a user writes it with Hera: a fan-out, a folder artifact, a parameter."""
from hera.workflows import DAG, Artifact, Parameter, Workflow, script


@script(outputs=Artifact(name="data", path="/tmp/data"))
def make(rows: int):
    import os
    os.makedirs("/tmp/data/part", exist_ok=True)
    for i in range(rows):
        open(f"/tmp/data/part/{i}.txt", "w").write(str(i))
    print(list(range(rows)))


@script()
def square(value: int):
    print(value * value)


with Workflow(generate_name="client-", entrypoint="main", arguments=Parameter(name="rows", value="3")) as w:
    with DAG(name="main"):
        m = make(arguments={"rows": "{{workflow.parameters.rows}}"})
        m >> square(with_param=m.result)
'''

SLOW = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: slow-}
spec:
  entrypoint: main
  templates:
  - name: main
    steps: [[{name: first, template: say}], [{name: wait, template: wait}]]
  - name: say
    container: {image: busybox, command: [echo, first]}
  - name: wait
    # polls, so a copy orphaned by the kill -9 below ends as soon as the test lets the run go on
    container: {image: busybox, command: [sh, -c, 'for i in $(seq 600); do test -e "$0/go" && break; sleep 0.1; done; echo waited', "{project}"]}
"""


@pytest.fixture
def user(local_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "client_flow.py").write_text(FLOW)
    monkeypatch.chdir(folder)
    return folder


def test_submit_read_outputs_artifacts_logs_and_filter(user: Path, capsys: pytest.CaptureFixture[str]) -> None:
    client = Client()
    sys.path.insert(0, str(user))
    try:
        from client_flow import w  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(user))
    run = client.submit(w, {"rows": 4}, labels={"team": "ml"}, wait=True, timeout=120)
    assert run.succeeded, run.message
    assert run.workflow == "client" and run.parameters == {"rows": "4"}
    assert run.output("make", as_json=True) == [0, 1, 2, 3]
    assert run.output("square", as_json=True) == [0, 1, 4, 9]  # Argo's aggregation of a fan-out's results
    assert run.outputs["square(3:3)"]["result"] == "9"
    data = run.artifact("make", "data")
    assert sorted(p.name for p in (data / "part").iterdir()) == ["0.txt", "1.txt", "2.txt", "3.txt"]
    assert run.logs("square(2:2)").strip() == "4"
    with pytest.raises(NotFoundError, match="has no output artifact 'nope'"):
        run.artifact("make", "nope")

    assert main(["run", "client_flow:w", "-p", "rows=1", "-l", "team=other"]) == 0
    capsys.readouterr()
    assert [r.name for r in client.runs(labels={"team": "ml"})] == [run.name]
    assert len(client.runs(workflow="client", phase="Succeeded")) == 2
    assert client.latest("client").parameters == {"rows": "1"}
    with pytest.raises(PlatformError, match=r"declares no parameter 'row' \(did you mean 'rows'\?\) — its parameters: rows"):
        client.submit(w, {"row": 2})
    run.delete()
    with pytest.raises(NotFoundError):
        client.run(run.name)


def test_a_misspelt_parameter_is_refused_on_the_command_line(user: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``argo submit -p mesage=hi`` adds a parameter nobody reads (workflow/util/util.go overrideParameters) and
    runs with the default; here it is refused, naming the declared ones."""
    assert main(["run", "client_flow:w", "-p", "row=2"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "error: Workflow client- declares no parameter 'row' (did you mean 'rows'?) — its parameters: rows"
    assert not (Path(os.environ["SCANFLOW_HOME"]) / "runs").exists() or not list(
        (Path(os.environ["SCANFLOW_HOME"]) / "runs").iterdir()
    )


def test_a_killed_engine_is_shown_and_resumed(user: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (user / "slow.yaml").write_text(SLOW.replace("{project}", str(user)))
    assert main(["run", "slow.yaml", "--detach"]) == 0
    name = capsys.readouterr().out.strip()
    client = Client()
    run = client.run(name)
    deadline = time.monotonic() + 60
    while "first" not in run.logs() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.3)  # the `wait` step is starting
    pid = int((Path(os.environ["SCANFLOW_HOME"]) / "runs" / name / "engine.pid").read_text())
    os.killpg(pid, signal.SIGKILL)  # kill -9 the engine and what it runs
    deadline = time.monotonic() + 10
    while "engine" not in (client.run(name).message or "") and time.monotonic() < deadline:
        time.sleep(0.05)

    assert main(["list"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith(name))
    assert "Running" in line and f"is gone (killed or the machine restarted): scanflow-argo resume {name}" in line
    assert main(["status", name]) == 0
    assert f"scanflow-argo resume {name}" in capsys.readouterr().out

    (user / "go").write_text("")
    run = client.run(name).resume().wait(timeout=60)
    assert run.succeeded and run.output("wait") == "waited"
    assert run.logs("first").strip() == "first"  # succeeded before the kill: not run again


def test_list_says_why_a_run_failed(user: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (user / "bad.yaml").write_text(
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {generateName: bad-}\nspec:\n  entrypoint: main\n"
        "  templates:\n  - name: main\n    steps: [[{name: s, template: t, withParam: 'not json'}]]\n"
        "  - {name: t, container: {image: busybox, command: [echo, '{{item}}']}}\n"
    )
    assert main(["run", "bad.yaml"]) == 1
    capsys.readouterr()
    assert main(["list"]) == 0
    row = capsys.readouterr().out.splitlines()[1]
    assert "Failed" in row and "s: step 's': withParam value is not a JSON list: 'not json'" in row


def test_list_into_a_closed_pipe_ends_quietly(user: Path) -> None:
    """``scanflow-argo list | head -1``: the reader leaves early; no BrokenPipeError traceback."""
    home = Path(os.environ["SCANFLOW_HOME"]) / "runs"
    for i in range(300):  # more than a pipe buffer of rows
        (home / f"r{i:03d}").mkdir(parents=True)
        (home / f"r{i:03d}" / "status.json").write_text(
            json.dumps({"metadata": {"name": f"r{i:03d}"}, "status": {"phase": "Succeeded", "startedAt": "2026-01-01T00:00:00Z"}})
        )
    cli = Path(sys.executable).with_name("scanflow-argo")
    proc = subprocess.run(f"'{cli}' list | head -1", shell=True, capture_output=True, text=True, timeout=60)
    assert proc.stdout.startswith("NAME")
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr


def test_client_settings_are_explicit(tmp_path: Path) -> None:
    client = Client(Settings.from_env(environ={}).with_home(tmp_path / "elsewhere"))
    assert client.runs() == []
    with pytest.raises(PlatformError, match="phase 'Done' is not an Argo phase"):
        client.runs(phase="Done")


RETRIED = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: retried-}
spec:
  entrypoint: main
  templates:
  - name: main
    steps: [[{name: register, template: flaky}]]
  - name: flaky
    retryStrategy: {limit: 2}
    container:
      image: busybox
      command: [sh, -c, 'echo "{{retries}}" > /tmp/version; test "{{retries}}" -ge 1']
    outputs:
      parameters: [{name: version, valueFrom: {path: /tmp/version}}]
"""


def test_a_retried_steps_outputs_are_listed_under_its_own_name(user: Path) -> None:
    """Argo's Retry node carries the outputs of its last attempt (``processNodeRetries`` in
    ``workflow/controller/operator.go``: ``node.Outputs = lastChildNode.Outputs.DeepCopy()``); ``Run.outputs``
    lists the step under its own name as well as its attempts. (The MNIST demo read ``vNone`` when its
    ``register`` step was retried once.)"""
    run = Client().submit(yaml.safe_load(RETRIED), wait=True, timeout=120)
    assert run.succeeded, run.message
    assert run.outputs["register(1)"]["version"] == "1"
    assert run.outputs["register"]["version"] == "1"
    assert run.output("register", "version") == "1"
