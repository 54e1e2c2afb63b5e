"""Digest emails (pure): alerts in, one multipart/alternative message out.

A digest is what one recipient reads: the alerts of their rules not yet sent to
them, grouped by rule (in config order), newest first. Each entry shows the
linked title, the feed, the published time in the digest's time zone, the
snippet with the matched terms highlighted, and the other outlets that carried
a near-duplicate of the story.

The text and HTML parts come from the Jinja2 templates in ``templates/``; the
HTML one autoescapes everything, keeps its CSS inline (Gmail and Outlook drop
``<style>`` blocks or parts of them) and lays out with tables (Outlook's Word
engine ignores most of CSS layout). Everything that came from a feed is
untrusted: it is escaped in HTML, only http(s) URLs become links, and header
values are cut to one line so a title holding CR/LF cannot add a header.
"""

from __future__ import annotations

import functools
import hashlib
import re
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from monitor.config import DigestSettings
from monitor.errors import QueryError
from monitor.rules import Term, highlight, terms_labelled
from monitor.rules import parse as parse_query

SUBJECT_MAX = 120  # characters before the rule list is cut short with "…"
TEXT_WIDTH = 76


@dataclass(frozen=True)
class Outlet:
    """Another feed that carried a near-duplicate of an entry's story."""

    feed: str
    url: str | None
    title: str | None


@dataclass(frozen=True)
class Entry:
    """One alert as the digest shows it."""

    alert_id: int
    rule: str
    title: str | None
    url: str | None
    feed: str
    published_at: datetime | None
    created_at: datetime  # when the alert was raised
    query: str  # the rule's query when it matched
    terms: tuple[str, ...]
    snippet: str
    also: tuple[Outlet, ...] = ()


@dataclass(frozen=True)
class Section:
    rule: str
    entries: tuple[Entry, ...]


@dataclass(frozen=True)
class Digest:
    recipient: str
    sections: tuple[Section, ...]

    @property
    def count(self) -> int:
        return sum(len(s.entries) for s in self.sections)

    @property
    def alert_ids(self) -> list[int]:
        return [e.alert_id for s in self.sections for e in s.entries]


def assemble(recipient: str, entries: Iterable[Entry], rule_order: Sequence[str]) -> Digest:
    """Group ``entries`` by rule, rules in ``rule_order`` (others after, by name),
    each rule's entries newest first (published time, else when the alert was raised)."""
    by_rule: dict[str, list[Entry]] = {}
    for e in entries:
        by_rule.setdefault(e.rule, []).append(e)
    rank = {name: i for i, name in enumerate(rule_order)}
    rules = sorted(by_rule, key=lambda r: (rank.get(r, len(rank)), r))
    return Digest(recipient, tuple(
        Section(r, tuple(sorted(by_rule[r], key=_newest_first))) for r in rules))


def _newest_first(e: Entry) -> tuple[float, int]:
    return (-(e.published_at or e.created_at).timestamp(), -e.alert_id)


def subject(digest: Digest) -> str:
    """"3 new alerts: Venezuela leadership (2), Russia and Latin America (1)"."""
    if not digest.count:
        return "No new alerts"
    head = f"{digest.count} new alert" + ("" if digest.count == 1 else "s")
    parts = [f"{s.rule} ({len(s.entries)})" for s in digest.sections]
    shown: list[str] = []
    for i, part in enumerate(parts):
        left = len(parts) - i - 1
        tail = f" and {left} more" if left else ""
        if shown and len(f"{head}: {', '.join([*shown, part])}{tail}") > SUBJECT_MAX:
            break
        shown.append(part)
    hidden = len(parts) - len(shown)
    text = f"{head}: {', '.join(shown)}" + (f" and {hidden} more" if hidden else "")
    return _one_line(text)


