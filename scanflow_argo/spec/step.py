"""Steps and their calls: ``@step`` functions (Argo ``script`` templates), ``container`` steps, and ``Task``.

A ``Step`` is a reusable template. Calling it inside a ``Workflow`` context adds a ``Task`` (a DAG
node) with its arguments; calling it anywhere else runs the plain function, so steps stay unit-testable::

    @step(outputs={"accuracy": float}, tracking=True)
    def evaluate(model: ArtifactIn, split: ArtifactIn) -> dict:
        from pipelines.mnist import tasks
        return tasks.evaluate(model, split)

    with WorkflowTemplate("mnist-train", parameters=[...]) as wf:
        e = evaluate(model=t.out.model, split=s.out.split)       # dependencies implied by data
        register(...).when(f"{e.out.accuracy} > 0.9")           # or explicit: e >> r, .after(e)

Function arguments with annotations/defaults are input parameters (``Annotated[int, Param(...)]``
adds description/enum); ``ArtifactIn``/``ArtifactOut`` arguments are artifacts; ``outputs=``
declares output parameters, filled from the returned dict.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from ..errors import SpecError
from .params import NO_DEFAULT, ArtifactIn, ArtifactOut, Output, OutputRef, Param, Retry

__all__ = ["ArtifactSpec", "Step", "Task", "container", "step"]

# The workflow being built by a ``with Workflow(...)`` block (set by spec.workflow).
_building: ContextVar[Any] = ContextVar("scanflow_building_workflow", default=None)

INPUT_ARTIFACT_DIR = "/tmp/inputs/artifacts"
OUTPUT_ARTIFACT_DIR = "/tmp/outputs/artifacts"
OUTPUT_PARAM_DIR = "/tmp/outputs/parameters"


@dataclass(frozen=True)
class ArtifactSpec:
    """An input or output artifact of a step, at ``path`` inside the step's container."""

    name: str
    path: str
    optional: bool = False


@dataclass(eq=False)
class Step:
    """A reusable step template: a Python function (``kind='script'``) or a container."""

    name: str
    kind: str
    inputs: list[Param] = field(default_factory=list)
    outputs: list[Output] = field(default_factory=list)
    artifacts_in: list[ArtifactSpec] = field(default_factory=list)
    artifacts_out: list[ArtifactSpec] = field(default_factory=list)
    fn: Callable[..., Any] | None = None
    arg_order: list[str] = field(default_factory=list)
    image: str | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    retry: Retry | None = None
    timeout: int | None = None
    resources: Mapping[str, str] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    tracking: bool = False
    deploys: bool = False
    description: str | None = None
    autolog: bool = True
    """False: the local engine records no MLflow run for this step's nodes (annotation ``scanflow.io/tracking``)."""

    def input(self, name: str) -> Param | None:
        return next((p for p in self.inputs if p.name == name), None)

    def output(self, name: str) -> Output | None:
        return next((o for o in self.outputs if o.name == name), None)

    def source(self) -> str:
        """The function's source without decorators, annotations and defaults (all arguments are passed)."""
        if self.fn is None:
            return ""
        return _clean_source(self.fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        wf = _building.get()
        if wf is None:
            if self.fn is None:
                raise SpecError(f"container step {self.name!r} can only be called inside a `with Workflow(...)` block")
            return self.fn(*args, **kwargs)
        if args:
            names = [n for n in self.arg_order if self.input(n) or any(a.name == n for a in self.artifacts_in)]
            if len(args) > len(names):
                raise SpecError(f"step {self.name!r} takes {len(names)} argument(s) but {len(args)} were given")
            kwargs = {**dict(zip(names, args, strict=False)), **kwargs}
        task = Task(step=self, name=self.name, args=kwargs)
        wf._add_task(task)
        return task

    def __repr__(self) -> str:
        return f"Step({self.name!r}, kind={self.kind!r})"


class _Outputs:
    """``task.out.<name>``: references to a task's outputs (parameters, artifacts, or ``result``)."""

    def __init__(self, task: Task) -> None:
        self._task = task

    def __getattr__(self, name: str) -> OutputRef:
        if name.startswith("__"):
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, name: str) -> OutputRef:
        step = self._task.step
        if any(a.name == name for a in step.artifacts_out):
            return OutputRef(self._task, name, "artifact")
        if name == "result":
            return OutputRef(self._task, name, "result")
        # unknown names still make a reference: validation reports them with the workflow and step
        return OutputRef(self._task, name, "parameter")


