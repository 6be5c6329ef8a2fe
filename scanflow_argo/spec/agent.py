"""Agent declarations: sensors, rules, plans of actions — plain immutable data, no I/O.

An ``Agent`` says what to watch (sensors), when something is wrong (rules over a window of
samples) and what to do about it (plans of actions). The runtime (``scanflow_argo.agents``)
senses, decides with a pure function and acts through the ``Platform``; the compiler reads
``name``, ``replicas``, ``port``, ``entrypoint``, ``rbac_rules()``, ``config()`` and
``secret_env()`` to produce the agent's Kubernetes objects.

Durations are seconds or strings such as ``"500ms"``, ``"30s"``, ``"5m"``, ``"1h"``.
Templates (action parameters, idempotency keys) use ``{name}`` placeholders; see ``TEMPLATE_VARS``
and ``sensor.<name>`` / ``message.<field>``. Nothing else is evaluated in a template.

Both styles are natural: one agent with sensors, rules and actions; or a MAPE-K chain where a
monitor agent ``SendMessage``s an analyser/planner/executor whose rules are ``OnMessage``.
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, overload

from croniter import croniter

from ..argoexpr.errors import Fail
from ..argoexpr.golang import argo_duration
from ..errors import AgentDefinitionError, SpecError
from .analysis import Metric
from .rollout import parse_steps

__all__ = [
    "FALLBACK_BEHAVIORS",
    "OPS",
    "TEMPLATE_VARS",
    "Action",
    "Agent",
    "AllOf",
    "AnyOf",
    "ArgoRuns",
    "Hysteresis",
    "MlflowQuery",
    "OnMessage",
    "Plan",
    "PromQuery",
    "RateOfChange",
    "Replicas",
    "RollDeployment",
    "Rule",
    "ScaleDeployment",
    "SendMessage",
    "Sensor",
    "SetModelAlias",
    "StartRollout",
    "SubmitWorkflow",
    "Threshold",
    "agent_factory",
    "check_promql",
    "parse_duration",
    "render",
    "template_names",
]

OPS = (">", ">=", "<", "<=", "==", "!=")
"""Comparison operators a rule accepts."""
FALLBACK_BEHAVIORS = ("static", "currentReplicas", "currentReplicasIfHigher", "currentReplicasIfLower")
"""KEDA's ``fallback.behavior`` values (apis/keda/v1alpha1/scaledobject_types.go, ``FallbackBehavior*``)."""

