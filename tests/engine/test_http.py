"""HTTP templates in the local engine, run as a user runs them: real engine, real HTTP server on
127.0.0.1 (stdlib, in a thread, on a free port). Argo's semantics: node type HTTP, the body is
``outputs.result``, status >= 400 fails without a successCondition, secrets never written anywhere."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from scanflow_argo import _proc
from scanflow_argo.engine import run_workflow
from scanflow_argo.engine.core.state import read_status
from scanflow_argo.errors import EngineError
from scanflow_argo.settings import Settings

SECRET = "s3cr3t-token-9f2c"


class Server:
    """What the test server saw, and a gate that holds ``/slow`` until the test ends."""

    def __init__(self) -> None:
        self.seen: list[dict] = []
        self.flaky_left = 2
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.url = ""


def _handler(server: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet
            return

        def _reply(self, code: int, body: str, ctype: str = "text/plain") -> None:
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("X-Served-By", "test")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            with server.lock:
                server.seen.append({"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body})
            if self.path == "/hello":
                self._reply(200, "hello world")
            elif self.path == "/predict":
                doc = json.loads(body)
                self._reply(200, json.dumps({"data": {"ndarray": [[sum(doc["data"]["ndarray"][0])]]}}), "application/json")
            elif self.path.startswith("/status/"):
                self._reply(int(self.path.rsplit("/", 1)[1]), "status page")
            elif self.path == "/moved":
                self.send_response(302)
                self.send_header("Location", "/hello")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif self.path == "/slow":
                server.release.wait(10)
                self._reply(200, "late")
            elif self.path == "/flaky":
                with server.lock:
                    server.flaky_left -= 1
                    left = server.flaky_left
                self._reply(503 if left >= 0 else 200, "busy" if left >= 0 else "ready")
            else:
                self._reply(404, "no such page")

        do_GET = do_POST = do_PUT = do_HEAD = _handle

    return Handler


class _Quiet(ThreadingHTTPServer):
    """A client that hangs up (the engine cutting a request on stop or a deadline) is expected here."""

    def handle_error(self, request: object, client_address: object) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server()
    port = _proc.free_port()
    httpd = _Quiet(("127.0.0.1", port), _handler(state))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()


def wf(templates: list[dict], entrypoint: str = "main", **spec: object) -> dict:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "http-"},
        "spec": {"entrypoint": entrypoint, "templates": templates, **spec},
    }


def http(name: str, url: str, **fields: object) -> dict:
    extra = {k: fields.pop(k) for k in ("retryStrategy", "timeout", "outputs", "inputs") if k in fields}
    return {"name": name, "http": {"url": url, **fields}, **extra}


def single(tmpl: dict, **spec: object) -> dict:
    return wf([{**tmpl, "name": "main"}], **spec)


def run_files(settings: Settings, run_name: str) -> str:
    run_dir = settings.home / "runs" / run_name
    return "\n".join(p.read_text(errors="replace") for p in run_dir.rglob("*") if p.is_file())


def test_a_get_body_is_the_result_and_a_later_step_uses_it(engine_settings, server) -> None:  # type: ignore[no-untyped-def]
    manifest = wf(
        [
            {
                "name": "main",
                "steps": [
                    [{"name": "fetch", "template": "fetch"}],
                    [
                        {
                            "name": "show",
                            "template": "show",
                            "arguments": {"parameters": [{"name": "msg", "value": "{{steps.fetch.outputs.result}}"}]},
                        }
                    ],
                ],
            },
            http("fetch", server.url + "/hello"),
            {
                "name": "show",
                "inputs": {"parameters": [{"name": "msg"}]},
                "container": {"image": "busybox", "command": ["echo"], "args": ["got: {{inputs.parameters.msg}}"]},
            },
        ]
    )
    run = run_workflow(manifest, engine_settings)
    assert run.phase == "Succeeded", run.message
    node = run.node("fetch")
    assert node.type == "HTTP"
    assert node.outputs["result"] == "hello world"
    assert run.node("show").outputs["result"] == "got: hello world"
    assert server.seen[0]["method"] == "GET"


def test_a_post_sends_its_body_and_a_header_from_a_secret_that_is_never_written(engine_settings, server) -> None:  # type: ignore[no-untyped-def]
    secret_file = engine_settings.home / "secrets" / "seldon-api" / "token"
    secret_file.parent.mkdir(parents=True)
    secret_file.write_text(SECRET + "\n")
    manifest = single(
        http(
            "smoke",
            server.url + "/{{inputs.parameters.path}}",
            method="POST",
            headers=[
                {"name": "Content-Type", "value": "application/json"},
                {"name": "Authorization", "valueFrom": {"secretKeyRef": {"name": "seldon-api", "key": "token"}}},
            ],
            body='{"data": {"ndarray": [[{{inputs.parameters.a}}, 2, 3]]}}',
            successCondition='response.statusCode == 200 && response.headers["Content-Type"][0] == "application/json"',
            inputs={"parameters": [{"name": "path", "value": "predict"}, {"name": "a", "value": "1"}]},
            outputs={
                "parameters": [{"name": "total", "valueFrom": {"expression": "jsonpath(outputs.result, '$.data.ndarray[0][0]')"}}]
            },
        )
    )
    run = run_workflow(manifest, engine_settings)
    assert run.phase == "Succeeded", run.message
    seen = server.seen[0]
    assert (seen["method"], seen["path"]) == ("POST", "/predict")
    assert seen["headers"]["Authorization"] == SECRET
    assert json.loads(seen["body"]) == {"data": {"ndarray": [[1, 2, 3]]}}
    node = run.node(run.name)
    assert json.loads(node.outputs["result"]) == {"data": {"ndarray": [[6]]}}
    assert node.outputs["parameters"] == [{"name": "total", "value": "6"}]
    assert SECRET not in run_files(engine_settings, run.name)  # status.json, node logs, workflow copy


def test_body_from_bytes_is_base64(engine_settings, server) -> None:  # type: ignore[no-untyped-def]
    raw = '{"data": {"ndarray": [[4, 5]]}}'
    manifest = single(
        http("b", server.url + "/predict", method="POST", bodyFrom={"bytes": base64.b64encode(raw.encode()).decode()})
    )
    run = run_workflow(manifest, engine_settings)
    assert run.phase == "Succeeded", run.message
    assert server.seen[0]["body"] == raw


@pytest.mark.parametrize(
    ("condition", "phase"),
    [('response.statusCode == 201 && response.body == "status page"', "Succeeded"), ("response.statusCode == 200", "Failed")],
)
def test_success_condition_decides(engine_settings, server, condition, phase) -> None:  # type: ignore[no-untyped-def]
    run = run_workflow(single(http("c", server.url + "/status/201", successCondition=condition)), engine_settings)
    assert run.phase == phase, run.message
    node = run.node(run.name)
    assert node.phase == phase
    if phase == "Failed":
        assert "successCondition" in node.message and "201" in node.message


def test_a_success_condition_overrides_the_default_rule(engine_settings, server) -> None:  # type: ignore[no-untyped-def]
    run = run_workflow(
        single(http("c", server.url + "/status/404", successCondition="response.statusCode == 404")), engine_settings
    )
    assert run.phase == "Succeeded", run.message


@pytest.mark.parametrize(("code", "phase"), [(404, "Failed"), (500, "Failed"), (302, "Succeeded"), (204, "Succeeded")])
def test_default_rule_fails_on_400_and_above(engine_settings, server, code, phase) -> None:  # type: ignore[no-untyped-def]
    url = server.url + f"/status/{code}"
    tmpl = http("d", url, method="HEAD") if code == 204 else http("d", url, method="GET")
    if code == 302:  # a redirect without Location: Go's client returns it as is
        tmpl = http("d", url)
    run = run_workflow(single(tmpl), engine_settings)
    node = run.node(run.name)
    assert node.phase == phase, node.message
    if phase == "Failed":
        assert node.message == f"received non-2xx response code: {code}"
        assert node.outputs["result"] == "status page"


def test_a_redirect_is_followed_with_the_method_go_uses(engine_settings, server) -> None:  # type: ignore[no-untyped-def]
    run = run_workflow(single(http("m", server.url + "/moved", method="POST", body="x")), engine_settings)
    assert run.phase == "Succeeded", run.message
    assert run.node(run.name).outputs["result"] == "hello world"
    assert [(s["method"], s["path"], s["body"]) for s in server.seen] == [("POST", "/moved", "x"), ("GET", "/hello", "")]


def test_timeout_seconds_fails_the_node_promptly(engine_settings, server) -> None:  # type: ignore[no-untyped-def]
    t0 = time.monotonic()
    run = run_workflow(single(http("t", server.url + "/slow", timeoutSeconds=1)), engine_settings)
    took = time.monotonic() - t0
    assert run.phase == "Failed"
    assert "no response within 1s" in run.node(run.name).message
    assert took < 4, took


def test_the_workflow_deadline_stops_a_waiting_request(engine_settings, server) -> None:  # type: ignore[no-untyped-def]
    t0 = time.monotonic()
    run = run_workflow(single(http("t", server.url + "/slow"), activeDeadlineSeconds=1), engine_settings)
    took = time.monotonic() - t0
    assert run.phase == "Failed"
    assert run.node(run.name).phase == "Failed"
    assert took < 4, took
    # the request itself ended (its socket shut down), not only the wait for it (timeoutSeconds is 30)
    assert not [t for t in threading.enumerate() if t.name.startswith("http-")]


def test_retries_until_the_server_answers(engine_settings, server) -> None:  # type: ignore[no-untyped-def]
    run = run_workflow(single(http("r", server.url + "/flaky", retryStrategy={"limit": 4})), engine_settings)
    assert run.phase == "Succeeded", run.message
    retry = run.node(run.name)
    assert retry.type == "Retry"
    attempts = [n for n in run.nodes.values() if n.type == "HTTP"]
    assert sorted(n.phase for n in attempts) == ["Failed", "Failed", "Succeeded"]
    assert retry.outputs["result"] == "ready"


def test_a_refused_connection_fails_the_node_with_the_reason(engine_settings) -> None:  # type: ignore[no-untyped-def]
    port = _proc.free_port()
    run = run_workflow(single(http("x", f"http://127.0.0.1:{port}/")), engine_settings)
    assert run.phase == "Failed"
    assert "ConnectError" in run.node(run.name).message


def test_a_bad_url_is_a_clear_error(engine_settings) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(EngineError, match=r"not an http:// or https:// URL"):
        run_workflow(single(http("x", "ftp://example/x")), engine_settings)
    with pytest.raises(EngineError, match=r"http\.url is required"):
        run_workflow(single({"name": "x", "http": {"method": "GET"}}), engine_settings)
    with pytest.raises(EngineError, match="unknown http field"):
        run_workflow(single({"name": "x", "http": {"url": "http://127.0.0.1:1/", "timeout": 3}}), engine_settings)
    # a URL made from a parameter is checked when the node runs: an Error node naming it
    tmpl = http("x", "{{inputs.parameters.u}}", inputs={"parameters": [{"name": "u", "value": "no-scheme"}]})
    run = run_workflow(single(tmpl), engine_settings)
    assert run.node(run.name).phase == "Error"
    assert "'no-scheme' is not an http:// or https:// URL" in run.node(run.name).message


def test_a_missing_secret_names_the_file_to_create(engine_settings, server) -> None:  # type: ignore[no-untyped-def]
    header = {"name": "Authorization", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "token"}}}
    run = run_workflow(single(http("s", server.url + "/hello", headers=[header])), engine_settings)
    node = run.node(run.name)
    assert node.phase == "Error"
    assert "Secret 'nope' not found in namespace 'default'" in node.message
    assert str(Path(engine_settings.home) / "secrets" / ".namespaces" / "default" / "nope" / "token") in node.message
    assert not server.seen


def test_a_header_secret_is_the_one_of_the_runs_namespace(engine_settings, server) -> None:  # type: ignore[no-untyped-def]
    """As a Pod's secretKeyRef, an HTTP template's header secret resolves in the workflow's namespace: two teams'
    Secrets of one name are two objects, and neither reads the other's (docs/teams.md)."""
    teams = {"scanflow-mnist-science": "token-science", "scanflow-mnist-engineering": "token-engineering"}
    for namespace, token in teams.items():
        folder = engine_settings.home / "secrets" / ".namespaces" / namespace / "seldon-api"
        folder.mkdir(parents=True)
        (folder / "token").write_text(token)
    header = {"name": "Authorization", "valueFrom": {"secretKeyRef": {"name": "seldon-api", "key": "token"}}}
    manifest = single(http("s", server.url + "/hello", headers=[header]))
    for namespace, token in teams.items():
        run = run_workflow({**manifest, "metadata": {**manifest["metadata"], "namespace": namespace}}, engine_settings)
        assert run.phase == "Succeeded", run.message
        assert server.seen[-1]["headers"]["Authorization"] == token
    seen = len(server.seen)
    run = run_workflow({**manifest, "metadata": {**manifest["metadata"], "namespace": "team-c"}}, engine_settings)
    node = run.node(run.name)
    assert node.phase == "Error" and "Secret 'seldon-api' not found in namespace 'team-c'" in node.message
    assert "token-" not in node.message and len(server.seen) == seen  # nothing sent, no value shown


