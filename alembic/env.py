"""Alembic environment: migrations run on a connection given by monitor, or on
MONITOR_DATABASE_URL when alembic is run by hand (``alembic check``)."""

from __future__ import annotations

import os
from logging.config import fileConfig

from sqlalchemy import Connection

from alembic import context
from monitor.db import make_engine
from monitor.models import Base

config = context.config
target_metadata = Base.metadata

if config.config_file_name is not None and "connection" not in config.attributes:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


# The full-text index (monitor.store.search) is no model: an FTS5 table (and its
# shadow tables) on SQLite, a table with a tsvector on PostgreSQL.
_NOT_MODELS = ("items_fts", "item_search")


def _include_name(name: str | None, type_: str, _parents: object) -> bool:
    return not (type_ == "table" and name is not None and name.startswith(_NOT_MODELS))


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER much
        compare_type=True,
        include_name=_include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = os.environ.get("MONITOR_DATABASE_URL")
    if not url:
        raise SystemExit("set MONITOR_DATABASE_URL to the database alembic should work on")
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run_migrations_online()
