"""Article extraction with trafilatura: page bytes in, plain values out (pure).

trafilatura is not thread-safe and its caches grow with every page, so this
module is meant to run inside worker processes (see :mod:`monitor.ingest.extract_pool`),
which call :func:`reset_caches` periodically. It imports no network or
database code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from monitor.errors import ExtractionError

# trafilatura and py3langid are imported where they are used: they take ~0.3 s and
# ~40 MB to import, and only the worker processes extract. The daemon imports this
# module for :class:`Article` alone (its workers' results are unpickled into it).


@dataclass(frozen=True)
class Article:
    text: str
    title: str | None
    author: str | None
    published_at: datetime | None
    language: str | None
    site_name: str | None
    canonical_url: str | None  # from rel=canonical / og:url, as the page declares it


_HTML_LANG = re.compile(rb"<html\b[^>]*?(?<![:\w])lang\s*=\s*[\"']?([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]+)?",
                        re.IGNORECASE)
_META_LANG = re.compile(
    rb"<meta\b[^>]*?(?:http-equiv\s*=\s*[\"']?content-language|property\s*=\s*[\"']?og:locale)"
    rb"[^>]*?content\s*=\s*[\"']?([A-Za-z]{2,3})",
    re.IGNORECASE,
)


def detect_language(text: str, html: bytes = b"") -> str | None:
    """ISO 639-1 code of the text: the page's declared language, else a guess from the text."""
    head = html[:20000]
    m = _HTML_LANG.search(head) or _META_LANG.search(head)
    if m:
        return m.group(1).decode("ascii").lower()
    if len(text) < 40:
        return None
    import py3langid

    lang, _score = py3langid.classify(text[:5000])
    return str(lang)


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def extract_article(html: bytes, url: str, *, fast: bool = False) -> Article:
    """Extract the main text and metadata of the page at ``url``.

    ``fast``: trafilatura without its fallback extractors (readability, jusText), which
    it otherwise runs on every page and keeps where they find more (``[extract] mode``;
    docs/performance.md has both modes' speed and F1). Returns an :class:`Article` (its
    text may be short; judging that is the caller's policy). Raises
    :class:`ExtractionError` when nothing is found.
    """
    import trafilatura

    try:
        doc = trafilatura.bare_extraction(
            html,
            url=url,
            fast=fast,
            with_metadata=True,
            include_comments=False,
            include_tables=True,
            include_images=False,
            deduplicate=False,
        )
    except Exception as exc:  # trafilatura raises assorted lxml/value errors on odd input
        raise ExtractionError(url, f"{type(exc).__name__}: {exc}") from exc
    if doc is None or isinstance(doc, dict):
        raise ExtractionError(url, "no main text found")
    text = (doc.text or "").strip()
    if not text:
        raise ExtractionError(url, "no main text found")
    return Article(
        text=text,
        title=doc.title or None,
        author=doc.author or None,
        published_at=_parse_date(doc.date),
        language=detect_language(text, html),
        site_name=doc.sitename or None,
        canonical_url=doc.url or None,
    )


def reset_caches() -> None:
    """Free trafilatura's module-level caches (they grow ~1 MB per page)."""
    from trafilatura.meta import reset_caches

    reset_caches()
