"""Alert channels: the alerts each channel is to be told of, the messages made of them,
their attempts and dead letters, and each channel's shared sending budget.

Exactly-once bookkeeping comes from the database, whichever worker does the work:
``channel_alerts`` has one row per (channel, alert), written with the alert; a channel's
``channel_state`` row is locked (PostgreSQL ``FOR UPDATE``; SQLite has one writer) while
its alerts are put into messages and its messages are claimed, so two workers neither
make two messages of one alert nor exceed the channel's per-minute budget; a claimed
message is leased to one worker until its request has had time to end.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, func, or_, select, update
from sqlalchemy.orm import Session

from monitor.channels.payloads import Report, idempotency_key
from monitor.models import (
    Alert,
    ChannelAlert,
    ChannelMessage,
    ChannelState,
    Feed,
    Item,
    Rule,
    Story,
)
from monitor.store.sql import insert

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
RATE_WINDOW = timedelta(seconds=60)
GROUP_BATCH = 1000  # waiting alerts looked at per channel and round


def enqueue(session: Session, alert_id: int, channels: Iterable[str], now: datetime) -> None:
    """The alert is to be told to ``channels``: in the caller's transaction (the one that
    stores the alert), once per channel however often it is called."""
    rows = [{"channel": c, "alert_id": alert_id, "message_id": None, "created_at": now}
            for c in channels]
    if rows:
        session.execute(insert(session, ChannelAlert).values(rows).on_conflict_do_nothing())


def lock_channel(session: Session, channel: str, now: datetime) -> ChannelState:
    """The channel's state row, made when missing and locked until the transaction ends."""
    session.execute(insert(session, ChannelState).values(
        channel=channel, window_start=now, sent_in_window=0, paused_until=None)
        .on_conflict_do_nothing())
    q = select(ChannelState).where(ChannelState.channel == channel)
    if session.get_bind().dialect.name == "postgresql":
        q = q.with_for_update()
    return session.scalars(q.execution_options(populate_existing=True)).one()


@dataclass(frozen=True)
class Waiting:
    alert_id: int
    item_id: int
    story_id: int | None


def make_messages(session: Session, channel: str, batch: int, now: datetime) -> int:
    """Put the channel's waiting alerts into messages (the channel's row locked): a story
    (or, with stories off, an article) the channel has no message of yet gets one with
    all its waiting alerts; one it has gets a follow-up with them, once ``batch`` seconds
    have passed since its last message and that message is no longer pending. Returns
    how many messages were made."""
    waiting = [Waiting(a, i, s) for a, i, s in session.execute(
        select(ChannelAlert.alert_id, Alert.item_id, Item.story_id)
        .join(Alert, Alert.id == ChannelAlert.alert_id)
        .join(Item, Item.id == Alert.item_id)
        .where(ChannelAlert.channel == channel, ChannelAlert.message_id.is_(None))
        .order_by(ChannelAlert.alert_id).limit(GROUP_BATCH))]
    groups: dict[tuple[str, int], list[Waiting]] = {}
    for w in waiting:
        key = ("story", w.story_id) if w.story_id is not None else ("item", w.item_id)
        groups.setdefault(key, []).append(w)
    last = _last_messages(session, channel, groups)
    made = 0
    for key, members in groups.items():
        prior = last.get(key)
        if prior is not None and (prior[1] == PENDING
                                  or now - prior[0] < timedelta(seconds=batch)):
            continue  # the later reports wait for a follow-up
        first = members[0]
        message = ChannelMessage(
            channel=channel, key=idempotency_key(channel, first.alert_id),
            story_id=first.story_id, item_id=first.item_id, follow_up=prior is not None,
            alerts=len(members), state=PENDING, attempts=0, next_attempt_at=now,
            created_at=now)
        session.add(message)
        session.flush()
        session.execute(update(ChannelAlert).where(
            ChannelAlert.channel == channel,
            ChannelAlert.alert_id.in_([m.alert_id for m in members]))
            .values(message_id=message.id))
        made += 1
    return made


def _last_messages(session: Session, channel: str, groups: Iterable[tuple[str, int]]
                   ) -> dict[tuple[str, int], tuple[datetime, str]]:
    """(made at, state) of the channel's latest message for each story ("story", id)
    or, with no story, item ("item", id): two queries, whatever the number."""
    out: dict[tuple[str, int], tuple[datetime, str]] = {}
    keys = list(groups)
    for by, column in (("story", ChannelMessage.story_id), ("item", ChannelMessage.item_id)):
        idents = [ident for kind, ident in keys if kind == by]
        for at in range(0, len(idents), 500):
            latest = (select(func.max(ChannelMessage.id))
                      .where(ChannelMessage.channel == channel,
                             column.in_(idents[at:at + 500]))
                      .group_by(column))
            if by == "item":
                latest = latest.where(ChannelMessage.story_id.is_(None))
            for ident, made_at, state in session.execute(
                    select(column, ChannelMessage.created_at, ChannelMessage.state)
                    .where(ChannelMessage.id.in_(latest))):
                if ident is not None:
                    out[(by, ident)] = (made_at, state)
    return out


