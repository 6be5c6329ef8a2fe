"""The Argo Server API of ``scanflow-argo server`` over HTTP: Argo's paths, bodies, status codes and error shape.

Follows Argo's own server tests (``test/e2e/argo_server_test.go``: ``TestWorkflowService``,
``TestLintWorkflow``, ``TestHintWhenWorkflowExists``, ``TestWorkflowTemplateService``,
``TestCronWorkflowService``, ``TestWorkflowServiceStream``, ``TestUnauthorized``) and the error
codes of ``server/workflow/workflow_server.go`` / ``server/utils/errors.go`` (grpc-gateway v1 maps
gRPC codes to HTTP statuses: InvalidArgument 400, Unauthenticated 401, NotFound 404,
AlreadyExists 409, ResourceExhausted 429, Internal 500).
"""

from __future__ import annotations

import json
import os
import re
import stat
import time
from typing import Any

import httpx
import pytest
from server_helpers import NAMESPACE, Served, greet_template, shell_workflow, steps_workflow

from scanflow_argo.compile.schema import load_crd
from scanflow_argo.platform._local import control
from scanflow_argo.server import ArgoServer, ServerOptions
from scanflow_argo.server.http import NAMESPACE_MISMATCH

pytestmark = pytest.mark.slow

NS = NAMESPACE


def create(served: Served, wf: dict[str, Any]) -> dict[str, Any]:
    with served.client() as c:
        resp = c.post(f"/api/v1/workflows/{NS}", json={"workflow": wf})
    assert resp.status_code == 200, resp.text
    return resp.json()


def error_of(resp: httpx.Response) -> tuple[int, int, str]:
    body = resp.json()
    assert set(body) == {"code", "message"}, body  # google.rpc.Status as grpc-gateway writes it
    return resp.status_code, body["code"], body["message"]


@pytest.fixture(scope="module")
def finished(served: Served) -> str:
    """A workflow that ran to Succeeded (for the verbs that refuse finished runs)."""
    name = create(served, shell_workflow("echo done", generate="finished-"))["metadata"]["name"]
    served.wait(name)
    return name


@pytest.fixture(scope="module")
def template(served: Served) -> str:
    with served.client() as c:
        resp = c.post(f"/api/v1/workflow-templates/{NS}", json={"template": greet_template()})
    assert resp.status_code == 200, resp.text
    return "greet"