def render(digest: Digest, settings: DigestSettings, tz: tzinfo, now: datetime,
           message_id: str) -> EmailMessage:
    """The whole email: headers, a text part and an HTML part. ``now`` (aware) is its
    Date; ``message_id`` (``<…@…>``) stays with the message across retries."""
    room = settings.max_alerts  # entries listed in all: a catch-up digest stays mailable
    sections = []
    for section in digest.sections:
        sections.append(_section_view(section, tz, settings.full_entries, room))
        room = max(0, room - len(section.entries))
    context = {
        "digest": digest,
        "sections": sections,
        "max_alerts": settings.max_alerts,
        "summary": _summary(digest),
        "when": _when(now, tz),
        "zone": _zone(now, tz),
        "sender_name": settings.sender_name,
    }
    env = _environment()
    msg = EmailMessage(policy=SMTP)
    msg["Subject"] = subject(digest)
    msg["From"] = formataddr((_one_line(settings.sender_name), settings.sender))
    msg["To"] = _one_line(digest.recipient)
    msg["Date"] = format_datetime(now.astimezone(tz))
    msg["Message-ID"] = _one_line(message_id)
    domain = settings.sender.rpartition("@")[2]
    msg["List-Id"] = f'"{_list_phrase(settings.sender_name)} digest" <digest.{domain}>'
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this
    msg["X-Auto-Response-Suppress"] = "All"  # the same, for Exchange and Outlook
    msg.set_content(env.get_template("digest.txt").render(context), cte="quoted-printable")
    msg.add_alternative(env.get_template("digest.html").render(context), subtype="html",
                        cte="quoted-printable")
    # The same digest renders to the same bytes (golden files; identical retries). "=_"
    # cannot occur in quoted-printable text, so the boundary never collides with it.
    msg.set_boundary(f"=_digest_{hashlib.sha256(message_id.encode()).hexdigest()[:32]}")
    return msg


def new_message_id(domain: str, token: str) -> str:
    """A Message-ID for a new digest; ``token`` makes it unique (a random hex string)."""
    return f"<digest.{token}@{domain}>"


# --- what the templates see ----------------------------------------------------------------

@dataclass(frozen=True)
class _EntryView:
    title: str
    href: str | None  # only http(s): a feed's "javascript:" link is never shown
    feed: str
    published: str
    snippet: list[tuple[str, bool]]
    snippet_text: str  # for the text part: marked words in *asterisks*, wrapped
    terms: str
    also: list[tuple[str, str | None]]  # (feed, http(s) url or None)


def _section_view(section: Section, tz: tzinfo, full: int, room: int) -> dict[str, object]:
    """A rule's first ``full`` entries in full; the rest as one line each (linked title,
    feed, time), so a big day stays under Gmail's ~102 KB clipping point; of those,
    only the first ``room`` (what ``[digest] max_alerts`` leaves), the others counted."""
    listed = section.entries[:room]
    views = [_entry_view(e, tz) for e in listed]
    return {"rule": section.rule, "count": len(section.entries), "entries": views[:full],
            "more": views[full:], "unlisted": len(section.entries) - len(listed)}


def _entry_view(e: Entry, tz: tzinfo) -> _EntryView:
    terms = _terms(e)
    pieces = highlight(e.snippet, terms) if e.snippet else []
    marked = "".join(f"*{text}*" if hit else text for text, hit in pieces)
    also: dict[str, str | None] = {}
    for o in e.also:
        also.setdefault(_one_line(o.feed), _http(o.url))
    href = _http(e.url)
    return _EntryView(
        title=_one_line(e.title or "") or href or "(untitled)",
        href=href,
        feed=_one_line(e.feed),
        published=(_when(e.published_at, tz) if e.published_at
                   else f"seen {_when(e.created_at, tz)}"),
        snippet=pieces,
        snippet_text=textwrap.fill(_one_line(marked), TEXT_WIDTH, initial_indent="  ",
                                   subsequent_indent="  "),
        terms=", ".join(e.terms),
        also=list(also.items()),
    )


def _terms(e: Entry) -> list[Term]:
    try:
        return terms_labelled(parse_query(e.query), e.terms)
    except QueryError:  # a query stored by an older version that no longer parses
        return []


def _summary(digest: Digest) -> str:
    if not digest.count:
        return "Nothing new matched your rules since the last digest."
    return f"{_plural(digest.count, 'alert')} from {_plural(len(digest.sections), 'rule')}"


def _when(moment: datetime, tz: tzinfo) -> str:
    local = moment.astimezone(tz)
    return f"{local.day} {local:%b %Y, %H:%M}"


def _zone(now: datetime, tz: tzinfo) -> str:
    offset = now.astimezone(tz).strftime("%z")
    return f"{tz} (UTC{offset[:3]}:{offset[3:]})".replace("UTC-", "UTC−")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def _one_line(text: str) -> str:
    """``text`` with every control character (CR, LF, tab …) turned into one space: safe
    in a header and in a one-line field of the text part."""
    return " ".join(_CONTROL.sub(" ", text).split())


def _list_phrase(text: str) -> str:
    return re.sub(r'["\\]', "", _one_line(text))


def _http(url: str | None) -> str | None:
    if url and re.match(r"^https?://[^\s]+$", url, re.IGNORECASE):
        return url
    return None


@functools.cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("monitor.digest", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return env
