"""The ``Platform`` interface: everything that acts on the world goes through it.

Two implementations share it: ``LocalPlatform`` (local engine + local Seldon serving, state in
``SCANFLOW_HOME``) and ``KubernetesPlatform`` (Argo Server / Workflow CRs + SeldonDeployments).
The CLI and the agents use only this interface, so the same code runs on both. The status records it
returns live in ``scanflow_argo.status`` (the engine and local serving fill them) and are re-exported here.
"""

from __future__ import annotations

import difflib
import io
import shutil
import tarfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..errors import AlreadyExistsError, PlatformError, ScanflowError
from ..status import TEMPLATE_LABEL, TERMINAL_PHASES, DeploymentStatus, NodeStatus, RunStatus

if TYPE_CHECKING:
    from .selectors import LabelSelector

__all__ = [
    "TEMPLATE_LABEL",
    "TERMINAL_PHASES",
    "ChangeFeed",
    "DeploymentStatus",
    "NodeStatus",
    "Pairs",
    "Platform",
    "PodLog",
    "RunStatus",
    "SubmitTarget",
    "WorkflowAdmin",
    "already_exists",
    "already_finished",
    "check_parameters",
    "declared_parameters",
    "unpack_artifact",
    "workflow_from_template",
]

# What every ``Platform.submit`` takes, spelled once: a Workflow manifest or the name of a WorkflowTemplate,
# and the run's parameters and labels as name → value pairs.
SubmitTarget = Mapping[str, Any] | str
Pairs = Mapping[str, str]


def workflow_from_template(name: str, cluster_scope: bool = False) -> dict[str, Any]:
    """The Workflow that runs WorkflowTemplate ``name`` (a ClusterWorkflowTemplate when ``cluster_scope``) in the
    submitter's namespace, as ``argo submit --from`` makes it: ``generateName`` ``NAME-``, Argo's template label,
    ``workflowTemplateRef`` (argo-workflows ``workflow/common/convert.go`` ``NewWorkflowFromWorkflowTemplate``)."""
    label = "workflows.argoproj.io/cluster-workflow-template" if cluster_scope else TEMPLATE_LABEL
    ref: dict[str, Any] = {"name": name, **({"clusterScope": True} if cluster_scope else {})}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": f"{name}-", "labels": {label: name}},
        "spec": {"workflowTemplateRef": ref},
    }


@runtime_checkable
class Platform(Protocol):
    """Acting on workflows and model deployments, locally or on Kubernetes."""

    name: str
    namespace: str

    # -- workflows --------------------------------------------------------------------------
    def apply_template(self, manifest: Mapping[str, Any]) -> None:
        """Create or update a WorkflowTemplate (or CronWorkflow); apply semantics."""
        ...

    def submit(self, workflow: SubmitTarget, parameters: Pairs | None = None, labels: Pairs | None = None) -> str:
        """Start a run and return its name at once. ``workflow`` is a Workflow manifest, or the
        name of an applied WorkflowTemplate (submitted as the Argo UI does: ``workflowTemplateRef``)."""
        ...

    def get_run(self, name: str) -> RunStatus:
        """The run's status now; ``NotFoundError`` when there is no such run."""
        ...

    def list_runs(self, labels: Mapping[str, str] | None = None) -> list[RunStatus]:
        """Runs whose labels include ``labels``, newest first."""
        ...

    def wait(self, name: str, timeout: float | None = None, poll: float = 0.5) -> RunStatus:
        """Block until the run ends (or ``timeout`` passes: ``UnavailableError``)."""
        ...

    def logs(self, name: str, node: str | None = None, container: str = "main") -> str:
        """Logs of a run, or of one node by display name; ``container`` as ``argo logs -c`` (init
        containers, sidecars, the containers of a containerSet)."""
        ...

    def stop(self, name: str) -> None:
        """Stop a running workflow (Argo's ``stop``: exit handlers still run); a run that has ended is
        ``already_finished`` (Argo's ``AlreadyShutdownError``), the same on every platform and path."""
        ...

    def resume(self, name: str) -> Any:
        """Continue a run that is not going on: locally, a suspended run, or one whose engine stopped (even
        ``kill -9``; nothing that succeeded runs again); on Argo, a suspended run resumed and a failed one
        retried (its failed nodes run again). ``PlatformError`` says why when there is nothing to continue."""
        ...

    def delete_run(self, name: str) -> None:
        """Delete a run and what it stored (Argo's ``delete``: a running one is stopped first)."""
        ...

    def download_artifact(self, name: str, node: str, artifact: str, dest: Path) -> Path:
        """Put output artifact ``artifact`` of node ``node`` (display name) of run ``name`` at ``dest``
        (a file, or a folder for a folder artifact) and return ``dest``."""
        ...

    # -- model deployments ------------------------------------------------------------------
    def apply_deployment(self, manifest: Mapping[str, Any]) -> str | None:
        """Create or update a SeldonDeployment; may return a note on what it serves (created without a model…)."""
        ...

    def get_deployment(self, name: str) -> DeploymentStatus:
        """``NotFoundError`` names namespace and name when it does not exist."""
        ...

    def scale(self, name: str, replicas: int) -> DeploymentStatus:
        """Set the replicas of the deployment's predictor."""
        ...

    def roll(self, name: str, model_uri: str) -> DeploymentStatus:
        """Roll the deployment to another model (replica by replica, no failed requests)."""
        ...

    def set_predictors(self, name: str, predictors: list[dict[str, Any]]) -> DeploymentStatus:
        """Replace ``spec.predictors`` (a roll-out's traffic split, shadow, canary added or removed), checked
        as Seldon's webhook checks it first; no request fails while the split changes."""
        ...

    def delete_deployment(self, name: str) -> None:
        """Remove a deployment and stop what serves it."""
        ...