BAD_REQUESTS = [
    # (method, path, body, HTTP status, gRPC code, part of the message)
    ("GET", f"/api/v1/workflows/{NS}/no-such-run", None, 404, 5, 'workflows.argoproj.io "no-such-run" not found'),
    ("DELETE", f"/api/v1/workflows/{NS}/no-such-run", None, 404, 5, "not found"),
    ("GET", "/api/v1/workflows/Not_A_Namespace", None, 400, 3, "not a valid namespace"),
    ("GET", f"/api/v1/workflows/{NS}/..%2F..%2Fserver%2Ftoken", None, 400, 3, "not a valid Kubernetes object name"),
    ("GET", f"/api/v1/workflows/{NS}/.index.json", None, 400, 3, "not a valid Kubernetes object name"),
    ("POST", f"/api/v1/workflows/{NS}", {}, 400, 3, "workflow body not specified"),
    ("POST", f"/api/v1/workflows/{NS}", "{not json", 400, 3, "is not JSON"),
    ("POST", f"/api/v1/workflows/{NS}", [1, 2], 400, 3, "must be a JSON object"),
    ("POST", f"/api/v1/workflows/{NS}", {"workflow": shell_workflow("x") | {"spec": {"templates": []}}}, 400, 3, "entrypoint"),
    ("POST", f"/api/v1/workflows/{NS}/submit", {"resourceKind": "Pod", "resourceName": "x"}, 400, 3,
     "Resource kind 'Pod' is not supported for submitting"),
    ("POST", f"/api/v1/workflows/{NS}/submit", {"resourceKind": "WorkflowTemplate", "resourceName": "no-such-template"}, 404, 5,
     'workflowtemplates.argoproj.io "no-such-template" not found'),
    ("POST", f"/api/v1/workflows/{NS}/submit", {"resourceKind": "WorkflowTemplate", "resourceName": "../../secrets"}, 400, 3,
     "resourceName"),
    ("GET", f"/api/v1/workflows/{NS}?listOptions.labelSelector=app%20in%20(x", None, 400, 3, "label"),
    ("GET", f"/api/v1/workflows/{NS}?listOptions.fieldSelector=spec.foo%3Dbar", None, 400, 3, "unsupported requirement spec.foo=bar"),
    ("GET", f"/api/v1/workflows/{NS}?listOptions.continue=x", None, 400, 3, "listOptions.continue must be int"),
    ("GET", f"/api/v1/workflows/{NS}/x/log?logOptions.follow=maybe", None, 400, 3, "type mismatch, parameter: logOptions.follow"),
    ("GET", f"/api/v1/workflow-templates/{NS}/no-such-template", None, 404, 5, "not found"),
    ("GET", f"/api/v1/cron-workflows/{NS}/no-such-cron", None, 404, 5, "not found"),
    ("POST", f"/api/v1/workflow-templates/{NS}", {"template": {"metadata": {}}}, 400, 3, "metadata.name"),
    # the API server's rule (rest.EnsureObjectNamespaceMatchesRequestNamespace): a body never picks another namespace
    ("POST", f"/api/v1/workflows/{NS}", {"workflow": shell_workflow("x", namespace="other")}, 400, 3, NAMESPACE_MISMATCH),
    ("POST", f"/api/v1/workflows/{NS}", {"workflow": shell_workflow("x", namespace="../../server")}, 400, 3, NAMESPACE_MISMATCH),
    ("POST", f"/api/v1/workflow-templates/{NS}", {"template": greet_template("elsewhere", "other")}, 400, 3, NAMESPACE_MISMATCH),
    ("PUT", f"/api/v1/workflow-templates/{NS}/elsewhere", {"template": greet_template("elsewhere", "../x")}, 400, 3,
     NAMESPACE_MISMATCH),
    ("POST", f"/api/v1/cron-workflows/{NS}", {"cronWorkflow": {"metadata": {"name": "elsewhere", "namespace": "other"},
     "spec": {"schedules": ["0 2 * * *"], "workflowSpec": shell_workflow("x")["spec"]}}}, 400, 3, NAMESPACE_MISMATCH),
    ("GET", "/api/v1/no-such-service", None, 404, 5, "Not Found"),
    ("DELETE", "/api/v1/info", None, 501, 12, "Method Not Allowed"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code", "message"), BAD_REQUESTS, ids=[f"{r[0]} {r[1][:60]}" for r in BAD_REQUESTS]
)
def test_bad_requests_get_argos_error_shape_and_status(
    served: Served, method: str, path: str, body: Any, status: int, code: int, message: str
) -> None:
    """Every refusal is ``{"code", "message"}`` with the status grpc-gateway gives the gRPC code."""
    with served.client() as c:
        content = body if isinstance(body, str) else (json.dumps(body) if body is not None else None)
        resp = c.request(method, path, content=content, headers={"Content-Type": "application/json"} if content else {})
    got = error_of(resp)
    assert got[:2] == (status, code), got
    assert message in got[2]


def test_objects_are_written_into_the_namespace_of_the_path(served: Served) -> None:
    """What a body's ``metadata.namespace`` may say (the API server's ``BeforeCreate``): nothing (the path's is
    taken) or the path's; a refused one wrote nothing; a cluster-scoped template keeps none."""
    with served.client() as c:
        assert c.post(f"/api/v1/workflows/{NS}", json={"workflow": shell_workflow("x", namespace="other")}).status_code == 400
        tmpl = greet_template("ns-of-path")
        del tmpl["metadata"]["namespace"]
        assert c.post(f"/api/v1/workflow-templates/{NS}", json={"template": tmpl}).json()["metadata"]["namespace"] == NS
        cluster = {**greet_template("ns-cluster"), "kind": "ClusterWorkflowTemplate"}
        created = c.post("/api/v1/cluster-workflow-templates", json={"template": cluster})
        assert created.status_code == 200, created.text
        assert "namespace" not in created.json()["metadata"]
    assert {r.name for r in served.platform.list_runs()}.isdisjoint({"x"})
    names = [t["metadata"]["name"] for t in served.platform.list_templates("WorkflowTemplate")]
    assert "ns-of-path" in names and "elsewhere" not in names


def test_hostile_bodies_and_rebinding_hosts_are_refused(served: Served) -> None:
    """As every server of the project (``httpguard``): JSON nested past 64 levels or with non-finite numbers
    is a 400, and on loopback a foreign ``Host`` (a DNS-rebinding page) is refused even with the token."""
    with served.client() as c:
        deep = c.post(f"/api/v1/workflows/{NS}/lint", content="[" * 100 + "]" * 100, headers={"Content-Type": "application/json"})
        assert error_of(deep)[:2] == (400, 3) and "nested more than 64" in error_of(deep)[2]
        nan = c.post(
            f"/api/v1/workflows/{NS}/lint", content='{"workflow": {"x": NaN}}', headers={"Content-Type": "application/json"}
        )
        assert error_of(nan)[:2] == (400, 3) and "NaN" in error_of(nan)[2]
        rebound = c.get(f"/api/v1/workflows/{NS}", headers={"Host": "attacker.example:2746"})
        assert error_of(rebound)[:2] == (403, 7) and "DNS rebinding" in error_of(rebound)[2]
        assert c.get(f"/api/v1/workflows/{NS}", headers={"Host": f"localhost:{served.server.port}"}).status_code == 200


def test_oversized_body_is_refused_before_it_is_read_whole(served: Served) -> None:
    with served.client() as c:
        resp = c.post(
            f"/api/v1/workflows/{NS}", content=b"{" + b" " * (5 << 20) + b"}", headers={"Content-Type": "application/json"}
        )
    status, code, message = error_of(resp)
    assert (status, code) == (429, 8) and "larger than" in message


def test_authentication_as_argos_client_mode(served: Served) -> None:
    """``TestUnauthorized``: no or a wrong token is 401 without the version header; the right one passes;
    the token file is the user's alone."""
    for token in (None, "not-the-token", served.token[:-1] + ("x" if served.token[-1] != "x" else "y")):
        with served.client(token) as c:
            resp = c.get(f"/api/v1/workflows/{NS}")
        assert error_of(resp)[:2] == (401, 16)
        assert "Grpc-Metadata-Argo-Version" not in resp.headers
    with served.client() as c:
        resp = c.get("/api/v1/version")
    assert resp.status_code == 200 and resp.headers["Grpc-Metadata-Argo-Version"] == resp.json()["version"]
    path = served.settings.home / "server" / "token"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert httpx.get(served.url + "/healthz").status_code == 200  # the readiness probe is open


def test_browser_cookie_login_and_cross_site_writes(served: Served) -> None:
    """Pages send the browser to the login page; the cookie it sets works for the API, but a write that
    carries only the cookie and comes from another origin is refused."""
    with httpx.Client(base_url=served.url, timeout=10) as browser:
        page = browser.get("/workflows?phase=Running")
        assert page.status_code == 302 and page.headers["Location"].startswith("/login?next=")
        bad = browser.post("/login", data={"token": "wrong", "next": "/workflows"})
        assert bad.status_code == 401 and served.token not in bad.text
        ok = browser.post("/login", data={"token": served.token, "next": "https://evil.example/"})
        assert ok.status_code == 303 and ok.headers["Location"] == "/workflows"  # only paths of this server
        cookie = ok.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert browser.get(f"/api/v1/workflows/{NS}").status_code == 200
        foreign = browser.post(
            f"/api/v1/workflows/{NS}/lint", json={"workflow": shell_workflow("x")}, headers={"Origin": "https://evil.example"}
        )
        assert error_of(foreign)[:2] == (403, 7)
        own = browser.post(f"/api/v1/workflows/{NS}/lint", json={"workflow": shell_workflow("x")}, headers={"Origin": served.url})
        assert own.status_code == 200


def test_without_a_token_writes_from_other_sites_are_refused(served: Served) -> None:
    """``--auth-mode server`` (no token, loopback only): nothing stops a page of another site from posting a
    Workflow to 127.0.0.1 but its ``Origin``/``Sec-Fetch-Site``, so such writes are refused; reads and clients that
    are not browsers (no ``Origin``) pass."""
    before = {r.name for r in served.platform.list_runs()}
    server = ArgoServer(served.platform, served.settings, None, ServerOptions(port=0, namespace=NS))
    with server as open_server, httpx.Client(base_url=server.url, timeout=10) as c:
        body = {"workflow": shell_workflow("echo pwned")}
        for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}):
            refused = c.post(f"/api/v1/workflows/{NS}", json=body, headers=headers)
            assert error_of(refused)[:2] == (403, 7), headers
            assert "cross-origin request refused" in error_of(refused)[2]
        assert c.post(f"/api/v1/workflows/{NS}/lint", json=body).status_code == 200  # Hera, curl: no Origin
        same = c.post(f"/api/v1/workflows/{NS}/lint", json=body, headers={"Origin": open_server.url})
        assert same.status_code == 200
        assert c.get(f"/api/v1/workflows/{NS}", headers={"Origin": "https://evil.example"}).status_code == 200
    assert {r.name for r in served.platform.list_runs()} == before  # nothing was created


