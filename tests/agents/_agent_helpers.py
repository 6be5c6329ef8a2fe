"""Helpers for agent tests: the exporter subprocess, polling, PromQL values, stepping a runtime on a ManualClock."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scanflow_argo import _proc
from scanflow_argo.agents.runtime import AgentRuntime
from scanflow_argo.clock import ManualClock

HERE = Path(__file__).resolve().parent


class Exporter:
    """A prometheus_client HTTP server in a subprocess; ``set(...)`` rewrites what it exposes."""

    def __init__(self, folder: Path) -> None:
        self.spec = folder / "series.json"
        self.port = _proc.free_port()
        self.series: dict[tuple[str, str], dict[str, Any]] = {}
        self._write()
        self.child = _proc.spawn(
            [sys.executable, str(HERE / "_exporter.py"), str(self.spec), str(self.port)],
            name="exporter",
            log=folder / "exporter.log",
        )
        _proc.wait_http(f"http://127.0.0.1:{self.port}/metrics", timeout=15, child=self.child)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set(self, name: str, value: float | None = None, *, rate: float | None = None, **labels: str) -> None:
        """Expose ``name{labels}`` as a gauge ``value`` or a counter growing ``rate``/s; ``value=None`` and no rate removes it."""
        key = (name, json.dumps(labels, sort_keys=True))
        if value is None and rate is None:
            self.series.pop(key, None)
        else:
            self.series[key] = {"name": name, "labels": labels, **({"rate": rate} if rate is not None else {"value": value})}
        self._write()

    def _write(self) -> None:
        tmp = self.spec.with_suffix(".tmp")
        tmp.write_text(json.dumps({"series": list(self.series.values())}))
        tmp.replace(self.spec)

    def stop(self) -> None:
        self.child.stop(timeout=5)


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, poll: float = 0.1, what: str = "condition") -> Any:
    """Poll ``predicate`` until truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def steps(runtime: AgentRuntime, clock: ManualClock, n: int) -> None:
    """Start ``runtime`` (offline checks off), then run ``n`` iterations, one second apart on ``clock``."""

    async def go() -> None:
        await runtime.start(check_online=False)
        for _ in range(n):
            await runtime.step()
            clock.advance(1.0)

    asyncio.run(go())


def prom_value(server: Any, query: str) -> float | None:
    try:
        result = server.query(query)
    except Exception:
        return None
    if not result:
        return None
    return float(result[0]["value"][1])


class RuntimeThread:
    """An ``AgentRuntime`` looping in a background thread (its own event loop), stopped on ``close()``."""

    def __init__(self, runtime: Any) -> None:
        import asyncio
        import threading

        self.runtime = runtime
        self.loop = asyncio.new_event_loop()
        self.error: BaseException | None = None
        started = threading.Event()

        def main() -> None:
            asyncio.set_event_loop(self.loop)
            try:
                self.loop.run_until_complete(runtime.start())
                started.set()
                self.loop.run_until_complete(runtime.run())
            except BaseException as err:
                self.error = err
                started.set()
            finally:
                self.loop.run_until_complete(runtime.close())

        self.thread = threading.Thread(target=main, daemon=True)
        self.thread.start()
        started.wait(30)
        if self.error:
            raise self.error

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.runtime.stop)
        self.thread.join(10)

    def records(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.runtime.audit.all() if kind is None or r.get("kind") == kind]

    def events(self) -> list[str]:
        return [f"{r['rule']}:{r['event']}" for r in self.records("rule") if r.get("event") in ("fire", "clear")]


class ServeThread:
    """``serve()`` (the agent loop and its HTTP API) in a background thread, as ``agent run`` does."""

    def __init__(self, runtime: Any, token: str | None, folder: Path) -> None:
        import asyncio
        import threading

        from scanflow_argo.agents.api import serve

        self.runtime = runtime
        self.loop = asyncio.new_event_loop()
        self.error: BaseException | None = None
        ready = folder / f"ready-{time.monotonic_ns()}.json"

        def main() -> None:
            asyncio.set_event_loop(self.loop)
            try:
                self.loop.run_until_complete(serve(runtime, "127.0.0.1", 0, token, ready_file=ready))
            except BaseException as err:
                self.error = err

        self.thread = threading.Thread(target=main, daemon=True)
        self.thread.start()

        def url() -> str | None:
            if self.error:
                raise self.error
            return json.loads(ready.read_text())["url"] if ready.exists() else None

        self.url: str = wait_for(url, timeout=30, what="the agent API to listen")

    def close(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.runtime.stop)
            self.thread.join(10)
