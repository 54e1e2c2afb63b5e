"""The review page and its JSON API as one aiohttp application, with ``/healthz`` and
``/metrics`` beside them when a daemon serves it; and the server that runs it.

Database reads and template rendering run in a small thread pool, never on the event
loop: in ``monitor run`` the same loop polls feeds. Every response carries a strict
Content-Security-Policy (nothing but this server's own stylesheet loads; no script),
and every page escapes what feeds wrote (Jinja2 autoescape).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import json
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from aiohttp import web

from monitor import store
from monitor.web import api, pages
from monitor.web.context import (
    CONTEXT,
    COOKIE,
    SESSION,
    WHO,
    Context,
    Health,
    WebHealth,
    set_cookie,
)
from monitor.web.security import LOCAL_REVIEWER, Keys
from monitor.web.security import Session as WebSession

log = logging.getLogger(__name__)

PAGE_CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
            "frame-src 'self'; frame-ancestors 'none'; base-uri 'none'")
OPEN_PATHS = ("/healthz", "/metrics", "/login", "/static/", "/favicon.ico")


def make_app(ctx: Context) -> web.Application:
    app = web.Application(middlewares=[_errors, _guard], client_max_size=64 * 1024)
    app[CONTEXT] = ctx
    app.router.add_get("/healthz", _healthz)
    if ctx.metrics is not None:
        app.router.add_get("/metrics", _metrics)
    pages.add_routes(app.router)
    api.add_routes(app.router)
    app.on_cleanup.append(_cleanup)
    return app


async def _cleanup(app: web.Application) -> None:
    app[CONTEXT].close()


async def _healthz(request: web.Request) -> web.Response:
    """A daemon's verdict (monitor.service.health); serving alone, whether the
    database answers."""
    ctx = request.app[CONTEXT]
    h: Health
    if ctx.health is not None:
        h = ctx.health()
    else:
        try:
            await ctx.read(store.ping)
            h = WebHealth(True, {"role": "web"})
        except web.HTTPServiceUnavailable as exc:
            h = WebHealth(False, {"role": "web", "reason": (exc.text or "").strip()})
    body = json.dumps({"status": "ok" if h.ok else "unhealthy", **h.detail}, default=str)
    return web.Response(status=200 if h.ok else 503, text=body + "\n",
                        content_type="application/json", headers={"Cache-Control": "no-store"})


async def _metrics(request: web.Request) -> web.Response:
    from prometheus_client import CONTENT_TYPE_LATEST

    metrics = request.app[CONTEXT].metrics
    assert metrics is not None
    return web.Response(body=metrics(), headers={"Content-Type": CONTENT_TYPE_LATEST,
                                                 "Cache-Control": "no-store"})


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Security headers on every answer; errors as JSON under /api/, else as text."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
        if request.path.startswith("/api/") and exc.status >= 400 \
                and exc.content_type != "application/json":
            response = web.json_response({"error": (exc.text or exc.reason).strip()},
                                         status=exc.status,
                                         headers={k: v for k, v in exc.headers.items()
                                                  if k.lower() in ("www-authenticate", "allow")})
    except Exception:
        log.exception("answering %s %s failed", request.method, request.path)
        response = (web.json_response({"error": "internal error"}, status=500)
                    if request.path.startswith("/api/")
                    else web.Response(status=500, text="internal error: see the log\n"))
    h = response.headers
    h.setdefault("Content-Security-Policy", PAGE_CSP)
    h["X-Content-Type-Options"] = "nosniff"
    # same-origin, not no-referrer: under no-referrer Chromium sends "Origin: null" with
    # the page's own form POSTs, which the CSRF check must refuse. Links out carry
    # rel=noreferrer, so no other site learns what was being read either way.
    h["Referrer-Policy"] = "same-origin"
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("Cache-Control", "no-store")
    return response


def _open(path: str) -> bool:
    return any(path == p or (p.endswith("/") and path.startswith(p)) for p in OPEN_PATHS)


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Who is asking, and whether they may: a signed-in session (cookie), a token or
    password in the Authorization header (programs), or anyone on a loopback page
    where ``[web] auth`` is unset. POSTs from a cookie must carry the page's CSRF
    token and come from this site."""
    ctx = request.app[CONTEXT]
    if request.path in ("/healthz", "/metrics"):
        return await handler(request)
    keys = await ctx.keys()
    session = keys.session(request.cookies.get(COOKIE), ctx.clock().timestamp())
    header = request.headers.get("Authorization", "")
    by_header = bool(header) and await _header_ok(ctx, header)
    if header and not by_header:
        raise _unauthorized(request, "the Authorization header's token or password is wrong")
    fresh: WebSession | None = None
    if ctx.settings.web.kind == "none" and (session is None or not session.who):
        session = fresh = keys.new_session(LOCAL_REVIEWER, ctx.clock().timestamp())
    allowed = by_header or (session is not None and session.signed_in)
    if not allowed and not _open(request.path):
        raise _unauthorized(request, "sign in first")
    request[SESSION] = None if by_header else session
    request[WHO] = "api" if by_header else (session.who if session else "")
    if request.method == "POST" and not by_header and request.path != "/login":
        await _check_csrf(request, keys, session)
    response = await handler(request)
    if fresh is not None:
        set_cookie(response, keys.cookie(fresh), request)
    return response


async def _header_ok(ctx: Context, header: str) -> bool:
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and ctx.settings.web.kind == "token":
        return ctx.credentials.check(value.strip())
    if scheme.lower() == "basic" and ctx.settings.web.kind == "password":
        try:
            _, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return await ctx.run(functools.partial(ctx.credentials.check, password))
    return False


def _unauthorized(request: web.Request, why: str) -> web.HTTPException:
    ctx = request.app[CONTEXT]
    if request.path.startswith("/api/"):
        challenge = "Bearer" if ctx.settings.web.kind == "token" else 'Basic realm="monitor"'
        return web.HTTPUnauthorized(
            text=json.dumps({"error": why}), content_type="application/json",
            headers={"WWW-Authenticate": challenge})
    if request.method == "GET":
        return web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='')}")
    return web.HTTPForbidden(text=f"{why}\n")


async def _check_csrf(request: web.Request, keys: Keys, session: WebSession | None) -> None:
    origin = request.headers.get("Origin")
    if origin is not None and origin != _own_origin(request):
        raise web.HTTPForbidden(text="refused: this form was sent from another site\n")
    if request.content_type == "application/json":
        # A browser sends a JSON body to another site only after a CORS preflight, which
        # this server never grants: only a program (curl, a script) can send this.
        return
    token = request.headers.get("X-CSRF-Token")
    if token is None and request.content_type in ("application/x-www-form-urlencoded",
                                                  "multipart/form-data"):
        try:
            token = str((await request.post()).get("csrf", "")) or None
        except web.HTTPException:
            raise  # too large: 413
        except Exception:  # aiohttp raises several kinds on a broken body
            raise web.HTTPBadRequest(text="refused: the form's body could not be read\n") from None
    if not keys.csrf_ok(session, token):
        raise web.HTTPForbidden(text="refused: the form's security token is missing or out "
                                     "of date; reload the page and try again\n")


def _own_origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


class WebServer:
    """Runs the application on ``host:port`` (port 0: any free one)."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.app, self.host, self.port = app, host, port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Raises OSError when the address cannot be bound (in use, not local …)."""
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, shutdown_timeout=2)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        server = site._server  # the bound socket: its port when 0 was asked for
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def close(self) -> None:
        if self._runner is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._runner.cleanup(), 5)
