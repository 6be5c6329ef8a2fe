"""The streaming calls: the workflow watch (``/api/v1/workflow-events/{namespace}``) and pod logs.

The watch follows ``WatchWorkflows`` of ``server/workflow/workflow_server.go``: a stream of
``{"result": {"type": "ADDED"|"MODIFIED"|"DELETED", "object": <Workflow>}}``, starting with an
``ADDED`` event per matching workflow (what a Kubernetes watch without a resource version sends),
``fields`` applied without its ``result.object.`` prefix. One ``RunWatcher`` per server polls the
platform's change feed (``stat`` of each status file, every ``interval``, only while someone
listens) and fans each change out to the streams whose selector it matches, so a node's change
reaches the browser within ``interval`` plus a read.

Logs follow ``PodLogs``/``WorkflowLogs`` (``util/logs/workflow-logger.go``): one
``{"result": {"content": <line>, "podName": <pod>}}`` per line, from one pod (``podName``) or every
pod of the run; ``logOptions.container``, ``tailLines``, ``grep`` and ``follow`` (keep sending as the
pod writes, end when it has finished).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from ..errors import ScanflowError
from ..platform.base import PodLog, WorkflowAdmin
from .http import (
    ApiError,
    Codes,
    Stream,
    clean_fields,
    from_scanflow,
    name_param,
    namespace_param,
    needs_nodes,
    query_bool,
    query_int,
    valid_name,
)
from .workflows import ListOptions, parse_list_options

__all__ = ["LogsApi", "RunWatcher", "WatchApi"]

POLL_SECONDS = 0.2
"""How often the status files are looked at while a watch or a followed log is open."""


class _Subscriber:
    def __init__(self, opts: ListOptions, full: bool) -> None:
        self.opts = opts
        self.full = full
        self.queue: asyncio.Queue[tuple[str, dict[str, Any]] | None] = asyncio.Queue(maxsize=2000)
        self.overflowed = False


class RunWatcher:
    """Polls the platform's change feed while anyone listens and hands each change to the listeners it matches."""

    def __init__(self, platform: WorkflowAdmin, interval: float = POLL_SECONDS) -> None:
        self.platform = platform
        self.interval = interval
        self._subs: set[_Subscriber] = set()
        self._task: asyncio.Task[None] | None = None
        self._feed: Any = None

    def subscribe(self, opts: ListOptions, full: bool) -> _Subscriber:
        sub = _Subscriber(opts, full)
        self._subs.add(sub)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        return sub

    def unsubscribe(self, sub: _Subscriber) -> None:
        self._subs.discard(sub)

    async def close(self) -> None:
        for sub in list(self._subs):
            with contextlib.suppress(asyncio.QueueFull):
                sub.queue.put_nowait(None)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        if self._feed is None:
            self._feed = self.platform.change_feed()
        await asyncio.to_thread(self._feed.refresh)  # the listeners list what exists themselves
        while self._subs:
            await asyncio.sleep(self.interval)
            changes = await asyncio.to_thread(self._feed.refresh)
            full_docs: dict[str, dict[str, Any] | None] = {}
            for change in changes:
                for sub in list(self._subs):
                    if not sub.opts.matches(change.summary):
                        continue
                    obj: dict[str, Any] | None = dict(change.summary)
                    if sub.full and change.type != "DELETED":
                        if change.name not in full_docs:
                            full_docs[change.name] = await asyncio.to_thread(self._read, change.name)
                        obj = full_docs[change.name]
                    if obj is None:
                        continue
                    try:
                        sub.queue.put_nowait((change.type, obj))
                    except asyncio.QueueFull:
                        sub.overflowed = True
                        self._subs.discard(sub)

    def _read(self, name: str) -> dict[str, Any] | None:
        try:
            return self.platform.get_workflow(name)
        except ScanflowError:
            return None  # deleted meanwhile: its DELETED event follows


class WatchApi:
    """``GET /api/v1/workflow-events/{namespace}``."""

    def __init__(self, platform: WorkflowAdmin, watcher: RunWatcher) -> None:
        self.platform = platform
        self.watcher = watcher

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/api/v1/workflow-events/{namespace}", self.watch), web.get("/api/v1/workflow-events/", self.watch)]

    async def watch(self, request: web.Request) -> web.StreamResponse:
        opts = parse_list_options(request, namespace_param(request))
        fields = request.query.get("fields")
        full = needs_nodes(fields, "result.object.")

        def shape(doc: Any) -> Any:
            return clean_fields(doc, fields) if fields else doc  # the paths name the whole message (result.object.…)

        sub = self.watcher.subscribe(opts, full)
        try:
            try:
                existing = await asyncio.to_thread(self.platform.list_workflows, opts.namespace, opts.labels, full=full)
            except ScanflowError as err:
                raise from_scanflow(err) from err
            async with Stream(request) as stream:
                for doc in existing:
                    if opts.matches(doc):
                        await stream.send({"type": "ADDED", "object": doc}, shape)
                while True:
                    item = await sub.queue.get()
                    if item is None or sub.overflowed:
                        await stream.error(ApiError(Codes.RESOURCE_EXHAUSTED, "the watch fell behind: list again and watch anew"))
                        break
                    kind, obj = item
                    await stream.send({"type": kind, "object": obj}, shape)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.watcher.unsubscribe(sub)
        return web.Response()


