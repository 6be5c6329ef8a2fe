"""Hostile and broken inputs to local serving: real replicas (seldon-core microservices) behind the router.

One deployment of one replica serves the whole module. What is checked: no socket of the deployment
listens beyond loopback (``ss -ltnp``, iproute2); web pages and foreign ``Host`` names are refused
by the router and by the replica itself; NaN, Infinity, ``null`` and overflowing numbers are refused
with a 400 in Seldon's error shape in every payload format, for predictions and feedback, and never
reach the feedback store or the reward counter.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from scanflow_argo.serving.controller import LocalDeployments, deployment_manifest
from scanflow_argo.settings import Settings

from ._models import mnist
from .conftest import deployment_state

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
NAME = "hostile"


@pytest.fixture(scope="module")
def msettings(tmp_path_factory: pytest.TempPathFactory, serving_python: Path) -> Settings:
    from dataclasses import replace

    s = Settings.from_env(environ={}).with_home(tmp_path_factory.mktemp("serving-home"))
    return replace(s, serving=replace(s.serving, venv=ROOT / ".venv-serving", start_timeout=120.0))


@pytest.fixture(scope="module")
def served(msettings: Settings, model_v1: Path) -> Any:
    deployments = LocalDeployments(msettings)
    status = deployments.apply(deployment_manifest(NAME, str(model_v1), 1, "scanflow"))
    try:
        yield status
    finally:
        deployments.delete(NAME)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _listening(pgids: set[int]) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket listening in one of these process groups, from ``ss -ltnp``."""
    ss = shutil.which("ss")
    if ss is None:
        pytest.fail("ss (iproute2) is missing: apt-get install iproute2")
    out = subprocess.run([ss, "-Hltnp"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        fields = line.split()
        local = fields[3]
        pids = {int(p) for p in re.findall(r"pid=(\d+)", line)}
        if any(_pgid(p) in pgids for p in pids):
            address, _, port = local.rpartition(":")
            found.append((address, int(port)))
    return found


def test_router_and_replicas_listen_on_loopback_only(served: Any, msettings: Settings) -> None:
    state = deployment_state(msettings.home, NAME)
    supervisor = json.loads((Path(msettings.home) / "deployments" / NAME / "supervisor.json").read_text())["pid"]
    groups = {supervisor, *(r["pid"] for r in state["replicaProcesses"])}  # each leads its own process group
    sockets = _listening(groups)
    replica = state["replicaProcesses"][0]
    router_port = int(served.endpoint.rsplit(":", 1)[1])
    assert {port for _, port in sockets} >= {router_port, replica["http_port"], replica["metrics_port"]}, sockets
    beyond = [(a, p) for a, p in sockets if a not in ("127.0.0.1", "[::1]")]
    assert not beyond, f"sockets of the deployment listening beyond loopback: {beyond}"


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({"Origin": "http://evil.example"}, "cross-site"),
        ({"Origin": "null"}, "cross-site"),
        ({"Host": "evil.example"}, "Host"),
        ({"Host": "rebound.example:8080", "Origin": "http://rebound.example:8080"}, "Host"),
    ],
)
def test_web_pages_and_foreign_hosts_are_refused_by_router_and_replica(
    served: Any, msettings: Settings, headers: dict[str, str], why: str
) -> None:
    replica = deployment_state(msettings.home, NAME)["replicaProcesses"][0]
    body = {"data": {"ndarray": mnist()[0][:1].reshape(1, -1).tolist()}}
    for url in (
        f"{served.endpoint}/api/v1.0/predictions",
        f"http://127.0.0.1:{replica['http_port']}/api/v1.0/predictions",
        f"http://127.0.0.1:{replica['metrics_port']}/metrics",
    ):
        resp = httpx.post(url, json=body, headers=headers) if "predictions" in url else httpx.get(url, headers=headers)
        assert resp.status_code == 403, (url, resp.text)
        status = resp.json()["status"]
        assert status["status"] == "FAILURE" and status["reason"] == "FORBIDDEN" and why in status["info"], url
    # A program on this machine (no Origin) is served, directly or through the router.
    assert httpx.post(f"{served.endpoint}/api/v1.0/predictions", json=body).status_code == 200
    assert httpx.post(f"http://127.0.0.1:{replica['http_port']}/api/v1.0/predictions", json=body).status_code == 200


def _nan_bits(n: int) -> str:
    values = np.zeros(n, dtype="<f4")
    raw = bytearray(values.tobytes())
    raw[0:4] = (0x7FC00001).to_bytes(4, "little")  # a quiet NaN with a payload
    raw[8:12] = (0x7F800000).to_bytes(4, "little")  # +Infinity
    return base64.b64encode(bytes(raw)).decode()


def _ndarray(value: str) -> bytes:
    """One MNIST input as ``data.ndarray`` JSON with its first pixel written as ``value`` (raw JSON text)."""
    row = json.dumps(mnist()[0][0].reshape(-1).tolist()[1:])
    return f'{{"data": {{"ndarray": [[{value}, {row[1:]}]}}}}'.encode()