@dataclass(eq=False)
class Task:
    """One call of a step in a workflow's DAG: arguments, dependencies, condition, fan-out."""

    step: Step
    name: str
    args: dict[str, Any] = field(default_factory=dict)
    explicit_deps: list[Task] = field(default_factory=list)
    condition: str | None = None
    items: list[Any] | None = None
    param_items: Any = None
    continue_on_failed: bool = False

    @property
    def fanned_out(self) -> bool:
        """True for a ``for_each`` call: later steps get its outputs as one JSON list (Argo's aggregation)."""
        return self.items is not None or self.param_items is not None

    @property
    def out(self) -> _Outputs:
        return _Outputs(self)

    def named(self, name: str) -> Task:
        """Give this call its own name (needed when a step is called twice in a workflow)."""
        self.name = name
        return self

    def after(self, *tasks: Task | Iterable[Task]) -> Task:
        """Run after ``tasks`` even when no data flows between them."""
        for t in tasks:
            self.explicit_deps.extend([t] if isinstance(t, Task) else list(t))
        return self

    def when(self, condition: str) -> Task:
        """Run only when the Argo expression holds, e.g. ``f"{promote.out.promoted} == true"``."""
        self.condition = str(condition)
        return self

    def for_each(self, items: Sequence[Any] | OutputRef | str) -> Task:
        """Fan out: a list becomes ``withItems``; an output reference (a JSON list) becomes ``withParam``.
        Use ``ITEM`` (``{{item}}``) in the arguments."""
        if isinstance(items, (OutputRef, str)):
            self.param_items = items
        else:
            self.items = list(items)
        return self

    def continue_on_failure(self) -> Task:
        """Let dependants run even when this task fails."""
        self.continue_on_failed = True
        return self

    def __rshift__(self, other: Task | list[Task]) -> Task | list[Task]:
        for t in [other] if isinstance(other, Task) else other:
            t.after(self)
        return other

    def __rrshift__(self, other: list[Task]) -> Task:
        return self.after(*other)

    def __repr__(self) -> str:
        return f"Task({self.name!r}, step={self.step.name!r})"


def _dns_name(name: str) -> str:
    return name.replace("_", "-").lower()


def _param_from_annotation(name: str, hint: Any, default: Any) -> Param | str:
    """An input ``Param`` for an argument, or ``'in'``/``'out'`` for an artifact argument."""
    meta: Param | None = None
    if typing.get_origin(hint) is typing.Annotated:
        base, *extras = typing.get_args(hint)
        meta = next((e for e in extras if isinstance(e, Param)), None)
        hint = base
    if hint is ArtifactIn:
        return "in"
    if hint is ArtifactOut:
        return "out"
    tp = hint if hint is not inspect.Parameter.empty else (type(default) if default is not NO_DEFAULT else str)
    if meta is not None:
        return Param(
            name=name,
            type=tp,
            default=meta.default if meta.default is not NO_DEFAULT else default,
            enum=meta.enum,
            description=meta.description,
        )
    return Param(name=name, type=tp, default=default)


