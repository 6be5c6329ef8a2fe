"""The agent API's bearer token: always required; from the environment, else one generated for the home.

Every endpoint but ``/healthz``, ``/readyz`` and ``/metrics`` needs ``Authorization: Bearer <token>``.
The token is the value of the environment variable named by ``settings.agent.token_env``
(``SCANFLOW_AGENT_TOKEN``; a Secret on the cluster). Without it:

* an agent listening on a loopback address uses the home's token file, ``<home>/agents/.token``
  (32 random bytes, URL-safe; created on first use with mode 0600, refused if others may read it),
  and its log, ``endpoint.json`` and ``--ready-file`` say where it is. Local peers (``SendMessage``)
  and scripts read the same file (``client_token``), so agents of one home talk to each other
  without configuration, and no other user of the machine, or web page, can call them;
* an agent listening anywhere else refuses to start: a token must be given on purpose.

A file, not one token per process: the agents of a home message each other, and a restarted agent
keeps the token its callers know.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

from ..errors import AgentError
from ..httpguard import is_loopback
from ..settings import Settings

__all__ = ["api_token", "client_token", "token_file"]


def token_file(settings: Settings) -> Path:
    """``<home>/agents/.token`` (a dot name: no agent can be called that)."""
    return Path(settings.home).resolve() / "agents" / ".token"


def _read(path: Path) -> str:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise AgentError(f"{path} may be read by other users (mode {stat.filemode(mode)}): chmod 600 {path}")
    token = path.read_text(encoding="utf-8").strip()
    if not token:
        raise AgentError(f"{path} is empty: delete it and a new token is generated at the next start")
    return token


def _generated(path: Path) -> str:
    """The token in ``path``, written (atomically, once, mode 0600) if there is none yet."""
    if path.exists():
        return _read(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".token.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(secrets.token_urlsafe(32) + "\n")
    try:
        os.link(tmp, path)  # fails if another agent of this home got there first: theirs wins
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return _read(path)


def api_token(settings: Settings, host: str, environ: Mapping[str, str] | None = None) -> tuple[str, Path | None]:
    """(token, the file it came from, or None when it came from the environment); AgentError when there is none."""
    env = os.environ if environ is None else environ
    given = env.get(settings.agent.token_env)
    if given:
        return given, None
    if not is_loopback(host):
        raise AgentError(
            f"no API token: set the environment variable {settings.agent.token_env} (from a Secret on the cluster) "
            f"before listening on {host}; without one the agent listens on 127.0.0.1 only, with the token in {token_file(settings)}"
        )
    path = token_file(settings)
    return _generated(path), path


def client_token(settings: Settings, environ: Mapping[str, str] | None = None) -> str | None:
    """The token to call an agent of this home with: the environment's, else the home's file (if any)."""
    env = os.environ if environ is None else environ
    given = env.get(settings.agent.token_env)
    if given:
        return given
    path = token_file(settings)
    return _read(path) if path.exists() else None
