"""Plain-dict manifests Hera does not model: SeldonDeployment, RBAC, agents' Deployment/Service/PodMonitor, ConfigMaps.

Least privilege throughout: Roles (never ClusterRoles) with exactly the rules needed, no wildcards
(``resourceNames`` narrows a rule to named objects, as the agent's own state ConfigMap);
pods run as non-root with a read-only root filesystem; secrets only by ``secretKeyRef``.
"""

from __future__ import annotations

import copy
import json
from typing import TYPE_CHECKING, Any

from ..errors import AgentDefinitionError, CompileError
from ..spec.agent import SubmitWorkflow
from .schema import ARGO_CRDS, load_crd
from .workflows import labels_for, workflow_service_account

if TYPE_CHECKING:
    from ..spec.application import Application
    from ..spec.service import Service

__all__ = [
    "AGENT_CONFIG_KEY",
    "AGENT_WORKFLOW_FIELDS",
    "LEADER_ELECTION_RULE",
    "MODEL_SOURCE_ANNOTATION",
    "agent_admission_policy",
    "agent_objects",
    "agent_state_config_map",
    "check_rules",
    "monitoring_config_map",
    "seldon_deployment",
    "tracking_config_map",
    "workflow_rbac",
]

AGENT_CONFIG_KEY = "agent.json"
LEADER_ELECTION_RULE = {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create", "get", "update"]}
"""What leader election needs when an agent's own rules grant nothing on Leases (Agent.rbac_rules names its Lease)."""
NON_ROOT_UID = 1000


def _meta(name: str, app: Application, component: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": app.namespace, "labels": labels_for(app, component), **extra}


def _secret_env(refs: Any) -> list[dict[str, Any]]:
    return [
        {"name": env, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
        for env, (secret, key) in sorted(dict(refs).items())
    ]


def _resources(res: Any) -> dict[str, Any]:
    res = dict(res or {})
    requests = {k: res[k] for k in ("cpu", "memory") if res.get(k)}
    limits = {k: res[f"{k}_limit"] for k in ("cpu", "memory") if res.get(f"{k}_limit")}
    return {k: v for k, v in (("requests", requests), ("limits", limits)) if v}


def _container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _pod_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": NON_ROOT_UID,
        "fsGroup": NON_ROOT_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


NAMELESS_VERBS = frozenset({"create", "deletecollection"})
"""Verbs whose requests carry no object name: a rule with ``resourceNames`` never grants them."""


def check_rules(owner: str, rules: list[dict[str, Any]]) -> None:
    """Refuse wildcards and empty rules: least privilege is a compile-time guarantee.

    ``resourceNames`` (optional) must list names, none ``'*'``; an empty list would mean every name, and a
    named rule cannot grant ``create``/``deletecollection`` (the API server checks those without a name)."""
    for i, rule in enumerate(rules):
        for key in ("apiGroups", "resources", "verbs"):
            values = rule.get(key)
            if not isinstance(values, list) or (key != "apiGroups" and not values) or "*" in values:
                raise CompileError(
                    f"{owner}: RBAC rule {i} has {key}={values!r} — list the exact resources and verbs (no '*', not empty)"
                )
        if "resourceNames" not in rule:
            continue
        names = rule["resourceNames"]
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n and n != "*" for n in names):
            raise CompileError(
                f"{owner}: RBAC rule {i} has resourceNames={names!r} — list the exact object names (no '*', not empty), "
                "or leave resourceNames out"
            )
        if nameless := sorted(NAMELESS_VERBS & set(rule["verbs"])):
            raise CompileError(
                f"{owner}: RBAC rule {i} restricts {nameless} by resourceNames, which Kubernetes never grants "
                "(those requests carry no name) — move those verbs to a rule without resourceNames"
            )


# -- model services -------------------------------------------------------------------------------


MODEL_SOURCE_ANNOTATION = "scanflow.io/model-source"
"""``registry`` on a SeldonDeployment whose ``modelUri`` is an MLflow registry reference: Seldon's storage
initializer cannot download one, so the cluster's kustomization (``manifests/components/cluster``)
removes it there and rolls set the storage URI the registry resolves to (docs/cluster.md)."""
REGISTRY_SCHEMES = ("models:/", "runs:/")


def seldon_deployment(svc: Service, app: Application) -> dict[str, Any]:
    """A ``machinelearning.seldon.io/v1`` SeldonDeployment serving ``svc.model_uri`` with ``svc.model_class``
    in the serving image (``svc.image``, else the Application's ``serving_image``)."""
    container = {
        "name": "classifier",
        "image": svc.image or app.serving_image,
        "command": ["seldon-core-microservice", svc.model_class, "--service-type", "MODEL"],
        "env": [
            {"name": "MODEL_NAME", "value": svc.model_class},
            {"name": "SERVICE_TYPE", "value": "MODEL"},
            {"name": "MODEL_DIR", "value": "/mnt/models"},
            # the feedback store: <home>/feedback/<deployment>, home being the cluster's state volume (locally the
            # controller sets it to <home>/feedback/<name> itself)
            {"name": "FEEDBACK_DIR", "value": f"{app.storage.mount}/feedback/{svc.name}"},
            *[{"name": k, "value": v} for k, v in sorted(dict(svc.env).items())],
            *_secret_env(svc.env_from_secrets),
        ],
        "volumeMounts": [{"name": app.storage.volume, "mountPath": app.storage.mount}],
        # no `ports`: Seldon's operator adds the http/grpc/metrics ports of the wrapper itself
        "securityContext": {**_container_security(), "readOnlyRootFilesystem": False},
    }
    if res := _resources(svc.resources):
        container["resources"] = res
    prometheus = {
        "prometheus.io/scrape": "true",
        "prometheus.io/path": "/prometheus",
        "prometheus.io/port": str(svc.metrics_port),
    }
    volume = {"name": app.storage.volume, "persistentVolumeClaim": {"claimName": app.storage.claim}}
    predictor: dict[str, Any] = {
        "name": svc.predictor,
        "replicas": svc.replicas,
        "annotations": prometheus,
        "componentSpecs": [
            {
                "metadata": {"annotations": prometheus},
                "spec": {"containers": [container], "securityContext": _pod_security(), "volumes": [volume]},
            }
        ],
        "graph": {"name": "classifier", "type": "MODEL", "modelUri": svc.model_uri, "children": []},
        "labels": {"app.kubernetes.io/part-of": app.name},
    }
    predictors: list[dict[str, Any]] = [predictor]
    if svc.canary is not None:  # Seldon's traffic split: the non-shadow predictors' traffic adds up to 100
        predictor["traffic"] = 100 - svc.canary.traffic
        predictors.append(_extra_predictor(predictor, svc.canary.name, svc.canary.model_uri, svc.canary.replicas))
        predictors[-1]["traffic"] = svc.canary.traffic
    if svc.shadow is not None:  # a mirror of the traffic, answers discarded
        predictors.append(_extra_predictor(predictor, svc.shadow.name, svc.shadow.model_uri, svc.shadow.replicas))
        predictors[-1]["shadow"] = True
    annotations = dict(prometheus)
    if any(str(p["graph"]["modelUri"]).startswith(REGISTRY_SCHEMES) for p in predictors):
        annotations[MODEL_SOURCE_ANNOTATION] = "registry"
    return {
        "apiVersion": "machinelearning.seldon.io/v1",
        "kind": "SeldonDeployment",
        "metadata": _meta(svc.name, app, "model", annotations=annotations),
        "spec": {"name": svc.name, "predictors": predictors},
    }


def _extra_predictor(stable: dict[str, Any], name: str, model_uri: str, replicas: int) -> dict[str, Any]:
    """A canary or shadow predictor: the stable one's pods and labels, its own name, model and replicas."""
    out = copy.deepcopy(stable)
    out.pop("traffic", None)
    out.update(name=name, replicas=replicas)
    out["graph"]["modelUri"] = model_uri
    return out


# -- workflows' identity and MLflow config ----------------------------------------------------------


def workflow_rbac(app: Application) -> list[dict[str, Any]]:
    """ServiceAccount, Role and RoleBinding the workflows run under: Argo's executor reports results
    (``workflowtaskresults`` create/patch); the deploy step reads and patches the application's SeldonDeployments,
    named in ``resourceNames`` (a step cannot roll another team's model in the namespace)."""
    name = workflow_service_account(app)
    rules: list[dict[str, Any]] = [
        {"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "patch"]}
    ]
    if app.services:
        rules.append(
            {
                "apiGroups": ["machinelearning.seldon.io"],
                "resources": ["seldondeployments"],
                "resourceNames": sorted({s.name for s in app.services}),
                "verbs": ["get", "patch"],
            }
        )
    check_rules(f"workflows of {app.name!r}", rules)
    return _rbac(name, app, "workflow", rules)


def _rbac(name: str, app: Application, component: str, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(name, app, component)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": _meta(name, app, component), "rules": rules},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _meta(name, app, component),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": app.namespace}],
        },
    ]


