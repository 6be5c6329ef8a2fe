"""A script with a default parameter and generate_name (after hera examples/workflows/misc/hello_world.py)."""

from hera.workflows import Steps, Workflow, script


@script()
def greet(name: str = "world"):
    print(f"Hello, {name}!")


with Workflow(generate_name="corpus-hello-", entrypoint="steps") as w, Steps(name="steps"):
    greet(arguments={"name": "corpus"})

EXPECT = {"greet": "Hello, corpus!"}
