"""Entries whose article page is still to be fetched: recorded when their feed is
parsed, and kept until they are stored as items, across a shutdown or a crash, and while
they wait for their page to be tried again (see models.Entry). A worker works on an
entry under a lease, claimed here; leases are renewed and given back with the feeds'
(:mod:`monitor.store.leases`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, bindparam, delete, func, or_, select, tuple_, update
from sqlalchemy.orm import Session

from monitor.models import Entry, Feed
from monitor.store.sql import insert


@dataclass(frozen=True)
class WaitingEntry:
    guid: str
    link: str | None
    title: str | None
    author: str | None
    published_at: datetime | None
    content: str | None
    summary: str | None
    language: str | None
    attempts: int  # page fetches tried so far
    next_attempt_at: datetime
    last_error: str | None
    leased: bool = False  # a live lease holds it: a worker is working on it
    backlog: bool = False  # found by its feed's first parse (see models.Entry.backlog)


def _waiting(e: Entry, now: datetime | None = None) -> WaitingEntry:
    return WaitingEntry(e.guid, e.link, e.title, e.author, e.published_at, e.content,
                        e.summary, e.language, e.attempts, e.next_attempt_at, e.last_error,
                        leased=now is not None and e.lease_until is not None
                        and e.lease_until > now, backlog=e.backlog)


def _unleased(now: datetime) -> ColumnElement[bool]:
    return or_(Entry.lease_until.is_(None), Entry.lease_until <= now)


def waiting_entries(session: Session, feed_id: int, now: datetime) -> dict[str, WaitingEntry]:
    """The feed's recorded entries, by GUID (``leased``: a worker is on it now)."""
    rows = session.scalars(select(Entry).where(Entry.feed_id == feed_id))
    return {e.guid: _waiting(e, now) for e in rows}


def claim_entries(session: Session, owner: str, now: datetime, lease_until: datetime,
                  limit: int, *, feed_id: int | None = None
                  ) -> list[tuple[int, WaitingEntry]]:
    """Claim up to ``limit`` entries that are due at ``now`` and that no live lease
    holds, of ``feed_id`` or of any enabled feed, for ``owner`` until ``lease_until``;
    the longest due first. Rows another transaction is claiming are skipped
    (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so workers claiming at once share them
    out. Returns (feed id, entry) pairs."""
    if limit <= 0:
        return []
    where = [Entry.next_attempt_at <= now, _unleased(now)]
    where.append(Entry.feed_id == feed_id if feed_id is not None
                 else Entry.feed_id.in_(select(Feed.id).where(Feed.enabled.is_(True))))
    pick = (select(Entry.feed_id, Entry.guid).where(*where)
            .order_by(Entry.next_attempt_at, Entry.created_at)
            .limit(limit).with_for_update(skip_locked=True))
    claimed = session.scalars(
        update(Entry).where(tuple_(Entry.feed_id, Entry.guid).in_(pick), _unleased(now))
        .values(lease_owner=owner, lease_until=lease_until)
        .returning(Entry)
        .execution_options(synchronize_session=False))
    return [(e.feed_id, _waiting(e)) for e in claimed]


def next_entry_due_at(session: Session, now: datetime) -> datetime | None:
    """When the next entry of an enabled feed that no live lease holds falls due."""
    return session.scalar(select(func.min(Entry.next_attempt_at)).where(
        _unleased(now), Entry.feed_id.in_(select(Feed.id).where(Feed.enabled.is_(True)))))


def release_entry_leases(session: Session, owner: str,
                         keys: Iterable[tuple[int, str]]) -> int:
    """Give back ``owner``'s leases on the entries ``keys`` ((feed id, GUID)) without
    recording anything: work that ended unrecorded (the database failed meanwhile),
    which the heartbeat would otherwise renew for as long as ``owner`` lives. They stay
    due. Returns how many."""
    wanted = list(set(keys))
    released = 0
    for start in range(0, len(wanted), 200):
        released += int(getattr(session.execute(
            update(Entry).where(Entry.lease_owner == owner,
                                tuple_(Entry.feed_id, Entry.guid).in_(wanted[start:start + 200]))
            .values(lease_owner=None, lease_until=None)), "rowcount", 0) or 0)
    return released


