"""One feed's poll, end to end, and the seed load. Owns the transaction boundaries.

    fetch feed (conditional GET) -> unchanged? stop
    -> parse (worker process) -> drop GUIDs this feed already has
    -> entries whose URL is already known: duplicates, page not fetched
    -> fetch the other pages concurrently -> extract (worker processes)
    -> one short transaction: exact dedup (guid, url, text hash), near dedup (LSH band
       keys, verified) + insert + band keys + alerts of the rules a new item matches
       + feed state

Only the final step writes, and it re-checks everything it decided earlier, so
two feeds carrying the same story in one run still store it once.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor import store
from monitor.clock import Clock
from monitor.config import RuleSettings, Settings
from monitor.db import reason as db_reason
from monitor.dedup.fingerprint import Fingerprint, Normalized, normalized, story_key, text_hash
from monitor.dedup.index import Deduplicator
from monitor.dedup.verdict import is_fuller
from monitor.errors import (
    ExtractionError,
    FeedParseError,
    FetchError,
    HTTPStatusError,
    StoreError,
)
from monitor.ingest import cadence
from monitor.ingest.articles import Article
from monitor.ingest.extract_pool import Processor
from monitor.ingest.feeds import FeedEntry, ParsedFeed
from monitor.ingest.fetcher import FEED_ACCEPT, PAGE_ACCEPT, Fetcher, FetchResult
from monitor.ingest.urls import canonical_url, choose_canonical
from monitor.logs import feed_context
from monitor.rules import Hit, Matcher

log = logging.getLogger(__name__)

T = TypeVar("T")

# Pages fetched ahead of extraction, per worker process: enough that the workers never
# wait for the network or for a feed's storing transaction, few enough that memory does
# not grow with the backlog (each is up to [fetch] max_page_bytes, typically ~150 KB).
PAGES_AHEAD_PER_WORKER = 6
# Feeds whose poll found nothing new, recorded in one transaction (see Context.record_soon).
OUTCOMES_PER_TRANSACTION = 200


@dataclass(frozen=True)
class RuleBook:
    """The config's rules compiled for matching, with their ids in the database."""

    matcher: Matcher
    ids: Mapping[str, int]
    queries: Mapping[str, str]

    @classmethod
    def build(cls, rules: Sequence[RuleSettings], ids: Mapping[str, int]) -> RuleBook:
        """Raises StoreError when a rule is not stored (the config was not synced)."""
        missing = [r.name for r in rules if r.name not in ids]
        if missing:
            raise StoreError(f"rules {missing} are not in the database; start with "
                             "`monitor run`, which stores the config's rules")
        return cls(Matcher((r.name, r.parsed) for r in rules), dict(ids),
                   {r.name: r.query for r in rules})

    def alert(self, hit: Hit) -> store.NewAlert:
        """What to store for one rule matching an item."""
        return store.NewAlert(self.ids[hit.rule], self.queries[hit.rule], hit.terms, hit.snippet)


