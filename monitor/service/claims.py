"""A worker's claims (row leases on feeds, entries and digests): renewed, with its heartbeat,
while it works, and given back when it stops."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor import db, store
from monitor.clock import Clock
from monitor.config import Settings

log = logging.getLogger(__name__)


async def renew_forever(sessions: sessionmaker[Session], owner: str, settings: Settings,
                         clock: Clock) -> None:
    while True:
        await asyncio.sleep(settings.daemon.lease / 4)
        await asyncio.to_thread(renew, sessions, owner, settings, clock())


def renew(sessions: sessionmaker[Session], owner: str, settings: Settings,
           now: datetime) -> bool:
    """Renew ``owner``'s leases and record its heartbeat. Returns whether the database
    took them (a failure is logged)."""
    until = now + timedelta(seconds=settings.daemon.lease)
    try:
        with sessions.begin() as s:
            store.renew_leases(s, owner, until)
            store.heartbeat(s, owner, now)
    except SQLAlchemyError as exc:
        log.error("renewing this worker's leases failed: %s", db.reason(exc))
        return False
    return True


def release(sessions: sessionmaker[Session], owner: str) -> None:
    try:
        with sessions.begin() as s:
            feeds, entries, digests = store.release_leases(s, owner)
    except SQLAlchemyError as exc:
        log.error("releasing this worker's claims failed (they lapse by themselves): %s",
                  db.reason(exc))
        return
    if feeds or entries or digests:
        log.info("released %d feeds, %d entries and %d digests not finished", feeds, entries,
                 digests)