def claim_messages(session: Session, state: ChannelState, owner: str, per_minute: int,
                   now: datetime, lease_until: datetime, limit: int) -> list[int]:
    """Claim the channel's due messages that no live lease holds, oldest first, as many
    as its per-minute budget has left (``state`` locked by :func:`lock_channel`); each
    claimed message counts against the budget. Returns their ids."""
    if state.paused_until is not None and state.paused_until > now:
        return []
    if now - state.window_start >= RATE_WINDOW:
        state.window_start, state.sent_in_window = now, 0
    budget = min(limit, per_minute - state.sent_in_window)
    if budget <= 0:
        return []
    free = or_(ChannelMessage.lease_until.is_(None), ChannelMessage.lease_until <= now)
    ids = list(session.scalars(
        select(ChannelMessage.id).where(
            ChannelMessage.channel == state.channel, ChannelMessage.state == PENDING,
            ChannelMessage.next_attempt_at <= now, free)
        .order_by(ChannelMessage.id).limit(budget)))
    if ids:  # the conditions again: a claim never takes a message another one holds
        ids = list(session.scalars(
            update(ChannelMessage).where(ChannelMessage.id.in_(ids),
                                         ChannelMessage.state == PENDING, free)
            .values(lease_owner=owner, lease_until=lease_until).returning(ChannelMessage.id)
            .execution_options(synchronize_session=False)))
        state.sent_in_window += len(ids)
    session.flush()
    return ids


@dataclass(frozen=True)
class MessageRow:
    id: int
    channel: str
    key: str
    story_id: int | None
    story_title: str | None
    follow_up: bool
    alerts: int
    state: str
    attempts: int
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


def _message_row(m: ChannelMessage, story_title: str | None) -> MessageRow:
    return MessageRow(m.id, m.channel, m.key, m.story_id, story_title, m.follow_up, m.alerts,
                      m.state, m.attempts, m.next_attempt_at, m.last_attempt_at,
                      m.last_status, m.last_error, m.created_at, m.delivered_at)


def message(session: Session, message_id: int) -> tuple[MessageRow, list[Report]] | None:
    """A message with the alerts it carries (those retention has not removed), as the
    payloads take them (the feed's category is the config's: left for the caller)."""
    found = session.execute(
        select(ChannelMessage, Story.title).outerjoin(Story, Story.id == ChannelMessage.story_id)
        .where(ChannelMessage.id == message_id)).first()
    if found is None:
        return None
    rows = session.execute(
        select(Alert.id, Rule.name, Alert.item_id, Item.title, Item.canonical_url, Item.url,
               Feed.name, Item.published_at, Alert.snippet, Alert.terms)
        .join(ChannelAlert, ChannelAlert.alert_id == Alert.id)
        .join(Rule, Rule.id == Alert.rule_id).join(Item, Item.id == Alert.item_id)
        .join(Feed, Feed.id == Item.feed_id)
        .where(ChannelAlert.message_id == message_id).order_by(Alert.id))
    alerts = [Report(a, rule, item, title, canonical or url, feed, None, published, snippet,
                     tuple(terms))
              for a, rule, item, title, canonical, url, feed, published, snippet, terms in rows]
    return _message_row(found[0], found[1]), alerts


def _mine(message_id: int, owner: str) -> Any:
    return (ChannelMessage.id == message_id, ChannelMessage.state == PENDING,
            ChannelMessage.lease_owner == owner)


def mark_delivered(session: Session, message_id: int, status: int, now: datetime) -> None:
    """The channel accepted the message (whoever holds its lease now: it is delivered)."""
    session.execute(update(ChannelMessage).where(ChannelMessage.id == message_id,
                                                 ChannelMessage.state == PENDING)
                    .values(state=DELIVERED, delivered_at=now, last_attempt_at=now,
                            attempts=ChannelMessage.attempts + 1, last_status=status,
                            last_error=None, lease_owner=None, lease_until=None))


def mark_failed(session: Session, message_id: int, owner: str, *, error: str,
                status: int | None, retry_at: datetime | None, now: datetime) -> None:
    """One failed attempt: retried at ``retry_at``, or dead (a dead letter) when None.
    Only while ``owner`` holds it: a lease that lapsed is another worker's now."""
    values: dict[str, Any] = {"attempts": ChannelMessage.attempts + 1, "last_attempt_at": now,
                              "last_status": status, "last_error": error[:1000],
                              "lease_owner": None, "lease_until": None}
    if retry_at is None:
        values["state"] = DEAD
    else:
        values["next_attempt_at"] = retry_at
    session.execute(update(ChannelMessage).where(*_mine(message_id, owner)).values(values))


