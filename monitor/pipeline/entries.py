"""A feed's new entries: planned (known ones found before any fetch), recorded and
claimed a batch at a time (any worker may claim a recorded entry: see
monitor.service.dispatch), their pages fetched and extracted (one fetch per URL however
many entries link it), and each decided and stored in a transaction of its own, under
its story's locks.

See docs/storing.md for why this gives one original per story with any number of
workers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from monitor import store
from monitor.db import reason as db_reason
from monitor.dedup.decision import DecideAgain, Decision, Keys, decide
from monitor.dedup.fingerprint import normalized
from monitor.errors import (
    ExtractionError,
    FetchError,
    HTTPStatusError,
)
from monitor.ingest import cadence
from monitor.ingest.articles import Article
from monitor.ingest.feeds import FeedEntry, ParsedFeed
from monitor.ingest.fetcher import PAGE_ACCEPT, FetchResult
from monitor.ingest.urls import canonical_url, choose_canonical
from monitor.pipeline.context import (
    Context,
    FeedReport,
    PageResult,
)
from monitor.rules import Document, why_not
from monitor.rules.fulltext import IndexedText
from monitor.stories import signals
from monitor.stories.joining import lock_terms

log = logging.getLogger(__name__)


@dataclass
class Candidate:
    entry: FeedEntry
    link_canonical: str | None
    language: str | None = None  # the feed's
    attempts: int = 0  # page fetches tried before this poll (it waited for a retry)
    recorded: bool = False  # it has a row in ``entries`` (until it is stored)
    backlog: bool = False  # found by its feed's first parse: what the feed already had
    known_as: store.Ref | None = None  # duplicate found before fetching the page
    known_by: str | None = None
    page: FetchResult | None = None
    fetched_here: bool = False  # False when another entry's fetch of the same URL was reused
    page_status: int | None = None
    page_error: str | None = None
    article: Article | None = None
    fetched_at: datetime | None = None
    transient: bool = False  # the page failed for a reason that may pass
    retry_after: str | None = None


def _global_guid(guid: str) -> bool:
    """GUIDs that mean the same article in any feed (URLs, tag: and urn: URIs)."""
    return guid.startswith(("http://", "https://", "tag:", "urn:"))


def candidate_of(w: store.WaitingEntry) -> Candidate:
    """A recorded entry to work on, from what its row keeps of it."""
    entry = FeedEntry(w.guid, w.link, w.title, w.author, w.published_at, w.content, w.summary)
    return Candidate(entry, canonical_url(w.link) if w.link else None, w.language, w.attempts,
                     recorded=True, backlog=w.backlog)


def choose_text(entry: FeedEntry, article: Article | None, min_chars: int) -> tuple[str, str]:
    """The item's text and where it came from (``text_source``).

    The page's extracted text wins unless it is implausibly short; then the
    longest of the entry's content, its summary and the short page text.
    """
    if article is not None and len(article.text) >= min_chars:
        return article.text, "page"
    options = [
        (entry.content or "", "feed_content"),
        (entry.summary or "", "feed_summary"),
        (article.text if article else "", "page"),
    ]
    text, source = max(options, key=lambda o: len(o[0]))
    if text:
        return text, source
    if entry.title:
        return entry.title, "title"
    return "", "none"


FUTURE_SLACK = timedelta(days=1)


def _plausible(when: datetime | None, now: datetime) -> datetime | None:
    return None if when is not None and when > now + FUTURE_SLACK else when


def plan(ctx: Context, feed: store.FeedState, parsed: ParsedFeed | None, now: datetime,
         report: FeedReport) -> list[Candidate]:
    """The entries to work on: those of ``parsed`` not seen before in this feed, and
    those waiting for a page retry that is due (whether the feed still lists them or
    not); duplicates by GUID and by URL are found before any fetch (one batch of
    lookups for the whole feed)."""
    entries = parsed.entries if parsed is not None else ()
    language = parsed.language if parsed is not None else None
    first_parse = feed.body_hash is None  # never parsed before: it lists its backlog
    with ctx.sessions() as s:
        seen = store.known_guids(s, feed.id, (e.guid for e in entries))
        # The feed says whether any of its entries waits: most polls need not ask.
        waiting = store.waiting_entries(s, feed.id, now) if feed.entries_retry_at else {}
        report.known = len(seen)
        candidates: list[Candidate] = []
        for entry in entries:
            if entry.guid in seen:
                continue
            seen.add(entry.guid)  # a GUID repeated inside one feed counts once
            w = waiting.pop(entry.guid, None)
            if w is not None and w.leased:
                continue  # a worker is on it now
            if w is not None and w.next_attempt_at > now:
                report.waiting += 1  # its retry is not due yet
                continue
            candidates.append(Candidate(entry, canonical_url(entry.link) if entry.link else None,
                                        language, w.attempts if w is not None else 0,
                                        recorded=w is not None,
                                        backlog=w.backlog if w is not None else first_parse))
        for w in waiting.values():  # no longer in the feed, or the feed was not parsed
            if w.leased:
                continue
            if w.next_attempt_at > now:
                report.waiting += 1
                continue
            candidates.append(candidate_of(w))
        known = store.lookup_known(
            s, feed.id, guids=[c.entry.guid for c in candidates if _global_guid(c.entry.guid)],
            urls=[c.link_canonical for c in candidates if c.link_canonical])
    for c in candidates:
        if _global_guid(c.entry.guid) and c.entry.guid in known.by_guid:
            c.known_as, c.known_by = known.by_guid[c.entry.guid], "guid"
        elif c.link_canonical and c.link_canonical in known.by_url:
            c.known_as, c.known_by = known.by_url[c.link_canonical], "url"
        if c.known_as is not None:
            log.info("feed %r: entry <%s> is a known article (%s %s, by %s); page not fetched",
                     feed.name, c.entry.link, c.known_as.kind, c.known_as.seed or c.known_as.id,
                     c.known_by)
    return candidates


async def fetch_article(ctx: Context, feed: store.FeedState, c: Candidate) -> None:
    link = c.entry.link
    if not link:
        return
    key = c.link_canonical or link
    shared = ctx.pages.get(key)
    if shared is None:
        shared = ctx.pages[key] = asyncio.get_running_loop().create_future()
        c.fetched_here = True
        try:
            shared.set_result(await _fetch_and_extract(ctx, feed, link))
        except asyncio.CancelledError:  # waiters must not hang; nobody may be left to
            shared.cancel()                # retrieve an exception (asyncio would log it)
            raise
        except BaseException as exc:
            shared.set_exception(exc)
            raise
        finally:
            del ctx.pages[key]
    result = await asyncio.shield(shared)
    c.page, c.article, c.page_error, c.fetched_at, c.page_status = (
        result.page, result.article, result.error, result.fetched_at, result.status)
    c.transient, c.retry_after = result.transient, result.retry_after


async def _fetch_and_extract(ctx: Context, feed: store.FeedState, link: str) -> PageResult:
    """The page's result, never an exception: anything a stranger's page can do to the
    code below (a bug met on odd input) costs this entry its page, not the feed."""
    async with ctx.page_slots:  # fetch no further ahead of the workers than this
        try:
            return await _fetch_and_extract_now(ctx, feed, link)
        except Exception as exc:
            log.exception("feed %r: article <%s>: unexpected error; using the feed's text",
                          feed.name, link)
            return PageResult(None, None, f"unexpected error: {exc!r}"[:500], None, None)


async def _fetch_and_extract_now(ctx: Context, feed: store.FeedState,
                                 link: str) -> PageResult:
    page = fetched_at = None
    try:
        page = await ctx.fetcher.fetch(link, max_bytes=ctx.settings.fetch.max_page_bytes,
                                       accept=PAGE_ACCEPT)
        fetched_at = ctx.clock()
        article = await ctx.processor.extract(page.body, page.final_url)
    except (FetchError, ExtractionError) as exc:
        log.warning("feed %r: article <%s>: %s%s", feed.name, link, exc.reason,
                    "" if exc.transient else "; using the feed's text")
        status = exc.status if isinstance(exc, HTTPStatusError) else page.status if page else None
        return PageResult(_without_body(page), None, str(exc.reason), fetched_at, status,
                          transient=exc.transient,
                          retry_after=exc.retry_after if isinstance(exc, HTTPStatusError)
                          else None)
    return PageResult(_without_body(page), article, None, fetched_at, page.status)


def retry_at(ctx: Context, c: Candidate, now: datetime) -> datetime | None:
    """When ``c``'s page is to be tried again, or None: it succeeded, failed for good,
    has had its ``[fetch] page_attempts``, or the server asked (Retry-After) for a longer
    wait than ``page_retry_max``. The n-th failure waits ``page_retry`` x 2^(n-1), up to
    ``page_retry_max``, and at least what Retry-After asks."""
    f = ctx.settings.fetch
    failures = c.attempts + 1
    if c.page_error is None or not c.transient or failures >= f.page_attempts:
        return None
    wait = min(f.page_retry_max, f.page_retry * 2 ** min(failures - 1, 30))
    asked = cadence.retry_after_seconds(c.retry_after, now)
    if asked is not None:
        if asked > f.page_retry_max:
            return None
        wait = max(wait, asked)
    return now + timedelta(seconds=cadence.jittered(wait, ctx.settings.poll.jitter, ctx.rng))


def waiting(c: Candidate, next_at: datetime, *, attempts: int | None = None
            ) -> store.WaitingEntry:
    """What is kept of ``c`` until its page's next attempt (by default, after this one)."""
    e = c.entry
    return store.WaitingEntry(e.guid, e.link, e.title, e.author, e.published_at, e.content,
                              e.summary, c.language,
                              c.attempts + 1 if attempts is None else attempts, next_at,
                              c.page_error, backlog=c.backlog)


