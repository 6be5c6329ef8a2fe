"""``compile_app``: every manifest of an application (its workflows through Hera or the spec compiler, RBAC,
ConfigMaps, SeldonDeployments, agents), checked and in a stable order."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import CompileError
from ..spec.workflow import Workflow
from .graph import ARGO_KINDS, check_graph
from .kube import agent_objects, monitoring_config_map, seldon_deployment, tracking_config_map, workflow_rbac
from .output import file_name, normalize
from .workflows import compile_workflow

if TYPE_CHECKING:
    from ..spec.application import Application

__all__ = ["compile_app"]

# Kinds in the order objects are listed (then by name): identities first, as kubectl applies them.
_KIND_ORDER = [
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ConfigMap",
    "Service",
    "Deployment",
    "PodMonitor",
    "SeldonDeployment",
    "WorkflowTemplate",
    "ClusterWorkflowTemplate",
    "CronWorkflow",
    "Workflow",
]


def compile_app(app: Application, *, validate: bool = True, graph_check: bool = True) -> list[dict[str, Any]]:
    """Every manifest of ``app``, in a stable order with stable keys (no timestamps).

    Validates first (``ValidationError`` with every issue), then checks each Argo object's graph
    (``CompileError`` listing the problems; ``graph_check=False`` leaves that to the caller, as lint
    does). Schema checks are separate: ``check_manifests``.
    """
    if validate:
        app.validate()
    objs: list[dict[str, Any]] = []
    for wf in app.workflows:
        if isinstance(wf, Workflow):
            objs.append(compile_workflow(wf, app))
        else:
            objs.append(_hera_object(wf, app))
    # plain Hera objects name their own service account; in a team's environment the team's is used (compile.teams)
    if any(isinstance(wf, Workflow) for wf in app.workflows) and not app.in_team_environment:
        objs += workflow_rbac(app)
    if app.agents or any(_uses_tracking(wf) for wf in app.workflows if isinstance(wf, Workflow)):
        objs.append(tracking_config_map(app))  # tracking steps and agents (decisions, MLflow sensors, rolls) read it
    if app.agents:
        objs.append(monitoring_config_map(app))
    objs += [seldon_deployment(s, app) for s in app.services]
    for agent in app.agents:
        objs += agent_objects(agent, app)
    problems = [p for obj in objs if graph_check and obj.get("kind") in ARGO_KINDS for p in check_graph(obj)]
    if problems:
        raise CompileError("compiled workflows have graph problems:\n" + "\n".join(f"  - {p}" for p in problems))
    order = {k: i for i, k in enumerate(_KIND_ORDER)}
    objs.sort(key=lambda o: (order.get(o["kind"], len(order)), o["kind"], file_name(o)))
    return [normalize(o) for o in objs]


def _uses_tracking(wf: Any) -> bool:
    steps = [t.step for t in wf.tasks] + ([wf.exit_step] if wf.exit_step else [])
    return any(s.tracking or s.deploys for s in steps)


def _hera_object(wf: Any, app: Application) -> dict[str, Any]:
    """A plain Hera Workflow/WorkflowTemplate/CronWorkflow, as it is (namespace defaulted to the app's)."""
    try:
        obj = wf.to_dict()
    except Exception as err:  # Hera raises many types for invalid objects
        raise CompileError(f"Hera {type(wf).__name__} {getattr(wf, 'name', '?')!r} cannot be built: {err}") from err
    meta = obj.setdefault("metadata", {})
    if obj.get("kind") != "ClusterWorkflowTemplate":  # cluster-scoped: no namespace
        meta.setdefault("namespace", app.namespace)
    return obj
