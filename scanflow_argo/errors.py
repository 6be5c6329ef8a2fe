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
    │   ├── ConflictError              a write lost a race (HTTP 409) after retries
    │   └── UnavailableError           the platform did not answer (network, timeout)
    ├── ServingError                   local serving (router, replicas, model) failed
    ├── RequestError                   an HTTP request one of our servers refuses (400/403/413)
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

__all__ = [
    "AgentDefinitionError",
    "AgentError",
    "CompileError",
    "ConflictError",
    "EngineError",
    "ImageNotMapped",
    "Issue",
    "NotFoundError",
    "NotSupportedLocally",
    "PlatformError",
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

_SECRET_PATTERNS = [
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"(?i)((?:token|password|passwd|secret|api[_-]?key)\s*[=:]\s*)[^\s,;&\"']+"),
    re.compile(r"(?i)(://[^:/@\s]+:)[^@\s]+(@)"),
]


def redact(text: str) -> str:
    """Hide bearer tokens, passwords and credentials in URLs from ``text``."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + "***" + (m.group(2) if m.lastindex and m.lastindex > 1 else ""), text)
    return text


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


class PlatformError(ScanflowError):
    """Acting on a platform (local or Kubernetes) failed."""


class NotFoundError(PlatformError):
    """The named object does not exist on the platform."""


class ConflictError(PlatformError):
    """A write kept losing a race (HTTP 409) after re-reading and retrying."""


class UnavailableError(PlatformError):
    """The platform did not answer (connection refused, timeout, 5xx)."""


class ServingError(ScanflowError):
    """Local serving (router, replicas, model loading) failed."""


class RequestError(ScanflowError):
    """An HTTP request one of our servers refuses (bad JSON, too deep, non-finite numbers, foreign origin).

    ``status`` is the HTTP answer: 400 by default, 403 for a refused caller, 413 for a body too large.
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class TrackingError(ScanflowError):
    """MLflow could not be reached or refused a call."""


class AgentError(ScanflowError):
    """The agent runtime failed."""


class AgentDefinitionError(AgentError):
    """An agent definition is invalid; the message names the field."""


class SetupError(ScanflowError):
    """This machine lacks something: a binary, a free port, an environment."""