def test_schema_checks_are_ready_before_the_first_submission(served: Served) -> None:
    """The Workflow CRD and its CEL rules (seconds to load) are loaded when the server starts, not by the first
    create or submit, which would wait for them (``Linter.warm``)."""
    load_crd.cache_clear()
    server = ArgoServer(served.platform, served.settings, served.token, ServerOptions(port=0, namespace=NS))
    with server:
        deadline = time.monotonic() + 60
        while load_crd.cache_info().currsize == 0:  # no request was made
            assert time.monotonic() < deadline, "the server did not load the Workflow CRD by itself"
            time.sleep(0.05)


def test_workflow_service(served: Served) -> None:
    """``TestWorkflowService``: create, list by label, fields, get, suspend, resume, terminate, resubmit, delete."""
    wf = shell_workflow("echo started; sleep 60", generate="test-", labels={"workflows.argoproj.io/test": "subject-1"})
    created = create(served, wf)
    name, uid = created["metadata"]["name"], created["metadata"]["uid"]
    assert created["metadata"]["namespace"] == NS and uid
    served.wait(name, phases=("Running",))
    with served.client() as c:
        listed = c.get(
            f"/api/v1/workflows/{NS}", params={"listOptions.labelSelector": "workflows.argoproj.io/test=subject-1"}
        ).json()
        assert [i["metadata"]["name"] for i in listed["items"]] == [name]
        assert listed["items"][0]["status"]["nodes"]
        slim = c.get(
            f"/api/v1/workflows/{NS}",
            params={
                "listOptions.labelSelector": "workflows.argoproj.io/test=subject-1",
                "fields": "-items.status.nodes,items.status.finishedAt,items.status.startedAt",
            },
        ).json()
        assert "metadata" in slim and "nodes" not in slim["items"][0]["status"] and "phase" in slim["items"][0]["status"]
        running = c.get(
            f"/api/v1/workflows/{NS}", params={"listOptions.labelSelector": "workflows.argoproj.io/phase in (Running)"}
        ).json()
        assert name in [i["metadata"]["name"] for i in running["items"]]
        assert c.get(f"/api/v1/workflows/{NS}/{name}").json()["status"]["nodes"]
        assert c.get(f"/api/v1/workflows/{NS}/{name}", params={"uid": uid}).status_code == 200
        assert c.get(f"/api/v1/workflows/{NS}/{name}", params={"uid": "another"}).status_code == 404
        phase_only = c.get(f"/api/v1/workflows/{NS}/{name}", params={"fields": "status.phase"}).json()
        assert phase_only == {"status": {"phase": "Running"}}
        assert c.get(f"/api/v1/workflows/{NS}/@latest").json()["metadata"]["name"] == name

        assert c.put(f"/api/v1/workflows/{NS}/{name}/suspend").status_code == 200
        assert c.get(f"/api/v1/workflows/{NS}/{name}").json()["spec"]["suspend"] is True
        assert c.put(f"/api/v1/workflows/{NS}/{name}/resume").status_code == 200
        assert "suspend" not in c.get(f"/api/v1/workflows/{NS}/{name}").json()["spec"]

        terminated = c.put(f"/api/v1/workflows/{NS}/{name}/terminate")
        assert terminated.status_code == 200, terminated.text
        done = served.wait(name)
        assert done["status"]["phase"] == "Failed" and done["status"]["message"] == "Stopped with strategy 'Terminate'"
        assert not served.platform.engine_alive(name)  # the engine and its pod were ended, not left behind

        resubmitted = c.put(f"/api/v1/workflows/{NS}/{name}/resubmit", json={"memoized": False})
        assert resubmitted.status_code == 200, resubmitted.text
        again = resubmitted.json()["metadata"]
        assert again["name"] != name and again["labels"]["workflows.argoproj.io/resubmitted-from-workflow"] == name
        assert c.put(f"/api/v1/workflows/{NS}/{again['name']}/terminate").status_code == 200
        assert error_of(c.put(f"/api/v1/workflows/{NS}/{name}/resubmit", json={"memoized": True}))[:2] == (400, 3)

        assert c.delete(f"/api/v1/workflows/{NS}/{name}").status_code == 200
        assert c.get(f"/api/v1/workflows/{NS}/{name}").status_code == 404
        assert not (served.settings.home / "runs" / name).exists()


