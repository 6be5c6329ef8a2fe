"""The images of Argo's daemon and sidecar examples as their real filesystems: nginx, influxdb 1.x, alpine's busybox.

Sources: nginxinc/docker-nginx ``mainline/stretch/Dockerfile`` (nginx 1.13: ``EXPOSE 80``, ``CMD ["nginx", "-g",
"daemon off;"]``, logs linked to stdout/stderr) and the nginx.org package's ``conf.d/default.conf`` (the welcome
page of ``/usr/share/nginx/html`` on port 80); influxdata/influxdata-docker ``influxdb/1.2/Dockerfile``
(``EXPOSE 8086``, ``VOLUME /var/lib/influxdb``, ``CMD ["influxd"]``) and ``influxdb/1.7/alpine/influxdb.conf``
(meta, data and WAL under ``/var/lib/influxdb``); InfluxDB 1.x's HTTP API (``/ping`` answers 204 No Content,
``/query``, ``/write``); alpine's busybox (``/bin/sh`` is ash, ``nc`` an applet, ``-k`` keeps a listener
listening, as Argo's ``examples/variables-showcase.yaml`` uses it) and apk-tools' ``unable to select packages``.
The examples these images serve: argo-workflows ``examples/daemon-nginx.yaml``, ``sidecar-nginx.yaml``,
``daemon-step.yaml``, ``sidecar.yaml``.
"""

from __future__ import annotations

import os
import shutil
import socket
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from scanflow_argo.engine import prepare_run, run_workflow
from scanflow_argo.engine.features import images
from scanflow_argo.engine.features.images import BUILTIN_IMAGES, IMAGE_FILES, image_of
from scanflow_argo.errors import ImageNotMapped
from scanflow_argo.settings import Settings

