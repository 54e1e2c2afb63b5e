"""Digest emails (pure): alerts in, one multipart/alternative message out.

A digest is what one recipient reads, story first: the alerts of their rules not
yet sent to them, grouped by story (:mod:`monitor.stories`), each story once, under
the first of the recipient's rules (config order) that matched it, the others named.
A new story shows its lead report (linked title, outlet, time in the digest's time
zone, the snippet with the matched terms highlighted), how many reports it has from
how many outlets, the earliest and the latest, and the other outlets that carried
it. A story a digest already carried appears again only as "N more reports".

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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
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
class Report:
    """One stored article of a story: an outlet's report of it."""

    item_id: int
    feed: str
    url: str | None
    title: str | None
    at: datetime  # published, else first seen
    stored_at: datetime


@dataclass(frozen=True)
class Entry:
    """One alert as the digest shows it."""

    alert_id: int
    rule: str
    item_id: int
    title: str | None
    url: str | None
    feed: str
    published_at: datetime | None
    created_at: datetime  # when the alert was raised
    query: str  # the rule's query when it matched
    terms: tuple[str, ...]
    snippet: str
    story: int  # the item's story: its alerts are listed together (any key, one per story)
    backfilled: bool = False  # raised by a backfill on an item stored before the rule

    @property
    def at(self) -> datetime:
        return self.published_at or self.created_at

    def report(self) -> Report:
        return Report(self.item_id, self.feed, self.url, self.title, self.at, self.created_at)


@dataclass(frozen=True)
class StoryEntry:
    """One story in a digest: its alerts for the recipient (of one or more rules), led by
    one of them, and every stored report of it.

    New to the recipient, it is shown in full under the first of its rules; already
    mailed (``mailed_at``: when the digest that last carried it was composed), only what
    it gained since: "N more reports"."""

    rule: str  # the first of the recipient's rules (config order) that matched it
    other_rules: tuple[str, ...]  # the others that matched it, in config order
    lead: Entry
    alerts: tuple[Entry, ...]
    reports: tuple[Report, ...]  # earliest first; the lead's among them
    mailed_at: datetime | None = None

    @property
    def follow_up(self) -> bool:
        return self.mailed_at is not None

    @property
    def latest(self) -> datetime:
        return max(r.at for r in self.reports)

    def new_reports(self) -> list[Report]:
        """Its reports stored since it was mailed, and those alerted now (a rule added
        later can alert on an older report), earliest first."""
        if self.mailed_at is None:
            return list(self.reports)
        alerted = {a.item_id for a in self.alerts}
        return [r for r in self.reports if r.stored_at > self.mailed_at or r.item_id in alerted]


@dataclass(frozen=True)
class Section:
    rule: str
    entries: tuple[StoryEntry, ...]  # new stories, latest report first, then follow-ups


@dataclass(frozen=True)
class Digest:
    recipient: str
    sections: tuple[Section, ...]
    # Per rule: reviewers' verdicts on its alerts (relevant, not relevant) given since
    # the recipient's previous digest, from the review page (monitor.web).
    feedback: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def count(self) -> int:
        """Stories listed: new ones and follow-ups."""
        return sum(len(s.entries) for s in self.sections)

    @property
    def updates(self) -> int:
        return sum(e.follow_up for s in self.sections for e in s.entries)

    @property
    def alert_ids(self) -> list[int]:
        return [a.alert_id for s in self.sections for e in s.entries for a in e.alerts]


