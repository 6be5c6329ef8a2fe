"""Artifacts beyond the local repository: http/Artifactory locations, optional inputs passed on, a volume over the
state folder, and ``artifactRepositoryRef``.

Sources (argo-workflows f016ad89): ``workflow/artifacts/http/http.go`` (GET with the location's headers and basic
auth; a 404 is NotFound, another non-2xx ``loading content from <url> failed with reason: <status>``; PUT of the
output, non-2xx ``saving file … failed with reason``), ``workflow/executor/executor.go`` ``loadArtifact`` (an optional
artifact its server does not have is skipped; a tarball is unpacked unless ``archive: none``) and ``saveArtifact``
(outputs tar+gzip by default); e2e ``test/e2e/http_artifacts_test.go``, ``functional_test.go`` TestMissingStepsInUI,
``artifacts_test.go`` TestArtifactEphemeralVolume; ``workflow/artifactrepositories/artifactrepositories.go``
``Resolve``/``get`` and ``operator.go`` (``failed to resolve artifact repository: …`` errors the workflow).
"""

from __future__ import annotations

import base64
import io
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from scanflow_argo.engine import run_workflow
from scanflow_argo.engine.core.state import read_status
from scanflow_argo.platform.apply import _write_config_map
from scanflow_argo.settings import Settings


