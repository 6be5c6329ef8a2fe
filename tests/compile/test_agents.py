"""What the compiler makes of a real agent (``scanflow_argo.spec.agent.Agent``): its state ConfigMap (created
empty, never holding ``state.json``), a Role that is exactly ``agent.rbac_rules()``, the pod's identity in its
environment, a Deployment strategy that never runs two single-replica agents at once, the factory in its
ConfigMap, and a missing entrypoint reported as a validation issue naming the agent."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from _compile_helpers import build_app

from scanflow_argo.cli import main
from scanflow_argo.cli.compile import load_app
from scanflow_argo.compile import compile_app, dump_yaml
from scanflow_argo.compile.kube import check_rules
from scanflow_argo.errors import CompileError, ValidationError
from scanflow_argo.spec.agent import Agent, ArgoRuns, Plan, SubmitWorkflow, Threshold


def watcher(replicas: int = 1, entrypoint: str = "agents.demo:watcher") -> Agent:
    return Agent(
        "watcher",
        sensors=[ArgoRuns("runs", {"app": "demo"})],
        rules=[Threshold("runs", ">", 3, name="busy")],
        plans=[Plan("busy", [SubmitWorkflow("demo-template", name="retrain")])],
        replicas=replicas,
        entrypoint=entrypoint,
    )


def by(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (hit,) = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    return hit


def agent_container(objs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return by(objs, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]


def test_state_config_map_is_created_empty() -> None:
    agent = watcher()
    objs = compile_app(build_app(agent))
    state = by(objs, "ConfigMap", agent.state_config_map())
    dep = by(objs, "Deployment", "watcher")
    assert state == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "watcher-state", "namespace": "demo-ns", "labels": dep["metadata"]["labels"]},
    }
    # no ``data`` (not even ``{}``): re-applying the manifests leaves the agent's stored state.json alone
    written = yaml.safe_load(dump_yaml(state))
    assert "data" not in written and "binaryData" not in written and "state.json" not in dump_yaml(state)


def test_role_is_exactly_the_agents_rules_and_names_its_state() -> None:
    agent = watcher()
    objs = compile_app(build_app(agent))
    role = by(objs, "Role", "watcher")
    assert role["rules"] == agent.rbac_rules()
    (state_rule,) = [r for r in role["rules"] if r["resources"] == ["configmaps"]]
    assert state_rule == {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "resourceNames": ["watcher-state"],
        "verbs": ["get", "update"],
    }
    assert by(objs, "ConfigMap", state_rule["resourceNames"][0])  # the one it may update is the one compiled


def test_pod_knows_its_name_and_address() -> None:
    env = {e["name"]: e for e in agent_container(compile_app(build_app(watcher())), "watcher")["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert "value" not in env["POD_IP"]


def test_one_replica_is_recreated_never_rolled() -> None:
    dep = by(compile_app(build_app(watcher())), "Deployment", "watcher")
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"] == {"type": "Recreate"}  # a surge pod would act beside the old one


def test_replicas_roll_under_leader_election() -> None:
    agent = watcher(replicas=3)
    objs = compile_app(build_app(agent))
    dep = by(objs, "Deployment", "watcher")
    assert dep["spec"]["replicas"] == 3 and dep["spec"]["strategy"] == {"type": "RollingUpdate"}
    rules = by(objs, "Role", "watcher")["rules"]
    assert rules == agent.rbac_rules()  # unchanged: the agent already asks for its Lease
    # its own Lease by name (get/update); create carries no name, so it cannot be narrowed
    assert {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]} in rules
    lease = {"resources": ["leases"], "resourceNames": ["scanflow-agent-watcher"], "verbs": ["get", "update"]}
    assert {"apiGroups": ["coordination.k8s.io"], **lease} in rules


def test_mnist_agents_carry_their_factory() -> None:
    objs = compile_app(load_app("pipelines.mnist:app"))
    for name, factory in (
        ("drift-supervisor", "agents.mnist:make_drift_supervisor"),
        ("throughput-scaler", "agents.mnist:make_throughput_scaler"),
    ):
        config = json.loads(by(objs, "ConfigMap", f"{name}-config")["data"]["agent.json"])
        assert config["factory"] == factory and config["factory_args"], name
        assert agent_container(objs, name)["command"][-1] == config["entrypoint"], name
        assert "data" not in by(objs, "ConfigMap", f"{name}-state")


def test_missing_entrypoint_is_a_validation_issue_naming_the_agent() -> None:
    app = build_app(watcher(entrypoint=""))
    with pytest.raises(ValidationError) as info:
        compile_app(app)
    (issue,) = [i for i in info.value.issues if i.where == "agent 'watcher'"]
    assert "entrypoint is not set" in issue.problem and "@agent_factory" in issue.fix
    with pytest.raises(CompileError, match=r"agent 'watcher'\.entrypoint: required to compile it"):
        compile_app(app, validate=False)


def test_missing_entrypoint_in_the_cli_is_a_message_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "noentry_app.py").write_text(
        textwrap.dedent(
            """
            from scanflow_argo.spec import Application
            from scanflow_argo.spec.agent import Agent, ArgoRuns

            app = Application("noentry", agents=[Agent("lonely", sensors=[ArgoRuns("runs")])])
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["compile", "noentry_app:app", "-o", str(tmp_path / "out"), "--no-schema-check"]) == 1
    err = capsys.readouterr().err
    assert "agent 'lonely': entrypoint is not set" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "deployment-lonely.yaml").exists()


def test_rbac_checker_takes_resource_names_and_refuses_wildcards() -> None:
    check_rules("agent 'a'", watcher().rbac_rules())  # resourceNames is fine
    bad = [
        ({"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["*"], "verbs": ["get"]}, "resourceNames"),
        ({"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [], "verbs": ["get"]}, "resourceNames"),
        ({"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a-state"], "verbs": ["*"]}, "verbs"),
        ({"apiGroups": [""], "resources": ["*"], "resourceNames": ["a-state"], "verbs": ["get"]}, "resources"),
        ({"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a-state"], "verbs": ["create"]}, "create"),
    ]
    for rule, needle in bad:
        with pytest.raises(CompileError, match=needle):
            check_rules("agent 'a'", [rule])


def test_wildcard_resource_names_are_a_validation_issue() -> None:
    from _compile_helpers import StandInAgent

    agent = StandInAgent(rules=[{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["*"], "verbs": ["get"]}])
    with pytest.raises(ValidationError) as info:
        build_app(agent).validate()
    assert [str(i) for i in info.value.issues if "resourceNames" in i.problem] == [
        "agent 'drift-watch': RBAC rule 0 has a wildcard in resourceNames — list the exact resources and verbs its actuators need"
    ]
