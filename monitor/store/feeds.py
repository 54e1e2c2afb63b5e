"""Feeds: config sync, poll schedule and fetch state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from monitor.config import FeedSettings
from monitor.models import Feed, Item


@dataclass(frozen=True)
class FeedState:
    id: int
    name: str
    url: str
    fetch_url: str | None
    enabled: bool
    interval_seconds: int
    etag: str | None
    last_modified: str | None
    body_hash: str | None
    consecutive_failures: int
    next_poll_at: datetime | None

    @property
    def effective_url(self) -> str:
        return self.fetch_url or self.url


def sync_feeds(session: Session, feeds: Sequence[FeedSettings], now: datetime) -> None:
    """Make the feeds table match the config. Feeds gone from the config are disabled,
    not deleted: their items stay, and re-adding the URL resumes their state."""
    rows = {f.url: f for f in session.scalars(select(Feed))}
    for fs in feeds:
        row = rows.pop(fs.url, None)
        if row is None:
            session.add(Feed(url=fs.url, name=fs.name, enabled=fs.enabled,
                             interval_seconds=fs.interval, consecutive_failures=0,
                             created_at=now))
        else:
            row.name, row.enabled, row.interval_seconds = fs.name, fs.enabled, fs.interval
    for row in rows.values():
        row.enabled = False
    session.flush()


def _feed_state(f: Feed) -> FeedState:
    return FeedState(
        id=f.id, name=f.name, url=f.url, fetch_url=f.fetch_url, enabled=f.enabled,
        interval_seconds=f.interval_seconds, etag=f.etag, last_modified=f.last_modified,
        body_hash=f.body_hash, consecutive_failures=f.consecutive_failures,
        next_poll_at=f.next_poll_at,
    )


def due_feeds(session: Session, now: datetime | None) -> list[FeedState]:
    """Enabled feeds whose next poll is due at ``now`` (all enabled feeds when ``now`` is None)."""
    q = select(Feed).where(Feed.enabled.is_(True)).order_by(Feed.id)
    if now is not None:
        q = q.where(or_(Feed.next_poll_at.is_(None), Feed.next_poll_at <= now))
    return [_feed_state(f) for f in session.scalars(q)]


def next_due_at(session: Session) -> datetime | None:
    """When the next enabled feed falls due (None if none is scheduled)."""
    return session.scalar(select(func.min(Feed.next_poll_at)).where(Feed.enabled.is_(True)))


def record_feed_success(
    session: Session,
    feed_id: int,
    *,
    now: datetime,
    status: int,
    next_poll_at: datetime,
    etag: str | None,
    last_modified: str | None,
    body_hash: str | None = None,
    title: str | None = None,
    parse_warning: str | None = None,
    parsed: bool = False,
) -> None:
    """A poll that worked. ``parsed`` says whether the body was read this time: only
    then do the body hash, title and parse warning change."""
    values: dict[str, object] = dict(
        last_attempt_at=now, last_success_at=now, last_status=status, last_error=None,
        consecutive_failures=0, next_poll_at=next_poll_at,
    )
    # A 304 may omit validators; keep the ones we have rather than lose them.
    if etag is not None:
        values["etag"] = etag
    if last_modified is not None:
        values["last_modified"] = last_modified
    if parsed:
        values.update(body_hash=body_hash, parse_warning=parse_warning)
        if title:
            values["title"] = title
    session.execute(update(Feed).where(Feed.id == feed_id).values(**values))


def record_feed_failure(
    session: Session, feed_id: int, *, now: datetime, status: int | None, error: str,
    next_poll_at: datetime,
) -> None:
    session.execute(
        update(Feed).where(Feed.id == feed_id).values(
            last_attempt_at=now, last_status=status, last_error=error,
            consecutive_failures=Feed.consecutive_failures + 1, next_poll_at=next_poll_at,
        )
    )


def record_permanent_redirect(session: Session, feed_id: int, new_url: str) -> None:
    session.execute(update(Feed).where(Feed.id == feed_id).values(fetch_url=new_url))


@dataclass(frozen=True)
class FeedRow:
    name: str
    url: str
    fetch_url: str | None
    title: str | None
    enabled: bool
    interval_seconds: int
    last_attempt_at: datetime | None
    last_success_at: datetime | None
    last_status: int | None
    last_error: str | None
    consecutive_failures: int
    parse_warning: str | None
    next_poll_at: datetime | None
    items: int


def list_feeds(session: Session) -> list[FeedRow]:
    counts = (select(Item.feed_id, func.count().label("n")).group_by(Item.feed_id).subquery())
    q = (select(Feed, func.coalesce(counts.c.n, 0))
         .outerjoin(counts, counts.c.feed_id == Feed.id).order_by(Feed.id))
    return [
        FeedRow(
            name=f.name, url=f.url, fetch_url=f.fetch_url, title=f.title, enabled=f.enabled,
            interval_seconds=f.interval_seconds, last_attempt_at=f.last_attempt_at,
            last_success_at=f.last_success_at, last_status=f.last_status,
            last_error=f.last_error, consecutive_failures=f.consecutive_failures,
            parse_warning=f.parse_warning, next_poll_at=f.next_poll_at, items=n,
        )
        for f, n in session.execute(q)
    ]
