"""Manifests as Argo reads them: YAML as the Kubernetes API server decodes it, and ``templateDefaults``.

Sources: ``sigs.k8s.io/yaml`` decodes with go-yaml into plain values, where a timestamp-looking scalar stays
a string (go-yaml v2 ``decode.go``: "for backward compatibility reasons we set it as a string"); the
controller unit tests of argo-workflows f016ad89 carry ``creationTimestamp: 2018-08-01T09:57:43Z`` unquoted
(``workflow/controller/dag_test.go`` TestDagXfail). ``templateDefaults``: ``workflow/controller/operator.go``
``mergedTemplateDefaultsInto`` (defaults of the other template types dropped, then a strategic merge patch)
and e2e ``test/e2e/functional/template-default-image.yaml`` (TestTemplateDefaultImage).
"""

from __future__ import annotations

import yaml

from scanflow_argo.engine import prepare_run, run_workflow
from scanflow_argo.engine.core.manifest import apply_template_defaults, load_documents
from scanflow_argo.engine.core.state import read_status
from scanflow_argo.settings import Settings

WORKFLOW = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  name: stamped
  creationTimestamp: 2018-08-01T09:57:43Z
  annotations:
    day: 2018-08-01
spec:
  entrypoint: main
  templates:
  - name: main
    container:
      image: busybox
      command: [echo, "{{workflow.annotations.day}}"]
"""


def test_timestamps_stay_the_text_they_were() -> None:
    doc = load_documents(WORKFLOW)[0]
    assert doc["metadata"]["creationTimestamp"] == "2018-08-01T09:57:43Z"
    assert doc["metadata"]["annotations"]["day"] == "2018-08-01"


def test_a_manifest_parsed_by_pyyaml_runs_with_its_timestamps_as_text(engine_settings: Settings) -> None:
    manifest = yaml.safe_load(WORKFLOW)  # what a caller hands over: PyYAML made datetimes of them
    run_dir = prepare_run(manifest, engine_settings)
    status = read_status(run_dir)
    assert status["metadata"]["creationTimestamp"] == "2018-08-01T09:57:43Z"
    assert status["metadata"]["annotations"]["day"] == "2018-08-01"


def test_run_of_a_file_with_timestamps(engine_settings: Settings) -> None:
    run = run_workflow(load_documents(WORKFLOW)[0], engine_settings)
    assert run.phase == "Succeeded" and run.node(run.name).outputs["result"] == "2018-08-01"


DEFAULTS = {
    "activeDeadlineSeconds": 30,
    "script": {"image": "argoproj/argosay:v1", "command": ["sh"], "workingDir": "/src"},
    "container": {
        "image": "argoproj/argosay:v1",
        "command": ["sh", "-c"],
        "workingDir": "/src",
        "env": [{"name": "A", "value": "from-defaults"}, {"name": "B", "value": "b"}],
    },
}


def test_template_defaults_apply_their_own_types_fields_only() -> None:
    container = apply_template_defaults(
        DEFAULTS, {"name": "c", "container": {"args": ["pwd"], "env": [{"name": "A", "value": "own"}]}}
    )
    assert "script" not in container and container["activeDeadlineSeconds"] == 30
    assert container["container"] == {
        "image": "argoproj/argosay:v1",
        "command": ["sh", "-c"],
        "workingDir": "/src",
        "args": ["pwd"],
        "env": [{"name": "A", "value": "own"}, {"name": "B", "value": "b"}],  # merged by name (patchMergeKey)
    }
    script = apply_template_defaults(DEFAULTS, {"name": "s", "script": {"source": "pwd"}})
    assert "container" not in script and script["script"]["command"] == ["sh"]
    steps = apply_template_defaults(DEFAULTS, {"name": "m", "steps": [[{"name": "a", "template": "c"}]]})
    assert "container" not in steps and "script" not in steps and steps["activeDeadlineSeconds"] == 30


def test_template_default_image_runs(engine_settings: Settings) -> None:  # e2e TestTemplateDefaultImage
    manifest = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "template-default-"},
        "spec": {
            "entrypoint": "entrypoint",
            "templateDefaults": {k: v for k, v in DEFAULTS.items() if k != "activeDeadlineSeconds"},
            "templates": [
                {
                    "name": "entrypoint",
                    "steps": [
                        [
                            {"name": "test-script", "template": "test-script"},
                            {"name": "test-container", "template": "test-container"},
                        ]
                    ],
                },
                {"name": "test-script", "script": {"source": "pwd"}},
                {"name": "test-container", "container": {"args": ["pwd; echo $A"]}},
            ],
        },
    }
    run = run_workflow(manifest, engine_settings)
    assert run.phase == "Succeeded"
    assert run.node("test-script").outputs["result"] == "/src"
    assert run.node("test-container").outputs["result"] == "/src\nfrom-defaults"
