"""The dispatcher: claims due feeds (row leases; see :mod:`monitor.store.feeds`) and polls
each in a task of its own; and claims due entries of any feed (recorded by any worker's
poll, or waiting for a page retry; see :mod:`monitor.store.entries`) and works on each.

It keeps up to 2 x ``[fetch] concurrency`` polls in flight (the fetcher's limits hold
the requests), claims at least ``concurrency`` feeds at a time while polls are
running, holds up to ``CLAIM_PER_WORKER`` entries per extraction process (with its
polls' own, see :meth:`Context.entry_room`), and sleeps until the next feed or entry falls due, a poll or
an entry ends, or 5 s pass (another worker's lease may lapse or its poll record
entries, the database may come back).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from monitor import db, store
from monitor.logs import feed_context
from monitor.pipeline.context import Context, FeedReport
from monitor.pipeline.entries import Candidate, candidate_of, work_on
from monitor.pipeline.poll import poll_feed
from monitor.service.metrics import Metrics

log = logging.getLogger(__name__)

# The longest the dispatcher sleeps: how soon it notices another worker's lapsed
# lease or a database that came back.
DISPATCH_IDLE_SECONDS = 5.0
CLAIM_AHEAD = 2  # polls in flight per [fetch] concurrency slot (see Dispatcher.window)
DISPATCH_RECHECK_SECONDS = 1.0  # due feeds another worker was claiming


class Dispatcher:
    """Claims due feeds for ``ctx.owner`` and runs their polls. ``ctx.settings`` is read
    at every claim, so a reloaded config applies at once."""

    def __init__(self, ctx: Context, metrics: Metrics) -> None:
        self.ctx = ctx
        self.metrics = metrics
        self.polls: dict[int, asyncio.Task[None]] = {}
        self.entries: dict[tuple[int, str], asyncio.Task[None]] = {}  # claimed here
        self.stopping = False
        self.last_dispatch: float | None = None  # monotonic time of the last good claim
        # The last time a poll or an entry this worker runs ended (monotonic), or a claim
        # gave it work: with the fetcher's and the workers', how /healthz tells busy
        # from stuck.
        self.last_progress: float | None = None
        self.db_problem: str | None = None  # why the last claim failed
        self._stranded: set[int] = set()  # feeds whose poll ended unrecorded, still leased
        self._stranded_entries: set[tuple[int, str]] = set()  # the same, of entries
        self._entries_checked = float("-inf")  # monotonic time entries were last looked for
        self._next_entry_due: datetime | None = None  # what that look said
        self._claiming = asyncio.Lock()
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for due feeds now (a poll ended, the config changed)."""
        self._wake.set()

    async def stop(self) -> None:
        """Claim nothing more; returns once no claim is half-made."""
        async with self._claiming:
            self.stopping = True
        self.wake()

    def window(self) -> int:
        """Polls this worker keeps in flight: twice the requests it may have in flight,
        so the fetcher always has the next feeds queued while claims are made."""
        return CLAIM_AHEAD * self.ctx.settings.fetch.concurrency

    async def run(self) -> None:
        """Claim due feeds and start their polls; sleep until the next one falls due, a
        poll ends (room for another), or DISPATCH_IDLE_SECONDS pass. A wake-up during a
        claim is never lost: the event is cleared before the claim, so the sleep after
        it returns at once. Returns when stopped."""
        while not self.stopping:
            self._wake.clear()
            try:
                next_due = await self._claim_once()
            except Exception:  # a bug must not end dispatching silently
                log.exception("dispatching failed; trying again in %ss", DISPATCH_IDLE_SECONDS)
                next_due = None
            pause = DISPATCH_IDLE_SECONDS
            now = self.ctx.clock()
            if next_due is not None and next_due > now:
                pause = min(pause, (next_due - now).total_seconds())
            elif next_due is not None and (len(self.polls) < self.window()
                                           or self.ctx.entry_room()):
                # Due, unclaimed, yet not ours with slots free: another worker's claim held
                # those rows (SKIP LOCKED). If that worker dies mid-claim its claim is rolled
                # back, so look again soon rather than at the idle tick. (With every slot
                # taken, a poll's end wakes us: waking sooner would only spin.)
                pause = DISPATCH_RECHECK_SECONDS
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)

    async def _claim_once(self) -> datetime | None:
        """One claim of feeds and entries. Returns when the next unclaimed one falls
        due."""
        async with self._claiming:
            if self.stopping:
                return None
            room = self.window() - len(self.polls)
            if self.polls and room < self.ctx.settings.fetch.concurrency:
                # Wait for a bigger claim: one claim per finished poll cost a transaction
                # per feed. A poll's end wakes us again.
                room = 0
            # Entries are looked for when one is known to be due, and at least every
            # DISPATCH_IDLE_SECONDS (another worker's poll may have recorded some): not
            # at every poll's end, which would cost a transaction per feed.
            now = self.ctx.clock()
            look = (self._next_entry_due is not None and self._next_entry_due <= now) \
                or time.monotonic() - self._entries_checked >= DISPATCH_IDLE_SECONDS
            entry_room = self.ctx.entry_room() if look else 0  # shared with its polls
            if not room and not entry_room:
                return self._next_entry_due
            try:
                stranded = frozenset(self._stranded)
                stranded_entries = frozenset(self._stranded_entries)
                claimed, entries, next_due, next_entry_due = await asyncio.to_thread(
                    self._claim, max(room, 0), max(entry_room, 0), stranded, stranded_entries)
            except SQLAlchemyError as exc:
                self.db_problem = f"database: {db.reason(exc)}"
                log.error("claiming due feeds failed: %s; trying again in %ss",
                          db.reason(exc), DISPATCH_IDLE_SECONDS)
                return None
            self.db_problem = None
            self._stranded -= stranded
            self._stranded_entries -= stranded_entries
            self.last_dispatch = time.monotonic()
            if claimed or entries:
                self.last_progress = self.last_dispatch
            if entry_room:
                self._entries_checked, self._next_entry_due = self.last_dispatch, next_entry_due
            for feed in claimed:
                self.polls[feed.id] = asyncio.create_task(self._poll(feed),
                                                          name=f"poll {feed.name}")
            self.ctx.hold_entries(len(entries))
            for feed, c in entries:
                key = (feed.id, c.entry.guid)
                self.entries[key] = asyncio.create_task(self._work_on(feed, c),
                                                        name=f"entry {feed.name}")
            self.metrics.in_flight.set(len(self.polls))
            return min((t for t in (next_due, self._next_entry_due) if t is not None),
                       default=None)

    def _claim(self, room: int, entry_room: int, stranded: frozenset[int],
               stranded_entries: frozenset[tuple[int, str]]
               ) -> tuple[list[store.FeedState], list[tuple[store.FeedState, Candidate]],
                          datetime | None, datetime | None]:
        """Claim up to ``room`` feeds and ``entry_room`` entries; returns them, and when
        the next unclaimed feed and (when entries were looked for) entry fall due."""
        ctx = self.ctx
        now = ctx.clock()
        lease_until = now + timedelta(seconds=ctx.settings.daemon.lease)
        with ctx.sessions.begin() as s:
            # Given back due, so this very claim may take them again.
            released = store.release_feed_leases(s, ctx.owner, stranded) if stranded else 0
            if stranded_entries:
                store.release_entry_leases(s, ctx.owner, stranded_entries)
            claimed = store.claim_feeds(s, ctx.owner, now, lease_until, room) if room else []
            rows = store.claim_entries(s, ctx.owner, now, lease_until, entry_room) \
                if entry_room else []
            feeds = store.feed_states(s, (feed_id for feed_id, _ in rows)) if rows else {}
            next_due = store.next_due_at(s, now)
            next_entry_due = store.next_entry_due_at(s, now) if entry_room else None
        if released:
            log.info("%d feeds whose last poll could not be stored are due again", released)
        entries = [(feeds[feed_id], candidate_of(w)) for feed_id, w in rows if feed_id in feeds]
        if entries:
            log.info("claimed %d entries of %s (found by a poll, or due to try their page "
                     "again)", len(entries), ", ".join(sorted({repr(f.name) for f, _ in entries})))
        return claimed, entries, next_due, next_entry_due

    async def _work_on(self, feed: store.FeedState, c: Candidate) -> None:
        """An entry this worker claimed, found by any worker's poll of its feed (or
        waiting for its page's retry): worked on as the poll would, counted here."""
        report = FeedReport(feed=feed.name, url=feed.url, outcome="entries")
        key = (feed.id, c.entry.guid)
        try:
            with feed_context(feed.name, feed.effective_url):
                await work_on(self.ctx, feed, c, report)
        except SQLAlchemyError as exc:
            # Still leased to us: given back at the next claim, when the database answers.
            self._stranded_entries.add(key)
            log.error("feed %r: entry <%s>: storing failed: %s; it is tried again",
                      feed.name, c.entry.link, db.reason(exc))
        except Exception:
            # A bug (work_on raises nothing else): not given back, which would have it
            # claimed and fail again at once; it waits, leased, for this worker to stop.
            log.exception("feed %r: entry <%s>: unexpected error; left until this worker "
                          "stops", feed.name, c.entry.link)
        finally:
            self.entries.pop(key, None)
            self.last_progress = time.monotonic()
            self.ctx.entry_done()
            self.wake()  # room for another
        self.metrics.entries_worked(report)

    async def _poll(self, feed: store.FeedState) -> None:
        started = time.monotonic()
        try:
            report = await poll_feed(self.ctx, feed)
        except BaseException as exc:
            # Cancelled at shutdown (every claim is released then), or something no poll
            # should raise: its outcome is not recorded, and the heartbeat would renew
            # the feed's lease for as long as this worker lives. Give it back at the
            # next claim.
            if not self.stopping:
                self._stranded.add(feed.id)
                log.error("feed %r <%s>: the poll ended in %r; the feed is given back",
                          feed.name, feed.effective_url, exc)
                self.wake()
            raise
        finally:
            self.polls.pop(feed.id, None)
            self.last_progress = time.monotonic()
            self.metrics.in_flight.set(len(self.polls))
        if not report.recorded:
            # Still leased to us, and the heartbeat would renew that lease for as long as
            # we live: give it back at the next claim, when the database answers again.
            self._stranded.add(feed.id)
        self.metrics.poll(report, time.monotonic() - started)
        self.wake()  # room for another due feed