@dataclass(frozen=True)
class PodLog:
    """Where one container of one pod of a run writes its log (locally: a file that grows while it runs)."""

    run: str
    pod: str
    node_id: str
    path: Path


@runtime_checkable
class WorkflowAdmin(Protocol):
    """What an Argo Server serves, beyond ``Platform``: whole Argo documents (as the API returns them:
    the controller's phase labels, ``resourceVersion``, no nulls), every lifecycle verb, templates and
    CronWorkflows by kind, pod logs by pod name. ``LocalPlatform`` implements it and
    ``scanflow_argo.server`` is its front door; on Kubernetes the cluster's own Argo Server is.

    Errors: ``NotFoundError`` (no such object), ``ConflictError`` (name taken, stale resourceVersion),
    ``InvalidRequest`` (the verb does not apply: stopping a finished run, retrying a running one),
    ``EngineError`` (a Workflow the engine refuses before anything runs)."""

    namespace: str

    def list_workflows(
        self, namespace: str | None = None, selector: LabelSelector | None = None, *, full: bool = False
    ) -> list[dict[str, Any]]:
        """Newest first; summaries (no ``status.nodes``) unless ``full``."""
        ...

    def get_workflow(self, name: str, namespace: str | None = None) -> dict[str, Any]: ...

    def create_workflow(self, manifest: Mapping[str, Any]) -> dict[str, Any]: ...

    def delete_workflow(self, name: str) -> None: ...

    def suspend(self, name: str) -> dict[str, Any]: ...

    def resume(self, name: str) -> dict[str, Any]: ...

    def shutdown(self, name: str, strategy: str) -> dict[str, Any]:
        """``Stop`` (exit handlers run) or ``Terminate`` (they do not)."""
        ...

    def retry(
        self, name: str, restart_successful: bool = False, node_field_selector: str = "", parameters: Sequence[str] = ()
    ) -> dict[str, Any]: ...

    def resubmit(self, name: str, parameters: Sequence[str] = (), memoized: bool = False) -> dict[str, Any]: ...

    def pod_log(self, name: str, pod: str, container: str = "main") -> PodLog: ...

    def pod_done(self, name: str, node_id: str) -> bool: ...

    def list_templates(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]: ...

    def get_template(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]: ...

    def create_template(self, manifest: Mapping[str, Any]) -> dict[str, Any]: ...

    def update_template(self, manifest: Mapping[str, Any]) -> dict[str, Any]: ...

    def delete_template(self, kind: str, name: str, namespace: str | None = None) -> None: ...

    def set_cron_suspended(self, name: str, suspend: bool, namespace: str | None = None) -> dict[str, Any]: ...

    def list_deployments(self) -> list[DeploymentStatus]: ...

    def change_feed(self) -> ChangeFeed:
        """A new feed of run changes (its first ``refresh`` reports every run as ``ADDED``)."""
        ...


