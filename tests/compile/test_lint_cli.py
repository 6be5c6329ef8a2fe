"""`scanflow-argo lint` and `compile` as a user runs them: exit codes, messages, Argo's examples."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scanflow_argo.cli import main
from scanflow_argo.compile.lint import lint_paths

ROOT = Path(__file__).resolve().parents[2]

BROKEN = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: broken-
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - {name: a, template: say, depends: "c", arguments: {parameters: [{name: msg, value: "{{tasks.b.outputs.parameters.nope}}"}]}}
      - {name: b, template: say, depends: "a", arguments: {parameters: [{name: msg, value: "{{workflow.parameters.missing}}"}]}}
      - {name: c, template: ghost, depends: "b"}
      - {name: d, template: say, dependencies: [zed]}
  - name: say
    inputs: {parameters: [{name: msg}]}
    container: {image: alpine, command: [echo, "{{inputs.parameters.mesage}}"]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ignored}
---
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata: {name: bad-schema}
spec:
  entrypoint: 42
  templates: [{name: main, container: {image: alpine}, retryStrategy: {limit: [1]}}]
"""


def test_lint_reports_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "wf.yaml"
    f.write_text(BROKEN)
    rc = main(["lint", str(f)])
    out = capsys.readouterr()
    assert rc == 1
    lines = out.out.strip().splitlines()
    expected = [
        "unknown dependency 'zed'",
        "unknown template 'ghost'",
        "tasks form a cycle: a -> b -> c -> a",
        "undefined reference {{workflow.parameters.missing}}",
        "undefined reference {{tasks.b.outputs.parameters.nope}} — template 'say' declares no output parameter 'nope'",
        "undefined reference {{inputs.parameters.mesage}}",
        "template 'say' needs parameter 'msg', which is not passed",
    ]
    for needle in expected:
        assert any(needle in line and line.startswith(f"{f}:1: Workflow/broken-") for line in lines), needle
    assert any(line.startswith(f"{f}:3: WorkflowTemplate/bad-schema: spec.entrypoint") for line in lines)
    assert any("retryStrategy.limit" in line for line in lines)
    assert not any("ignored" in line for line in lines)
    assert "linted 2 Argo object(s) in 1 file(s)" in out.err


def test_lint_clean_file_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "ok.yaml"
    f.write_text(
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {generateName: ok-}\n"
        "spec:\n  entrypoint: main\n  templates:\n  - {name: main, container: {image: alpine, command: [echo, hi]}}\n"
    )
    assert main(["lint", str(f)]) == 0
    assert main(["lint", str(tmp_path / "missing.yaml")]) == 1
    assert "no such file or folder" in capsys.readouterr().err


@pytest.mark.shared
def test_argo_examples_lint_clean(shared_dir: Path) -> None:
    report = lint_paths([shared_dir / "argo-examples"], schemas_dir=shared_dir / "schemas")
    assert report.schema_checked and report.objects > 200
    # the only findings are two examples whose generateName sits under labels (metadata has no name): real bugs,
    # which the API server refuses (and one of those labels, "fun-with-gifs-", is not a valid label value either)
    assert {p.split(":")[0].rsplit("/", 1)[-1] for p in report.problems} == {"fun-with-gifs.yaml", "k8s-jobs.yaml"}
    assert sum("metadata.name: Required value: name or generateName is required" in p for p in report.problems) == 2


def test_generated_manifests_lint_clean(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", str(ROOT / "manifests" / "generated")]) == 0


def test_compile_cli_errors_name_module_and_attribute(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", "pipelines.mnist:nope", "-o", str(tmp_path)]) == 1
    assert "module 'pipelines.mnist' has no attribute 'nope'" in capsys.readouterr().err
    assert main(["compile", "no_such_module_xyz", "-o", str(tmp_path)]) == 1
    assert "cannot import module 'no_such_module_xyz'" in capsys.readouterr().err
    assert main(["compile", "scanflow_argo.settings:Settings", "-o", str(tmp_path)]) == 1
    assert "not a scanflow_argo Application" in capsys.readouterr().err
    assert main(["compile", "pipelines.mnist", "-o", str(tmp_path), "--schemas", str(tmp_path / "none")]) == 1
    assert "schemas not found in" in capsys.readouterr().err


def test_compile_cli_writes_manifests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["compile", "pipelines.mnist:app", "-o", str(out)]) == 0
    assert (out / "kustomization.yaml").is_file() and (out / "workflowtemplate-mnist-train.yaml").is_file()
    assert "compiled 'mnist'" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["compile", "lint"])
