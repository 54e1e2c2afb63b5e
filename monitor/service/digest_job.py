"""The daemon's digest job: compose what is due on the ``[digest]`` schedule and send
what is pending, every minute too (retries; a missed slot is caught up).

smtplib blocks, so each round runs in a daemon thread of its own: the event loop (and
the signal handlers) keep going, and a stop need not wait past its bound for an SMTP
server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor import db, store
from monitor.clock import Clock
from monitor.config import Settings
from monitor.digest import delivery
from monitor.digest.mailer import Mailer
from monitor.digest.schedule import CronSchedule
from monitor.errors import StoreError
from monitor.service.metrics import Metrics

log = logging.getLogger(__name__)

T = TypeVar("T")

JOB_ID = "digests"
# How often pending digests are retried and a missed slot is caught up.
DIGEST_CHECK_SECONDS = 60.0


class ScheduleTrigger(BaseTrigger):
    """A :class:`CronSchedule` as an APScheduler trigger."""

    def __init__(self, schedule: CronSchedule) -> None:
        self.schedule = schedule

    def get_next_fire_time(self, previous_fire_time: datetime | None,
                           now: datetime) -> datetime | None:
        return self.schedule.next_after(previous_fire_time or now)

    def __repr__(self) -> str:
        return f"ScheduleTrigger({self.schedule.expr!r})"


class DigestJob:
    """Digest rounds for one worker. ``settings`` and ``mailer`` may be replaced while
    it runs (a reloaded config); ``scheduler`` is the one running the job."""

    def __init__(self, sessions: sessionmaker[Session], settings: Settings, mailer: Mailer,
                 clock: Clock, owner: str, metrics: Metrics) -> None:
        self.sessions = sessions
        self.settings = settings
        self.mailer = mailer
        self.clock = clock
        self.owner = owner
        self.metrics = metrics
        self.scheduler: AsyncIOScheduler | None = None
        self.rounds: set[asyncio.Future[Any]] = set()  # in flight
        self.stopping = False

    @staticmethod
    def trigger(settings: Settings) -> OrTrigger:
        d = settings.digest
        schedule = ScheduleTrigger(CronSchedule(d.schedule, ZoneInfo(d.timezone)))
        return OrTrigger([schedule, IntervalTrigger(seconds=DIGEST_CHECK_SECONDS)])

    def reschedule(self, settings: Settings) -> None:
        """Follow a changed ``[digest]`` schedule."""
        self.settings = settings
        if self.scheduler is not None:
            self.scheduler.reschedule_job(JOB_ID, trigger=self.trigger(settings))

    async def run(self) -> None:
        """One round: compose what is due, send what is pending (the APScheduler job)."""
        if self.stopping:
            return
        round_ = _in_daemon_thread(self._round)
        self.rounds.add(round_)
        try:
            result = await asyncio.shield(round_)
        finally:
            self.rounds.discard(round_)
        if result is None:
            return
        done, next_at = result
        for d in done.deliveries:
            (self.metrics.digest_failures if d.error else self.metrics.digests_sent).inc()
        if done.composed or done.deliveries:
            log.info("digests: %s", done.render().replace("\n", "; "))
        sched = self.scheduler
        job = sched.get_job(JOB_ID) if sched is not None and not self.stopping else None
        soon = datetime.now(UTC) + timedelta(seconds=1)
        if sched is not None and job is not None and next_at is not None and next_at > soon \
                and job.next_run_time is not None and next_at < job.next_run_time:
            # The slot stored in the database, or a retry, comes before the next check.
            # (Not sooner than a second away: APScheduler skips a run that falls while
            # this one is still finishing; the minute check covers those.)
            sched.modify_job(JOB_ID, next_run_time=next_at)

    def _round(self) -> tuple[delivery.Round, datetime | None] | None:
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
