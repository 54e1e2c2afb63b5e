"""What each page and API answer shows, read from the store: plain values, the same
for the HTML pages and the JSON API. Every function takes an open session; none
writes except :func:`mark_alert`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from monitor import store
from monitor.config import Settings, Thresholds
from monitor.digest.render import Entry, Report, Section, assemble
from monitor.errors import QueryError
from monitor.rules import Query, parse, why_not
from monitor.search import Result, search, test_rule
from monitor.store.channels import ChannelCounts, channel_counts

TODAY_DEFAULT = timedelta(hours=24)  # "today" when no digest has gone out yet
TODAY_MAX_ALERTS = 500  # alerts shown on Today, the newest; the others counted
TODAY_NEW_STORIES = 30
FEED_DAYS = 14
RECENT_ALERTS = 5  # per rule on the Rules page


@dataclass(frozen=True)
class Today:
    since: datetime
    since_digest: bool  # since the last digest that went out (else: the last 24 hours)
    sections: tuple[Section, ...]
    alerts: int  # alerts raised since, shown or not
    shown: int  # of them, those shown (the newest)
    feedback: dict[int, store.Feedback]
    new_stories: list[store.StoryListing]  # that no shown alert is about
    stories_created: int


def today(s: Session, settings: Settings, now: datetime) -> Today:
    """Alerts raised since the last digest went out (else in the last 24 hours), by
    rule and story as a digest groups them, and the stories begun since."""
    last = store.last_digest_at(s)
    since = last or now - TODAY_DEFAULT
    rows = store.list_alerts(s, since=since, limit=TODAY_MAX_ALERTS + 1)
    total = len(rows) if len(rows) <= TODAY_MAX_ALERTS else len(store.list_alerts(s, since=since))
    rows = rows[:TODAY_MAX_ALERTS]
    stories = sorted({r.story_id for r in rows if r.story_id is not None})
    reports = {sid: [Report(p.item_id, p.feed, p.url, p.title, p.at, p.stored_at)
                     for p in found]
               for sid, found in store.story_reports(s, stories, limit=50).items()}
    entries = [Entry(alert_id=r.id, rule=r.rule, item_id=r.item_id, title=r.title, url=r.url,
                     feed=r.feed, published_at=r.published_at, created_at=r.created_at,
                     query=r.query, terms=tuple(r.terms), snippet=r.snippet,
                     story=r.story_id if r.story_id is not None else -r.item_id,
                     backfilled=r.backfilled) for r in rows]
    digest = assemble("", entries, [r.name for r in settings.rules], reports)
    shown = set(stories)
    fresh = [st for st in store.list_stories(
        s, ids=store.stories_created(s, since, TODAY_NEW_STORIES + len(shown)))
        if st.id not in shown][:TODAY_NEW_STORIES]
    fresh.sort(key=lambda st: (-len(st.outlets), -st.items, -st.last_at.timestamp()))
    return Today(since, last is not None, digest.sections, total, len(rows),
                 store.feedback_of(s, [r.id for r in rows]), fresh,
                 store.count_stories_created(s, since))


@dataclass(frozen=True)
class Copy:
    """A stored item of a story, and why it is (or is not) a copy."""

    item: store.ItemRow
    why: str  # "" for an original


def explain_copy(item: store.ItemRow, thresholds: Thresholds) -> str:
    """Why dedup called ``item`` a copy, in words ("" for an original)."""
    ref = item.duplicate_of
    if ref is None:
        return ""
    of = f"seed {ref.seed}" if ref.kind == "seed" else f"item {ref.id}"
    method = item.dedup_method
    if method == "guid":
        return f"the same entry as {of}: the same GUID, which names one article in any feed"
    if method == "url":
        return f"the same article as {of}: the same canonical URL"
    if method == "exact":
        return (f"the same text as {of}, once whitespace, case and boilerplate lines "
                "(footers, share buttons) are set aside")
    if method == "near":
        sim = f"{item.similarity:.0%}" if item.similarity is not None else "enough"
        return (f"nearly the same text as {of}: {sim} of the word sequences (5-word shingles) "
                f"shared, where {thresholds.jaccard:.0%} of both texts' shingles or "
                f"{thresholds.containment:.0%} of the shorter one's make a copy")
    return f"a copy of {of} ({method})"


@dataclass(frozen=True)
class StoryPage:
    story: store.StoryListing
    items: list[Copy]  # earliest first
    alerts: list[store.AlertRow]
    feedback: dict[int, store.Feedback]

    @property
    def originals(self) -> int:
        return sum(1 for c in self.items if not c.why)


STORY_ITEMS_SHOWN = 500


def story(s: Session, story_id: int, settings: Settings) -> StoryPage | None:
    found = store.list_stories(s, ids=[story_id])
    if not found:
        return None
    items = store.list_items(s, story=story_id, limit=STORY_ITEMS_SHOWN)
    items.sort(key=lambda i: (i.published_at or i.created_at, i.id))
    alerts = store.list_alerts(s, item_ids=[i.id for i in items])
    th = settings.dedup.thresholds
    return StoryPage(found[0], [Copy(i, explain_copy(i, th)) for i in items], alerts,
                     store.feedback_of(s, [a.id for a in alerts]))


@dataclass(frozen=True)
class ItemPage:
    item: store.ItemRow
    why: str
    alerts: list[store.AlertRow]
    feedback: dict[int, store.Feedback]
    copies: list[store.ItemRow]  # stored copies of it
    story: store.StoryListing | None


def item(s: Session, item_id: int, settings: Settings) -> ItemPage | None:
    found = store.list_items(s, ids=[item_id], with_text=True)
    if not found:
        return None
    it = found[0]
    alerts = store.list_alerts(s, item_ids=[item_id])
    copy_ids = store.copies_of(s, [item_id])[item_id]
    copies = sorted(store.list_items(s, ids=copy_ids), key=lambda c: c.id) if copy_ids else []
    stories = store.list_stories(s, ids=[it.story]) if it.story is not None else []
    return ItemPage(it, explain_copy(it, settings.dedup.thresholds), alerts,
                    store.feedback_of(s, [a.id for a in alerts]), copies,
                    stories[0] if stories else None)


@dataclass(frozen=True)
class FeedView:
    row: store.FeedRow
    state: str
    daily: list[int]  # items stored per day, the last FEED_DAYS days, oldest first
    first_day: datetime
    category: str | None = None  # the config's (feeds import takes it from OPML folders)


def _midnight(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def feeds(s: Session, now: datetime, settings: Settings,
          feed_id: int | None = None) -> list[FeedView]:
    """The feeds (not forgotten), failing first (the most failures first), then by name;
    only ``feed_id`` when given."""
    category = {f.url: f.category for f in settings.feeds}
    first = _midnight(now) - timedelta(days=FEED_DAYS - 1)
    counts = store.daily_counts(s, first, FEED_DAYS)
    rows = store.list_feeds(s)
    if feed_id is not None:
        rows = [r for r in rows if r.id == feed_id]
    views = [FeedView(r, r.state(now), counts.get(r.id, [0] * FEED_DAYS), first,
                      category.get(r.url)) for r in rows]
    views.sort(key=lambda v: (v.state != "failing", -v.row.consecutive_failures,
                              v.row.name.lower()))
    return views


@dataclass(frozen=True)
class Searched:
    written: str
    query: Query | None
    error: str | None
    result: Result | None
    offset: int  # groups before this page
    total: int | None = None  # items matched, where counted (rule tests)
    checked: int | None = None  # items the test looked at


def run_search(s: Session, written: str, *, offset: int = 0, limit: int = 20) -> Searched:
    """The search page's search: stories best first, ``limit`` from ``offset``."""
    try:
        query = parse(written)
    except QueryError as exc:
        return Searched(written, None, str(exc), None, offset)
    result = search(s, query, store.SearchFilters(), limit=offset + limit)
    return Searched(written, query, None, _page(result, offset), offset)


