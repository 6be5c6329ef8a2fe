"""The exception tree of scanflow-argo: every error the library raises on purpose.

    ScanflowError                      root; catch this to catch everything below
    ├── SpecError                      an Application/Workflow/Service/Agent is wrong
    │   └── ValidationError            one or more issues found by validation (all at once)
    ├── CompileError                   the compiler could not produce a manifest
    │   └── SchemaError                a manifest does not match Argo/Kubernetes/Seldon schemas
    ├── EngineError                    the local engine refused or failed a run
    │   ├── NotSupportedLocally        a feature that cannot run on one machine
    │   └── ImageNotMapped             a container image with no local runtime
    ├── PlatformError                  acting on a platform (local or Kubernetes) failed
    │   ├── NotFoundError              the named object does not exist
    │   ├── ConflictError              a write lost a race (HTTP 409) after retries, or the name is taken
    │   │   └── AlreadyExistsError     a create named an object that exists (AlreadyExists), with the way out
    │   ├── InvalidRequest             a request wrong as given: a selector that does not parse, a verb the run's phase refuses
    │   └── UnavailableError           the platform did not answer (network, timeout)
    ├── ServingError                   local serving (router, replicas, model) failed
    ├── RequestError                   an HTTP request one of our servers refuses (400/403/413/429)
    ├── TrackingError                  MLflow could not be reached or refused a call
    ├── AgentError                     agent runtime failure
    │   └── AgentDefinitionError       an agent definition is invalid (names the field)
    └── SetupError                     something this machine lacks: a binary, a free port

Third-party errors are wrapped at the boundary with ``raise ... from err``; messages
state the likely cause and how to fix it, and never contain secrets (see ``redact``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AgentDefinitionError",
    "AgentError",
    "AlreadyExistsError",
    "CompileError",
    "ConflictError",
    "EngineError",
    "ImageNotMapped",
    "InvalidRequest",
    "InvalidWorkflow",
    "Issue",
    "NotFoundError",
    "NotSupportedLocally",
    "PlatformError",
    "PodRefused",
    "RequestError",
    "ScanflowError",
    "SchemaError",
    "ServingError",
    "SetupError",
    "SpecError",
    "TrackingError",
    "UnavailableError",
    "ValidationError",
    "redact",
]

# A scheme's credential: ``Authorization: Bearer <token>`` / ``Basic <base64>``, with or without the header name.
_SCHEME = re.compile(r"(?i)(?<![A-Za-z])((authorization[\"']?\s*[:=]\s*[\"']?)?(?:bearer|basic)\s+)([A-Za-z0-9._~+/=-]+)")
# ``key=value``, ``key: value``, ``"key": "value"``, ``KEY_TOKEN=value`` for keys naming a secret.
_ASSIGNED = re.compile(
    r"(?i)(?<![A-Za-z0-9])((?:[A-Za-z0-9]+[_-])*"
    r"(?:token|password|passwd|secret|api[_-]?key|access[_-]?key|private[_-]?key|client[_-]?secret)"
    r"[\"']?\s*([:=])\s*([\"']?))([^\s,;&\"'<>]+)"
)
_URL_CREDENTIAL = re.compile(r"(?i)(://[^:/@\s]+:)[^@\s]+(@)")


def _looks_secret(value: str) -> bool:
    """A credential rather than a word: digits or symbols inside it, or long."""
    core = value.rstrip(".!?:")
    return len(core) >= 16 or any(c.isdigit() or c in "._~+/=-" for c in core)


def _ends_clause(text: str, end: int) -> bool:
    """Nothing but punctuation or a line end follows position ``end``: ``key: value`` is a setting, not prose."""
    rest = text[end : end + 2]
    return not rest or rest[0] in "\n\r,;)}]" or (rest[0] in " \t" and (len(rest) < 2 or rest[1] in "\n\r"))


def redact(text: str) -> str:
    """Hide bearer/basic credentials, ``key=value`` secrets (tokens, passwords, API keys) and URL passwords.

    After ``Bearer``/``Basic`` the credential is hidden in an ``Authorization`` header, or when it
    looks like one (so "the bearer token is missing" stays readable). A ``key: value`` written as
    prose ("no API token: set the variable …") keeps its words: after a colon the value is hidden
    when it looks like a credential (digits or symbols in it, 16+ characters), is quoted, or ends
    the clause; after ``=`` it is always hidden. A value without a letter or digit is never a credential
    (the expression languages' "Invalid token: '==='").
    """

    def scheme(m: re.Match[str]) -> str:
        return m.group(1) + "***" if m.group(2) or _looks_secret(m.group(3)) else m.group(0)

    def assigned(m: re.Match[str]) -> str:
        if not any(c.isalnum() for c in m.group(4)):
            return m.group(0)  # no letter or digit: an operator or punctuation ("Invalid token: '==='"), not a credential
        hide = m.group(2) == "=" or m.group(3) or _looks_secret(m.group(4)) or _ends_clause(m.string, m.end())
        return m.group(1) + "***" if hide else m.group(0)

    text = _SCHEME.sub(scheme, text)
    text = _ASSIGNED.sub(assigned, text)
    return _URL_CREDENTIAL.sub(r"\1***\2", text)


class ScanflowError(Exception):
    """Root of every error scanflow-argo raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


class SpecError(ScanflowError):
    """A user-written object (Application, Workflow, Step, Service, Agent) is wrong."""


@dataclass(frozen=True)
class Issue:
    """One validation finding: where it is, what is wrong, how to fix it."""

    where: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.where}: {self.problem} — {self.fix}"