class ChangeFeed(Protocol):
    """Runs added, modified or deleted since the previous ``refresh`` of this feed."""

    def refresh(self) -> list[Any]:
        """``Change(type, name, summary)`` items (``ADDED``, ``MODIFIED``, ``DELETED``)."""
        ...


def already_finished(name: str, phase: str) -> PlatformError:
    """What every platform says when asked to stop a run that has ended: the Argo Server's
    ``AlreadyShutdownError`` (argoproj/argo-workflows ``workflow/util/util.go`` ``patchShutdownStrategy``) in the
    project's words, whichever path (Argo Server, Workflow objects, the local engine) found it."""
    return PlatformError(f"run {name!r} already finished ({phase}): there is nothing to stop")


def already_exists(name: str, platform: str = "local") -> AlreadyExistsError:
    """The error Kubernetes gives a create whose name is taken (``workflows.argoproj.io "NAME" already
    exists``), with the command that deletes the old run and the other way out (``generateName``)."""
    flag = " --platform kubernetes" if platform == "kubernetes" else ""
    return AlreadyExistsError(
        f'workflows.argoproj.io "{name}" already exists — delete the old run with `scanflow-argo{flag} delete {name}`, '
        "or give the workflow generateName (Hera: generate_name=...) for a new name each run"
    )


def declared_parameters(
    manifest: Mapping[str, Any], lookup: Callable[[str, bool], Mapping[str, Any]] | None = None
) -> list[str] | None:
    """The parameter names a Workflow, WorkflowTemplate or CronWorkflow declares in its arguments, with
    those of the WorkflowTemplate it references (``workflowTemplateRef``, read with ``lookup(name,
    cluster_scope)``). None when that template cannot be read here (the submit then says why)."""
    spec = manifest.get("spec") or {}
    if manifest.get("kind") == "CronWorkflow":
        spec = spec.get("workflowSpec") or {}
    names = [str(p.get("name")) for p in (spec.get("arguments") or {}).get("parameters") or [] if isinstance(p, Mapping)]
    ref = spec.get("workflowTemplateRef") or {}
    if ref.get("name"):
        if lookup is None:
            return None
        try:
            template = lookup(str(ref["name"]), bool(ref.get("clusterScope")))
        except ScanflowError:
            return None
        names += declared_parameters(template, None) or []
    return list(dict.fromkeys(names))


def check_parameters(given: Iterable[str], declared: Iterable[str], what: str) -> None:
    """Refuse parameters ``what`` does not declare: a misspelt ``-p mesage=hi`` would otherwise run with
    the default and a stray ``mesage`` (Argo's ``overrideParameters`` adds unknown names silently; its
    artifact overrides refuse them, and so do we for both)."""
    known = list(dict.fromkeys(declared))
    unknown = [g for g in given if g not in known]
    if not unknown:
        return
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1)
        hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    declared_text = ", ".join(known) if known else "none"
    raise PlatformError(
        f"{what} declares no parameter {', '.join(hints)} — its parameters: {declared_text}"
        + ("" if known else " (declare it under spec.arguments.parameters)")
    )


def unpack_artifact(data: bytes, dest: Path) -> Path:
    """An artifact as its repository stores it (Argo's default archive is a tar-gz of the file or folder;
    ``archive: none`` is the file itself) placed at ``dest``: the file, or the folder's content."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if data[:2] != b"\x1f\x8b":
        dest.write_bytes(data)
        return dest
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = [m for m in tar.getmembers() if m.name]
        if len(members) == 1 and members[0].isfile():
            fh = tar.extractfile(members[0])
            assert fh is not None
            dest.write_bytes(fh.read())
            return dest
        tops = {Path(m.name).parts[0] for m in members}
        staging = dest.parent / f".{dest.name}.unpack"
        tar.extractall(staging, filter="data")  # refuses absolute paths, `..` and links that leave staging
    top = staging / next(iter(tops)) if len(tops) == 1 else staging
    if dest.exists():
        shutil.copytree(top, dest, dirs_exist_ok=True)
    else:
        shutil.move(str(top), dest)
    shutil.rmtree(staging, ignore_errors=True)
    return dest