def _page(result: Result, offset: int) -> Result:
    return Result(result.query, result.compiled, result.groups[offset:], result.more,
                  result.scanned, result.windowed)


@dataclass(frozen=True)
class RuleView:
    name: str
    query: str
    reads: str
    recipients: tuple[str, ...]
    alerts: int
    unsent: int
    relevant: int
    not_relevant: int
    recent: list[store.AlertRow] = field(default_factory=list)


@dataclass(frozen=True)
class RulesPage:
    rules: list[RuleView]
    feedback: dict[int, store.Feedback]
    test: Searched | None
    would_alert: dict[int, str | None]  # per tested item: why it would not alert (None: it would)


def rules(s: Session, settings: Settings, now: datetime, test: str | None = None) -> RulesPage:
    counts = store.count_alerts(s)
    marks = store.feedback_counts(s)
    views = []
    shown: list[int] = []
    for r in settings.rules:
        total, unsent = counts.get(r.name, (0, 0))
        yes, no = marks.get(r.name, (0, 0))
        recent = store.list_alerts(s, rule=r.name, limit=RECENT_ALERTS)
        shown += [a.id for a in recent]
        views.append(RuleView(r.name, r.query, str(r.parsed), r.recipients, total, unsent,
                              yes, no, recent))
    tested = None
    would: dict[int, str | None] = {}
    if test is not None and test.strip():
        tested = rule_test(s, test)
        muted = {f.url for f in settings.feeds if not f.alert_backlog}
        for m in tested.result.matches if tested.result else []:
            it = m.item
            would[it.id] = why_not(it.published_at, now, settings.alerts.max_age,
                                   muted_backlog=it.backlog and it.feed_url in muted)
    return RulesPage(views, store.feedback_of(s, shown), tested, would)