class LogsApi:
    """``GET /api/v1/workflows/{namespace}/{name}/log`` and ``.../{name}/{podName}/log``."""

    def __init__(self, platform: WorkflowAdmin, interval: float = POLL_SECONDS) -> None:
        self.platform = platform
        self.interval = interval

    def routes(self) -> list[web.RouteDef]:
        base = "/api/v1/workflows/{namespace}/{name}"
        return [web.get(f"{base}/log", self.logs), web.get(f"{base}/{{podName}}/log", self.logs)]

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args)
        except ScanflowError as err:
            raise from_scanflow(err) from err

    async def logs(self, request: web.Request) -> web.StreamResponse:
        namespace = namespace_param(request)
        name = name_param(request)
        pod = request.match_info.get("podName") or request.query.get("podName") or ""
        container = request.query.get("logOptions.container") or "main"
        follow = query_bool(request, "logOptions.follow")
        tail = query_int(request, "logOptions.tailLines")
        grep = request.query.get("grep") or ""
        try:
            pattern = re.compile(grep) if grep else None
        except re.error as err:
            raise ApiError(Codes.INVALID_ARGUMENT, f"grep {grep!r} is not a valid regular expression: {err}") from err
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", container):
            raise ApiError(Codes.INVALID_ARGUMENT, f"container {container[:80]!r} is not a valid container name")
        run = await self.call(self.platform.get_workflow, name, namespace or None)
        if pod:
            valid_name(pod, "podName")
            sources = [await self._pod(name, pod, container, follow)]
        else:
            sources = await self._pods(name, run, container)
        try:
            async with Stream(request) as stream:
                sent: set[str] = {s.node_id for s in sources}
                if not follow:  # what each pod wrote, pod after pod
                    for source in sources:
                        await self._one(stream, source, follow, tail, pattern)
                    return web.Response()
                tasks = [asyncio.create_task(self._one(stream, s, follow, tail, pattern)) for s in sources]
                while follow and not pod:  # every pod of the run, those that start later too
                    await asyncio.sleep(self.interval)
                    run = await self.call(self.platform.get_workflow, name)
                    for s in await self._pods(name, run, container):
                        if s.node_id not in sent:
                            sent.add(s.node_id)
                            tasks.append(asyncio.create_task(self._one(stream, s, follow, tail, pattern)))
                    if (run.get("status") or {}).get("phase") in ("Succeeded", "Failed", "Error"):
                        break
                await asyncio.gather(*tasks)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return web.Response()

    async def _pod(self, name: str, pod: str, container: str, follow: bool) -> PodLog:
        """The pod's log; with ``follow``, a pod of a running workflow that has not started yet is waited for
        (Argo's log call watches for the pod), until the workflow ends."""
        while True:
            try:
                return await self.call(self.platform.pod_log, name, pod, container)
            except ApiError as err:
                if not follow or err.code != Codes.NOT_FOUND:
                    raise
                run = await self.call(self.platform.get_workflow, name)
                if (run.get("status") or {}).get("phase") in ("Succeeded", "Failed", "Error"):
                    raise
            await asyncio.sleep(self.interval)

    async def _pods(self, name: str, run: dict[str, Any], container: str) -> list[PodLog]:
        all_nodes = (run.get("status") or {}).get("nodes") or {}
        rank = _graph_order(all_nodes, str((run.get("metadata") or {}).get("name", "")))
        nodes = [n for n in all_nodes.values() if n.get("type") == "Pod" and n.get("podName")]
        nodes.sort(key=lambda n: (n.get("startedAt") or "", rank.get(str(n.get("id")), len(rank))))
        out = []
        for node in nodes:
            with contextlib.suppress(ApiError):  # a pod without this container: not part of this log
                out.append(await self.call(self.platform.pod_log, name, str(node["podName"]), container))
        return out

    async def _one(self, stream: Stream, source: PodLog, follow: bool, tail: int | None, pattern: re.Pattern[str] | None) -> None:
        async def emit(lines: list[str]) -> None:
            for line in lines:
                if pattern is None or pattern.search(line):
                    await stream.send({"content": line, "podName": source.pod})

        offset, pending = 0, ""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        first = True
        while True:
            data, offset = await asyncio.to_thread(_read_from, source.path, offset)
            done = not follow or await asyncio.to_thread(self.platform.pod_done, source.run, source.node_id)
            if done:  # what was written before it ended, then stop
                more, offset = await asyncio.to_thread(_read_from, source.path, offset)
                data += more
            text = pending + decoder.decode(data, final=done)
            lines = text.split("\n")
            pending = lines.pop()
            if done and pending:
                lines.append(pending)
                pending = ""
            if first and tail is not None:
                lines = lines[-tail:] if tail > 0 else []
            first = False
            await emit(lines)
            if done:
                return
            await asyncio.sleep(self.interval)


def _graph_order(nodes: dict[str, Any], root: str) -> dict[str, int]:
    """Node ids in the order the graph reaches them from the root (steps and tasks in their order)."""
    order: dict[str, int] = {}
    todo = [root] if root in nodes else []
    while todo:
        nid = todo.pop(0)
        if nid in order or nid not in nodes:
            continue
        order[nid] = len(order)
        todo.extend(nodes[nid].get("children") or [])
    return order


def _read_from(path: Path, offset: int) -> tuple[bytes, int]:
    """What was appended to ``path`` since ``offset`` (the file may not exist yet)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return b"", offset
    return data, offset + len(data)
