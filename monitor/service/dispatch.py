"""The dispatcher: claims due feeds (row leases; see :mod:`monitor.store.feeds`) and polls
each in a task of its own.

It keeps up to 2 x ``[fetch] concurrency`` polls in flight (the fetcher's limits hold
the requests), claims at least ``concurrency`` feeds at a time while polls are
running, and sleeps until the next feed falls due, a poll ends, or 5 s pass (another
worker's lease may lapse, the database may come back).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from monitor import db, store
from monitor.pipeline.context import Context
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
        self.stopping = False
        self.last_dispatch: float | None = None  # monotonic time of the last good claim
        self.db_problem: str | None = None  # why the last claim failed
        self._stranded: set[int] = set()  # feeds whose poll ended unrecorded, still leased
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
            elif next_due is not None and len(self.polls) < self.window():
                # Due, unclaimed, yet not ours with slots free: another worker's claim held
                # those rows (SKIP LOCKED). If that worker dies mid-claim its claim is rolled
                # back, so look again soon rather than at the idle tick. (With every slot
                # taken, a poll's end wakes us: waking sooner would only spin.)
                pause = DISPATCH_RECHECK_SECONDS
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)

    async def _claim_once(self) -> datetime | None:
        """One claim. Returns when the next unclaimed feed falls due."""
        async with self._claiming:
            if self.stopping:
                return None
            room = self.window() - len(self.polls)
            if self.polls and room < self.ctx.settings.fetch.concurrency:
                # Wait for a bigger claim: one claim per finished poll cost a transaction
                # per feed. A poll's end wakes us again.
                return None
            try:
                stranded = frozenset(self._stranded)
                claimed, next_due = await asyncio.to_thread(self._claim, max(room, 0), stranded)
            except SQLAlchemyError as exc:
                self.db_problem = f"database: {db.reason(exc)}"
                log.error("claiming due feeds failed: %s; trying again in %ss",
                          db.reason(exc), DISPATCH_IDLE_SECONDS)
                return None
            self.db_problem = None
            self._stranded -= stranded
            self.last_dispatch = time.monotonic()
            for feed in claimed:
                self.polls[feed.id] = asyncio.create_task(self._poll(feed),
                                                          name=f"poll {feed.name}")
            self.metrics.in_flight.set(len(self.polls))
            return next_due

    def _claim(self, room: int, stranded: frozenset[int]
               ) -> tuple[list[store.FeedState], datetime | None]:
        ctx = self.ctx
        now = ctx.clock()
        with ctx.sessions.begin() as s:
            # Given back due, so this very claim may take them again.
            released = store.release_feed_leases(s, ctx.owner, stranded) if stranded else 0
            claimed = []
            if room > 0:
                claimed = store.claim_feeds(
                    s, ctx.owner, now, now + timedelta(seconds=ctx.settings.daemon.lease), room)
            next_due = store.next_due_at(s, now)
        if released:
            log.info("%d feeds whose last poll could not be stored are due again", released)
        return claimed, next_due

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
            self.metrics.in_flight.set(len(self.polls))
        if not report.recorded:
            # Still leased to us, and the heartbeat would renew that lease for as long as
            # we live: give it back at the next claim, when the database answers again.
            self._stranded.add(feed.id)
        self.metrics.poll(report, time.monotonic() - started)
        self.wake()  # room for another due feed