class ValidationError(SpecError):
    """Validation found issues; ``issues`` lists every one of them, not only the first."""

    def __init__(self, issues: Iterable[Issue], subject: str = "validation") -> None:
        self.issues = list(issues)
        lines = "\n".join(f"  - {i}" for i in self.issues)
        super().__init__(f"{subject} failed with {len(self.issues)} issue(s):\n{lines}")


class CompileError(ScanflowError):
    """The compiler could not turn a spec into manifests."""


class SchemaError(CompileError):
    """A manifest does not validate against its schema; ``problems`` lists each one."""

    def __init__(self, problems: Iterable[str], subject: str = "manifest") -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{subject} does not match its schema:\n{lines}")


class EngineError(ScanflowError):
    """The local engine refused a workflow or failed to run it."""


class NotSupportedLocally(EngineError):
    """A feature that cannot work on one machine; raised before anything runs."""

    def __init__(self, feature: str, template: str) -> None:
        self.feature = feature
        self.template = template
        super().__init__(f"not supported locally: {feature} in {template}")


class ImageNotMapped(EngineError):
    """A container image has no local runtime mapping."""


class InvalidWorkflow(EngineError):
    """What Argo's controller refuses when it first operates a workflow: its validator's ``invalid spec: …``
    (phase Failed), a ``workflowTemplateRef`` that names nothing (phase Error). The engine makes the run and
    ends it at once, in Argo's phase and words (``str(err)``); ``hint`` says how to fix it, ``workflow`` is the
    workflow as far as it could be resolved (its name)."""

    def __init__(self, message: str, phase: str = "Failed", hint: str = "", workflow: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.phase = phase
        self.hint = hint
        self.workflow = workflow


class PodRefused(EngineError):
    """Kubernetes would refuse to create the pod (a volumeMount without a mountPath or naming no volume):
    on Argo the node errors when it is started, not the workflow when it is submitted."""


class PlatformError(ScanflowError):
    """Acting on a platform (local or Kubernetes) failed."""


class NotFoundError(PlatformError):
    """The named object does not exist on the platform."""


class ConflictError(PlatformError):
    """A write kept losing a race (HTTP 409) after re-reading and retrying."""


class InvalidRequest(PlatformError):
    """A request the platform cannot act on as given (a selector that does not parse, stopping a finished run)."""


class AlreadyExistsError(ConflictError):
    """A create named an object that already exists (Kubernetes' ``AlreadyExists``, HTTP 409); the
    message says how to delete the old one or how to get a fresh name (``generateName``)."""


class UnavailableError(PlatformError):
    """The platform did not answer (connection refused, timeout, 5xx)."""


class ServingError(ScanflowError):
    """Local serving (router, replicas, model loading) failed."""


class RequestError(ScanflowError):
    """An HTTP request one of our servers refuses (bad JSON, too deep, non-finite numbers, foreign origin).

    ``status`` is the HTTP answer: 400 by default, 403 for a refused caller, 413 for a body too large,
    429 for a queue that is full.
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class TrackingError(ScanflowError):
    """MLflow could not be reached or refused a call.

    What the server answered, when it answered: ``status`` (HTTP) and ``code`` (MLflow's ``error_code``);
    ``unreachable`` is True when it did not answer at all.
    """

    def __init__(self, message: str, *, status: int | None = None, code: str = "", unreachable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.unreachable = unreachable


class AgentError(ScanflowError):
    """The agent runtime failed."""


class AgentDefinitionError(AgentError):
    """An agent definition is invalid; the message names the field."""


class SetupError(ScanflowError):
    """This machine lacks something: a binary, a free port, an environment."""
