"""A team's environment on the cluster: its Namespace, ServiceAccounts, Roles, quotas, and what its RBAC allows.

One team of one application works in ``scanflow-<app>-<team>``. Rendered here: the Namespace; one
ServiceAccount + Role + RoleBinding each for the team's workflows, agents and serving, bound only in that
namespace (Roles, never ClusterRoles; no wildcards, checked by ``kube.check_rules``); a ResourceQuota and a
LimitRange with the defaults of ``TeamSettings``; a ConfigMap naming the team and the Secret that holds its
MLflow credentials — by reference only, the Secret's values are never rendered.

``allowed`` answers what ``kubectl auth can-i --as=system:serviceaccount:NS:SA VERB RESOURCE -n NS`` would
from the rendered objects alone, as Kubernetes' RBAC authorizer decides: a RoleBinding grants the rules of
the Role it names to its subjects in the RoleBinding's own namespace (kubernetes
``plugin/pkg/auth/authorizer/rbac/rbac.go`` ``RBACAuthorizer.Authorize`` → ``rbac.RuleAllows``: apiGroup,
resource and verb must each match, ``resourceNames`` narrows to named objects).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from ..errors import CompileError
from ..settings import TeamSettings
from ..spec.application import TEAM_NAMESPACE_FORMAT
from .kube import check_rules
from .workflows import TEAM_SERVICE_ACCOUNT

__all__ = [
    "AUDIT_CONFIG_MAP",
    "AUDIT_READER",
    "TEAM_COMPONENTS",
    "allowed",
    "artifact_prefix",
    "artifact_repositories",
    "team_app",
    "team_namespace",
    "team_objects",
]

AUDIT_CONFIG_MAP = "scanflow-audit"
"""The ConfigMap of a team's namespace that holds its agents' audit trail on the cluster (one key per agent,
``<agent>.jsonl``): its agents may get and update it, the admins' Group may only get it."""
AUDIT_READER = "scanflow-audit-reader"
"""The Role and RoleBinding, in every team's namespace, that let the admins' Group read the trail."""

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

