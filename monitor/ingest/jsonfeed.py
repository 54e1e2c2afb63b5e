"""JSON Feed 1.0 and 1.1 (https://jsonfeed.org/version/1.1): bytes in, the same plain
values as an RSS or Atom feed out (pure; :func:`monitor.ingest.feeds.parse_feed` hands
such a body here).

Lenient where real feeds are sloppy (a number for an id, a missing version, an item
that is no object: skipped and named in the warning); strict where a value could do
harm: links are http(s) only, text has no control characters, a date that is no RFC
3339 date is no date. Titles, summaries and ``content_text`` are plain text in JSON
Feed, and are kept as written (tags and all, shown as text); ``content_html`` is HTML.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from monitor.errors import FeedParseError
from monitor.ingest.feeds import FeedEntry, ParsedFeed, feed_language, html_text, http_link, plain

VERSIONS = {"https://jsonfeed.org/version/1": "json1", "https://jsonfeed.org/version/1.1": "json11"}
MEDIA_TYPES = ("application/feed+json", "application/json")


def looks_like_json(body: bytes, content_type: str | None) -> bool:
    """Whether ``body`` is meant as JSON: it starts with ``{`` (after a byte-order mark
    and white space), or it is served as JSON and does not start with ``<`` (an RSS feed
    a server labels JSON is still read as RSS)."""
    first = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    media = (content_type or "").split(";")[0].strip().lower()
    return first == b"{" or (media in MEDIA_TYPES and first != b"<")


def parse_json_feed(body: bytes, url: str) -> ParsedFeed:
    """Raises :class:`FeedParseError` when ``body`` is not JSON, or JSON but no feed."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad bytes, deep nesting
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        raise FeedParseError(url, f"served as JSON but not valid JSON: {reason}") from None
    if not isinstance(doc, dict):
        raise FeedParseError(url, "JSON, but not a JSON Feed (not an object)")
    written = doc.get("version")
    version = VERSIONS.get(written.strip().rstrip("/")) if isinstance(written, str) else None
    items = doc.get("items")
    claims = isinstance(written, str) and "jsonfeed.org" in written
    if not isinstance(items, list) and not claims:
        raise FeedParseError(url, "JSON, but not a JSON Feed (no jsonfeed.org version "
                                  "and no items)")
    if not isinstance(items, list):
        raise FeedParseError(url, "a JSON Feed without an items list")
    problems = []
    if version is None:
        problems.append(f"unknown JSON Feed version {written!r}" if written is not None
                        else "no JSON Feed version")
    entries = []
    skipped = 0
    for item in items:
        entry = _entry(item, url) if isinstance(item, dict) else None
        if entry is None:
            skipped += 1
        else:
            entries.append(entry)
    if skipped:
        problems.append(f"{skipped} of {len(items)} items skipped (not an object, or "
                        "with neither id, url nor text)")
    if problems and not entries and items:
        raise FeedParseError(url, "; ".join(problems) + "; no entries could be read")
    return ParsedFeed(
        title=_line(doc.get("title")),
        version=version or "json",
        language=feed_language(doc.get("language")),
        entries=tuple(entries),
        warning="; ".join(problems) or None,
    )


def _entry(item: dict[str, Any], feed_url: str) -> FeedEntry | None:
    link = http_link(item.get("url"), feed_url) or http_link(item.get("external_url"), feed_url)
    title = _line(item.get("title"))
    html = html_text(item.get("content_html"))
    text = plain(item.get("content_text"))
    content = max((html or "", (text or "").strip()), key=len) or None
    summary = (plain(item.get("summary")) or "").strip() or None
    raw_id = item.get("id")
    guid = str(raw_id) if isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool) else ""
    guid = (plain(guid) or "").strip()
    if not guid:
        basis = "\n".join(filter(None, (title, summary, content)))
        if not link and not basis:
            return None
        guid = link or "sha1:" + hashlib.sha1(basis.encode("utf-8"),
                                              usedforsecurity=False).hexdigest()
    return FeedEntry(
        guid=guid,
        link=link,
        title=title,
        author=_author(item),
        published_at=_date(item.get("date_published")) or _date(item.get("date_modified")),
        content=content,
        summary=summary,
    )


def _line(value: Any) -> str | None:
    """Plain text on one line: white space runs made one space."""
    text = plain(value)
    return " ".join(text.split()) or None if text is not None else None


def _author(item: dict[str, Any]) -> str | None:
    """The first author's name: 1.1's ``authors`` list, else 1.0's ``author``."""
    authors = item.get("authors")
    candidates = authors if isinstance(authors, list) else [item.get("author")]
    for a in candidates:
        name = _line(a.get("name")) if isinstance(a, dict) else None
        if name:
            return name
    return None


def _date(value: Any) -> datetime | None:
    """An RFC 3339 date-time, in UTC; a date without a zone is taken as UTC."""
    if not isinstance(value, str) or not 10 <= len(value.strip()) <= 40:
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    try:
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except (OverflowError, ValueError):  # year 1 at +01:00, and the like
        return None