pytestmark = pytest.mark.timeout(120)

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap (apt-get install bubblewrap)")
needs_nginx = pytest.mark.skipif(
    shutil.which("nginx", path="/usr/sbin:/usr/bin") is None, reason="needs nginx (apt-get install nginx)"
)
needs_influxd = pytest.mark.skipif(shutil.which("influxd") is None, reason="needs influxdb (apt-get install influxdb)")
needs_busybox = pytest.mark.skipif(not os.path.exists("/bin/busybox"), reason="needs busybox (apt-get install busybox)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
        return True


def node_roots(settings: Settings, run_name: str) -> list[Path]:
    return sorted((settings.home / "runs" / run_name / "nodes").glob("*/root"))


def steps_wf(server: dict, client: dict) -> dict:
    """A daemon ``server`` then a ``client`` given the server's ip (daemon-nginx.yaml's shape)."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "srv-"},
        "spec": {
            "entrypoint": "main",
            "templates": [
                {
                    "name": "main",
                    "steps": [
                        [{"name": "server", "template": "server"}],
                        [
                            {
                                "name": "client",
                                "template": "client",
                                "arguments": {"parameters": [{"name": "ip", "value": "{{steps.server.ip}}"}]},
                            }
                        ],
                    ],
                },
                {"name": "server", "daemon": True, "container": server},
                {"name": "client", "inputs": {"parameters": [{"name": "ip"}]}, "container": client},
            ],
        },
    }


# -- the table: what each image offers, at which paths ------------------------------------------------------
@pytest.mark.parametrize(
    ("image", "cmd", "paths", "ports"),
    [
        ("nginx:1.13", ("nginx", "-g", "daemon off;"), {"/etc/nginx/nginx.conf", "/etc/nginx/conf.d/default.conf"}, (80,)),
        ("docker.io/library/nginx:latest", ("nginx", "-g", "daemon off;"), {"/etc/nginx/nginx.conf"}, (80,)),
        ("influxdb:1.2", ("influxd",), {"/etc/influxdb/influxdb.conf"}, (8086,)),
        ("influxdb:1.8-alpine", ("influxd",), {"/etc/influxdb/influxdb.conf"}, (8086,)),
        ("alpine:3.23", ("/bin/sh",), {"/bin/sh", "/usr/bin/nc", "/sbin/apk"}, ()),
        ("curlimages/curl:latest", ("curl",), {"/bin/sh", "/usr/bin/nc", "/sbin/apk"}, ()),
        ("busybox:1.36", ("sh",), {"/bin/sh"}, ()),
    ],
)
def test_the_builtin_server_images_follow_their_dockerfiles(image: str, cmd: tuple, paths: set[str], ports: tuple) -> None:
    img = image_of(image, {})
    assert img.cmd == cmd and img.entrypoint == ()
    assert paths <= {cpath for cpath, _ in img.files}
    assert img.ports == ports
    for _, host in img.files:  # shipped with the project, or this machine's busybox
        assert host == "/bin/busybox" or Path(host).is_relative_to(IMAGE_FILES)


def test_influxdb_2_is_another_server_and_has_no_mapping() -> None:
    with pytest.raises(ImageNotMapped, match=r"influxdb:2\.7"):
        image_of("influxdb:2.7", {})
    with pytest.raises(ImageNotMapped):
        image_of("influxdb", {})  # latest is 2.x


def test_the_shipped_configs_keep_what_the_servers_write_in_the_node() -> None:
    nginx = (IMAGE_FILES / "nginx" / "nginx.conf").read_text()
    for line in (
        "pid        /tmp/nginx.pid;",
        "error_log  stderr",
        "access_log  /dev/stdout",
        "include /etc/nginx/conf.d/*.conf;",
    ):
        assert line in nginx
    directives = "\n".join(line for line in nginx.splitlines() if not line.lstrip().startswith("#"))
    assert "client_body_temp_path  /tmp/" in directives and "/run" not in directives and "/var/" not in directives
    influx = (IMAGE_FILES / "influxdb" / "influxdb.conf").read_text()
    assert 'dir = "/var/lib/influxdb/meta"' in influx and 'wal-dir = "/var/lib/influxdb/wal"' in influx
    assert "reporting-enabled = false" in influx and image_of("influxdb:1.2", {}).private == ("/var/lib/influxdb",)


# -- refused, naming the package, where this machine lacks the server -----------------------------------------
@pytest.mark.parametrize(
    ("image", "container", "package"),
    [
        ("nginx", {"image": "nginx:1.13"}, "nginx"),
        ("influxdb:1", {"image": "influxdb:1.2", "command": ["influxd"]}, "influxdb"),
        ("alpine", {"image": "alpine:3.23", "command": ["sh", "-c"], "args": ["nc -lk -p 9999 -e /bin/true"]}, "busybox"),
    ],
)
def test_a_server_image_whose_program_this_machine_lacks_is_refused_naming_the_package(
    engine_settings: Settings, monkeypatch: pytest.MonkeyPatch, image: str, container: dict, package: str
) -> None:
    img = BUILTIN_IMAGES[image]
    command = img.tools[0][0]
    monkeypatch.setitem(BUILTIN_IMAGES, image, replace(img, providers=((command, "/no/such/program"),)))
    manifest = steps_wf({**container}, {"image": "alpine:3.23", "command": ["true"]})
    with pytest.raises(ImageNotMapped, match=rf"runs '{command}'.*apt-get install {package}"):
        prepare_run(manifest, engine_settings)


# -- nginx: the welcome page on port 80, nothing written outside the node -------------------------------------
@needs_bwrap
@needs_nginx
@pytest.mark.parametrize(
    ("server", "how"),
    [
        ({"image": "nginx:1.13"}, "daemon-nginx.yaml: the image's CMD"),
        ({"image": "nginx:1.13", "command": ["nginx"], "args": ["-g", "daemon off;"]}, "steps-daemon-retry-strategy.yaml"),
    ],
)
def test_an_nginx_node_serves_its_welcome_page_on_port_80(engine_settings: Settings, server: dict, how: str) -> None:
    if not port_free(80):
        pytest.skip("port 80 cannot be bound here (in use, or not root): the official image's nginx listens there")
    host_paths = [Path("/run/nginx.pid"), Path("/tmp/nginx.pid"), Path("/tmp/nginx-client-body"), Path("/var/lib/nginx/body")]
    before = {p: p.exists() for p in host_paths}
    server = {**server, "readinessProbe": {"httpGet": {"path": "/", "port": 80}, "timeoutSeconds": 1}}
    client = {
        "image": "curlimages/curl:latest",
        "command": ["sh", "-c"],
        "args": ["curl --silent http://{{inputs.parameters.ip}}:80/"],
    }
    run = run_workflow(steps_wf(server, client), engine_settings)
    assert run.phase == "Succeeded", (how, run.message)
    page = next(n for n in run.nodes.values() if n.display_name == "client").outputs["result"]
    assert "<title>Welcome to nginx!</title>" in page
    assert {p: p.exists() for p in host_paths} == before  # pid and temporary files: the node's own
    root = next(r for r in node_roots(engine_settings, run.name) if (r / "tmp" / "nginx-client-body").is_dir())
    assert (root / "etc" / "nginx" / "conf.d" / "default.conf").exists()  # its mount point, made in the node's root
    log = (root.parent / "main.log").read_text()
    assert '"GET / HTTP/1.1" 200' in log  # the access log goes to the container's stdout, as the image links it


@needs_bwrap
@needs_nginx
def test_an_nginx_sidecar_serves_the_main_container(engine_settings: Settings) -> None:
    """sidecar-nginx.yaml: the main container (curlimages/curl, alpine's sh: ``>&`` is ash's) polls until nginx answers."""
    if not port_free(80):
        pytest.skip("port 80 cannot be bound here (in use, or not root): the official image's nginx listens there")
    manifest = yaml.safe_load(
        """
        apiVersion: argoproj.io/v1alpha1
        kind: Workflow
        metadata: {generateName: sidecar-nginx-}
        spec:
          entrypoint: main
          templates:
          - name: main
            container:
              image: curlimages/curl:latest
              command: [sh, -c]
              args: ["until `curl -G 'http://127.0.0.1/' >& /tmp/out`; do sleep 0.2; done && cat /tmp/out"]
            sidecars:
            - name: nginx
              image: nginx:1.13
              command: [nginx, -g, daemon off;]
        """
    )
    run = run_workflow(manifest, engine_settings)
    assert run.phase == "Succeeded", run.message
    assert "Welcome to nginx!" in run.node(run.name).outputs["result"]


# -- influxdb 1.x: /ping, a database written and queried, its data in the node's /var/lib/influxdb --------------
@needs_bwrap
@needs_influxd
def test_an_influxdb_daemon_answers_ping_and_keeps_its_data_in_the_node(engine_settings: Settings) -> None:
    if not port_free(8086):
        pytest.skip("port 8086 is in use on this machine: the official image's influxd listens there")
    host_data = sorted(os.listdir("/var/lib/influxdb")) if os.path.isdir("/var/lib/influxdb") else None
    server = {"image": "influxdb:1.2", "readinessProbe": {"httpGet": {"path": "/ping", "port": 8086}, "timeoutSeconds": 1}}
    script = (
        "set -e; base=http://{{inputs.parameters.ip}}:8086;"
        " curl -s -o /dev/null -w 'ping=%{http_code}\\n' $base/ping;"
        " curl -s -XPOST $base/query --data-urlencode 'q=CREATE DATABASE mydb' >/dev/null;"
        " curl -s -XPOST \"$base/write?db=mydb\" -d 'cpu,host=server01 load=7';"
        " curl -s -G $base/query --data-urlencode db=mydb --data-urlencode 'q=SELECT * FROM cpu'"
    )
    run = run_workflow(
        steps_wf(server, {"image": "curlimages/curl:latest", "command": ["sh", "-c"], "args": [script]}), engine_settings
    )
    assert run.phase == "Succeeded", run.message
    out = next(n for n in run.nodes.values() if n.display_name == "client").outputs["result"]
    assert out.startswith("ping=204")  # InfluxDB 1.x: /ping answers 204 No Content
    assert '"name":"cpu"' in out and '"server01",7' in out
    root = next(r for r in node_roots(engine_settings, run.name) if (r / "var" / "lib" / "influxdb").is_dir())
    assert {"meta", "data", "wal"} <= set(os.listdir(root / "var" / "lib" / "influxdb"))
    assert (sorted(os.listdir("/var/lib/influxdb")) if os.path.isdir("/var/lib/influxdb") else None) == host_data


# -- alpine: busybox's sh and nc, and apk with this machine as its mirror -------------------------------------
@needs_bwrap
@needs_busybox
def test_alpines_nc_keeps_listening_with_k_as_busybox_does(engine_settings: Settings) -> None:
    """variables-showcase.yaml's daemon: ``nc -lk -p PORT -e PROG`` serves every connection."""
    port = free_port()
    server = {
        "image": "alpine:3.23",
        "command": ["sh", "-c"],
        "args": [f"nc -lk -p {port} -e /bin/echo served"],
        "readinessProbe": {"tcpSocket": {"port": port}, "timeoutSeconds": 1},
    }
    client = {
        "image": "alpine:3.23",
        "command": ["sh", "-c"],
        "args": [f"nc 127.0.0.1 {port} </dev/null; nc 127.0.0.1 {port} </dev/null"],
    }
    run = run_workflow(steps_wf(server, client), engine_settings)
    assert run.phase == "Succeeded", run.message
    assert next(n for n in run.nodes.values() if n.display_name == "client").outputs["result"] == "served\nserved"


@needs_bwrap
@needs_busybox
@pytest.mark.parametrize(
    ("image", "script", "phase", "result"),
    [
        ("alpine:3.23", "echo ash >& /dev/stdout", "Succeeded", "ash"),  # ash's >& (dash: "Bad fd number")
        ("alpine:3.23", "sh --help 2>&1 | head -1", "Succeeded", "BusyBox"),
        ("busybox:1.36", "[[ a == a ]] && sh --help 2>&1 | head -1", "Succeeded", "BusyBox"),
        (
            "alpine:3.23",
            "apk update >/dev/null && apk add --no-cache curl >/dev/null && curl --version | head -c 4",
            "Succeeded",
            "curl",
        ),
        (
            "alpine:3.23",
            "pkg=no-such-package-xyz; apk add $pkg 2>&1",  # named at run time: not refused up front
            "Failed",
            "ERROR: unable to select packages:\n  no-such-package-xyz (no such package):",
        ),
        ("alpine:3.23", "test -e /argosay || echo only-alpine", "Succeeded", "only-alpine"),
    ],
)
def test_alpines_shell_is_busybox_and_apk_installs_from_this_machine(
    engine_settings: Settings, image: str, script: str, phase: str, result: str
) -> None:
    manifest = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "alpine-"},
        "spec": {
            "entrypoint": "client",
            "templates": [{"name": "client", "container": {"image": image, "command": ["sh", "-c"], "args": [script]}}],
        },
    }
    run = run_workflow(manifest, engine_settings)
    client = run.node(run.name)
    assert client.phase == phase
    assert result in client.outputs.get("result", "") or result in "".join(
        p.read_text() for p in (engine_settings.home / "runs" / run.name / "nodes").glob("*/main.log")
    )