def test_stop_runs_exit_handlers_and_refuses_finished_runs(served: Served, finished: str) -> None:
    """Stop is Argo's ``Stop``: the run fails with Argo's message and its exit handler still runs;
    stopping or suspending a finished run is refused with Argo's codes."""
    wf = shell_workflow("sleep 60", generate="stop-")
    wf["spec"]["onExit"] = "bye"
    wf["spec"]["templates"].append({"name": "bye", "container": {"image": "alpine:3", "command": ["sh", "-c", "echo bye"]}})
    name = create(served, wf)["metadata"]["name"]
    served.wait(name, phases=("Running",))
    time.sleep(0.5)
    with served.client() as c:
        assert c.put(f"/api/v1/workflows/{NS}/{name}/stop", json={"message": "enough"}).status_code == 200
        done = served.wait(name)
        assert done["status"]["message"] == "Stopped with strategy 'Stop'" and done["spec"]["shutdown"] == "Stop"
        assert any(n["displayName"] == f"{name}.onExit" and n["phase"] == "Succeeded" for n in done["status"]["nodes"].values())
        assert error_of(c.put(f"/api/v1/workflows/{NS}/{finished}/stop"))[:2] == (500, 13)
        assert error_of(c.put(f"/api/v1/workflows/{NS}/{finished}/terminate"))[:2] == (500, 13)
        assert error_of(c.put(f"/api/v1/workflows/{NS}/{finished}/suspend")) == (400, 3, "cannot suspend completed workflows")
        assert error_of(c.put(f"/api/v1/workflows/{NS}/{finished}/retry"))[2] == (
            "To retry a succeeded workflow, set the options restartSuccessful and nodeFieldSelector"
        )
        assert error_of(c.put(f"/api/v1/workflows/{NS}/{finished}/set", json={"phase": "Succeeded"}))[:2] == (500, 13)
        assert (
            "suspend nodes" in error_of(c.put(f"/api/v1/workflows/{NS}/{finished}/resume", json={"nodeFieldSelector": "id=x"}))[2]
        )


