"""``monitor feeds discover``: a site's feeds found on a local server the ways sites
offer them (declared in the page, linked, at the usual paths, or the URL itself a
feed), each fetched once, within a request budget and a deadline, printed as
[[feeds]] tables ready to paste."""

from __future__ import annotations

import json
import time
import tomllib
from pathlib import Path

import pytest
from conftest import LocalServer, Route
from helpers import Entry, atom, cli, rss, write_config

from monitor.ingest.discovery import common_paths, declared_feeds, linked_feeds

RSS_TYPE = "application/rss+xml"
ENTRIES = [Entry(title="One", link="https://site.example/1", guid="1",
                 published="Mon, 07 Dec 2026 09:00:00 GMT"),
           Entry(title="Two", link="https://site.example/2", guid="2",
                 published="Sun, 06 Dec 2026 09:00:00 GMT")]


def page(head: str = "", body: str = "") -> bytes:
    return f"<!doctype html><html><head><title>Site</title>{head}</head><body>{body}</body></html>".encode()


def discover(server: LocalServer, tmp: Path, path: str, *args: str,
             feeds: list[dict[str, object]] | None = None) -> tuple[int, str]:
    config = write_config(tmp / "monitor.toml", db_url=f"sqlite:///{tmp / 'm.db'}",
                          feeds=feeds or [])
    return cli(config, "feeds", "discover", server.url(path), *args)


def test_declared_feeds_are_found_and_printed_ready_to_paste(server: LocalServer,
                                                             tmp_path: Path) -> None:
    server.routes["/news/"] = Route(body=page(
        '<base href="/news/sections/">'
        '<link rel="alternate" type="application/rss+xml" title="Top stories" href="top.rss">'
        '<LINK REL="alternate feed" TYPE="application/atom+xml; charset=utf-8" href="/atom">'
        '<link rel="alternate" type="application/rss+xml" href="gone.rss">'
        '<link rel="alternate" type="text/html" hreflang="fr" href="/fr/">'
        '<link rel="stylesheet" href="/s.css">'))
    server.routes["/news/sections/top.rss"] = Route(body=rss("Top stories", ENTRIES),
                                                    content_type=RSS_TYPE)
    server.routes["/atom"] = Route(body=atom("Everything", ENTRIES[:1]),
                                   content_type="application/atom+xml")
    code, out = discover(server, tmp_path, "/news/", "--verbose")
    assert code == 0, out
    assert out.startswith(f"# 2 feeds found from {server.url('/news/')} (4 requests, ")
    assert "# Top stories: RSS 2.0, 2 entries, latest 2026-12-07 09:00 UTC (declared)" in out
    assert "# Everything: Atom 1.0, 1 entry, latest 2026-01-06 10:00 UTC (declared)" in out
    assert f"#   {server.url('/news/sections/gone.rss')}: HTTP 404" in out
    feeds = tomllib.loads(out)["feeds"]
    assert feeds == [{"name": "Top stories", "url": server.url("/news/sections/top.rss")},
                     {"name": "Everything", "url": server.url("/atom")}]
    # Declared feeds found: no guessing at other paths; each address asked once.
    paths = [h.path for h in server.log]
    assert sorted(paths) == ["/atom", "/news/", "/news/sections/gone.rss",
                             "/news/sections/top.rss"]


def test_a_feed_given_directly(server: LocalServer, tmp_path: Path) -> None:
    server.routes["/feed.json"] = Route(body=json.dumps({
        "version": "https://jsonfeed.org/version/1.1", "title": "Desk",
        "items": [{"id": "a", "url": "https://site.example/a", "title": "A",
                   "date_published": "2026-12-05T08:00:00Z"}]}).encode(),
        content_type="application/feed+json")
    code, out = discover(server, tmp_path, "/feed.json")
    assert code == 0, out
    assert "# Desk: JSON Feed 1.1, 1 entry, latest 2026-12-05 08:00 UTC (given)" in out
    assert [h.path for h in server.log] == ["/feed.json"]