TEAM_COMPONENTS: dict[str, list[dict[str, Any]]] = {
    "workflows": [
        {"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "patch"]},
        {"apiGroups": ["machinelearning.seldon.io"], "resources": ["seldondeployments"], "verbs": ["get", "patch"]},
    ],
    "agents": [
        {"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["create", "get", "list", "watch"]},
        {"apiGroups": ["argoproj.io"], "resources": ["workflowtemplates"], "verbs": ["get", "list"]},
        {"apiGroups": ["argoproj.io"], "resources": ["clusterworkflowtemplates"], "verbs": ["get", "list"]},
        {"apiGroups": ["machinelearning.seldon.io"], "resources": ["seldondeployments"], "verbs": ["get", "list", "patch"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create", "get", "update"]},
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [AUDIT_CONFIG_MAP], "verbs": ["get", "update"]},
    ],
    "serving": [
        {"apiGroups": ["machinelearning.seldon.io"], "resources": ["seldondeployments"], "verbs": ["get", "list", "watch"]},
    ],
}
"""Rules of each of a team's ServiceAccounts (``scanflow-team-<component>``): workflows report results and
deploy; agents submit Workflows, scale/roll SeldonDeployments and append to the team's audit trail (the
``scanflow-audit`` ConfigMap, by name); serving only reads its deployments.
Reading ``clusterworkflowtemplates`` through a namespaced Role grants nothing (they are cluster-scoped):
a published template is used by ``templateRef``, which Argo's controller resolves, not the agent."""


def team_namespace(app: str, team: str) -> str:
    """``scanflow-<app>-<team>``, refused unless it is a valid namespace name (a DNS label, ≤ 63 chars)."""
    ns = TEAM_NAMESPACE_FORMAT.format(app=app, team=team)
    if not (_DNS_LABEL.match(app) and _DNS_LABEL.match(team) and _DNS_LABEL.match(ns) and len(ns) <= 63):
        raise CompileError(
            f"team {team!r} of application {app!r}: namespace {ns!r} is not a valid Kubernetes name — use lower-case "
            "letters, digits and '-' (a DNS label of at most 63 characters in all)"
        )
    return ns


def team_app(namespace: str, team: str) -> str | None:
    """The application whose ``team`` works in ``namespace`` (``team_namespace``'s inverse), or ``None`` when
    ``namespace`` is no namespace of that team."""
    prefix, suffix = "scanflow-", f"-{team}"
    if not (namespace.startswith(prefix) and namespace.endswith(suffix)) or len(namespace) <= len(prefix) + len(suffix):
        return None
    app = namespace[len(prefix) : -len(suffix)]
    return app if _DNS_LABEL.match(app) else None


def _meta(name: str, ns: str | None, app: str, team: str, component: str) -> dict[str, Any]:
    labels = {
        "app.kubernetes.io/part-of": app,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": "scanflow-argo",
        "scanflow.dev/team": team,
    }
    meta: dict[str, Any] = {"name": name, "labels": labels}
    if ns is not None:
        meta["namespace"] = ns
    return meta


def team_objects(app: str, team: str, settings: TeamSettings | None = None) -> list[dict[str, Any]]:
    """Every object of ``team``'s environment for ``app``, in a fixed order (deterministic YAML)."""
    s = settings or TeamSettings()
    ns = team_namespace(app, team)
    objs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(ns, None, app, team, "team")},
    ]
    for component, rules in TEAM_COMPONENTS.items():
        check_rules(f"team {team!r} {component}", rules)
        name = TEAM_SERVICE_ACCOUNT.format(component=component)
        objs += [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(name, ns, app, team, component)},
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": _meta(name, ns, app, team, component),
                "rules": [dict(r) for r in rules],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": _meta(name, ns, app, team, component),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
            },
        ]
    objs += [
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": _meta("scanflow-team", ns, app, team, "team"),
            "spec": {"hard": {"requests.cpu": s.quota_cpu, "requests.memory": s.quota_memory, "pods": s.quota_pods}},
        },
        {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": _meta("scanflow-team", ns, app, team, "team"),
            "spec": {
                "limits": [
                    {
                        "type": "Container",
                        "default": {"cpu": s.default_cpu, "memory": s.default_memory},
                        "defaultRequest": {"cpu": _half(s.default_cpu), "memory": _half(s.default_memory)},
                    }
                ]
            },
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta("scanflow-team", ns, app, team, "team"),
            "data": {"app": app, "team": team, "mlflow-credentials-secret": s.mlflow_secret},
        },
        artifact_repositories(app, team, s),
        *audit_objects(app, team, s),
    ]
    return objs


def audit_objects(app: str, team: str, settings: TeamSettings) -> list[dict[str, Any]]:
    """The team's audit trail on the cluster and who reads it: the ``scanflow-audit`` ConfigMap (created empty:
    its agents may update it, never create one), and a Role with one read-only rule — ``get`` that ConfigMap by
    name — bound to the admins' Group (``TeamSettings.audit_readers``). A Role per team namespace rather than a
    ClusterRole: the admin reads each team's trail, and no other ConfigMap of any namespace."""
    ns = team_namespace(app, team)
    rules = [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [AUDIT_CONFIG_MAP], "verbs": ["get"]}]
    check_rules(f"team {team!r} audit readers", rules)
    meta = _meta(AUDIT_CONFIG_MAP, ns, app, team, "audit")
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _meta(AUDIT_READER, ns, app, team, "audit"),
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _meta(AUDIT_READER, ns, app, team, "audit"),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": AUDIT_READER},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": settings.audit_readers}],
        },
    ]


