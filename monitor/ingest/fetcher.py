"""HTTP fetching: the only module that uses the HTTP client (aiohttp).

Conditional GET, redirects (followed here, hop by hop, remembering permanent ones),
a total deadline per request, a cap on the *decoded* body size (so a gzip bomb
stops at the cap), concurrency limits overall and per host, and a minimum delay
between the starts of two requests to one host (``[fetch] host_delay``). Every
failure is one of the :class:`monitor.errors.FetchError` subclasses, naming the URL.

Untrusted URLs (article links: ``trusted=False``) pass the SSRF guard of
:mod:`monitor.ingest.netguard` on every request, each redirect hop included: every address
the host resolves to must be public or allowed. They go through a client of their own
whose resolver *is* the guard: the addresses it checked are the ones connected to, so a
name that answers differently the second time (DNS rebinding) cannot slip past it.
Behind an HTTP(S) proxy from the environment, the proxy resolves the names: the guard
then checks them before each request, and the proxy's own answer is its business.

aiohttp rather than httpx: polling unchanged feeds is all per-request overhead, and
aiohttp's C parser and per-host connection pool cost ~0.13 ms of CPU per request
against httpx's ~0.95 ms (benchmarks in docs/performance.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
import ssl
import time
import urllib.request
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from types import TracebackType

import aiohttp
import aiohttp.abc
from yarl import URL

from monitor.config import FetchSettings
from monitor.errors import (
    BlockedError,
    FetchTimeout,
    HTTPStatusError,
    NetworkError,
    RedirectError,
    TooLargeError,
)
from monitor.ingest.netguard import AddressGuard
from monitor.ingest.urls import host_problem

log = logging.getLogger(__name__)

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, "
    "application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.5"
)
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"

# Resolves a host and port to the addresses a connection could go to.
Resolver = Callable[[str, int], Awaitable[list[str]]]


async def resolve(host: str, port: int) -> list[str]:
    """The addresses the system resolver gives for ``host`` (what the client will connect to)."""
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


@dataclass(frozen=True)
class Answer:
    """What a server answered a :meth:`Fetcher.send`: any status, the start of its body."""

    status: int
    body: bytes
    retry_after: str | None


_REDIRECTS = (301, 302, 303, 307, 308)
_CHUNK = 64 * 1024


def _proxy_and_auth(proxy: str) -> tuple[URL, aiohttp.BasicAuth | None]:
    """A proxy setting's URL, and the credentials it carries."""
    where = URL(proxy if "://" in proxy else f"http://{proxy}")
    auth = aiohttp.BasicAuth(where.user, where.password or "") if where.user else None
    return where.with_user(None), auth