@dataclass
class Context:
    """What a poll needs from outside: all side effects are passed in here."""

    settings: Settings
    sessions: sessionmaker[Session]
    fetcher: Fetcher
    processor: Processor
    clock: Clock
    dedup: Deduplicator
    rules: RuleBook
    owner: str  # this worker's identity: polls run under its leases
    rng: random.Random = field(default_factory=random.Random)  # jitter
    # Article fetches in flight, by canonical URL: when two entries (in one feed or in
    # feeds polled together) link to the same article, the page is fetched only once.
    pages: dict[str, asyncio.Future[_PageResult]] = field(default_factory=dict)
    # Pages fetched and not yet extracted (see PAGES_AHEAD_PER_WORKER).
    page_slots: asyncio.Semaphore = field(init=False)
    # One thread runs every poll's reads and its storing transaction, in turn: the event
    # loop goes on fetching meanwhile, and a process never races itself for SQLite's lock.
    store_thread: ThreadPoolExecutor = field(init=False)

    # Outcomes of polls that found nothing to store, recorded together (see record_soon).
    _outcomes: list[tuple[Callable[[Session], bool], asyncio.Future[bool]]] = field(
        init=False, default_factory=list)
    _recorder: asyncio.Task[None] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.page_slots = asyncio.Semaphore(PAGES_AHEAD_PER_WORKER * self.processor.workers)
        self.store_thread = ThreadPoolExecutor(1, thread_name_prefix="store")

    async def record_soon(self, record: Callable[[Session], bool]) -> bool:
        """Run ``record`` (one feed's outcome: an UPDATE) in a transaction shared with the
        other outcomes waiting meanwhile; returns its result. A group commit: the first
        outcome is written at once, and those arriving while it commits go together in
        the next transaction. Raises SQLAlchemyError when that transaction fails."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._outcomes.append((record, done))
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.get_running_loop().create_task(self._record_waiting())
        return await done

    async def _record_waiting(self) -> None:
        while self._outcomes:
            batch, self._outcomes = self._outcomes[:OUTCOMES_PER_TRANSACTION], \
                self._outcomes[OUTCOMES_PER_TRANSACTION:]

            def write(batch: list[tuple[Callable[[Session], bool], asyncio.Future[bool]]]
                      = batch) -> list[bool]:
                with self.sessions.begin() as s:
                    return [record(s) for record, _ in batch]

            try:
                results = await self.in_store_thread(write)
            except Exception as exc:  # every outcome of the batch failed with it
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for (_, done), held in zip(batch, results, strict=True):
                    if not done.done():
                        done.set_result(held)

    async def in_store_thread(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` (database work) in the store thread, with this task's context (the
        feed and URL on log records). A poll cancelled meanwhile does not stop ``fn``:
        a transaction runs to its commit or rollback."""
        run = contextvars.copy_context().run
        return await asyncio.get_running_loop().run_in_executor(self.store_thread, run, fn)

    def close(self) -> None:
        """Wait for the store thread's last transaction, then end it."""
        self.store_thread.shutdown(wait=True)


@dataclass
class FeedReport:
    feed: str
    url: str
    outcome: str  # "parsed" | "not_modified" | "unchanged" | "failed"
    kind: str | None = None  # what failed: timeout, network, http, parse, store …
    next_poll_at: datetime | None = None
    entries: int = 0
    known: int = 0  # entries this feed had already (same GUID): skipped
    new: int = 0
    duplicates: int = 0
    alerts: int = 0
    pages_fetched: int = 0
    page_failures: int = 0
    skipped: int = 0  # entries that could not be stored (logged), the others were
    error: str | None = None
    recorded: bool = True  # False: the outcome could not be written (the database failed)


@dataclass(frozen=True)
class _PageResult:
    page: FetchResult | None
    article: Article | None
    error: str | None
    fetched_at: datetime | None
    status: int | None  # HTTP status, also of a failed fetch when the server answered


@dataclass
class _Candidate:
    entry: FeedEntry
    link_canonical: str | None
    known_as: store.Ref | None = None  # duplicate found before fetching the page
    known_by: str | None = None
    page: FetchResult | None = None
    fetched_here: bool = False  # False when another entry's fetch of the same URL was reused
    page_status: int | None = None
    page_error: str | None = None
    article: Article | None = None
    fetched_at: datetime | None = None


@dataclass
class _Verdict:
    ref: store.Ref | None = None
    method: str | None = None
    similarity: float | None = None


def _global_guid(guid: str) -> bool:
    """GUIDs that mean the same article in any feed (URLs, tag: and urn: URIs)."""
    return guid.startswith(("http://", "https://", "tag:", "urn:"))


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


async def poll_feed(ctx: Context, feed: store.FeedState) -> FeedReport:
    """Poll one feed, which ``ctx.owner`` has claimed, and store its new entries.
    Never raises for a feed's own failures: they are recorded on the feed (with the
    backoff) and returned in the report. Recording the outcome releases the lease."""
    with feed_context(feed.name, feed.effective_url):
        return await _poll(ctx, feed)


def _success(ctx: Context, feed: store.FeedState, now: datetime,
             changed: bool) -> tuple[datetime, int]:
    """When to poll again after a success, and the adaptive interval to keep."""
    plan = cadence.after_success(feed.interval_seconds,
                                 feed.max_interval_seconds or feed.interval_seconds,
                                 feed.poll_interval_seconds, changed)
    return cadence.next_poll_at(now, plan, ctx.settings.poll.jitter, ctx.rng), plan.interval


