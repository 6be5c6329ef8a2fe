"""Validation before compiling: each error, with its message, and all of them at once."""

from __future__ import annotations

import pytest
from _compile_helpers import StandInAgent, check, consume, produce

from scanflow_argo.compile import compile_app
from scanflow_argo.errors import ValidationError
from scanflow_argo.spec import (
    Application,
    ArtifactIn,
    ArtifactOut,
    CronWorkflow,
    Output,
    Param,
    Retry,
    Service,
    Workflow,
    WorkflowTemplate,
    container,
    step,
)


@step(outputs={"n": int, "flag": bool})
def numbers() -> dict:
    return {"n": 1, "flag": True}


@step
def wants_bool(flag: bool) -> None:
    print(flag)


@step
def wants_int(n: int) -> None:
    print(n)


@step
def needs(value: str, other: str) -> None:
    print(value, other)


@step
def make_artifact(out: ArtifactOut) -> None:
    print(out)


@step
def take_artifact(inp: ArtifactIn) -> None:
    print(inp)


def issues_of(app: Application) -> list[str]:
    with pytest.raises(ValidationError) as info:
        app.validate()
    return [str(i) for i in info.value.issues]


def single(app_issues: list[str], *needles: str) -> str:
    hits = [i for i in app_issues if all(n in i for n in needles)]
    assert hits, f"no issue with {needles} in:\n" + "\n".join(app_issues)
    return hits[0]


def test_valid_app_passes(demo_app: Application) -> None:
    demo_app.validate()


def test_cycle_is_reported_with_its_path() -> None:
    with Workflow("loop") as wf:
        a = consume(value="x").named("a")
        b = consume(value="y").named("b")
        c = consume(value="z").named("c")
        a >> b >> c
        c >> a
    msg = single(issues_of(Application("app", workflows=[wf])), "cycle")
    assert "Workflow 'loop'" in msg and "a -> b -> c -> a" in msg and "remove one of these dependencies" in msg


def test_duplicate_step_names() -> None:
    with Workflow("dup") as wf:
        consume(value="x")
        consume(value="y")
    msg = single(issues_of(Application("app", workflows=[wf])), "duplicate step name")
    assert "step 'consume'" in msg and ".named(" in msg


def test_unknown_step_in_explicit_dependency() -> None:
    with Workflow("other") as other:
        foreign = consume(value="x")
    with Workflow("wf") as wf:
        consume(value="y").named("mine").after(foreign)
    msg = single(issues_of(Application("app", workflows=[wf, other])), "unknown step")
    assert "Workflow 'wf', step 'mine'" in msg


def test_unknown_step_in_when_expression() -> None:
    with Workflow("wf") as wf:
        consume(value="y").when("{{tasks.ghost.outputs.parameters.ok}} == true")
    msg = single(issues_of(Application("app", workflows=[wf])), "when references unknown step 'ghost'")
    assert "step 'consume'" in msg


@pytest.mark.parametrize("bad", ["Train", "train_model", "-x", "a" * 64])
def test_names_must_be_dns_1123(bad: str) -> None:
    with Workflow(bad) as wf:
        consume(value="x").named(bad)
    found = issues_of(Application("app", workflows=[wf]))
    assert any("name is not a DNS-1123 label" in i and f"Workflow {bad!r}" in i for i in found)
    assert any(f"step {bad!r}" in i and "DNS-1123" in i for i in found)


def test_app_and_service_names_must_be_dns_1123() -> None:
    app = Application("My_App", namespace="Bad NS", services=[Service("Model!", "models:/m@champion")])
    found = issues_of(app)
    single(found, "application 'My_App'", "name 'My_App' is not a DNS-1123 label")
    single(found, "namespace 'Bad NS'")
    single(found, "service 'Model!'", "DNS-1123")


def test_missing_required_parameter_of_a_step() -> None:
    with Workflow("wf") as wf:
        needs(value="x")
    msg = single(issues_of(Application("app", workflows=[wf])), "missing required parameter 'other'")
    assert "step 'needs'" in msg and "pass other=" in msg


def test_missing_required_workflow_parameter() -> None:
    with Workflow("wf", parameters=[Param("who", str)]) as wf:
        consume(value=wf.params.who)
    msg = single(issues_of(Application("app", workflows=[wf])), "parameter 'who'", "no default and no value")
    assert "give it a default" in msg


