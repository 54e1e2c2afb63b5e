"""What every ``monitor run`` does first: the schema brought up to date, the config's
feeds and rules stored, the seeds loaded and the near-duplicate index made current.

Several workers starting together on PostgreSQL take turns (advisory locks in the
store); on SQLite this runs under the database file's lock
(:func:`monitor.db.hold_sqlite_lock`).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor import db, store
from monitor.clock import Clock, utcnow
from monitor.config import Settings
from monitor.dedup.index import Deduplicator, load_seeds
from monitor.errors import StoreError
from monitor.pipeline.context import RuleBook

log = logging.getLogger(__name__)


def prepare(settings: Settings, engine: Engine, clock: Clock = utcnow) -> None:
    """Schema upgrade, config sync and seed load; on SQLite, the claims of a process
    that died are given back. Run while holding :func:`monitor.db.hold_sqlite_lock`.
    Raises StoreError, SeedError."""
    db.upgrade(engine)
    if engine.dialect.name == "sqlite":
        _release_dead_claims(db.session_factory(engine))
    sync_config(db.session_factory(engine), settings, clock())
    load_seeds(db.session_factory(engine), settings, Deduplicator.from_settings(settings),
               clock())


def _release_dead_claims(sessions: sessionmaker[Session]) -> None:
    """On SQLite one daemon holds the database file's lock, so a feed still claimed at
    start was claimed by a process that died (``kill -9``, a power cut): polling it
    need not wait for its lease to lapse."""
    try:
        with sessions.begin() as s:
            released = store.release_every_feed_lease(s)
    except SQLAlchemyError as exc:
        raise StoreError(f"releasing the claims of a stopped process failed: "
                         f"{db.reason(exc)}") from exc
    if released:
        log.info("%d feeds were still claimed by a monitor process that is no longer "
                 "running; they are polled now", released)


def sync_config(sessions: sessionmaker[Session], settings: Settings,
                now: datetime) -> tuple[store.SyncResult, RuleBook]:
    """Store the config's feeds and rules; returns what changed among the feeds and the
    rules compiled with their ids. Raises StoreError."""
    try:
        with sessions.begin() as s:
            result = store.sync_feeds(s, settings.feeds, now)
            store.sync_rules(s, settings.rules, now)
            ids = store.rule_ids(s, [r.name for r in settings.rules])
    except SQLAlchemyError as exc:
        raise StoreError(f"syncing feeds and rules from the config failed: "
                         f"{db.reason(exc)}") from exc
    return result, RuleBook.build(settings.rules, ids)
