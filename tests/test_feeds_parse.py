from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.errors import FeedParseError
from monitor.ingest.feeds import parse_feed

FIXTURES = Path(__file__).parent / "fixtures" / "feeds"
RSS_TYPE = "application/rss+xml"
ATOM_TYPE = "application/atom+xml"

RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">
<channel>
  <title>Example News</title>
  <link>https://news.example/</link>
  <language>en-us</language>
  <item>
    <title>Maduro &amp; the Kremlin</title>
    <link>https://news.example/2026/01/maduro</link>
    <guid isPermaLink="false">news-example-1234</guid>
    <pubDate>Tue, 06 Jan 2026 10:30:00 GMT</pubDate>
    <author>desk@news.example (Ana Perez)</author>
    <description>&lt;p&gt;Short &lt;b&gt;summary&lt;/b&gt;.&lt;/p&gt;</description>
    <content:encoded><![CDATA[<p>First paragraph.</p><p>Second paragraph.</p>
      <script>alert("x")</script>]]></content:encoded>
  </item>
  <item>
    <title>No guid here</title>
    <link>https://news.example/2026/01/no-guid</link>
    <description>Plain description</description>
  </item>
</channel>
</rss>
"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Atom Example</title>
  <id>urn:uuid:feed</id>
  <updated>2026-01-05T12:00:00Z</updated>
  <entry>
    <title>Relative link entry</title>
    <id>tag:atom.example,2026:1</id>
    <link rel="alternate" href="/posts/one.html"/>
    <updated>2026-01-05T12:00:00Z</updated>
    <summary>Summary one</summary>
  </entry>
  <entry>
    <title>Sibling relative</title>
    <id>tag:atom.example,2026:2</id>
    <link rel="alternate" href="two.html"/>
    <published>2026-01-04T08:15:00+02:00</published>
    <updated>2026-01-05T00:00:00Z</updated>
    <content type="html">&lt;p&gt;Body two&lt;/p&gt;</content>
  </entry>