def test_suspend_holds_the_next_node_until_resume(served: Served) -> None:
    """Argo's ``spec.suspend``: no new node starts while it is set — here suspended the moment it is created,
    before its engine has started; the running step finishes, the next one waits for ``resume``."""
    name = create(served, steps_workflow(first="sleep 1"))["metadata"]["name"]
    with served.client() as c:
        assert c.put(f"/api/v1/workflows/{NS}/{name}/suspend").json()["spec"]["suspend"] is True
        time.sleep(3)
        doc = c.get(f"/api/v1/workflows/{NS}/{name}").json()
        assert doc["status"]["phase"] in ("Pending", "Running") and doc["spec"]["suspend"] is True
        assert "two" not in {n["displayName"] for n in doc["status"].get("nodes", {}).values()}
        assert c.put(f"/api/v1/workflows/{NS}/{name}/resume").status_code == 200
    assert served.wait(name)["status"]["phase"] == "Succeeded"


def test_stop_closes_a_run_whose_engine_is_gone(served: Served) -> None:
    name = create(served, shell_workflow("sleep 60", generate="orphan-"))["metadata"]["name"]
    served.wait(name, phases=("Running",))
    run_dir = served.platform.run_dir(name)
    control.kill_engine(run_dir, served.platform.engine_pid(run_dir))  # the engine died (with its pod)
    with served.client() as c:
        stopped = c.put(f"/api/v1/workflows/{NS}/{name}/stop")
    assert stopped.status_code == 200, stopped.text
    assert (stopped.json()["status"]["phase"], stopped.json()["status"]["message"]) == ("Failed", "Stopped with strategy 'Stop'")


def test_retry_reruns_what_failed_and_keeps_what_succeeded(served: Served) -> None:
    """Argo's retry (``FormulateRetryWorkflow``): the failed step runs again (here with a new parameter
    value), the succeeded one is reused, the run ends Succeeded under the same name."""
    # retried with ok=yes, step two takes 2 s: the second retry meets the run Running, however fast the engine
    wf = steps_workflow(second='[ "{{workflow.parameters.ok}}" = yes ] && sleep 2')
    wf["spec"]["arguments"] = {"parameters": [{"name": "ok", "value": "no"}]}
    name = create(served, wf)["metadata"]["name"]
    failed = served.wait(name)
    assert failed["status"]["phase"] == "Failed"
    one = next(n for n in failed["status"]["nodes"].values() if n["displayName"] == "one")
    with served.client() as c:
        retried = c.put(f"/api/v1/workflows/{NS}/{name}/retry", json={"parameters": ["ok=yes"]})
        assert retried.status_code == 200, retried.text
        assert error_of(c.put(f"/api/v1/workflows/{NS}/{name}/retry"))[2].startswith("Cannot retry a workflow in phase")
    done = served.wait(name)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    one_again = done["status"]["nodes"][one["id"]]
    assert one_again["phase"] == "Succeeded" and one_again["finishedAt"] == one["finishedAt"]  # reused, not run again
    assert {p["name"]: p["value"] for p in done["spec"]["arguments"]["parameters"]} == {"ok": "yes"}