def rule_test(s: Session, written: str, limit: int = 20) -> Searched:
    """What a rule with this query would match among the stored originals, newest
    first, and how many in all."""
    try:
        query = parse(written)
    except QueryError as exc:
        return Searched(written, None, str(exc), None, 0)
    t = test_rule(s, query, store.SearchFilters(), limit)
    return Searched(written, query, None, t.result, 0, t.total, t.checked)


@dataclass(frozen=True)
class Waiting:
    """What the next digest to ``recipient`` would carry if it were composed now."""

    recipient: str
    rules: tuple[str, ...]
    alerts: int
    stories: int


@dataclass(frozen=True)
class ChannelLine:
    """An alert channel of the config, with its deliveries."""

    name: str
    kind: str
    where: str  # scheme and host: never the URL, which may be a secret
    rules: tuple[str, ...]
    counts: ChannelCounts


@dataclass(frozen=True)
class DigestsPage:
    digests: list[store.DigestRow]
    pending: int
    waiting: list[Waiting]
    channels: list[ChannelLine]


def digests(s: Session, settings: Settings, limit: int = 50) -> DigestsPage:
    """The latest digests, and per recipient the counts of the next one. The next
    digest itself has a page of its own (:func:`preview`): rendering every
    recipient's here took most of this page's time at 100k items."""
    from monitor.digest.delivery import recipients

    waiting = [Waiting(r, tuple(rules), *store.waiting_for_digest(s, r, rules))
               for r, rules in recipients(settings.rules).items()]
    counts = channel_counts(s) if settings.channels else {}
    channels = [ChannelLine(c.name, c.kind, c.shown_url,
                            tuple(r.name for r in settings.rules if c.name in r.notify),
                            counts.get(c.name, ChannelCounts()))
                for c in settings.channels]
    return DigestsPage(store.list_digests(s, limit=limit), store.digest_counts(s).pending,
                       waiting, channels)


PREVIEW_MESSAGE_ID = "<preview@monitor.invalid>"


def preview(s: Session, settings: Settings, recipient: str,
            now: datetime) -> tuple[str, int, str, str]:
    """The digest ``recipient`` would get now: subject, stories, text part, HTML part.
    Raises KeyError for a recipient no rule has."""
    from monitor.digest.delivery import build, recipients

    rules = recipients(settings.rules)[recipient]
    digest, message = build(s, settings, recipient, rules, now, PREVIEW_MESSAGE_ID)
    parts = []
    for subtype in ("plain", "html"):
        part = message.get_body((subtype,))
        parts.append(str(part.get_content()) if part is not None else "")
    return str(message["Subject"]), digest.count, parts[0], parts[1]


def mark_alert(s: Session, alert_id: int, relevant: bool, by: str, now: datetime) -> bool:
    """Record a reviewer's verdict. Returns False when there is no such alert."""
    return store.set_feedback(s, alert_id, relevant, by, now)