def monitoring_config_map(app: Application) -> dict[str, Any]:
    """The ConfigMap holding the Prometheus URL agents query (``SCANFLOW_PROMETHEUS_URL``)."""
    m = app.monitoring
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(m.config_map, app, "monitoring"),
        "data": {m.url_key: m.prometheus_url},
    }


def tracking_config_map(app: Application) -> dict[str, Any]:
    """The ConfigMap holding ``MLFLOW_TRACKING_URI`` for tracking steps (credentials stay in a Secret)."""
    t = app.tracking
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(t.config_map, app, "tracking"),
        "data": {t.uri_key: t.uri},
    }


# -- agents -----------------------------------------------------------------------------------------


def agent_objects(agent: Any, app: Application) -> list[dict[str, Any]]:
    """ServiceAccount, Role, RoleBinding, config and state ConfigMaps, Deployment, Service and PodMonitor of one agent."""
    name = agent.name
    replicas = int(getattr(agent, "replicas", 1))
    port = int(agent.port)
    rules = [dict(r) for r in agent.rbac_rules()]
    if replicas > 1 and not any("leases" in r.get("resources", []) for r in rules):
        rules.append(dict(LEADER_ELECTION_RULE))
    check_rules(f"agent {name!r}", rules)
    try:
        config = agent.config()
    except AgentDefinitionError as err:  # e.g. no entrypoint: name the agent, no traceback
        message = str(err) if repr(name) in str(err) else f"agent {name!r}: {err}"
        raise CompileError(message) from err
    selector = {"app.kubernetes.io/name": "scanflow-agent", "app.kubernetes.io/instance": name}
    config_name = f"{name}-config"
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(config_name, app, "agent"),
        "data": {AGENT_CONFIG_KEY: json.dumps(config, sort_keys=True, indent=2)},
    }
    return [
        *_rbac(name, app, "agent", rules),
        *agent_admission_policy(agent, app),
        config_map,
        agent_state_config_map(agent, app),
        _agent_deployment(agent, app, name, replicas, port, selector, config_name),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(name, app, "agent"),
            "spec": {"selector": selector, "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}]},
        },
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PodMonitor",
            "metadata": _meta(name, app, "agent"),
            "spec": {
                "selector": {"matchLabels": selector},
                "podMetricsEndpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}],
            },
        },
    ]


