"""Output parameters from a file and a task's result passed on (after hera examples/workflows/scripts/
output_parameters.py and dags/passing_task_result.py)."""

from hera.workflows import DAG, Parameter, Workflow, models, script


@script(outputs=[Parameter(name="doubled", value_from=models.ValueFrom(path="/tmp/doubled"))])
def double(n: int):
    with open("/tmp/doubled", "w") as fh:
        fh.write(str(2 * n))
    print(f"doubled {n}")


@script()
def show(value: str, said: str):
    print(f"{value} / {said}")


with Workflow(generate_name="corpus-outputs-", entrypoint="main") as w, DAG(name="main"):
    d = double(arguments={"n": 21})
    s = show(arguments={"value": d.get_parameter("doubled"), "said": d.result})
    d >> s

EXPECT = {"double": "doubled 21", "show": "42 / doubled 21"}