def step(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    outputs: Mapping[str, Any] | Sequence[Output] | None = None,
    image: str | None = None,
    retry: Retry | None = None,
    timeout: int | None = None,
    resources: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    secrets: Mapping[str, tuple[str, str]] | None = None,
    tracking: bool = False,
    deploys: bool = False,
    autolog: bool = True,
) -> Any:
    """Make a Python function a workflow step (an Argo ``script`` template).

    ``outputs``: ``{"accuracy": float}`` or ``[Output(...)]`` — keys the function returns in a dict
    (a single output may be returned bare). ``timeout`` is ``activeDeadlineSeconds``; ``resources``
    is ``{"cpu": "1", "memory": "2Gi", "cpu_limit": ..., "memory_limit": ..., "gpu": ...}``;
    ``secrets`` maps env names to ``(secret, key)``; ``tracking=True`` injects MLflow's environment;
    ``deploys=True`` (a step that rolls or scales deployments through ``get_platform``) adds, on the
    cluster, the platform's environment too (``SCANFLOW_PLATFORM``, ``SCANFLOW_NAMESPACE``,
    ``SCANFLOW_ARTIFACTS_DESTINATION``) and implies ``tracking``. ``autolog=False``: the local engine
    records no MLflow run for this step (its own ``mlflow`` calls still log where they say).
    The function must be self-contained (imports inside it): only its source travels to the pod.
    """

    def wrap(func: Callable[..., Any]) -> Step:
        try:
            hints = typing.get_type_hints(func, include_extras=True)
        except Exception as err:  # NameError for unresolvable annotations
            raise SpecError(
                f"step {func.__name__!r}: cannot resolve its type annotations ({err}) — import the types it uses"
            ) from err
        sig = inspect.signature(func)
        params: list[Param] = []
        a_in: list[ArtifactSpec] = []
        a_out: list[ArtifactSpec] = []
        for arg in sig.parameters.values():
            if arg.kind in (arg.VAR_POSITIONAL, arg.VAR_KEYWORD):
                raise SpecError(f"step {func.__name__!r}: *args/**kwargs cannot be workflow inputs — name each argument")
            default = NO_DEFAULT if arg.default is inspect.Parameter.empty else arg.default
            kind = _param_from_annotation(arg.name, hints.get(arg.name, inspect.Parameter.empty), default)
            if isinstance(kind, Param):
                params.append(kind)
            elif kind == "in":
                a_in.append(ArtifactSpec(arg.name, f"{INPUT_ARTIFACT_DIR}/{arg.name}"))
            else:
                a_out.append(ArtifactSpec(arg.name, f"{OUTPUT_ARTIFACT_DIR}/{arg.name}"))
        s = Step(
            name=name or _dns_name(func.__name__),
            kind="script",
            inputs=params,
            outputs=_outputs(outputs),
            artifacts_in=a_in,
            artifacts_out=a_out,
            fn=func,
            arg_order=list(sig.parameters),
            image=image,
            retry=retry,
            timeout=timeout,
            resources=dict(resources) if resources else None,
            env=dict(env or {}),
            secrets=dict(secrets or {}),
            tracking=tracking or deploys,
            deploys=deploys,
            description=inspect.getdoc(func),
            autolog=autolog,
        )
        s.__doc__ = func.__doc__
        return s

    return wrap(fn) if fn is not None else wrap


def container(
    name: str,
    image: str,
    command: Sequence[str] | None = None,
    args: Sequence[str] | None = None,
    *,
    inputs: Sequence[Param] = (),
    outputs: Sequence[Output] = (),
    artifacts_in: Mapping[str, str] | None = None,
    artifacts_out: Mapping[str, str] | None = None,
    retry: Retry | None = None,
    timeout: int | None = None,
    resources: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    secrets: Mapping[str, tuple[str, str]] | None = None,
    tracking: bool = False,
    deploys: bool = False,
    autolog: bool = True,
) -> Step:
    """A container step. Refer to inputs in ``command``/``args`` as ``{{inputs.parameters.x}}``;
    each ``Output`` needs the ``path`` the container writes it to; artifacts map name → path.
    ``tracking``/``deploys``/``autolog`` as for ``step``."""
    for out in outputs:
        if not out.path:
            raise SpecError(f"container step {name!r}: output {out.name!r} needs path= (the file the container writes it to)")
    return Step(
        name=name,
        kind="container",
        inputs=list(inputs),
        outputs=list(outputs),
        artifacts_in=[ArtifactSpec(k, v) for k, v in (artifacts_in or {}).items()],
        artifacts_out=[ArtifactSpec(k, v) for k, v in (artifacts_out or {}).items()],
        image=image,
        command=list(command) if command else None,
        args=list(args) if args else None,
        arg_order=[p.name for p in inputs] + list(artifacts_in or {}),
        retry=retry,
        timeout=timeout,
        resources=dict(resources) if resources else None,
        env=dict(env or {}),
        secrets=dict(secrets or {}),
        tracking=tracking or deploys,
        deploys=deploys,
        autolog=autolog,
    )


def _outputs(spec: Mapping[str, Any] | Sequence[Output] | None) -> list[Output]:
    if not spec:
        return []
    if isinstance(spec, Mapping):
        return [Output(name=k, type=v) for k, v in spec.items()]
    return list(spec)


def _clean_source(fn: Callable[..., Any]) -> str:
    """Function source for a script template: decorators, annotations and defaults stripped
    (annotations would name types the pod lacks; every argument is passed explicitly)."""
    try:
        src = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError) as err:
        raise SpecError(f"step {fn.__name__!r}: its source is not available ({err}) — define steps in a .py file") from err
    tree = ast.parse(src)
    node = next(n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
    node.decorator_list = []
    node.returns = None
    for a in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]:
        a.annotation = None
    node.args.defaults = []
    node.args.kw_defaults = [None for _ in node.args.kw_defaults]
    return ast.unparse(node)
