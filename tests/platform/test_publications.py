"""Handoff by publication on the local platform: a template published as a ClusterWorkflowTemplate reaches
another team's namespace, and every publication and use lands in the trail ``scanflow-argo team log`` shows."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from scanflow_argo.cli import main
from scanflow_argo.clock import ManualClock
from scanflow_argo.compile.teams import team_namespace
from scanflow_argo.errors import SpecError
from scanflow_argo.platform import get_platform
from scanflow_argo.platform.publications import Publications
from scanflow_argo.platform.teams import NamespaceBound
from scanflow_argo.settings import Settings

SCIENCE, ENGINEERING = team_namespace("mnist", "science"), team_namespace("mnist", "engineering")
TEMPLATE: dict[str, Any] = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "WorkflowTemplate",
    "metadata": {"name": "mnist-retrain", "namespace": SCIENCE},
    "spec": {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": "python:3.11", "command": ["true"]}}]},
}


def _settings(home: Path, namespace: str) -> Settings:
    s = Settings.from_env(environ={}).with_home(home)
    return replace(s, kubernetes=replace(s.kubernetes, namespace=namespace))


def test_a_published_template_reaches_the_other_team_and_the_trail_says_who(tmp_path: Path) -> None:
    clock = ManualClock(1_800_000_000.0)
    pubs = Publications(_settings(tmp_path, SCIENCE), "mnist", clock)
    pubs.publish_dataset("data", "mnist", "3", "s3://datasets/mnist/3")
    clock.advance(60)
    science = NamespaceBound(get_platform(_settings(tmp_path, SCIENCE)), SCIENCE)
    pubs.publish_template("science", science, TEMPLATE, "1")
    engineering = NamespaceBound(get_platform(_settings(tmp_path, ENGINEERING)), ENGINEERING)
    got = engineering.platform.get_template("ClusterWorkflowTemplate", "mnist-retrain", ENGINEERING)
    assert "namespace" not in got["metadata"] and got["metadata"]["labels"]["scanflow.dev/team"] == "science"
    pubs.use("engineering", "template", "mnist-retrain", "1", where=f"{ENGINEERING}: supervisor")
    trail = [(r.when, r.team, r.action, r.kind, r.name, r.version, r.namespace) for r in pubs.log()]
    assert trail == [
        ("2027-01-15T08:00:00Z", "data", "publish", "dataset", "mnist", "3", team_namespace("mnist", "data")),
        ("2027-01-15T08:01:00Z", "science", "publish", "template", "mnist-retrain", "1", SCIENCE),
        ("2027-01-15T08:01:00Z", "engineering", "use", "template", "mnist-retrain", "1", ENGINEERING),
    ]


def test_an_unknown_kind_is_refused_and_not_recorded(tmp_path: Path) -> None:
    pubs = Publications(_settings(tmp_path, SCIENCE), "mnist")
    with pytest.raises(SpecError, match="publish one of dataset, model, template"):
        pubs.use("science", "notebook", "x", "1")
    assert pubs.log() == []


def test_cli_publish_and_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = ["--home", str(tmp_path), "--namespace", SCIENCE]
    assert main([*home, "team", "log", "mnist"]) == 0
    assert "nothing published" in capsys.readouterr().out
    template = tmp_path / "retrain.yaml"
    template.write_text(yaml.safe_dump(TEMPLATE))
    assert main([*home, "team", "publish", "mnist", "data", "dataset", "mnist", "3", "--uri", "s3://d/3"]) == 0
    assert main([*home, "team", "publish", "mnist", "science", "template", str(template), "1"]) == 0
    capsys.readouterr()
    assert main([*home, "team", "log", "mnist"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1:5] for line in lines] == [
        ["data", "publish", "dataset", "mnist@3"],
        ["science", "publish", "template", "mnist-retrain@1"],
    ]


def test_cli_publish_reads_the_template_through_the_alias_bound(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A template carrying a ~600-byte alias bomb is one error line, and nothing is published (was: read by PyYAML's
    safe_load and published, the bomb with it; issue #13)."""
    home = ["--home", str(tmp_path), "--namespace", SCIENCE]
    levels = ["  a0: &a0 [" + ",".join(["lol"] * 10) + "]"]
    levels += [f"  a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(yaml.safe_dump(TEMPLATE) + "x-anchors:\n" + "\n".join(levels) + "\n")
    assert main([*home, "team", "publish", "mnist", "science", "template", str(bomb), "1"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is not valid YAML" in err and "YAML nodes" in err
    assert main([*home, "team", "log", "mnist"]) == 0
    assert "nothing published" in capsys.readouterr().out
