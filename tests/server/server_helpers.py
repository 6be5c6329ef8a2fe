"""Helpers of the server tests (a uniquely named module: several test areas have a ``conftest.py``): what a test
needs to reach a running server, and small Argo manifests."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from scanflow_argo.agents.canary import RolloutDriver
from scanflow_argo.agents.rollouts import RolloutBook
from scanflow_argo.agents.state import AgentState
from scanflow_argo.agents.testing import InMemoryPlatform
from scanflow_argo.platform.local import LocalPlatform
from scanflow_argo.server import ArgoServer
from scanflow_argo.serving.controller import deployment_manifest, parse_predictors, spec_document
from scanflow_argo.settings import Settings

NAMESPACE = "argo"


def server_settings(home: Path) -> Settings:
    """Settings of a server under test: its own home, no MLflow tracking, four nodes at once."""
    s = Settings.from_env(environ={}).with_home(home)
    return replace(s, tracking=replace(s.tracking, enabled=False), engine=replace(s.engine, parallelism=4))


@dataclass
class Served:
    """A running server and what a test needs to reach it."""

    server: ArgoServer
    settings: Settings
    platform: LocalPlatform
    token: str

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, token: str | None = "") -> httpx.Client:
        """An HTTP client with the token (``None``: without any, a string: that one)."""
        given = self.token if token == "" else token
        headers = {"Authorization": f"Bearer {given}"} if given else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def wait(
        self, name: str, timeout: float = 30.0, phases: tuple[str, ...] = ("Succeeded", "Failed", "Error")
    ) -> dict[str, Any]:
        """Poll the API until the workflow reaches one of ``phases``."""
        deadline = time.monotonic() + timeout
        with self.client() as c:
            while True:
                doc = c.get(f"/api/v1/workflows/{NAMESPACE}/{name}").json()
                if (doc.get("status") or {}).get("phase") in phases:
                    return doc
                if time.monotonic() > deadline:
                    raise AssertionError(f"{name} still {doc.get('status', {}).get('phase')} after {timeout}s")
                time.sleep(0.1)


def shell_workflow(script: str, generate: str = "t-", **meta: Any) -> dict[str, Any]:
    """A one-pod Workflow running ``script`` in ``alpine`` (the engine maps it to /bin/sh)."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": generate, **meta},
        "spec": {
            "entrypoint": "main",
            "templates": [{"name": "main", "container": {"image": "alpine:3", "command": ["sh", "-c", script]}}],
        },
    }


def steps_workflow(second: str = "exit 0", generate: str = "steps-", first: str = "echo one done") -> dict[str, Any]:
    """Two steps one after the other: ``one`` prints, ``two`` runs ``second`` (``exit 1`` to fail it)."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": generate},
        "spec": {
            "entrypoint": "main",
            "templates": [
                {"name": "main", "steps": [[{"name": "one", "template": "one"}], [{"name": "two", "template": "two"}]]},
                {"name": "one", "container": {"image": "alpine:3", "command": ["sh", "-c", first]}},
                {"name": "two", "container": {"image": "alpine:3", "command": ["sh", "-c", f"echo two; {second}"]}},
            ],
        },
    }


def greet_template(name: str = "greet", namespace: str = NAMESPACE) -> dict[str, Any]:
    """A WorkflowTemplate with described parameters, one of them an enum (the Argo UI's dropdown)."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "greet"}},
        "spec": {
            "entrypoint": "main",
            "arguments": {
                "parameters": [
                    {"name": "who", "value": "world", "description": "whom to greet"},
                    {"name": "mood", "value": "happy", "enum": ["happy", "sad", "calm"], "description": "how to greet them"},
                ]
            },
            "templates": [
                {
                    "name": "main",
                    "dag": {
                        "tasks": [
                            {"name": "say", "template": "say"},
                            {
                                "name": "sign",
                                "template": "echo",
                                "dependencies": ["say"],
                                "arguments": {"parameters": [{"name": "text", "value": "signed"}]},
                            },
                            {
                                "name": "count",
                                "template": "echo",
                                "dependencies": ["say"],
                                "arguments": {"parameters": [{"name": "text", "value": "counted"}]},
                            },
                            {
                                "name": "thank",
                                "template": "echo",
                                "depends": "sign && count.Succeeded",
                                "arguments": {"parameters": [{"name": "text", "value": "thanks"}]},
                            },
                        ]
                    },
                },
                {
                    "name": "say",
                    "container": {
                        "image": "alpine:3",
                        "command": ["sh", "-c", "echo hello {{workflow.parameters.who}}, {{workflow.parameters.mood}}"],
                    },
                },
                {
                    "name": "echo",
                    "inputs": {"parameters": [{"name": "text"}]},
                    "container": {"image": "alpine:3", "command": ["sh", "-c", "echo {{inputs.parameters.text}}"]},
                },
            ],
        },
    }


def write_deployment(home: Path, status: dict[str, Any], namespace: str = "default") -> None:
    """A local ``mnist`` deployment (2 replicas of ``models:/mnist@champion``) as ``LocalDeployments.apply``
    records it, with ``status`` as its supervisor's last report, and no supervisor running."""
    manifest = deployment_manifest("mnist", "models:/mnist@champion", 2, namespace)
    every = parse_predictors(manifest, namespace)
    folder = home / "deployments" / "mnist"
    folder.mkdir(parents=True)
    spec = spec_document(manifest, every, {p.model_uri: str(home / "models") for p in every}, 1, 1, 0)
    (folder / "spec.json").write_text(json.dumps(spec))
    (folder / "status.json").write_text(json.dumps(status))


HELD = {  # Inconclusive: neither condition holds for the measured 0.7, so the roll-out pauses at its first step
    "name": "accuracy",
    "provider": {"prometheus": {"query": "canary_accuracy"}},
    "successCondition": "result[0] >= 0.9",
    "failureCondition": "result[0] < 0.5",
}


def drive_rollout(home: Path, agent: str = "roller") -> AgentState:
    """A roll-out of ``mnist`` to ``models:/mnist/3`` (50 % then 100 %) driven by the agent's own driver until its
    analysis pauses it at 50 %; the book is the agent's state file in ``home``."""
    platform = InMemoryPlatform()
    platform.add_deployment("mnist", replicas=2, model_uri="models:/mnist/2")
    state = AgentState(home / "agents" / agent)
    driver = RolloutDriver(
        RolloutBook(state),
        platform,
        "http://127.0.0.1:9",
        set_alias=lambda *_: None,
        get_alias=lambda *_: None,
        record=lambda _: None,
        query=lambda url, query, now: [0.7],
    )
    spec = {"deployment": "mnist", "steps": [{"setWeight": 50}, {"setWeight": 100}], "analysis": [HELD]}
    driver.start(spec, "models:/mnist/3", "3", 1000.0)
    driver.tick(1001.0)
    assert driver.book.get("mnist")["state"]["phase"] == "Paused"
    return state
