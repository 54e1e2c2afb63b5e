"""The daemon: start-up, ``run --once``, and ``run`` as a long-lived service.

Start-up (:func:`prepare`) upgrades the schema (idempotent; on PostgreSQL behind
an advisory lock), syncs feeds and rules from the config, loads the seeds and
brings the near-duplicate index up to date.

``run --once`` claims every enabled feed, polls them all once and returns.

``run`` (:class:`Daemon`) runs on one event loop:

    dispatch    a loop that claims due feeds (row leases; see monitor.store.feeds)
                up to 2 x [fetch] concurrency in flight (the fetcher's limits hold
                the requests), in claims of at least half that many while polls
                are running, and polls each in its own task;
                it sleeps until the next feed falls due, a poll ends, or 5 s pass

and an APScheduler 3.x ``AsyncIOScheduler`` with the timed jobs:

    digests     compose on the [digest] schedule, and every minute send what is
                pending (retries; a missed slot is caught up)
    heartbeat   renew this worker's leases, so that only a dead worker's lapse
    config      look at the config file every [daemon] config_check (and on
                SIGHUP); a valid change applies without a restart
    observe     read the backlog for /metrics

Several daemons may share one PostgreSQL database: each feed and each digest is
claimed by one of them at a time. The feed queue is the database, not an
APScheduler job store: APScheduler 3.x documents that a job store shared by
several schedulers runs jobs twice or misses them, and a feed's next poll time
must survive restarts and be visible to every worker anyway. SIGTERM or SIGINT stops dispatching, gives
in-flight polls and digest sends up to [daemon] shutdown_timeout to finish,
cancels the rest (a cancelled poll writes nothing) and releases every claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor import __version__, db, logs, store
from monitor.clock import Clock, utcnow
from monitor.config import Settings, load_settings, split_listen
from monitor.dedup.index import Deduplicator, load_seeds
from monitor.digest import delivery
from monitor.digest.mailer import Mailer, SmtpMailer
from monitor.digest.schedule import CronSchedule, ScheduleTrigger
from monitor.errors import ConfigError, StoreError
from monitor.identity import worker_id
from monitor.ingest.extract_pool import Processor
from monitor.ingest.fetcher import Fetcher
from monitor.pipeline.poll import (
    Context,
    FeedReport,
    RuleBook,
    poll_feed,
    record_failure,
)
from monitor.service import reload
from monitor.service.endpoints import Endpoints, Health
from monitor.service.metrics import Metrics

log = logging.getLogger(__name__)

T = TypeVar("T")

# The longest the dispatcher sleeps: how soon it notices another worker's lapsed
# lease or a database that came back.
DISPATCH_IDLE_SECONDS = 5.0
CLAIM_AHEAD = 2  # polls in flight per [fetch] concurrency slot (see Daemon._window)
DISPATCH_RECHECK_SECONDS = 1.0  # due feeds another worker was claiming
# How often pending digests are retried and a missed slot is caught up.
DIGEST_CHECK_SECONDS = 60.0
OBSERVE_SECONDS = 10.0
# /healthz fails when the dispatcher has not reached the database for this long.
HEALTHY_WITHIN_SECONDS = 30.0


@dataclass
class RunSummary:
    reports: list[FeedReport] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for r in self.reports if r.outcome == outcome)

    def total(self, attr: str) -> int:
        return sum(int(getattr(r, attr)) for r in self.reports)

    def render(self) -> str:
        lines = [
            f"polled {len(self.reports)} feeds: {self.count('parsed')} parsed, "
            f"{self.count('not_modified')} not modified, {self.count('unchanged')} unchanged, "
            f"{self.count('failed')} failed",
            f"entries: {self.total('entries')} seen, {self.total('known')} already stored, "
            f"{self.total('new')} new, {self.total('duplicates')} duplicates, "
            f"{self.total('alerts')} alerts"
            + (f", {self.total('skipped')} could not be stored (see the log)"
               if self.total("skipped") else "") + "; "
            f"pages: {self.total('pages_fetched')} fetched, {self.total('page_failures')} failed",
        ]
        lines += [f"  failed: {r.feed} <{r.url}>: {r.error}" for r in self.reports if r.error]
        return "\n".join(lines)


def prepare(settings: Settings, engine: Engine, clock: Clock = utcnow) -> None:
    """Schema upgrade, config sync and seed load; on SQLite, the claims of a process
    that died are given back. Run while holding :func:`monitor.db.hold_sqlite_lock`.
    Raises StoreError, SeedError."""
    db.upgrade(engine)
    if engine.dialect.name == "sqlite":
        _release_dead_claims(db.session_factory(engine))
    sync_config(db.session_factory(engine), settings, clock())
    load_seeds(db.session_factory(engine), settings, Deduplicator.from_settings(settings),
               clock())


def _release_dead_claims(sessions: sessionmaker[Session]) -> None:
    """On SQLite one daemon holds the database file's lock, so a feed still claimed at
    start was claimed by a process that died (``kill -9``, a power cut): polling it
    need not wait for its lease to lapse."""
    try:
        with sessions.begin() as s:
            released = store.release_every_feed_lease(s)
    except SQLAlchemyError as exc:
        raise StoreError(f"releasing the claims of a stopped process failed: "
                         f"{db.reason(exc)}") from exc
    if released:
        log.info("%d feeds were still claimed by a monitor process that is no longer "
                 "running; they are polled now", released)


def sync_config(sessions: sessionmaker[Session], settings: Settings,
                now: datetime) -> tuple[store.SyncResult, RuleBook]:
    """Store the config's feeds and rules; returns what changed among the feeds and the
    rules compiled with their ids. Raises StoreError."""
    try:
        with sessions.begin() as s:
            result = store.sync_feeds(s, settings.feeds, now)
            store.sync_rules(s, settings.rules, now)
            ids = store.rule_ids(s, [r.name for r in settings.rules])
    except SQLAlchemyError as exc:
        raise StoreError(f"syncing feeds and rules from the config failed: "
                         f"{db.reason(exc)}") from exc
    return result, RuleBook.build(settings.rules, ids)


async def run(
    settings: Settings,
    engine: Engine,
    *,
    once: bool,
    clock: Clock = utcnow,
    stop: asyncio.Event | None = None,
    install_signal_handlers: bool = True,
    mailer: Mailer | None = None,
    listen: str | None = None,
) -> RunSummary:
    """Poll every enabled feed once (``once``), or serve until ``stop`` is set
    (SIGINT/SIGTERM set it). ``listen`` overrides ``[daemon] listen``.
    Raises ConfigError (an SMTP password missing, an address that cannot be bound)."""
    if once:
        return await _run_once(settings, engine, clock)
    daemon = Daemon(settings, engine, clock=clock,
                    mailer=mailer or SmtpMailer(settings.smtp, str(settings.path)),
                    listen=settings.daemon.listen if listen is None else listen)
    await daemon.serve(stop or asyncio.Event(), install_signal_handlers)
    return RunSummary()


async def _run_once(settings: Settings, engine: Engine, clock: Clock) -> RunSummary:
    sessions = db.session_factory(engine)
    owner = worker_id("once")
    lease = timedelta(seconds=settings.daemon.lease)
    _, rules = sync_config(sessions, settings, clock())
    now = clock()
    try:
        with sessions.begin() as s:
            feeds = store.claim_feeds(s, owner, now, now + lease, limit=1_000_000,
                                      everything=True)
    except SQLAlchemyError as exc:
        raise StoreError(f"claiming feeds failed: {db.reason(exc)}") from exc
    skipped = len(settings.feeds) - len(feeds)
    if skipped > 0:
        log.info("%d feeds are disabled or being polled by a running daemon: not polled now",
                 skipped)
    processor = Processor(settings.extract.workers, settings.extract.worker_max_tasks,
                          settings.extract.timeout)
    renewing = asyncio.create_task(_renew_forever(sessions, owner, settings, clock))
    try:
        async with Fetcher(settings.fetch) as fetcher:
            ctx = Context(settings, sessions, fetcher, processor, clock,
                          Deduplicator.from_settings(settings), rules, owner)
            try:
                results = await asyncio.gather(*(_guarded_poll(ctx, f) for f in feeds))
            finally:
                ctx.close()
    finally:
        renewing.cancel()
        processor.close()
        _release(sessions, owner)
    return RunSummary(list(results))


async def _renew_forever(sessions: sessionmaker[Session], owner: str, settings: Settings,
                         clock: Clock) -> None:
    while True:
        await asyncio.sleep(settings.daemon.lease / 4)
        await asyncio.to_thread(_renew, sessions, owner, settings, clock())


def _renew(sessions: sessionmaker[Session], owner: str, settings: Settings,
           now: datetime) -> None:
    until = now + timedelta(seconds=settings.daemon.lease)
    try:
        with sessions.begin() as s:
            store.renew_leases(s, owner, until)
            store.heartbeat(s, owner, now)
    except SQLAlchemyError as exc:
        log.error("renewing this worker's leases failed: %s", db.reason(exc))


def _release(sessions: sessionmaker[Session], owner: str) -> None:
    try:
        with sessions.begin() as s:
            feeds, digests = store.release_leases(s, owner)
    except SQLAlchemyError as exc:
        log.error("releasing this worker's claims failed (they lapse by themselves): %s",
                  db.reason(exc))
        return
    if feeds or digests:
        log.info("released %d feeds and %d digests not finished", feeds, digests)


async def _guarded_poll(ctx: Context, feed: store.FeedState) -> FeedReport:
    """poll_feed, with a failure outside the feed's own (the database, a bug) turned
    into a failed report and the feed put back with a backoff. When even that cannot be
    written (the database is down), the report says so (``recorded`` is False) and the
    feed stays claimed: the daemon gives it back, due, at its next claim."""
    try:
        return await poll_feed(ctx, feed)
    except (StoreError, SQLAlchemyError) as exc:
        cause = exc if isinstance(exc, SQLAlchemyError) else exc.__cause__
        error = f"database: {db.reason(cause)}" if isinstance(cause, SQLAlchemyError) \
            else str(exc)
        log.error("feed %r <%s>: the poll could not be stored: %s", feed.name,
                  feed.effective_url, error)
        report = FeedReport(feed=feed.name, url=feed.url, outcome="failed", kind="store",
                            error=error)
    except Exception as exc:
        log.exception("feed %r <%s>: poll failed unexpectedly", feed.name, feed.effective_url)
        report = FeedReport(feed=feed.name, url=feed.url, outcome="failed", kind="error",
                            error=f"unexpected error: {exc!r}")
    try:
        return await record_failure(ctx, feed, report, ctx.clock())
    except SQLAlchemyError as db_exc:
        log.error("feed %r: recording the failure failed: %s; it is polled again once the "
                  "database answers", feed.name, db.reason(db_exc))
        report.recorded = False
        return report


class Daemon:
    """``monitor run``: one worker. See the module docstring for its jobs."""

    def __init__(self, settings: Settings, engine: Engine, *, clock: Clock,
                 mailer: Mailer,
                 listen: str) -> None:
        self.settings = settings
        self.engine = engine
        self.sessions = db.session_factory(engine)
        self.clock = clock
        self.mailer = mailer
        self._own_mailer = isinstance(mailer, SmtpMailer)  # rebuilt when [smtp] changes
        self.listen = listen
        self.owner = worker_id()
        self.metrics = Metrics()
        self.polls: dict[int, asyncio.Task[None]] = {}
        self._stranded: set[int] = set()  # feeds whose poll ended unrecorded, still leased
        self.background: set[asyncio.Future[Any]] = set()  # digest rounds in flight
        self.stopping = False
        self._dispatching = asyncio.Lock()
        self._wake = asyncio.Event()
        self._config_stamp = reload.fingerprint(settings.path)
        self._reload_forced = False
        self._last_dispatch: float | None = None  # monotonic time of the last good one
        self._db_problem: str | None = None
        self._scheduler: AsyncIOScheduler | None = None
        self._ctx: Context | None = None

    @property
    def ctx(self) -> Context:
        assert self._ctx is not None, "the daemon is not serving"
        return self._ctx

    # --- life cycle --------------------------------------------------------------------

    async def serve(self, stop: asyncio.Event, install_signal_handlers: bool = True) -> None:
        _, rules = await asyncio.to_thread(sync_config, self.sessions, self.settings,
                                           self.clock())
        await asyncio.to_thread(self._register)
        endpoints = await self._start_endpoints()
        processor = Processor(self.settings.extract.workers,
                              self.settings.extract.worker_max_tasks,
                              self.settings.extract.timeout)
        try:
            async with Fetcher(self.settings.fetch) as fetcher:
                self._ctx = Context(self.settings, self.sessions, fetcher, processor,
                                    self.clock, Deduplicator.from_settings(self.settings),
                                    rules, self.owner)
                self._scheduler = self._start_scheduler()
                dispatcher = asyncio.create_task(self._dispatch_loop(), name="dispatch")
                if install_signal_handlers:
                    self._install_signal_handlers(stop)
                log.info("worker %s: %d feeds, %d rules; stop with SIGINT or SIGTERM, "
                         "reload the config with SIGHUP", self.owner, len(self.settings.feeds),
                         len(self.settings.rules))
                await stop.wait()
                await self._shut_down(dispatcher)
        finally:
            processor.close()
            if endpoints is not None:
                await endpoints.close()
            await asyncio.to_thread(self._unregister)
        log.info("stopped")

    async def _start_endpoints(self) -> Endpoints | None:
        if not self.listen:
            return None
        host, port = split_listen(self.listen)
        endpoints = Endpoints(host, port, self.health, self.metrics.exposition)
        try:
            await endpoints.start()
        except OSError as exc:
            raise ConfigError(str(self.settings.path), "daemon.listen",
                              f"cannot listen on {self.listen}: {exc.strerror or exc}; "
                              "choose another address, or \"\" for none") from exc
        log.info("serving %s/healthz and %s/metrics", endpoints.url, endpoints.url)
        return endpoints

    def _start_scheduler(self) -> AsyncIOScheduler:
        sched = AsyncIOScheduler(timezone=UTC)
        now = datetime.now(UTC)
        common: dict[str, Any] = {"coalesce": True, "misfire_grace_time": None}
        sched.add_job(self._digests, self._digest_trigger(self.settings), id="digests",
                      next_run_time=now, **common)
        sched.add_job(self._heartbeat, IntervalTrigger(seconds=self.settings.daemon.lease / 4),
                      id="heartbeat", **common)
        sched.add_job(self._check_config,
                      IntervalTrigger(seconds=self.settings.daemon.config_check),
                      id="config", **common)
        sched.add_job(self._observe, IntervalTrigger(seconds=OBSERVE_SECONDS), id="observe",
                      next_run_time=now, **common)
        sched.start()
        return sched

    @staticmethod
    def _digest_trigger(settings: Settings) -> OrTrigger:
        d = settings.digest
        schedule = ScheduleTrigger(CronSchedule(d.schedule, ZoneInfo(d.timezone)))
        return OrTrigger([schedule, IntervalTrigger(seconds=DIGEST_CHECK_SECONDS)])

    async def _shut_down(self, dispatcher: asyncio.Task[None]) -> None:
        async with self._dispatching:  # no claim is left half-made
            self.stopping = True
        self.wake()
        await dispatcher
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        in_flight: list[asyncio.Future[Any]] = [*self.polls.values(), *self.background]
        bound = self.settings.daemon.shutdown_timeout
        if in_flight:
            log.info("stopping: waiting up to %ss for %d polls and %d digest rounds in flight",
                     bound, len(self.polls), len(self.background))
            _, late = await asyncio.wait(in_flight, timeout=bound)
            late_polls = [t for t in late if t in self.polls.values()]
            for task in late_polls:
                task.cancel()
            await asyncio.gather(*late_polls, return_exceptions=True)
            if late:
                log.warning("stopping: %d polls cancelled (they are polled again on the next "
                            "start or by another worker), %d digest rounds left unfinished",
                            len(late_polls), len(late) - len(late_polls))
        # A cancelled poll's transaction, if one had begun, ends before the release.
        await asyncio.to_thread(self.ctx.close)
        await asyncio.to_thread(_release, self.sessions, self.owner)

    def _register(self) -> None:
        host, pid, _ = self.owner.rsplit(":", 2)
        try:
            with self.sessions.begin() as s:
                store.register_worker(s, self.owner, host, int(pid), __version__,
                                      self.clock())
        except SQLAlchemyError as exc:
            raise StoreError(f"registering this worker failed: {db.reason(exc)}") from exc

    def _unregister(self) -> None:
        try:
            with self.sessions.begin() as s:
                store.worker_stopped(s, self.owner, self.clock())
        except SQLAlchemyError as exc:
            log.error("recording this worker's stop failed: %s", db.reason(exc))

    def _install_signal_handlers(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()

        def on_stop(sig: signal.Signals) -> None:
            log.info("received %s", sig.name)
            stop.set()

        def on_hup() -> None:
            log.info("received SIGHUP: reloading the config")
            self.reload_soon()

        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, on_stop, sig)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, on_hup)

    # --- health ------------------------------------------------------------------------

    def health(self) -> Health:
        age = None if self._last_dispatch is None else time.monotonic() - self._last_dispatch
        detail: dict[str, object] = {
            "worker": self.owner, "polls_in_flight": len(self.polls),
            "last_dispatch_seconds_ago": None if age is None else round(age, 1)}
        if self.stopping:
            return Health(False, {**detail, "reason": "stopping"})
        if age is None or age > HEALTHY_WITHIN_SECONDS:
            reason = self._db_problem or "starting: no feeds claimed yet"
            return Health(False, {**detail, "reason": reason})
        return Health(True, detail)

    # --- jobs --------------------------------------------------------------------------

    def wake(self) -> None:
        """Make the dispatcher look for due feeds now (a poll ended, the config changed)."""
        self._wake.set()

    async def _dispatch_loop(self) -> None:
        """Claim due feeds and start their polls; sleep until the next one falls due, a
        poll ends (room for another), or DISPATCH_IDLE_SECONDS pass (another worker's
        lease may lapse). A wake-up during a claim is never lost: the event is cleared
        before the claim, so the sleep after it returns at once."""
        while not self.stopping:
            self._wake.clear()
            try:
                next_due = await self._dispatch_once()
            except Exception:  # a bug must not end dispatching silently
                log.exception("dispatching failed; trying again in %ss", DISPATCH_IDLE_SECONDS)
                next_due = None
            pause = DISPATCH_IDLE_SECONDS
            now = self.clock()
            if next_due is not None and next_due > now:
                pause = min(pause, (next_due - now).total_seconds())
            elif next_due is not None and len(self.polls) < self._window():
                # Due, unclaimed, yet not ours with slots free: another worker's claim held
                # those rows (SKIP LOCKED). If that worker dies mid-claim its claim is rolled
                # back, so look again soon rather than at the idle tick. (With every slot
                # taken, a poll's end wakes us: waking sooner would only spin.)
                pause = DISPATCH_RECHECK_SECONDS
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)

    async def _dispatch_once(self) -> datetime | None:
        """One claim. Returns when the next unclaimed feed falls due."""
        async with self._dispatching:
            if self.stopping:
                return None
            room = self._window() - len(self.polls)
            if self.polls and room < self.settings.fetch.concurrency:
                # Wait for a bigger claim: one claim per finished poll cost a transaction
                # per feed. A poll's end wakes us again.
                return None
            try:
                stranded = frozenset(self._stranded)
                claimed, next_due = await asyncio.to_thread(self._claim, max(room, 0), stranded)
            except SQLAlchemyError as exc:
                self._db_problem = f"database: {db.reason(exc)}"
                log.error("claiming due feeds failed: %s; trying again in %ss",
                          db.reason(exc), DISPATCH_IDLE_SECONDS)
                return None
            self._db_problem = None
            self._stranded -= stranded
            self._last_dispatch = time.monotonic()
            for feed in claimed:
                self.polls[feed.id] = asyncio.create_task(self._poll(feed),
                                                          name=f"poll {feed.name}")
            self.metrics.in_flight.set(len(self.polls))
            return next_due

    def _window(self) -> int:
        """Polls this worker keeps in flight: twice the requests it may have in flight,
        so the fetcher always has the next feeds queued while claims are made."""
        return CLAIM_AHEAD * self.settings.fetch.concurrency

    def _claim(self, room: int, stranded: frozenset[int]
               ) -> tuple[list[store.FeedState], datetime | None]:
        now = self.clock()
        with self.sessions.begin() as s:
            # Given back due, so this very claim may take them again.
            released = store.release_feed_leases(s, self.owner, stranded) if stranded else 0
            claimed = []
            if room > 0:
                claimed = store.claim_feeds(
                    s, self.owner, now, now + timedelta(seconds=self.settings.daemon.lease),
                    room)
            next_due = store.next_due_at(s, now)
        if released:
            log.info("%d feeds whose last poll could not be stored are due again", released)
        return claimed, next_due

    async def _poll(self, feed: store.FeedState) -> None:
        started = time.monotonic()
        try:
            report = await _guarded_poll(self.ctx, feed)
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

    async def _digests(self) -> None:
        """Compose what is due and send what is pending. smtplib blocks, so the round
        runs in a daemon thread: the event loop (and the signal handlers) keep going,
        and a stop need not wait past its bound for an SMTP server."""
        if self.stopping:
            return
        round_ = _in_daemon_thread(self._digest_round)
        self.background.add(round_)
        try:
            result = await asyncio.shield(round_)
        finally:
            self.background.discard(round_)
        if result is None:
            return
        done, next_at = result
        for d in done.deliveries:
            (self.metrics.digest_failures if d.error else self.metrics.digests_sent).inc()
        if done.composed or done.deliveries:
            log.info("digests: %s", done.render().replace("\n", "; "))
        sched = self._scheduler
        job = sched.get_job("digests") if sched is not None and not self.stopping else None
        soon = datetime.now(UTC) + timedelta(seconds=1)
        if sched is not None and job is not None and next_at is not None and next_at > soon \
                and job.next_run_time is not None and next_at < job.next_run_time:
            # The slot stored in the database, or a retry, comes before the next check.
            # (Not sooner than a second away: APScheduler skips a run that falls while
            # this one is still finishing; the minute check covers those.)
            sched.modify_job("digests", next_run_time=next_at)

    def _digest_round(self) -> tuple[delivery.Round, datetime | None] | None:
        """One round, and when the next slot or retry is due."""
        try:
            done = delivery.run_round(self.sessions, self.settings, self.mailer, self.clock,
                                      owner=self.owner)
            with self.sessions() as s:
                dues = [store.next_digest_attempt_at(s),
                        delivery.next_digest_at(s, self.settings)]
            return done, min((d for d in dues if d is not None), default=None)
        except StoreError as exc:
            log.error("digest round: %s; retrying in %ss", exc, DIGEST_CHECK_SECONDS)
        except SQLAlchemyError as exc:
            log.error("digest round: %s; retrying in %ss", db.reason(exc), DIGEST_CHECK_SECONDS)
        except Exception:
            log.exception("digest round failed; pending digests are retried in %ss",
                          DIGEST_CHECK_SECONDS)
        return None

    async def _heartbeat(self) -> None:
        with self._quiet_when_stopping():
            await asyncio.to_thread(_renew, self.sessions, self.owner, self.settings,
                                    self.clock())

    @contextlib.contextmanager
    def _quiet_when_stopping(self) -> Iterator[None]:
        """A job cancelled by the scheduler's shutdown ends quietly."""
        try:
            yield
        except asyncio.CancelledError:
            if not self.stopping:
                raise

    async def _observe(self) -> None:
        def read() -> tuple[store.Backlog, int]:
            with self.sessions() as s:
                return store.backlog(s, self.clock()), store.digest_counts(s)[0]

        try:
            with self._quiet_when_stopping():
                backlog, pending = await asyncio.to_thread(read)
            if self.stopping:
                return
        except SQLAlchemyError as exc:
            log.error("reading the backlog failed: %s", db.reason(exc))
            return
        self.metrics.observe(backlog, pending)

    # --- reload ------------------------------------------------------------------------

    def reload_soon(self) -> None:
        self._reload_forced = True
        if self._scheduler is not None and self._scheduler.running and not self.stopping:
            self._scheduler.modify_job("config", next_run_time=datetime.now(UTC))

    async def _check_config(self) -> None:
        with self._quiet_when_stopping():
            await self._reload_if_changed()

    async def _reload_if_changed(self) -> None:
        path = self.settings.path
        stamp = await asyncio.to_thread(reload.fingerprint, path)
        forced, self._reload_forced = self._reload_forced, False
        if stamp is None or (stamp == self._config_stamp and not forced):
            return
        self._config_stamp = stamp
        try:
            loaded = await asyncio.to_thread(load_settings, path)
        except ConfigError as exc:
            self.metrics.reloads.labels("rejected").inc()
            log.error("config not reloaded, the running config stays: %s", exc)
            return
        await self._apply(loaded)

    async def _apply(self, loaded: Settings) -> None:
        running = self.settings
        later = reload.restart_needed(running, loaded)
        if later:
            log.warning("config: changes to %s take effect after a restart", ", ".join(later))
        new = reload.applicable(running, loaded)
        changed = reload.live_changes(running, new)
        if not changed:
            log.info("config %s re-read: nothing to apply", running.path)
            return
        try:
            synced, rules = await asyncio.to_thread(sync_config, self.sessions, new, self.clock())
        except StoreError as exc:
            self._config_stamp = None  # try again at the next check
            log.error("config not reloaded (%s); trying again in %ss", exc,
                      new.daemon.config_check)
            return
        self.settings = self.ctx.settings = new
        self.ctx.rules = rules
        if "logging.level" in changed:
            logs.setup(new.log_level, new.log_format)
        if "smtp" in changed and self._own_mailer:
            self.mailer = SmtpMailer(new.smtp, str(new.path))
        if "digest" in changed and self._scheduler is not None:
            self._scheduler.reschedule_job("digests", trigger=self._digest_trigger(new))
        self.metrics.reloads.labels("applied").inc()
        log.info("config reloaded from %s: %s changed; feeds: %s", new.path, ", ".join(changed),
                 synced.render())
        self.wake()


def _in_daemon_thread(fn: Callable[[], T]) -> asyncio.Future[T]:
    """Run ``fn`` in a new daemon thread: unlike the loop's executor, nothing waits for
    it at exit, so a hung SMTP server cannot hold a stopping daemon past its bound."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def target() -> None:
        try:
            result = fn()
        except BaseException as exc:
            loop.call_soon_threadsafe(settle, None, exc)
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=target, name="digests", daemon=True).start()
    return future


__all__ = ["Daemon", "RunSummary", "prepare", "run", "sync_config"]
