"""Commands that set up and run the daemon: run, seeds load, db upgrade, db backup,
db prune, config show."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import TextIO

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from monitor import db, store
from monitor.cli.common import EXIT_OK
from monitor.config import Settings, listen_problem, public_listen_problem
from monitor.config.channels import require_secrets
from monitor.errors import MonitorError, UsageError


def cmd_run(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    from monitor.ingest.extract_pool import Processor

    if args.listen and not args.once:
        for problem in (listen_problem(args.listen),
                        public_listen_problem(args.listen, settings.web)):
            if problem:
                raise UsageError(f"--listen {args.listen}: {problem}")
    require_secrets(str(settings.path), settings.channels)  # at start, not the first alert
    engine = db.make_engine(settings.database.url)
    processor = Processor.of(settings.extract)
    try:
        with db.hold_sqlite_lock(settings.database.url):
            if _work_waiting(engine):
                # Pages to extract soon: the workers start (and import trafilatura) on
                # the other cores while this process imports and prepares.
                processor.start()
            # aiohttp and the pipeline: imported only for this command; the daemon's
            # own parts (APScheduler, the endpoints, the mailer) only without --once.
            from monitor.service.startup import prepare

            prepare(settings, engine)
            if args.once:
                from monitor.clock import utcnow
                from monitor.service.once import run_once

                summary = asyncio.run(run_once(settings, engine, utcnow, processor=processor))
            else:
                from monitor.service.daemon import run

                summary = asyncio.run(run(settings, engine, once=False, listen=args.listen,
                                          processor=processor))
    finally:
        processor.close()
        engine.dispose()
    if args.once:
        out.write(summary.render() + "\n")
    return EXIT_OK


def _work_waiting(engine: Engine) -> bool:
    """Whether this start will likely extract pages: a new database, a feed never
    parsed (its first poll lists its backlog) or entries waiting for their pages."""
    try:
        if db.current_revision(engine) is None:
            return True
        with db.session_factory(engine)() as s:
            return store.work_waiting(s)
    except (SQLAlchemyError, MonitorError):
        return False  # the start itself reports what is wrong


def cmd_seeds_load(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    from monitor.clock import utcnow
    from monitor.dedup.index import Deduplicator, load_seeds
    from monitor.stories.joining import Stories, give_stories

    engine = db.make_engine(settings.database.url)
    try:
        db.upgrade(engine)
        sessions = db.session_factory(engine)
        counts = load_seeds(sessions, settings, Deduplicator.from_settings(settings), utcnow())
        give_stories(sessions, Stories(settings.stories), utcnow)
    finally:
        engine.dispose()
    out.write(f"seeds from {settings.seeds_path}: {counts['added']} added, "
              f"{counts['updated']} updated, {counts['unchanged']} unchanged\n")
    return EXIT_OK


def cmd_db_upgrade(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    from monitor import search

    engine = db.make_engine(settings.database.url)
    try:
        before, after = db.upgrade(engine)
        indexed = search.fill_index(db.session_factory(engine))
    finally:
        engine.dispose()
    where = db.describe(engine)
    if before == after:
        out.write(f"{where}: already at {after}\n")
    else:
        out.write(f"{where}: upgraded from {before or 'empty'} to {after}\n")
    if indexed:
        out.write(f"{indexed} stored items indexed for search\n")
    return EXIT_OK


def cmd_db_reindex_search(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    from monitor import search

    engine = db.make_engine(settings.database.url)
    try:
        db.upgrade(engine)
        sessions = db.session_factory(engine)
        with sessions.begin() as s:
            total = store.mark_unindexed(s, drop=True)
        out.write(f"{db.describe(engine)}: indexing {total} stored items for search\n")
        indexed = search.fill_index(sessions)
        with sessions() as s:
            counts = store.index_counts(s)
    finally:
        engine.dispose()
    out.write(f"{indexed} items indexed; the index holds {counts.indexed} of "
              f"{counts.stored} stored items\n")
    return EXIT_OK


def cmd_db_backup(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    from pathlib import Path

    from monitor.cli.common import ready_engine

    target = Path(args.path).resolve()
    engine = ready_engine(settings)
    try:
        size = db.backup(engine, target)
    finally:
        engine.dispose()
    out.write(f"{db.describe(engine)}: backed up to {target} ({size:,} bytes); restore by "
              f"pointing [database] url at a copy of it (sqlite:///{target})\n")
    return EXIT_OK


def cmd_db_prune(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    from monitor import store
    from monitor.cli.common import session_factory
    from monitor.clock import utcnow
    from monitor.dedup.index import Deduplicator
    from monitor.service import retention

    r = settings.retention
    with session_factory(settings) as sessions:
        if args.dry_run:
            with sessions() as s:
                due = store.prunable(s, retention.cutoffs(r, utcnow()))
            out.write(f"would prune: {due.texts} texts ({retention.size(due.text_bytes)}), "
                      f"{due.digests} digest bodies ({retention.size(due.digest_bytes)}), "
                      f"{due.workers} worker rows, the index of {due.stories} stories, "
                      f"{due.channel_messages} channel messages; nothing changed\n")
            return EXIT_OK
        done = retention.prune(sessions, Deduplicator.from_settings(settings), r, utcnow)
        with sessions() as s:
            after = retention.report(s)
    out.write(f"pruned {done.render()}\n")
    if after.database_bytes is not None:
        out.write(f"database: {retention.size(after.database_bytes)}"
                  + (" (SQLite reuses the freed pages; `monitor db backup` writes a compact "
                     "copy)" if settings.database.is_sqlite and done.freed else "") + "\n")
    return EXIT_OK


def cmd_config_show(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    out.write(json.dumps(settings.redacted(), indent=2, ensure_ascii=False, default=str) + "\n")
    return EXIT_OK
