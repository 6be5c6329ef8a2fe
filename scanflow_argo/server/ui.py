"""The web UI: the page shell, its assets and the login page, served by the same server, nothing from the internet.

The UI is one HTML shell and one dependency-free script (``static/app.js``) that draws every page
(Workflows, a workflow's graph in SVG, Templates with the submit dialog, Deployments, Agents) from
the Argo API this server speaks and the two views of ``/scanflow/api`` (deployments, agents). Assets
are read from the package once and served from memory by name, so no path reaches the file system.
The login page takes the token (``scanflow-argo server token``) and sets it as an ``HttpOnly``,
``SameSite=Strict`` cookie; ``next`` may only be a path of this server.
"""

from __future__ import annotations

import hmac
import html
from importlib import resources
from urllib.parse import urlsplit

from aiohttp import web

from .auth import COOKIE

__all__ = ["PAGES", "UiRoutes"]

PAGES = ("/workflows", "/templates", "/deployments", "/agents")
"""First path segments of the UI's pages (each answered with the shell; the script draws the page)."""
ASSETS = {"app.js": "text/javascript", "app.css": "text/css", "index.html": "text/html", "login.html": "text/html"}
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def _asset(name: str) -> bytes:
    return resources.files("scanflow_argo.server").joinpath("static", name).read_bytes()


def _safe_next(target: str | None) -> str:
    """Where to go after login: a path of this server only (no scheme, no host, no ``//``)."""
    if not target or not target.startswith("/") or target.startswith("//") or urlsplit(target).netloc:
        return "/workflows"
    return target


class UiRoutes:
    """Pages, assets, login and logout."""

    def __init__(self, token: str | None) -> None:
        self.token = token
        self.assets = {name: _asset(name) for name in ASSETS}

    def routes(self) -> list[web.RouteDef]:
        out = [
            web.get("/", self.root),
            web.get("/static/{file}", self.static),
            web.get("/login", self.login_page),
            web.post("/login", self.login),
            web.post("/logout", self.logout),
        ]
        for page in PAGES:
            out += [web.get(page, self.shell), web.get(page + "/{tail:.*}", self.shell)]
        return out

    @staticmethod
    def _headers(content_type: str) -> dict[str, str]:
        return {
            "Content-Type": content_type + "; charset=utf-8",
            "Content-Security-Policy": _CSP,
            "X-Frame-Options": "DENY",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
            "Cache-Control": "no-store",
        }

    async def root(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/workflows")

    async def shell(self, request: web.Request) -> web.Response:
        return web.Response(body=self.assets["index.html"], headers=self._headers("text/html"))

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["file"]
        if name not in ASSETS:
            raise web.HTTPNotFound()
        return web.Response(body=self.assets[name], headers=self._headers(ASSETS[name]))

    def _login_html(self, target: str, error: str = "") -> bytes:
        page = self.assets["login.html"].decode()
        page = page.replace("{{next}}", html.escape(target, quote=True)).replace("{{error}}", html.escape(error))
        return page.encode()

    async def login_page(self, request: web.Request) -> web.Response:
        if self.token is None:
            raise web.HTTPFound("/workflows")
        return web.Response(body=self._login_html(_safe_next(request.query.get("next"))), headers=self._headers("text/html"))

    async def login(self, request: web.Request) -> web.Response:
        form = await request.post()
        target = _safe_next(str(form.get("next") or ""))
        given = str(form.get("token") or "").strip().removeprefix("Bearer ").strip()
        if self.token is not None and not hmac.compare_digest(given.encode(), self.token.encode()):
            body = self._login_html(target, "That token is not this server's: `scanflow-argo server token` prints it.")
            return web.Response(status=401, body=body, headers=self._headers("text/html"))
        response = web.HTTPSeeOther(target)
        if self.token is not None:
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="Strict", path="/", secure=request.secure)
        raise response

    async def logout(self, request: web.Request) -> web.Response:
        response = web.HTTPSeeOther("/login")
        response.del_cookie(COOKIE, path="/")
        raise response
