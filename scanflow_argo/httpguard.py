"""What this project's HTTP servers accept from the network, shared by the router, the replicas and the agent API.

* **Who may call**: a web page of another site sends its ``Origin`` (the Fetch standard's header,
  which browsers add to cross-origin requests); a DNS-rebinding page reaches a loopback
  server under a foreign ``Host``. ``refusal()`` names either.
* **What bodies look like**: JSON nested at most ``MAX_DEPTH`` levels, with finite numbers only.
  Python's ``json`` accepts ``NaN``, ``Infinity`` and ``-Infinity`` (RFC 8259 §6 does not), turns
  ``1e400`` into ``inf`` and raises ``RecursionError`` on deep nesting; ``check_json()`` finds nesting
  and the non-finite literals without parsing (string contents skipped, nesting measured with numpy
  on the brackets alone, so a 1 MB body costs a few milliseconds), ``load_json()`` also parses,
  refusing numbers that do not fit a float.

Runs in both environments (stdlib + numpy): the serving venv's replica wrapper imports it too.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from .errors import RequestError

__all__ = ["MAX_DEPTH", "check_json", "host_name", "is_loopback", "load_json", "refusal"]

MAX_DEPTH = 64
"""Deepest JSON nesting a server takes (Seldon's ndarray of images is 6 levels deep, an agent message 3)."""

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = np.zeros(256, dtype=np.int8)
_STEP[list(b"[{")] = 1
_STEP[list(b"]}")] = -1
_CHUNK = 1 << 20


def is_loopback(host: str) -> bool:
    """``localhost``, ``127.0.0.0/8`` or ``::1`` (brackets allowed)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The host of a ``Host`` header value: ``name``, ``name:port``, ``[v6]`` or ``[v6]:port``."""
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def refusal(host: str | None, origin: str | None, loopback_only: bool) -> str | None:
    """Why a request with these ``Host`` and ``Origin`` headers is refused, or ``None`` when it is not.

    A request with an ``Origin`` comes from a web page: it is accepted only from the server's own
    origin (scheme ``http``, same host and port). A server listening on loopback only
    (``loopback_only``) also refuses a ``Host`` that is not a loopback name.
    """
    host = host or ""
    if loopback_only and not is_loopback(host_name(host)):
        return f"Host {host!r} refused: this server answers on its loopback address only (DNS rebinding?)"
    if origin is not None:
        parts = urlsplit(origin)
        if parts.scheme != "http" or parts.netloc.lower() != host.lower():
            return f"cross-site request from {origin!r} refused: call this API from a program, not a web page"
    return None


def _outside_strings(raw: bytes) -> bytes:
    """``raw`` with every JSON string's content removed (what remains: structure, numbers, literals)."""
    if b"\\" not in raw:  # no escapes: quotes alternate between opening and closing a string
        return b"".join(raw.split(b'"')[0::2])
    return _STRING.sub(b"", raw)


def _depth(structure: bytes, limit: int) -> int:
    """Deepest nesting of the brackets in ``structure``; stops counting once past ``limit``."""
    brackets = structure.translate(None, _NOT_BRACKET)
    deepest, level = 0, 0
    for start in range(0, len(brackets), _CHUNK):
        steps = np.cumsum(_STEP[np.frombuffer(brackets, np.uint8, min(_CHUNK, len(brackets) - start), start)], dtype=np.int64)
        deepest = max(deepest, level + int(steps.max()))
        level += int(steps[-1])
        if deepest > limit:
            break
    return deepest


def check_json(raw: bytes, max_depth: int = MAX_DEPTH, what: str = "the body") -> None:
    """RequestError (400) when ``raw`` nests deeper than ``max_depth`` or holds ``NaN``/``Infinity``; no parsing."""
    structure = _outside_strings(raw)
    depth = _depth(structure, max_depth)
    if depth > max_depth:
        raise RequestError(f"{what} is JSON nested more than {max_depth} levels deep: send at most {max_depth} levels")
    literal = re.search(rb"-?(?:NaN|Infinity)", structure)
    if literal is not None:
        raise RequestError(
            f"{what} holds {literal.group().decode()}, which is not a JSON number: send finite numbers "
            "(NaN and Infinity are refused)"
        )


class _NonFinite(ValueError):
    """A number ``json`` would turn into ``inf`` or ``nan``."""


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NonFinite(text)
    return value


def _no_constant(name: str) -> Any:
    raise _NonFinite(name)


def load_json(raw: bytes, max_depth: int = MAX_DEPTH, what: str = "the body") -> Any:
    """Parse ``raw`` as JSON; RequestError (400) when it is not JSON, too deep or holds a non-finite number."""
    check_json(raw, max_depth, what)
    try:
        return json.loads(raw, parse_float=_finite, parse_constant=_no_constant)
    except _NonFinite as err:
        raise RequestError(f"{what} holds the number {str(err)[:40]}, which does not fit a float: send finite numbers") from None
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise RequestError(f"{what} is not JSON ({err})") from None
