"""Seed corpus: already-known articles, read from plain-text files (pure).

A seed file is an article saved as text, sometimes with a Markdown heading, a
date line, and an ``Original url:`` trailer. :func:`parse_seed` keeps the text
and pulls out what it carries: title, source URL and date.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from monitor.errors import SeedError
from monitor.ingest.urls import canonical_url

SEED_SUFFIXES = (".txt", ".md")


@dataclass(frozen=True)
class SeedDoc:
    name: str  # file name, the seed's identity
    title: str | None
    text: str
    source_url: str | None
    published_at: datetime | None
    file_sha256: str = ""  # of the file's bytes: tells a changed seed file


_ORIGINAL_URL = re.compile(
    r"^\s*(?:original\s+url|source\s+url|source)\s*:\s*<?(?P<url>https?://[^\s>]+)?>?\s*$",
    re.IGNORECASE,
)
_BARE_URL = re.compile(r"^\s*<?(?P<url>https?://[^\s>]+)>?\s*$")
_DATE_PREFIX = re.compile(r"^\s*date\s+(?P<date>\d{4}-\d{2}-\d{2})\s*")
_MONTHS = {m: i + 1 for i, m in enumerate(
    "january february march april may june july august september october november december".split())}
_MONTH_RE = r"(?P<month>[A-Z][a-z]{2,8})\.?"
_DATE_LINE = re.compile(rf"^\s*{_MONTH_RE}\s+(?P<day>\d{{1,2}}),\s+(?P<year>\d{{4}})\s*$")
# "MOSCOW, Jan. 4, 2026 – ..." : an agency dateline opening a paragraph.
_DATELINE = re.compile(rf"^[A-Z][A-Z .'-]+,\s+{_MONTH_RE}\s+(?P<day>\d{{1,2}}),\s+(?P<year>\d{{4}})\b")
_HEADING = re.compile(r"^\s*#{1,3}\s+(?P<title>.+?)\s*#*\s*$")


def _month(name: str) -> int | None:
    name = name.lower().rstrip(".")
    for full, number in _MONTHS.items():
        if full.startswith(name) and len(name) >= 3:
            return number
    return None


def _date(m: re.Match[str]) -> datetime | None:
    month = _month(m.group("month"))
    if month is None:
        return None
    try:
        return datetime(int(m.group("year")), month, int(m.group("day")), tzinfo=UTC)
    except ValueError:
        return None


def _looks_like_headline(line: str) -> bool:
    words = line.split()
    return 4 <= len(words) <= 30 and len(line) <= 200 and not line.rstrip().endswith((".", ":", "?"))


def parse_seed(name: str, raw: str) -> SeedDoc:
    """Split a seed file's text into a :class:`SeedDoc`. Never raises."""
    lines = raw.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    source_url: str | None = None
    published: datetime | None = None
    body: list[str] = []
    expect_url = False
    for line in lines:
        if expect_url and line.strip():
            expect_url = False
            m = _BARE_URL.match(line)
            if m:
                source_url = source_url or m.group("url")
                continue
        m = _ORIGINAL_URL.match(line)
        if m:
            if m.group("url"):
                source_url = source_url or m.group("url")
            else:
                expect_url = True
            continue
        m = _DATE_PREFIX.match(line)
        if m:
            published = published or datetime.fromisoformat(m.group("date")).replace(tzinfo=UTC)
            line = line[m.end():]
        body.append(line)

    title: str | None = None
    nonblank = [i for i, line in enumerate(body) if line.strip()]
    for i in nonblank[:4]:
        m = _HEADING.match(body[i])
        if m:
            title = m.group("title").strip()
            del body[i]
            break
        if _looks_like_headline(body[i]):
            title = body[i].strip()
            del body[i]
            break
        if len(body[i].split()) >= 8:
            break  # the body has started: a later short line is a caption or link, not a title

    for i, line in enumerate(body[:12]):
        m = _DATE_LINE.match(line)
        if m:
            published = published or _date(m)
            del body[i]  # a date on its own line is metadata, not article text
            break
        m = _DATELINE.match(line.strip())
        if m:
            published = published or _date(m)
            break

    text = re.sub(r"\n{3,}", "\n\n", "\n".join(line.rstrip() for line in body)).strip()
    return SeedDoc(
        name=name,
        title=title,
        text=text,
        source_url=canonical_url(source_url) if source_url else None,
        published_at=published,
    )


def read_seeds(directory: Path) -> list[SeedDoc]:
    """Parse every seed file in ``directory`` (sorted by name).

    Raises :class:`SeedError` when the directory or a file cannot be read.
    """
    if not directory.is_dir():
        raise SeedError(f"{directory}: seeds directory does not exist")
    docs = []
    for path in sorted(directory.iterdir()):
        if path.suffix.lower() not in SEED_SUFFIXES or not path.is_file():
            continue
        try:
            raw = path.read_bytes()
            doc = parse_seed(path.name, raw.decode("utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise SeedError(f"{path}: cannot read seed: {exc}") from exc
        docs.append(replace(doc, file_sha256=hashlib.sha256(raw).hexdigest()))
    return docs