def test_missing_required_template_parameter_in_cron() -> None:
    with WorkflowTemplate("tpl", parameters=[Param("who", str, description="who")]) as tpl:
        consume(value=tpl.params.who)
    cron = CronWorkflow("nightly", schedule="0 1 * * *", template=tpl)
    msg = single(issues_of(Application("app", workflows=[tpl, cron])), "missing required parameter 'who'")
    assert "CronWorkflow 'nightly'" in msg


def test_when_referencing_missing_output() -> None:
    with Workflow("wf") as wf:
        n = numbers()
        consume(value="x").when(f"{n.out.nope} == 1")
    msg = single(issues_of(Application("app", workflows=[wf])), "output 'nope'", "does not exist")
    assert msg.startswith("Workflow 'wf', step 'consume': when references")
    assert "has parameter outputs: n, flag" in msg


def test_fan_out_referencing_missing_output() -> None:
    with Workflow("wf") as wf:
        n = numbers()
        consume(value="{{item}}").for_each(n.out.missing)
    msg = single(issues_of(Application("app", workflows=[wf])), "fan-out references output 'missing'")
    assert "step 'consume'" in msg


def test_argument_referencing_missing_artifact() -> None:
    with Workflow("wf") as wf:
        m = make_artifact()
        take_artifact(inp=m.out["not-there"])
    found = issues_of(Application("app", workflows=[wf]))
    single(found, "step 'take-artifact'", "is an artifact but gets")


def test_type_mismatch_int_into_bool() -> None:
    with Workflow("wf") as wf:
        n = numbers()
        wants_bool(flag=n.out.n)
    msg = single(issues_of(Application("app", workflows=[wf])), "type mismatch")
    assert "argument 'flag' expects bool but output 'n' of step 'numbers' is int" in msg
    assert "step 'wants-bool'" in msg


def test_type_mismatch_from_workflow_parameter_and_literal() -> None:
    with Workflow("wf", parameters=[Param("flag", bool, True)]) as wf:
        wants_int(n=wf.params.flag)
        wants_int(n="twelve").named("literal")
    found = issues_of(Application("app", workflows=[wf]))
    single(found, "expects int but workflow parameter 'flag' is bool")
    single(found, "step 'literal'", "value 'twelve' is not a int")


def test_int_feeds_float_and_anything_feeds_str() -> None:
    @step
    def wants_float(x: float) -> None:
        print(x)

    with Workflow("wf") as wf:
        n = numbers()
        wants_float(x=n.out.n)
        consume(value=n.out.flag)
    Application("app", workflows=[wf]).validate()


def test_unknown_argument() -> None:
    with Workflow("wf") as wf:
        consume(value="x", colour="red")
    msg = single(issues_of(Application("app", workflows=[wf])), "unknown argument 'colour'")
    assert "takes: value" in msg


def test_template_parameters_need_descriptions() -> None:
    with WorkflowTemplate("tpl", parameters=[Param("n", int, 1)]) as wf:
        wants_int(n=wf.params.n)
    msg = single(issues_of(Application("app", workflows=[wf])), "parameter 'n'", "has no description")
    assert msg.startswith("WorkflowTemplate 'tpl'") and "description=" in msg


def test_enum_default_and_bad_retry_and_cron() -> None:
    with Workflow("wf", parameters=[Param("colour", str, "red", enum=("blue", "green"))]) as wf:
        consume(value=wf.params.colour)
    bad_retry = container("bad", "alpine:3", ["true"], retry=Retry(policy="Sometimes"), timeout=0)
    with Workflow("wf2") as wf2:
        bad_retry()
    cron = CronWorkflow("cron", schedule="every day", timezone="Mars/Olympus", concurrency_policy="Maybe", template="nope")
    found = issues_of(Application("app", workflows=[wf, wf2, cron]))
    single(found, "default 'red' is not one of its enum")
    single(found, "retry policy 'Sometimes' is invalid")
    single(found, "timeout 0 is not positive")
    single(found, "schedule 'every day' is not a cron expression")
    single(found, "timezone 'Mars/Olympus' is unknown")
    single(found, "concurrency_policy 'Maybe' is invalid")
    single(found, "runs WorkflowTemplate 'nope', which the application does not define")