def test_linked_then_common_paths(server: LocalServer, tmp_path: Path) -> None:
    server.routes["/blog/post"] = Route(body=page(body=(
        '<a href="/blog/rss.xml">RSS</a><a href="https://elsewhere.example/feed">theirs</a>'
        '<a href="javascript:alert(1)">x</a>')))
    server.routes["/blog/rss.xml"] = Route(body=b"<html>no feed here</html>")
    server.routes["/feed"] = Route(body=rss("Root feed", ENTRIES), content_type=RSS_TYPE)
    code, out = discover(server, tmp_path, "/blog/post", "--verbose")
    assert code == 0, out
    assert "# Root feed: RSS 2.0, 2 entries, latest 2026-12-07 09:00 UTC (common path)" in out
    assert "HTML page, not a feed" in out  # /blog/rss.xml, tried and said why
    paths = [h.path for h in server.log]
    assert paths[:3] == ["/blog/post", "/blog/rss.xml", "/feed"]
    assert not any("elsewhere" in p for p in paths)  # another host's link is not tried


def test_nothing_found_says_what_was_tried_within_the_budget(server: LocalServer,
                                                             tmp_path: Path) -> None:
    server.routes["/"] = Route(body=page(body="<p>No feeds at all.</p>"))
    code, out = discover(server, tmp_path, "/", "--max-requests", "4")
    assert code == 1
    assert out.startswith(f"# 0 feeds found from {server.url('/')} (4 requests, ")
    assert "stopped at the limit" in out
    assert f"#   {server.url('/feed')}: HTTP 404" in out
    assert len(server.log) == 4


def test_the_deadline_bounds_a_slow_site(server: LocalServer, tmp_path: Path) -> None:
    server.routes["/"] = Route(body=page(
        '<link rel="alternate" type="application/rss+xml" href="/slow.rss">'))
    server.routes["/slow.rss"] = Route(body=rss("Slow", ENTRIES), content_type=RSS_TYPE,
                                       delay=8)
    started = time.monotonic()
    code, out = discover(server, tmp_path, "/", "--timeout", "1.5")
    assert time.monotonic() - started < 6
    assert code == 1 and "stopped at the limit" in out, out


def test_a_feed_already_in_the_config_is_named_not_repeated(server: LocalServer,
                                                            tmp_path: Path) -> None:
    server.routes["/rss"] = Route(body=rss("Mine", ENTRIES), content_type=RSS_TYPE)
    code, out = discover(server, tmp_path, "/rss",
                         feeds=[{"name": "My feed", "url": server.url("/rss")}])
    assert code == 0
    assert "# already in the config as 'My feed'" in out and "[[feeds]]" not in out


@pytest.mark.parametrize(("html", "expected"), [
    (b'<link rel="alternate" type="application/rss+xml" href="javascript:alert(1)">', []),
    (b'<link rel="ALTERNATE" type="Application/RSS+XML" href="//cdn.example/f.rss">',
     ["https://cdn.example/f.rss"]),
    (b'<link rel="alternate" type="application/rss+xml" href="a.rss">'
     b'<link rel="alternate" type="application/rss+xml" href="./a.rss">',
     ["https://site.example/news/a.rss"]),
    (b"\x00\xff<<<not html", []),
    (b"", []),
])
def test_declared_feeds_of_odd_pages(html: bytes, expected: list[str]) -> None:
    assert [c.url for c in declared_feeds(html, "https://site.example/news/x")] == expected


def test_candidates_are_bounded_and_on_the_site() -> None:
    anchors = "".join(f'<a href="/f{k}/feed">f</a>' for k in range(10))
    found = linked_feeds(page(body=anchors), "https://site.example/")
    assert len(found) == 4
    paths = [c.url for c in common_paths("https://site.example/blog/post?id=1")]
    assert paths[0] == "https://site.example/feed"
    assert "https://site.example/blog/index.xml" in paths and len(paths) == len(set(paths))


def test_a_title_on_several_lines_stays_one_comment(server: LocalServer, tmp_path: Path) -> None:
    body = rss("Top", ENTRIES).replace(b"<title>Top</title>",
                                       b"<title>Top &lt;br&gt;\nstories\n# not a comment</title>")
    server.routes["/rss"] = Route(body=body, content_type=RSS_TYPE)
    code, out = discover(server, tmp_path, "/rss")
    assert code == 0, out
    assert tomllib.loads(out)["feeds"] == [{"name": "Top stories # not a comment",
                                            "url": server.url("/rss")}]
