"""A platform client bound to a team's namespace (``platform.teams.NamespaceBound``) on the real local platform:
what names another namespace is refused with both namespaces named, before anything is written; what stays
in the team's namespace goes through."""

from __future__ import annotations

import importlib
import inspect
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from scanflow_argo.cli import main
from scanflow_argo.compile.teams import team_namespace
from scanflow_argo.errors import PlatformError
from scanflow_argo.platform import Platform, get_platform
from scanflow_argo.platform.teams import NamespaceBound
from scanflow_argo.settings import Settings

OWN, OTHER = team_namespace("mnist", "engineering"), team_namespace("mnist", "science")


def _template(namespace: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "retrain"} | ({"namespace": namespace} if namespace else {})
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": meta,
        "spec": {
            "entrypoint": "main",
            "templates": [{"name": "main", "container": {"image": "python:3.11", "command": ["true"]}}],
        },
    }


@pytest.fixture
def bound(tmp_path: Path) -> NamespaceBound:
    s = Settings.from_env(environ={}).with_home(tmp_path)
    s = replace(s, kubernetes=replace(s.kubernetes, namespace=OWN))
    return NamespaceBound(get_platform(s), OWN)


REFUSED = [
    ("apply a template in another namespace", lambda b: b.apply_template(_template(OTHER))),
    ("submit a Workflow in another namespace", lambda b: b.submit({**_template(OTHER), "kind": "Workflow"})),
    ("submit by name in another namespace", lambda b: b.submit_in(OTHER, "retrain")),
    ("scale in another namespace", lambda b: b.scale("mnist", 3, namespace=OTHER)),
    ("roll in another namespace", lambda b: b.roll("mnist", "models:/mnist@published", namespace=OTHER)),
    (
        "apply a deployment in another namespace",
        lambda b: b.apply_deployment({"kind": "SeldonDeployment", "metadata": {"name": "m", "namespace": OTHER}}),
    ),
]


@pytest.mark.parametrize(("what", "call"), REFUSED, ids=[w for w, _ in REFUSED])
def test_another_namespace_is_refused_and_named(bound: NamespaceBound, what: str, call: Any) -> None:
    with pytest.raises(PlatformError) as err:
        call(bound)
    assert OTHER in str(err.value) and OWN in str(err.value), what
    assert bound.platform.list_templates("WorkflowTemplate", OTHER) == []  # nothing written there


@pytest.mark.parametrize("namespace", [OWN, None])
def test_the_own_namespace_goes_through(bound: NamespaceBound, namespace: str | None) -> None:
    bound.apply_template(_template(namespace))
    assert [t["metadata"]["name"] for t in bound.platform.list_templates("WorkflowTemplate", OWN)] == ["retrain"]


def test_it_is_a_platform(bound: NamespaceBound) -> None:
    assert isinstance(bound, Platform)


def test_a_platform_of_another_namespace_is_refused(tmp_path: Path) -> None:
    s = Settings.from_env(environ={}).with_home(tmp_path)
    with pytest.raises(PlatformError, match=f"bound to namespace '{OWN}'.*'scanflow'"):
        NamespaceBound(get_platform(s), OWN)


@pytest.mark.parametrize(
    "impl",
    [
        "scanflow_argo.platform.local:LocalPlatform",
        "scanflow_argo.platform.kubernetes:KubernetesPlatform",
        "scanflow_argo.platform.teams:NamespaceBound",
        "scanflow_argo.agents.testing:InMemoryPlatform",
    ],
)
def test_every_platform_submits_with_the_protocols_signature(impl: str) -> None:
    # the signature is spelled once (base.SubmitTarget, base.Pairs): a platform that drifts from it fails here
    module, _, name = impl.partition(":")
    cls = getattr(importlib.import_module(module), name)
    assert inspect.signature(cls.submit) == inspect.signature(Platform.submit), impl


@pytest.mark.parametrize("group", ["team", "agent", "demo"])
def test_a_command_group_without_its_action_says_which_there_are(group: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as err:
        main([group])
    assert err.value.code == 2 and "required" in capsys.readouterr().err


def test_runs_of_another_namespace_are_neither_listed_nor_read(bound: NamespaceBound) -> None:
    other = bound.platform.submit({**_template(OTHER), "kind": "Workflow"})  # the unbound platform: another team's run
    own = bound.submit({**_template(None), "kind": "Workflow", "metadata": {"generateName": "own-"}})
    try:
        assert [r.name for r in bound.list_runs()] == [own]
        assert bound.get_run(own).namespace == OWN
        with pytest.raises(PlatformError, match=f"reading run '{other}' in namespace '{OTHER}' refused.*'{OWN}'"):
            bound.get_run(other)
    finally:
        for run in (other, own):
            bound.platform.wait(run, timeout=60)
