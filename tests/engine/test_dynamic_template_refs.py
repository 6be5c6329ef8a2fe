"""``templateRef`` names taken from ``{{item…}}`` (issue #12 kind 13): Argo's validator lets a reference
that still holds a tag through (``workflow/validate/validate.go`` ``validateTemplateHolder``,
``VerifyResolvedVariables``), each expanded step or task names its template once its item is substituted
(``workflow/controller/steps.go`` ``expandStep``/``processItem``, ``dag.go`` ``expandTask``), and a name
that names nothing fails that node when ``executeTemplate`` resolves it, not the run up front. In-process,
with the fake pods of ``test_scheduler``; the WorkflowTemplates travel in the same YAML file.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from scanflow_argo.engine import run_workflow
from scanflow_argo.errors import NotSupportedLocally

from .test_scheduler import FakePods, wf


def wftmpl(name: str, said: str, **fake: Any) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": {"name": name},
        "spec": {"templates": [{"name": "say", "fake": {"outputs": {"said": said}, **fake}}]},
    }


def caller(items: list[dict[str, str]], kind: str) -> dict[str, Any]:
    """``main`` calls ``{{item.wft}}``'s template ``say`` for each item, as steps or as a DAG task."""
    ref = {"name": "call", "templateRef": {"name": "{{item.wft}}", "template": "{{item.t}}"}, "withItems": items}
    body = {"steps": [[ref]]} if kind == "steps" else {"dag": {"tasks": [ref]}}
    return {"name": "main", **body}


def manifest(items: list[dict[str, str]], kind: str, templates: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all([wf([caller(items, kind)]), *templates])


@pytest.mark.parametrize("kind", ["steps", "dag"])
def test_each_item_calls_the_template_it_names(engine_settings, kind: str) -> None:  # type: ignore[no-untyped-def]
    items = [{"wft": "one", "t": "say"}, {"wft": "two", "t": "say"}]
    run = run_workflow(manifest(items, kind, [wftmpl("one", "1"), wftmpl("two", "2")]), engine_settings, kinds=FakePods().kinds)
    assert run.phase == "Succeeded", run.message
    said = {n.display_name: n.parameters().get("said") for n in run.nodes.values() if n.type == "Pod"}
    assert said == {"call(0:t:say,wft:one)": "1", "call(1:t:say,wft:two)": "2"}


@pytest.mark.parametrize("kind", ["steps", "dag"])
def test_a_name_that_names_nothing_fails_its_node_only(engine_settings, kind: str) -> None:  # type: ignore[no-untyped-def]
    items = [{"wft": "one", "t": "say"}, {"wft": "missing", "t": "say"}]
    run = run_workflow(manifest(items, kind, [wftmpl("one", "1")]), engine_settings, kinds=FakePods().kinds)  # not refused
    assert run.phase in ("Failed", "Error")
    assert run.node("call(0:t:say,wft:one)").phase == "Succeeded"
    bad = run.node("call(1:t:say,wft:missing)")
    assert bad.phase == "Error" and "WorkflowTemplate 'missing' not found" in (bad.message or ""), bad.message


def test_the_templates_literal_items_name_are_checked_before_the_run(engine_settings) -> None:  # type: ignore[no-untyped-def]
    """What the engine refuses (engine/checks.py) is still refused up front in a template an item names."""
    items = [{"wft": "refused", "t": "say"}]
    with pytest.raises(NotSupportedLocally):
        run_workflow(manifest(items, "steps", [wftmpl("refused", "x", refuse=True)]), engine_settings, kinds=FakePods().kinds)
