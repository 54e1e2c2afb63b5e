"""SQL that differs by database, written once for the store's modules."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert(session: Session, table: Any) -> Any:
    """``INSERT`` into ``table`` in the session's dialect: PostgreSQL's or SQLite's, the
    two with ``ON CONFLICT`` (``on_conflict_do_nothing`` / ``on_conflict_do_update``)."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(table)