def _tensor(value: str) -> bytes:
    values = json.dumps(mnist()[0][0].reshape(-1).tolist()[1:])
    return f'{{"data": {{"tensor": {{"shape": [1, 784], "values": [{value}, {values[1:]}}}}}}}'.encode()


PREDICTIONS = {
    "ndarray NaN": _ndarray("NaN"),
    "ndarray -Infinity": _ndarray("-Infinity"),
    "ndarray 1e400": _ndarray("1e400"),
    "ndarray 1e39 (beyond float32)": _ndarray("1e39"),
    "ndarray null": _ndarray("null"),
    "tensor NaN": _tensor("NaN"),
    "tensor Infinity": _tensor("Infinity"),
    "tensor null": _tensor("null"),
    "tensor 1e400": _tensor("1e400"),
    "binData NaN and Inf bits": json.dumps({"binData": _nan_bits(784)}).encode(),
}


def _feedback(request: str, truth: str = "[7]", reward: str = "0") -> bytes:
    return f'{{"request": {request}, "truth": {{"data": {{"ndarray": {truth}}}}}, "reward": {reward}}}'.encode()


_GOOD_REQUEST = _ndarray("0.0").decode()
FEEDBACK = {  # seldon-core's feedback path reads request.data only: binData feedback is refused as empty
    **{f"feedback {k}": _feedback(v.decode()) for k, v in PREDICTIONS.items() if not k.startswith("binData")},
    "truth NaN": _feedback(_GOOD_REQUEST, "[NaN]"),
    "truth null": _feedback(_GOOD_REQUEST, "[null]"),
    "truth 1e400": _feedback(_GOOD_REQUEST, "[1e400]"),
    "reward NaN": _feedback(_GOOD_REQUEST, reward="NaN"),
    "reward 1e400": _feedback(_GOOD_REQUEST, reward="1e400"),
}


def _refused(resp: httpx.Response, case: str) -> None:
    """A 400 with Seldon's ``Status``: as the executor writes it, or (what seldon-core refuses while parsing
    the proto, before the model runs: ``null`` in a tensor) as seldon-core's ``SeldonMicroserviceException.to_dict``."""
    assert resp.status_code == 400, f"{case}: HTTP {resp.status_code} {resp.text[:300]}"
    status = resp.json()["status"]
    assert (status["code"], status["status"]) in ((400, "FAILURE"), (-1, 1)) and status["reason"], case
    assert re.search(r"NaN|Infinity|finite|null", status["info"]), f"{case}: {status['info']}"
    assert "\n" not in status["info"], case


def test_non_finite_inputs_are_refused_in_every_format_and_never_stored(served: Any, msettings: Settings) -> None:
    store = Path(msettings.home) / "feedback" / NAME
    before = sorted(store.glob("*.npz")) if store.is_dir() else []
    headers = {"Content-Type": "application/json"}
    with httpx.Client(timeout=30) as client:
        for case, body in PREDICTIONS.items():
            _refused(client.post(f"{served.endpoint}/api/v1.0/predictions", content=body, headers=headers), case)
        for case, body in FEEDBACK.items():
            _refused(client.post(f"{served.endpoint}/api/v1.0/feedback", content=body, headers=headers), case)
        binary = client.post(
            f"{served.endpoint}/api/v1.0/feedback",
            content=_feedback(PREDICTIONS["binData NaN and Inf bits"].decode()),
            headers=headers,
        )
        assert binary.status_code == 400 and "binData" in binary.json()["status"]["info"], binary.text
        assert (sorted(store.glob("*.npz")) if store.is_dir() else []) == before, "refused feedback reached the store"
        # The same request with finite values is served and stored.
        ok = client.post(f"{served.endpoint}/api/v1.0/feedback", content=_feedback(_GOOD_REQUEST), headers=headers)
        assert ok.status_code == 200, ok.text
        assert len(list(store.glob("*.npz"))) == len(before) + 1
        replica = deployment_state(msettings.home, NAME)["replicaProcesses"][0]
        metrics = client.get(f"http://127.0.0.1:{replica['metrics_port']}/metrics").text
    rewards = [line for line in metrics.splitlines() if line.startswith("seldon_api_model_feedback_reward_total{")]
    assert rewards and not any(re.search(r"\s(NaN|[+-]Inf)$", line) for line in rewards), rewards


@pytest.mark.parametrize(
    ("body", "code", "says"),
    [
        (b'{"data": {"ndarray": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}", 400, "nested more than 64 levels"),
        (b'{"meta": {"tags": ' + b'{"a": ' * 2000 + b"1" + b"}" * 2000 + b"}}", 400, "nested more than 64 levels"),
        (b" " * (64 * 1024**2 + 1), 413, "larger than 64 MiB"),
    ],
    ids=["deep arrays", "deep objects", "too large"],
)
def test_deep_and_huge_bodies_get_a_one_line_error(served: Any, body: bytes, code: int, says: str) -> None:
    for service in ("predictions", "feedback"):
        resp = httpx.post(
            f"{served.endpoint}/api/v1.0/{service}", content=body, headers={"Content-Type": "application/json"}, timeout=60
        )
        assert resp.status_code == code, resp.text[:300]
        info = resp.json()["status"]["info"]
        assert says in info and "\n" not in info
