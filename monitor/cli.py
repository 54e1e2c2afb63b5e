"""Command line: argument parsing, output and exit codes (the only place that exits).

Exit codes: 0 success; 1 unexpected failure; 2 bad usage or bad config;
3 the database cannot be reached or used; 4 the seeds cannot be read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any, TextIO

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from monitor import __version__, db, store
from monitor.config import Settings, config_path, load_settings
from monitor.errors import ConfigError, MonitorError, SeedError, StoreError

log = logging.getLogger("monitor")

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG, EXIT_STORE, EXIT_SEEDS = 0, 1, 2, 3, 4


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="monitor", description="Media-monitoring ingestion daemon.")
    p.add_argument("--config", metavar="PATH",
                   help="config file (default: $MONITOR_CONFIG, else config/monitor.toml)")
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="override [logging] level")
    p.add_argument("--version", action="version", version=f"monitor {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="poll feeds and store new articles")
    run.add_argument("--once", action="store_true",
                     help="poll every enabled feed now, print a summary and exit")

    seeds = sub.add_parser("seeds", help="seed corpus").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    seeds.add_parser("load", help="load seed files into the database (idempotent)")

    dbp = sub.add_parser("db", help="database").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    dbp.add_parser("upgrade", help="create or upgrade the schema to the newest revision")

    feeds = sub.add_parser("feeds", help="feeds").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    fl = feeds.add_parser("list", help="feeds and their fetch state")
    fl.add_argument("--json", action="store_true", help="one JSON object per line")

    items = sub.add_parser("items", help="stored items").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    il = items.add_parser("list", help="stored items, newest first")
    il.add_argument("--json", action="store_true", help="one JSON object per line")
    il.add_argument("--text", action="store_true", help="include the extracted text")
    il.add_argument("--status", choices=["new", "duplicate"], help="only items with this status")
    il.add_argument("--feed", metavar="NAME_OR_URL", help="only items of this feed")
    il.add_argument("--limit", type=int, metavar="N", help="at most N items")

    cfg = sub.add_parser("config", help="configuration").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    cfg.add_parser("show", help="print the effective config as JSON, secrets hidden")
    return p


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Ours, so that calling main() again replaces it and leaves other handlers alone."""


def _setup_logging(level: str) -> None:
    handler = _StderrHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, _StderrHandler)] + [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "trafilatura", "htmldate", "charset_normalizer"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _dump(obj: dict[str, Any], out: TextIO) -> None:
    out.write(json.dumps(obj, ensure_ascii=False, default=_json_default) + "\n")


def _ready_engine(settings: Settings) -> Engine:
    """An engine on a reachable database whose schema is current. Raises StoreError."""
    engine = db.make_engine(settings.database.url)
    db.check_connection(engine)
    try:
        current, head = db.current_revision(engine), db.head_revision()
    except SQLAlchemyError as exc:
        raise StoreError(f"{db.describe(engine)}: {exc}") from exc
    if current != head:
        raise StoreError(
            f"{db.describe(engine)}: schema is at {current or 'nothing'}, not {head}: "
            "run `monitor db upgrade` (or `monitor run`, which upgrades on start)"
        )
    return engine


def cmd_run(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    from monitor import service  # imports httpx and the pipeline: only needed here

    engine = db.make_engine(settings.database.url)
    try:
        service.prepare(settings, engine)
        summary = asyncio.run(service.run(settings, engine, once=args.once))
    finally:
        engine.dispose()
    if args.once:
        out.write(summary.render() + "\n")
    return EXIT_OK


def cmd_seeds_load(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    from monitor.pipeline import load_seeds
    from monitor.service import utcnow

    engine = db.make_engine(settings.database.url)
    try:
        db.upgrade(engine)
        counts = load_seeds(db.session_factory(engine), settings, utcnow())
    finally:
        engine.dispose()
    out.write(f"seeds from {settings.seeds_path}: {counts['added']} added, "
              f"{counts['updated']} updated, {counts['unchanged']} unchanged\n")
    return EXIT_OK


def cmd_db_upgrade(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    engine = db.make_engine(settings.database.url)
    try:
        before, after = db.upgrade(engine)
    finally:
        engine.dispose()
    where = db.describe(engine)
    if before == after:
        out.write(f"{where}: already at {after}\n")
    else:
        out.write(f"{where}: upgraded from {before or 'empty'} to {after}\n")
    return EXIT_OK


def cmd_feeds_list(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    engine = _ready_engine(settings)
    try:
        with db.session_factory(engine)() as s:
            rows = store.list_feeds(s)
    finally:
        engine.dispose()
    for r in rows:
        if args.json:
            _dump(asdict(r), out)
        else:
            state = "ok" if not r.last_error else f"FAILING x{r.consecutive_failures}: {r.last_error}"
            if r.last_attempt_at is None:
                state = "never polled"
            flag = "" if r.enabled else " (disabled)"
            out.write(f"{r.name}{flag} <{r.url}>\n    {r.items} items; {state}; "
                      f"last success {r.last_success_at or 'never'}\n")
    return EXIT_OK


def _item_json(r: store.ItemRow, with_text: bool) -> dict[str, Any]:
    d = asdict(r)
    d["duplicate_of"] = None
    if r.duplicate_of is not None:
        ref = r.duplicate_of
        d["duplicate_of"] = {"kind": ref.kind, "id": ref.id, "url": ref.url}
        if ref.kind == "seed":
            d["duplicate_of"]["seed"] = ref.seed
    if not with_text:
        del d["text"]
    return d


def cmd_items_list(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    engine = _ready_engine(settings)
    try:
        with db.session_factory(engine)() as s:
            rows = store.list_items(s, with_text=args.text, status=args.status, feed=args.feed,
                                    limit=args.limit)
    finally:
        engine.dispose()
    for r in rows:
        if args.json:
            _dump(_item_json(r, args.text), out)
            continue
        mark = "" if r.duplicate_of is None else (
            f"  [duplicate of {r.duplicate_of.kind} "
            f"{r.duplicate_of.seed or r.duplicate_of.id} by {r.dedup_method}]")
        out.write(f"{r.id:>6} {r.published_at or '-':<25} {r.feed}: {r.title or '(untitled)'}"
                  f"{mark}\n       {r.canonical_url or r.url or '(no link)'} [{r.text_source}]\n")
        if args.text and r.text:
            out.write("\n" + r.text + "\n\n")
    return EXIT_OK


def cmd_config_show(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    out.write(json.dumps(settings.redacted(), indent=2, ensure_ascii=False, default=str) + "\n")
    return EXIT_OK


COMMANDS = {
    ("run", None): cmd_run,
    ("seeds", "load"): cmd_seeds_load,
    ("db", "upgrade"): cmd_db_upgrade,
    ("feeds", "list"): cmd_feeds_list,
    ("items", "list"): cmd_items_list,
    ("config", "show"): cmd_config_show,
}


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Entry point of the ``monitor`` command. Returns the exit code."""
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    _setup_logging(args.log_level or "INFO")
    try:
        settings = load_settings(config_path(args.config, os.environ))
        _setup_logging(args.log_level or settings.log_level)
        handler = COMMANDS[(args.command, getattr(args, "action", None))]
        return handler(settings, args, out)
    except ConfigError as exc:
        log.error("config error: %s", exc)
        return EXIT_CONFIG
    except StoreError as exc:
        log.error("database error: %s (%s)", exc, exc.hint)
        return EXIT_STORE
    except SeedError as exc:
        log.error("seed error: %s (%s)", exc, exc.hint)
        return EXIT_SEEDS
    except MonitorError as exc:
        log.error("%s", exc)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