# A feed moved by a permanent redirect is fetched where it moved to, and its configured
# URL is asked again this often (and after any failure): a move can be undone, or lead
# elsewhere, and one bad answer must not move a feed for ever.
MOVE_RECHECK = timedelta(days=1)


def _poll_url(feed: store.FeedState, now: datetime) -> str:
    """The URL to poll: where the feed moved, unless that move is due to be confirmed."""
    moved, checked = feed.fetch_url, feed.fetch_url_checked_at
    if moved is None or feed.consecutive_failures or checked is None \
            or now - checked >= MOVE_RECHECK:
        return feed.url
    return moved


def _move(feed: store.FeedState, polled: str, res: FetchResult,
          now: datetime) -> store.Move | None:
    """What a successful poll of ``polled`` says of where the feed lives (None: nothing
    new). Recorded with the poll's success only: a redirect to something that is no
    feed moves nothing."""
    if polled == feed.url:  # the configured URL answered: it decides
        moved = res.permanent_redirect
        if moved is None and feed.fetch_url is None:
            return None
        if moved != feed.fetch_url:
            log.warning("feed %r <%s>: %s", feed.name, feed.url,
                        f"moved permanently to <{moved}>; fetching that from now on "
                        f"(the configured URL is asked again every {MOVE_RECHECK.days} day)"
                        if moved else "no longer redirects; fetching it again")
        return store.Move(moved, now if moved else None)
    if res.permanent_redirect and res.permanent_redirect != feed.fetch_url:
        log.warning("feed %r <%s>: moved permanently again, to <%s>", feed.name, polled,
                    res.permanent_redirect)
        return store.Move(res.permanent_redirect, feed.fetch_url_checked_at)
    return None


async def _poll(ctx: Context, feed: store.FeedState) -> FeedReport:
    url = _poll_url(feed, ctx.clock())
    report = FeedReport(feed=feed.name, url=feed.url, outcome="failed")
    log.info("feed %r <%s>: polling", feed.name, url)
    try:
        res = await ctx.fetcher.fetch(
            url, max_bytes=ctx.settings.fetch.max_feed_bytes, accept=FEED_ACCEPT,
            etag=feed.etag, last_modified=feed.last_modified,
            trusted=True,  # the user named this feed in the config; its article links are not
        )
    except FetchError as exc:
        return await _failed(ctx, feed, report, ctx.clock(), exc)
    # The attempt is dated, and the next one scheduled, from when the feed answered: a
    # claimed poll may have queued for the fetcher's limits before its request went out.
    now = ctx.clock()
    move = _move(feed, url, res, now)

    body_hash = hashlib.sha256(res.body).hexdigest()
    if res.not_modified or body_hash == feed.body_hash:
        report.outcome = "not_modified" if res.not_modified else "unchanged"
        report.next_poll_at, interval = _success(ctx, feed, now, changed=False)
        next_poll_at = report.next_poll_at
        held = await ctx.record_soon(lambda s: store.record_feed_success(
            s, feed.id, now=now, status=res.status, next_poll_at=next_poll_at,
            poll_interval=interval, owner=ctx.owner, etag=res.etag,
            last_modified=res.last_modified, move=move))
        _check_held(feed, held)
        log.info("feed %r <%s>: %s; next poll in %s", feed.name, url,
                 "not modified (304)" if res.not_modified else "body unchanged, not parsed",
                 _until(report.next_poll_at, now))
        return report

    try:
        parsed = await ctx.processor.parse_feed(res.body, res.final_url, res.content_type)
    except FeedParseError as exc:
        return await _failed(ctx, feed, report, now, exc, res.status)
    if parsed.warning:
        log.warning("feed %r <%s>: malformed but usable: %s", feed.name, url, parsed.warning)

    report.outcome = "parsed"
    report.entries = len(parsed.entries)
    candidates = await ctx.in_store_thread(lambda: _plan(ctx, feed, parsed, report))
    await asyncio.gather(*(_fetch_article(ctx, feed, c) for c in candidates if c.known_as is None))
    report.pages_fetched = sum(1 for c in candidates if c.fetched_here and c.page is not None)
    report.page_failures = sum(1 for c in candidates if c.page_error is not None)

    def store_all() -> bool:
        prepared = [(c, _prepare(ctx, c)) for c in candidates]
        with ctx.sessions() as s:
            # Another worker may have stored some of these since _plan looked.
            stored_meanwhile = store.known_guids(s, feed.id, (c.entry.guid for c in candidates))
            report.known += len(stored_meanwhile)
            todo = [(c, p) for c, p in prepared if c.entry.guid not in stored_meanwhile]
            batch = _Batch(s, feed, todo)
        for c, p in todo:  # each entry in a transaction of its own
            _store_guarded(ctx, feed, parsed, c, p, batch, report)
        changed = report.new + report.duplicates > 0
        report.next_poll_at, interval = _success(ctx, feed, now, changed)
        with ctx.sessions.begin() as s:
            return store.record_feed_success(
                s, feed.id, now=now, status=res.status, next_poll_at=report.next_poll_at,
                poll_interval=interval, owner=ctx.owner, etag=res.etag,
                last_modified=res.last_modified, changed=changed, body_hash=body_hash,
                title=parsed.title, parse_warning=parsed.warning, parsed=True, move=move,
            )

    try:
        held = await ctx.in_store_thread(store_all)
    except SQLAlchemyError as exc:
        # The feed's outcome was not written: it is parsed again next time, and the
        # entries stored before the failure are known by then.
        raise StoreError(f"feed {feed.name!r} <{url}>: storing entries failed: {exc}") from exc
    _check_held(feed, held)
    log.info("feed %r <%s>: %d entries, %d already seen, %d new, %d duplicates, %d alerts, "
             "%d pages fetched; next poll in %s", feed.name, url, report.entries, report.known,
             report.new, report.duplicates, report.alerts, report.pages_fetched,
             _until(report.next_poll_at, now))
    return report


