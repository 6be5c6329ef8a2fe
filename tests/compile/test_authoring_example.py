"""``examples/authoring`` (every authoring feature in one application) compiles to valid manifests that use
each feature, lints clean, and the snippets and commands of ``docs/authoring.md`` run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from scanflow_argo.cli.compile import load_app
from scanflow_argo.compile import compile_app, write_manifests
from scanflow_argo.compile.lint import lint_paths
from scanflow_argo.errors import SpecError
from scanflow_argo.serving.controller import parse_predictors
from scanflow_argo.serving.traffic import split_of
from scanflow_argo.spec import Canary, Service, Shadow

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "authoring.md"


@pytest.fixture(scope="module")
def objs() -> list[dict[str, Any]]:
    return compile_app(load_app("examples.authoring.app:app"))


def by(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (hit,) = [o for o in objs if o["kind"] == kind and (o["metadata"].get("name") or o["metadata"].get("generateName")) == name]
    return hit


def templates(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in obj["spec"]["templates"]}


def test_the_example_uses_every_feature(objs: list[dict[str, Any]]) -> None:
    wt = by(objs, "WorkflowTemplate", "numbers")
    meta, spec = wt["metadata"], wt["spec"]
    assert meta["annotations"]["workflows.argoproj.io/title"] == "Numbers"
    assert meta["annotations"]["workflows.argoproj.io/description"]
    params = {p["name"]: p for p in spec["arguments"]["parameters"]}
    assert all(p.get("description") for p in params.values())
    assert params["style"]["enum"] == ["short", "long"]
    assert spec["onExit"] == "exit-handler" and spec["parallelism"] == 4 and spec["activeDeadlineSeconds"] == 600
    tmpl = templates(wt)
    tasks = {t["name"]: t for t in tmpl["main"]["dag"]["tasks"]}
    assert tasks["square"]["withParam"] == "{{tasks.generate.outputs.parameters.numbers}}"
    assert tasks["count-chars"]["withItems"] == ["alpha", "beta", "gamma"]
    assert tasks["celebrate"]["when"] == "{{tasks.generate.outputs.parameters.total}} > 10"
    assert tasks["summarize"]["arguments"]["artifacts"] == [{"name": "data", "from": "{{tasks.generate.outputs.artifacts.data}}"}]
    assert tasks["generate"]["depends"] == "flaky"
    assert tmpl["flaky"]["retryStrategy"] == {"limit": 2, "retryPolicy": "OnFailure", "backoff": {"duration": "1s", "factor": 2}}
    assert tmpl["generate"]["activeDeadlineSeconds"] == 60
    assert tmpl["generate"]["script"]["resources"]["requests"] == {"cpu": "100m", "memory": "64Mi"}
    assert tmpl["generate"]["outputs"]["artifacts"][0]["name"] == "data"
    container = tmpl["count-chars"]["container"]
    assert container["args"] == ["{{inputs.parameters.text}}"] and container["command"][0] == "python"
    assert tmpl["exit-handler"]["dag"]["tasks"][0]["arguments"]["parameters"] == [
        {"name": "status", "value": "{{workflow.status}}"}
    ]
    cron = by(objs, "CronWorkflow", "numbers-nightly")["spec"]
    assert cron["schedules"] == ["30 2 * * *"] and cron["workflowSpec"]["workflowTemplateRef"] == {"name": "numbers"}
    assert by(objs, "Workflow", "numbers-quick-")["metadata"]["generateName"] == "numbers-quick-"
    assert templates(by(objs, "WorkflowTemplate", "hera-hello"))["main"]["steps"]
    sdep = by(objs, "SeldonDeployment", "numbers-model")
    assert sdep["spec"]["predictors"][0]["componentSpecs"][0]["spec"]["containers"][0]["image"] == "scanflow-argo/serving:0.1.0"
    # Seldon's traffic split and shadow (predictors[].traffic / .shadow), accepted as its webhook accepts them
    preds = sdep["spec"]["predictors"]
    assert [(p["name"], p.get("traffic"), p.get("shadow"), p["graph"]["modelUri"]) for p in preds] == [
        ("default", 90, None, "models:/numbers@champion"),
        ("canary", 10, None, "models:/numbers@challenger"),
        ("shadow", None, True, "models:/numbers@candidate"),
    ]
    split = split_of("numbers-model", preds)
    assert (split.weights, split.shadows) == ((("default", 90), ("canary", 10)), ("shadow",))
    assert [p.predictor for p in parse_predictors(sdep)] == ["default", "canary", "shadow"]  # the local platform reads it


@pytest.mark.parametrize(
    ("canary", "shadow", "message"),
    [
        (Canary("models:/m/2", traffic=100), None, "1..99"),
        (Canary("models:/m/2", traffic=0), None, "1..99"),
        (Canary("models:/m/2", name="default"), None, "unique"),
        (Canary("models:/m/2"), Shadow("models:/m/3", name="canary"), "unique"),
    ],
)
def test_a_refused_split_is_a_spec_error(canary, shadow, message) -> None:
    with pytest.raises(SpecError, match=message):
        Service("m", model_uri="models:/m/1", canary=canary, shadow=shadow)


@pytest.mark.shared
def test_the_example_manifests_validate_and_lint_clean(objs: list[dict[str, Any]], shared_dir: Path, tmp_path: Path) -> None:
    from scanflow_argo.compile.schema import SchemaChecker

    checker = SchemaChecker(shared_dir / "schemas")
    assert [p for o in objs for p in checker.problems(o)] == []
    write_manifests(objs, tmp_path)
    report = lint_paths([tmp_path], checker=checker)
    assert report.ok and report.schema_checked, report.problems
    assert report.objects == 4


def test_the_docs_python_snippets_run(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) >= 8
    script = tmp_path / "authoring_doc.py"  # steps need a source file; only stdlib and the project are imported
    script.write_text("\n".join(blocks))
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "'SeldonDeployment'" in out.stdout and "'CronWorkflow'" in out.stdout
    assert "output 'totl' of step 'generate', which does not exist" in out.stdout  # the validation example


def test_the_docs_compile_and_lint_commands_run(tmp_path: Path) -> None:
    text = DOC.read_text()
    commands = [line.split("#")[0].split() for line in re.findall(r"^scanflow-argo (?:compile|lint) .*$", text, re.M)]
    assert [c[1] for c in commands] == ["compile", "lint"]
    for argv in commands:
        argv = [a.replace("build/authoring", str(tmp_path / "out")) for a in argv]
        out = subprocess.run(
            [sys.executable, "-m", "scanflow_argo", *argv[1:]], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, f"{' '.join(argv)}:\n{out.stdout}\n{out.stderr}"
    assert (tmp_path / "out" / "workflowtemplate-numbers.yaml").is_file()
