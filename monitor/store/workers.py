"""Workers: the ``monitor run`` processes sharing the database, with heartbeats."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, select, update
from sqlalchemy.orm import Session

from monitor.models import Worker


@dataclass(frozen=True)
class WorkerRow:
    id: str
    hostname: str
    pid: int
    version: str
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None
    config_hash: str | None = None  # Settings.shared_fingerprint of its config
    config_since: datetime | None = None  # since when that config runs on some worker

    def state(self, now: datetime, lease_seconds: int) -> str:
        """running | stopped | lost (no heartbeat for two lease periods: killed or hung)."""
        if self.stopped_at is not None:
            return "stopped"
        if (now - self.heartbeat_at).total_seconds() > 2 * lease_seconds:
            return "lost"
        return "running"


def register_worker(session: Session, worker_id: str, hostname: str, pid: int, version: str,
                    now: datetime) -> None:
    session.add(Worker(id=worker_id, hostname=hostname, pid=pid, version=version,
                       started_at=now, heartbeat_at=now))
    session.flush()


def heartbeat(session: Session, worker_id: str, now: datetime) -> None:
    session.execute(update(Worker).where(Worker.id == worker_id).values(heartbeat_at=now))


def worker_stopped(session: Session, worker_id: str, now: datetime) -> None:
    session.execute(update(Worker).where(Worker.id == worker_id)
                    .values(heartbeat_at=now, stopped_at=now))


def list_workers(session: Session, since: datetime) -> list[WorkerRow]:
    """Workers seen (a heartbeat or a stop) since ``since``, newest first."""
    q = select(Worker).where(Worker.heartbeat_at >= since).order_by(Worker.started_at.desc())
    return [_row(w) for w in session.scalars(q)]


def _row(w: Worker) -> WorkerRow:
    return WorkerRow(w.id, w.hostname, w.pid, w.version, w.started_at, w.heartbeat_at,
                     w.stopped_at, w.config_hash, w.config_since)


def _live(now: datetime, lease_seconds: int) -> ColumnElement[bool]:
    """Workers running now: not stopped, and a heartbeat within two lease periods."""
    return and_(Worker.stopped_at.is_(None),
                Worker.heartbeat_at >= now - timedelta(seconds=2 * lease_seconds))


def live_configs(session: Session, now: datetime, lease_seconds: int) -> list[WorkerRow]:
    """The running workers that recorded their config, newest config first."""
    q = (select(Worker).where(_live(now, lease_seconds), Worker.config_hash.is_not(None))
         .order_by(Worker.config_since.desc(), Worker.id))
    return [_row(w) for w in session.scalars(q)]


def record_worker_config(session: Session, worker_id: str, config_hash: str, now: datetime,
                         lease_seconds: int) -> datetime:
    """Record that ``worker_id`` runs the config ``config_hash``. Returns since when that
    config runs: as long as another running worker has run it, else from ``now`` (it is
    new, or back after every worker running it stopped: a roll-back)."""
    since = session.scalar(
        select(func.min(Worker.config_since))
        .where(_live(now, lease_seconds), Worker.config_hash == config_hash,
               Worker.id != worker_id)) or now
    session.execute(update(Worker).where(Worker.id == worker_id)
                    .values(config_hash=config_hash, config_since=since))
    return since