AGENT_WORKFLOW_FIELDS = ("arguments", "workflowTemplateRef")
"""The only ``spec`` fields a Workflow an agent submits may set: the WorkflowTemplate fixes everything else."""


def agent_admission_policy(agent: Any, app: Application) -> list[dict[str, Any]]:
    """A ValidatingAdmissionPolicy (and its binding) for an agent that submits workflows.

    RBAC cannot narrow ``create`` on workflows by name or content, and a Workflow that references a WorkflowTemplate
    may still override its ``serviceAccountName``, add templates or a ``podSpecPatch``: with ``create`` alone an
    agent could run anything as any ServiceAccount of the namespace. The policy (Kubernetes ≥ 1.30) lets the
    agent's ServiceAccount create only Workflows that reference one of its WorkflowTemplates (namespaced; with
    ``clusterScope: true`` only the ClusterWorkflowTemplates its ``cluster_scope`` actions name) and set
    nothing in ``spec`` but ``arguments`` and ``workflowTemplateRef``; the template fixes the rest, its
    ``serviceAccountName`` included. Every other WorkflowSpec field (listed from Argo's CRD, so none is missed) is
    refused — what Argo's ``templateReferencing: Strict`` does controller-wide (docs/workflow-restrictions.md), here
    for the agent alone. Both objects are cluster-scoped, named after the namespace and the agent."""
    actions = agent.actions() if callable(getattr(agent, "actions", None)) else []  # optional in the agent contract
    submits = [a for a in actions if isinstance(a, SubmitWorkflow)]
    templates = sorted({a.template for a in submits})
    if not templates:
        return []
    namespaced = ", ".join(repr(t) for t in sorted({a.template for a in submits if not a.cluster_scope}))
    cluster = ", ".join(repr(t) for t in sorted({a.template for a in submits if a.cluster_scope}))
    spec_fields = load_crd(ARGO_CRDS["WorkflowTemplate"]).schema["properties"]["spec"]["properties"]
    forbidden = sorted(f for f in spec_fields if f not in AGENT_WORKFLOW_FIELDS)
    name = f"scanflow-{app.namespace}-{agent.name}-workflows"
    user = f"system:serviceaccount:{app.namespace}:{agent.name}"
    labels = labels_for(app, "agent")
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": ["argoproj.io"],
                        "apiVersions": ["*"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["workflows"],
                    }
                ]
            },
            "matchConditions": [{"name": "the-agent", "expression": f"request.userInfo.username == {user!r}"}],
            "validations": [
                {
                    "expression": "has(object.spec.workflowTemplateRef) && has(object.spec.workflowTemplateRef.name) && "
                    "((has(object.spec.workflowTemplateRef.clusterScope) && object.spec.workflowTemplateRef.clusterScope) "
                    f"? object.spec.workflowTemplateRef.name in [{cluster}] : object.spec.workflowTemplateRef.name in [{namespaced}])",
                    "message": f"agent {agent.name!r} may only run its WorkflowTemplates ({', '.join(templates)}) by workflowTemplateRef",
                },
                {
                    "expression": " && ".join(f"!has(object.spec.{f})" for f in forbidden),
                    "message": f"a Workflow agent {agent.name!r} submits may set only spec.arguments and spec.workflowTemplateRef: "
                    "the WorkflowTemplate fixes the rest (its serviceAccountName included)",
                },
            ],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": app.namespace}}},
        },
    }
    return [policy, binding]