TEMPLATE_VARS = frozenset(
    {
        "agent",  # agent name
        "rule",  # rule name
        "action",  # action name
        "now",  # evaluation time, epoch seconds (integer)
        "now_iso",  # evaluation time, RFC 3339
        "since",  # epoch second the rule's condition started to hold (e.g. drift onset)
        "since_iso",
        "fired_at",  # epoch second the rule fired (its episode id)
        "date",  # YYYYMMDD of the evaluation (UTC)
        "window",  # "<since>..<now>", the data window of the episode
    }
)
"""Plain names a template may use; ``sensor.<name>`` and ``message.<field>`` are also allowed."""

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.-]*)\}")
_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def parse_duration(value: float | int | str | None, where: str = "duration") -> float | None:
    """Seconds from ``30``, ``"30"``, ``"30s"``, ``"5m"``, ``"500ms"``, ``"1h30m"`` (Argo's rule, through the one
    Go-semantics module: whole seconds, else Go's ``time.ParseDuration``); ``None`` stays ``None``."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise AgentDefinitionError(f"{where}: {value!r} is not a duration — use seconds or a string like '30s'")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        try:
            seconds = argo_duration(str(value).strip()).ns / 1e9
        except Fail as err:
            raise AgentDefinitionError(
                f"{where}: {value!r} is not a duration ({err.cause}) — use seconds or '500ms', '30s', '5m', '1h30m'"
            ) from None
    if seconds < 0:
        raise AgentDefinitionError(f"{where}: {value!r} is negative — durations are zero or more")
    return seconds


def template_names(template: str) -> list[str]:
    """The placeholder names used in ``template``."""
    return _PLACEHOLDER.findall(template)


def render(template: str, values: Mapping[str, Any]) -> str:
    """Replace ``{name}`` placeholders with ``values[name]``; only plain lookups, no expressions."""

    def sub(m: re.Match[str]) -> str:
        key = m.group(1)
        if key not in values:
            raise AgentDefinitionError(f"template {template!r}: no value for {{{key}}} at this point")
        value = values[key]
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return str(value)

    return _PLACEHOLDER.sub(sub, template)


def _check_template(template: str, where: str, sensors: Iterable[str]) -> None:
    known = set(sensors)
    for key in template_names(template):
        head, _, rest = key.partition(".")
        if key in TEMPLATE_VARS or (head == "message" and rest):
            continue
        if head == "sensor" and rest in known:
            continue
        hint = ", ".join(sorted(TEMPLATE_VARS)) + ", sensor.<name>, message.<field>"
        raise AgentDefinitionError(f"{where}: unknown placeholder {{{key}}} in {template!r} — use one of {hint}")


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)


class _Declared(Protocol):
    def _where(self) -> str:
        """``sensor 'cpu'``, ``rule 'slow'`` … : how error messages name the object."""
        ...


class _Duration:
    """A duration field: assigned seconds or a string (``"30s"``), read as seconds (a float).

    The field's declared type is the descriptor (``_Seconds`` or ``_MaybeSeconds``), so a type checker
    takes ``float | str`` for the constructor (``__set__``) and seconds for every read (``__get__``).
    The value is parsed with ``parse_duration`` on its first read — ``_parse_durations`` in
    ``__post_init__`` does that, so a bad duration fails the constructor with the object's name — and
    kept as seconds. A field without a value (``None``) reads as ``fallback(obj)`` when there is one
    (``stale_after``: 3 × interval), else as ``None``.
    """

    def __init__(self, default: float | str | None, fallback: Callable[[Any], float] | None = None) -> None:
        self.default = default
        self.fallback = fallback
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __set__(self, obj: _Declared, value: float | str | None) -> None:
        obj.__dict__[self.name] = value

    def _read(self, obj: _Declared) -> float | None:
        raw = obj.__dict__[self.name]
        if raw is None and self.fallback is not None:
            raw = float(self.fallback(obj))
        seconds = parse_duration(raw, f"{obj._where()}.{self.name}")  # cheap for a number, and checks its sign
        obj.__dict__[self.name] = seconds
        return seconds


class _Seconds(_Duration):
    """A required duration (see ``_Duration``)."""

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> float | str | None: ...
    @overload
    def __get__(self, obj: _Declared, owner: type | None = None) -> float: ...
    def __get__(self, obj: _Declared | None, owner: type | None = None) -> float | str | None:
        if obj is None:
            return self.default  # the dataclass's default for the constructor
        seconds = self._read(obj)
        if seconds is None:
            raise AgentDefinitionError(f"{obj._where()}.{self.name}: a duration is required — use seconds or a string like '30s'")
        return seconds


class _MaybeSeconds(_Duration):
    """An optional duration (see ``_Duration``): ``None`` when not given."""

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> float | str | None: ...
    @overload
    def __get__(self, obj: _Declared, owner: type | None = None) -> float | None: ...
    def __get__(self, obj: _Declared | None, owner: type | None = None) -> float | str | None:
        return self.default if obj is None else self._read(obj)


def _parse_durations(obj: object) -> None:
    """Read every duration field of ``obj`` once, so a bad one fails its constructor (naming the object)."""
    for klass in type(obj).__mro__:
        for name, attr in vars(klass).items():
            if isinstance(attr, _Duration):
                getattr(obj, name)


def _check_name(name: str, where: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name) or len(name) > 63:
        raise AgentDefinitionError(
            f"{where}: {name!r} is not a valid name — use lowercase letters, digits and '-' (at most 63, as Kubernetes names)"
        )


# -- PromQL offline check ------------------------------------------------------------------------

_PROMQL_FUNCTIONS = frozenset(
    [
        "abs",
        "absent",
        "absent_over_time",
        "acos",
        "acosh",
        "asin",
        "asinh",
        "atan",
        "atanh",
        "avg_over_time",
        "ceil",
        "changes",
        "clamp",
        "clamp_max",
        "clamp_min",
        "cos",
        "cosh",
        "count_over_time",
        "days_in_month",
        "day_of_month",
        "day_of_week",
        "day_of_year",
        "deg",
        "delta",
        "deriv",
        "exp",
        "floor",
        "histogram_count",
        "histogram_fraction",
        "histogram_quantile",
        "histogram_sum",
        "holt_winters",
        "hour",
        "idelta",
        "increase",
        "irate",
        "label_join",
        "label_replace",
        "last_over_time",
        "ln",
        "log10",
        "log2",
        "max_over_time",
        "min_over_time",
        "minute",
        "month",
        "pi",
        "predict_linear",
        "present_over_time",
        "quantile_over_time",
        "rad",
        "rate",
        "resets",
        "round",
        "scalar",
        "sgn",
        "sin",
        "sinh",
        "sort",
        "sort_desc",
        "sqrt",
        "stddev_over_time",
        "stdvar_over_time",
        "sum_over_time",
        "tan",
        "tanh",
        "time",
        "timestamp",
        "vector",
        "year",
    ]
)
_PROMQL_AGGREGATIONS = frozenset(
    ["sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile"]
)
_PROMQL_KEYWORDS = frozenset(
    ["by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless"]
)


def check_promql(query: str, where: str = "query") -> None:
    """Offline PromQL sanity check: balanced brackets and quotes, known function names.

    The runtime also asks the real Prometheus (``/api/v1/query`` answers ``bad_data`` for a
    parse error) when it is reachable; this catches the common mistakes without a server.
    """
    if not isinstance(query, str) or not query.strip():
        raise AgentDefinitionError(f"{where}: the PromQL query is empty — write an expression such as 'up'")
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    quote: str | None = None
    escaped = False
    for i, ch in enumerate(query):
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
            continue
        if ch in "\"'`":
            quote = ch
        elif ch in "([{":
            stack.append(ch)
        elif ch in ")]}":
            if not stack or stack[-1] != pairs[ch]:
                raise AgentDefinitionError(f"{where}: unbalanced {ch!r} at position {i} in {query!r}")
            stack.pop()
    if quote:
        raise AgentDefinitionError(f"{where}: unterminated string (quote {quote}) in {query!r}")
    if stack:
        raise AgentDefinitionError(f"{where}: unclosed {stack[-1]!r} in {query!r}")
    # Identifiers directly followed by "(" outside label matchers are function calls.
    for m in re.finditer(r"([A-Za-z_][A-Za-z0-9_:]*)\s*\(", _strip_strings_and_matchers(query)):
        word = m.group(1)
        if word in _PROMQL_FUNCTIONS or word in _PROMQL_AGGREGATIONS or word in _PROMQL_KEYWORDS:
            continue
        raise AgentDefinitionError(f"{where}: unknown PromQL function {word!r} in {query!r} — check its spelling")


def _strip_strings_and_matchers(query: str) -> str:
    query = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', query)
    return re.sub(r"\{[^{}]*\}", "{}", query)


# -- sensors ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sensor:
    """Base of every sensor: a name, an interval or a cron schedule, and when a sample is stale."""

    kind: ClassVar[str] = "sensor"

    if TYPE_CHECKING:  # fields every sensor declares itself; typed here for code that reads any sensor

        @property
        def name(self) -> str: ...
        @property
        def interval(self) -> float: ...
        @property
        def schedule(self) -> str | None: ...
        @property
        def stale_after(self) -> float: ...

    def _where(self) -> str:
        return f"sensor {self.name!r}"

    def _init_sensor(self) -> None:
        where = self._where()
        _check_name(self.name, f"{where}.name")
        _parse_durations(self)
        if self.interval <= 0:
            raise AgentDefinitionError(f"{where}.interval: must be more than 0 s")
        if self.schedule is not None and not croniter.is_valid(self.schedule):
            raise AgentDefinitionError(f"{where}.schedule: {self.schedule!r} is not a cron expression (e.g. '*/5 * * * *')")
        if self.stale_after <= 0:
            raise AgentDefinitionError(f"{where}.stale_after: must be more than 0 s")


@dataclass(frozen=True)
class PromQuery(Sensor):
    """A PromQL expression that yields one number (aggregate multi-series results with ``sum``/``max``).

    Instant by default; with ``range`` the sensor reads ``range`` seconds of samples at ``step``.
    """

    name: str
    query: str
    interval: _Seconds = _Seconds(15.0)
    range: _MaybeSeconds = _MaybeSeconds(None)
    step: _MaybeSeconds = _MaybeSeconds(None)
    schedule: str | None = None
    """A cron expression instead of ``interval`` (``interval`` then only sets staleness)."""
    stale_after: _Seconds = _Seconds(None, fallback=lambda sensor: 3 * sensor.interval)
    """A sample older than this is stale (default 3 × interval)."""
    kind: ClassVar[str] = "prometheus"

    def __post_init__(self) -> None:
        self._init_sensor()
        check_promql(self.query, f"sensor {self.name!r}.query")
        if self.range is not None and self.step is None:
            _set(self, "step", self.interval)
        if self.step is not None and self.step <= 0:
            raise AgentDefinitionError(f"sensor {self.name!r}.step: must be more than 0 s")
        if self.range is not None and self.step is not None and self.range < self.step:
            raise AgentDefinitionError(f"sensor {self.name!r}.range: {self.range}s is shorter than step {self.step}s")


@dataclass(frozen=True)
class MlflowQuery(Sensor):
    """A number from the MLflow registry: the version an alias points to, or a metric of its run."""

    name: str
    model: str
    alias: str = "champion"
    metric: str | None = None
    """``None``: the alias's version number; else this metric of the version's run."""
    interval: _Seconds = _Seconds(60.0)
    schedule: str | None = None
    stale_after: _Seconds = _Seconds(None, fallback=lambda sensor: 3 * sensor.interval)
    kind: ClassVar[str] = "mlflow"

    def __post_init__(self) -> None:
        self._init_sensor()
        if not self.model:
            raise AgentDefinitionError(f"sensor {self.name!r}.model: name the registered model")


@dataclass(frozen=True)
class ArgoRuns(Sensor):
    """How many workflow runs with these labels are in ``phases`` (default: not finished)."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    phases: tuple[str, ...] = ("Pending", "Running")
    interval: _Seconds = _Seconds(15.0)
    schedule: str | None = None
    stale_after: _Seconds = _Seconds(None, fallback=lambda sensor: 3 * sensor.interval)
    kind: ClassVar[str] = "argo"

    def __post_init__(self) -> None:
        self._init_sensor()
        _set(self, "labels", dict(self.labels))
        _set(self, "phases", tuple(self.phases))