# A publication date further ahead than this is a feed's mistake (or a trick to stay at
# the top of digests, which sort by date): the item is dated when it was stored instead.
FUTURE_SLACK = timedelta(days=1)


def _plausible(when: datetime | None, now: datetime) -> datetime | None:
    return None if when is not None and when > now + FUTURE_SLACK else when


def _until(when: datetime | None, now: datetime) -> str:
    return f"{(when - now).total_seconds():.0f}s" if when else "?"


def _check_held(feed: store.FeedState, held: bool) -> None:
    if not held:
        log.warning("feed %r <%s>: this worker's lease ran out during the poll and another "
                    "worker took the feed; its schedule is left to that worker", feed.name,
                    feed.effective_url)


async def _failed(ctx: Context, feed: store.FeedState, report: FeedReport, now: datetime,
                  exc: FetchError | FeedParseError, status: int | None = None) -> FeedReport:
    """Record a failed poll, with the backoff (or the wait Retry-After asks for)."""
    report.error, report.kind = str(exc.reason), exc.kind
    retry_after = None
    if isinstance(exc, HTTPStatusError):
        status = exc.status
        retry_after = cadence.retry_after_seconds(exc.retry_after, now)
    return await record_failure(ctx, feed, report, now, status=status, retry_after=retry_after)


async def record_failure(ctx: Context, feed: store.FeedState, report: FeedReport,
                         now: datetime, *, status: int | None = None,
                         retry_after: float | None = None) -> FeedReport:
    """Record ``report.error`` on the feed, schedule the next attempt after the backoff
    (or the longer wait Retry-After asks for), and release the lease. Also for failures
    outside the feed's own (a bug), so such a feed is not retried at once. Written in the
    store thread with other outcomes (see Context.record_soon), never on the event loop.
    Raises SQLAlchemyError."""
    failures = feed.consecutive_failures + 1
    plan = cadence.after_failure(ctx.settings.poll, failures, feed.poll_interval_seconds,
                                 retry_after)
    report.outcome = "failed"
    report.next_poll_at = cadence.next_poll_at(now, plan, ctx.settings.poll.jitter, ctx.rng)
    log.warning("feed %r <%s>: %s (failure %d in a row); next attempt in %s (%s)", feed.name,
                feed.effective_url, report.error, failures, _until(report.next_poll_at, now),
                plan.reason)
    next_poll_at, error = report.next_poll_at, report.error or "failed"
    held = await ctx.record_soon(lambda s: store.record_feed_failure(
        s, feed.id, now=now, status=status, error=error, next_poll_at=next_poll_at,
        owner=ctx.owner))
    _check_held(feed, held)
    return report


