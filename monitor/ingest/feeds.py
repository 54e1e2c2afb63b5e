"""Feed parsing with feedparser: bytes in, plain values out (pure). JSON Feed is read
by :mod:`monitor.ingest.jsonfeed`, into the same values.

No network here: the body comes from :mod:`monitor.ingest.fetcher`. feedparser is
lenient, so a malformed but usable feed ("bozo") still yields entries; the
oddity is returned as ``ParsedFeed.warning`` for the caller to record.
"""

from __future__ import annotations

import calendar
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from monitor.errors import FeedParseError


@dataclass(frozen=True)
class FeedEntry:
    guid: str
    link: str | None  # absolute, as the feed gives it (not canonicalized)
    title: str | None
    author: str | None
    published_at: datetime | None
    content: str | None  # plain text of the entry's full content, if any
    summary: str | None  # plain text of the summary/description, if any


@dataclass(frozen=True)
class ParsedFeed:
    title: str | None
    version: str
    language: str | None  # as the feed declares it (RSS <language>, Atom xml:lang)
    entries: tuple[FeedEntry, ...]
    warning: str | None  # what was wrong with a malformed but usable feed


def _struct_to_datetime(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), tz=UTC)
    except (OverflowError, ValueError, TypeError, OSError):
        return None


# Control characters XML forbids, which a malformed feed (parsed leniently) still delivers:
# NUL in particular, which PostgreSQL refuses in any text column.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def plain(value: Any) -> str | None:
    """``value`` when it is a string, control characters removed."""
    return _CONTROL.sub("", value) if isinstance(value, str) else None


def html_text(value: Any) -> str | None:
    """The text of ``value`` read as HTML (a string), or None."""
    written = plain(value)
    if written is None:
        return None
    from monitor.ingest.html_text import html_to_text  # lxml: in the workers only

    return html_to_text(written) or None


def feed_language(value: Any) -> str | None:
    """A feed's declared language as a bare lowercase code: "en-US" -> "en"."""
    text = plain(value)
    if not text or not text.strip():
        return None
    return text.strip().split("-")[0].split("_")[0].lower()[:8] or None


def http_link(value: Any, feed_url: str) -> str | None:
    """The entry's link made absolute, when it is an http(s) URL with a host: never a
    ``javascript:``, ``data:`` or ``mailto:`` link, which digests would show and the
    fetcher cannot fetch."""
    text = plain(value)
    if not text or not text.strip():
        return None
    try:
        link = urljoin(feed_url, text.strip())
        parts = urlsplit(link)
        _ = parts.port  # ValueError unless a number from 0 to 65535
    except ValueError:  # "http://[::1": no URL at all
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return link


def _entry(raw: Any, feed_url: str) -> FeedEntry:
    link = http_link(raw.get("link"), feed_url)
    title = html_text(raw.get("title"))
    contents = raw.get("content") or []
    content = max((html_text(c.get("value")) or "" for c in contents), key=len, default="") or None
    summary = html_text(raw.get("summary"))
    guid = plain(raw.get("id"))
    if not guid or not guid.strip():
        # No id: the link identifies the entry; failing that, its words do.
        basis = "\n".join(filter(None, (title, summary, content)))
        guid = link or "sha1:" + hashlib.sha1(basis.encode("utf-8"), usedforsecurity=False).hexdigest()
    published = _struct_to_datetime(raw.get("published_parsed")) or _struct_to_datetime(
        raw.get("updated_parsed")
    )
    author = plain(raw.get("author"))
    return FeedEntry(
        guid=guid.strip(),
        link=link,
        title=title,
        author=author or None,
        published_at=published,
        content=content,
        summary=summary,
    )


# An internal entity whose value refers to another entity: how "billion laughs" starts.
# Real feeds declare at most plain ones (<!ENTITY nbsp "&#160;">). expat stops the
# expansion at its amplification limit, but only after feedparser has taken seconds
# and tens of MB over the text it did expand: refuse before parsing instead.
_NESTED_ENTITY = re.compile(
    rb"""<!ENTITY\s+(?:%\s+)?[^\s"']+\s+"""  # <!ENTITY name or <!ENTITY % name, then a value
    rb"""(?:"[^"]*&[A-Za-z_:][^"]*"|'[^']*&[A-Za-z_:][^']*')""")  # that holds &other;
_PROLOG_BYTES = 64 * 1024  # where a DOCTYPE's internal subset may be looked for


# What an HTML page starts with (after a BOM, blanks and comments), not a feed.
_HTML_START = re.compile(rb"^(?:\xef\xbb\xbf)?(?:\s|<!--.*?-->)*<(?:!doctype\s+html|html)[\s>]",
                         re.IGNORECASE | re.DOTALL)


def _expansion_attack(body: bytes) -> bool:
    head = body[:_PROLOG_BYTES]
    return b"<!ENTITY" in head and _NESTED_ENTITY.search(head) is not None