def artifact_repositories(app: str, team: str, settings: TeamSettings) -> dict[str, Any]:
    """The team's Argo artifact repository: the ``artifact-repositories`` ConfigMap Argo's controller reads in the
    workflow's own namespace, its default key named by the ``workflows.argoproj.io/default-artifact-repository``
    annotation (argo-workflows ``workflow/artifactrepositories/artifactrepositories.go`` ``Resolve``). Every key
    lies under the team's prefix ``argo/<namespace>/``, so a bucket policy can give each team its prefix only; the
    bucket's credentials are a Secret of the team's namespace, named here, never rendered."""
    ns = team_namespace(app, team)
    repo = {
        "archiveLogs": True,
        "s3": {
            "bucket": settings.artifacts_bucket,
            "endpoint": settings.artifacts_endpoint,
            "keyFormat": f"{artifact_prefix(app, team)}{{{{workflow.name}}}}/{{{{pod.name}}}}",
            "accessKeySecret": {"name": settings.artifacts_secret, "key": "accesskey"},
            "secretKeySecret": {"name": settings.artifacts_secret, "key": "secretkey"},
        },
    }
    meta = _meta("artifact-repositories", ns, app, team, "team")
    meta["annotations"] = {"workflows.argoproj.io/default-artifact-repository": "default-v1"}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta,
        "data": {"default-v1": yaml.safe_dump(repo, sort_keys=False)},
    }


def artifact_prefix(app: str, team: str) -> str:
    """Where the team's artifacts live in the bucket: ``argo/scanflow-<app>-<team>/``."""
    return f"argo/{team_namespace(app, team)}/"


def _half(quantity: str) -> str:
    """Half of a Kubernetes quantity such as ``500m``, ``1Gi`` or ``2`` (the LimitRange's default request)."""
    m = re.fullmatch(r"(\d+)([a-zA-Z]*)", quantity)
    if not m:
        raise CompileError(f"team quantity {quantity!r} is not an integer Kubernetes quantity such as 500m or 1Gi")
    n, unit = int(m.group(1)), m.group(2)
    if n % 2 == 0:
        return f"{n // 2}{unit}"
    small = {"": ("m", 1000), "Gi": ("Mi", 1024), "Mi": ("Ki", 1024), "G": ("M", 1000), "M": ("k", 1000)}
    if unit not in small:
        raise CompileError(f"team quantity {quantity!r}: cannot halve it exactly — give an even number")
    sub, factor = small[unit]
    return f"{n * factor // 2}{sub}"


def allowed(
    objs: Iterable[Mapping[str, Any]],
    user: str,
    verb: str,
    resource: str,
    namespace: str,
    group: str = "",
    name: str | None = None,
    groups: Iterable[str] = (),
) -> bool:
    """Whether ``user`` (``system:serviceaccount:NS:SA``, or a user name) in ``groups`` may ``verb``
    ``group/resource`` in ``namespace``, as ``kubectl auth can-i --as USER --as-group GROUP`` asks and the RBAC
    authorizer answers (a subject matches by ServiceAccount, User or Group: ``rbac.go`` ``appliesToUser``) —
    from the rendered Roles/RoleBindings only."""
    groups = set(groups)
    objs = list(objs)
    roles = {(o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objs if o.get("kind") == "Role"}
    for binding in objs:
        if binding.get("kind") != "RoleBinding" or binding["metadata"].get("namespace") != namespace:
            continue
        subjects = [
            f"system:serviceaccount:{s.get('namespace', namespace)}:{s['name']}"
            for s in binding.get("subjects", [])
            if s.get("kind") == "ServiceAccount"
        ]
        subjects += [s["name"] for s in binding.get("subjects", []) if s.get("kind") == "User"]
        if any(s.get("kind") == "Group" and s["name"] in groups for s in binding.get("subjects", [])):
            subjects.append(user)
        if user not in subjects or binding["roleRef"]["kind"] != "Role":
            continue
        role = roles.get((namespace, binding["roleRef"]["name"]))
        for rule in (role or {}).get("rules", []):
            if not (group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]):
                continue
            names = rule.get("resourceNames")
            if names and (name is None or name not in names):
                continue
            return True
    return False