def found(ctx: Context, feed: store.FeedState, candidates: Sequence[Candidate],
          now: datetime) -> int:
    """Record the entries whose pages are to be fetched, before any is (store thread):
    from here on, a shutdown or a crash loses none of them, and any worker may claim
    them (see :func:`work_through`). Returns how many were recorded."""
    fresh = [c for c in candidates if c.known_as is None and c.entry.link and not c.recorded]
    if not fresh:
        return 0
    with ctx.sessions.begin() as s:
        store.record_entries(s, feed.id, (waiting(c, now, attempts=0) for c in fresh), now=now)
    for c in fresh:
        c.recorded = True
    return len(fresh)


async def work_through(ctx: Context, feed: store.FeedState, candidates: Sequence[Candidate],
                       report: FeedReport) -> None:
    """Work on the poll's entries: those with no page to fetch (known already, or with
    no link) at once; the recorded ones as this worker claims them from ``entries``, a
    batch at a time as it has room (see :meth:`Context.entry_room`), until none of the
    feed's due entries is left unclaimed. Other workers claim some meanwhile (their
    results are theirs to count). Raises what the database raises (the first failure);
    the entries not yet stored stay recorded."""
    mine = {c.entry.guid: c for c in candidates if c.recorded}

    async def one(c: Candidate) -> None:
        try:
            await work_on(ctx, feed, c, report)
        finally:
            ctx.entry_done()

    async def claimer(tasks: asyncio.TaskGroup) -> None:
        while True:
            await ctx.wait_for_entry_room()
            want = ctx.entry_room()
            claimed = await ctx.in_store_thread(partial(_claim, ctx, feed, want))
            ctx.hold_entries(len(claimed))
            for _, w in claimed:
                c = mine.pop(w.guid, None) or candidate_of(w)
                c.attempts = w.attempts  # as the row says: it may have been tried since
                tasks.create_task(one(c))
            if len(claimed) < want:
                return  # none of the feed's is left unclaimed

    async with asyncio.TaskGroup() as tasks:
        for c in candidates:
            if not c.recorded:
                tasks.create_task(work_on(ctx, feed, c, report))
        if mine:
            tasks.create_task(claimer(tasks))


