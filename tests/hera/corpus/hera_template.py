"""A Hera WorkflowTemplate run as the Argo UI submits it, with its parameter's default."""

from hera.workflows import Parameter, Steps, WorkflowTemplate, script


@script()
def greet(name: str):
    print(f"hi {name}")


with (
    WorkflowTemplate(name="corpus-template", entrypoint="main", arguments=Parameter(name="who", value="template")) as w,
    Steps(name="main"),
):
    greet(arguments={"name": "{{workflow.parameters.who}}"})

EXPECT = {"greet": "hi template"}