def agent_state_config_map(agent: Any, app: Application) -> dict[str, Any]:
    """The agent's state ConfigMap (``agent.state_config_map()``), created empty: the agent only gets and
    updates it (its Role names it in ``resourceNames``; Kubernetes cannot restrict ``create`` by name).

    No ``data`` at all, on purpose: re-applying the manifests must never wipe the stored state. With
    client-side ``kubectl apply`` the three-way merge deletes only fields that were in the last-applied
    configuration and are gone from the new one; ``data`` is never in last-applied, so the agent's
    ``data.state.json`` is kept (whereas ``data: {state.json: ""}`` here would reset it on every apply).
    With ``kubectl apply --server-side`` the key is owned by the agent's own field manager (it writes with
    an update), and apply only removes fields its own manager owned, so it is kept there too.
    """
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(agent.state_config_map(), app, "agent")}


def _agent_deployment(
    agent: Any, app: Application, name: str, replicas: int, port: int, selector: dict[str, str], config_name: str
) -> dict[str, Any]:
    env = [
        {"name": "SCANFLOW_AGENT_CONFIG", "valueFrom": {"configMapKeyRef": {"name": config_name, "key": AGENT_CONFIG_KEY}}},
        {"name": "SCANFLOW_PLATFORM", "value": "kubernetes"},
        {"name": "SCANFLOW_NAMESPACE", "value": app.namespace},
        {"name": "SCANFLOW_AGENT_HOST", "value": "0.0.0.0"},
        {"name": "SCANFLOW_AGENT_PORT", "value": str(port)},
        {"name": "SCANFLOW_HOME", "value": "/tmp/scanflow"},
        # PromQL sensors: the cluster's Prometheus (else the pod would query 127.0.0.1:9095, its own loopback)
        {
            "name": "SCANFLOW_PROMETHEUS_URL",
            "valueFrom": {"configMapKeyRef": {"name": app.monitoring.config_map, "key": app.monitoring.url_key}},
        },
        # decisions recorded in MLflow, MLflow sensors and registry rolls: the cluster's MLflow, its credentials if any
        {
            "name": "MLFLOW_TRACKING_URI",
            "valueFrom": {"configMapKeyRef": {"name": app.tracking.config_map, "key": app.tracking.uri_key}},
        },
        *[
            {"name": key, "valueFrom": {"secretKeyRef": {"name": app.tracking.secret, "key": key, "optional": True}}}
            for key in (app.tracking.username_key, app.tracking.password_key)
        ],
        # rolls: where the registry's artifacts are for Seldon, and the Secret it downloads them with (keys the
        # cluster's kustomization adds to the tracking ConfigMap, as for the workflows' deploy step)
        *[
            {"name": key, "valueFrom": {"configMapKeyRef": {"name": app.tracking.config_map, "key": key, "optional": True}}}
            for key in (app.tracking.artifacts_destination_key, app.tracking.seldon_storage_key)
        ],
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        # the address the leader advertises on its Lease, where followers forward writes
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        *_secret_env(agent.secret_env()),
    ]
    probe = {"httpGet": {"port": "http"}, "periodSeconds": 10, "timeoutSeconds": 2, "failureThreshold": 3}
    container = {
        "name": "agent",
        "image": getattr(agent, "image", None) or app.image,
        "command": ["scanflow-argo", "agent", "run", agent.entrypoint],
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": env,
        "livenessProbe": {**probe, "httpGet": {"path": "/healthz", "port": "http"}, "initialDelaySeconds": 10},
        "readinessProbe": {**probe, "httpGet": {"path": "/readyz", "port": "http"}, "initialDelaySeconds": 2},
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "securityContext": _container_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name, app, "agent"),
        "spec": {
            "replicas": replicas,
            "strategy": _agent_strategy(replicas),
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": {**labels_for(app, "agent"), **selector}},
                "spec": {
                    "serviceAccountName": name,
                    "securityContext": _pod_security(),
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }


def _agent_strategy(replicas: int) -> dict[str, Any]:
    """One replica has no leader election, so a rolling update (new pod up before the old one goes) would let
    two pods act at once: ``Recreate``. Several replicas elect a leader through a Lease: rolling is safe."""
    return {"type": "Recreate"} if replicas == 1 else {"type": "RollingUpdate"}
