"""The SSRF guard: article links may not make us connect inside the network.

Unit tests of the address rules (monitor.netguard), then the real fetcher against the
local server (which is 127.0.0.1, so refused unless allowed), redirects included, and
`monitor run --once`, where a refused link is recorded on its item and the feed's own
text is kept."""

from __future__ import annotations

import asyncio
import ipaddress
import re
from pathlib import Path

import pytest
from conftest import LocalServer, Route
from helpers import Entry, cli, json_lines, rss, write_config

from monitor.config import FetchSettings
from monitor.errors import BlockedError, NetworkError
from monitor.ingest.fetcher import Fetcher, FetchResult
from monitor.ingest.netguard import AddressGuard

REFUSED = [
    ("127.0.0.1", "loopback"), ("127.9.9.9", "loopback"), ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"),
    ("fd00:ec2::254", "private"),  # AWS metadata over IPv6 (a unique local address)
    ("169.254.169.254", "link-local"),  # AWS, GCP, Azure metadata
    ("fe80::1", "link-local"),
    ("100.100.100.200", "non-public"),  # Alibaba metadata, in the shared 100.64/10
    ("0.0.0.0", "unspecified"), ("224.0.0.1", "multicast"),
    ("192.0.2.1", "private"),  # documentation range
]


@pytest.mark.parametrize(("address", "kind"), REFUSED)
def test_non_public_addresses_are_refused(address: str, kind: str) -> None:
    guard = AddressGuard()
    reason = guard.refusal(address, [])
    assert reason and kind in reason and "allow_private" in reason
    # The same address reached through a name is refused too, and named.
    reason = guard.refusal("news.example", [address])
    assert reason and f"resolves to {ipaddress.ip_address(address)}" in reason


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700::6810:84e5", "8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert AddressGuard().refusal("news.example", [address]) is None
    assert AddressGuard().refusal(address, []) is None


def test_one_private_address_among_public_ones_is_refused() -> None:
    # A name that resolves both ways is how DNS rebinding gets in.
    assert AddressGuard().refusal("mixed.example", ["93.184.216.34", "10.0.0.7"])
    assert AddressGuard().refusal("nothing.example", [])


def test_allow_list_admits_networks_addresses_and_host_names() -> None:
    guard = AddressGuard.from_allow_list(["10.20.0.0/16", "127.0.0.1", "*.corp.example",
                                          "wiki.intranet"])
    assert guard.refusal("10.20.5.5", []) is None
    assert guard.refusal("10.21.0.1", [])  # outside the network
    assert guard.refusal("127.0.0.1", []) is None
    assert guard.refusal("127.0.0.2", [])
    assert guard.refusal("news.corp.example", ["192.168.3.3"]) is None
    assert guard.refusal("corp.example.evil.example", ["192.168.3.3"])
    assert guard.refusal("WIKI.intranet.", ["10.9.9.9"]) is None
    assert guard.refusal("wiki.intranet.evil", ["10.9.9.9"])


def fetch(url: str, *, trusted: bool = False, allow: tuple[str, ...] = (),
          resolved: dict[str, list[str]] | None = None) -> FetchResult:
    settings = FetchSettings(timeout=3.0, connect_timeout=2.0, max_redirects=3, allow_private=allow)

    async def fake_resolve(host: str, port: int) -> list[str]:
        assert resolved is not None
        return resolved[host]

    async def go() -> FetchResult:
        kwargs = {"resolver": fake_resolve} if resolved is not None else {}
        async with Fetcher(settings, **kwargs) as f:  # type: ignore[arg-type]
            return await f.fetch(url, max_bytes=100_000, trusted=trusted)

    return asyncio.run(go())


def test_untrusted_fetch_to_loopback_is_refused_before_connecting(server: LocalServer) -> None:
    server.routes["/page"] = Route(body=b"secret admin page")
    with pytest.raises(BlockedError, match="loopback") as info:
        fetch(server.url("/page"))
    assert info.value.kind == "blocked" and info.value.url == server.url("/page")
    assert not server.hits()
    # Allowed explicitly (the tests' own opt-in), or trusted (a feed in the config): fetched.
    assert fetch(server.url("/page"), allow=("127.0.0.1",)).body == b"secret admin page"
    assert fetch(server.url("/page"), trusted=True).body == b"secret admin page"
    assert len(server.hits()) == 2


@pytest.mark.parametrize("target", [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://10.0.0.1/admin", "http://[::1]:6379/", "http://0.0.0.0:22/",
])
def test_redirect_into_the_network_is_refused(server: LocalServer, target: str) -> None:
    # The first hop is allowed (as an intranet source would be); where it redirects is not.
    server.routes["/go"] = Route(status=302, headers={"Location": target})
    with pytest.raises(BlockedError) as info:
        fetch(server.url("/go"), allow=("127.0.0.1",))
    assert info.value.url == target
    assert [h.path for h in server.hits()] == ["/go"]


