"""Steps inside steps, in parallel groups (after hera examples/workflows/steps/inner_steps.py)."""

from hera.workflows import Container, Parameter, Step, Steps, Workflow

with Workflow(generate_name="corpus-steps-", entrypoint="outer") as w:
    say = Container(
        name="say", image="alpine:3.20", command=["echo"], args=["{{inputs.parameters.m}}"], inputs=[Parameter(name="m")]
    )
    with Steps(name="inner") as inner:
        say(name="i1", arguments={"m": "inner-1"})
        with inner.parallel():
            say(name="i2a", arguments={"m": "inner-2a"})
            say(name="i2b", arguments={"m": "inner-2b"})
    with Steps(name="outer"):
        Step(name="first", template=inner)
        say(name="last", arguments={"m": "outer"})

EXPECT = {"i1": "inner-1", "i2a": "inner-2a", "i2b": "inner-2b", "last": "outer"}