def test_help(command: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "scanflow_argo", command, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and f"scanflow-argo {command}" in proc.stdout


LEGACY = """\
apiVersion: argoproj.io/v1alpha1
kind: CronWorkflow
metadata: {name: nightly}
spec:
  schedule: "0 3 * * *"
  workflowSpec:
    entrypoint: main
    synchronization: {mutex: {name: one-at-a-time}}
    templates:
    - name: main
      synchronization: {semaphores: [{configMapKeyRef: {name: limits, key: a}}], semaphore: {configMapKeyRef: {name: limits, key: b}}}
      container: {image: alpine}
"""


def test_lint_says_what_to_write_for_fields_argo_4_removed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Argo 4 dropped the singular ``schedule``, ``mutex`` and ``semaphore``: the API server refuses them as unknown
    fields; lint names the replacement ``argo convert`` writes (argoproj/argo-workflows
    ``workflow/convert/legacy_types.go``: the schedule replaces the list, a singular lock is appended to the plural)."""
    f = tmp_path / "cron.yaml"
    f.write_text(LEGACY)
    assert main(["lint", str(f)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    prefix = f"{f}: CronWorkflow/nightly: "
    assert lines == [
        prefix + 'spec.schedule: removed in Argo 4 — write spec.schedules: ["0 3 * * *"] (what `argo convert` writes)',
        prefix + "spec.workflowSpec.synchronization.mutex: removed in Argo 4 — write spec.workflowSpec.synchronization.mutexes: "
        '[{"name": "one-at-a-time"}] (what `argo convert` writes)',
        prefix + "spec.workflowSpec.templates[0].synchronization.semaphore: removed in Argo 4 — write "
        'spec.workflowSpec.templates[0].synchronization.semaphores: [{"configMapKeyRef": {"name": "limits", "key": "a"}}, '
        '{"configMapKeyRef": {"name": "limits", "key": "b"}}] (what `argo convert` writes)',
        prefix + "spec.schedules: Required value",
    ]


REFS = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: uses-refs-}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: ok, templateRef: {name: library, template: greet}, arguments: {parameters: [{name: who, value: x}]}}
      - {name: no-arg, templateRef: {name: library, template: greet}}
      - {name: no-template, templateRef: {name: library, template: wave}}
      - {name: no-library, templateRef: {name: elsewhere, template: greet}}
      - {name: cluster, templateRef: {name: library, template: greet, clusterScope: true}, arguments: {parameters: [{name: who, value: x}]}}
    - - {name: out, template: show, arguments: {parameters: [{name: v, value: "{{steps.ok.outputs.parameters.nope}}"}]}}
  - name: show
    inputs: {parameters: [{name: v}]}
    container: {image: alpine}
---
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: from-template-}
spec:
  workflowTemplateRef: {name: missing-template}
"""

LIBRARY = """\
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata: {name: library}
spec:
  templates:
  - name: greet
    inputs: {parameters: [{name: who}]}
    outputs: {parameters: [{name: said, valueFrom: {path: /tmp/said}}]}
    container: {image: alpine}
"""


def test_lint_resolves_template_references_across_files_and_applied_templates(tmp_path: Path) -> None:
    """Argo's own offline lint resolves no reference; this one looks in every file given and the applied templates."""
    uses, library = tmp_path / "uses.yaml", tmp_path / "library.yaml"
    uses.write_text(REFS)
    library.write_text(LIBRARY)
    alone = lint_paths([uses])
    assert (
        sum("templateRef library/greet: no WorkflowTemplate named 'library' in the files linted" in p for p in alone.problems)
        == 2
    )
    report = lint_paths([uses, library])
    text = "\n".join(report.problems)
    assert "step 'ok'" not in text
    assert "step 'no-arg': template 'library/greet' needs parameter 'who', which is not passed" in text
    assert (
        "step 'no-template': templateRef library/wave: WorkflowTemplate 'library' has no template 'wave' — use one of: greet"
        in text
    )
    assert "step 'no-library': templateRef elsewhere/greet: no WorkflowTemplate named 'elsewhere'" in text
    assert "step 'cluster': templateRef library/greet: no ClusterWorkflowTemplate named 'library'" in text
    assert "{{steps.ok.outputs.parameters.nope}} — template 'greet' declares no output parameter 'nope'" in text
    assert "Workflow/from-template-: workflowTemplateRef: no WorkflowTemplate named 'missing-template'" in text
    applied = tmp_path / "applied"
    applied.mkdir()
    (applied / "missing-template.yaml").write_text(LIBRARY.replace("name: library", "name: missing-template"))
    again = lint_paths([uses, library], applied=applied)
    assert not any("missing-template" in p for p in again.problems)
    assert "or the templates applied" in "\n".join(lint_paths([uses], applied=applied).problems)


def test_lint_lets_a_template_reference_named_from_its_item_through(tmp_path: Path) -> None:
    """Argo's validator leaves a ``templateRef`` holding a tag to run time (``workflow/validate/validate.go``
    ``validateTemplateHolder``: ``VerifyResolvedVariables``), where each expanded step names its template."""
    uses = tmp_path / "dynamic.yaml"
    uses.write_text(
        REFS.split("---")[0].replace(
            "{name: ok, templateRef: {name: library, template: greet}",
            '{name: ok, templateRef: {name: "{{item.lib}}", template: "{{item.t}}"}, withItems: [{lib: library, t: greet}]',
        )
    )
    text = "\n".join(lint_paths([uses]).problems)
    assert "step 'ok'" not in text, text
    assert "step 'no-library': templateRef elsewhere/greet" in text  # a plain name is still resolved


UNKNOWN = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: typo-, labelz: {a: b}}
spec:
  entrypoint: main
  bogusField: 1
  templates:
  - name: main
    container: {image: alpine, command: [echo, hi], imagePullPolcy: Always}
  - name: loop
    steps: [[{name: s, template: main, withItems: [{any: thing}]}]]
  - name: plug
    plugin: {anything: {goes: here}}