def pause(session: Session, channel: str, until: datetime, now: datetime) -> None:
    """The channel asked to be left alone (a 429) until ``until``: no worker sends to it."""
    lock_channel(session, channel, now).paused_until = until


def retry_dead(session: Session, channel: str, now: datetime) -> int:
    """Dead letters of the channel back to pending, with their attempts counted afresh."""
    result = session.execute(update(ChannelMessage).where(
        ChannelMessage.channel == channel, ChannelMessage.state == DEAD)
        .values(state=PENDING, attempts=0, next_attempt_at=now, lease_owner=None,
                lease_until=None))
    return int(getattr(result, "rowcount", 0) or 0)


def channel_messages_due(session: Session, before: datetime) -> int:
    """How many delivered or dead messages were made before ``before``."""
    return session.scalar(select(func.count()).select_from(ChannelMessage).where(
        ChannelMessage.state != PENDING, ChannelMessage.created_at < before)) or 0


def prune_messages(session: Session, before: datetime | None, limit: int) -> int:
    """Delete up to ``limit`` delivered or dead messages made before ``before``, with
    their rows in channel_alerts (the alerts stay). A story whose last message goes
    notifies as new if it is reported again. Returns how many went."""
    if before is None:
        return 0
    ids = list(session.scalars(
        select(ChannelMessage.id).where(ChannelMessage.state != PENDING,
                                        ChannelMessage.created_at < before)
        .order_by(ChannelMessage.id).limit(limit).with_for_update(skip_locked=True)))
    if ids:
        session.execute(delete(ChannelAlert).where(ChannelAlert.message_id.in_(ids)))
        session.execute(delete(ChannelMessage).where(ChannelMessage.id.in_(ids)))
    return len(ids)


@dataclass(frozen=True)
class ChannelCounts:
    waiting: int = 0  # alerts not in a message yet (a story's later reports)
    pending: int = 0  # messages not delivered yet
    retrying: int = 0  # of which failed at least once
    delivered: int = 0
    dead: int = 0
    last_delivered_at: datetime | None = None
    last_error: str | None = None  # the latest failure's, of a pending or dead message
    paused_until: datetime | None = None


def channel_counts(session: Session) -> dict[str, ChannelCounts]:
    """Every channel that has anything stored, by name."""
    m = ChannelMessage
    counts = {row.channel: row for row in session.execute(
        select(m.channel,
               func.count().filter(m.state == PENDING).label("pending"),
               func.count().filter(m.state == PENDING, m.attempts > 0).label("retrying"),
               func.count().filter(m.state == DELIVERED).label("delivered"),
               func.count().filter(m.state == DEAD).label("dead"),
               func.max(case((m.state == DELIVERED, m.delivered_at))).label("last"))
        .group_by(m.channel))}
    waiting: dict[str, int] = {c: n for c, n in session.execute(
        select(ChannelAlert.channel, func.count()).where(ChannelAlert.message_id.is_(None))
        .group_by(ChannelAlert.channel))}
    paused: dict[str, datetime | None] = {c: p for c, p in session.execute(
        select(ChannelState.channel, ChannelState.paused_until))}
    errors: dict[str, str | None] = {c: e for c, e in session.execute(  # the newest failure
        select(m.channel, m.last_error).where(
            m.id.in_(select(func.max(m.id)).where(m.last_error.is_not(None),
                                                  m.state != DELIVERED).group_by(m.channel))))}
    out = {}
    for name in set(counts) | set(waiting) | set(paused):
        row = counts.get(name)
        out[name] = ChannelCounts(
            waiting=waiting.get(name, 0),
            pending=row.pending if row else 0, retrying=row.retrying if row else 0,
            delivered=row.delivered if row else 0, dead=row.dead if row else 0,
            last_delivered_at=row.last if row else None, last_error=errors.get(name),
            paused_until=paused.get(name))
    return out


def list_messages(session: Session, channel: str | None = None, state: str | None = None,
                  limit: int = 20) -> list[MessageRow]:
    """The newest messages (of one channel, in one state), newest first."""
    q = (select(ChannelMessage, Story.title)
         .outerjoin(Story, Story.id == ChannelMessage.story_id)
         .order_by(ChannelMessage.id.desc()).limit(limit))
    if channel is not None:
        q = q.where(ChannelMessage.channel == channel)
    if state is not None:
        q = q.where(ChannelMessage.state == state)
    return [_message_row(m, title) for m, title in session.execute(q)]
