"""JSON Feed 1.0 and 1.1: parsed into the same values as RSS and Atom (fixtures in
tests/fixtures/jsonfeed, and a real RSS feed of the corpus written out as JSON Feed),
refused with a reason when it is no feed, and read end to end by ``run --once`` from a
local server."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import LocalServer, Route
from helpers import FIXTURES, cli, json_lines, write_config

from monitor.errors import FeedParseError
from monitor.ingest.feeds import ParsedFeed, parse_feed

FEED_URL = "https://newsdesk.example/feed.json"
JSON_TYPE = "application/feed+json"


def fixture(name: str) -> bytes:
    return (FIXTURES / "jsonfeed" / name).read_bytes()


def test_a_1_1_feed() -> None:
    feed = parse_feed(fixture("desk-1.1.json"), FEED_URL, JSON_TYPE)
    assert (feed.version, feed.title, feed.language) == ("json11", "The Newsdesk Wire", "en")
    # Five objects read; a string in the items list skipped, and said so.
    assert feed.warning == ("1 of 6 items skipped (not an object, or with neither id, url "
                            "nor text)")
    first, second, no_id, js, bare = feed.entries
    assert first.guid == first.link == "https://newsdesk.example/2026/12/07/kremlin-venezuela"
    assert first.title == "Kremlin voices support for Venezuela's interim leader"
    assert first.author == "Ana Petrova"
    assert first.published_at == datetime(2026, 12, 7, 6, 30, tzinfo=UTC)
    assert first.content is not None and "backed Venezuela's acting president" in first.content
    assert "alert" not in first.content and "<" not in first.content
    assert first.summary == "Moscow backs Caracas after the US operation."
    # A number for an id; external_url made absolute; the modification date alone.
    assert second.guid == "20261207"
    assert second.link == "https://newsdesk.example/elsewhere/oil-prices.html"
    assert second.title == 'Oil prices <rise> as "tensions" grow'  # plain text, kept
    assert second.content == "Brent crude rose 3% on Monday.\n\nTraders cited the weekend's events."
    assert second.published_at == datetime(2026, 12, 6, 22, 15, tzinfo=UTC)
    assert second.author is None
    assert no_id.guid == no_id.link == "https://newsdesk.example/2026/12/06/no-id"
    assert no_id.published_at is None  # "not a date"
    # No javascript: link, no control characters; a date alone is midnight UTC.
    assert js.link is None and js.title == "A link no one should follow"
    assert js.content == "Text with a control character in it."
    assert js.published_at == datetime(2026, 12, 5, tzinfo=UTC)
    assert (bare.guid, bare.link, bare.title, bare.content) == ("empty-but-named", None, None,
                                                                None)


def test_a_1_0_feed() -> None:
    feed = parse_feed(fixture("blog-1.0.json"), "https://notes.example/feed.json", None)
    assert (feed.version, feed.title, feed.language, feed.warning) == (
        "json1", "Field Notes", None, None)
    second, first = feed.entries
    assert (second.guid, second.author, second.content) == ("2", "Guest Writer", "Hello, world.")
    assert second.published_at == datetime(2026, 11, 30, 13, tzinfo=UTC)
    assert (first.title, first.content) == (None, "A note without a title.")


def as_json_feed(feed: ParsedFeed) -> bytes:
    """A parsed feed written out as JSON Feed 1.1, as a site offering both would."""
    return json.dumps({
        "version": "https://jsonfeed.org/version/1.1", "title": feed.title,
        "language": feed.language,
        "items": [{"id": e.guid, "url": e.link, "title": e.title, "content_text": e.content,
                   "summary": e.summary, "authors": [{"name": e.author}] if e.author else [],
                   "date_published": e.published_at.isoformat() if e.published_at else None}
                  for e in feed.entries]}).encode()


@pytest.mark.parametrize("name", ["72fea1ebfd02e90a", "5e19d3b495454497", "87232eca4263cf8c"])
def test_a_real_feed_reads_the_same_as_json_feed(name: str) -> None:
    """The corpus's RSS and Atom feeds, offered as JSON Feed too: the same entries."""
    url = "https://outlet.example/feed"
    xml = parse_feed(gzip.decompress((FIXTURES / "feeds" / f"{name}.xml.gz").read_bytes()), url)
    assert xml.entries
    again = parse_feed(as_json_feed(xml), url, JSON_TYPE)
    assert again.entries == xml.entries
    assert (again.title, again.language) == (xml.title, xml.language)


