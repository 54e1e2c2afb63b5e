"""Delivering alerts to ``[[channels]]``: at least once, each message with one idempotency
key on every attempt, retried with backoff, dead after its channel's ``attempts``.

A round looks at every configured channel at once (a slow or refusing channel holds up
only itself). For each, in one transaction with the channel's row locked
(:mod:`monitor.store.channels`), its waiting alerts are put into messages and one due
message is claimed within the channel's per-minute budget, leased to this worker for
the channel's timeout and a margin (the request cannot take longer); then it is rendered
(:mod:`monitor.channels.payloads`), sent through the fetcher (timeouts, a cap on the
answer read, no redirects) and the outcome recorded. A worker killed mid-request leaves
the lease to lapse: the message is sent again, with the same key, by whoever claims it
next. The daemon runs a round every few seconds (a channel still busy with the last one
is left to it); ``run --once`` runs one at its end, ``channels send`` one on demand.

Outcomes: a 2xx is delivered. A timeout, a network error and the statuses page fetches
retry too (:data:`monitor.errors.TRANSIENT_STATUSES`: 408, 425, 429, 500, 502, 503,
504) are a failure of the channel: the message is retried after ``retry`` seconds,
doubled each time up to ``retry_max`` (longer when the answer's Retry-After asks; a 429
also pauses the whole channel that long), and the channel's other due messages wait for
the next round, so a receiver that is down costs one timeout a round, not one per
message. Any other answer (a 3xx; a 4xx: the URL or token is wrong; a 501) makes the
message dead at once: ``monitor channels list`` shows it and ``monitor channels retry
NAME`` sends it again once the config is mended. Secrets never reach the log: a channel
is named with its kind and the scheme and host of its URL.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor import db
from monitor.channels.payloads import Notice, Report, build, plural
from monitor.clock import Clock
from monitor.config import Settings
from monitor.config.channels import ChannelSettings
from monitor.errors import TRANSIENT_STATUSES, FetchError
from monitor.ingest.cadence import retry_after_seconds
from monitor.ingest.fetcher import Answer, Fetcher
from monitor.store import channels as chstore

log = logging.getLogger(__name__)

CHANNEL_CHECK_SECONDS = 5.0  # how often the daemon looks for due messages and retries
LEASE_MARGIN = 10.0  # seconds past the channel's timeout a claim holds


@dataclass
class Delivered:
    """What a round did, per outcome (for the log and ``run --once``)."""

    delivered: int = 0
    retrying: int = 0
    dead: int = 0

    def __bool__(self) -> bool:
        return bool(self.delivered or self.retrying or self.dead)

    def render(self) -> str:
        return (f"channel messages: {self.delivered} delivered, {self.retrying} to retry, "
                f"{self.dead} dead")


@dataclass
class ChannelJob:
    """Channel rounds for one worker; ``settings`` may be replaced (a reloaded config)."""

    sessions: sessionmaker[Session]
    settings: Settings
    fetcher: Fetcher
    clock: Clock
    owner: str
    stopping: Callable[[], bool] = field(default=lambda: False)
    _busy: set[str] = field(default_factory=set, init=False)  # channels being delivered
    _categories: dict[str, str | None] = field(default_factory=dict, init=False)  # by feed

    async def run(self) -> Delivered:
        """One round: every channel not already being delivered (a slow one, still at
        its previous round, is left to it: it holds up no other channel's round)."""
        done = Delivered()
        self._categories = {f.name: f.category for f in self.settings.feeds}
        channels = [c for c in self.settings.channels if c.name not in self._busy]
        self._busy.update(c.name for c in channels)
        await asyncio.gather(*(self._channel(c, done) for c in channels))
        if done:
            log.info("channels: %s", done.render())
        return done

    async def _channel(self, channel: ChannelSettings, done: Delivered) -> None:
        try:
            await self._deliver_all(channel, done)
        finally:  # free for the next round as soon as this channel is done
            self._busy.discard(channel.name)

    async def _deliver_all(self, channel: ChannelSettings, done: Delivered) -> None:
        first = True  # messages are made once a round: alerts stored meanwhile wait for the next
        while not self.stopping():
            try:
                claimed = await asyncio.to_thread(self._claim, channel, first)
                first = False
            except SQLAlchemyError as exc:
                log.error("channel %s: claiming messages failed: %s", _named(channel),
                          db.reason(exc))
                return
            except Exception:  # a fault of ours: logged, the next round tries again
                log.exception("channel %s: making or claiming messages failed",
                              _named(channel))
                return
            if claimed is None or not await self._deliver(channel, *claimed, done):
                return  # nothing due, or the channel failed: the rest waits a round

    def _claim(self, channel: ChannelSettings,
               make: bool) -> tuple[chstore.MessageRow, Notice] | None:
        """Make the channel's messages (when ``make``), claim the next due one and read
        it, in one transaction; None when nothing is due (or the budget is spent)."""
        now = self.clock()
        lease = timedelta(seconds=channel.timeout + LEASE_MARGIN)
        with self.sessions.begin() as s:
            state = chstore.lock_channel(s, channel.name, now)
            made = chstore.make_messages(s, channel.name, channel.batch, now) if make else 0
            if made:
                log.info("channel %s: %d new messages", _named(channel), made)
            ids = chstore.claim_messages(s, state, self.owner, channel.per_minute, now,
                                         now + lease, limit=1)
            found = chstore.message(s, ids[0]) if ids else None
        return None if found is None else self._notice(channel, *found)

    def _notice(self, channel: ChannelSettings, row: chstore.MessageRow,
                alerts: list[Report]) -> tuple[chstore.MessageRow, Notice]:
        reports = tuple(replace(a, category=self._categories.get(a.feed)) for a in alerts)
        return row, Notice(channel.name, row.key, row.story_id, row.story_title,
                           row.follow_up, reports, row.created_at)

    async def _deliver(self, channel: ChannelSettings, row: chstore.MessageRow,
                       notice: Notice, done: Delivered) -> bool:
        """Send one claimed message and record the outcome. Returns whether the channel
        should be given its next due message now: not after a failure of the channel
        itself (no answer, a transient status) or of the database."""
        if not notice.reports:  # retention removed its articles: nothing left to tell
            return await self._record(channel, row, None, "its alerts were removed by "
                                      "retention", None, done, give_up=True)
        try:
            request = build(channel, notice, int(self.clock().timestamp()))
            answer = await self.fetcher.send(request.method, request.url, request.body,
                                             dict(request.headers), timeout=channel.timeout)
        except FetchError as exc:
            await self._record(channel, row, None, hide(channel, exc.reason), None, done)
            return False
        except Exception as exc:  # a fault of ours: this message fails, not the round
            log.exception("channel %s: message %d could not be sent", _named(channel), row.id)
            return await self._record(channel, row, None, hide(channel, f"internal error: "
                                      f"{type(exc).__name__}: {exc}"), None, done)
        if 200 <= answer.status < 300:
            return await self._record(channel, row, answer.status, None, None, done)
        retried = answer.status in TRANSIENT_STATUSES
        recorded = await self._record(channel, row, answer.status,
                                      answer_error(channel, answer), answer.retry_after, done,
                                      give_up=not retried)
        return recorded and not retried

    async def _record(self, channel: ChannelSettings, row: chstore.MessageRow,
                      status: int | None, error: str | None, retry_after: str | None,
                      done: Delivered, give_up: bool = False) -> bool:
        """Record one attempt's outcome; returns whether the database took it."""
        now = self.clock()
        attempt = row.attempts + 1
        retry_at: datetime | None = None
        pause_until: datetime | None = None
        if error is not None and not give_up and attempt < channel.attempts:
            wait = min(channel.retry_max, channel.retry * 2 ** (attempt - 1))
            asked = retry_after_seconds(retry_after, now)
            if asked is not None:
                wait = max(wait, min(asked, channel.retry_max))
                if status == 429:
                    pause_until = now + timedelta(seconds=wait)
            retry_at = now + timedelta(seconds=wait)
        try:
            await asyncio.to_thread(self._write, channel, row.id, status, error, retry_at,
                                    pause_until, now)
        except SQLAlchemyError as exc:  # the lease lapses and the message is sent again
            log.error("channel %s: recording message %d failed: %s", _named(channel), row.id,
                      db.reason(exc))
            return False
        what = f"message {row.id} ({plural(row.alerts, 'alert')}" + (
            f", story {row.story_id}" if row.story_id is not None else "") + ")"
        if error is None:
            done.delivered += 1
            log.info("channel %s: %s delivered (%s, attempt %d)", _named(channel), what,
                     status, attempt)
        elif retry_at is not None:
            done.retrying += 1
            log.warning("channel %s: %s not delivered (attempt %d of %d): %s; trying again "
                        "at %s", _named(channel), what, attempt, channel.attempts, error,
                        retry_at.isoformat(timespec="seconds"))
        else:
            done.dead += 1
            log.error("channel %s: %s is dead after %d attempts: %s (see `monitor channels "
                      "list`; `monitor channels retry %s` sends it again)", _named(channel),
                      what, attempt, error, channel.name)
        return True

    def _write(self, channel: ChannelSettings, message_id: int, status: int | None,
               error: str | None, retry_at: datetime | None, pause_until: datetime | None,
               now: datetime) -> None:
        with self.sessions.begin() as s:
            if error is None:
                chstore.mark_delivered(s, message_id, status or 0, now)
                return
            chstore.mark_failed(s, message_id, self.owner, error=error, status=status,
                                retry_at=retry_at, now=now)
            if pause_until is not None:
                chstore.pause(s, channel.name, pause_until, now)


def _named(channel: ChannelSettings) -> str:
    return f"{channel.name!r} ({channel.kind} {channel.shown_url})"


def hide(channel: ChannelSettings, text: str) -> str:
    """``text`` with the channel's URL and secrets replaced: they may be in an error."""
    for secret, shown in ((channel.url, channel.shown_url), (channel.token, "(token)"),
                          (channel.secret, "(secret)")):
        if secret:
            text = text.replace(secret, shown)
    return text


def answer_error(channel: ChannelSettings, answer: Answer) -> str:
    said = " ".join(answer.body[:300].decode("utf-8", "replace").split())
    return hide(channel, f"HTTP {answer.status}" + (f": {said}" if said else ""))


