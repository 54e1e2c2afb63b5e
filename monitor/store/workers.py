"""Workers: the ``monitor run`` processes sharing the database, with heartbeats."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
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
    return [WorkerRow(w.id, w.hostname, w.pid, w.version, w.started_at, w.heartbeat_at,
                      w.stopped_at) for w in session.scalars(q)]
