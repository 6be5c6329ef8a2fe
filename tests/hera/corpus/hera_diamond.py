"""A DAG diamond of scripts wired with >> (after hera examples/workflows/dags/dag_diamond_with_script.py)."""

from hera.workflows import DAG, Workflow, script


@script()
def echo(message: str):
    print(message)


with Workflow(generate_name="corpus-diamond-", entrypoint="diamond") as w, DAG(name="diamond"):
    a = echo(name="a", arguments={"message": "A"})
    b = echo(name="b", arguments={"message": "B"})
    c = echo(name="c", arguments={"message": "C"})
    d = echo(name="d", arguments={"message": "D"})
    a >> [b, c] >> d

EXPECT = {"a": "A", "b": "B", "c": "C", "d": "D"}
