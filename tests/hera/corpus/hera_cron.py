"""A Hera CronWorkflow: ``run`` runs its workflow once, as the schedule would."""

from hera.workflows import Container, CronWorkflow, Steps

with CronWorkflow(name="corpus-cron", schedules=["*/5 * * * *"], entrypoint="main") as w:
    tick = Container(name="tick", image="alpine:3.20", command=["echo", "tick"])
    with Steps(name="main"):
        tick()

EXPECT = {"tick": "tick"}