def assemble(recipient: str, entries: Iterable[Entry], rule_order: Sequence[str],
             reports: Mapping[int, Sequence[Report]] | None = None,
             mailed: Mapping[int, datetime] | None = None) -> Digest:
    """Group ``entries`` (alerts) by story, each story once, under the first of its
    rules in ``rule_order`` (others after, by name). ``reports`` are each story's stored
    reports (a story without any is its alerts' items); ``mailed`` says which stories a
    digest to the recipient already carried, and when it was composed. In a section, new
    stories come first, the latest reported first, then the follow-ups."""
    reports, mailed = reports or {}, mailed or {}
    rank = {name: i for i, name in enumerate(rule_order)}

    def order(rule: str) -> tuple[int, str]:
        return (rank.get(rule, len(rank)), rule)

    by_story: dict[int, list[Entry]] = {}
    for e in entries:
        by_story.setdefault(e.story, []).append(e)
    by_rule: dict[str, list[StoryEntry]] = {}
    for key, alerts in by_story.items():
        rules = sorted({a.rule for a in alerts}, key=order)
        mailed_at = mailed.get(key)
        ours = sorted((a for a in alerts if a.rule == rules[0]), key=lambda a: (a.at, a.alert_id))
        lead = ours[-1] if mailed_at is not None else ours[0]
        known = list(reports.get(key, ()))
        seen = {r.item_id for r in known}
        known += [a.report() for a in alerts if a.item_id not in seen]
        known.sort(key=lambda r: (r.at, r.item_id))
        by_rule.setdefault(rules[0], []).append(StoryEntry(
            rules[0], tuple(rules[1:]), lead, tuple(sorted(alerts, key=lambda a: a.alert_id)),
            tuple(dict((r.item_id, r) for r in known).values()), mailed_at))
    return Digest(recipient, tuple(
        Section(r, tuple(sorted(by_rule[r], key=_story_order)))
        for r in sorted(by_rule, key=order)))


def _story_order(e: StoryEntry) -> tuple[bool, float, int]:
    return (e.follow_up, -e.latest.timestamp(), -e.lead.alert_id)


def subject(digest: Digest) -> str:
    """"3 new stories: Venezuela leadership (2), Russia and Latin America (1)"."""
    if not digest.count:
        return "No new stories"
    head = _headline(digest)
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


def _headline(digest: Digest) -> str:
    """"2 new stories", "1 new story and 2 updates", "1 story update"."""
    fresh, updates = digest.count - digest.updates, digest.updates
    if not fresh:
        return f"{updates} story update" + ("" if updates == 1 else "s")
    head = f"{fresh} new " + ("story" if fresh == 1 else "stories")
    return head + (f" and {_plural(updates, 'update')}" if updates else "")


def render(digest: Digest, settings: DigestSettings, tz: tzinfo, now: datetime,
           message_id: str) -> EmailMessage:
    """The whole email: headers, a text part and an HTML part. ``now`` (aware) is its
    Date; ``message_id`` (``<…@…>``) stays with the message across retries."""
    room = settings.max_alerts  # stories listed in all: a catch-up digest stays mailable
    sections = []
    for section in digest.sections:
        sections.append({**_section_view(section, tz, settings.full_entries, room),
                         "feedback": _feedback(digest.feedback.get(section.rule))})
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
class _StoryView:
    title: str
    href: str | None  # only http(s): a feed's "javascript:" link is never shown
    feed: str
    published: str
    snippet: list[tuple[str, bool]]
    snippet_text: str  # for the text part: marked words in *asterisks*, wrapped
    terms: str
    other_rules: str  # "" or the other rules that matched it, comma-separated
    reports: str  # "" (one report) or "3 reports from 2 outlets: first …, latest …"
    also: list[tuple[str, str | None]]  # the other outlets: (feed, http(s) url or None)
    backfilled: str  # "" or why an older story is new to this rule


@dataclass(frozen=True)
class _UpdateView:
    title: str  # the story's, as first reported
    href: str | None  # its latest new report
    more: str  # "2 more reports since 23 Nov 2026, 18:15"
    outlets: list[tuple[str, str | None]]  # who reported it since, each once
    other_rules: str