def test_create_conflict_dry_run_and_lint(served: Served) -> None:
    """``TestHintWhenWorkflowExists``, ``TestCreateWorkflowDryRun``, ``TestLintWorkflow``."""
    wf = shell_workflow("echo hint", generate="")
    wf["metadata"] = {"name": "hint", "labels": {"workflows.argoproj.io/test": "true"}}
    with served.client() as c:
        assert c.post(f"/api/v1/workflows/{NS}", json={"workflow": wf}).status_code == 200
        status, code, message = error_of(c.post(f"/api/v1/workflows/{NS}", json={"workflow": wf}))
        assert (status, code) == (409, 6) and "already exists" in message
        dry = c.post(
            f"/api/v1/workflows/{NS}",
            json={"workflow": {**wf, "metadata": {"name": "test"}}, "createOptions": {"dryRun": ["All"]}},
        )
        assert dry.status_code == 200 and "uid" not in dry.json()["metadata"]
        assert c.get(f"/api/v1/workflows/{NS}/test").status_code == 404
        assert c.post(f"/api/v1/workflows/{NS}/lint", json={"workflow": wf}).status_code == 200
        broken = steps_workflow()
        broken["spec"]["templates"][0]["steps"][1][0]["template"] = "missing"
        status, code, message = error_of(c.post(f"/api/v1/workflows/{NS}/lint", json={"workflow": broken}))
        assert (status, code) == (400, 3) and "missing" in message
    served.wait("hint")


def test_submit_from_template_applies_submit_options(served: Served, template: str) -> None:
    """``SubmitWorkflow``: a WorkflowTemplate becomes a Workflow with ``workflowTemplateRef``, Argo's label,
    the parameters and labels of the submit options; an enum value outside its list is refused."""
    with served.client() as c:
        resp = c.post(
            f"/api/v1/workflows/{NS}/submit",
            json={"resourceKind": "WorkflowTemplate", "resourceName": template,
                  "submitOptions": {"parameters": ["who=api", "mood=calm"], "labels": "origin=test"}},
        )  # fmt: skip
        assert resp.status_code == 200, resp.text
        wf = resp.json()
        refused = c.post(
            f"/api/v1/workflows/{NS}/submit",
            json={"resourceKind": "workflowtemplates", "resourceName": template, "submitOptions": {"parameters": ["mood=angry"]}},
        )
        assert error_of(refused) == (400, 3, "spec.arguments.mood.value should be present in spec.arguments.mood.enum list")
        bad_param = c.post(
            f"/api/v1/workflows/{NS}/submit",
            json={"resourceKind": "WorkflowTemplate", "resourceName": template, "submitOptions": {"parameters": ["oops"]}},
        )
        assert "expected parameter of the form: NAME=VALUE" in error_of(bad_param)[2]
    meta = wf["metadata"]
    assert meta["generateName"] == f"{template}-" and meta["labels"]["workflows.argoproj.io/workflow-template"] == template
    assert meta["labels"]["origin"] == "test"
    done = served.wait(meta["name"])
    assert done["status"]["phase"] == "Succeeded"
    pods = [n for n in done["status"]["nodes"].values() if n["displayName"] == "say"]
    with served.client() as c:
        log = c.get(f"/api/v1/workflows/{NS}/{meta['name']}/log", params={"podName": pods[0]["podName"]})
    assert [json.loads(line)["result"] for line in log.text.splitlines()] == [
        {"content": "hello api, calm", "podName": pods[0]["podName"]}
    ]


