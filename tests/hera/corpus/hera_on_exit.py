"""An exit handler that reads ``workflow.status`` (after hera examples/workflows/misc/workflow_on_exit.py)."""

from hera.workflows import Container, Steps, Workflow

with Workflow(generate_name="corpus-on-exit-", entrypoint="main", on_exit="bye") as w:
    Container(name="bye", image="alpine:3.20", command=["sh", "-c", "echo status={{workflow.status}}"])
    hello = Container(name="hello", image="alpine:3.20", command=["echo", "hello"])
    with Steps(name="main"):
        hello()

EXPECT = {"hello": "hello", "corpus-on-exit-*.onExit": "status=Succeeded"}
