"""Every authoring feature in one small application (docs/authoring.md walks through it).

    scanflow-argo compile examples.authoring.app:app -o build/authoring     # manifests + schema checks
    scanflow-argo lint build/authoring                                       # lint them (or any Argo YAML)

- ``numbers`` (WorkflowTemplate, for the Argo UI): parameters with descriptions and an enum, a step
  that fails once and is retried, an output artifact read by the next step, a ``withParam`` fan-out
  over a step's JSON output, a ``withItems`` fan-out of a container step, a ``when`` condition,
  step timeouts and resources, a workflow timeout and parallelism, an exit handler.
- ``numbers-nightly`` (CronWorkflow): runs ``numbers`` by reference with its own arguments.
- ``numbers-quick`` (Workflow): a one-off run with a generated name.
- ``hera-hello``: a plain Hera WorkflowTemplate, compiled as it is.
- ``numbers-model`` (Service): a SeldonDeployment for a registered model, with a canary predictor taking
  10% of the traffic and a shadow predictor mirroring it (Seldon's ``traffic`` and ``shadow``).

Steps are pure Python with stdlib imports only, so they run in seconds on the local engine.
"""

from __future__ import annotations

from typing import Annotated

from scanflow_argo.spec import (
    ITEM,
    Application,
    ArtifactIn,
    ArtifactOut,
    Canary,
    CronWorkflow,
    Output,
    Param,
    Retry,
    Service,
    Shadow,
    Workflow,
    WorkflowTemplate,
    container,
    step,
)

__all__ = ["app", "hera_hello", "nightly", "numbers", "quick"]

SMALL = {"cpu": "100m", "memory": "64Mi", "memory_limit": "128Mi"}


# -- steps ------------------------------------------------------------------------------------------


@step(
    outputs={"attempts": int},
    retry=Retry(limit=2, policy="OnFailure", backoff="1s", factor=2),
    env={"ATTEMPT": "{{retries}}"},  # Argo's retry counter: 0 on the first try
    timeout=60,
    resources=SMALL,
)
def flaky(fail_first: bool = True) -> int:
    """Fail the first attempt on purpose: the retry strategy runs it again."""
    import os
    import sys

    attempt = int(os.environ.get("ATTEMPT") or 0)
    if fail_first and attempt == 0:
        sys.exit("attempt 0 fails on purpose; retryStrategy retries it")
    return attempt + 1


@step(outputs={"numbers": list, "total": int}, timeout=60, resources=SMALL)
def generate(count: Annotated[int, Param("count", description="How many numbers")], data: ArtifactOut) -> dict:
    """Write 1..count to the ``data`` artifact; return them (a JSON list) and their sum."""
    import json
    import pathlib

    numbers = list(range(1, count + 1))
    pathlib.Path(data, "numbers.json").write_text(json.dumps(numbers))
    return {"numbers": numbers, "total": sum(numbers)}


@step(outputs={"square": int}, timeout=30)
def square(n: int) -> int:
    """One element of the fan-out (a single output may be returned bare)."""
    return n * n


@step(outputs={"summary": str}, timeout=60, resources=SMALL)
def summarize(data: ArtifactIn, total: int, style: str = "short") -> dict:
    """Read the artifact ``generate`` wrote and describe it."""
    import json
    import pathlib

    numbers = json.loads(pathlib.Path(data, "numbers.json").read_text())
    if style == "short":
        text = f"{len(numbers)} numbers, total {total}"
    else:
        text = f"numbers {numbers}: total {total}, mean {total / max(len(numbers), 1):.2f}"
    print(text)
    return {"summary": text}


@step(timeout=30)
def celebrate(total: int) -> None:
    """Runs only when ``when`` holds."""
    print(f"total {total} is above 10")


@step(timeout=30)
def notify(status: str) -> None:
    """The exit handler: runs whatever happened; ``status`` is Succeeded, Failed or Error."""
    print(f"workflow finished: {status}")


# A container step: the value arrives as an argv element (no shell), the output through a file.
count_chars = container(
    "count-chars",
    "python:3.12-slim",
    ["python", "-c", "import pathlib, sys; pathlib.Path('/tmp/length').write_text(str(len(sys.argv[1])))"],
    ["{{inputs.parameters.text}}"],
    inputs=[Param("text", str, description="Text to measure")],
    outputs=[Output("length", int, path="/tmp/length")],
    timeout=30,
    resources=SMALL,
)


# -- workflows --------------------------------------------------------------------------------------

with WorkflowTemplate(
    "numbers",
    title="Numbers",
    description="Generate numbers, square each in parallel, summarize them from an artifact.",
    parameters=[
        Param("count", int, 5, description="How many numbers to generate (above 4, the total passes `when`)"),
        Param("style", str, "short", enum=("short", "long"), description="How much the summary says"),
        Param("fail_first", bool, True, description="Fail the first attempt of `flaky` to show retries"),
    ],
    parallelism=4,
    timeout=600,
) as numbers:
    p = numbers.params
    warmup = flaky(fail_first=p.fail_first)
    gen = generate(count=p.count).after(warmup)
    square(n=ITEM).for_each(gen.out.numbers)  # withParam: one task per element
    summarize(data=gen.out.data, total=gen.out.total, style=p.style)  # the artifact implies the dependency
    celebrate(total=gen.out.total).when(f"{gen.out.total} > 10")
    count_chars(text=ITEM).for_each(["alpha", "beta", "gamma"]).after(warmup)  # withItems
    numbers.on_exit(notify, status="{{workflow.status}}")

nightly = CronWorkflow(
    "numbers-nightly",
    schedule="30 2 * * *",
    timezone="UTC",
    template=numbers,
    arguments={"count": 10, "fail_first": False},
    description="Run numbers every night at 02:30 UTC.",
)

with Workflow("numbers-quick", parameters=[Param("count", int, 3)], generate_name=True) as quick:
    g = generate(count=quick.params.count)
    summarize(data=g.out.data, total=g.out.total)


def _hera_hello() -> object:
    """A WorkflowTemplate written with Hera directly: the Application takes it as it is."""
    from hera.workflows import Container, Steps
    from hera.workflows import WorkflowTemplate as HeraTemplate

    with HeraTemplate(
        name="hera-hello",
        entrypoint="main",
        annotations={"workflows.argoproj.io/description": "Written with Hera, compiled as it is."},
    ) as wt:
        hello = Container(name="hello", image="python:3.12-slim", command=["python", "-c", "print('hello from Hera')"])
        with Steps(name="main"):
            hello()
    return wt


hera_hello = _hera_hello()

app = Application(
    "authoring-demo",
    namespace="scanflow",
    team="examples",
    workflows=[numbers, nightly, quick, hera_hello],
    services=[
        Service(
            "numbers-model",
            model_uri="models:/numbers@champion",
            replicas=1,
            resources={"cpu": "100m", "memory": "256Mi"},
            canary=Canary("models:/numbers@challenger", traffic=10),
            shadow=Shadow("models:/numbers@candidate"),
        )
    ],
)