def _claim(ctx: Context, feed: store.FeedState, limit: int
           ) -> list[tuple[int, store.WaitingEntry]]:
    now = ctx.clock()
    with ctx.sessions.begin() as s:
        return store.claim_entries(s, ctx.owner, now,
                                   now + timedelta(seconds=ctx.settings.daemon.lease), limit,
                                   feed_id=feed.id)


async def work_on(ctx: Context, feed: store.FeedState, c: Candidate,
                  report: FeedReport) -> None:
    """Take one entry as far as it can go now: its page fetched and extracted, then, in a
    transaction of its own, stored (deduplicated, indexed, matched) or, when the page
    failed for a reason that may pass, kept waiting for its next attempt (the feed's
    outcome then schedules its poll for the soonest). Stored as soon as its own text is
    ready, whatever its feed's other pages are doing; its page and text are let go once
    it is. Raises only what the database raises when it fails itself: anything else is
    this entry's alone (logged, skipped)."""
    if c.known_as is None:
        await fetch_article(ctx, feed, c)
        report.pages_fetched += int(c.fetched_here and c.page is not None)
        report.page_failures += int(c.page_error is not None)
    try:
        await ctx.in_store_thread(lambda: _settle(ctx, feed, c, report))
    finally:
        c.page = c.article = None