def _section_view(section: Section, tz: tzinfo, full: int, room: int) -> dict[str, object]:
    """A rule's first ``full`` new stories in full; the rest as one line each (linked
    title, outlet, time), so a big day stays under Gmail's ~102 KB clipping point; then
    the stories mailed before, one line each with what they gained. Of all these, only
    the first ``room`` (what ``[digest] max_alerts`` leaves), the others counted."""
    listed = section.entries[:room]
    fresh = [_story_view(e, tz) for e in listed if not e.follow_up]
    updates = [_update_view(e, tz) for e in listed if e.follow_up]
    return {"rule": section.rule, "count": len(section.entries), "entries": fresh[:full],
            "more": fresh[full:], "updates": updates,
            "unlisted": len(section.entries) - len(listed)}


def _story_view(story: StoryEntry, tz: tzinfo) -> _StoryView:
    e = story.lead
    terms = _terms(e)
    pieces = highlight(e.snippet, terms) if e.snippet else []
    marked = "".join(f"*{text}*" if hit else text for text, hit in pieces)
    href = _http(e.url)
    reports = ""
    if len(story.reports) > 1:
        first, last = story.reports[0], max(story.reports, key=lambda r: (r.at, r.item_id))
        outlets = len({r.feed for r in story.reports})
        reports = (f"{_plural(len(story.reports), 'report')} from "
                   f"{_plural(outlets, 'outlet')}: first {_when(first.at, tz)} "
                   f"({_one_line(first.feed)}), latest {_when(last.at, tz)} "
                   f"({_one_line(last.feed)})")
    return _StoryView(
        title=_one_line(e.title or "") or href or "(untitled)",
        href=href,
        feed=_one_line(e.feed),
        published=(_when(e.published_at, tz) if e.published_at
                   else f"seen {_when(e.created_at, tz)}"),
        snippet=pieces,
        snippet_text=textwrap.fill(_one_line(marked), TEXT_WIDTH, initial_indent="  ",
                                   subsequent_indent="  "),
        terms=", ".join(e.terms),
        other_rules=", ".join(_one_line(r) for r in story.other_rules),
        reports=reports,
        also=_outlets(r for r in story.reports if r.feed != e.feed),
        backfilled=(f"Backfilled: stored {_when(_stored(story, e), tz)}, before the rule "
                    "could see it" if e.backfilled else ""),
    )


def _stored(story: StoryEntry, e: Entry) -> datetime:
    """When the lead's item was stored (its report's, else the alert's time)."""
    return next((r.stored_at for r in story.reports if r.item_id == e.item_id), e.created_at)


def _update_view(story: StoryEntry, tz: tzinfo) -> _UpdateView:
    new = story.new_reports()
    first = story.reports[0]
    latest = max(new, key=lambda r: (r.at, r.item_id))
    since = f" since {_when(story.mailed_at, tz)}" if story.mailed_at else ""
    return _UpdateView(
        title=_one_line(first.title or "") or _http(first.url) or "(untitled)",
        href=_http(latest.url),
        more=f"{len(new)} more report{'' if len(new) == 1 else 's'}{since}",
        outlets=_outlets(new),
        other_rules=", ".join(_one_line(r) for r in story.other_rules),
    )


def _outlets(reports: Iterable[Report]) -> list[tuple[str, str | None]]:
    """Each outlet once, with the link to its first report (of these) that has one."""
    out: dict[str, str | None] = {}
    for r in reports:
        feed = _one_line(r.feed)
        if out.get(feed) is None:
            out[feed] = _http(r.url)
    return list(out.items())


def _terms(e: Entry) -> list[Term]:
    try:
        return terms_labelled(parse_query(e.query), e.terms)
    except QueryError:  # a query stored by an older version that no longer parses
        return []


def _feedback(counts: tuple[int, int] | None) -> str:
    """"Reviewers since the last digest: 3 relevant, 1 not relevant" ("" for none)."""
    if not counts or not any(counts):
        return ""
    return (f"Reviewers since the last digest: {counts[0]} relevant, "
            f"{counts[1]} not relevant")


def _summary(digest: Digest) -> str:
    if not digest.count:
        return "Nothing new matched your rules since the last digest."
    return f"{_headline(digest)} from {_plural(len(digest.sections), 'rule')}"


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
