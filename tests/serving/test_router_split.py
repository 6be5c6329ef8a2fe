"""The router over several predictors: seeded split, shadows off the caller's path, feedback to the answering predictor.

The replicas here are small HTTP servers on 127.0.0.1 that name their predictor in the answer (the
router forwards bytes; what a model computes does not matter to the routing).
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
from aiohttp import web

from scanflow_argo.serving.router import Replica, Router
from scanflow_argo.serving.traffic import split_of


async def _replica(name: str, delay: float, seen: list[tuple[str, str, str]]) -> tuple[web.AppRunner, str]:
    async def handle(request: web.Request) -> web.Response:
        seen.append((name, request.path.rsplit("/", 1)[-1], request.headers.get("Seldon-Puid", "")))
        await asyncio.sleep(delay)
        return web.json_response({"data": {"ndarray": [name]}})

    app = web.Application()
    app.router.add_post("/api/v1.0/predictions", handle)
    app.router.add_post("/api/v1.0/feedback", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def _scenario(seed: int) -> dict:
    seen: list[tuple[str, str, str]] = []
    predictors = [{"name": "stable", "traffic": 80}, {"name": "canary", "traffic": 20}, {"name": "shade", "shadow": True}]
    router = Router("mnist", split=split_of("mnist", predictors), seed=seed)
    await router.start()
    runners = []
    try:
        for name, delay in (("stable", 0.0), ("canary", 0.0), ("shade", 0.5)):
            runner, url = await _replica(name, delay, seen)
            runners.append(runner)
            router.add(Replica(name, url, predictor=name))
        answers, slowest = [], 0.0
        async with aiohttp.ClientSession() as client:
            for _ in range(40):
                started = time.monotonic()
                async with client.post(router.url + "/api/v1.0/predictions", json={"data": {"ndarray": [[1]]}}) as r:
                    body = await r.json()
                    puid = r.headers["Seldon-Puid"]
                slowest = max(slowest, time.monotonic() - started)
                answers.append((body["data"]["ndarray"][0], puid))
            while router._shadow_tasks:  # let the mirrored copies land before counting them and reading feedback's target
                await asyncio.sleep(0.05)
            feedback_to = []
            for answered, puid in answers[:10]:
                async with client.post(
                    router.url + "/api/v1.0/feedback", json={"response": {"meta": {"puid": puid}}, "reward": 1}
                ) as r:
                    assert r.status == 200
                feedback_to.append((answered, seen[-1][0]))
            async with client.get(router.url + "/metrics") as r:
                metrics = await r.text()
        return {
            "answers": [a for a, _ in answers],
            "slowest": slowest,
            "shadow_copies": sum(1 for n, s, _ in seen if n == "shade" and s == "predictions"),
            "shadow_puids": {p for n, _, p in seen if n == "shade"} <= {p for _, p in answers},
            "feedback_to": feedback_to,
            "metrics": metrics,
        }
    finally:
        await router.stop()
        for runner in runners:
            await runner.cleanup()


def test_split_shadow_feedback_and_metrics_per_predictor() -> None:
    first = asyncio.run(_scenario(seed=3))
    assert set(first["answers"]) == {"stable", "canary"}  # the shadow never answers a caller
    assert first["slowest"] < 0.4  # the shadow's 0.5 s is not the caller's
    assert first["shadow_copies"] == 40 and first["shadow_puids"]
    assert all(answered == got for answered, got in first["feedback_to"])
    for name in ("stable", "canary"):
        assert f'predictor_name="{name}"' in first["metrics"]
    client_counts = [
        line for line in first["metrics"].splitlines() if line.startswith("seldon_api_executor_client_requests_seconds_count{")
    ]
    assert any('predictor_name="shade"' in line for line in client_counts)
    again = asyncio.run(_scenario(seed=3))
    assert again["answers"] == first["answers"]  # same seed, same predictors
    other = asyncio.run(_scenario(seed=4))
    assert other["answers"] != first["answers"]
    assert 0 < first["answers"].count("canary") < 20
