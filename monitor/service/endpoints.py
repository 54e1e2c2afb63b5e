"""``/healthz`` and ``/metrics`` over HTTP, on the daemon's event loop.

A deliberately small HTTP/1.1 server (GET only, one request per connection):
it serves two read-only pages to a local Prometheus or a service manager, so
asyncio's own streams are enough and no web framework is needed.

    GET /healthz   200 {"status": "ok", …} while the worker's database answers and its
                   work moves (monitor.service.health); 503 {"status": "unhealthy",
                   "reason": …} else
    GET /metrics   the Prometheus text format (monitor.service.metrics)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST

from monitor.service.health import Health

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_SECONDS = 10.0
MAX_REQUEST_BYTES = 8192


class Endpoints:
    """Serve ``health()`` and ``metrics()`` on ``host:port`` (port 0: any free one)."""

    def __init__(self, host: str, port: int, health: Callable[[], Health],
                 metrics: Callable[[], bytes]) -> None:
        self.host, self.port = host, port
        self._health, self._metrics = health, metrics
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Raises OSError when the address cannot be bound (in use, not local …)."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_SECONDS):
                head = await reader.readuntil(b"\r\n\r\n")
            status, ctype, body = self._answer(head)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
                ConnectionError):
            status, ctype, body = 400, "text/plain", b"bad request\n"
        except Exception:
            log.exception("answering an HTTP request failed")
            status, ctype, body = 500, "text/plain", b"internal error\n"
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
                  500: "Internal Server Error", 503: "Service Unavailable"}[status]
        with contextlib.suppress(ConnectionError):
            writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
                         f"Content-Length: {len(body)}\r\nConnection: close\r\n"
                         "Cache-Control: no-store\r\n\r\n".encode("ascii") + body)
            await writer.drain()
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()

    def _answer(self, head: bytes) -> tuple[int, str, bytes]:
        if len(head) > MAX_REQUEST_BYTES:
            return 400, "text/plain", b"request too large\n"
        method, _, rest = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
        path = rest.split(" ", 1)[0].split("?", 1)[0]
        if path not in ("/healthz", "/metrics"):
            return 404, "text/plain", b"not found: try /healthz or /metrics\n"
        if method != "GET":
            return 405, "text/plain", b"GET only\n"
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, self._metrics()
        health = self._health()
        body = json.dumps({"status": "ok" if health.ok else "unhealthy", **health.detail},
                          default=str).encode() + b"\n"
        return (200 if health.ok else 503), "application/json", body