def test_reserved_and_clashing_template_names() -> None:
    @step(name="main")
    def first() -> None:
        pass

    @step(name="consume")
    def impostor(value: str) -> None:
        print(value)

    with Workflow("wf") as wf:
        first()
        consume(value="a")
        impostor(value="b").named("second")
    found = issues_of(Application("app", workflows=[wf]))
    single(found, "step template 'main'", "reserved")
    single(found, "step template 'consume'", "two different steps share this name")


def test_agent_wildcards_and_inline_secrets() -> None:
    agent = StandInAgent(rules=[{"apiGroups": ["*"], "resources": ["pods"], "verbs": ["*"]}])
    svc = Service("m", "models:/m@champion", env={"DB_PASSWORD": "hunter2"})
    found = issues_of(Application("app", services=[svc], agents=[agent]))
    single(found, "agent 'drift-watch'", "wildcard in apiGroups")
    single(found, "agent 'drift-watch'", "wildcard in verbs")
    msg = single(found, "env 'DB_PASSWORD' looks secret")
    assert "hunter2" not in msg and "secrets=" in msg


def test_every_issue_is_reported_at_once() -> None:
    with Workflow("Bad_Name") as wf:
        n = numbers()
        wants_bool(flag=n.out.n)
        needs(value="x")
        consume(value="y").when(f"{n.out.ghost} == 1")
    with pytest.raises(ValidationError) as info:
        compile_app(Application("app", workflows=[wf]))
    err = info.value
    assert len(err.issues) >= 4
    text = str(err)
    for needle in ("DNS-1123", "type mismatch", "missing required parameter 'other'", "output 'ghost'"):
        assert needle in text
    assert f"{len(err.issues)} issue(s)" in text


def test_duplicate_workflows_and_outputs_of_container_steps() -> None:
    with pytest.raises(Exception, match="needs path="):
        container("c", "alpine:3", outputs=[Output("x", int)])
    with Workflow("same") as a:
        consume(value="x")
    with Workflow("same") as b:
        consume(value="x")
    single(issues_of(Application("app", workflows=[a, b])), "two workflows of kind Workflow are named 'same'")


def test_steps_called_outside_workflow_run_the_function() -> None:
    assert check.fn is not None
    assert numbers() == {"n": 1, "flag": True}
    assert produce.name == "produce" and [p.name for p in produce.inputs] == ["n"]


def test_exit_handler_cannot_read_dag_tasks() -> None:
    with Workflow("wf") as wf:
        n = numbers()
        wf.on_exit(consume, value=n.out.n)
    msg = single(issues_of(Application("app", workflows=[wf])), "exit handler 'consume'", "unknown step 'numbers'")
    assert msg.startswith("Workflow 'wf'")


def test_a_step_output_named_result_is_refused() -> None:
    """``task.out.result`` is Argo's ``outputs.result`` (stdout): an Output named ``result`` could never be read."""
    from scanflow_argo.errors import ValidationError
    from scanflow_argo.spec import Application, Workflow, step

    @step(outputs={"result": int})
    def compute() -> dict:
        return {"result": 1}

    with Workflow("shadowed") as wf:
        compute()
    with pytest.raises(ValidationError) as err:
        Application("app", workflows=[wf]).validate()
    assert "output 'result' is shadowed by Argo's outputs.result (what the step printed)" in str(err.value)
    assert "rename it (e.g. 'result_value')" in str(err.value)


def test_a_fanned_out_output_is_a_list_to_later_steps() -> None:
    """Argo hands a later step all of a fan-out's outputs as one JSON list (operator.go processAggregateNodeOutputs):
    a ``list`` argument takes it, an ``int`` one does not."""
    from scanflow_argo.errors import ValidationError
    from scanflow_argo.spec import ITEM, Application, Workflow, step

    @step(outputs={"square": int})
    def square(n: int) -> int:
        return n * n

    @step
    def add_up(squares: list) -> None:
        print(sum(int(s) for s in squares))

    @step
    def one(value: int) -> None:
        print(value)

    with Workflow("fan-in") as ok:
        each = square(n=ITEM).for_each([1, 2, 3])
        add_up(squares=each.out.square)
    Application("app", workflows=[ok]).validate()
    with Workflow("fan-in-bad") as bad:
        each = square(n=ITEM).for_each([1, 2, 3])
        one(value=each.out.square)
    with pytest.raises(ValidationError, match="argument 'value' expects int but output 'square' of step 'square' is json"):
        Application("app", workflows=[bad]).validate()
