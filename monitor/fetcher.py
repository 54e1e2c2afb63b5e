"""HTTP fetching: the only module that uses httpx.

Conditional GET, redirects (remembering permanent ones), a total deadline per
request, a cap on the *decoded* body size (so a gzip bomb stops at the cap),
concurrency limits overall and per host, and a minimum delay between the starts
of two requests to one host (``[fetch] host_delay``). Every failure is one of the
:class:`monitor.errors.FetchError` subclasses, naming the URL.

Untrusted URLs (article links: ``trusted=False``) pass the SSRF guard of
:mod:`monitor.netguard` before every request, each redirect hop included: the host
is resolved and every address it has must be public or allowed.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import socket
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType

import httpx

from monitor.config import FetchSettings
from monitor.errors import (
    BlockedError,
    FetchTimeout,
    HTTPStatusError,
    NetworkError,
    RedirectError,
    TooLargeError,
)
from monitor.netguard import AddressGuard

log = logging.getLogger(__name__)

FEED_ACCEPT = (  # no application/feed+json: JSON Feed is not read (yet)
    "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"

# Resolves a host and port to the addresses a connection could go to.
Resolver = Callable[[str, int], Awaitable[list[str]]]

# Set for the duration of an untrusted fetch: the request hook checks every hop then.
_UNTRUSTED: contextvars.ContextVar[bool] = contextvars.ContextVar("untrusted_fetch", default=False)


async def resolve(host: str, port: int) -> list[str]:
    """The addresses the system resolver gives for ``host`` (what httpx will connect to)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True)
class FetchResult:
    url: str  # what was asked for
    final_url: str  # after redirects
    status: int  # 200-class, or 304 for "not modified"
    body: bytes  # decoded (no Content-Encoding); empty for 304
    content_type: str | None
    etag: str | None
    last_modified: str | None
    permanent_redirect: str | None  # where a 301/308 chain from `url` ends, if it starts with one

    @property
    def not_modified(self) -> bool:
        return self.status == 304


