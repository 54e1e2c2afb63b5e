"""What every handler of the review page shares: the settings, sessions on the
database, the clock, the keys that sign cookies, and a few helpers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor import db, store
from monitor.clock import utcnow
from monitor.config import Settings
from monitor.web.security import Credentials, Keys, Throttle

T = TypeVar("T")


class Health(Protocol):
    """A verdict for /healthz (a daemon's: monitor.service.health.Health)."""

    @property
    def ok(self) -> bool: ...

    @property
    def detail(self) -> dict[str, object]: ...


@dataclass(frozen=True)
class WebHealth:
    """/healthz of ``monitor web`` alone: whether the database answers."""

    ok: bool
    detail: dict[str, object]
THREADS = 4
COOKIE = "monitor_session"


class Context:
    """What every handler needs: the settings, sessions on the database, the clock,
    and the keys that sign cookies (made on first use: it reads the database)."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session], *,
                 clock: Callable[[], datetime] = utcnow,
                 health: Callable[[], Health] | None = None,
                 metrics: Callable[[], bytes] | None = None) -> None:
        self.settings, self.sessions, self.clock = settings, sessions, clock
        self.health, self.metrics = health, metrics
        self.credentials = Credentials(settings.web)
        self.throttle = Throttle()
        self._pool = ThreadPoolExecutor(THREADS, thread_name_prefix="web")
        self._keys: Keys | None = None

    async def run(self, fn: Callable[[], T]) -> T:
        """``fn()`` in the pool. Raises StoreError when the database fails."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, fn)
        except SQLAlchemyError as exc:
            raise web.HTTPServiceUnavailable(
                text=f"the database failed: {db.reason(exc)}\n") from exc

    async def read(self, fn: Callable[[Session], T]) -> T:
        """``fn(session)`` on a read-only session, in the pool."""
        def call() -> T:
            with self.sessions() as s:
                return fn(s)
        return await self.run(call)

    async def write(self, fn: Callable[[Session], T]) -> T:
        def call() -> T:
            with self.sessions.begin() as s:
                return fn(s)
        return await self.run(call)

    async def keys(self) -> Keys:
        if self._keys is None:
            secret = await self.write(store.web_secret)
            self._keys = Keys(secret, self.settings.web)
        return self._keys

    def csrf(self, session: Any) -> str:
        """The CSRF token for ``session``'s forms ("" before any key is made)."""
        return self._keys.csrf(session) if session is not None and self._keys else ""

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


CONTEXT = web.AppKey("context", Context)
SESSION = "web_session"  # request key: the WebSession, or None (an API client)
WHO = "web_who"  # request key: who is asking, for their feedback


CONTEXT = web.AppKey("context", Context)
SESSION = "web_session"  # request key: the security.Session, or None (an API client)
WHO = "web_who"  # request key: who is asking, for their feedback


def set_cookie(response: web.StreamResponse, value: str, request: web.Request) -> None:
    response.set_cookie(COOKIE, value, httponly=True, samesite="Strict", path="/",
                        secure=request.secure, max_age=14 * 86400)


def safe_next(target: str | None) -> str:
    """Where to go after a form: a path on this site only (never another host)."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") \
            or "\\" in target:
        return "/"
    return target


def json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")