def test_resume_after_kill_9_does_not_send_a_finished_request_again(engine_settings, server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os
    import signal

    from scanflow_argo.engine import prepare_run, resume

    gate = tmp_path / "go"
    sleeper = {"name": "wait", "container": {"image": "busybox", "command": ["sh", "-c", f"test -e {gate} || sleep 60"]}}
    manifest = wf(
        [
            {"name": "main", "steps": [[{"name": "post", "template": "post"}], [{"name": "wait", "template": "wait"}]]},
            http("post", server.url + "/hello", method="POST", body="once"),
            sleeper,
        ]
    )
    run_dir = prepare_run(manifest, engine_settings, source_dir=tmp_path)
    engine = _proc.spawn(
        [engine_settings.engine.python, "-m", "scanflow_argo.platform.local_engine", str(run_dir)], name="engine"
    )
    try:
        deadline = time.monotonic() + 30

        def waiting() -> bool:
            nodes = read_status(run_dir)["status"].get("nodes") or {}
            return any(n["displayName"] == "wait" and n["phase"] == "Running" for n in nodes.values())

        while not waiting() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [s["body"] for s in server.seen] == ["once"]
        os.killpg(engine.pid, signal.SIGKILL)  # the request is done, the sleeper runs
        engine.popen.wait(timeout=10)
    finally:
        engine.stop(timeout=2)
    gate.write_text("")
    run = resume(run_dir, engine_settings)
    assert run.phase == "Succeeded", run.message
    assert [s["body"] for s in server.seen] == ["once"]
    assert run.node("post").outputs["result"] == "hello world"
