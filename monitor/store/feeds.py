"""Feeds: config sync, poll schedule, leases and fetch state.

A worker polls a feed only while it holds the feed's lease (``lease_owner``,
``lease_until``). :func:`claim_feeds` takes due feeds with ``SELECT … FOR UPDATE
SKIP LOCKED`` on PostgreSQL, so workers sharing a database never claim the same
feed; a claim that is not renewed lapses, and a dead worker's feeds fall due to
the others. Recording a poll's outcome releases the lease. SQLite has one writer
at a time, and one daemon per file (:func:`monitor.db.hold_sqlite_lock`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    Table,
    Update,
    bindparam,
    delete,
    func,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.orm import Session

from monitor.config import FeedSettings
from monitor.models import Entry, Feed, Item
from monitor.store.leases import rowcount


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
    poll_interval_seconds: int | None = None  # the adaptive interval in use
    max_interval_seconds: int | None = None  # its ceiling
    fetch_url_checked_at: datetime | None = None  # when `url` last confirmed the move
    entries_retry_at: datetime | None = None  # its soonest entry waiting for a page retry

    @property
    def effective_url(self) -> str:
        return self.fetch_url or self.url


# Any constant, distinct from the other advisory locks (db.py, near.py).
_PG_CONFIG_SYNC_LOCK = 0x6D6F6E63  # "monc"


def lock_config_sync(session: Session) -> None:
    """Take turns with other workers syncing their config, until the transaction ends
    (a PostgreSQL advisory lock; SQLite has one writer at a time anyway)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(_PG_CONFIG_SYNC_LOCK)))


def sync_feeds(session: Session, feeds: Sequence[FeedSettings], now: datetime) -> SyncResult:
    """Make the feeds table match the config. Feeds gone from the config are disabled,
    not deleted: their items stay, and re-adding the URL resumes their state (a
    forgotten feed's too). A feed whose URL changed while its name stayed (a typo fixed,
    a feed that moved) keeps its row, its items and the GUIDs it knows, and starts its
    fetch state afresh at the new URL. A feed whose interval changed starts again from
    it, and is polled within that interval. Workers starting together on PostgreSQL
    take turns (an advisory lock held until the transaction ends), so they never insert
    the same feed twice."""
    lock_config_sync(session)
    if _in_sync(session, feeds):
        return SyncResult()
    rows = {f.url: f for f in session.scalars(select(Feed))}
    result = SyncResult()
    wanted = {fs.url for fs in feeds}
    # Rows whose URL the config no longer lists, by name: where a renamed URL comes from.
    left: dict[str, list[Feed]] = {}
    for gone in rows.values():
        if gone.url not in wanted and gone.forgotten_at is None:
            left.setdefault(gone.name, []).append(gone)
    for fs in feeds:
        row = rows.pop(fs.url, None)
        ceiling = max(fs.max_interval, fs.interval)
        if row is None and left.get(fs.name):
            # The newest of the same name that was in use: the twin a fixed URL left.
            row = max(left.pop(fs.name), key=lambda r: (r.enabled, r.id))
            del rows[row.url]
            result.moved.append((fs.name, row.url, fs.url))
            _start_afresh(row, fs.url)
        elif row is None:
            session.add(Feed(url=fs.url, name=fs.name, enabled=fs.enabled,
                             interval_seconds=fs.interval, max_interval_seconds=ceiling,
                             consecutive_failures=0, created_at=now))
            result.added.append(fs.name)
            continue
        if row.forgotten_at is not None:
            row.forgotten_at = None
            row.enabled = False  # so that it counts as enabled again below
        if (row.interval_seconds, row.max_interval_seconds) != (fs.interval, ceiling):
            row.poll_interval_seconds = None
            soonest = now + timedelta(seconds=fs.interval)
            if row.next_poll_at is not None and row.next_poll_at > soonest:
                row.next_poll_at = soonest
            result.changed.append(fs.name)
        if row.enabled != fs.enabled:
            (result.enabled if fs.enabled else result.disabled).append(fs.name)
        elif row.name != fs.name:
            result.changed.append(fs.name)
        row.name, row.enabled = fs.name, fs.enabled
        row.interval_seconds, row.max_interval_seconds = fs.interval, ceiling
    for row in rows.values():
        if row.enabled:
            result.disabled.append(row.name)
        row.enabled = False
    session.flush()
    return result