@dataclass(frozen=True)
class Replicas(Sensor):
    """The desired replicas of a SeldonDeployment (what ``ScaleDeployment`` scales from)."""

    name: str
    deployment: str
    interval: _Seconds = _Seconds(15.0)
    schedule: str | None = None
    stale_after: _Seconds = _Seconds(None, fallback=lambda sensor: 3 * sensor.interval)
    kind: ClassVar[str] = "replicas"

    def __post_init__(self) -> None:
        self._init_sensor()
        _check_name(self.deployment, f"sensor {self.name!r}.deployment")


# -- rules -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """Base of every rule; ``name`` defaults to a description of the rule."""

    kind: ClassVar[str] = "rule"

    if TYPE_CHECKING:  # every rule declares its ``name`` field itself; typed here for code that reads any rule

        @property
        def name(self) -> str: ...

    def _where(self) -> str:
        return f"rule {self.name!r}"

    def sensors(self) -> tuple[str, ...]:
        """The sensors the rule reads: a sensor rule's ``sensor`` (combinations and messages override this)."""
        sensor = getattr(self, "sensor", None)
        return (sensor,) if isinstance(sensor, str) else ()

    def _check_op(self, op: str) -> None:
        if op not in OPS:
            raise AgentDefinitionError(f"rule {self.name!r}.op: {op!r} is not one of {', '.join(OPS)}")


@dataclass(frozen=True)
class Threshold(Rule):
    """Fires when every sample of ``sensor`` over the last ``for_`` seconds satisfies ``op value``
    (Prometheus alerting's ``for``); clears as soon as the latest sample does not."""

    sensor: str
    op: str
    value: float
    for_: _Seconds = _Seconds(0.0)
    name: str = ""
    kind: ClassVar[str] = "threshold"

    def __post_init__(self) -> None:
        if not self.name:
            _set(self, "name", _auto_name(f"{self.sensor}{self.op}{self.value}"))
        self._check_op(self.op)
        _set(self, "value", _number(self.value, f"rule {self.name!r}.value"))
        _parse_durations(self)


@dataclass(frozen=True)
class Hysteresis(Rule):
    """Fires when the latest sample crosses ``fire``; clears only when it crosses back past ``clear``.

    ``fire > clear`` watches for high values (drift score), ``fire < clear`` for low ones (accuracy).
    """

    sensor: str
    fire: float
    clear: float
    for_: _Seconds = _Seconds(0.0)
    name: str = ""
    kind: ClassVar[str] = "hysteresis"

    def __post_init__(self) -> None:
        if not self.name:
            _set(self, "name", _auto_name(f"{self.sensor}-hysteresis"))
        _set(self, "fire", _number(self.fire, f"rule {self.name!r}.fire"))
        _set(self, "clear", _number(self.clear, f"rule {self.name!r}.clear"))
        if self.fire == self.clear:
            raise AgentDefinitionError(
                f"rule {self.name!r}.clear: equals fire ({self.fire}) — set clear below fire (high alarm) or above it (low alarm)"
            )
        _parse_durations(self)

    @property
    def high(self) -> bool:
        return self.fire > self.clear


@dataclass(frozen=True)
class RateOfChange(Rule):
    """Fires when the slope of ``sensor`` over its last ``window`` seconds, in units per ``per``
    seconds (least squares over the samples), satisfies ``op value``."""

    sensor: str
    op: str
    value: float
    per: _Seconds = _Seconds(60.0)
    window: _Seconds = _Seconds(60.0)
    min_samples: int = 2
    name: str = ""
    kind: ClassVar[str] = "rate_of_change"

    def __post_init__(self) -> None:
        if not self.name:
            _set(self, "name", _auto_name(f"{self.sensor}-rate{self.op}{self.value}"))
        self._check_op(self.op)
        _set(self, "value", _number(self.value, f"rule {self.name!r}.value"))
        _parse_durations(self)
        if self.per <= 0 or self.window <= 0:
            raise AgentDefinitionError(f"rule {self.name!r}.per/window: must be more than 0 s")
        if self.min_samples < 2:
            raise AgentDefinitionError(f"rule {self.name!r}.min_samples: a slope needs at least 2 samples")


