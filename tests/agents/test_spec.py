"""Agent declarations: validation names the field; the compiler's protocol (rbac, config, secrets)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from scanflow_argo.errors import AgentDefinitionError
from scanflow_argo.spec.agent import (
    Agent,
    AllOf,
    AnyOf,
    ArgoRuns,
    Hysteresis,
    MlflowQuery,
    OnMessage,
    Plan,
    PromQuery,
    RateOfChange,
    RollDeployment,
    ScaleDeployment,
    SendMessage,
    SetModelAlias,
    SubmitWorkflow,
    Threshold,
    check_promql,
    parse_duration,
)


def test_durations() -> None:
    assert parse_duration("500ms") == 0.5
    assert parse_duration("2m") == 120
    assert parse_duration(3) == 3.0
    with pytest.raises(AgentDefinitionError, match="not a duration"):
        parse_duration("soon", "agent.interval")


@pytest.mark.parametrize(
    ("build", "field_name", "seconds"),
    [
        (lambda d: PromQuery("p", "up", interval=d), "interval", 90.0),
        (lambda d: PromQuery("p", "up", interval=1, range=d), "range", 90.0),
        (lambda d: Threshold("p", ">", 1, for_=d), "for_", 90.0),
        (lambda d: SubmitWorkflow("t", cooldown=d), "cooldown", 90.0),
        (lambda d: Agent("a", interval=d), "interval", 90.0),
    ],
)
def test_duration_fields_take_strings_and_read_as_seconds(build: Any, field_name: str, seconds: float) -> None:
    """A duration field accepts seconds or a string and always reads as seconds; a bad one names its object."""
    for written in (90, "90s", "1.5m"):
        assert getattr(build(written), field_name) == seconds
    with pytest.raises(
        AgentDefinitionError, match=rf"^(sensor|rule|action|agent) '[a-z0-9-]+'\.{field_name}: 'soon' is not a duration"
    ):
        build("soon")


def test_stale_after_defaults_to_three_intervals() -> None:
    assert PromQuery("p", "up", interval="10s").stale_after == 30.0
    assert PromQuery("p", "up", interval="10s", stale_after="1m").stale_after == 60.0


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("sum(rate(x[1m])", "unclosed"),
        ("rate(x[1m]))", "unbalanced"),
        ('x{a="b}', "unterminated"),
        ("sum(ratee(x[1m]))", "unknown PromQL function 'ratee'"),
        ("  ", "empty"),
    ],
)
def test_bad_promql_is_refused(query: str, message: str) -> None:
    with pytest.raises(AgentDefinitionError, match=message):
        check_promql(query)


def test_good_promql_passes() -> None:
    check_promql('histogram_quantile(0.95, sum by (le) (rate(x_bucket{deployment_name="mnist", a=~"(b|c)"}[1m])))')
    check_promql("sum(rate(a[5m])) / sum(rate(b[5m])) > bool 0.5")


def test_unknown_sensor_in_rule_names_field() -> None:
    with pytest.raises(AgentDefinitionError, match=r"rules\[0\].*unknown sensor 'acc'.*known: accuracy"):
        Agent("a", sensors=[PromQuery("accuracy", "up")], rules=[Threshold("acc", "<", 0.8)])


def test_unknown_rule_in_plan_and_bad_placeholder() -> None:
    s = [PromQuery("x", "up")]
    with pytest.raises(AgentDefinitionError, match=r"plans\[0\].when: unknown rule 'nope'"):
        Agent("a", sensors=s, rules=[Threshold("x", ">", 1, name="hi")], plans=[Plan("nope", [SubmitWorkflow("t")])])
    with pytest.raises(AgentDefinitionError, match=r"parameters.p: unknown placeholder \{sensor.y\}"):
        Agent(
            "a",
            sensors=s,
            rules=[Threshold("x", ">", 1, name="hi")],
            plans=[Plan("hi", [SubmitWorkflow("t", {"p": "{sensor.y}"})])],
        )


def test_impossible_bounds_and_bad_values() -> None:
    with pytest.raises(AgentDefinitionError, match=r"max_replicas.*impossible bounds"):
        ScaleDeployment("mnist", "p95", 0.2, min_replicas=5, max_replicas=2)
    with pytest.raises(AgentDefinitionError, match="clear: equals fire"):
        Hysteresis("x", fire=1, clear=1)
    with pytest.raises(AgentDefinitionError, match="op"):
        Threshold("x", "=>", 1)
    with pytest.raises(AgentDefinitionError, match="max_concurrent"):
        SubmitWorkflow("t", max_concurrent=0)
    with pytest.raises(AgentDefinitionError, match="replicas"):
        Agent("a", replicas=0)
    with pytest.raises(AgentDefinitionError, match=r"agent\.name"):
        Agent("Bad_Name")
    with pytest.raises(AgentDefinitionError, match="schedule"):
        PromQuery("x", "up", schedule="every monday")
    with pytest.raises(AgentDefinitionError, match="range"):
        PromQuery("x", "up", range="1s", step="5s")


def test_rbac_is_least_privilege_and_exact() -> None:
    agent = Agent(
        "all-actions",
        sensors=[PromQuery("x", "up"), ArgoRuns("runs", {"app": "mnist"})],
        rules=[Threshold("x", ">", 1, name="hi")],
        plans=[
            Plan("hi", [SubmitWorkflow("mnist-retrain"), RollDeployment("mnist", "models:/mnist@champion")]),
            Plan(None, [ScaleDeployment("mnist", "x", 1.0)]),
        ],
        replicas=2,
    )
    rules = agent.rbac_rules()
    # no watch (nothing watches); everything that can be named is named (create cannot: its requests carry no name)
    assert {"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["create", "get", "list"]} in rules
    named = {
        "apiGroups": ["argoproj.io"],
        "resources": ["workflowtemplates"],
        "resourceNames": ["mnist-retrain"],
        "verbs": ["get"],
    }
    assert named in rules
    sdep = {"resources": ["seldondeployments"], "resourceNames": ["mnist"], "verbs": ["get", "patch"]}
    assert {"apiGroups": ["machinelearning.seldon.io"], **sdep} in rules
    assert {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]} in rules
    lease = {"resources": ["leases"], "resourceNames": ["scanflow-agent-all-actions"], "verbs": ["get", "update"]}
    assert {"apiGroups": ["coordination.k8s.io"], **lease} in rules
    assert all("*" not in v for r in rules for v in r["verbs"] + r["resources"] + r["apiGroups"])
    # A message-only agent needs no Kubernetes permission but its own state ConfigMap, by name.
    quiet = Agent("planner", rules=[OnMessage("drift")], plans=[Plan("on-drift", [SendMessage("executor", "retrain")])])
    assert quiet.rbac_rules() == [
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["planner-state"], "verbs": ["get", "update"]}
    ]


def test_config_is_json_and_secret_env() -> None:
    agent = Agent("a", sensors=[PromQuery("x", "up", interval="1s")], rules=[Threshold("x", ">", 1, for_="2s")])
    config = json.loads(json.dumps(agent.declaration()))
    assert config["sensors"][0]["interval"] == 1.0
    assert config["rules"][0]["for_"] == 2.0
    assert agent.secret_env() == {"SCANFLOW_AGENT_TOKEN": ("scanflow-agent-token", "token")}
    assert (agent.name, agent.replicas, agent.port, agent.entrypoint) == ("a", 1, 8080, "")


def test_a_compiled_agent_needs_an_entrypoint() -> None:
    """No silent default pointing at the MNIST agent: config() (what the compiler reads) refuses, naming the fix."""
    agent = Agent("mine", sensors=[PromQuery("x", "up")], rules=[Threshold("x", ">", 1)])
    with pytest.raises(AgentDefinitionError, match=r"agent 'mine'\.entrypoint: required.*@agent_factory"):
        agent.config()
    assert agent.declaration()["name"] == "mine"  # the runtime's own record needs none
    assert Agent("mine", entrypoint="mypkg.agents:mine").config()["entrypoint"] == "mypkg.agents:mine"
    with pytest.raises(AgentDefinitionError, match=r"entrypoint: 'not a ref'"):
        Agent("mine", entrypoint="not a ref")


def test_agent_factory_records_its_arguments_and_entrypoint() -> None:
    from agents.mnist import drift_supervisor, make_throughput_scaler

    scaler = make_throughput_scaler(slo=0.3, max_replicas=6, interval="2s")
    config = json.loads(json.dumps(scaler.config()))
    assert config["factory"] == "agents.mnist:make_throughput_scaler"
    assert config["factory_args"]["slo"] == 0.3 and config["factory_args"]["max_replicas"] == 6
    assert config["factory_args"]["down_stabilization"] == "3m"  # defaults included
    assert scaler.entrypoint == "agents.mnist:throughput_scaler"  # explicit entrypoint kept
    assert drift_supervisor.factory == "agents.mnist:make_drift_supervisor"

    def nested() -> Agent:  # the pod could not import it
        return Agent("n")

    from scanflow_argo.spec.agent import agent_factory

    with pytest.raises(AgentDefinitionError, match="module level"):
        agent_factory(nested)


def test_both_styles_are_natural() -> None:
    """One agent does it all, or a MAPE-K chain hands over by messages."""
    sensors = [PromQuery("drift", "max(drift_score)", interval="1s")]
    high = Hysteresis("drift", fire=0.5, clear=0.3, name="drift-high")
    all_in_one = Agent(
        "supervisor",
        sensors=sensors,
        rules=[high],
        plans=[Plan("drift-high", [SubmitWorkflow("mnist-retrain", {"feedback_window": "{window}"})])],
    )
    monitor = Agent(
        "monitor",
        role="monitor",
        sensors=sensors,
        rules=[high],
        plans=[Plan("drift-high", [SendMessage("analyser", "drift", {"window": "{window}", "score": "{sensor.drift}"})])],
    )
    analyser = Agent(
        "analyser",
        role="analyser",
        rules=[OnMessage("drift", name="on-drift")],
        plans=[Plan("on-drift", [SendMessage("executor", "retrain", {"window": "{message.window}"})])],
    )
    executor = Agent(
        "executor",
        role="executor",
        rules=[OnMessage("retrain", name="on-retrain")],
        plans=[
            Plan(
                "on-retrain",
                [
                    SubmitWorkflow("mnist-retrain", {"feedback_window": "{message.window}"}),
                    SetModelAlias("mnist", "candidate", "{message.version}"),
                ],
            )
        ],
    )
    assert [a.role for a in (all_in_one, monitor, analyser, executor)] == ["all", "monitor", "analyser", "executor"]


def test_combinations_and_other_sensors() -> None:
    a = Threshold("x", "<", 0.8, for_="1s")
    b = RateOfChange("x", "<", -0.1, per="1s", window="5s")
    assert AnyOf(a, b).sensors() == ("x", "x")
    assert AllOf(a, b, name="both").name == "both"
    with pytest.raises(AgentDefinitionError, match="at least two"):
        AnyOf(a)
    assert MlflowQuery("champion", "mnist").interval == 60.0