def _in_sync(session: Session, feeds: Sequence[FeedSettings]) -> bool:
    """Whether the feeds table already says what ``feeds`` say (the usual start): every
    feed there, unforgotten, with its name, state and intervals, and no other feed
    enabled. Read as plain columns; :func:`sync_feeds` loads rows only to change them."""
    rows = {url: rest for url, *rest in session.execute(select(
        Feed.url, Feed.name, Feed.enabled, Feed.interval_seconds, Feed.max_interval_seconds,
        Feed.forgotten_at))}
    for fs in feeds:
        if rows.pop(fs.url, None) != [fs.name, fs.enabled, fs.interval,
                                      max(fs.max_interval, fs.interval), None]:
            return False
    return not any(enabled for _name, enabled, *_ in rows.values())


def _start_afresh(row: Feed, url: str) -> None:
    """Point ``row`` at ``url`` with none of what fetching its old URL learnt: no
    validators, no move, no errors, due now, never parsed (so what the new URL lists
    first is its backlog). A poll of the old URL in flight loses its lease, so its
    outcome is not recorded on the row."""
    row.url = url
    row.fetch_url = row.fetch_url_checked_at = row.title = row.parse_warning = None
    row.etag = row.last_modified = row.body_hash = None
    row.last_attempt_at = row.last_success_at = row.last_changed_at = None
    row.last_status, row.last_error, row.consecutive_failures = None, None, 0
    row.next_poll_at = row.poll_interval_seconds = None
    row.lease_owner = row.lease_until = None


