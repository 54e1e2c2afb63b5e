"""Small facts about the stored data (the ``meta`` table): index versions, the
progress of a resumable job."""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from monitor.models import Meta


def get_meta(session: Session, name: str, *, lock: bool = False) -> str | None:
    """A meta value; with ``lock``, the row stays locked (``FOR UPDATE`` on PostgreSQL)
    until the transaction ends, so workers reading it to change it take turns."""
    q = select(Meta.value).where(Meta.name == name)
    if lock and session.get_bind().dialect.name == "sqlite":
        # SQLite ignores FOR UPDATE and pysqlite begins the transaction only at the
        # first write: write first (a no-op), so the read below already holds the
        # database's write lock and sees the latest value.
        session.execute(update(Meta).where(Meta.name == name).values(value=Meta.value))
    return session.scalar(q.with_for_update() if lock else q)


def delete_meta(session: Session, name: str) -> None:
    session.execute(delete(Meta).where(Meta.name == name))


def set_meta(session: Session, name: str, value: str) -> None:
    row = session.get(Meta, name)
    if row is None:
        session.add(Meta(name=name, value=value))
    else:
        row.value = value
    session.flush()
