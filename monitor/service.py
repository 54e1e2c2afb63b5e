"""The daemon: start-up, the poll loop, signals.

Start-up upgrades the schema (idempotent; on PostgreSQL behind an advisory
lock), syncs feeds and rules from the config, loads the seeds and brings the
near-duplicate index up to date. Then
``run --once`` polls every enabled feed once; ``run`` keeps polling each feed
on its interval until SIGINT or SIGTERM, and after each round of polls composes
the digests that are due and sends the pending ones (:mod:`monitor.delivery`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor import db, delivery, store
from monitor.config import Settings
from monitor.duplicates import Deduplicator
from monitor.errors import StoreError
from monitor.fetcher import Fetcher
from monitor.mailer import Mailer, SmtpMailer
from monitor.pipeline import Clock, Context, FeedReport, RuleBook, load_seeds, poll_feed
from monitor.workers import Processor

log = logging.getLogger(__name__)

# How long in-flight polls may take to finish after SIGTERM before they are cancelled.
SHUTDOWN_GRACE_SECONDS = 20.0
# Longest sleep between checks for due feeds, and the pause after a database failure.
MAX_IDLE_SECONDS = 60.0
STORE_RETRY_SECONDS = 30.0


def utcnow() -> datetime:
    return datetime.now(UTC)


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
            f"{self.total('alerts')} alerts; "
            f"pages: {self.total('pages_fetched')} fetched, {self.total('page_failures')} failed",
        ]
        lines += [f"  failed: {r.feed} <{r.url}>: {r.error}" for r in self.reports if r.error]
        return "\n".join(lines)


def prepare(settings: Settings, engine: Engine, clock: Clock = utcnow) -> None:
    """Schema upgrade, config sync and seed load. Raises StoreError, SeedError."""
    db.upgrade(engine)
    sessions = db.session_factory(engine)
    try:
        with sessions.begin() as s:
            store.sync_feeds(s, settings.feeds, clock())
            store.sync_rules(s, settings.rules, clock())
    except SQLAlchemyError as exc:
        raise StoreError(f"syncing feeds and rules from the config failed: {exc}") from exc
    load_seeds(sessions, settings, Deduplicator.from_settings(settings), clock())


async def poll_due(ctx: Context, now: datetime | None) -> list[FeedReport]:
    """Poll the feeds due at ``now`` (all enabled feeds if None) concurrently.

    A feed's failure is recorded on that feed and never stops the others.
    Raises StoreError only when the list of due feeds cannot be read.
    """
    try:
        with ctx.sessions() as s:
            feeds = store.due_feeds(s, now)
    except SQLAlchemyError as exc:
        raise StoreError(f"reading due feeds failed: {exc}") from exc
    results = await asyncio.gather(*(poll_feed(ctx, f) for f in feeds), return_exceptions=True)
    reports = []
    for feed, result in zip(feeds, results, strict=True):
        if isinstance(result, BaseException):
            if isinstance(result, asyncio.CancelledError):
                raise result
            log.error("feed %r <%s>: poll failed: %s", feed.name, feed.effective_url, result,
                      exc_info=not isinstance(result, StoreError))
            result = FeedReport(feed=feed.name, url=feed.url, outcome="failed", error=str(result))
        reports.append(result)
    return reports


async def run(
    settings: Settings,
    engine: Engine,
    *,
    once: bool,
    clock: Clock = utcnow,
    transport: httpx.AsyncBaseTransport | None = None,
    stop: asyncio.Event | None = None,
    install_signal_handlers: bool = True,
    mailer: Mailer | None = None,
) -> RunSummary:
    """Poll feeds: once, or until ``stop`` is set (SIGINT/SIGTERM set it), sending
    digests as they fall due. Raises ConfigError (an SMTP password missing)."""
    stop = stop or asyncio.Event()
    if not once and mailer is None:
        mailer = SmtpMailer(settings.smtp, str(settings.path))
    if install_signal_handlers:
        _install_signal_handlers(stop)
    sessions = db.session_factory(engine)
    rules = RuleBook.build(settings.rules, _rule_ids(sessions, settings))
    processor = Processor(settings.extract.workers, settings.extract.worker_max_tasks)
    summary = RunSummary()
    try:
        async with Fetcher(settings.fetch, transport=transport) as fetcher:
            ctx = Context(settings, sessions, fetcher, processor, clock,
                          Deduplicator.from_settings(settings), rules)
            if once:
                summary.reports = await poll_due(ctx, None)
                return summary
            assert mailer is not None
            await _loop(ctx, mailer, stop, summary)
    finally:
        processor.close()
    return summary


def _rule_ids(sessions: sessionmaker[Session], settings: Settings) -> dict[str, int]:
    try:
        with sessions() as s:
            return store.rule_ids(s, [r.name for r in settings.rules])
    except SQLAlchemyError as exc:
        raise StoreError(f"reading rules failed: {exc}") from exc


async def _loop(ctx: Context, mailer: Mailer, stop: asyncio.Event, summary: RunSummary) -> None:
    log.info("polling %d feeds; stop with SIGINT or SIGTERM", len(ctx.settings.feeds))
    stopping = asyncio.create_task(stop.wait())
    try:
        while not stop.is_set():
            poll = asyncio.create_task(poll_due(ctx, ctx.clock()))
            await asyncio.wait({poll, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not poll.done():
                log.info("stopping: waiting up to %ss for in-flight polls", SHUTDOWN_GRACE_SECONDS)
                with contextlib.suppress(TimeoutError, asyncio.CancelledError, StoreError):
                    await asyncio.wait_for(poll, SHUTDOWN_GRACE_SECONDS)
                break
            try:
                summary.reports.extend(poll.result())
                # smtplib blocks: in a thread, so the event loop and its signal handlers
                # keep running. A stop waits for the round: each SMTP step is bounded by
                # [smtp] timeout, and an unreachable server ends the round at once.
                await asyncio.to_thread(_digests, ctx, mailer)
                pause = _seconds_until_next_due(ctx)
                log.info("next check in %.0fs", pause)
            except StoreError as exc:
                log.error("database problem: %s; retrying in %ss", exc, STORE_RETRY_SECONDS)
                pause = STORE_RETRY_SECONDS
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(stopping), pause)
    finally:
        stopping.cancel()
    log.info("stopped")


def _digests(ctx: Context, mailer: Mailer) -> None:
    """Compose the digests that are due and send the pending ones. Raises StoreError;
    any other failure is logged and the daemon goes on (the digests stay pending)."""
    try:
        result = delivery.run_round(ctx.sessions, ctx.settings, mailer, ctx.clock)
    except StoreError:
        raise
    except Exception:
        log.exception("digest round failed; pending digests are retried at the next check")
        return
    if result.composed or result.deliveries:
        log.info("digests: %s", result.render().replace("\n", "; "))


def _seconds_until_next_due(ctx: Context) -> float:
    """Until the next feed poll, digest slot or digest retry, at most MAX_IDLE_SECONDS."""
    try:
        with ctx.sessions() as s:
            dues = [store.next_due_at(s), store.next_digest_attempt_at(s),
                    delivery.next_digest_at(s, ctx.settings)]
    except SQLAlchemyError as exc:
        raise StoreError(f"reading the poll schedule failed: {exc}") from exc
    now = ctx.clock()
    waits = [(due - now).total_seconds() for due in dues if due is not None]
    return min([MAX_IDLE_SECONDS, *(max(1.0, w) for w in waits)])


def _install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, _on_signal(stop, sig))


def _on_signal(stop: asyncio.Event, sig: signal.Signals) -> Callable[[], None]:
    def handler() -> None:
        log.info("received %s", sig.name)
        stop.set()

    return handler