class Fetcher:
    """An HTTP client with the limits from ``[fetch]``. Use as an async context manager
    (the client session needs a running event loop).

    ``resolver`` lets tests swap DNS for the SSRF guard; production uses the system
    resolver.
    """

    def __init__(self, settings: FetchSettings, resolver: Resolver = resolve) -> None:
        self.settings = settings
        self._guard = AddressGuard.from_allow_list(settings.allow_private)
        self._resolve = resolver
        self._session: aiohttp.ClientSession | None = None  # feeds the user chose
        self._untrusted: aiohttp.ClientSession | None = None  # article links
        # HTTP(S)_PROXY and NO_PROXY, as curl and httpx honour them: read once here.
        # (aiohttp's trust_env read them, and ~/.netrc, again for every request: a
        # quarter of the CPU of polling unchanged feeds.)
        self._proxies = urllib.request.getproxies()
        self._proxy_of_scheme = {scheme: _proxy_and_auth(self._proxies[scheme])
                                 for scheme in ("http", "https") if self._proxies.get(scheme)}
        # Behind a proxy the proxy resolves names: the guard then looks them up itself.
        self._proxied = bool(self._proxy_of_scheme)
        self._all = asyncio.Semaphore(settings.concurrency)
        # When a request last ended (answered or failed), for /healthz: monotonic time.
        self.last_done: float | None = None
        self._hosts: defaultdict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(settings.per_host)
        )
        self._next_start: dict[str, float] = {}  # per host, on the event loop's clock

    def _client(self, trusted: bool = True) -> aiohttp.ClientSession:
        if trusted or self._proxied:
            if self._session is None:
                self._session = self._new_session(None)
            return self._session
        if self._untrusted is None:
            self._untrusted = self._new_session(_GuardedResolver(self._guard, self._resolve))
        return self._untrusted

    def _new_session(self, resolver: aiohttp.abc.AbstractResolver | None) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            # Requests in flight are bounded by the semaphores above; the pool keeps
            # idle connections per host for the next poll of that host.
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=15,
                                           resolver=resolver),
            timeout=aiohttp.ClientTimeout(total=None,
                                          sock_connect=self.settings.connect_timeout),
            headers={"User-Agent": self.settings.user_agent},
            cookie_jar=aiohttp.DummyCookieJar(),  # no cookie goes from one feed to another
            trust_env=False,  # the proxy is chosen per request: see _proxy
            # Real servers send long headers (cookies, CSP): aiohttp's 8 KB default
            # line limit refuses some of them.
            max_line_size=65536, max_field_size=65536,
        )

    async def __aenter__(self) -> Fetcher:
        self._client()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for session in (self._session, self._untrusted):
            if session is not None:
                await session.close()
        self._session = self._untrusted = None

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
        host = _target(url).host or ""
        headers = {"Accept": accept}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        async with self._hosts[host]:
            await self._pace(host)
            async with self._all:
                try:
                    return await self._guarded(url, host, headers, max_bytes, trusted)
                finally:
                    self.last_done = time.monotonic()

    async def send(self, method: str, url: str, body: bytes, headers: dict[str, str], *,
                   timeout: float, max_bytes: int = 64 * 1024) -> Answer:
        """One request with a body to a URL the user configured (an alert channel's):
        trusted, so private addresses are fine; redirects are not followed (a 3xx is the
        answer), the whole exchange is bounded by ``timeout`` and the answer's body by
        ``max_bytes`` (cut there: it is only read for an error message). Returns every
        status; raises FetchTimeout or NetworkError when no answer came."""
        target = _target(url)
        proxy, proxy_auth = self._proxy(target)
        try:
            with _failures(url, target.host or "", timeout):
                async with asyncio.timeout(timeout), self._client().request(
                        method, target, data=body, headers=headers, allow_redirects=False,
                        proxy=proxy, proxy_auth=proxy_auth) as resp:
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in resp.content.iter_chunked(_CHUNK):
                        if size < max_bytes:
                            chunks.append(chunk[:max_bytes - size])
                        size += len(chunk)
                    return Answer(resp.status, b"".join(chunks),
                                  resp.headers.get("Retry-After"))
        finally:
            self.last_done = time.monotonic()

    def _proxy(self, url: URL) -> tuple[URL | None, aiohttp.BasicAuth | None]:
        """The proxy for ``url`` from the environment, with the credentials its URL
        carries; (None, None) when none is set or NO_PROXY names the host."""
        proxy = self._proxy_of_scheme.get(url.scheme)
        # NO_PROXY, as urllib reads it (the function is in urllib, not in its stubs)
        bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
        if proxy is None or bypass(url.host or "", self._proxies):
            return None, None
        return proxy

    async def _check_hop(self, url: URL) -> None:
        """Before the first request of an untrusted fetch and before each redirect: an
        address written in the URL is checked here (no resolver sees it); a name only
        behind a proxy, else by the guarded resolver as it connects."""
        host = url.host or ""
        port = url.port or (443 if url.scheme == "https" else 80)
        literal = _is_address(host)
        if not literal and not self._proxied:
            return
        try:
            addresses = [] if literal or self._guard.host_allowed(host) \
                else await self._resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise NetworkError(str(url),
                               f"cannot resolve host {host!r} (DNS lookup failed: {exc})") from exc
        refusal = self._guard.refusal(host, addresses)
        if refusal:  # the caller logs it, with the feed and the entry's link
            raise BlockedError(str(url), refusal)

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
                       max_bytes: int, trusted: bool) -> FetchResult:
        with _failures(url, host, self.settings.timeout):
            async with asyncio.timeout(self.settings.timeout):
                return await self._get(url, headers, max_bytes, trusted)

    async def _get(self, url: str, headers: dict[str, str], max_bytes: int,
                   trusted: bool) -> FetchResult:
        client = self._client(trusted)
        target = URL(url)
        permanent: str | None = None  # where the leading run of 301/308 hops ends
        still_permanent = True
        for _ in range(self.settings.max_redirects + 1):
            if not trusted:
                await self._check_hop(target)
            proxy, proxy_auth = self._proxy(target)
            async with client.get(target, headers=headers, allow_redirects=False, proxy=proxy,
                                  proxy_auth=proxy_auth) as resp:
                location = resp.headers.get("Location")
                if resp.status in _REDIRECTS and location:
                    try:
                        nxt = target.join(URL(location))
                    except ValueError as exc:
                        raise NetworkError(url, f"bad redirect Location {location!r}") from exc
                    if nxt.scheme not in ("http", "https") or not nxt.host:
                        raise RedirectError(url, f"redirect to a non-http(s) URL: {location!r}")
                    _check_host(url, nxt)
                    if still_permanent and resp.status in (301, 308):
                        permanent = str(nxt)
                    else:
                        still_permanent = False
                    target = nxt
                    continue
                return await self._result(url, resp, max_bytes, permanent)
        raise RedirectError(url, f"more than {self.settings.max_redirects} redirects")

    async def _result(self, url: str, resp: aiohttp.ClientResponse, max_bytes: int,
                      permanent: str | None) -> FetchResult:
        if resp.status != 304 and not 200 <= resp.status < 300:
            raise HTTPStatusError(url, resp.status, resp.headers.get("Retry-After"))
        declared = resp.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > max_bytes and not resp.headers.get(
            "Content-Encoding"
        ):
            raise TooLargeError(url, f"Content-Length {declared} is over the {max_bytes}-byte cap")
        chunks: list[bytes] = []
        size = 0
        # Read to the end even for a 304 (no body): a response not read to its end
        # closes its connection, and the next poll of that host would open another.
        async for chunk in resp.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise TooLargeError(url, f"body is over the {max_bytes}-byte cap")
            chunks.append(chunk)
        return FetchResult(
            url=url,
            final_url=str(resp.url),
            status=resp.status,
            body=b"".join(chunks),
            content_type=resp.headers.get("Content-Type"),
            etag=resp.headers.get("ETag"),
            last_modified=resp.headers.get("Last-Modified"),
            permanent_redirect=permanent,
        )


