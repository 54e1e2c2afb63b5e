"""Lease upkeep shared by feeds, entries and digests: renewing and giving back a
worker's claims.

Claiming differs per table (what is due), so it lives with each table
(:func:`monitor.store.feeds.claim_feeds`, :func:`monitor.store.entries.claim_entries`,
:func:`monitor.store.digests.claim_digests`).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import Result, update
from sqlalchemy.orm import Session

from monitor.models import Digest, Entry, Feed


def rowcount(result: Result[object]) -> int:
    """Rows an UPDATE touched (0 where the driver does not say)."""
    return int(getattr(result, "rowcount", 0) or 0)


def renew_leases(session: Session, owner: str, lease_until: datetime) -> int:
    """Extend every feed, entry and digest lease ``owner`` holds. Returns how many."""
    return sum(rowcount(session.execute(update(model).where(model.lease_owner == owner)
                                        .values(lease_until=lease_until)))
               for model in (Feed, Entry, Digest))


def release_leases(session: Session, owner: str) -> tuple[int, int, int]:
    """Give up ``owner``'s leases without recording anything: its feeds and entries stay
    due and its digests pending. Returns how many (feeds, entries, digests)."""
    feeds, entries, digests = (
        rowcount(session.execute(update(model).where(model.lease_owner == owner)
                                 .values(lease_owner=None, lease_until=None)))
        for model in (Feed, Entry, Digest))
    return feeds, entries, digests


def release_feed_leases(session: Session, owner: str, feed_ids: Collection[int]) -> int:
    """Give back ``owner``'s leases on ``feed_ids`` without recording anything: polls
    that ended without their outcome written (the database failed meanwhile), which
    :func:`renew_leases` would otherwise hold for as long as ``owner`` lives. The feeds
    stay due, and so do the entries of theirs ``owner`` holds. Returns how many feeds."""
    ids = list(feed_ids)
    session.execute(update(Entry).where(Entry.lease_owner == owner, Entry.feed_id.in_(ids))
                    .values(lease_owner=None, lease_until=None))
    return rowcount(session.execute(
        update(Feed).where(Feed.lease_owner == owner, Feed.id.in_(ids))
        .values(lease_owner=None, lease_until=None)))


def release_every_feed_lease(session: Session) -> int:
    """Give back every feed and entry lease, whoever holds it: for a start on SQLite,
    where the lock on the database file proves that no other ``monitor run`` lives (a
    lease there is a dead process's). Returns how many feeds."""
    session.execute(update(Entry).where(Entry.lease_owner.is_not(None))
                    .values(lease_owner=None, lease_until=None))
    return rowcount(session.execute(update(Feed).where(Feed.lease_owner.is_not(None))
                                    .values(lease_owner=None, lease_until=None)))