"""


def test_lint_reports_unknown_fields_as_strict_field_validation_does(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The API server (fieldValidation=Strict, kubectl's default since Kubernetes 1.27) refuses fields the CRD's
    structural schema does not know — ``strict decoding error: unknown field "spec.bogusField"`` — except under
    ``x-kubernetes-preserve-unknown-fields`` (apiextensions-apiserver pkg/apiserver/schema/pruning): withItems
    and plugin bodies stay free."""
    f = tmp_path / "typo.yaml"
    f.write_text(UNKNOWN)
    assert main(["lint", str(f)]) == 1
    out = capsys.readouterr()
    lines = sorted(line.split(": ", 2)[-1] for line in out.out.strip().splitlines())
    assert lines == [
        'unknown field "metadata.labelz"',
        'unknown field "spec.bogusField"',
        'unknown field "spec.templates[0].container.imagePullPolcy"',
    ]
    assert "schema checks against Argo Workflows" in out.err  # what ran, and against which CRDs


RESULT_OUTPUT = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: shadow-}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - [{name: produce, template: produce}]
    - [{name: read, template: show, arguments: {parameters: [{name: v, value: "{{steps.produce.outputs.result}}"}]}}]
    - [{name: fine, template: show, arguments: {parameters: [{name: v, value: "{{steps.produce.outputs.parameters.result}}"}]}}]
  - name: produce
    script:
      image: python:3.12
      source: "open('/tmp/r', 'w').write('x'); print('printed')"
    outputs:
      parameters: [{name: result, valueFrom: {path: /tmp/r}}]
  - name: show
    inputs: {parameters: [{name: v}]}
    container: {image: alpine, command: [echo, "{{inputs.parameters.v}}"]}
"""


def test_an_output_named_result_is_refused_where_it_is_shadowed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Argo fills ``outputs.result`` with the step's stdout: ``{{steps.produce.outputs.result}}`` never reads the
    parameter named ``result`` (an error); ``outputs.parameters.result`` does, as Argo's own examples use it
    (exit-handler-with-param.yaml), so the name alone is a warning."""
    f = tmp_path / "shadow.yaml"
    f.write_text(RESULT_OUTPUT)
    assert main(["lint", str(f)]) == 1
    out = capsys.readouterr()
    problems = out.out.strip().splitlines()
    assert len(problems) == 1
    assert "{{steps.produce.outputs.result}} is Argo's outputs.result (what the step printed)" in problems[0]
    assert "not template 'produce''s output parameter 'result', which it shadows — rename the parameter" in problems[0]
    assert "warning: " in out.err and "output parameter 'result' shares its name with Argo's outputs.result" in out.err