def _plan(ctx: Context, feed: store.FeedState, parsed: ParsedFeed,
          report: FeedReport) -> list[_Candidate]:
    """Entries not seen before in this feed, with duplicates-by-GUID and by URL found
    before any fetch (one batch of lookups for the whole feed)."""
    with ctx.sessions() as s:
        seen = store.known_guids(s, feed.id, (e.guid for e in parsed.entries))
        report.known = len(seen)
        candidates: list[_Candidate] = []
        for entry in parsed.entries:
            if entry.guid in seen:
                continue
            seen.add(entry.guid)  # a GUID repeated inside one feed counts once
            candidates.append(_Candidate(entry, canonical_url(entry.link) if entry.link else None))
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


async def _fetch_article(ctx: Context, feed: store.FeedState, c: _Candidate) -> None:
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
        except BaseException as exc:  # cancelled: waiters must not hang
            shared.set_exception(exc)
            raise
        finally:
            del ctx.pages[key]
    result = await asyncio.shield(shared)
    c.page, c.article, c.page_error, c.fetched_at, c.page_status = (
        result.page, result.article, result.error, result.fetched_at, result.status)


async def _fetch_and_extract(ctx: Context, feed: store.FeedState, link: str) -> _PageResult:
    """The page's result, never an exception: anything a stranger's page can do to the
    code below (a bug met on odd input) costs this entry its page, not the feed."""
    async with ctx.page_slots:  # fetch no further ahead of the workers than this
        try:
            return await _fetch_and_extract_now(ctx, feed, link)
        except Exception as exc:
            log.exception("feed %r: article <%s>: unexpected error; using the feed's text",
                          feed.name, link)
            return _PageResult(None, None, f"unexpected error: {exc!r}"[:500], None, None)


async def _fetch_and_extract_now(ctx: Context, feed: store.FeedState,
                                 link: str) -> _PageResult:
    page = fetched_at = None
    try:
        page = await ctx.fetcher.fetch(link, max_bytes=ctx.settings.fetch.max_page_bytes,
                                       accept=PAGE_ACCEPT)
        fetched_at = ctx.clock()
        article = await ctx.processor.extract(page.body, page.final_url)
    except (FetchError, ExtractionError) as exc:
        log.warning("feed %r: article <%s>: %s; using the feed's text", feed.name, link,
                    exc.reason)
        status = exc.status if isinstance(exc, HTTPStatusError) else page.status if page else None
        return _PageResult(page, None, str(exc.reason), fetched_at, status)
    return _PageResult(page, article, None, fetched_at, page.status)


@dataclass(frozen=True)
class _Prepared:
    """A candidate's text and keys, worked out before the storing transaction."""

    text: str
    source: str  # text_source
    canonical: str | None
    norm: Normalized | None  # None for a title alone: too little to call anything a copy
    thash: str | None


def _prepare(ctx: Context, c: _Candidate) -> _Prepared:
    text, source = choose_text(c.entry, c.article, ctx.settings.extract.min_text_chars)
    canonical = c.link_canonical
    if c.page is not None:
        canonical = choose_canonical(c.page.final_url,
                                     c.article.canonical_url if c.article else None)
    norm = normalized(text) if source != "title" else None
    return _Prepared(text, source, canonical, norm, text_hash(norm) if norm else None)


def _exact_verdict(known: store.Known, c: _Candidate, p: _Prepared) -> _Verdict:
    """What ``c`` duplicates by GUID, canonical URL or text hash among ``known``."""
    if _global_guid(c.entry.guid) and c.entry.guid in known.by_guid:
        return _Verdict(known.by_guid[c.entry.guid], "guid")
    if p.canonical and p.canonical in known.by_url:
        return _Verdict(known.by_url[p.canonical], "url")
    if p.thash and p.thash in known.by_hash:
        return _Verdict(known.by_hash[p.thash], "exact", 1.0)
    return _Verdict()


