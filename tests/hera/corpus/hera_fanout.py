"""A dynamic fan-out over a script's JSON result, then a fan-in of the aggregated results (after hera
examples/workflows/loops/dynamic_fanout.py and loops/fan_in.py)."""

from hera.workflows import DAG, Workflow, script


@script()
def generate():
    import json
    import sys

    json.dump([1, 2, 3], sys.stdout)


@script()
def square(value: int):
    print(value * value)


@script()
def total(values: list):
    # Argo passes the fan-out's results as one JSON list, ``[1,4,9]``; Hera's script decodes it
    print(sum(int(v) for v in values))


with Workflow(generate_name="corpus-fanout-", entrypoint="main") as w, DAG(name="main"):
    g = generate()
    s = square(with_param=g.result)
    t = total(arguments={"values": s.result})
    g >> s >> t

EXPECT = {"generate": "[1, 2, 3]", "square(0:1)": "1", "square(2:3)": "9", "total": "14"}