def test_names_are_resolved_and_checked(server: LocalServer) -> None:
    # A public-looking name that resolves inside is refused, with no connection made.
    with pytest.raises(BlockedError, match=re.escape("'metadata.example' resolves to 169.254.169.254")):
        fetch("http://metadata.example/", resolved={"metadata.example": ["169.254.169.254"]})
    with pytest.raises(NetworkError, match="DNS"):
        fetch("http://no-such-host.invalid/")  # the system resolver, failing


def test_run_records_refused_links_and_keeps_the_feeds_text(
        server: LocalServer, db_url: str, tmp_path: Path) -> None:
    server.routes["/article"] = Route(body=b"<html><body><p>Internal only.</p></body></html>")
    server.routes["/redirect"] = Route(status=301, headers={"Location": "http://10.1.1.1/x"})
    body = "The feed's own text of the story, long enough to keep as the article. " * 5
    server.routes["/feed.rss"] = Route(content_type="application/rss+xml", body=rss("Wire", [
        Entry("Loopback link", server.url("/article"), guid="a", content=body + "one"),
        Entry("Metadata link", "http://169.254.169.254/latest/meta-data/", guid="b",
              content=body.replace("story", "report") + "two"),
    ]))
    feeds = [{"name": "Wire", "url": server.url("/feed.rss")}]
    # The feed itself is on 127.0.0.1 and is fetched: feeds in the config are trusted.
    config = write_config(tmp_path / "m.toml", db_url=db_url, feeds=feeds,
                          fetch={"allow_private": []})
    code, out = cli(config, "run", "--once")
    assert code == 0, out
    items = {i["title"]: i for i in json_lines(config, "items", "list", "--text")}
    assert set(items) == {"Loopback link", "Metadata link"}
    assert "loopback" in items["Loopback link"]["page_error"]
    assert "link-local" in items["Metadata link"]["page_error"]
    for i in items.values():
        assert i["text_source"].startswith("feed") and i["text"].startswith("The feed's own text")
    assert [h.path for h in server.hits()] == ["/feed.rss"]
    feed = json_lines(config, "feeds", "list")[0]
    assert feed["last_error"] is None  # a refused article does not fail its feed

    # With the intranet source allowed, the same kind of link is fetched.
    server.routes["/other"] = Route(body=b"<html><body><p>Intranet news.</p></body></html>")
    server.routes["/feed.rss"] = Route(content_type="application/rss+xml", body=rss("Wire", [
        Entry("Allowed link", server.url("/other"), guid="c", content=body + "three")]))
    config = write_config(tmp_path / "m.toml", db_url=db_url, feeds=feeds,
                          fetch={"allow_private": ["127.0.0.0/8"]})
    assert cli(config, "run", "--once")[0] == 0
    assert "/other" in [h.path for h in server.hits()]
    allowed = [i for i in json_lines(config, "items", "list") if i["title"] == "Allowed link"]
    assert allowed and allowed[0]["page_error"] is None


def test_the_address_checked_is_the_address_connected_to(server: LocalServer) -> None:
    """DNS rebinding: a name that resolves to an allowed address when the guard asks and
    to an internal one when the client connects. Here the guard's resolver answers
    127.0.0.2 (allowed) for "localhost", which the system resolves to 127.0.0.1 (the
    "internal" server, on the same port): the request must go where the guard looked."""
    internal = server
    internal.routes["/page"] = Route(body=b"internal secrets")
    public = LocalServer(host="127.0.0.2", port=internal.port)
    public.routes["/page"] = Route(body=b"the public page")
    public.start()
    asked: list[str] = []

    async def first_answer(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["127.0.0.2"]

    async def go() -> FetchResult:
        settings = FetchSettings(allow_private=("127.0.0.2",), timeout=5, connect_timeout=2)
        async with Fetcher(settings, first_answer) as fetcher:
            return await fetcher.fetch(f"http://localhost:{internal.port}/page", max_bytes=4096)

    try:
        res = asyncio.run(go())
    finally:
        public.stop()
    assert res.body == b"the public page"
    assert internal.hits() == []
    assert asked == ["localhost"]  # one lookup: the one the guard checked


def test_a_name_refused_by_the_guard_is_never_connected_to(server: LocalServer) -> None:
    server.routes["/page"] = Route(body=b"internal secrets")

    async def internal(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    async def go() -> None:
        async with Fetcher(FetchSettings(timeout=5, connect_timeout=2), internal) as fetcher:
            await fetcher.fetch(f"http://news.example:{server.port}/page", max_bytes=4096)

    with pytest.raises(BlockedError, match=re.escape("resolves to 127.0.0.1")):
        asyncio.run(go())
    assert server.hits() == []