@dataclass
class SyncResult:
    """Which feeds a config sync added, changed, enabled, disabled or moved to a new URL
    (by name; a move as (name, old URL, new URL))."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    enabled: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)
    moved: list[tuple[str, str, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.enabled or self.disabled or self.moved)

    def render(self) -> str:
        parts = [f"{label} {', '.join(repr(n) for n in names)}"
                 for label, names in (("added", self.added), ("changed", self.changed),
                                      ("enabled", self.enabled), ("disabled", self.disabled))
                 if names]
        parts += [f"moved {name!r} from <{old}> to <{new}>" for name, old, new in self.moved]
        return "; ".join(parts) or "no feed changed"


@dataclass(frozen=True)
class Forgotten:
    """What :func:`forget_feed` did: the row deleted (no item named it) or kept, marked
    forgotten, for the ``items`` that name it; and the pending entries dropped."""

    name: str
    url: str
    deleted: bool
    items: int
    entries: int


def forget_feed(session: Session, url: str, now: datetime) -> Forgotten:
    """Take the disabled feed at ``url`` out of every listing: its row is deleted, or,
    when stored items name it, kept with ``forgotten_at`` set and its fetch state
    cleared. Its entries still waiting for a page are dropped. Raises LookupError when
    no such feed is known and ValueError when it is enabled."""
    row = session.scalar(select(Feed).where(Feed.url == url).with_for_update())
    if row is None or row.forgotten_at is not None:
        raise LookupError(url)
    if row.enabled:
        raise ValueError(f"feed {row.name!r} is enabled")
    items = session.scalar(select(func.count()).where(Item.feed_id == row.id)) or 0
    entries = rowcount(session.execute(delete(Entry).where(Entry.feed_id == row.id)))
    name = row.name
    if items:
        _start_afresh(row, url)
        row.forgotten_at = now
    else:
        session.delete(row)
    session.flush()
    return Forgotten(name, url, deleted=not items, items=items, entries=entries)


def make_due(session: Session, url: str, now: datetime) -> datetime | None:
    """Make the enabled feed at ``url`` due now (a worker polls it at its next look),
    whatever its schedule or backoff. Returns when it was last polled (to tell the next
    poll by). Raises LookupError when no enabled feed has that URL."""
    row = session.scalar(select(Feed).where(Feed.url == url, Feed.enabled.is_(True)))
    if row is None:
        raise LookupError(url)
    row.next_poll_at = now
    session.flush()
    return row.last_attempt_at


# A FeedState's fields, selected as columns of the same names rather than as ORM
# objects (loading 2,000 Feed objects into a session took 0.1 s of a start).
_STATE_COLUMNS = tuple(getattr(Feed, f.name) for f in fields(FeedState))


def _feed_state(row: Row[Any]) -> FeedState:
    """The FeedState of a row of ``_STATE_COLUMNS``."""
    return FeedState(**row._mapping)


def _unclaimed(now: datetime) -> ColumnElement[bool]:
    return or_(Feed.lease_until.is_(None), Feed.lease_until <= now)


def _due(now: datetime) -> ColumnElement[bool]:
    return or_(Feed.next_poll_at.is_(None), Feed.next_poll_at <= now)


def claim_feeds(session: Session, owner: str, now: datetime, lease_until: datetime,
                limit: int, *, everything: bool = False,
                urls: Sequence[str] | None = None) -> list[FeedState]:
    """Claim up to ``limit`` enabled feeds that are due at ``now`` (every enabled one
    with ``everything``; of those, only the ones at ``urls`` when given) and that no
    live lease holds, most overdue first, for ``owner`` until ``lease_until``. Returns
    them in id order."""
    pick = (select(Feed.id)
            .where(Feed.enabled.is_(True), _unclaimed(now), true() if everything else _due(now),
                   true() if urls is None else Feed.url.in_(list(urls)))
            .order_by(Feed.next_poll_at.asc().nulls_first(), Feed.id)
            .limit(limit)
            .with_for_update(skip_locked=True))
    claimed = session.execute(
        update(Feed).where(Feed.id.in_(pick.scalar_subquery()), _unclaimed(now))
        .values(lease_owner=owner, lease_until=lease_until)
        .returning(*_STATE_COLUMNS)
        .execution_options(synchronize_session=False))
    return sorted((_feed_state(f) for f in claimed), key=lambda f: f.id)


def feed_states(session: Session, ids: Iterable[int]) -> dict[int, FeedState]:
    """The feeds ``ids``, by id (for the entries a worker claimed of any feed)."""
    wanted = list(set(ids))
    return {f.id: _feed_state(f)
            for f in session.execute(select(*_STATE_COLUMNS).where(Feed.id.in_(wanted)))}


def work_waiting(session: Session) -> bool:
    """Whether an enabled feed was never parsed (its first poll lists its backlog) or
    an entry waits for its page: what makes a start extract pages soon."""
    return session.scalar(select(
        select(Feed.id).where(Feed.enabled.is_(True), Feed.body_hash.is_(None)).exists()
        | select(Entry.guid).exists())) or False


def next_due_at(session: Session, now: datetime) -> datetime | None:
    """When the next enabled feed that no live lease holds falls due (None if none)."""
    return session.scalar(select(func.min(Feed.next_poll_at))
                          .where(Feed.enabled.is_(True), _unclaimed(now)))


@dataclass(frozen=True)
class Backlog:
    due: int  # enabled feeds due and not being polled
    polling: int  # enabled feeds under a live lease
    oldest_overdue_seconds: float  # how late the most overdue feed is (0 if none)
    failing: int  # enabled feeds whose last poll failed
    enabled: int
    entries_found: int = 0  # entries recorded, their page not yet tried (a poll in
    # flight, or one stopped by a shutdown or a crash: the feed's next poll takes them)
    entries_retrying: int = 0  # entries waiting for their page to be tried again
    entries_claimed: int = 0  # of the found and waiting, those a worker is on now


def backlog(session: Session, now: datetime) -> Backlog:
    """How far polling is behind, for ``monitor status`` and ``/metrics``."""
    enabled = Feed.enabled.is_(True)
    due = session.scalar(select(func.count()).where(enabled, _due(now), _unclaimed(now))) or 0
    polling = session.scalar(select(func.count()).where(enabled, Feed.lease_until > now)) or 0
    oldest = session.scalar(select(func.min(Feed.next_poll_at))
                            .where(enabled, Feed.next_poll_at <= now))
    failing = session.scalar(select(func.count()).where(enabled, Feed.consecutive_failures > 0))
    total = session.scalar(select(func.count()).where(enabled)) or 0
    found, retrying, claimed = session.execute(select(
        func.count().filter(Entry.attempts == 0), func.count().filter(Entry.attempts > 0),
        func.count().filter(Entry.lease_until > now)).select_from(Entry)).one()
    return Backlog(due=due, polling=polling,
                   oldest_overdue_seconds=(now - oldest).total_seconds() if oldest else 0.0,
                   failing=failing or 0, enabled=total, entries_found=found or 0,
                   entries_retrying=retrying or 0, entries_claimed=claimed or 0)


def record_feed_success(
    session: Session,
    feed_id: int,
    *,
    now: datetime,
    status: int,
    next_poll_at: datetime,
    poll_interval: int | None,
    owner: str,
    etag: str | None,
    last_modified: str | None,
    changed: bool = False,
    body_hash: str | None = None,
    title: str | None = None,
    parse_warning: str | None = None,
    parsed: bool = False,
    move: Move | None = None,
) -> bool:
    """A poll that worked; releases ``owner``'s lease. ``parsed`` says whether the body
    was read this time: only then do the body hash, title and parse warning change;
    ``changed``: it found new entries; ``move``: where the feed now lives. Returns
    False, recording nothing, when ``owner`` no longer holds the lease (it lapsed and
    another worker took the feed)."""
    values: dict[str, object] = dict(
        last_attempt_at=now, last_success_at=now, last_status=status, last_error=None,
        consecutive_failures=0, next_poll_at=next_poll_at,
        poll_interval_seconds=poll_interval, lease_owner=None, lease_until=None,
    )
    if changed:
        values["last_changed_at"] = now
    # A 304 may omit validators; keep the ones we have rather than lose them.
    if etag is not None:
        values["etag"] = etag
    if last_modified is not None:
        values["last_modified"] = last_modified
    if move is not None:
        values.update(fetch_url=move.fetch_url, fetch_url_checked_at=move.checked_at)
    if parsed:
        values.update(body_hash=body_hash, parse_warning=parse_warning)
        if title:
            values["title"] = title
    return _update_held(session, feed_id, owner, values)


def record_feed_failure(
    session: Session, feed_id: int, *, now: datetime, status: int | None, error: str,
    next_poll_at: datetime, owner: str,
) -> bool:
    """A poll that failed; releases ``owner``'s lease. False when the lease was lost."""
    return _update_held(session, feed_id, owner, dict(
        last_attempt_at=now, last_status=status, last_error=error[:2000],
        consecutive_failures=Feed.consecutive_failures + 1, next_poll_at=next_poll_at,
        lease_owner=None, lease_until=None,
    ))