class _Refused(Exception):
    """The guarded resolver's refusal; not an OSError, so aiohttp passes it on as it is."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _GuardedResolver(aiohttp.abc.AbstractResolver):
    """Resolves a name once, refuses it unless every address is public or allowed,
    and hands the client exactly the addresses it checked."""

    def __init__(self, guard: AddressGuard, resolver: Resolver) -> None:
        self._guard, self._resolve = guard, resolver

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET
                      ) -> list[aiohttp.abc.ResolveResult]:
        try:
            addresses = await self._resolve(host, port)
        except UnicodeError as exc:  # raised where "no such host" was meant
            raise OSError(f"cannot resolve {host!r}: {exc}") from exc
        refusal = None if self._guard.host_allowed(host) else self._guard.refusal(host, addresses)
        if refusal:
            raise _Refused(refusal)
        results: list[aiohttp.abc.ResolveResult] = []
        for address in addresses:
            ip = ipaddress.ip_address(address.split("%")[0])
            results.append({"hostname": host, "host": address, "port": port,
                            "family": socket.AF_INET6 if ip.version == 6 else socket.AF_INET,
                            "proto": 0, "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV})
        if not results:
            raise OSError(f"{host!r} resolved to no address")
        return results

    async def close(self) -> None:
        pass


def _target(url: str) -> URL:
    """``url`` parsed; NetworkError when it is no absolute http(s) URL a request can go to."""
    try:
        parsed = URL(url)
        host = parsed.host
    except (ValueError, TypeError) as exc:  # UnicodeError too: "xn--zz" is no punycode
        raise NetworkError(url, f"invalid URL: {exc}") from exc
    if not host or parsed.scheme not in ("http", "https"):
        raise NetworkError(url, "invalid URL: not an absolute http(s) URL")
    _check_host(url, parsed)
    return parsed


@contextlib.contextmanager
def _failures(url: str, host: str, timeout: float) -> Iterator[None]:
    """The client's exceptions, inside, as the FetchError each is, naming ``url``."""
    try:
        yield
    except aiohttp.ServerTimeoutError as exc:  # connecting took too long
        raise FetchTimeout(url, f"{type(exc).__name__}: {exc or 'timed out'}") from exc
    except TimeoutError as exc:
        raise FetchTimeout(url, f"no complete answer within {timeout:g}s") from exc
    except aiohttp.ClientPayloadError as exc:
        raise NetworkError(url, f"body could not be decoded: {exc}") from exc
    except (aiohttp.InvalidURL, UnicodeError) as exc:  # a host aiohttp cannot encode
        raise NetworkError(url, f"invalid URL: {exc}") from exc
    except _Refused as exc:  # the caller logs it, with the feed and the entry's link
        raise BlockedError(url, exc.reason) from exc
    except (aiohttp.ClientError, OSError, ssl.SSLError) as exc:
        raise NetworkError(url, _describe_network_error(exc, host)) from exc


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return False
    return True


