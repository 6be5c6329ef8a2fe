"""The traffic generator against a real HTTP server on 127.0.0.1 that answers as Seldon's API does."""

from __future__ import annotations

import asyncio
import json

import numpy as np
from aiohttp import web

from examples.mnist.traffic import Pool, Traffic


async def _serve(received: dict[str, list]) -> tuple[web.AppRunner, str]:
    async def predict(request: web.Request) -> web.Response:
        body = await request.json()
        x = np.asarray(body["data"]["ndarray"])
        received["predict"].append(x)
        probs = np.zeros((len(x), 10))
        probs[:, 7] = 1.0  # always answers "7"
        return web.json_response({"data": {"names": [str(i) for i in range(10)], "ndarray": probs.tolist()}, "meta": {}})

    async def feedback(request: web.Request) -> web.Response:
        received["feedback"].append(await request.json())
        return web.json_response({"data": {"ndarray": [1.0]}, "meta": {}})

    app = web.Application()
    app.router.add_post("/api/v1.0/predictions", predict)
    app.router.add_post("/api/v1.0/feedback", feedback)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


def test_rate_pools_feedback_and_records() -> None:
    images = np.zeros((5, 28, 28), dtype=np.uint8)
    images[:, 10, 10] = 255
    pools = {"a": Pool(images, np.array([7, 7, 7, 7, 7])), "b": Pool(images, np.array([1, 1, 1, 1, 1]))}
    received: dict[str, list] = {"predict": [], "feedback": []}

    async def scenario() -> Traffic:
        runner, url = await _serve(received)
        try:
            traffic = Traffic(url, pools, rate=40.0, pool="a", phase="one", feedback_share=1.0, seed=1)
            task = asyncio.create_task(traffic.run())
            await asyncio.sleep(1.0)
            traffic.set(pool="b", phase="two", feedback_share=0.0, rate=20.0)
            await asyncio.sleep(1.0)
            traffic.stop()
            await task
            return traffic
        finally:
            await runner.cleanup()

    traffic = asyncio.run(scenario())
    one = [r for r in traffic.records if r.phase == "one"]
    two = [r for r in traffic.records if r.phase == "two"]
    assert 30 <= len(one) <= 45 and 15 <= len(two) <= 25  # open loop at 40/s, then 20/s
    assert all(r.ok and r.predicted == 7 for r in traffic.records)
    assert all(r.truth == 7 for r in one) and all(r.truth == 1 for r in two)
    assert all(r.feedback_code == 200 for r in one) and all(r.feedback_code is None for r in two)
    # What was sent: one 784-pixel row in [0, 1]; feedback carries the request and the true label.
    x = received["predict"][0]
    assert x.shape == (1, 784) and x.max() == 1.0 and x.min() == 0.0
    fb = received["feedback"][0]
    assert fb["truth"] == {"data": {"ndarray": [7]}} and fb["request"]["data"]["ndarray"] == x.tolist()
    assert len(received["feedback"]) == len(one)
    json.dumps(traffic.rows())


def test_unreachable_endpoint_is_recorded_not_raised() -> None:
    from scanflow_argo._proc import free_port

    pools = {"a": Pool(np.zeros((1, 28, 28), dtype=np.uint8), np.array([0]))}
    traffic = Traffic(f"http://127.0.0.1:{free_port()}", pools, rate=20.0, pool="a", timeout=1.0)
    asyncio.run(traffic.run(max_requests=3))
    assert len(traffic.records) == 3 and not any(r.ok for r in traffic.records)
    assert sum(traffic.errors.values()) == 3


def test_each_pool_deals_every_digit_once_per_pass_in_a_seeded_order() -> None:
    pools = {"a": Pool(np.zeros((6, 28, 28), np.uint8), np.arange(6)), "b": Pool(np.zeros((4, 28, 28), np.uint8), np.arange(4))}
    first = Traffic("http://127.0.0.1:9", pools, rate=1.0, pool="a", seed=3)
    a = [first._deal("a") for _ in range(12)]
    assert sorted(a[:6]) == list(range(6)) and sorted(a[6:]) == list(range(6)) and a[:6] != a[6:]
    # Another run, interleaving another pool (as timing would): pool "a" still deals the same digits.
    second = Traffic("http://127.0.0.1:9", pools, rate=1.0, pool="a", seed=3)
    again = []
    for _ in range(12):
        second._deal("b")
        again.append(second._deal("a"))
    assert again == a
    other = Traffic("http://127.0.0.1:9", pools, rate=1.0, pool="a", seed=4)
    assert [other._deal("a") for _ in range(6)] != a[:6]  # another seed, another order
