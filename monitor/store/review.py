"""What the review page (monitor.web) reads beyond the other modules' listings, and the
one thing it writes: reviewers' feedback on alerts."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Date, cast, exists, func, select
from sqlalchemy.orm import Session

from monitor.models import Alert, AlertFeedback, Digest, Item, Meta, Rule, Story
from monitor.store.sql import insert

WEB_SECRET_KEY = "web.secret"  # noqa: S105 (a meta row name): the key signing the review page's cookies


@dataclass(frozen=True)
class Feedback:
    """A reviewer's verdict on an alert."""

    relevant: bool
    by: str
    at: datetime


def set_feedback(session: Session, alert_id: int, relevant: bool, by: str,
                 now: datetime) -> bool:
    """Record ``by``'s verdict on the alert, replacing an earlier one. Returns False
    when there is no such alert."""
    if session.get(Alert, alert_id) is None:
        return False
    stmt = insert(session, AlertFeedback).values(alert_id=alert_id, relevant=relevant, by=by, at=now)
    session.execute(stmt.on_conflict_do_update(
        index_elements=[AlertFeedback.alert_id],
        set_={"relevant": relevant, "by": by, "at": now}))
    return True


def feedback_of(session: Session, alert_ids: Iterable[int]) -> dict[int, Feedback]:
    """The verdicts on those of ``alert_ids`` that have one."""
    wanted = list(dict.fromkeys(alert_ids))
    out: dict[int, Feedback] = {}
    for start in range(0, len(wanted), 500):
        for f in session.scalars(select(AlertFeedback).where(
                AlertFeedback.alert_id.in_(wanted[start:start + 500]))):
            out[f.alert_id] = Feedback(f.relevant, f.by, f.at)
    return out


def feedback_counts(session: Session, since: datetime | None = None) -> dict[str, tuple[int, int]]:
    """Per rule name: how many of its alerts reviewers marked (relevant, not relevant),
    of the verdicts given since ``since`` (None: ever)."""
    q = (select(Rule.name, AlertFeedback.relevant, func.count())
         .join(Alert, Alert.id == AlertFeedback.alert_id)
         .join(Rule, Rule.id == Alert.rule_id)
         .group_by(Rule.name, AlertFeedback.relevant))
    if since is not None:
        q = q.where(AlertFeedback.at >= since)
    out: dict[str, tuple[int, int]] = {}
    for name, relevant, n in session.execute(q):
        yes, no = out.get(name, (0, 0))
        out[name] = (yes + n, no) if relevant else (yes, no + n)
    return out


def last_digest_at(session: Session) -> datetime | None:
    """When the newest digest that went out was composed (None: none has yet)."""
    return session.scalar(select(func.max(Digest.created_at)).where(Digest.sent_at.is_not(None)))


def last_digest_to(session: Session, recipient: str) -> datetime | None:
    """When the newest digest to ``recipient`` (sent or pending, not given up) was
    composed."""
    return session.scalar(select(func.max(Digest.created_at)).where(
        Digest.recipient == recipient, Digest.failed_at.is_(None)))


# A story some feed reported (not only seeds): Item.story_id is indexed.
_reported = exists().where(Item.story_id == Story.id)


def stories_created(session: Session, since: datetime, limit: int) -> list[int]:
    """The ids of stories that began since ``since``, those with the most articles
    first (then the latest reported). Stories of the seed corpus alone are no news."""
    return list(session.scalars(
        select(Story.id).where(Story.created_at >= since, _reported)
        .order_by(Story.items.desc(), Story.last_at.desc(), Story.id.desc()).limit(limit)))


def count_stories_created(session: Session, since: datetime) -> int:
    return int(session.scalar(select(func.count()).where(Story.created_at >= since, _reported))
               or 0)


def daily_counts(session: Session, since: datetime, days: int) -> dict[int, list[int]]:
    """Per feed id, the items stored on each of the ``days`` days from ``since`` (a UTC
    midnight) on, oldest first. Feeds that stored nothing are left out. Counted in the
    database, a row per feed and day: reading every item's time cost 100 ms at 100k
    items."""
    if session.get_bind().dialect.name == "postgresql":
        day: ColumnElement[Any] = cast(func.timezone("UTC", Item.created_at), Date)
    else:  # SQLite keeps naive UTC text, "YYYY-MM-DD HH:MM:SS…"
        day = func.substr(Item.created_at, 1, 10)
    # Both statuses named: the (status, created_at) index then serves the time range.
    rows = session.execute(
        select(Item.feed_id, day, func.count())
        .where(Item.status.in_(("new", "duplicate")), Item.created_at >= since)
        .group_by(Item.feed_id, day))
    start = since.date()
    out: dict[int, list[int]] = {}
    for feed_id, when, count in rows:
        index = ((when if isinstance(when, date) else date.fromisoformat(when)) - start).days
        if 0 <= index < days:
            out.setdefault(feed_id, [0] * days)[index] += count
    return out


def ping(session: Session) -> None:
    """Raises when the database does not answer."""
    session.execute(select(1))


def copies_of(session: Session, item_ids: Sequence[int]) -> dict[int, list[int]]:
    """For each item, the ids of the stored items that are its copies, oldest first."""
    out: dict[int, list[int]] = {i: [] for i in item_ids}
    for start in range(0, len(item_ids), 500):
        for copy, original in session.execute(
                select(Item.id, Item.duplicate_of_item_id)
                .where(Item.duplicate_of_item_id.in_(list(item_ids[start:start + 500])))
                .order_by(Item.id)):
            if original is not None:
                out[original].append(copy)
    return out


def web_secret(session: Session) -> str:
    """The random key that signs the review page's cookies, made on first use and
    shared by every worker on the database (a cookie one worker set holds on all)."""
    found = session.scalar(select(Meta.value).where(Meta.name == WEB_SECRET_KEY))
    if found:
        return found
    session.execute(insert(session, Meta).values(name=WEB_SECRET_KEY, value=secrets.token_hex(32))
                    .on_conflict_do_nothing(index_elements=[Meta.name]))
    value = session.scalar(select(Meta.value).where(Meta.name == WEB_SECRET_KEY))
    assert value is not None
    return value
