"""Who may call the server: Argo's ``client`` auth mode with one bearer token, and where it may listen.

Argo's gatekeeper (``server/auth/gatekeeper.go``, ``getAuthHeaders``) reads the token from the
``Authorization`` header or, for the browser, from a cookie named ``authorization``; a missing or
wrong token is ``Unauthenticated`` (HTTP 401) and the answer carries no version header. Here the
token is generated on the first start into ``<home>/server/token`` (mode 0600, never logged), checked
in constant time on every call, and ``scanflow-argo server token`` prints it. The UI's login page
puts it in an ``HttpOnly``, ``SameSite=Strict`` cookie; a write authenticated only by that cookie must
come from the server's own origin (no cross-site request reaches the API with it); without a token
(``--auth-mode server``, loopback only) every write must, or any web page the user opens could post a
Workflow to 127.0.0.1 — its shell would run on this machine. Listening on
loopback only, a request naming another ``Host`` is refused (a DNS-rebinding page), as the project's
other servers do (``httpguard``).
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import quote, urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

from ..errors import SetupError
from ..httpguard import is_loopback, refusal
from ..settings import Settings
from .http import Codes, error_response

__all__ = [
    "COOKIE",
    "OPEN_PATHS",
    "auth_middleware",
    "check_bind",
    "is_loopback",
    "load_or_create_token",
    "read_token",
    "token_path",
]

COOKIE = "authorization"
"""The cookie the browser sends the token in (Argo's name)."""
OPEN_PATHS = frozenset({"/healthz", "/login", "/logout"})
"""Paths served without a token: the readiness probe and the login page."""
OPEN_PREFIXES = ("/static/",)
"""The UI's assets (HTML shell, script, style: nothing secret) load before login."""
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CROSS_SITE = (
    "cross-origin request refused: writes come from this server's own pages or from clients that are not browsers "
    "(a page of another site may not create or change workflows here)"
)


def token_path(settings: Settings) -> Path:
    return settings.home / "server" / "token"


def read_token(settings: Settings) -> str | None:
    """The server's token, or None before its first start."""
    try:
        return token_path(settings).read_text().strip() or None
    except FileNotFoundError:
        return None


def load_or_create_token(settings: Settings) -> str:
    """The token, generated on first use: 256 random bits in a file only this user can read."""
    path = token_path(settings)
    existing = read_token(settings)
    if existing:
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)  # someone loosened it: the token is a password
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    token = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another server of this home made it first: use theirs
        return read_token(settings) or load_or_create_token(settings)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond this machine without a token."""
    if token is None and not is_loopback(host):
        raise SetupError(
            f"refusing to listen on {host} without a token: anyone who reaches it could run workflows. "
            "Listen on 127.0.0.1 (the default), or keep token authentication on"
        )


def given_token(request: web.Request) -> tuple[str | None, bool]:
    """The token a request carries and whether it came from the cookie (not the header)."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, value = header.partition(" ")
        return (value.strip() if scheme.lower() == "bearer" else None), False
    cookie = request.cookies.get(COOKIE, "")
    if cookie:
        return cookie.removeprefix("Bearer ").strip(), True
    return None, False


def token_matches(given: str | None, token: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def same_origin(request: web.Request) -> bool:
    """A browser write comes from this server's own pages (``Origin``, else ``Sec-Fetch-Site``)."""
    origin = request.headers.get("Origin")
    if origin:
        return urlsplit(origin).netloc == request.host
    return request.headers.get("Sec-Fetch-Site", "same-origin") in ("same-origin", "none")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def auth_middleware(token: str | None, loopback_only: bool) -> Middleware:
    """Every call but ``OPEN_PATHS`` needs the token; pages redirect to the login page instead of 401. A
    server listening on loopback only also refuses foreign ``Host`` names (DNS rebinding, ``httpguard``)."""

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        refused = refusal(request.headers.get("Host"), None, loopback_only)
        if refused is not None:
            return error_response(Codes.PERMISSION_DENIED, refused)
        if token is None and request.method in _UNSAFE and not same_origin(request):
            return error_response(Codes.PERMISSION_DENIED, CROSS_SITE)  # no token to stop it: a page could run workflows
        if token is None or path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            return await handler(request)
        given, from_cookie = given_token(request)
        if not token_matches(given, token):
            if not path.startswith(("/api/", "/scanflow/api/")) and request.method == "GET":
                raise web.HTTPFound(f"/login?next={quote(request.path_qs, safe='')}")
            return error_response(
                Codes.UNAUTHENTICATED,
                "token not valid: send 'Authorization: Bearer <token>' (`scanflow-argo server token` prints it)",
            )
        if from_cookie and request.method in _UNSAFE and not same_origin(request):
            return error_response(Codes.PERMISSION_DENIED, CROSS_SITE)
        return await handler(request)

    return auth