class Server:
    """A local artifact server: GET serves ``files`` (404 otherwise, ``/fail`` 500), PUT stores the body."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.puts: dict[str, tuple[bytes, dict[str, str]]] = {}
        self.gets: list[dict[str, str]] = []
        self.url = ""


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            state.gets.append(dict(self.headers))
            if self.path == "/fail":
                self.send_response(500, "Internal Server Error")
                self.end_headers()
                return
            body = state.files.get(self.path)
            if body is None:
                self.send_response(404, "Not Found")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_PUT(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.puts[self.path] = (body, dict(self.headers))
            state.files[self.path] = body
            self.send_response(201 if self.path != "/fail" else 500)
            self.end_headers()

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


def wf(templates: list[dict], **spec: Any) -> dict:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "arts-"},
        "spec": {"entrypoint": "main", "templates": templates, **spec},
    }


def sh(name: str, script: str, **extra: Any) -> dict:
    return {"name": name, "container": {"image": "busybox", "command": ["sh", "-c"], "args": [script]}, **extra}


def tgz(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# -- http input artifacts ------------------------------------------------------------------------------------
def test_an_http_input_is_downloaded_with_its_headers_and_a_tarball_unpacked(engine_settings: Settings, server: Server) -> None:
    server.files["/plain"] = b"plain text"
    server.files["/packed"] = tgz("inner.txt", b"from a tarball")
    tmpl = sh("main", "cat /in/plain; echo; cat /in/packed")
    tmpl["inputs"] = {
        "artifacts": [
            {
                "name": "plain",
                "path": "/in/plain",
                "http": {"url": f"{server.url}/plain", "headers": [{"name": "X-Token", "value": "t1"}]},
            },
            {"name": "packed", "path": "/in/packed", "http": {"url": f"{server.url}/packed"}},
        ]
    }
    run = run_workflow(wf([tmpl]), engine_settings)
    assert run.phase == "Succeeded", run.node(run.name).message
    assert run.node(run.name).outputs["result"] == "plain text\nfrom a tarball"
    assert any(h.get("X-Token") == "t1" for h in server.gets)


@pytest.mark.parametrize(
    ("path", "optional", "phase", "message"),
    [
        ("/missing", True, "Succeeded", None),  # executor.go: an optional artifact its server does not have is skipped
        ("/missing", False, "Error", "artifact in failed to load: 404 Not Found"),
        ("/fail", True, "Error", "loading content from {url}/fail failed with reason: 500 Internal Server Error"),
    ],
)
def test_an_http_input_its_server_lacks(
    engine_settings: Settings, server: Server, path: str, optional: bool, phase: str, message: str | None
) -> None:
    tmpl = sh("main", "test -e /in/x && echo there || echo absent")
    tmpl["inputs"] = {"artifacts": [{"name": "in", "path": "/in/x", "optional": optional, "http": {"url": server.url + path}}]}
    run = run_workflow(wf([tmpl]), engine_settings)
    node = run.node(run.name)
    assert node.phase == phase
    if message is None:
        assert node.outputs["result"] == "absent"
    else:
        assert message.format(url=server.url) in (node.message or "")


def test_basic_auth_comes_from_the_local_secret(engine_settings: Settings, server: Server) -> None:
    server.files["/private"] = b"secret content"
    folder = engine_settings.home / "secrets" / "creds"
    folder.mkdir(parents=True)
    (folder / "user").write_text("alice\n")
    (folder / "pass").write_text("s3cr3t")
    auth = {"basicAuth": {"usernameSecret": {"name": "creds", "key": "user"}, "passwordSecret": {"name": "creds", "key": "pass"}}}
    tmpl = sh("main", "cat /in/p")
    tmpl["inputs"] = {"artifacts": [{"name": "p", "path": "/in/p", "http": {"url": f"{server.url}/private", "auth": auth}}]}
    run = run_workflow(wf([tmpl]), engine_settings)
    assert run.phase == "Succeeded" and run.node(run.name).outputs["result"] == "secret content"
    assert server.gets[-1]["Authorization"] == "Basic " + base64.b64encode(b"alice:s3cr3t").decode()


# -- http output artifacts -----------------------------------------------------------------------------------
def test_an_http_output_is_put_archived_by_default_and_read_back_by_its_consumer(
    engine_settings: Settings, server: Server
) -> None:
    make = sh("make", "mkdir -p /out; echo testdata > /out/a; echo raw > /out/b")
    make["outputs"] = {
        "artifacts": [
            {"name": "a", "path": "/out/a", "http": {"url": f"{server.url}/a"}},
            {"name": "b", "path": "/out/b", "http": {"url": f"{server.url}/b"}, "archive": {"none": {}}},
        ]
    }
    use = sh("use", "cat /in/a")
    use["inputs"] = {"artifacts": [{"name": "a", "path": "/in/a"}]}
    main = {
        "name": "main",
        "steps": [
            [{"name": "make", "template": "make"}],
            [
                {
                    "name": "use",
                    "template": "use",
                    "arguments": {"artifacts": [{"name": "a", "from": "{{steps.make.outputs.artifacts.a}}"}]},
                }
            ],
        ],
    }
    run = run_workflow(wf([main, make, use]), engine_settings)
    assert run.phase == "Succeeded", run.message
    with tarfile.open(fileobj=io.BytesIO(server.puts["/a"][0]), mode="r:gz") as tar:  # executor.go: tar + gzip
        member = tar.extractfile(tar.getmembers()[0])
        assert member is not None and member.read() == b"testdata\n"
    assert server.puts["/b"][0] == b"raw\n"
    outputs = run.node("make").outputs["artifacts"]
    assert outputs[0] == {"name": "a", "path": "/out/a", "http": {"url": f"{server.url}/a"}}  # where Argo records it
    assert run.node("use").outputs["result"] == "testdata"  # downloaded again and unpacked


def test_an_http_output_the_server_refuses_errors_the_node(engine_settings: Settings, server: Server) -> None:
    tmpl = sh("main", "mkdir -p /out; echo x > /out/a")
    tmpl["outputs"] = {"artifacts": [{"name": "a", "path": "/out/a", "http": {"url": f"{server.url}/fail"}}]}
    run = run_workflow(wf([tmpl]), engine_settings)
    node = run.node(run.name)
    assert node.phase == "Error" and f"to {server.url}/fail failed with reason: 500" in (node.message or "")


# -- optional inputs passed on, a volume over the state folder ------------------------------------------------
def test_an_optional_input_that_was_not_supplied_is_passed_on_as_absent(engine_settings: Settings) -> None:
    """e2e TestMissingStepsInUI: a steps template passes its absent optional input to a step whose input is optional too."""
    inner = sh("inner", "test -e /tmp/inputFile && echo there || echo absent")
    inner["inputs"] = {"artifacts": [{"name": "inputFile", "optional": True, "path": "/tmp/inputFile"}]}
    outer = {
        "name": "outer",
        "inputs": {"artifacts": [{"name": "inputFile", "optional": True}]},
        "steps": [
            [
                {
                    "name": "run",
                    "template": "inner",
                    "arguments": {"artifacts": [{"name": "inputFile", "from": "{{inputs.artifacts.inputFile}}"}]},
                }
            ]
        ],
    }
    main = {"name": "main", "steps": [[{"name": "outer", "template": "outer"}]]}
    run = run_workflow(wf([main, outer, inner]), engine_settings)
    assert run.phase == "Succeeded", run.message
    assert run.node("run").outputs["result"] == "absent"


def test_a_volume_over_tmp_holding_the_state_folder_keeps_what_nodes_need(engine_settings: Settings) -> None:
    """e2e TestArtifactEphemeralVolume: a claim mounted at /tmp, the input artifact lands in it (the state folder of
    these tests lives under /tmp: it is bound back over the mount)."""
    tmpl = sh("main", "cat /tmp/input/input.txt; echo; pwd")
    tmpl["container"]["workingDir"] = "/tmp"
    tmpl["container"]["volumeMounts"] = [{"name": "vol", "mountPath": "/tmp"}]
    tmpl["inputs"] = {"artifacts": [{"name": "a", "path": "/tmp/input/input.txt", "raw": {"data": "abc"}}]}
    claim = {
        "metadata": {"name": "vol"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Mi"}}},
    }
    run = run_workflow(wf([tmpl], volumeClaimTemplates=[claim]), engine_settings)
    assert run.phase == "Succeeded", run.node(run.name).message
    assert run.node(run.name).outputs["result"] == "abc\n/tmp"


# -- artifactRepositoryRef -----------------------------------------------------------------------------------
REPO = "archiveLogs: true\ns3:\n  bucket: my-bucket\n  endpoint: minio:9000\n"


def _repositories(settings: Settings, annotations: dict[str, str] | None = None) -> None:
    metadata: dict[str, Any] = {"name": "artifact-repositories"}
    if annotations:
        metadata["annotations"] = annotations
    obj = {"kind": "ConfigMap", "metadata": metadata, "data": {"default-v1": REPO, "my-key": REPO}}
    _write_config_map(obj, settings, "default")  # applied into the runs' namespace (they name none: default)


@pytest.mark.parametrize(
    ("ref", "annotated", "expected"),
    [
        ({"key": "my-key"}, False, {"namespace": "default", "configMap": "artifact-repositories", "key": "my-key"}),
        ({}, True, {"namespace": "default", "configMap": "artifact-repositories", "key": "default-v1"}),  # the annotation
        (None, True, {"namespace": "default", "configMap": "artifact-repositories", "key": "default-v1"}),
        (None, False, {"default": True}),
    ],
)
def test_artifact_repository_ref_resolves_to_the_local_configmap(
    engine_settings: Settings, ref: dict | None, annotated: bool, expected: dict
) -> None:
    _repositories(engine_settings, {"workflows.argoproj.io/default-artifact-repository": "default-v1"} if annotated else None)
    tmpl = sh("main", "echo hello world | tee /tmp/hello_world.txt")
    tmpl["outputs"] = {"artifacts": [{"name": "hello_world", "path": "/tmp/hello_world.txt"}]}
    spec = {} if ref is None else {"artifactRepositoryRef": ref}
    run = run_workflow(wf([tmpl], **spec), engine_settings)
    assert run.phase == "Succeeded", run.message
    status = read_status(engine_settings.home / "runs" / run.name)["status"]
    assert status["artifactRepositoryRef"] == expected
    assert "local" in run.node(run.name).outputs["artifacts"][0]  # stored in the local repository


def test_an_artifact_repository_ref_to_nothing_errors_the_workflow(engine_settings: Settings) -> None:
    run = run_workflow(wf([sh("main", "true")], artifactRepositoryRef={"key": "nope"}), engine_settings)
    assert run.phase == "Error"
    assert (run.message or "").startswith("failed to resolve artifact repository: failed to find any artifact repository")