def _settle(ctx: Context, feed: store.FeedState, c: Candidate, report: FeedReport) -> None:
    now = ctx.clock()
    at = retry_at(ctx, c, now)
    if at is not None:
        with ctx.sessions.begin() as s:
            store.wait_entry(s, feed.id, waiting(c, at), last_status=c.page_status, now=now)
        report.waiting += 1
        return
    try:
        p = prepare(ctx, feed, c)
    except Exception:  # a bug met on odd input costs this entry only
        report.skipped += 1
        log.exception("feed %r: entry <%s> (guid %r) could not be prepared; skipped",
                      feed.name, c.entry.link, c.entry.guid[:200])
        stored = False
    else:
        stored = store_entry(ctx, feed, c, p, report)
        ctx.flush_frequencies()
    if not stored and c.recorded:
        # Skipped (logged): it does not wait to be tried again at every poll.
        with ctx.sessions.begin() as s:
            store.forget_entries(s, feed.id, [c.entry.guid])


def _without_body(page: FetchResult | None) -> FetchResult | None:
    """The page's answer without its body (up to [fetch] max_page_bytes), once it has
    been extracted: an entry waits for its feed's other pages with its text alone, so a
    big first poll holds texts, not pages."""
    return None if page is None else replace(page, body=b"")


@dataclass(frozen=True)
class Prepared:
    """A candidate's text and keys, worked out before the storing transaction."""

    text: str
    source: str  # text_source
    canonical: str | None
    keys: Keys  # what dedup knows it by (its text normalized: None for a title alone)
    terms: signals.Terms | None = None  # what stories know it by (None: no text)
    term_locks: tuple[int, ...] = ()  # its heaviest terms' lock keys (see joining)


def prepare(ctx: Context, feed: store.FeedState, c: Candidate) -> Prepared:
    text, source = choose_text(c.entry, c.article, ctx.settings.extract.min_text_chars)
    canonical = c.link_canonical
    if c.page is not None:
        canonical = choose_canonical(c.page.final_url,
                                     c.article.canonical_url if c.article else None)
    norm = normalized(text) if source != "title" else None
    guid = c.entry.guid
    title = c.entry.title or (c.article.title if c.article else None)
    t = signals.terms(title, text) if text else None
    return Prepared(text, source, canonical, Keys.of(
        norm, feed_id=feed.id, guid=guid if _global_guid(guid) else None, canonical=canonical),
        t, tuple(lock_terms(t)) if t is not None and ctx.settings.stories.enabled else ())


