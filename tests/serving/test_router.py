"""The router on its own: health, Seldon's error shape and metric labels when no replica is ready, paths."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from scanflow_argo.serving.router import Replica, Router


@pytest.fixture
def router():
    loop = asyncio.new_event_loop()
    r = Router("mnist", namespace="scanflow", predictor_version="v1")
    loop.run_until_complete(r.start())
    try:
        yield r, loop
    finally:
        loop.run_until_complete(r.stop())
        loop.close()


def _call(loop: asyncio.AbstractEventLoop, method: str, url: str, **kw) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(timeout=10) as client:
            return await client.request(method, url, **kw)

    return loop.run_until_complete(go())


def test_without_replicas_it_is_live_but_not_ready_and_answers_503(router) -> None:
    r, loop = router
    assert _call(loop, "GET", f"{r.url}/live").status_code == 200
    assert _call(loop, "GET", f"{r.url}/ready").status_code == 503
    resp = _call(loop, "POST", f"{r.url}/api/v1.0/predictions", json={"data": {"ndarray": [[0]]}})
    assert resp.status_code == 503
    assert resp.json()["status"]["reason"] == "NO_READY_REPLICA"
    assert _call(loop, "POST", f"{r.url}/seldon/scanflow/mnist/api/v1.0/feedback", json={}).status_code == 503
    assert _call(loop, "POST", f"{r.url}/seldon/other/mnist/api/v1.0/predictions", json={}).status_code == 404
    text = _call(loop, "GET", f"{r.url}/metrics").text
    assert (
        'seldon_api_executor_server_requests_seconds_count{code="503",deployment_name="mnist",method="post",model_name="classifier",predictor_name="default",predictor_version="v1",service="predictions"} 1.0'
        in text
    )
    assert 'service="feedback"' in text


def test_a_refused_replica_is_skipped_and_draining_takes_it_out_of_rotation(router) -> None:
    from scanflow_argo._proc import free_port

    r, loop = router
    dead = Replica("dead", f"http://127.0.0.1:{free_port()}")
    r.add(dead)
    assert [x.id for x in r.ready()] == ["dead"]
    resp = _call(loop, "POST", f"{r.url}/api/v1.0/predictions", json={})
    assert resp.status_code == 503 and "refused" in resp.json()["status"]["info"]
    assert loop.run_until_complete(r.remove("dead", drain_seconds=1.0)) is True
    assert r.ready() == [] and r.replicas() == []


def test_remove_waits_for_in_flight_requests_and_gives_up_after_the_drain_time(router) -> None:
    r, loop = router
    busy = Replica("busy", "http://127.0.0.1:9")
    r.add(busy)
    busy.inflight = 1  # as if a request were being served

    async def drain_then_finish() -> tuple[bool, bool, bool]:
        task = asyncio.ensure_future(r.remove("busy", drain_seconds=5.0))
        await asyncio.sleep(0.2)
        waiting = not task.done() and r.ready() == []  # out of rotation at once, still draining
        busy.inflight = 0  # the request finishes: what the forwarding code does
        busy.idle.set()
        return waiting, await task, r.replicas() == []

    assert loop.run_until_complete(drain_then_finish()) == (True, True, True)
    stuck = Replica("stuck", "http://127.0.0.1:9")
    r.add(stuck)
    stuck.inflight = 1
    start = loop.time()
    assert loop.run_until_complete(r.remove("stuck", drain_seconds=0.3)) is False
    assert 0.25 <= loop.time() - start < 2
