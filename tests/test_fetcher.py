"""The HTTP layer against a real local server: caps, compression, redirects, errors."""

from __future__ import annotations

import asyncio
import base64
import gzip
import socketserver
import threading

import pytest
from conftest import LocalServer, Route

from monitor.config import FetchSettings
from monitor.errors import FetchTimeout, HTTPStatusError, NetworkError, RedirectError, TooLargeError
from monitor.ingest.fetcher import Fetcher, FetchResult

SETTINGS = FetchSettings(timeout=3.0, connect_timeout=2.0, max_redirects=3)


def fetch(url: str, max_bytes: int = 1_000_000, trusted: bool = True,
          **kw: str | None) -> FetchResult:
    """Fetch as for a feed in the config (trusted) unless told otherwise."""
    async def go() -> FetchResult:
        async with Fetcher(SETTINGS) as f:
            return await f.fetch(url, max_bytes=max_bytes, trusted=trusted,
                                 **kw)  # type: ignore[arg-type]

    return asyncio.run(go())


def test_gzip_body_is_decoded(server: LocalServer) -> None:
    server.routes["/z"] = Route(body=b"hello " * 1000, gzip=True)
    res = fetch(server.url("/z"))
    assert res.status == 200 and res.body == b"hello " * 1000


def test_gzip_bomb_stops_at_the_decoded_cap(server: LocalServer) -> None:
    bomb = b"\0" * (20 * 1024 * 1024)
    server.routes["/bomb"] = Route(body=bomb, gzip=True)
    assert len(gzip.compress(bomb)) < 100_000  # small on the wire...
    with pytest.raises(TooLargeError, match="cap"):  # ...but refused once decoded past the cap
        fetch(server.url("/bomb"), max_bytes=1_000_000)


def test_declared_length_over_cap_is_refused_early(server: LocalServer) -> None:
    server.routes["/big"] = Route(body=b"x" * 50_000)
    with pytest.raises(TooLargeError, match="Content-Length 50000"):
        fetch(server.url("/big"), max_bytes=10_000)


def test_conditional_get_returns_304_and_keeps_validators(server: LocalServer) -> None:
    server.routes["/f"] = Route(body=b"<rss/>", etag='"v1"')
    first = fetch(server.url("/f"))
    assert first.status == 200 and first.etag == '"v1"'
    again = fetch(server.url("/f"), etag='"v1"')
    assert again.not_modified and again.body == b""


def test_polls_of_one_host_keep_one_connection_through_304s(server: LocalServer) -> None:
    server.routes["/f"] = Route(body=b"<rss/>", etag='"v1"')
    server.routes["/g"] = Route(body=b"<rss/>", etag='"v2"')

    async def go() -> list[int]:
        async with Fetcher(SETTINGS) as f:
            return [(await f.fetch(server.url(path), max_bytes=1000, etag=tag, trusted=True)).status
                    for path, tag in [("/f", None), ("/f", '"v1"'), ("/g", '"v2"'), ("/f", '"v1"')]]

    assert asyncio.run(go()) == [200, 304, 304, 304]
    # A 304 read to its end leaves its connection open for the next poll of the host.
    assert len({hit.client_port for hit in server.hits()}) == 1


def test_redirects_permanent_and_temporary(server: LocalServer) -> None:
    server.routes["/p1"] = Route(status=308, headers={"Location": "/p2"})
    server.routes["/p2"] = Route(status=301, headers={"Location": "/p3"})
    server.routes["/p3"] = Route(status=302, headers={"Location": "/final"})
    server.routes["/final"] = Route(body=b"ok")
    res = fetch(server.url("/p1"))
    assert res.body == b"ok" and res.final_url == server.url("/final")
    # Only the leading run of permanent hops is a move worth remembering.
    assert res.permanent_redirect == server.url("/p3")
    server.routes["/t"] = Route(status=302, headers={"Location": "/final"})
    assert fetch(server.url("/t")).permanent_redirect is None


def test_redirect_loop(server: LocalServer) -> None:
    server.routes["/loop"] = Route(status=302, headers={"Location": "/loop"})
    with pytest.raises(RedirectError, match="more than 3 redirects"):
        fetch(server.url("/loop"))


def test_status_errors_carry_status_and_retry_after(server: LocalServer) -> None:
    server.routes["/busy"] = Route(status=429, headers={"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"})
    with pytest.raises(HTTPStatusError) as info:
        fetch(server.url("/busy"))
    assert info.value.status == 429 and info.value.retry_after == "Wed, 21 Oct 2026 07:28:00 GMT"
    assert info.value.url == server.url("/busy")


def test_slow_server_hits_the_total_deadline(server: LocalServer) -> None:
    server.routes["/slow"] = Route(body=b"late", delay=5)
    with pytest.raises(FetchTimeout, match="within 3s"):
        fetch(server.url("/slow"))


def test_refused_connection_and_bad_host() -> None:
    # In monitor's words, not aiohttp's ("Cannot connect to host … [Connect call failed …]").
    with pytest.raises(NetworkError) as info:
        fetch("http://127.0.0.1:1/feed")
    assert info.value.reason == "cannot connect to 127.0.0.1:1: connection refused"
    with pytest.raises(NetworkError, match="DNS"):
        fetch("http://no-such-host.invalid/feed")


class _Proxy(socketserver.ThreadingTCPServer):
    """A forward HTTP proxy stand-in on 127.0.0.1 that answers every request itself and
    keeps each request's line and Proxy-Authorization header."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []
        seen = self.seen

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                line = self.rfile.readline().decode("latin-1").strip()
                auth = None
                while (header := self.rfile.readline().decode("latin-1").strip()):
                    name, _, value = header.partition(":")
                    if name.lower() == "proxy-authorization":
                        auth = value.strip()
                seen.append((line, auth))
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n"
                                 b"Connection: close\r\n\r\nvia proxy")

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


@pytest.mark.parametrize("bypass", [False, True])
def test_the_environment_proxy_is_used_unless_no_proxy_names_the_host(
        server: LocalServer, monkeypatch: pytest.MonkeyPatch, bypass: bool) -> None:
    """HTTP_PROXY (with credentials in its URL) and NO_PROXY are honoured, read once when
    the fetcher starts rather than at every request."""
    server.routes["/f"] = Route(body=b"direct")
    proxy = _Proxy()
    try:
        for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy",
                     "NO_PROXY", "all_proxy", "ALL_PROXY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("http_proxy", f"http://desk:s3cret@127.0.0.1:{proxy.server_address[1]}")
        monkeypatch.setenv("no_proxy", "127.0.0.1" if bypass else "example.org")
        res = fetch(server.url("/f"))
    finally:
        proxy.shutdown()
        proxy.server_close()
    if bypass:
        assert res.body == b"direct" and proxy.seen == []
    else:
        assert res.body == b"via proxy"
        assert proxy.seen == [(f"GET {server.url('/f')} HTTP/1.1",
                               "Basic " + base64.b64encode(b"desk:s3cret").decode())]
