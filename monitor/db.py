"""Engine and session factories, and schema upgrades. Nothing happens at import.

SQLite runs in WAL mode with foreign keys on and a busy timeout, so a reader
(``monitor items list``) never blocks the daemon. PostgreSQL is used through
psycopg 3. Migrations are Alembic revisions in the top-level ``alembic/``, shipped
inside the installed package as ``monitor/migrations`` (see :func:`migrations_dir`).
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor import shipped
from monitor.errors import DaemonRunning, MigrationError, StoreError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

# Alembic is imported only where a schema is changed or its migrations are read in
# full: importing it and loading every migration took ~0.15 s of every start, and a
# start whose schema is current needs neither (see :func:`upgrade`).

log = logging.getLogger(__name__)

# Any constant will do; it only has to be the same for every monitor process.
_PG_MIGRATION_LOCK = 0x6D6F6E69746F72


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An Engine for ``url``; creates the SQLite file's directory if needed."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")  # safe with WAL: a crash loses no committed data
    cur.execute("PRAGMA busy_timeout=30000")
    # 32 MiB of pages per connection (the default is 2): the story index and the term
    # frequencies are read at random; at 100k stories the join took 15-20% less.
    cur.execute("PRAGMA cache_size=-32768")
    cur.close()


@contextmanager
def hold_sqlite_lock(url: str) -> Iterator[None]:
    """One daemon per SQLite file: hold an exclusive lock on ``FILE.lock`` while the
    block runs. Raises DaemonRunning, naming the holder's pid, when another process
    holds it. The kernel drops the lock when its holder dies, even by ``kill -9``.
    Does nothing for PostgreSQL (workers share it through leases) or ``:memory:``."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database \
            or parsed.database == ":memory:":
        yield
        return
    path = Path(parsed.database + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            raise DaemonRunning(parsed.database, holder) from None
        try:
            f.seek(0)
            f.truncate()
            f.write(f"{os.getpid()}\n")
            f.flush()
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def describe(engine: Engine) -> str:
    """The engine's URL with any password hidden, for messages."""
    return engine.url.render_as_string(hide_password=True)


def check_connection(engine: Engine) -> None:
    """Raise :class:`StoreError` unless the database answers."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot connect to {describe(engine)}: {reason(exc)}") from exc


def reason(exc: SQLAlchemyError) -> str:
    """The driver's own message, first line only: enough for a log line."""
    orig = getattr(exc, "orig", None)
    return str(orig or exc).strip().splitlines()[0]


def migrations_dir() -> Path:
    """The Alembic environment: inside the installed package (``monitor/migrations``,
    from a wheel), else the top-level ``alembic/`` folder of the checkout the package
    runs from (an editable install, a source tree). Found through the package, never
    the working directory. Raises MigrationError when neither holds one."""
    where = shipped.folder("migrations", "alembic", holds=("env.py", "versions"))
    if where is None:
        raise MigrationError(
            "the database migrations are missing from this installation of monitor "
            f"(looked for {shipped.PACKAGE / 'migrations'} and "
            f"{shipped.PACKAGE.parent / 'alembic'})",
            hint="reinstall monitor from its wheel or its source checkout")
    return where


def alembic_config(engine: Engine | None = None) -> AlembicConfig:
    """Raises MigrationError when the migrations cannot be found."""
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(migrations_dir()))
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str | None:
    """The newest revision the migrations know. Raises MigrationError when they cannot
    be read."""
    plain = _plain_head()
    if plain is not None:
        return plain
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError as AlembicError

    try:
        return ScriptDirectory.from_config(alembic_config()).get_current_head()
    except AlembicError as exc:
        raise MigrationError(f"the database migrations cannot be read: {exc}") from exc


_REVISION_LINE = re.compile(
    r"^(down_revision|revision)\b[^=\n]*=\s*(?:None|(['\"])([0-9A-Za-z_]+)\2)\s*$", re.M)