@dataclass(frozen=True)
class OnMessage(Rule):
    """Fires once for each message received with this ``topic`` (MAPE-K hand-over between agents)."""

    topic: str
    name: str = ""
    kind: ClassVar[str] = "message"

    def __post_init__(self) -> None:
        if not self.topic:
            raise AgentDefinitionError("rule OnMessage.topic: name the topic to react to")
        if not self.name:
            _set(self, "name", _auto_name(f"on-{self.topic}"))

    def sensors(self) -> tuple[str, ...]:
        return ()


@dataclass(frozen=True)
class _Combination(Rule):
    rules: tuple[Rule, ...] = ()
    name: str = ""

    def __post_init__(self) -> None:
        _set(self, "rules", tuple(self.rules))
        if len(self.rules) < 2:
            raise AgentDefinitionError(f"rule {self.name or self.kind!r}.rules: combine at least two rules")
        for r in self.rules:
            if not isinstance(r, Rule) or isinstance(r, OnMessage):
                raise AgentDefinitionError(f"rule {self.name or self.kind!r}.rules: {r!r} is not a sensor rule")
        if not self.name:
            _set(self, "name", _auto_name(f"{self.kind}-" + "-".join(r.name for r in self.rules)))

    def sensors(self) -> tuple[str, ...]:
        return tuple(s for r in self.rules for s in r.sensors())


@dataclass(frozen=True, init=False)
class AnyOf(_Combination):
    """Fires while any of its rules fires."""

    kind: ClassVar[str] = "any_of"

    def __init__(self, *rules: Rule, name: str = "") -> None:
        _set(self, "rules", rules)
        _set(self, "name", name)
        self.__post_init__()


@dataclass(frozen=True, init=False)
class AllOf(_Combination):
    """Fires while all of its rules fire."""

    kind: ClassVar[str] = "all_of"

    def __init__(self, *rules: Rule, name: str = "") -> None:
        _set(self, "rules", rules)
        _set(self, "name", name)
        self.__post_init__()


def _auto_name(text: str) -> str:
    name = re.sub(
        r"[^a-z0-9]+", "-", text.lower().replace(">=", "-ge-").replace("<=", "-le-").replace(">", "-gt-").replace("<", "-lt-")
    )
    return name.strip("-")[:63].strip("-") or "rule"


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AgentDefinitionError(f"{where}: {value!r} is not a number")
    return float(value)


