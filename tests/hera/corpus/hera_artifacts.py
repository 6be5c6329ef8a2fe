"""An output artifact read by the next step (after hera examples/workflows/artifacts/basic_artifacts.py)."""

from hera.workflows import Artifact, Steps, Workflow, script


@script(outputs=Artifact(name="note", path="/tmp/note.txt"))
def write():
    with open("/tmp/note.txt", "w") as fh:
        fh.write("from an artifact")


@script(inputs=Artifact(name="note", path="/tmp/in.txt"))
def read():
    with open("/tmp/in.txt") as fh:
        print(fh.read())


with Workflow(generate_name="corpus-artifacts-", entrypoint="steps") as w, Steps(name="steps"):
    wr = write()
    read(arguments=[wr.get_artifact("note").with_name("note")])

EXPECT = {"read": "from an artifact"}
