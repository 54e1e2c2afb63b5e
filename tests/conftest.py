"""Shared test fixtures: real databases (SQLite files and the local PostgreSQL) and a
real HTTP server on 127.0.0.1 that serves feeds and pages and logs every request."""

from __future__ import annotations

import gzip
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from mailserver import MailServer
from mailserver import start as start_mail

PG_ADMIN_URL = os.environ.get("MONITOR_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


# --- databases -----------------------------------------------------------------------------

def _pg_admin():  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)


def _pg_available() -> str | None:
    try:
        with _pg_admin():
            return None
    except Exception as exc:
        return str(exc)


@pytest.fixture(scope="session")
def pg_reason() -> str | None:
    return _pg_available()


@contextmanager
def fresh_database(kind: str, tmp: Path, pg_reason: str | None) -> Iterator[str]:
    """A fresh, empty database of ``kind``: a SQLite file in ``tmp``, or a new
    PostgreSQL database, dropped after. PostgreSQL unreachable: skipped (failed in CI)."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp / 'monitor.db'}"
        return
    if pg_reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI but unreachable: {pg_reason}")
        pytest.skip(f"PostgreSQL unreachable: {pg_reason}")
    name = f"monitor_test_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        with _pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, pg_reason: str | None) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a new PostgreSQL database."""
    with fresh_database(request.param, tmp_path, pg_reason) as url:
        yield url


# --- HTTP server ---------------------------------------------------------------------------

@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    etag: str | None = None  # when set, If-None-Match with this value gets a 304
    last_modified: str | None = None  # when set, If-Modified-Since with this value gets a 304
    gzip: bool = False  # send Content-Encoding: gzip
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering
    trickle: float = 0.0  # when set, the body is sent one byte per this many seconds


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    status: int
    at: float = 0.0  # time.monotonic() when the request arrived
    client_port: int = 0  # the client's end of the connection: the same port, one connection


class _QuietServer(ThreadingHTTPServer):
    """A client hanging up (a fetcher giving up on a 404 body, a killed process) is
    routine here. socketserver prints a traceback to stderr for it, which would land
    in the output tests read: such resets are ignored, anything else still printed."""

    # socketserver's default backlog is 5: a burst of connections (32 feeds polled at
    # once) overflows it while the accepting thread waits for the GIL, and the client's
    # SYN is retransmitted a second later, past a test's 2 s deadline. Real servers
    # keep 128 or more.
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class LocalServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 with a route table and a request log."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.routes: dict[str, Route] = {}
        self.log: list[Hit] = []
        self.in_flight = 0  # requests being answered now
        self.max_in_flight = 0  # the most at once since the server started
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                with server._lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    self._answer()
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _answer(self) -> None:
                arrived = time.monotonic()
                route = server.routes.get(self.path) or server.routes.get(self.path.split("?")[0])
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = route.status if route else 404
                if route and route.delay:
                    time.sleep(route.delay)
                if route and status == 200 and (
                    (route.etag and headers.get("if-none-match") == route.etag)
                    or (route.last_modified
                        and headers.get("if-modified-since") == route.last_modified)
                ):
                    status = 304
                with server._lock:
                    server.log.append(Hit(self.path, headers, status, arrived,
                                          self.client_address[1]))
                body = b"not found" if route is None else route.body
                if status == 304:
                    body = b""
                if route and route.gzip and body:
                    body = gzip.compress(body)
                try:
                    self.send_response(status)
                    if route:
                        if status != 304:
                            self.send_header("Content-Type", route.content_type)
                        if route.etag:
                            self.send_header("ETag", route.etag)
                        if route.last_modified:
                            self.send_header("Last-Modified", route.last_modified)
                        if route.gzip and body:
                            self.send_header("Content-Encoding", "gzip")
                        for k, v in route.headers.items():
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if route and route.trickle:
                        for i in range(len(body)):
                            self.wfile.write(body[i:i + 1])
                            self.wfile.flush()
                            time.sleep(route.trickle)
                    else:
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = _QuietServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def hits(self, prefix: str = "") -> list[Hit]:
        with self._lock:
            return [h for h in self.log if h.path.startswith(prefix)]

    def clear_log(self) -> None:
        with self._lock:
            self.log.clear()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[LocalServer]:
    s = LocalServer()
    s.start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def mail() -> Iterator[MailServer]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1, plain, accepting everything until a
    test sets ``mail.mode``."""
    server = MailServer()
    controller = start_mail(server)
    try:
        yield server
    finally:
        controller.stop()