class Fetcher:
    """An HTTP client with the limits from ``[fetch]``. Use as an async context manager.

    ``transport`` and ``resolver`` let tests swap the network layer and DNS; production
    uses httpx's default and the system resolver.
    """

    def __init__(
        self, settings: FetchSettings, transport: httpx.AsyncBaseTransport | None = None,
        resolver: Resolver = resolve,
    ) -> None:
        self.settings = settings
        self._guard = AddressGuard.from_allow_list(settings.allow_private)
        self._resolve = resolver
        self._client = httpx.AsyncClient(
            event_hooks={"request": [self._check_hop]},
            follow_redirects=True,
            max_redirects=settings.max_redirects,
            timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
            headers={"User-Agent": settings.user_agent},
            # Not more: httpcore's pool scans every connection for every queued request,
            # and with 100 idle connections that scan cost more than new connections.
            limits=httpx.Limits(
                max_connections=settings.concurrency,
                max_keepalive_connections=settings.concurrency,
            ),
            transport=transport,
        )
        self._all = asyncio.Semaphore(settings.concurrency)
        self._hosts: defaultdict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(settings.per_host)
        )
        self._next_start: dict[str, float] = {}  # per host, on the event loop's clock

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def fetch(
        self,
        url: str,
        *,
        max_bytes: int,
        accept: str = PAGE_ACCEPT,
        etag: str | None = None,
        last_modified: str | None = None,
        trusted: bool = False,
    ) -> FetchResult:
        """GET ``url``. Returns a 2xx or 304 result; raises a FetchError subclass otherwise.

        Only URLs the user chose (feeds in the config, a URL on the command line) are
        ``trusted``; any other URL and every redirect from it must pass the SSRF guard,
        or :class:`BlockedError` is raised before a connection is made."""
        try:
            host = httpx.URL(url).host
        except httpx.InvalidURL as exc:
            raise NetworkError(url, f"invalid URL: {exc}") from exc
        headers = {"Accept": accept}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        token = _UNTRUSTED.set(not trusted)
        try:
            async with self._hosts[host]:
                await self._pace(host)
                async with self._all:
                    return await self._guarded(url, host, headers, max_bytes)
        finally:
            _UNTRUSTED.reset(token)

    async def _check_hop(self, request: httpx.Request) -> None:
        """httpx's request hook: runs before the first request and before each redirect."""
        if not _UNTRUSTED.get():
            return
        host = request.url.host
        port = request.url.port or (443 if request.url.scheme == "https" else 80)
        try:
            addresses = [] if self._guard.host_allowed(host) else await self._resolve(host, port)
        except OSError as exc:
            raise NetworkError(str(request.url),
                               f"cannot resolve host {host!r} (DNS lookup failed: {exc})") from exc
        refusal = self._guard.refusal(host, addresses)
        if refusal:  # the caller logs it, with the feed and the entry's link
            raise BlockedError(str(request.url), refusal)

    async def _pace(self, host: str) -> None:
        """Wait until ``host_delay`` has passed since the last request to ``host`` began."""
        delay = self.settings.host_delay
        if delay <= 0:
            return
        loop = asyncio.get_running_loop()
        start = max(loop.time(), self._next_start.get(host, 0.0))
        self._next_start[host] = start + delay
        if start > loop.time():
            await asyncio.sleep(start - loop.time())

    async def _guarded(self, url: str, host: str, headers: dict[str, str],
                   max_bytes: int) -> FetchResult:
        try:
            async with asyncio.timeout(self.settings.timeout):
                return await self._get(url, headers, max_bytes)
        except TimeoutError as exc:
            raise FetchTimeout(url, f"no complete answer within {self.settings.timeout:g}s") from exc
        except httpx.TimeoutException as exc:
            raise FetchTimeout(url, f"{type(exc).__name__}: {exc or 'timed out'}") from exc
        except httpx.TooManyRedirects as exc:
            raise RedirectError(url, f"more than {self.settings.max_redirects} redirects") from exc
        except httpx.DecodingError as exc:
            raise NetworkError(url, f"body could not be decoded: {exc}") from exc
        except (httpx.TransportError, httpx.InvalidURL) as exc:
            raise NetworkError(url, _describe_network_error(exc, host)) from exc

    async def _get(self, url: str, headers: dict[str, str], max_bytes: int) -> FetchResult:
        async with self._client.stream("GET", url, headers=headers) as resp:
            if resp.status_code != 304 and not resp.is_success:
                raise HTTPStatusError(url, resp.status_code, resp.headers.get("Retry-After"))
            declared = resp.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes and not resp.headers.get(
                "Content-Encoding"
            ):
                raise TooLargeError(url, f"Content-Length {declared} is over the {max_bytes}-byte cap")
            chunks: list[bytes] = []
            size = 0
            # Read to the end even for a 304 (no body): a response not read to its end
            # closes its connection, and the next poll of that host would open another.
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise TooLargeError(url, f"body is over the {max_bytes}-byte cap")
                chunks.append(chunk)
            return FetchResult(
                url=url,
                final_url=str(resp.url),
                status=resp.status_code,
                body=b"".join(chunks),
                content_type=resp.headers.get("Content-Type"),
                etag=resp.headers.get("ETag"),
                last_modified=resp.headers.get("Last-Modified"),
                permanent_redirect=_permanent_target(resp),
            )


_DNS_FAILURES = ("Name or service not known", "Temporary failure in name resolution",
                 "nodename nor servname", "No address associated with hostname")


def _describe_network_error(exc: Exception, host: str) -> str:
    text = str(exc) or type(exc).__name__
    if any(marker in text for marker in _DNS_FAILURES):
        return f"cannot resolve host {host!r} (DNS lookup failed)"
    if "CERTIFICATE_VERIFY_FAILED" in text or "SSL" in text:
        return f"TLS error with {host!r}: {text}"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect to {host!r}: {text}"
    return f"{type(exc).__name__}: {text}"


def _permanent_target(resp: httpx.Response) -> str | None:
    """Where the leading run of 301/308 hops ends, or None if the first hop is not permanent."""
    hops = [*resp.history, resp]
    target = None
    for hop, nxt in itertools.pairwise(hops):
        if hop.status_code not in (301, 308):
            break
        target = str(nxt.url)
    return target


__all__ = ["FEED_ACCEPT", "PAGE_ACCEPT", "FetchResult", "Fetcher"]