def _plain_head() -> str | None:
    """The newest revision, read from the ``revision`` and ``down_revision`` lines of
    the migration files without Alembic: the one revision no other file follows.
    None when the files do not say it plainly (a merge, branches, a line written
    another way): then Alembic reads them."""
    try:
        files = list((migrations_dir() / "versions").glob("*.py"))
        revisions: set[str] = set()
        parents: set[str] = set()
        for f in files:
            found = dict((m.group(1), m.group(3)) for m in _REVISION_LINE.finditer(
                f.read_text(encoding="utf-8")))
            if "revision" not in found or "down_revision" not in found \
                    or found["revision"] is None:
                return None
            revisions.add(found["revision"])
            if found["down_revision"] is not None:
                parents.add(found["down_revision"])
    except (OSError, UnicodeDecodeError, MigrationError):
        return None
    heads = revisions - parents
    if len(revisions) != len(files) or len(heads) != 1 or not parents <= revisions:
        return None
    return heads.pop()


def current_revision(engine: Engine) -> str | None:
    """The schema's revision: None for an empty database. Raises SQLAlchemyError."""
    with engine.connect() as conn:
        return _revision_of(conn)


def _revision_of(conn: Connection) -> str | None:
    """The revision ``alembic_version`` holds, read on ``conn`` (in its transaction):
    what Alembic's MigrationContext reads, without importing Alembic."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(rows) > 1:
        raise MigrationError(f"the database has several schema revisions ({', '.join(rows)}): "
                             "it was upgraded by a migration history with branches")
    return str(rows[0]) if rows else None


def upgrade(engine: Engine) -> tuple[str | None, str | None]:
    """Bring the schema to the newest revision. Returns (before, after) revisions.

    On PostgreSQL an advisory lock makes concurrent starts of several workers
    take turns. Raises :class:`MigrationError`.
    """
    check_connection(engine)
    head = _plain_head()
    if head is not None:
        try:
            current = current_revision(engine)
        except SQLAlchemyError as exc:
            raise MigrationError(f"{describe(engine)}: reading the schema revision failed: "
                                 f"{reason(exc)}") from exc
        if current == head:  # the usual start: nothing to migrate, Alembic not loaded
            return head, head
    from alembic.util.exc import CommandError as AlembicError

    from alembic import command

    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
                conn.commit()
            elif conn.dialect.name == "sqlite":
                # pysqlite opens a transaction only before INSERT/UPDATE/DELETE, so
                # DDL would commit statement by statement: a crash mid-upgrade left
                # tables without the revision that made them, and every later start
                # failed on "table … already exists". One explicit transaction makes
                # the whole upgrade atomic (SQLite's DDL is transactional); IMMEDIATE
                # takes the write lock first, so two processes upgrading take turns.
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                before = _revision_of(conn)
                cfg = alembic_config()
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                conn.commit()
                after = _revision_of(conn)
            finally:
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATION_LOCK})
                    conn.commit()
    except SQLAlchemyError as exc:
        raise MigrationError(f"{describe(engine)}: upgrade failed: {reason(exc)}") from exc
    except (AlembicError, ImportError, SyntaxError) as exc:  # a broken migration environment
        raise MigrationError(f"{describe(engine)}: the database migrations cannot be run: "
                             f"{type(exc).__name__}: {exc}") from exc
    if before != after:
        log.info("database %s upgraded from %s to %s", describe(engine), before, after)
    return before, after


def backup(engine: Engine, target: Path) -> int:
    """Copy the SQLite database into the new file ``target``, consistent and compact
    (``VACUUM INTO``: one read transaction, so a daemon may go on writing meanwhile).
    Returns the copy's size in bytes. Raises StoreError: PostgreSQL (use pg_dump), a
    ``target`` that exists, or the copy failed."""
    if engine.dialect.name != "sqlite":
        raise StoreError(
            f"{describe(engine)}: `monitor db backup` copies SQLite files; back PostgreSQL up "
            f"with pg_dump (pg_dump -Fc -f {target} DATABASE_URL) and restore with "
            "pg_restore", hint="")
    if target.exists():
        raise StoreError(f"{target} exists: a backup goes to a new file", hint="")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("VACUUM INTO ?", (str(target),))
    except SQLAlchemyError as exc:
        raise StoreError(f"{describe(engine)}: backup to {target} failed: {reason(exc)}",
                         hint="") from exc
    return target.stat().st_size