@pytest.mark.parametrize(("body", "content_type", "reason"), [
    (b'{"version": "https://jsonfeed.org/version/1.1", "items": [', JSON_TYPE,
     "served as JSON but not valid JSON: Expecting value"),
    (b"[1, 2]", "application/json", "not a JSON Feed (not an object)"),
    (b'{"title": "Some API answer", "data": []}', None, "no jsonfeed.org version and no items"),
    (b'{"version": "https://jsonfeed.org/version/1.1", "title": "T"}', None,
     "a JSON Feed without an items list"),
    (b'{"version": "https://jsonfeed.org/version/2", "items": ["x", 3]}', None,
     "unknown JSON Feed version 'https://jsonfeed.org/version/2'; 2 of 2 items skipped"),
    (b"[" * 100_000 + b"]" * 100_000, "application/json", "not valid JSON: RecursionError"),
    (b'{"items": [{"id": "' + b"9" * 5000 + b'"}], "n": ' + b"9" * 5000 + b"}", None,
     "not valid JSON"),
])
def test_json_that_is_no_feed_is_refused_with_the_reason(body: bytes, content_type: str | None,
                                                         reason: str) -> None:
    with pytest.raises(FeedParseError) as info:
        parse_feed(body, FEED_URL, content_type)
    assert reason in info.value.reason and info.value.url == FEED_URL


def test_rss_served_as_json_is_still_rss() -> None:
    body = gzip.decompress((FIXTURES / "feeds" / "87232eca4263cf8c.xml.gz").read_bytes())
    assert parse_feed(body, FEED_URL, "application/json").version == "rss20"


def test_run_once_stores_a_json_feed(server: LocalServer, db_url: str, tmp_path: Path) -> None:
    """A JSON Feed served as application/feed+json, read like RSS: its entries' pages
    fetched and stored, a rule alerting; the feed was asked for as JSON Feed too."""
    page = ("<html><head><title>{t}</title></head><body><article><h1>{t}</h1>"
            + "<p>{t}: the foreign ministry said so in a statement on Tuesday, calling for "
              "dialogue and de-escalation after the weekend's events in Caracas.</p>" * 4
            + "</article></body></html>")
    items = []
    for k, title in enumerate(["Kremlin backs Caracas", "Oil prices climb again"]):
        path = f"/news/{k}.html"
        server.routes[path] = Route(body=page.format(t=title).encode())
        items.append({"id": f"n{k}", "url": server.url(path), "title": title,
                      "date_published": "2026-12-07T09:00:00Z"})
    server.routes["/feed.json"] = Route(
        body=json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "Desk",
                         "items": items}).encode(), content_type=JSON_TYPE)
    config = write_config(tmp_path / "monitor.toml", db_url=db_url,
                          feeds=[{"name": "Desk", "url": server.url("/feed.json")}],
                          rules=[{"name": "Kremlin", "query": "kremlin",
                                  "recipients": ["desk@example.org"]}])
    code, out = cli(config, "run", "--once")
    assert code == 0, out
    stored = json_lines(config, "items", "list")
    assert sorted(i["title"] for i in stored) == ["Kremlin backs Caracas",
                                                  "Oil prices climb again"]
    assert [a["rule"] for a in json_lines(config, "alerts", "list")] == ["Kremlin"]
    [asked] = [h for h in server.log if h.path == "/feed.json"]
    assert "application/feed+json" in asked.headers["accept"]