class _DecideAgain(Exception):
    """Another worker changed what this entry's verdict rests on: decide it again."""


class _Batch:
    """The exact-dedup keys of one feed's entries: what the database held when their
    storing began (one batch of lookups), plus what has been stored since. A key found
    here is a duplicate for good; one not found is looked up again under the story's
    locks (another worker may have stored it meanwhile)."""

    def __init__(self, s: Session, feed: store.FeedState,
                 todo: Sequence[tuple[_Candidate, _Prepared]]) -> None:
        self.known = store.lookup_known(
            s, feed.id,
            guids=[c.entry.guid for c, _ in todo if _global_guid(c.entry.guid)],
            urls=[p.canonical for _, p in todo if p.canonical],
            hashes=[p.thash for _, p in todo if p.thash])

    def verdict(self, c: _Candidate, p: _Prepared) -> _Verdict:
        if c.known_as is not None:
            return _Verdict(c.known_as, c.known_by)
        return _exact_verdict(self.known, c, p)

    def stored(self, c: _Candidate, p: _Prepared, ref: store.Ref) -> None:
        """Remember an item stored since (``ref``: it, or its original), so a later
        entry with the same GUID, URL or text is its duplicate. The first holder of a
        key keeps it, as the database lookup would prefer it."""
        known = self.known
        if _global_guid(c.entry.guid):
            known.by_guid.setdefault(c.entry.guid, ref)
        if p.canonical:
            known.by_url.setdefault(p.canonical, ref)
        if p.thash:
            known.by_hash.setdefault(p.thash, ref)


def _store_guarded(ctx: Context, feed: store.FeedState, parsed: ParsedFeed,
                   c: _Candidate, p: _Prepared, batch: _Batch, report: FeedReport) -> None:
    """Store one entry in a transaction of its own: an entry that cannot be stored (a
    value the database refuses, a bug met on odd input) is skipped and logged, and the
    feed's other entries are stored. A failure of the database itself (it went away,
    the disk is full) is raised. A constraint that another worker's commit made this
    entry break (the same story stored at the same moment, the same entry by a worker
    whose lease lapsed) is decided again, once."""
    for attempt in (1, 2):
        try:
            with ctx.sessions.begin() as s:
                stored = _store_candidate(ctx, s, feed, parsed, c, p, batch,
                                          check_guid=attempt > 1)
        except OperationalError:
            raise
        except (IntegrityError, _DecideAgain) as exc:
            if attempt == 1:
                log.info("feed %r: entry <%s>: stored meanwhile by another worker (%s); "
                         "deciding again", feed.name, c.entry.link,
                         db_reason(exc) if isinstance(exc, IntegrityError) else exc)
                continue
            stored = None
            log.exception("feed %r: entry <%s> (guid %r) could not be stored; skipped",
                          feed.name, c.entry.link, c.entry.guid[:200])
            report.skipped += 1
            return
        except Exception:
            report.skipped += 1
            log.exception("feed %r: entry <%s> (guid %r) could not be stored; skipped",
                          feed.name, c.entry.link, c.entry.guid[:200])
            return
        break
    if stored is None:  # this feed's entry, stored by another worker meanwhile
        report.known += 1
        return
    # Counted and remembered only once its transaction holds.
    batch.stored(c, p, stored.ref)
    if stored.new:
        report.new += 1
        report.alerts += stored.alerts
    else:
        report.duplicates += 1


def _story_keys(c: _Candidate, p: _Prepared, fp: Fingerprint | None) -> list[int]:
    """The keys under which another copy of this story could be found: its GUID (when
    global), canonical URL, text hash and near-duplicate band keys. Two entries whose
    verdicts could depend on each other share one, so locking them serializes exactly
    those."""
    keys = [story_key(kind, value) for kind, value in (
        ("guid", c.entry.guid if _global_guid(c.entry.guid) else None),
        ("url", p.canonical), ("hash", p.thash)) if value]
    return keys + list(fp.band_keys if fp is not None else ())


@dataclass(frozen=True)
class _Stored:
    ref: store.Ref  # the item stored, or the original it duplicates
    new: bool
    alerts: int