def test_a_tool_file_where_this_machine_has_none_is_placed_only_for_a_container_that_names_it() -> None:
    alpine = BUILTIN_IMAGES["alpine"]
    placed = {c for c, _ in images._placed(alpine, {"command": ["sh", "-c"], "args": ["echo hi"]}, [])}
    assert "/usr/bin/nc" not in placed and "/sbin/apk" not in placed  # /usr/bin would be copied bind by bind
    placed = {c for c, _ in images._placed(alpine, {"command": ["sh", "-c"], "args": ["apk add curl && nc -l -p 1"]}, [])}
    assert {"/usr/bin/nc", "/sbin/apk"} <= placed
    nginx = BUILTIN_IMAGES["nginx"]
    assert images._placed(nginx, {}, ["/etc/nginx/conf.d"]) == [(c, h) for c, h in nginx.files if c == "/etc/nginx/nginx.conf"]


@needs_busybox
@pytest.mark.parametrize(("tty", "phase"), [(True, "Succeeded"), (False, "Failed")])
def test_a_container_with_tty_has_a_terminal_as_stdin(engine_settings: Settings, tty: bool, phase: str) -> None:
    """Argo's e2e ``TestTTY`` (test/e2e/functional/tty.yaml): with ``tty: true`` (Kubernetes allocates the container
    a TTY) alpine's ash finds ``[[ -t 0 ]]`` true; without, stdin is no terminal."""
    body = {"image": "alpine:3.23", "command": ["sh"], "source": "[[ -t 0 ]]", **({"tty": True, "stdin": True} if tty else {})}
    manifest = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "tty-"},
        "spec": {"entrypoint": "main", "templates": [{"name": "main", "script": body}]},
    }
    assert run_workflow(manifest, engine_settings).phase == phase


