"""A branch taken on another task's result (after hera examples/workflows/scripts/coinflip.py, the coin made
deterministic)."""

from hera.workflows import DAG, Workflow, script


@script()
def flip():
    print("heads")


@script()
def heads():
    print("it was heads")


@script()
def tails():
    print("it was tails")


with Workflow(generate_name="corpus-when-", entrypoint="main") as w, DAG(name="main"):
    f = flip()
    heads().on_other_result(f, "heads")
    tails().on_other_result(f, "tails")

EXPECT = {"flip": "heads", "heads": "it was heads", "tails": None}
