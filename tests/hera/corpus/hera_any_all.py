"""``AnySucceeded`` / ``AllFailed`` over fan-outs (after hera examples/workflows/dags/any_success_all_fail.py,
with deterministic failures)."""

from hera.workflows import DAG, Workflow, script


@script()
def fail_odd(a: int):
    if a % 2:
        raise SystemExit(f"odd {a}")
    print(a)


@script()
def fail(a: int):
    raise SystemExit(a)


@script()
def done(a: int):
    print(f"done {a}")


with Workflow(generate_name="corpus-any-all-", entrypoint="d") as w, DAG(name="d"):
    t1 = fail_odd(name="t1", with_param=[1, 2, 3])
    t2 = fail(name="t2", with_param=[1, 2])
    t3 = done(name="t3", with_param=[7])
    t1.when_any_succeeded(t2)
    t2.when_all_failed(t3)

EXPECT = {"t1(1:2)": "2", "t3(0:7)": "done 7"}