def _check_host(url: str, target: URL) -> None:
    """Raises NetworkError when no request can be made to ``target``'s host."""
    problem = host_problem(target.raw_host or "")
    if problem:
        raise NetworkError(url, f"invalid URL: {problem}")


_DNS_FAILURES = ("Name or service not known", "Temporary failure in name resolution",
                 "nodename nor servname", "No address associated with hostname")


def _describe_network_error(exc: BaseException, host: str) -> str:
    text = str(exc) or type(exc).__name__
    dns = isinstance(exc, aiohttp.ClientConnectorDNSError) or isinstance(
        getattr(exc, "os_error", None), socket.gaierror)
    if dns or any(marker in text for marker in _DNS_FAILURES):
        return f"cannot resolve host {host!r} (DNS lookup failed)"
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError) or "CERTIFICATE_VERIFY_FAILED" in text:
        return f"TLS error with {host!r}: {text}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        # aiohttp's own words ("Cannot connect to host h:p ssl:default [Connect call
        # failed ('h', p)]") say less than the errno does.
        return f"cannot connect to {exc.host}:{exc.port}: {_os_reason(exc.os_error, text)}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return f"{host}: the server closed the connection before it answered"
    if isinstance(exc, aiohttp.ClientOSError | OSError) and getattr(exc, "errno", None):
        return f"{host}: {_os_reason(exc, text)}"
    return f"{type(exc).__name__}: {text}"


def _os_reason(exc: OSError, fallback: str) -> str:
    """``connection refused``, ``network is unreachable``…: the errno in words."""
    code = exc.errno
    return os.strerror(code).lower() if isinstance(code, int) and code > 0 else fallback


__all__ = ["FEED_ACCEPT", "PAGE_ACCEPT", "Answer", "FetchResult", "Fetcher"]
