"""Manifests shared by the local platform tests (a uniquely named module: several areas have a ``conftest.py``)."""

from __future__ import annotations

from typing import Any


def greet_template(name: str = "greet") -> dict[str, Any]:
    """A WorkflowTemplate whose script step imports the project's ``greet`` and reads a ConfigMap."""
    env = [
        {"name": key.upper(), "valueFrom": {"configMapKeyRef": {"name": "greet-config", "key": key}}}
        for key in ("greeting", "MLFLOW_TRACKING_URI")
    ]
    source = (
        "import os, greet\n"
        "print(greet.hello('{{workflow.parameters.who}}'), os.environ['GREETING'], os.environ['MLFLOW_TRACKING_URI'])\n"
        "open('/tmp/accuracy', 'w').write(greet.score('{{inputs.parameters.epochs}}'))\n"
    )
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": {"name": name},
        "spec": {
            "entrypoint": "main",
            "arguments": {"parameters": [{"name": "who", "value": "world"}, {"name": "epochs", "value": "1"}]},
            "templates": [
                {
                    "name": "main",
                    "dag": {
                        "tasks": [
                            {
                                "name": "fit",
                                "template": "fit",
                                "arguments": {"parameters": [{"name": "epochs", "value": "{{workflow.parameters.epochs}}"}]},
                            }
                        ]
                    },
                },
                {
                    "name": "fit",
                    "inputs": {"parameters": [{"name": "epochs"}]},
                    "outputs": {"parameters": [{"name": "accuracy", "valueFrom": {"path": "/tmp/accuracy"}}]},
                    "script": {"image": "python:3.12", "command": ["python"], "env": env, "source": source},
                },
            ],
        },
    }


def greet_config(tracking: str = "http://mlflow.scanflow.svc.cluster.local:5000") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "greet-config", "namespace": "scanflow"},
        "data": {"greeting": "hi", "MLFLOW_TRACKING_URI": tracking},
    }
