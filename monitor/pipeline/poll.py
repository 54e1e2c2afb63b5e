"""One feed's poll, end to end. Owns the transaction boundaries.

    fetch feed (conditional GET; where a permanent move leads, asked again daily)
    -> unchanged? record and stop
    -> parse (worker process) -> drop GUIDs this feed already has
    -> entries whose URL or GUID is already known: duplicates, page not fetched
    -> the others recorded in `entries` (so a shutdown or a crash loses none), and
       claimed a batch at a time (other workers may claim some: each is worked on by
       one worker)
    -> each, concurrently (monitor.pipeline.entries): page fetched, extracted (worker
       processes), then at once in a transaction of its own: the story's keys locked,
       exact dedup (guid, url, text hash) and near dedup (LSH band keys, verified)
       looked up, insert + band keys + alerts of the rules a new item matches; or, when
       the page failed for a reason that may pass, kept waiting for a retry
    -> the feed's outcome (validators, body hash, schedule), which releases its lease
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from monitor import store
from monitor.db import reason as db_reason
from monitor.errors import (
    FeedParseError,
    FetchError,
    HTTPStatusError,
    StoreError,
)
from monitor.ingest import cadence
from monitor.ingest.feeds import ParsedFeed
from monitor.ingest.fetcher import FEED_ACCEPT, FetchResult
from monitor.logs import feed_context
from monitor.pipeline.context import (
    Context,
    FeedReport,
)
from monitor.pipeline.entries import found, plan, work_through

log = logging.getLogger(__name__)


async def poll_feed(ctx: Context, feed: store.FeedState) -> FeedReport:
    """Poll one feed, which ``ctx.owner`` has claimed, and store its new entries; the
    outcome is recorded on the feed (with the backoff after a failure), which releases
    the lease, and returned. Never raises an Exception: a failure outside the feed's
    own (the database, a bug) is recorded as a failure of the feed too, and when even
    that cannot be written (the database is down) the report says so (``recorded`` is
    False) and the feed stays claimed, for the caller to give back."""
    with feed_context(feed.name, feed.effective_url):
        try:
            return await _poll(ctx, feed)
        except (StoreError, SQLAlchemyError) as exc:
            cause = exc if isinstance(exc, SQLAlchemyError) else exc.__cause__
            error = f"database: {db_reason(cause)}" if isinstance(cause, SQLAlchemyError) \
                else str(exc)
            log.error("feed %r <%s>: the poll could not be stored: %s", feed.name,
                      feed.effective_url, error)
            report = FeedReport(feed=feed.name, url=feed.url, outcome="failed", kind="store",
                                error=error)
        except Exception as exc:
            log.exception("feed %r <%s>: poll failed unexpectedly", feed.name,
                          feed.effective_url)
            report = FeedReport(feed=feed.name, url=feed.url, outcome="failed", kind="error",
                                error=f"unexpected error: {exc!r}")
        try:
            return await record_failure(ctx, feed, report, ctx.clock())
        except SQLAlchemyError as db_exc:
            log.error("feed %r: recording the failure failed: %s; it is polled again once "
                      "the database answers", feed.name, db_reason(db_exc))
            report.recorded = False
            return report


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
    unchanged = res.not_modified or body_hash == feed.body_hash
    retries_due = feed.entries_retry_at is not None and feed.entries_retry_at <= now
    if unchanged and not retries_due:
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

    parsed: ParsedFeed | None = None
    if unchanged:  # only the entries waiting for a page retry have work to do
        report.outcome = "not_modified" if res.not_modified else "unchanged"
    else:
        try:
            parsed = await ctx.processor.parse_feed(res.body, res.final_url, res.content_type)
        except FeedParseError as exc:
            return await _failed(ctx, feed, report, now, exc, res.status)
        if parsed.warning:
            log.warning("feed %r <%s>: malformed but usable: %s", feed.name, url,
                        parsed.warning)
        report.outcome = "parsed"
        report.entries = len(parsed.entries)
    try:
        candidates = await ctx.in_store_thread(lambda: plan(ctx, feed, parsed, now, report))
        fresh = await ctx.in_store_thread(lambda: found(ctx, feed, candidates, now))
        # Each entry is fetched, extracted and stored on its own, as soon as it can be,
        # by whichever worker claims it.
        await work_through(ctx, feed, candidates, report)
    except* SQLAlchemyError as group:
        # What was stored stays stored; the entries not yet stored are recorded and
        # worked on at the feed's next poll.
        first = group.exceptions[0]
        raise StoreError(f"feed {feed.name!r} <{url}>: storing entries failed: "
                         f"{db_reason(first) if isinstance(first, SQLAlchemyError) else first}"
                         ) from first

    def finish() -> bool:
        changed = fresh + report.new + report.duplicates > 0
        report.next_poll_at, interval = _success(ctx, feed, now, changed)
        with ctx.sessions.begin() as s:
            # A retry falls due without a poll of the feed: a worker's dispatcher claims
            # the entry then (and `run --once` takes the feed's due ones, as it polls).
            if candidates or feed.entries_retry_at:
                store.schedule_entry_retries(s, feed.id)
            return store.record_feed_success(
                s, feed.id, now=now, status=res.status, next_poll_at=report.next_poll_at,
                poll_interval=interval, owner=ctx.owner, etag=res.etag,
                last_modified=res.last_modified, changed=changed, body_hash=body_hash,
                title=parsed.title if parsed else None,
                parse_warning=parsed.warning if parsed else None, parsed=parsed is not None,
                move=move)

    try:
        held = await ctx.in_store_thread(finish)
    except SQLAlchemyError as exc:
        # The feed's outcome was not written: it is parsed again next time, and the
        # entries stored before the failure are known by then.
        raise StoreError(f"feed {feed.name!r} <{url}>: recording the poll failed: {exc}") from exc
    _check_held(feed, held)
    log.info("feed %r <%s>: %d entries, %d already seen, %d new, %d duplicates, %d alerts, "
             "%d pages fetched, %d waiting for a page retry; next poll in %s", feed.name, url,
             report.entries, report.known, report.new, report.duplicates, report.alerts,
             report.pages_fetched, report.waiting, _until(report.next_poll_at, now))
    return report


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