def test_workflow_template_and_cron_workflow_services(served: Served) -> None:
    """``TestWorkflowTemplateService`` and ``TestCronWorkflowService``: create, list by label, get, update with
    the resource version (a stale one is a conflict), lint, suspend and resume a CronWorkflow, submit one, delete."""
    base = f"/api/v1/workflow-templates/{NS}"
    tmpl = greet_template("crud-template")
    with served.client() as c:
        created = c.post(base, json={"template": tmpl}).json()
        assert created["metadata"]["resourceVersion"] and created["metadata"]["uid"]
        assert error_of(c.post(base, json={"template": tmpl}))[:2] == (409, 6)
        listed = c.get(base, params={"listOptions.labelSelector": "app=greet"}).json()["items"]
        assert "crud-template" in [t["metadata"]["name"] for t in listed]
        assert c.get(base, params={"listOptions.labelSelector": "app=nope"}).json()["items"] == []
        got = c.get(f"{base}/crud-template").json()
        got["spec"]["arguments"]["parameters"][0]["value"] = "everyone"
        updated = c.put(f"{base}/crud-template", json={"template": got})
        assert updated.status_code == 200, updated.text
        assert updated.json()["spec"]["arguments"]["parameters"][0]["value"] == "everyone"
        stale = c.put(f"{base}/crud-template", json={"template": got})  # the resourceVersion of before the update
        assert error_of(stale)[:2] == (409, 6) and "modified" in error_of(stale)[2]
        assert c.post(f"{base}/lint", json={"template": tmpl}).status_code == 200
        assert c.delete(f"{base}/crud-template").status_code == 200
        assert c.get(f"{base}/crud-template").status_code == 404
        # Hera's WorkflowTemplate(generate_name=...).create(): the API server names it from the prefix
        gen = {**tmpl, "metadata": {"generateName": "gen-tmpl-", "labels": {"app": "greet"}}}
        named = c.post(base, json={"template": gen}).json()["metadata"]["name"]
        assert re.fullmatch(r"gen-tmpl-[bcdfghjklmnpqrstvwxz2456789]{5}", named), named
        assert c.delete(f"{base}/{named}").status_code == 200

        cron = {
            "metadata": {"name": "nightly", "labels": {"app": "greet"}},
            "spec": {
                "schedules": ["0 2 * * *"],
                "workflowMetadata": {"labels": {"from": "cron"}},
                "workflowSpec": shell_workflow("echo nightly")["spec"],
            },
        }
        cbase = f"/api/v1/cron-workflows/{NS}"
        assert c.post(cbase, json={"cronWorkflow": cron}).status_code == 200
        assert c.put(f"{cbase}/nightly/suspend").json()["spec"]["suspend"] is True
        assert c.get(f"{cbase}/nightly").json()["spec"]["suspend"] is True
        assert c.put(f"{cbase}/nightly/resume").json()["spec"]["suspend"] is False
        run = c.post(f"/api/v1/workflows/{NS}/submit", json={"resourceKind": "CronWorkflow", "resourceName": "nightly"}).json()
        assert (
            run["metadata"]["labels"]["workflows.argoproj.io/cron-workflow"] == "nightly"
            and run["metadata"]["labels"]["from"] == "cron"
        )
        assert "workflows.argoproj.io/scheduled-time" in run["metadata"]["annotations"]
        assert c.delete(f"{cbase}/nightly").status_code == 200
    assert served.wait(run["metadata"]["name"])["status"]["phase"] == "Succeeded"


def test_watch_sends_added_then_changes_as_lines_or_server_sent_events(served: Served) -> None:
    """``TestWorkflowServiceStream``: the watch starts with ADDED and follows the run to Succeeded; with
    ``Accept: text/event-stream`` the same messages come as ``data:`` events."""
    name = create(served, shell_workflow("sleep 1; echo ok", generate="watch-"))["metadata"]["name"]
    params = {"listOptions.fieldSelector": f"metadata.name={name}"}
    seen: list[tuple[str, str]] = []
    with served.client() as c, c.stream("GET", f"/api/v1/workflow-events/{NS}", params=params) as resp:
        assert resp.headers["Content-Type"].startswith("application/json")
        for line in resp.iter_lines():
            event = json.loads(line)["result"]
            assert event["object"]["metadata"]["name"] == name and "nodes" in event["object"]["status"]
            seen.append((event["type"], event["object"]["status"]["phase"]))
            if seen[-1][1] == "Succeeded":
                break
    assert seen[0][0] == "ADDED" and seen[-1] == ("MODIFIED", "Succeeded")
    sse = httpx.Client(
        base_url=served.url, headers={"Authorization": f"Bearer {served.token}", "Accept": "text/event-stream"}, timeout=10
    )
    with (
        sse,
        sse.stream(
            "GET", f"/api/v1/workflow-events/{NS}", params={**params, "fields": "result.type,result.object.status.phase"}
        ) as resp,
    ):
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        line = next(line for line in resp.iter_lines() if line)
    assert line.startswith("data: ") and json.loads(line[6:]) == {
        "result": {"type": "ADDED", "object": {"status": {"phase": "Succeeded"}}}
    }


def test_logs_follow_while_the_pod_writes_and_end_with_it(served: Served) -> None:
    """``PodLogs`` with ``follow``: lines arrive while the pod runs; the stream ends when the pod does."""
    name = create(served, shell_workflow("for i in 1 2 3 4; do echo line $i; sleep 0.4; done", generate="follow-"))["metadata"][
        "name"
    ]
    with served.client() as c:
        got: list[tuple[str, str]] = []
        with c.stream("GET", f"/api/v1/workflows/{NS}/{name}/{name}/log", params={"logOptions.follow": "true"}) as resp:
            for line in resp.iter_lines():
                got.append(
                    (json.loads(line)["result"]["content"], c.get(f"/api/v1/workflows/{NS}/{name}").json()["status"]["phase"])
                )
        assert [content for content, _ in got] == ["line 1", "line 2", "line 3", "line 4"]
        assert got[0][1] in ("Pending", "Running")  # the first line came before the pod had finished
        tail = c.get(
            f"/api/v1/workflows/{NS}/{name}/log", params={"podName": name, "logOptions.tailLines": "2", "grep": "line [34]"}
        )
        assert [json.loads(x)["result"]["content"] for x in tail.text.splitlines()] == ["line 3", "line 4"]
        assert error_of(c.get(f"/api/v1/workflows/{NS}/{name}/log", params={"podName": name, "logOptions.container": "wait"}))[
            :2
        ] == (400, 3)
        assert error_of(c.get(f"/api/v1/workflows/{NS}/{name}/log", params={"podName": "elsewhere"}))[:2] == (404, 5)