def _feeds_table() -> Table:
    table = Feed.__table__
    assert isinstance(table, Table)
    return table


@functools.lru_cache(maxsize=64)
def _held_update(keys: tuple[str, ...]) -> Update:
    """The UPDATE of one leased feed setting ``keys``, built once per set of keys: every
    value is a parameter, so SQLAlchemy compiles it once too."""
    table = _feeds_table()
    return (update(table)
            .where(table.c.id == bindparam("w_id"), table.c.lease_owner == bindparam("w_owner"))
            .values({k: bindparam(f"v_{k}") for k in keys}))


def _update_held(session: Session, feed_id: int, owner: str, values: dict[str, object]) -> bool:
    # A Core UPDATE of the table, without the ORM's bulk-update bookkeeping (no Feed
    # object is loaded here): most of the cost of recording a poll that got a 304.
    if any(isinstance(v, ColumnElement) for v in values.values()):
        table = _feeds_table()
        stmt = (update(table).where(table.c.id == feed_id, table.c.lease_owner == owner)
                .values(**values))
        return bool(rowcount(session.connection().execute(stmt)))
    params = {f"v_{k}": v for k, v in values.items()}
    params.update(w_id=feed_id, w_owner=owner)
    return bool(rowcount(session.connection().execute(_held_update(tuple(sorted(values))),
                                                      params)))


@dataclass(frozen=True)
class Move:
    """Where a permanent redirect moved a feed (None: it lives at its configured URL
    again), and when the configured URL last led there."""

    fetch_url: str | None
    checked_at: datetime | None


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
    poll_interval_seconds: int | None
    max_interval_seconds: int | None
    last_changed_at: datetime | None
    lease_owner: str | None
    lease_until: datetime | None
    id: int = 0

    def state(self, now: datetime) -> str:
        """disabled | polling | failing | new | ok"""
        if not self.enabled:
            return "disabled"
        if self.lease_owner and self.lease_until and self.lease_until > now:
            return "polling"
        if self.consecutive_failures:
            return "failing"
        return "new" if self.last_attempt_at is None else "ok"


def list_feeds(session: Session, *, forgotten: bool = False,
               url: str | None = None) -> list[FeedRow]:
    """The feeds with their item counts, in the order they were added; the forgotten
    ones (see :func:`forget_feed`) only with ``forgotten``; only the one at ``url``."""
    counts = select(Item.feed_id, func.count().label("n")).group_by(Item.feed_id)
    if url is not None:  # its items counted, not every feed's
        counts = counts.where(Item.feed_id.in_(select(Feed.id).where(Feed.url == url)))
    sub = counts.subquery()
    q = (select(Feed, func.coalesce(sub.c.n, 0))
         .outerjoin(sub, sub.c.feed_id == Feed.id).order_by(Feed.id))
    if url is not None:
        q = q.where(Feed.url == url)
    if not forgotten:
        q = q.where(Feed.forgotten_at.is_(None))
    return [
        FeedRow(
            name=f.name, url=f.url, fetch_url=f.fetch_url, title=f.title, enabled=f.enabled,
            interval_seconds=f.interval_seconds, last_attempt_at=f.last_attempt_at,
            last_success_at=f.last_success_at, last_status=f.last_status,
            last_error=f.last_error, consecutive_failures=f.consecutive_failures,
            parse_warning=f.parse_warning, next_poll_at=f.next_poll_at, items=n,
            poll_interval_seconds=f.poll_interval_seconds,
            max_interval_seconds=f.max_interval_seconds, last_changed_at=f.last_changed_at,
            lease_owner=f.lease_owner, lease_until=f.lease_until, id=f.id,
        )
        for f, n in session.execute(q)
    ]
