"""Helpers of the compile tests: small steps, a stand-in agent, a small valid application (steps must live in a file)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from scanflow_argo.spec import (
    ITEM,
    Application,
    ArtifactIn,
    ArtifactOut,
    CronWorkflow,
    Output,
    Param,
    Retry,
    Service,
    Workflow,
    WorkflowTemplate,
    container,
    step,
)


@step(outputs={"count": int, "items": list})
def produce(n: int = 3, data: ArtifactOut = "") -> dict:
    import pathlib

    pathlib.Path(data, "rows.txt").write_text("\n".join(str(i) for i in range(n)))
    return {"count": n, "items": list(range(n))}


@step(
    outputs={"ok": bool},
    retry=Retry(limit=2, policy="OnError", backoff="5s", factor=2),
    timeout=60,
    resources={"cpu": "100m", "memory": "64Mi"},
)
def check(
    data: ArtifactIn, count: int, label: Annotated[str, Param("label", enum=("a", "b"), description="which label")] = "a"
) -> dict:
    return {"ok": count > 0}


@step
def consume(value: str) -> None:
    print(value)


@step(tracking=True)
def notify(status: str = "{{workflow.status}}") -> None:
    print(status)


echo = container(
    "echo",
    "alpine:3.20",
    ["sh", "-c"],
    ["echo {{inputs.parameters.msg}} > /tmp/msg"],
    inputs=[Param("msg", str)],
    outputs=[Output("msg", str, path="/tmp/msg")],
)


@dataclass
class StandInAgent:
    """Stand-in with the agent protocol of docs/architecture.md (the real one is spec/agent.py)."""

    name: str = "drift-watch"
    replicas: int = 1
    port: int = 8080
    entrypoint: str = "tests.compile:agent"
    image: str | None = None
    rules: list[dict[str, Any]] = field(
        default_factory=lambda: [{"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["create", "get", "list"]}]
    )

    def rbac_rules(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.rules]

    def config(self) -> dict[str, Any]:
        return {"interval": 5, "query": "rate(x[1m])"}

    def state_config_map(self) -> str:
        return f"{self.name}-state"

    def secret_env(self) -> dict[str, tuple[str, str]]:
        return {"SCANFLOW_AGENT_TOKEN": ("agent-token", "token")}


def build_app(agent: Any = None) -> Application:
    with WorkflowTemplate(
        "demo-template",
        title="Demo",
        description="A demo template",
        parameters=[
            Param("n", int, 3, description="how many"),
            Param("label", str, "a", enum=("a", "b"), description="which label"),
        ],
    ) as wf:
        p = produce(n=wf.params.n)
        c = check(data=p.out.data, count=p.out.count, label=wf.params.label)
        consume(value=ITEM).for_each(p.out["items"]).named("fan-out").after(c)
        consume(value=f"{c.out.ok}").when(f"{c.out.ok} == true").named("on-ok")
        echo(msg="hi").for_each(["x", "y"])
        wf.on_exit(notify)
    with Workflow("demo-run", parameters=[Param("n", int, 2)], generate_name=True) as run:
        produce(n=run.params.n)
    cron = CronWorkflow("demo-nightly", schedule="0 1 * * *", template=wf, arguments={"n": 5})
    app = Application("demo", namespace="demo-ns", team="ml", workflows=[wf, run, cron])
    app.add(
        Service("demo-model", model_uri="models:/demo@champion", replicas=2, env_from_secrets={"API_KEY": ("demo-secret", "key")})
    )
    app.add(agent or StandInAgent())
    return app