def store_entry(ctx: Context, feed: store.FeedState, c: Candidate, p: Prepared,
                report: FeedReport) -> bool:
    """Store one entry in a transaction of its own: an entry that cannot be stored (a
    value the database refuses, a bug met on odd input) is skipped and logged, and the
    feed's other entries are stored. A failure of the database itself (it went away,
    the disk is full) is raised. A constraint that another worker's commit made this
    entry break (the same story stored at the same moment, the same entry by a worker
    whose lease lapsed) is decided again, once. Its row in ``entries``, if any, goes in
    the same transaction. Returns False when the entry was skipped."""
    for attempt in (1, 2):
        try:
            with ctx.sessions.begin() as s:
                stored = _store_candidate(ctx, s, feed, c, p, check_guid=attempt > 1)
                if c.recorded:
                    store.forget_entries(s, feed.id, [c.entry.guid])
        except OperationalError:
            raise
        except Exception as exc:
            if attempt == 1 and isinstance(exc, IntegrityError | DecideAgain):
                log.info("feed %r: entry <%s>: stored meanwhile by another worker (%s); "
                         "deciding again", feed.name, c.entry.link,
                         db_reason(exc) if isinstance(exc, IntegrityError) else exc)
                continue
            report.skipped += 1
            log.exception("feed %r: entry <%s> (guid %r) could not be stored; skipped",
                          feed.name, c.entry.link, c.entry.guid[:200])
            return False
        break
    if stored is None:  # this feed's entry, stored by another worker meanwhile
        report.known += 1
    elif stored.new:  # counted only once its transaction holds
        report.new += 1
        report.alerts += stored.alerts
    else:
        report.duplicates += 1
    return True


def alerts_backlog(ctx: Context, feed: store.FeedState) -> bool:
    """The feed's ``alert_backlog`` in the running config (True for a feed it no longer
    lists)."""
    return next((f.alert_backlog for f in ctx.settings.feeds if f.url == feed.url), True)


@dataclass(frozen=True)
class _Stored:
    ref: store.Ref  # the item stored, or the original it duplicates
    new: bool
    alerts: int