# feedparser looks for an e-mail address in an RSS author (<author>, <managingEditor>,
# <webMaster>, <dc:creator>, <dc:publisher>, <itunes:author>) with a regular expression
# that takes time quadratic in the author's length: 0.3 s for 8,000 characters, over a
# minute for 100,000, days for a 10 MiB feed. No real author is that long: the text of a
# longer one is dropped before parsing.
_AUTHOR_TAG = re.compile(r"<((?:[\w.-]+:)?(?:author|creator|publisher|managingeditor|webmaster))"
                         r"(?=[\s/>])[^<>]*>", re.IGNORECASE)
_AUTHOR_MAX_CHARS = 1000


def _as_text(body: bytes) -> tuple[str, str] | None:
    """``body`` as text, and the codec that turns it back into the same bytes: latin-1 for
    every ASCII-compatible encoding (tags are ASCII), else UTF-16 or UTF-32."""
    codec = "latin-1"
    for start, name in ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
                        (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"),
                        (b"<\x00\x00\x00", "utf-32-le"), (b"\x00\x00\x00<", "utf-32-be"),
                        (b"<\x00", "utf-16-le"), (b"\x00<", "utf-16-be")):
        if body.startswith(start):
            codec = name
            break
    try:
        return body.decode(codec), codec
    except UnicodeDecodeError:  # no such document: feedparser will not read it so either
        return None


def _drop_long_authors(body: bytes) -> bytes:
    """``body`` with the text of every author-like element over 1,000 characters dropped
    (``<author></author>``). Linear in the body's length."""
    decoded = _as_text(body) if len(body) > _AUTHOR_MAX_CHARS else None
    if decoded is None:
        return body
    text, codec = decoded
    kept: list[str] = []
    pos = 0  # text before pos is in kept
    for m in _AUTHOR_TAG.finditer(text):
        if m.start() < pos or m.group().endswith("/>"):
            continue
        close, end = "</" + m.group(1), m.end()
        while True:  # the closing tag: "</author" followed by ">" or a blank
            end = text.find(close, end)
            if end == -1 or text[end + len(close):end + len(close) + 1] in (">", " ", "\t",
                                                                             "\n", "\r"):
                break
            end += len(close)
        if end == -1:
            break  # never closed: feedparser never looks at it, nor at any later one
        if end - m.end() > _AUTHOR_MAX_CHARS:
            kept.append(text[pos:m.end()])
            pos = end
    if not kept:
        return body
    kept.append(text[pos:])
    return "".join(kept).encode(codec)


def parse_feed(body: bytes, url: str, content_type: str | None = None) -> ParsedFeed:
    """Parse a feed body fetched from ``url``.

    Returns the entries in feed order. Raises :class:`FeedParseError` when the
    body is no feed at all (HTML, empty, unrecoverable XML).
    """
    if not body.strip():
        raise FeedParseError(url, "empty body")
    from monitor.ingest import jsonfeed  # it builds on this module's values

    if jsonfeed.looks_like_json(body, content_type):
        return jsonfeed.parse_json_feed(body, url)
    if _expansion_attack(body):
        raise FeedParseError(url, "the feed declares XML entities that expand into other "
                                  "entities (an entity-expansion attack); not parsed")
    body = _drop_long_authors(body)
    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type
    # feedparser and lxml are imported where feeds are parsed, in the worker processes:
    # the daemon uses this module's dataclasses alone.
    import feedparser
    from feedparser.exceptions import NonXMLContentType

    try:
        parsed = feedparser.parse(body, response_headers=headers, sanitize_html=True)
    except Exception as exc:  # feedparser promises not to raise; wrap if it ever does
        raise FeedParseError(url, f"parser crashed: {exc!r}") from exc
    warning = None
    oddity = parsed.get("bozo_exception")
    # A feed served as text/html or text/plain is common and harmless: not worth a warning.
    if parsed.get("bozo") and not isinstance(oddity, NonXMLContentType):
        warning = f"{type(oddity).__name__}: {oddity}" if oddity else "malformed feed"
    version = parsed.get("version") or ""
    entries = parsed.get("entries") or []
    if not version and not entries:
        if _HTML_START.match(body[:1024]):
            raise FeedParseError(url, "the server sent an HTML page, not a feed; check the "
                                      "feed's URL (a site's home page is no feed)")
        raise FeedParseError(url, warning or "no RSS, Atom or JSON Feed content")
    if warning and not entries:
        # Broken before any entry could be read: nothing usable, so a failure (with the
        # parser's reason), not a quiet success with no news.
        raise FeedParseError(url, f"{warning}; no entries could be read")
    meta = parsed.get("feed", {})
    return ParsedFeed(
        title=html_text(meta.get("title")),
        version=version,
        language=feed_language(meta.get("language")),
        entries=tuple(_entry(e, url) for e in entries),
        warning=warning,
    )