</feed>
"""


def test_rss_entry_fields() -> None:
    feed = parse_feed(RSS, "https://news.example/rss", RSS_TYPE)
    assert feed.version == "rss20"
    assert feed.title == "Example News"
    assert feed.language == "en"
    assert feed.warning is None
    assert len(feed.entries) == 2
    e = feed.entries[0]
    assert e.guid == "news-example-1234"
    assert e.link == "https://news.example/2026/01/maduro"
    assert e.title == "Maduro & the Kremlin"
    assert e.published_at == datetime(2026, 1, 6, 10, 30, tzinfo=UTC)
    assert e.summary == "Short summary."
    assert e.content == "First paragraph.\n\nSecond paragraph."  # sanitized: no script text
    assert e.author is not None and "Ana Perez" in e.author


def test_entry_without_guid_uses_link() -> None:
    e = parse_feed(RSS, "https://news.example/rss", RSS_TYPE).entries[1]
    assert e.guid == "https://news.example/2026/01/no-guid"
    assert e.summary == "Plain description"
    assert e.content is None
    assert e.published_at is None


def test_atom_relative_links_resolve_against_feed_url() -> None:
    feed = parse_feed(ATOM, "https://atom.example/blog/feed.xml", ATOM_TYPE)
    assert feed.version == "atom10"
    assert feed.title == "Atom Example"
    assert feed.warning is None
    links = [e.link for e in feed.entries]
    assert links == ["https://atom.example/posts/one.html", "https://atom.example/blog/two.html"]
    assert [e.guid for e in feed.entries] == ["tag:atom.example,2026:1", "tag:atom.example,2026:2"]
    assert feed.entries[0].published_at == datetime(2026, 1, 5, 12, 0, tzinfo=UTC)  # from <updated>
    assert feed.entries[1].published_at == datetime(2026, 1, 4, 6, 15, tzinfo=UTC)  # <published> wins
    assert feed.entries[1].content == "Body two"


NO_ID_NO_LINK = b"""<?xml version="1.0"?>
<rss version="2.0"><channel><title>T</title>
<item><title>Anonymous item</title><description>Words only</description></item>
<item><title>Another anonymous item</title><description>Other words</description></item>
</channel></rss>
"""


def test_entry_without_guid_or_link_gets_stable_sha1_guid() -> None:
    first = parse_feed(NO_ID_NO_LINK, "https://t.example/rss", RSS_TYPE)
    second = parse_feed(NO_ID_NO_LINK, "https://t.example/rss", RSS_TYPE)
    guids = [e.guid for e in first.entries]
    assert all(g.startswith("sha1:") and len(g) == len("sha1:") + 40 for g in guids)
    assert guids == [e.guid for e in second.entries]
    assert guids[0] != guids[1]
    assert all(e.link is None for e in first.entries)


def test_unescaped_ampersand_is_tolerated_with_warning() -> None:
    body = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
            b"<item><title>Tom & Jerry</title><link>https://t.example/1</link></item>"
            b"</channel></rss>")
    feed = parse_feed(body, "https://t.example/rss", RSS_TYPE)
    assert feed.warning is not None and "not well-formed" in feed.warning
    assert [(e.title, e.link) for e in feed.entries] == [("Tom & Jerry", "https://t.example/1")]


def test_truncated_feed_still_yields_entries_with_warning() -> None:
    body = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
            b"<item><title>One</title><link>https://t.example/1</link></item>"
            b"<item><title>Two</title><link>https://t.example/2</link></item>"
            b"</channel>")  # no closing </rss>
    feed = parse_feed(body, "https://t.example/rss", RSS_TYPE)
    assert feed.warning is not None
    assert [e.guid for e in feed.entries] == ["https://t.example/1", "https://t.example/2"]


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", None])
def test_html_page_is_not_a_feed(content_type: str | None) -> None:
    body = (b"<!DOCTYPE html><html><head><title>Home</title></head>"
            b"<body><h1>Welcome</h1><p>Hello world</p></body></html>")
    with pytest.raises(FeedParseError) as info:
        parse_feed(body, "https://t.example/", content_type)
    assert info.value.url == "https://t.example/"
    assert "HTML page, not a feed" in info.value.reason


def test_json_feed_is_read() -> None:  # in full: test_jsonfeed.py
    body = b'{"version":"https://jsonfeed.org/version/1.1","title":"T","items":[]}'
    feed = parse_feed(body, "https://t.example/feed.json", "application/feed+json")
    assert (feed.version, feed.title, feed.entries) == ("json11", "T", ())


def test_broken_feed_with_no_entries_is_a_failure_not_an_empty_success() -> None:
    body = b'<?xml version="1.0"?>\n<rss rss:version=2.0><rss:channel><rss:title>T</rss:title>'
    with pytest.raises(FeedParseError, match="no entries could be read"):
        parse_feed(body, "https://t.example/rss", RSS_TYPE)


def test_nested_entities_are_refused_and_plain_ones_are_not() -> None:
    item = "<item><title>Caf&eacute;&nbsp;news</title><guid>e1</guid></item>"
    plain = ('<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY nbsp "&#160;"><!ENTITY eacute "&#233;">]>'
             f'<rss version="2.0"><channel><title>T</title>{item}</channel></rss>')
    assert [e.title for e in parse_feed(plain.encode(), "https://t.example/", RSS_TYPE).entries] \
        == ["Caf\u00e9 news"]  # html_to_text makes the no-break space a space
    nested = plain.replace('"&#233;"', '"&nbsp;&nbsp;&nbsp;&nbsp;"')
    with pytest.raises(FeedParseError, match="entity-expansion"):
        parse_feed(nested.encode(), "https://t.example/", RSS_TYPE)


@pytest.mark.parametrize("body", [b"", b"   \n\t "])
def test_empty_body_is_not_a_feed(body: bytes) -> None:
    with pytest.raises(FeedParseError) as info:
        parse_feed(body, "https://t.example/rss", RSS_TYPE)
    assert info.value.reason == "empty body"
    assert info.value.url == "https://t.example/rss"


@pytest.mark.parametrize(("declared", "expected"), [("en-us", "en"), ("pt_BR", "pt"), ("ES", "es")])
def test_feed_language_is_reduced_to_primary_subtag(declared: str, expected: str) -> None:
    body = (f'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
            f"<language>{declared}</language>"
            f"<item><title>x</title><link>https://t.example/1</link></item></channel></rss>").encode()
    assert parse_feed(body, "https://t.example/rss", RSS_TYPE).language == expected


REAL_FEEDS = [
    ("87232eca4263cf8c.xml.gz", "rss20", 9),
    ("72fea1ebfd02e90a.xml.gz", "rss20", 20),
    ("5e19d3b495454497.xml.gz", "atom10", 1),
]


@pytest.mark.parametrize(("name", "version", "count"), REAL_FEEDS)
def test_real_feeds_parse(name: str, version: str, count: int) -> None:
    body = gzip.decompress((FIXTURES / name).read_bytes())
    feed = parse_feed(body, "https://feed.example/feed.xml", "application/xml")
    assert feed.version == version
    assert len(feed.entries) == count
    for entry in feed.entries:
        assert entry.guid.strip()
        assert entry.title
        assert entry.link is not None and entry.link.startswith("https://")