def record_entries(session: Session, feed_id: int, entries: Iterable[WaitingEntry], *,
                   now: datetime) -> None:
    """Record entries just found, before their pages are fetched: one that is not stored
    by the end of its poll (a shutdown, a crash, the database gone) is worked on at the
    feed's next poll, whether or not the feed still lists it. An entry recorded already
    (another worker whose lease lapsed found it too) is left as it is."""
    entries = list(entries)
    rows = [{"feed_id": feed_id, "guid": e.guid, "link": e.link, "title": e.title,
             "author": e.author, "published_at": e.published_at, "content": e.content,
             "summary": e.summary, "language": e.language, "attempts": e.attempts,
             "next_attempt_at": e.next_attempt_at, "last_error": e.last_error,
             "last_status": None, "created_at": now, "backlog": e.backlog} for e in entries]
    if not rows:
        return
    for start in range(0, len(rows), 200):
        session.execute(insert(session, Entry).on_conflict_do_nothing(), rows[start:start + 200])
    soonest = min(e.next_attempt_at for e in entries)
    session.execute(update(Feed).where(
        Feed.id == feed_id,
        or_(Feed.entries_retry_at.is_(None), Feed.entries_retry_at > soonest))
        .values(entries_retry_at=soonest))


def wait_entry(session: Session, feed_id: int, entry: WaitingEntry, *,
               last_status: int | None, now: datetime) -> None:
    """Keep ``entry`` (with its attempts so far and next attempt) until its retry."""
    row = session.get(Entry, (feed_id, entry.guid))
    if row is None:
        row = Entry(feed_id=feed_id, guid=entry.guid, created_at=now)
        session.add(row)
    row.link, row.title, row.author = entry.link, entry.title, entry.author
    row.published_at, row.content, row.summary = entry.published_at, entry.content, entry.summary
    row.language, row.attempts = entry.language, entry.attempts
    row.next_attempt_at = entry.next_attempt_at
    row.last_error = (entry.last_error or "")[:2000] or None
    row.last_status = last_status
    row.lease_owner = row.lease_until = None  # any worker may take it when it is due
    session.flush()
    # The feed's poll takes it then, unless a worker's dispatcher has done so before.
    session.execute(update(Feed).where(
        Feed.id == feed_id,
        or_(Feed.entries_retry_at.is_(None), Feed.entries_retry_at > entry.next_attempt_at))
        .values(entries_retry_at=entry.next_attempt_at))


def forget_entries(session: Session, feed_id: int, guids: Iterable[str]) -> None:
    """The entries are stored (or given up): they wait no more."""
    wanted = list(dict.fromkeys(guids))
    conn = session.connection()  # once per stored entry: the lean path
    if len(wanted) == 1:
        conn.execute(_FORGET_ONE, {"feed_id": feed_id, "guid": wanted[0]})
        return
    for start in range(0, len(wanted), 500):
        conn.execute(delete(Entry).where(Entry.feed_id == feed_id,
                                         Entry.guid.in_(wanted[start:start + 500])))


# Built once: building a DELETE with an IN list each time cost more than running it,
# for every entry stored (0.7 ms; py-spy in benchmarks/ingest.py).
_FORGET_ONE = delete(Entry).where(Entry.feed_id == bindparam("feed_id"),
                                  Entry.guid == bindparam("guid"))


def schedule_entry_retries(session: Session, feed_id: int) -> datetime | None:
    """Record on the feed when its soonest recorded entry is due, which tells its next
    poll to look at them (those a worker holds too: it may stop before it is done);
    returns it."""
    soonest = session.scalar(select(func.min(Entry.next_attempt_at))
                             .where(Entry.feed_id == feed_id))
    session.execute(update(Feed).where(Feed.id == feed_id).values(entries_retry_at=soonest))
    return soonest