def _store_candidate(ctx: Context, s: Session, feed: store.FeedState, parsed: ParsedFeed,
                     c: _Candidate, p: _Prepared, batch: _Batch, *,
                     check_guid: bool = False) -> _Stored | None:
    """Decide and store one entry, in the caller's transaction. Returns None when this
    feed has the entry already (``check_guid``: looked for)."""
    entry, article, page = c.entry, c.article, c.page
    text, source, canonical, thash = p.text, p.source, p.canonical, p.thash
    if check_guid and store.known_guids(s, feed.id, [entry.guid]):
        return None
    v = batch.verdict(c, p)
    # Exact and URL copies are not fingerprinted (they add nothing to the index).
    fp = ctx.dedup.fingerprint(p.norm) if v.ref is None and p.norm is not None else None
    if v.ref is None:
        # Not known when the feed's storing began: take the story's locks (another
        # worker storing a copy of it waits for this commit, or this for its), then look
        # again at what is committed.
        store.lock_story_keys(s, _story_keys(c, p, fp))
        v = _exact_verdict(store.lookup_known(
            s, feed.id, guids=[entry.guid] if _global_guid(entry.guid) else [],
            urls=[canonical] if canonical else [], hashes=[thash] if thash else []), c, p)
        if v.ref is not None:
            fp = None
    replaces: store.Ref | None = None  # an original this fuller copy takes over from
    if fp is not None:
        near = ctx.dedup.find(s, fp)
        if near is not None:
            v = _Verdict(near.candidate.original, "near", round(near.scores.similarity, 4))
            log.info("feed %r: entry <%s> near-duplicates %s %s (jaccard %.2f, containment "
                     "%.2f)", feed.name, entry.link, near.candidate.ref.kind,
                     near.candidate.ref.seed or near.candidate.ref.id, near.scores.jaccard,
                     near.scores.containment)
            original = near.candidate.original
            if original.kind == "item" and near.candidate.ref == original \
                    and is_fuller(fp, near, ctx.dedup.thresholds):
                if not store.lock_original(s, original.id):
                    raise _DecideAgain(f"item {original.id} stopped being an original")
                replaces, v = original, _Verdict()
    use_page = source == "page" and article is not None
    title = entry.title or (article.title if article else None)
    now = ctx.clock()
    item_id = store.add_item(s, store.NewItem(
        feed_id=feed.id,
        guid=entry.guid,
        url=entry.link,
        final_url=page.final_url if page else None,
        canonical_url=canonical,
        title=title,
        author=entry.author or (article.author if article else None),
        published_at=(_plausible(entry.published_at, now)
                      or _plausible(article.published_at if article else None, now)),
        fetched_at=c.fetched_at,
        language=(article.language if use_page and article else None) or parsed.language,
        site_name=article.site_name if article else None,
        text=text,
        text_source=source,
        text_hash=thash,
        page_status=c.page_status,
        page_error=c.page_error,
        duplicate_of=v.ref,
        dedup_method=v.method,
        similarity=v.similarity,
    ), now)
    if fp is not None:
        ctx.dedup.index_item(s, item_id, fp)
    if v.ref is not None:
        log.info("feed %r: entry <%s> duplicates %s %s (by %s)", feed.name, entry.link,
                 v.ref.kind, v.ref.seed or v.ref.id, v.method)
        return _Stored(v.ref, new=False, alerts=0)
    # Only originals alert: a copy of a seed or of a stored item never does.
    alerts = 0
    hits = ctx.rules.matcher.match(title, text)
    if replaces is not None:
        assert v.similarity is None and near is not None
        store.promote(s, replaces.id, item_id, round(near.scores.similarity, 4))
        # A rule that alerted for the story already does not again.
        done = store.rules_alerted(s, item_id)
        hits = [h for h in hits if ctx.rules.ids[h.rule] not in done]
        log.info("feed %r: entry <%s> is a fuller copy of item %d and becomes the "
                 "story's original", feed.name, entry.link, replaces.id)
    if hits:
        alerts = store.add_alerts(s, item_id, [ctx.rules.alert(h) for h in hits], now)
        log.info("feed %r: entry <%s> matched rules %s", feed.name, entry.link,
                 ", ".join(repr(h.rule) for h in hits))
    return _Stored(store.Ref("item", item_id, canonical or entry.link), new=True, alerts=alerts)