def _store_candidate(ctx: Context, s: Session, feed: store.FeedState,
                     c: Candidate, p: Prepared, *, check_guid: bool) -> _Stored | None:
    """Decide and store one entry, in the caller's transaction. Returns None when this
    feed has the entry already (``check_guid``: looked for; otherwise the feed's unique
    GUID constraint says so, which is rare: a lapsed lease let another worker poll it)."""
    entry, article, page = c.entry, c.article, c.page
    text, source, canonical = p.text, p.source, p.canonical
    if check_guid and store.known_guids(s, feed.id, [entry.guid]):
        return None
    # The story's keys are locked (another worker storing a copy of it waits for this
    # commit, or this for its) and looked up again where others may have committed.
    # One acquisition for the story's dedup keys and its heaviest terms (the story it
    # joins), ascending: two workers never wait for each other in a circle.
    v = decide(s, ctx.dedup, p.keys,
               known=Decision(c.known_as, c.known_by) if c.known_as is not None else None,
               lock=lambda keys: store.lock_story_keys(s, [*keys, *p.term_locks]))
    near, replaces, fp = v.near, v.replaces, v.fingerprint
    if near is not None and replaces is None:
        log.info("feed %r: entry <%s> near-duplicates %s %s (jaccard %.2f, containment "
                 "%.2f)", feed.name, entry.link, near.candidate.ref.kind,
                 near.candidate.ref.seed or near.candidate.ref.id, near.scores.jaccard,
                 near.scores.containment)
    use_page = source == "page" and article is not None
    title = entry.title or (article.title if article else None)
    now = ctx.clock()
    published = (_plausible(entry.published_at, now)
                 or _plausible(article.published_at if article else None, now))
    language = (article.language if use_page and article else None) or c.language
    # A copy joins its original's story; so does a fuller copy that takes a story over.
    joined = ctx.stories.join(s, p.terms, title=title, language=language,
                              at=published or now, now=now, copy_of=v.ref or replaces)
    doc = Document(title, text)  # split once: for the search index and the rules
    item_id = store.add_item(s, store.NewItem(
        feed_id=feed.id,
        guid=entry.guid,
        url=entry.link,
        final_url=page.final_url if page else None,
        canonical_url=canonical,
        title=title,
        author=entry.author or (article.author if article else None),
        published_at=published,
        fetched_at=c.fetched_at,
        language=language,
        site_name=article.site_name if article else None,
        text=text,
        text_source=source,
        text_hash=p.keys.text_hash,
        page_status=c.page_status,
        page_error=c.page_error,
        duplicate_of=v.ref,
        dedup_method=v.method,
        similarity=v.similarity,
        backlog=c.backlog,
        story_id=joined.story_id,
        words=IndexedText.of_document(doc),
    ), now)
    if fp is not None:
        ctx.dedup.index_item(s, item_id, fp)
    if v.ref is not None:
        log.info("feed %r: entry <%s> duplicates %s %s (by %s)", feed.name, entry.link,
                 v.ref.kind, v.ref.seed or v.ref.id, v.method)
        return _Stored(v.ref, new=False, alerts=0)
    # Only originals alert: a copy of a seed or of a stored item never does.
    if replaces is not None:
        assert near is not None
        store.promote(s, replaces.id, item_id, round(near.scores.similarity, 4))
        log.info("feed %r: entry <%s> is a fuller copy of item %d and becomes the "
                 "story's original", feed.name, entry.link, replaces.id)
    alerted = alert(ctx, s, feed, item_id, title, text, published, entry.link, doc=doc,
                    story_alerted=replaces is not None,
                    backlog=c.backlog and not alerts_backlog(ctx, feed))
    return _Stored(store.Ref("item", item_id, canonical or entry.link), new=True,
                   alerts=alerted.stored)


@dataclass(frozen=True)
class Alerted:
    """What the rules made of an original: the rules that matched, how many alerts were
    stored, and why none were when they matched (too old, the feed's backlog)."""

    rules: tuple[str, ...] = ()
    stored: int = 0
    why_not: str | None = None


def alert(ctx: Context, s: Session, feed: store.FeedState, item_id: int, title: str | None,
          text: str, published: datetime | None, link: str | None, *,
          story_alerted: bool, backlog: bool, doc: Document | None = None) -> Alerted:
    """Match the rules on the original ``item_id`` and store their alerts, in the
    caller's transaction. ``story_alerted``: the story had an original before (a fuller
    copy took over, the item was fetched again), so a rule that alerted for it already
    does not again; ``backlog``: found by a first poll whose backlog does not alert;
    ``doc``: the title and text already split into words."""
    hits = (ctx.rules.matcher.match(title, text) if doc is None
            else ctx.rules.matcher.match_document(doc))
    if hits and story_alerted:
        done = store.rules_alerted(s, item_id)
        hits = [h for h in hits if ctx.rules.ids[h.rule] not in done]
    if not hits:
        return Alerted()
    names = tuple(h.rule for h in hits)
    now = ctx.clock()
    why = why_not(published, now, ctx.settings.alerts.max_age, muted_backlog=backlog)
    if why is not None:
        log.info("feed %r: entry <%s> matched rules %s but does not alert: %s", feed.name,
                 link, ", ".join(repr(n) for n in names), why)
        return Alerted(names, 0, why)
    stored = store.add_alerts(s, item_id, [ctx.rules.alert(h) for h in hits], now)
    log.info("feed %r: entry <%s> matched rules %s", feed.name, link,
             ", ".join(repr(n) for n in names))
    return Alerted(names, stored)