def test_logs_of_every_pod_name_their_pod(served: Served) -> None:
    name = create(served, steps_workflow())["metadata"]["name"]
    served.wait(name)
    with served.client() as c:
        lines = [json.loads(x)["result"] for x in c.get(f"/api/v1/workflows/{NS}/{name}/log").text.splitlines()]
    assert [entry["content"] for entry in lines] == ["one done", "two"]
    assert lines[0]["podName"].startswith(f"{name}-one-") and lines[1]["podName"].startswith(f"{name}-two-")


def test_info_version_userinfo_and_no_secret_in_answers(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://scientist:hunter2@mlflow.example:5000")
    with served.client() as c:
        info = c.get("/api/v1/info").json()
        assert info["managedNamespace"] == NS and {"MLflow", "Prometheus"} <= {link["name"] for link in info["links"]}
        version = c.get("/api/v1/version").json()
        assert set(version) >= {
            "version",
            "buildDate",
            "gitCommit",
            "gitTag",
            "gitTreeState",
            "goVersion",
            "compiler",
            "platform",
        }
        assert c.get("/api/v1/userinfo").status_code == 200
        pages = [
            c.get(p).text
            for p in (
                "/api/v1/info",
                "/api/v1/userinfo",
                "/workflows",
                "/static/app.js",
                "/scanflow/api/agents",
                "/scanflow/api/deployments",
            )
        ]
    assert all(served.token not in page and "hunter2" not in page for page in pages)
    assert {"name": "MLflow", "scope": "workflow-list", "url": "https://mlflow.example:5000", "target": "_blank"} in info["links"]


def test_workflow_templates_are_namespaced(served: Served) -> None:
    """A WorkflowTemplate is a namespaced object (Argo's CRD, ``scope: Namespaced``; the server's
    ``workflow_template_server.go`` reads it in the request's namespace): one name in two namespaces is two
    objects, listed, read, submitted and deleted by namespace."""
    other = "scanflow-other"
    with served.client() as c:
        for ns, who in ((NS, "here"), (other, "there")):
            tmpl = greet_template("twin", ns)
            tmpl["spec"]["arguments"]["parameters"][0]["value"] = who
            assert c.post(f"/api/v1/workflow-templates/{ns}", json={"template": tmpl}).status_code == 200
        for ns, who in ((NS, "here"), (other, "there")):
            got = c.get(f"/api/v1/workflow-templates/{ns}/twin").json()
            assert (got["metadata"]["namespace"], got["spec"]["arguments"]["parameters"][0]["value"]) == (ns, who)
            names = [
                (t["metadata"]["namespace"], t["metadata"]["name"])
                for t in c.get(f"/api/v1/workflow-templates/{ns}").json()["items"]
            ]
            assert (ns, "twin") in names and all(n == ns for n, _ in names)
        run = c.post(
            f"/api/v1/workflows/{other}/submit", json={"resourceKind": "WorkflowTemplate", "resourceName": "twin"}
        ).json()
        assert run["metadata"]["namespace"] == other
        assert c.delete(f"/api/v1/workflow-templates/{NS}/twin").status_code == 200
        assert c.get(f"/api/v1/workflow-templates/{NS}/twin").status_code == 404
        assert c.get(f"/api/v1/workflow-templates/{other}/twin").status_code == 200  # the other namespace's stays
    deadline = time.monotonic() + 60
    with served.client() as c:
        while True:
            done = c.get(f"/api/v1/workflows/{other}/{run['metadata']['name']}").json()
            if (done.get("status") or {}).get("phase") in ("Succeeded", "Failed", "Error"):
                break
            assert time.monotonic() < deadline, done.get("status")
            time.sleep(0.1)
    assert done["status"]["phase"] == "Succeeded", done["status"].get("message")
    params = {p["name"]: p.get("value") for p in done["spec"]["arguments"]["parameters"]}
    assert params["who"] == "there"  # the other namespace's template, not this one's
