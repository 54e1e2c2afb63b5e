"""Finding a site's feeds from one of its addresses (``monitor feeds discover``): the
URL itself when it is a feed; else the feeds its page declares (``<link
rel="alternate">``), links that look like feeds, and the paths where sites keep them.

Pure but for :func:`discover`, which is handed its fetch function: every candidate is
fetched at most once, in that order, within a request budget and a deadline, and is a
feed only if it parses as one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit, urlunsplit

from monitor.errors import FeedParseError, FetchError
from monitor.ingest.feeds import ParsedFeed, http_link, parse_feed

if TYPE_CHECKING:
    from lxml.html import HtmlElement

FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/feed+json",
              "application/rdf+xml", "application/json", "application/xml", "text/xml")
# Where sites keep feeds without saying so: WordPress, Ghost, Hugo, Jekyll, Blogger …
COMMON_PATHS = ("/feed", "/rss", "/feed.xml", "/rss.xml", "/atom.xml", "/index.xml",
                "/feed.json", "/feeds/posts/default", "/?feed=rss2")
_FEEDISH_ENDINGS = (".rss", ".atom", ".rdf", "/rss", "/feed", "/atom", "feed.xml", "rss.xml",
                    "atom.xml", "index.xml", "feed.json")
MAX_ANCHORS = 4  # links that look like feeds, tried after the declared ones

# fetch(url, trusted) -> (final URL, body, content type); raises FetchError.
Fetch = Callable[[str, bool], Awaitable[tuple[str, bytes, str | None]]]


@dataclass(frozen=True)
class Candidate:
    url: str
    how: str  # "given", "declared", "linked" or "common path"
    title: str | None = None  # the page's title for it (<link title>)


@dataclass(frozen=True)
class Found:
    url: str  # as fetched (what goes into the config)
    how: str
    feed: ParsedFeed

    @property
    def latest(self) -> datetime | None:
        dates = [e.published_at for e in self.feed.entries if e.published_at is not None]
        return max(dates) if dates else None


@dataclass
class Discovered:
    found: list[Found] = field(default_factory=list)
    tried: list[tuple[str, str]] = field(default_factory=list)  # (url, why it is no feed)
    requests: int = 0
    out_of_budget: bool = False  # stopped by the request budget or the deadline


def declared_feeds(html: bytes, page_url: str) -> list[Candidate]:
    """The feeds a page declares with ``<link rel="alternate" type=…>``, in page order,
    made absolute (against its ``<base href>`` when it has one)."""
    doc = _html(html)
    if doc is None:
        return []
    base = _base(doc, page_url)
    out = []
    for link in doc.iter("link"):
        rel = (link.get("rel") or "").lower().split()
        kind = (link.get("type") or "").split(";")[0].strip().lower()
        if "alternate" not in rel or kind not in FEED_TYPES:
            continue
        url = http_link(link.get("href"), base)
        if url:
            title = " ".join((link.get("title") or "").split()) or None
            out.append(Candidate(url, "declared", title))
    return _unique(out)


def linked_feeds(html: bytes, page_url: str) -> list[Candidate]:
    """Links of the page, to its own host, whose address looks like a feed's."""
    doc = _html(html)
    if doc is None:
        return []
    base = _base(doc, page_url)
    host = urlsplit(page_url).hostname
    out = []
    for a in doc.iter("a"):
        url = http_link(a.get("href"), base)
        if not url or urlsplit(url).hostname != host:
            continue
        path = urlsplit(url).path.rstrip("/").lower()
        if path.endswith(_FEEDISH_ENDINGS) or "feed=rss" in url.lower():
            out.append(Candidate(url, "linked"))
    return _unique(out)[:MAX_ANCHORS]


def common_paths(page_url: str) -> list[Candidate]:
    """The usual places at the site's root, and under the page's folder when it has
    one (a blog at /blog/)."""
    parts = urlsplit(page_url)
    root = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
    out = [Candidate(root + p, "common path") for p in COMMON_PATHS]
    folder = parts.path if parts.path.endswith("/") else parts.path.rsplit("/", 1)[0] + "/"
    if folder not in ("", "/"):
        out += [Candidate(urljoin(root + folder, p.lstrip("/")), "common path")
                for p in ("feed", "index.xml", "rss.xml", "atom.xml")]
    return _unique(out)


def _html(body: bytes) -> HtmlElement | None:
    from lxml import html as lxml_html  # lxml: a dependency already (trafilatura)
    from lxml.etree import ParserError

    try:
        return lxml_html.document_fromstring(body)
    except (ParserError, ValueError):
        return None


def _base(doc: HtmlElement, page_url: str) -> str:
    for b in doc.iter("base"):
        href = http_link(b.get("href"), page_url)
        if href:
            return href
    return page_url


def _unique(candidates: list[Candidate]) -> list[Candidate]:
    seen: set[str] = set()
    out = []
    for c in candidates:
        if c.url not in seen:
            seen.add(c.url)
            out.append(c)
    return out


async def discover(fetch: Fetch, url: str, *, max_requests: int = 12,
                   seconds: float = 30.0) -> Discovered:
    """The feeds of the site at ``url``. Candidates on the given URL's host are fetched
    as the user's own choice (``trusted``), others behind the SSRF guard."""
    result = Discovered()
    host = urlsplit(url).hostname
    deadline = time.monotonic() + seconds
    seen: set[str] = set()

    async def attempt(c: Candidate) -> tuple[str, bytes, str | None] | None:
        """Fetch ``c`` once; a feed is recorded as found. Returns the answer."""
        if c.url in seen:
            return None
        if result.requests >= max_requests or time.monotonic() >= deadline:
            result.out_of_budget = True
            return None
        seen.add(c.url)
        result.requests += 1
        try:
            async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                final, body, content_type = await fetch(c.url, urlsplit(c.url).hostname == host)
        except FetchError as exc:
            result.tried.append((c.url, exc.reason))
            return None
        except TimeoutError:
            result.out_of_budget = True
            result.tried.append((c.url, f"no answer within the {seconds:.0f} s of the search"))
            return None
        try:
            feed = parse_feed(body, final, content_type)
        except FeedParseError as exc:
            if c.how != "given":  # the page given is looked into next, not a failure
                result.tried.append((c.url, exc.reason))
            return final, body, content_type
        result.found.append(Found(c.url, c.how, feed))
        return final, body, content_type

    page = await attempt(Candidate(url, "given"))
    if result.found or page is None:
        return result
    final, body, _ = page
    for c in declared_feeds(body, final):
        await attempt(c)
    if result.found:
        return result
    for c in linked_feeds(body, final) + common_paths(final):
        await attempt(c)
    return result
