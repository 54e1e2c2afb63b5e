"""``monitor run`` as a long-lived service: one worker, on one event loop.

It holds four parts:

    dispatch     claims due feeds and polls them, and due entries of any feed
                 (:mod:`monitor.service.dispatch`)
    digest job   composes and sends digests on schedule (:mod:`monitor.service.digest_job`)
    channels     delivers alerts to the rules' ``notify`` channels, every few seconds
                 (:mod:`monitor.service.channel_job`)
    reload       notices a changed config and applies what can change live
                 (:mod:`monitor.service.reload`; applied here)
    health       ``/healthz`` from the dispatcher's state (:mod:`monitor.service.health`),
                 served with ``/metrics`` and the review page (:mod:`monitor.web`)

and runs the timed jobs on an APScheduler 3.x ``AsyncIOScheduler``: the digests, the
lease heartbeat (so that only a dead worker's claims lapse; a worker left on an older
config syncs it there once it is the newest), the config watch (every ``[daemon]
config_check``, and on SIGHUP), the backlog gauges for ``/metrics`` and retention
(:mod:`monitor.service.retention`, every ``[retention] every`` while not busy).

Several daemons may share one PostgreSQL database: each feed and each digest is claimed
by one of them at a time. The feed queue is the database, not an APScheduler job
store: APScheduler 3.x documents that a job store shared by several schedulers runs
jobs twice or misses them, and a feed's next poll time must survive restarts and be
visible to every worker anyway. SIGTERM or SIGINT stops dispatching, gives in-flight
polls and digest rounds up to ``[daemon] shutdown_timeout`` to finish, cancels the rest
(a cancelled poll's entries are fetched again) and releases every claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from monitor import __version__, db, logs, store
from monitor.clock import Clock, utcnow
from monitor.config import Settings, public_listen_problem, split_listen
from monitor.config.channels import require_secrets
from monitor.dedup.index import Deduplicator
from monitor.digest.mailer import Mailer, SmtpMailer
from monitor.errors import ConfigError, StoreError
from monitor.identity import worker_id
from monitor.ingest.extract_pool import Processor
from monitor.ingest.fetcher import Fetcher
from monitor.pipeline.context import Context
from monitor.service import claims, reload, retention
from monitor.service.channel_job import CHANNEL_CHECK_SECONDS, ChannelJob
from monitor.service.digest_job import JOB_ID, DigestJob
from monitor.service.dispatch import Dispatcher
from monitor.service.health import Health, Limits, health
from monitor.service.metrics import Metrics
from monitor.service.once import RunSummary, run_once
from monitor.service.startup import Synced, sync_config
from monitor.store.channels import ChannelCounts, channel_counts

if TYPE_CHECKING:  # the web server is imported only when it is served
    from monitor.web.app import WebServer
    from monitor.web.context import Context as WebContext

log = logging.getLogger(__name__)

OBSERVE_SECONDS = 10.0


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
    processor: Processor | None = None,
) -> RunSummary:
    """Poll every enabled feed once (``once``), or serve until ``stop`` is set
    (SIGINT/SIGTERM set it). ``listen`` overrides ``[daemon] listen``; ``processor``:
    an extraction pool started early (closed here), else one is made.
    Raises ConfigError (an SMTP password missing, an address that cannot be bound)."""
    if once:
        return await run_once(settings, engine, clock, processor=processor)
    daemon = Daemon(settings, engine, clock=clock,
                    mailer=mailer or SmtpMailer(settings.smtp, str(settings.path)),
                    listen=settings.daemon.listen if listen is None else listen,
                    processor=processor)
    await daemon.serve(stop or asyncio.Event(), install_signal_handlers)
    return RunSummary()


# Retention rounds: the first this long after start at most (not on the way to the
# first polls), each at most this long, with this pause between batches.
PRUNE_AFTER_START = 60
PRUNE_BUDGET_SECONDS = 60.0
PRUNE_PAUSE_SECONDS = 0.1


class Daemon:
    """``monitor run``: one worker. See the module docstring for its parts and jobs."""

    def __init__(self, settings: Settings, engine: Engine, *, clock: Clock,
                 mailer: Mailer, listen: str, processor: Processor | None = None) -> None:
        self.settings = settings
        self._processor = processor
        self.sessions = db.session_factory(engine)
        self.clock = clock
        self._own_mailer = isinstance(mailer, SmtpMailer)  # rebuilt when [smtp] changes
        self.listen = listen
        self.owner = worker_id()
        self.metrics = Metrics()
        self.digests = DigestJob(self.sessions, settings, mailer, clock, self.owner,
                                 self.metrics)
        self.config = reload.ConfigWatch(settings.path)
        self.stopping = False
        self._scheduler: AsyncIOScheduler | None = None
        self._dispatcher: Dispatcher | None = None
        self._channels: ChannelJob | None = None
        self.channel_rounds: set[asyncio.Future[Any]] = set()  # in flight
        self._heartbeat_at: float | None = None  # the last renewal the database took
        self._web: WebContext | None = None  # the review page's, while it is served
        # Why the shared tables follow another worker's newer config (None: this one's).
        self.config_stale: str | None = None

    @property
    def dispatcher(self) -> Dispatcher:
        assert self._dispatcher is not None, "the daemon is not serving"
        return self._dispatcher

    # --- life cycle --------------------------------------------------------------------

    async def serve(self, stop: asyncio.Event, install_signal_handlers: bool = True) -> None:
        await asyncio.to_thread(self._register)
        synced = await asyncio.to_thread(self._sync, self.settings)
        rules = synced.rules
        endpoints = await self._start_endpoints()
        processor = self._processor or Processor.of(self.settings.extract)
        try:
            async with Fetcher(self.settings.fetch) as fetcher:
                ctx = Context(self.settings, self.sessions, fetcher, processor, self.clock,
                              Deduplicator.from_settings(self.settings), rules, self.owner)
                self._dispatcher = Dispatcher(ctx, self.metrics)
                self._channels = ChannelJob(self.sessions, self.settings, fetcher, self.clock,
                                            self.owner, stopping=lambda: self.stopping)
                self._scheduler = self.digests.scheduler = self._start_scheduler()
                dispatching = asyncio.create_task(self.dispatcher.run(), name="dispatch")
                if install_signal_handlers:
                    self._install_signal_handlers(stop)
                log.info("worker %s: %d feeds, %d rules; stop with SIGINT or SIGTERM, "
                         "reload the config with SIGHUP", self.owner, len(self.settings.feeds),
                         len(self.settings.rules))
                await stop.wait()
                await self._shut_down(dispatching)
        finally:
            processor.close()
            if endpoints is not None:
                await endpoints.close()
            await asyncio.to_thread(self._unregister)
        log.info("stopped")

    async def _start_endpoints(self) -> WebServer | None:
        """The review page, its API, /healthz and /metrics on ``listen`` (None: "")."""
        if not self.listen:
            return None
        from monitor.web.app import WebServer, make_app
        from monitor.web.context import Context as WebContext

        problem = public_listen_problem(self.listen, self.settings.web)
        if problem:
            raise ConfigError(str(self.settings.path), "daemon.listen", problem)
        host, port = split_listen(self.listen)
        self._web = WebContext(self.settings, self.sessions, clock=self.clock,
                               health=self.health, metrics=self.metrics.exposition)
        server = WebServer(make_app(self._web), host, port)
        try:
            await server.start()
        except OSError as exc:
            raise ConfigError(str(self.settings.path), "daemon.listen",
                              f"cannot listen on {self.listen}: {exc.strerror or exc}; "
                              "choose another address, or \"\" for none") from exc
        log.info("serving %s/healthz and %s/metrics, and the review page at %s/",
                 server.url, server.url, server.url)
        return server

    def _start_scheduler(self) -> AsyncIOScheduler:
        sched = AsyncIOScheduler(timezone=UTC)
        now = datetime.now(UTC)
        common: dict[str, Any] = {"coalesce": True, "misfire_grace_time": None}
        sched.add_job(self.digests.run, self.digests.trigger(self.settings), id=JOB_ID,
                      next_run_time=now, **common)
        sched.add_job(self._heartbeat, IntervalTrigger(seconds=self.settings.daemon.lease / 4),
                      id="heartbeat", **common)
        sched.add_job(self._check_config,
                      IntervalTrigger(seconds=self.settings.daemon.config_check),
                      id="config", **common)
        sched.add_job(self._observe, IntervalTrigger(seconds=OBSERVE_SECONDS), id="observe",
                      next_run_time=now, **common)
        sched.add_job(self._deliver, IntervalTrigger(seconds=CHANNEL_CHECK_SECONDS),
                      id="channels", next_run_time=now, **common)
        every = self.settings.retention.every
        sched.add_job(self._prune, IntervalTrigger(seconds=every), id="retention",
                      next_run_time=now + timedelta(seconds=min(every, PRUNE_AFTER_START)),
                      **common)
        sched.start()
        return sched

    async def _shut_down(self, dispatching: asyncio.Task[None]) -> None:
        dispatcher = self.dispatcher
        await dispatcher.stop()  # no claim is left half-made
        self.stopping = self.digests.stopping = True
        await dispatching
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        # The entries it claimed outside its polls are waited for and cancelled with them.
        polls = [*dispatcher.polls.values(), *dispatcher.entries.values()]
        in_flight: list[asyncio.Future[Any]] = [*polls, *self.digests.rounds,
                                                *self.channel_rounds]
        bound = self.settings.daemon.shutdown_timeout
        if in_flight:
            log.info("stopping: waiting up to %ss for %d polls, %d entries and %d digest "
                     "rounds in flight", bound, len(dispatcher.polls), len(dispatcher.entries),
                     len(self.digests.rounds))
            _, late = await asyncio.wait(in_flight, timeout=bound)
            late_polls = [t for t in late if t in polls]
            for task in late_polls:
                task.cancel()
            await asyncio.gather(*late_polls, return_exceptions=True)
            if late:
                log.warning("stopping: %d polls and entries cancelled (they are taken again "
                            "on the next start or by another worker), %d digest rounds left "
                            "unfinished", len(late_polls), len(late) - len(late_polls))
        # A cancelled poll's transaction, if one had begun, ends before the release.
        await asyncio.to_thread(dispatcher.ctx.close)
        await asyncio.to_thread(claims.release, self.sessions, self.owner)

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

    def health(self) -> Health:
        d = self._dispatcher
        if d is None:
            return health(self.owner, polls_in_flight=0, db_age=None, progress_age=None,
                          db_problem=None, stopping=self.stopping, limits=self._limits())
        now = time.monotonic()
        # The database answered a claim, or the heartbeat (which renews the leases
        # while every slot is taken and no claim is made).
        contact = max((t for t in (d.last_dispatch, self._heartbeat_at) if t is not None),
                      default=None)
        moved = max((t for t in (d.last_progress, d.ctx.fetcher.last_done,
                                 d.ctx.processor.last_done) if t is not None), default=None)
        return health(self.owner, polls_in_flight=len(d.polls),
                      entries_in_flight=len(d.entries),
                      db_age=None if contact is None or d.last_dispatch is None
                      else now - contact,
                      progress_age=None if moved is None else now - moved,
                      db_problem=d.db_problem, stopping=self.stopping or d.stopping,
                      limits=self._limits())

    def _limits(self) -> Limits:
        s = self.settings
        return Limits.of(heartbeat_seconds=s.daemon.lease / 4, fetch_timeout=s.fetch.timeout,
                         extract_timeout=s.extract.timeout)

    # --- timed jobs --------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        with self._quiet_when_stopping():
            if await asyncio.to_thread(claims.renew, self.sessions, self.owner, self.settings,
                                       self.clock()):
                self._heartbeat_at = time.monotonic()
            if self.config_stale is not None and self._dispatcher is not None:
                await self._catch_up()

    async def _catch_up(self) -> None:
        """A worker whose config was not the newest syncs it once the workers running
        the newer one have stopped (a roll-back finished, a stale worker left alone)."""
        try:
            synced = await asyncio.to_thread(self._sync, self.settings)
        except StoreError as exc:
            log.error("config sync failed: %s; trying again at the next heartbeat", exc)
            return
        if synced.stale is None:
            self.dispatcher.ctx.rules = synced.rules
            log.info("config %s is the newest running now: feeds and rules synced (%s)",
                     self.settings.path, synced.feeds.render())
            self.dispatcher.wake()

    def _sync(self, settings: Settings) -> Synced:
        synced = sync_config(self.sessions, settings, self.clock(), owner=self.owner)
        self.config_stale = synced.stale
        return synced

    @contextlib.contextmanager
    def _quiet_when_stopping(self) -> Iterator[None]:
        """A job cancelled by the scheduler's shutdown ends quietly."""
        try:
            yield
        except asyncio.CancelledError:
            if not self.stopping:
                raise

    async def _observe(self) -> None:
        def read() -> tuple[store.Backlog, store.DigestCounts, dict[str, ChannelCounts]]:
            with self.sessions() as s:
                channels = channel_counts(s) if self.settings.channels else {}
                return store.backlog(s, self.clock()), store.digest_counts(s), channels

        try:
            with self._quiet_when_stopping():
                backlog, digests, channels = await asyncio.to_thread(read)
            if self.stopping:
                return
        except SQLAlchemyError as exc:
            log.error("reading the backlog failed: %s", db.reason(exc))
            return
        self.metrics.observe(backlog, digests, channels)

    async def _deliver(self) -> None:
        """A round of channel deliveries, in a task of its own (a stop waits for it) that
        this job does not wait for: a channel still busy with an earlier round (a slow
        receiver) does not keep the others from the next."""
        if self._channels is None or self.stopping:
            return
        task = asyncio.ensure_future(self._channels.run())
        self.channel_rounds.add(task)
        task.add_done_callback(self.channel_rounds.discard)

    async def _prune(self) -> None:
        """[retention]: batches while this worker is not busy (fewer polls in flight than
        its window, nothing stopping), for PRUNE_BUDGET_SECONDS at most a round: the
        rest waits for the next round."""
        d = self.dispatcher
        if len(d.polls) >= d.window():
            log.info("retention: this worker is busy; pruning waits for the next round")
            return
        started = time.monotonic()

        def go_on() -> bool:
            return (not self.stopping and len(d.polls) < d.window()
                    and time.monotonic() - started < PRUNE_BUDGET_SECONDS)

        with self._quiet_when_stopping():
            try:
                done = await asyncio.to_thread(
                    retention.prune, self.sessions, d.ctx.dedup, self.settings.retention,
                    self.clock, go_on=go_on, pause=PRUNE_PAUSE_SECONDS)
            except SQLAlchemyError as exc:
                log.error("retention: pruning failed: %s; trying again in %ss", db.reason(exc),
                          self.settings.retention.every)
                return
            if done:
                log.info("retention: pruned %s in %.1fs", done.render(),
                         time.monotonic() - started)

    # --- reload ------------------------------------------------------------------------

    def reload_soon(self) -> None:
        self.config.force()
        if self._scheduler is not None and self._scheduler.running and not self.stopping:
            self._scheduler.modify_job("config", next_run_time=datetime.now(UTC))

    async def _check_config(self) -> None:
        with self._quiet_when_stopping():
            try:
                loaded = await asyncio.to_thread(self.config.changed)
                if loaded is not None:  # as at start: a channel without its secret is refused
                    require_secrets(str(loaded.path), loaded.channels)
            except ConfigError as exc:
                self.metrics.reloads.labels("rejected").inc()
                log.error("config not reloaded, the running config stays: %s", exc)
                return
            if loaded is not None:
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
            synced = await asyncio.to_thread(self._sync, new)
        except StoreError as exc:
            self.config.retry()
            log.error("config not reloaded (%s); trying again in %ss", exc,
                      new.daemon.config_check)
            return
        ctx = self.dispatcher.ctx
        self.settings = ctx.settings = self.digests.settings = new
        if self._web is not None:
            self._web.settings = new
        if self._channels is not None:
            self._channels.settings = new
        ctx.rules = synced.rules
        ctx.stories.settings = new.stories
        if "logging.level" in changed:
            logs.setup(new.log_level, new.log_format)
        if "smtp" in changed and self._own_mailer:
            self.digests.mailer = SmtpMailer(new.smtp, str(new.path))
        if "digest" in changed:
            self.digests.reschedule(new)
        self.metrics.reloads.labels("applied").inc()
        rules_changed = reload.rule_changes(running, new)
        log.info("config reloaded from %s: %s changed; feeds: %s%s", new.path,
                 ", ".join(changed), synced.feeds.render(),
                 f"; rules: {rules_changed}" if rules_changed else "")
        self.dispatcher.wake()


__all__ = ["Daemon", "RunSummary", "run"]
