"""What every ``monitor run`` does first: the schema brought up to date, the seeds
loaded and the near-duplicate index made current; and the config's feeds and rules
stored in the shared tables, unless another running worker runs a newer config.

Several workers starting together on PostgreSQL take turns (advisory locks in the
store); on SQLite this runs under the database file's lock
(:func:`monitor.db.hold_sqlite_lock`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor import db, search, store
from monitor.clock import Clock, utcnow
from monitor.config import Settings
from monitor.dedup.index import Deduplicator, load_seeds
from monitor.errors import StoreError
from monitor.pipeline.context import RuleBook
from monitor.stories.joining import Stories, give_stories

log = logging.getLogger(__name__)


def prepare(settings: Settings, engine: Engine, clock: Clock = utcnow) -> None:
    """Schema upgrade and seed load; on SQLite, the claims of a process that died are
    given back. Run while holding :func:`monitor.db.hold_sqlite_lock`. (The config is
    synced by the run itself: :func:`sync_config`.) Raises StoreError, SeedError."""
    db.upgrade(engine)
    if engine.dialect.name == "sqlite":
        _release_dead_claims(db.session_factory(engine))
    load_seeds(db.session_factory(engine), settings, Deduplicator.from_settings(settings),
               clock())
    _give_stories(db.session_factory(engine), settings, clock)
    _fill_search_index(db.session_factory(engine))


def _fill_search_index(sessions: sessionmaker[Session]) -> None:
    """The items stored before the search index (or a reindex) get indexed."""
    try:
        search.fill_index(sessions)
    except SQLAlchemyError as exc:
        raise StoreError(f"indexing stored items for search failed: {db.reason(exc)}") from exc


def _give_stories(sessions: sessionmaker[Session], settings: Settings, clock: Clock) -> None:
    """New seeds, and the items of a database from before stories, get their story."""
    try:
        with sessions() as s:
            waiting = store.count_without_story(s)
        if waiting:
            log.info("stories: giving %d stored items their story (once, after the upgrade)",
                     waiting)
        given = give_stories(sessions, Stories(settings.stories), clock)
    except SQLAlchemyError as exc:
        raise StoreError(f"giving stored items their story failed: {db.reason(exc)}") from exc
    if given:
        log.info("stories: %d seeds and items given their story", given)


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


@dataclass(frozen=True)
class Synced:
    """What a config sync did: the feeds it changed and the rules compiled with their
    ids; ``stale``: the shared tables follow a newer config than this one, and were left
    as they are (why, for the log and ``monitor status``; None when they follow this)."""

    feeds: store.SyncResult
    rules: RuleBook
    stale: str | None = None


def sync_config(sessions: sessionmaker[Session], settings: Settings, now: datetime, *,
                owner: str | None = None) -> Synced:
    """Store the config's feeds and rules in the shared tables, unless a running worker
    runs a newer config (a rolling deploy, a worker restarted from an old image): then
    nothing is disabled or changed for everyone, and this is logged. ``owner``: the
    worker syncing, which records the config it runs (``workers.config_hash``); the
    newest config is the one introduced last among those running workers run. Raises
    StoreError."""
    fingerprint = settings.shared_fingerprint()
    lease = settings.daemon.lease
    try:
        with sessions.begin() as s:
            store.lock_config_sync(s)  # workers starting together take turns
            if owner is not None:
                store.record_worker_config(s, owner, fingerprint, now, lease)
            live = store.live_configs(s, now, lease)
            newest = live[0] if live else None
            stale = None
            if newest is not None and newest.config_hash != fingerprint:
                stale = (f"worker {newest.id} runs a newer config "
                         f"({(newest.config_hash or '')[:12]}, since "
                         f"{newest.config_since.isoformat() if newest.config_since else '?'}) "
                         f"than {settings.path} ({fingerprint[:12]})")
                result = store.SyncResult()
            else:
                result = store.sync_feeds(s, settings.feeds, now)
                store.sync_rules(s, settings.rules, now)
            ids = store.rule_ids(s, [r.name for r in settings.rules])
    except SQLAlchemyError as exc:
        raise StoreError(f"syncing feeds and rules from the config failed: "
                         f"{db.reason(exc)}") from exc
    if stale:
        log.warning("config not written to the shared tables: %s. The feeds and rules stay "
                    "as that config set them (this worker polls and alerts with them: its "
                    "own rules that are not stored are left out); deploy the same config "
                    "everywhere", stale)
    if not stale:
        search.apply_backfills(sessions, settings.rules, now)
    return Synced(result, RuleBook.build(settings.rules, ids, stored_only=stale is not None),
                  stale)
