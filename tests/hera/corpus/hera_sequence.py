"""``withSequence`` and a ``{{=expression}}`` argument (after hera examples/workflows/loops/with_sequence.py
and misc/complex_expr.py)."""

from hera.workflows import Container, Parameter, Steps, Workflow, models

with Workflow(generate_name="corpus-sequence-", entrypoint="main", arguments=Parameter(name="n", value="3")) as w:
    show = Container(
        name="show", image="alpine:3.20", command=["echo"], args=["{{inputs.parameters.i}}"], inputs=[Parameter(name="i")]
    )
    with Steps(name="main"):
        show(
            name="count",
            arguments={"i": "{{=asInt(item) * 10}}"},
            with_sequence=models.Sequence(count="{{workflow.parameters.n}}", start="1"),
        )

EXPECT = {"count(0:1)": "10", "count(2:3)": "30"}