# -- actions ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    """Base of every action: a name, a cooldown and an idempotency key template.

    The key is rendered when the action is decided; an action whose key already succeeded is
    never done again (persisted across restarts). The default key makes it once per firing.
    """

    kind: ClassVar[str] = "action"
    DEFAULT_KEY: ClassVar[str] = "{agent}/{rule}/{action}/{fired_at}"

    if TYPE_CHECKING:  # fields every action declares itself; typed here for code that reads any action

        @property
        def name(self) -> str: ...
        @property
        def cooldown(self) -> float: ...
        @property
        def idempotency_key(self) -> str: ...

    def _where(self) -> str:
        return f"action {self.name!r}"

    def _init_action(self, default_name: str) -> None:
        if not self.name:
            _set(self, "name", _auto_name(default_name))
        _check_name(self.name, f"action {self.name!r}.name")
        _parse_durations(self)
        if not self.idempotency_key:
            _set(self, "idempotency_key", self.DEFAULT_KEY)

    def templates(self) -> dict[str, str]:
        """Every template field, by field name (validated against the agent's sensors)."""
        return {"idempotency_key": self.idempotency_key}


@dataclass(frozen=True)
class SubmitWorkflow(Action):
    """Submit a run of a WorkflowTemplate with (templated) parameters, at most ``max_concurrent``
    unfinished at once — counted on the platform by the runs' labels, not only in memory.

    ``cluster_scope``: ``template`` is a ClusterWorkflowTemplate (what another team published, see
    ``platform/publications.py``); the run is a Workflow in the agent's own namespace whose
    ``workflowTemplateRef`` has ``clusterScope: true``, as ``argo submit --from clusterworkflowtemplate/NAME``
    makes it (argo-workflows ``workflow/common/convert.go`` ``NewWorkflowFromWorkflowTemplate``)."""

    template: str
    parameters: Mapping[str, str] = field(default_factory=dict)
    max_concurrent: int = 1
    labels: Mapping[str, str] = field(default_factory=dict)
    cooldown: _Seconds = _Seconds(300.0)
    idempotency_key: str = ""
    name: str = ""
    cluster_scope: bool = False
    kind: ClassVar[str] = "submit_workflow"

    def __post_init__(self) -> None:
        self._init_action(f"submit-{self.template}")
        _check_name(self.template, f"action {self.name!r}.template")
        _set(self, "parameters", {str(k): str(v) for k, v in dict(self.parameters).items()})
        _set(self, "labels", {str(k): str(v) for k, v in dict(self.labels).items()})
        if not isinstance(self.max_concurrent, int) or self.max_concurrent < 1:
            raise AgentDefinitionError(f"action {self.name!r}.max_concurrent: {self.max_concurrent!r} must be 1 or more")
        if not isinstance(self.cluster_scope, bool):
            raise AgentDefinitionError(f"action {self.name!r}.cluster_scope: {self.cluster_scope!r} must be true or false")

    def templates(self) -> dict[str, str]:
        return {**super().templates(), **{f"parameters.{k}": v for k, v in self.parameters.items()}}


@dataclass(frozen=True)
class ScaleDeployment(Action):
    """Set a SeldonDeployment's replicas to hold ``sensor`` near ``target`` (e.g. p95 under an SLO).

    ``policy="target"``: desired = ceil(current × value / target) (Kubernetes HPA's rule, with
    ``tolerance``), for a per-replica signal such as p95 latency; ``policy="capacity"``: desired =
    ceil(value / target), for the deployment's load (e.g. requests per second) where ``target`` is
    what one replica serves within its objective (HPA's ``AverageValue`` target, with ``tolerance``):
    the replicas follow the load, not the machine's momentary speed, so the same traffic gets the
    same decisions; ``policy="step"``: ± ``step`` when above target / below ``target × low``.
    The result is bounded by ``min_replicas``/``max_replicas`` and stabilised as HPA does: a scale
    up takes the lowest recommendation of the last ``up_stabilization`` s, a scale down the highest
    of the last ``down_stabilization`` s.
    """

    deployment: str
    sensor: str
    target: float
    min_replicas: int = 1
    max_replicas: int = 10
    policy: str = "target"
    step: int = 1
    low: float = 0.5
    tolerance: float = 0.1
    up_stabilization: _Seconds = _Seconds(0.0)
    down_stabilization: _Seconds = _Seconds(300.0)
    replicas_sensor: str = ""
    """The ``Replicas`` sensor of the deployment; added by the agent when not declared."""
    idle_sensor: str = ""
    """A traffic sensor (e.g. request rate). While ``sensor`` has no data (p95 of no requests is NaN)
    and this one reads at most ``idle_below`` for ``down_stabilization`` seconds, the deployment is
    idle: scale toward ``min_replicas``. ``""``: no idle rule (no data never scales)."""
    idle_below: float = 0.0
    activation_threshold: float = 0.0
    """KEDA's ``activationThreshold`` (keda pkg/scaling/executor/scale_scaledobjects.go, the
    scaler's ``IsActive``): while ``sensor`` reads at most this, the deployment is inactive and is
    recommended ``min_replicas`` — near-zero load does not flap between 0 and 1 replica. 0: off."""
    fallback_replicas: int | None = None
    """KEDA's ``fallback.replicas`` (keda pkg/fallback/fallback.go, ``GetMetricsWithFallback``):
    once more than ``failure_threshold`` consecutive reads of ``sensor`` failed or were stale the
    scaler holds this instead of freezing; ``None``: no fallback (no data, no action)."""
    failure_threshold: int = 3
    """KEDA's ``fallback.failureThreshold``: the fallback starts when the consecutive failed/stale
    evaluations exceed it (``NumberOfFailures > FailureThreshold`` in ``GetMetricsWithFallback``)."""
    fallback_behavior: str = "static"
    """KEDA's ``fallback.behavior`` (apis/keda/v1alpha1/scaledobject_types.go ``FallbackBehavior*``,
    applied in fallback.go ``doFallback``): ``static`` holds ``fallback_replicas``; ``currentReplicas``
    keeps the current replicas; ``currentReplicasIfHigher`` holds max(current, fallback);
    ``currentReplicasIfLower`` holds min(current, fallback)."""
    cooldown: _Seconds = _Seconds(0.0)
    idempotency_key: str = "{agent}/{action}/{now}"
    name: str = ""
    kind: ClassVar[str] = "scale_deployment"

    def __post_init__(self) -> None:
        self._init_action(f"scale-{self.deployment}")
        where = f"action {self.name!r}"
        _check_name(self.deployment, f"{where}.deployment")
        _set(self, "target", _number(self.target, f"{where}.target"))
        if self.target <= 0:
            raise AgentDefinitionError(f"{where}.target: must be more than 0")
        if not isinstance(self.min_replicas, int) or self.min_replicas < 0:
            raise AgentDefinitionError(f"{where}.min_replicas: {self.min_replicas!r} must be 0 or more")
        if not isinstance(self.max_replicas, int) or self.max_replicas < max(1, self.min_replicas):
            raise AgentDefinitionError(
                f"{where}.max_replicas: {self.max_replicas!r} is below min_replicas {self.min_replicas} — impossible bounds"
            )
        if self.policy not in ("target", "capacity", "step"):
            raise AgentDefinitionError(f"{where}.policy: {self.policy!r} — use 'target', 'capacity' or 'step'")
        if not isinstance(self.step, int) or self.step < 1:
            raise AgentDefinitionError(f"{where}.step: {self.step!r} must be 1 or more")
        if not 0 < self.low < 1:
            raise AgentDefinitionError(f"{where}.low: {self.low!r} must be between 0 and 1")
        _set(self, "idle_below", _number(self.idle_below, f"{where}.idle_below"))
        if self.idle_below < 0:
            raise AgentDefinitionError(f"{where}.idle_below: {self.idle_below!r} must be 0 or more")
        _set(self, "activation_threshold", _number(self.activation_threshold, f"{where}.activation_threshold"))
        if self.activation_threshold < 0:
            raise AgentDefinitionError(f"{where}.activation_threshold: {self.activation_threshold!r} must be 0 or more")
        if self.fallback_replicas is not None and (not isinstance(self.fallback_replicas, int) or self.fallback_replicas < 0):
            raise AgentDefinitionError(f"{where}.fallback_replicas: {self.fallback_replicas!r} must be 0 or more")
        if isinstance(self.failure_threshold, bool) or not isinstance(self.failure_threshold, int) or self.failure_threshold < 0:
            raise AgentDefinitionError(f"{where}.failure_threshold: {self.failure_threshold!r} must be 0 or more")
        if self.fallback_behavior not in FALLBACK_BEHAVIORS:
            raise AgentDefinitionError(
                f"{where}.fallback_behavior: {self.fallback_behavior!r} — use KEDA's "
                + ", ".join(repr(b) for b in FALLBACK_BEHAVIORS)
            )
        if self.idle_sensor == self.sensor:
            raise AgentDefinitionError(
                f"{where}.idle_sensor: {self.idle_sensor!r} is the scaled sensor itself — name a traffic sensor (request rate)"
            )
        if not self.replicas_sensor:
            _set(self, "replicas_sensor", f"{self.deployment}-replicas")


@dataclass(frozen=True)
class RollDeployment(Action):
    """Roll a SeldonDeployment to ``model_uri`` (templated, e.g. ``models:/mnist@champion``)."""

    deployment: str
    model_uri: str
    cooldown: _Seconds = _Seconds(60.0)
    idempotency_key: str = ""
    name: str = ""
    kind: ClassVar[str] = "roll_deployment"

    def __post_init__(self) -> None:
        self._init_action(f"roll-{self.deployment}")
        _check_name(self.deployment, f"action {self.name!r}.deployment")
        if not self.model_uri:
            raise AgentDefinitionError(f"action {self.name!r}.model_uri: give the model URI to roll to")

    def templates(self) -> dict[str, str]:
        return {**super().templates(), "model_uri": self.model_uri}


@dataclass(frozen=True)
class SetModelAlias(Action):
    """Point an MLflow registry alias at a version (templated)."""

    model: str
    alias: str
    version: str
    cooldown: _Seconds = _Seconds(0.0)
    idempotency_key: str = ""
    name: str = ""
    kind: ClassVar[str] = "set_model_alias"

    def __post_init__(self) -> None:
        self._init_action(f"alias-{self.model}-{self.alias}")
        if not self.model or not self.alias:
            raise AgentDefinitionError(f"action {self.name!r}.model/alias: both are required")
        _set(self, "version", str(self.version))

    def templates(self) -> dict[str, str]:
        return {**super().templates(), "version": self.version}


@dataclass(frozen=True)
class StartRollout(Action):
    """Start a canary roll-out of ``deployment`` to ``model_uri`` (templated), driven by the agent loop.

    ``steps`` are Argo Rollouts' canary steps (``setWeight``) plus ``shadow: {}`` (``spec/rollout.py``);
    ``analysis`` lists Argo Rollouts' ``Metric`` fields (``spec/analysis.py``), run after each step
    against Prometheus with ``{{args.deployment}}``, ``{{args.stable}}`` and ``{{args.canary}}`` (the
    predictor names). Successful → next step; Failed/Error → abort (traffic back to stable, canary
    removed); Inconclusive → paused until ``scanflow-argo rollout promote|abort``. At Healthy the
    registered ``model``'s ``alias`` moves to ``version`` (templated) and the old one becomes ``previous``.
    """

    deployment: str
    model_uri: str
    version: str = ""
    model: str = ""
    alias: str = "champion"
    steps: tuple[Mapping[str, Any], ...] = ({"setWeight": 10}, {"setWeight": 50}, {"setWeight": 100})
    analysis: tuple[Mapping[str, Any], ...] = ()
    canary: str = "canary"
    """The canary predictor's name (``{{args.canary}}`` in the analysis queries); templated, e.g. ``v{sensor.v}``:
    a promoted canary stays the deployment's predictor, so the next roll-out's canary needs another name."""
    cooldown: _Seconds = _Seconds(0.0)
    idempotency_key: str = ""
    name: str = ""
    kind: ClassVar[str] = "start_rollout"

    def __post_init__(self) -> None:
        self._init_action(f"rollout-{self.deployment}")
        where = f"action {self.name!r}"
        _check_name(self.deployment, f"{where}.deployment")
        if not template_names(self.canary):
            _check_name(self.canary, f"{where}.canary")
        if not self.model_uri:
            raise AgentDefinitionError(f"{where}.model_uri: give the challenger's model URI (e.g. models:/mnist/{{sensor.v}})")
        _set(self, "steps", tuple(dict(s) for s in self.steps))
        _set(self, "analysis", tuple(dict(m) for m in self.analysis))
        _set(self, "version", str(self.version))
        try:
            parse_steps(self.steps)
            for metric in self.analysis:
                Metric.from_spec(metric)
        except SpecError as err:
            raise AgentDefinitionError(f"{where}: {err}") from err
        if self.model and not self.version:
            raise AgentDefinitionError(f"{where}.version: name the challenger's version, whose alias {self.alias!r} moves")

    def rollout_spec(self, canary: str | None = None) -> dict[str, Any]:
        """What the roll-out book keeps (``agents/rollouts.py``): steps, analysis, names — ``canary`` is the
        predictor's name as rendered when the action was decided (default: the declared one)."""
        name = self.canary if canary is None else canary
        _check_name(name, f"action {self.name!r}.canary (rendered)")
        return {
            "deployment": self.deployment,
            "canary": name,
            "steps": [dict(s) for s in self.steps],
            "analysis": [dict(m) for m in self.analysis],
            "model": self.model,
            "alias": self.alias,
        }

    def templates(self) -> dict[str, str]:
        return {**super().templates(), "model_uri": self.model_uri, "version": self.version, "canary": self.canary}


@dataclass(frozen=True)
class SendMessage(Action):
    """Send ``{"topic", "payload"}`` to another agent's ``POST /messages`` (MAPE-K hand-over)."""

    to_agent: str
    topic: str
    payload: Mapping[str, str] = field(default_factory=dict)
    cooldown: _Seconds = _Seconds(0.0)
    idempotency_key: str = ""
    name: str = ""
    kind: ClassVar[str] = "send_message"

    def __post_init__(self) -> None:
        self._init_action(f"tell-{self.to_agent}-{self.topic}")
        _check_name(self.to_agent, f"action {self.name!r}.to_agent")
        if not self.topic:
            raise AgentDefinitionError(f"action {self.name!r}.topic: name the topic")
        _set(self, "payload", {str(k): str(v) for k, v in dict(self.payload).items()})

    def templates(self) -> dict[str, str]:
        return {**super().templates(), **{f"payload.{k}": v for k, v in self.payload.items()}}


@dataclass(frozen=True)
class Plan:
    """What to do when a rule fires: ``on="fire"`` once per firing, ``on="while"`` every
    evaluation while it fires (each action still under its cooldown); ``when=None`` every evaluation."""

    when: str | None
    actions: tuple[Action, ...]
    on: str = "fire"

    def __post_init__(self) -> None:
        acts = self.actions if isinstance(self.actions, list | tuple) else (self.actions,)
        _set(self, "actions", tuple(acts))
        if not self.actions:
            raise AgentDefinitionError(f"plan for {self.when!r}.actions: give at least one action")
        for a in self.actions:
            if not isinstance(a, Action):
                raise AgentDefinitionError(f"plan for {self.when!r}.actions: {a!r} is not an action")
        if self.on not in ("fire", "while"):
            raise AgentDefinitionError(f"plan for {self.when!r}.on: {self.on!r} — use 'fire' or 'while'")


# -- the agent -------------------------------------------------------------------------------------

ROLES = ("all", "monitor", "analyser", "planner", "executor")


@dataclass(frozen=True)
class Agent:
    """One autonomic agent: sensors → rules → plans of actions, evaluated every ``interval``."""

    name: str
    sensors: tuple[Sensor, ...] = ()
    rules: tuple[Rule, ...] = ()
    plans: tuple[Plan, ...] = ()
    interval: _Seconds = _Seconds(15.0)
    replicas: int = 1
    port: int = 8080
    entrypoint: str = ""
    """``package.module:attribute`` the compiled Deployment runs (an Agent or its factory). Required for a
    compiled agent; ``@agent_factory`` and ``agent run MODULE:AGENT`` fill it in."""
    image: str | None = None
    role: str = "all"
    """MAPE-K role, informational (``all``, ``monitor``, ``analyser``, ``planner``, ``executor``)."""
    token_secret: str = "scanflow-agent-token"
    """Kubernetes Secret (key ``token``) holding the bearer token of the agent API."""
    description: str = ""
    factory: str = ""
    """``package.module:function`` that built this agent (set by ``@agent_factory`` or the loader)."""
    factory_args: Mapping[str, Any] = field(default_factory=dict)
    """The factory's arguments, defaults included (JSON data): ``config()`` carries them so the compiled
    ConfigMap rebuilds the same agent in the pod (``agent run`` reads ``SCANFLOW_AGENT_CONFIG``)."""

    def __post_init__(self) -> None:
        _check_name(self.name, "agent.name")
        _set(self, "factory_args", dict(self.factory_args))
        for attr in ("sensors", "rules", "plans"):
            value = getattr(self, attr)
            _set(self, attr, tuple(value) if isinstance(value, list | tuple) else (value,))
        _parse_durations(self)
        if self.interval <= 0:
            raise AgentDefinitionError(f"agent {self.name!r}.interval: must be more than 0 s")
        if not isinstance(self.replicas, int) or self.replicas < 1:
            raise AgentDefinitionError(f"agent {self.name!r}.replicas: {self.replicas!r} must be 1 or more")
        if not isinstance(self.port, int) or not 0 < self.port < 65536:
            raise AgentDefinitionError(f"agent {self.name!r}.port: {self.port!r} is not a TCP port")
        for attr in ("entrypoint", "factory"):
            value = getattr(self, attr)
            if value and not (isinstance(value, str) and _REF.match(value)):
                raise AgentDefinitionError(f"agent {self.name!r}.{attr}: {value!r} — use 'package.module:attribute'")
        if self.role not in ROLES:
            raise AgentDefinitionError(f"agent {self.name!r}.role: {self.role!r} is not one of {', '.join(ROLES)}")
        self._add_implicit_sensors()
        self._validate()

    def _where(self) -> str:
        return f"agent {self.name!r}"

    def _add_implicit_sensors(self) -> None:
        names = {s.name for s in self.sensors}
        extra: list[Sensor] = []
        for action in self.actions():
            if isinstance(action, ScaleDeployment) and action.replicas_sensor not in names:
                extra.append(Replicas(action.replicas_sensor, action.deployment, interval=self.interval))
                names.add(action.replicas_sensor)
        if extra:
            _set(self, "sensors", (*self.sensors, *extra))

    def _validate(self) -> None:
        where = f"agent {self.name!r}"
        seen: set[str] = set()
        for i, s in enumerate(self.sensors):
            if not isinstance(s, Sensor):
                raise AgentDefinitionError(
                    f"{where}.sensors[{i}]: {s!r} is not a sensor (PromQuery, MlflowQuery, ArgoRuns, Replicas)"
                )
            if s.name in seen:
                raise AgentDefinitionError(f"{where}.sensors[{i}].name: {s.name!r} is used twice")
            seen.add(s.name)
        sensors = {s.name: s for s in self.sensors}
        rule_names: set[str] = set()
        for i, r in enumerate(self.rules):
            if not isinstance(r, Rule):
                raise AgentDefinitionError(f"{where}.rules[{i}]: {r!r} is not a rule")
            if r.name in rule_names:
                raise AgentDefinitionError(f"{where}.rules[{i}].name: {r.name!r} is used twice — name one of them")
            rule_names.add(r.name)
            for read in r.sensors():
                if read not in sensors:
                    known = ", ".join(sorted(sensors)) or "none"
                    raise AgentDefinitionError(
                        f"{where}.rules[{i}] ({r.name!r}).sensor: unknown sensor {read!r} (known: {known})"
                    )
        action_names: set[str] = set()
        for i, p in enumerate(self.plans):
            if not isinstance(p, Plan):
                raise AgentDefinitionError(f"{where}.plans[{i}]: {p!r} is not a Plan")
            if p.when is not None and p.when not in rule_names:
                known = ", ".join(sorted(rule_names)) or "none"
                raise AgentDefinitionError(f"{where}.plans[{i}].when: unknown rule {p.when!r} (known: {known})")
            for j, a in enumerate(p.actions):
                if a.name in action_names:
                    raise AgentDefinitionError(
                        f"{where}.plans[{i}].actions[{j}].name: {a.name!r} is used twice — name one of them"
                    )
                action_names.add(a.name)
                for key, template in a.templates().items():
                    _check_template(template, f"{where}.plans[{i}].actions[{j}] ({a.name!r}).{key}", sensors)
                if isinstance(a, ScaleDeployment):
                    for attr in ("sensor", "idle_sensor"):
                        ref = getattr(a, attr)
                        if ref and ref not in sensors:
                            raise AgentDefinitionError(
                                f"{where}.plans[{i}].actions[{j}] ({a.name!r}).{attr}: unknown sensor {ref!r}"
                            )

    # -- queries the runtime and compiler use ----------------------------------------------------
    def actions(self) -> list[Action]:
        return [a for p in self.plans for a in p.actions]

    def sensor(self, name: str) -> Sensor:
        for s in self.sensors:
            if s.name == name:
                return s
        raise AgentDefinitionError(f"agent {self.name!r}: no sensor {name!r}")

    def rule(self, name: str) -> Rule:
        for r in self.rules:
            if r.name == name:
                return r
        raise AgentDefinitionError(f"agent {self.name!r}: no rule {name!r}")

    def rbac_rules(self) -> list[dict[str, Any]]:
        """Kubernetes PolicyRules for exactly what the sensors and actuators call (no wildcards, no ``watch``: nothing
        here watches); the SeldonDeployment and WorkflowTemplate rules name their objects (``resourceNames``).
        ``create`` on workflows cannot be narrowed by name: ``compile.kube`` pairs it with an admission policy that
        only lets the agent run its WorkflowTemplates as they are."""
        grants: dict[tuple[str, str], set[str]] = {}
        named: dict[tuple[str, str, str], set[str]] = {}

        def grant(group: str, resource: str, *verbs: str) -> None:
            grants.setdefault((group, resource), set()).update(verbs)

        for s in self.sensors:
            if isinstance(s, ArgoRuns):
                grant("argoproj.io", "workflows", "get", "list")
            elif isinstance(s, Replicas):
                grant("machinelearning.seldon.io", f"seldondeployments/{s.deployment}", "get")
        for a in self.actions():
            if isinstance(a, SubmitWorkflow):
                grant("argoproj.io", "workflows", "create", "get", "list")
                if not a.cluster_scope:  # a ClusterWorkflowTemplate: Argo's controller reads it; a Role cannot grant it
                    grant("argoproj.io", f"workflowtemplates/{a.template}", "get")
            elif isinstance(a, ScaleDeployment | RollDeployment | StartRollout):
                grant("machinelearning.seldon.io", f"seldondeployments/{a.deployment}", "get", "patch")
        if self.replicas > 1:  # leader election (agents/leader.py): its own Lease by name; create carries no name
            grant("coordination.k8s.io", "leases", "create")
            grant("coordination.k8s.io", f"leases/{self.lease_name()}", "get", "update")
        rules: list[dict[str, Any]] = []
        for (group, resource), verbs in sorted(grants.items()):
            if "/" in resource:
                kind, _, name = resource.partition("/")
                named.setdefault((group, kind, ",".join(sorted(verbs))), set()).add(name)
                continue
            rules.append({"apiGroups": [group], "resources": [resource], "verbs": sorted(verbs)})
        for (group, kind, listed), names in sorted(named.items()):
            rules.append({"apiGroups": [group], "resources": [kind], "resourceNames": sorted(names), "verbs": listed.split(",")})
        # Persisted state on the cluster: only this agent's own ConfigMap, which the compiler emits
        # (Kubernetes cannot restrict ``create`` by name, so the agent never creates it).
        rules.append(
            {
                "apiGroups": [""],
                "resources": ["configmaps"],
                "resourceNames": [self.state_config_map()],
                "verbs": ["get", "update"],
            }
        )
        return rules

    def lease_name(self) -> str:
        """Name of the ``coordination.k8s.io`` Lease its replicas elect a leader with (``scanflow-agent-<name>``)."""
        return f"scanflow-agent-{self.name}"

    def state_config_map(self) -> str:
        """Name of the ConfigMap holding the agent's persisted state on Kubernetes (``<name>-state``)."""
        return f"{self.name}-state"

    def config(self) -> dict[str, Any]:
        """The declaration as JSON data for the compiled ConfigMap: every field, ``factory`` and
        ``factory_args`` included. A compiled agent needs an ``entrypoint``: AgentDefinitionError without one."""
        if not self.entrypoint:
            raise AgentDefinitionError(
                f"agent {self.name!r}.entrypoint: required to compile it — the pod runs `scanflow-argo agent run ENTRYPOINT`. "
                "Pass entrypoint='package.module:attribute' (where the Agent or its factory is defined), "
                "or build it with a function decorated with @agent_factory"
            )
        return self.declaration()

    def declaration(self) -> dict[str, Any]:
        """The whole declaration as JSON-able data (audit log, status), with no requirement on the entrypoint."""
        return _plain(self)

    def with_factory(self, factory: str, args: Mapping[str, Any]) -> Agent:
        """A copy recording the factory that built it and its arguments; the entrypoint defaults to the factory."""
        try:
            json.dumps(dict(args))
        except (TypeError, ValueError) as err:
            raise AgentDefinitionError(
                f"agent {self.name!r}.factory_args: {err} — factory arguments must be JSON data (numbers, strings, lists, dicts)"
            ) from err
        if not _REF.match(factory):
            raise AgentDefinitionError(f"agent {self.name!r}.factory: {factory!r} — use 'package.module:function'")
        out = copy.copy(self)
        _set(out, "factory", factory)
        _set(out, "factory_args", dict(args))
        if not out.entrypoint:
            _set(out, "entrypoint", factory)
        return out

    def secret_env(self) -> dict[str, tuple[str, str]]:
        """Environment variables the agent reads from Secrets: the API bearer token."""
        return {"SCANFLOW_AGENT_TOKEN": (self.token_secret, "token")}

    def max_window(self) -> float:
        """Seconds of samples the rules need kept per sensor."""
        longest = self.interval * 3
        for r in _flatten(self.rules):
            for attr in ("for_", "window"):
                v = getattr(r, attr, None)
                if isinstance(v, float):
                    longest = max(longest, v + 2 * self.interval)
        for a in self.actions():
            if isinstance(a, ScaleDeployment):
                # + 2 intervals: the idle rule needs a sample at least ``down_stabilization`` old
                longest = max(longest, a.up_stabilization, a.down_stabilization + 2 * self.interval)
        return longest


def _flatten(rules: Iterable[Rule]) -> list[Rule]:
    out: list[Rule] = []
    for r in rules:
        out.append(r)
        if isinstance(r, _Combination):
            out.extend(_flatten(r.rules))
    return out


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {"kind": getattr(type(value), "kind", type(value).__name__)}
        out["type"] = type(value).__name__
        for f in fields(value):
            out[f.name] = _plain(getattr(value, f.name))
        return out
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def agent_factory(fn: Callable[..., Agent]) -> Callable[..., Agent]:
    """Decorate a function that builds an ``Agent``: the agent records the function
    (``factory``, and ``entrypoint`` unless given) and its arguments with defaults (``factory_args``),
    so ``config()`` carries thresholds, intervals and windows, and ``agent run`` rebuilds the very
    same agent from the compiled ConfigMap. Arguments must be JSON data."""
    if "<" in fn.__qualname__:
        raise AgentDefinitionError(
            f"@agent_factory {fn.__qualname__}: define the factory at module level so the pod can import it"
        )
    ref = f"{fn.__module__}:{fn.__qualname__}"
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def build(*args: Any, **kwargs: Any) -> Agent:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as err:
            raise AgentDefinitionError(f"agent factory {ref}: {err}") from err
        bound.apply_defaults()
        agent = fn(*args, **kwargs)
        if not isinstance(agent, Agent):
            raise AgentDefinitionError(f"agent factory {ref} returned a {type(agent).__name__}, not an Agent")
        return agent.with_factory(ref, factory_arguments(bound))

    build.__scanflow_factory__ = ref  # type: ignore[attr-defined]  # a marker on the wrapper function, read by the loader
    return build


def factory_arguments(bound: inspect.BoundArguments) -> dict[str, Any]:
    """Bound arguments as keywords (``**kwargs`` flattened) — what calling the factory again needs."""
    out: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        kind = bound.signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            out.update(value)
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            raise AgentDefinitionError(
                f"agent factory argument *{name}: use keyword arguments, the ConfigMap stores them by name"
            )
        else:
            out[name] = value
    return out