@pytest.mark.parametrize(
    ("script", "lacking"),
    [
        ("apk update && apk add curl && curl --version", None),  # sidecar.yaml: this machine has curl
        ("apk add --no-cache curl no-such-tool-xyz=1.0-r0 && echo", "no-such-tool-xyz"),
        ("apk update; apk add 'py3-no-such-xyz'", "py3-no-such-xyz"),
    ],
)
def test_apk_add_of_a_command_this_machine_lacks_is_refused_before_the_run(
    engine_settings: Settings, script: str, lacking: str | None
) -> None:
    """On Argo ``apk add`` fetches the package; the local apk can only offer this machine's commands, so a
    workflow adding one this machine lacks is refused up front, naming it, instead of failing differently."""
    manifest = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "apk-"},
        "spec": {
            "entrypoint": "main",
            "templates": [{"name": "main", "container": {"image": "alpine:3.23", "command": ["sh", "-c"], "args": [script]}}],
        },
    }
    if lacking is None:
        prepare_run(manifest, engine_settings)
    else:
        with pytest.raises(ImageNotMapped, match=rf"apk add {lacking}'.*no command '{lacking}'"):
            prepare_run(manifest, engine_settings)


@pytest.mark.parametrize(
    ("script", "names"),
    [
        ("apk update && apk add curl && until curl -XPOST x; do sleep .5; done", ["curl"]),  # sidecar.yaml
        ("apk add --no-cache py3-pip jq=1.6-r0 'bash'", ["py3-pip", "jq", "bash"]),
        ("apk add curl 2>&1 >/dev/null; apk add jq > out.txt", ["curl", "jq"]),
        ("pkg=jq; apk add $pkg", []),  # known only when it runs
        ("echo apkadd; xapk add x", []),
    ],
)
def test_the_packages_of_apk_add_commands(script: str, names: list[str]) -> None:
    assert images.apk_added(script) == names
