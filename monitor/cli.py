"""Command line: argument parsing, output and exit codes (the only place that exits).

Exit codes: 0 success; 1 unexpected failure; 2 bad usage, bad config or a bad query;
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
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from monitor import __version__, db, store
from monitor.config import Settings, config_path, load_settings, parse_duration
from monitor.errors import (
    ConfigError,
    InputError,
    MonitorError,
    QueryError,
    SeedError,
    StoreError,
)

if TYPE_CHECKING:
    from monitor.duplicates import NearMatch

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

    dedup = sub.add_parser("dedup", help="near-duplicate detection").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    dc = dedup.add_parser(
        "check", help="explain the duplicate verdict for one text: top matches and scores")
    dc.add_argument("source", metavar="PATH_OR_URL",
                    help="a text or HTML file, - for standard input, or an http(s) URL "
                         "(fetched and extracted the way the daemon does)")
    dc.add_argument("--top", type=int, default=5, metavar="N", help="matches to show (default 5)")
    dc.add_argument("--json", action="store_true", help="print one JSON object")
    dedup.add_parser("reindex", help="recompute the near-duplicate index of all seeds and items")

    rules = sub.add_parser("rules", help="alert rules").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    rt = rules.add_parser(
        "test", help="show how a query reads and which stored items it would match")
    rt.add_argument("query", metavar="QUERY", help="a rule query, e.g. 'Maduro OR \"Delcy Rodriguez\"'")
    rt.add_argument("--since", default="7d", metavar="DURATION",
                    help="items stored in the last DURATION (90m, 12h, 7d; default 7d), or all")
    rt.add_argument("--limit", type=int, default=20, metavar="N",
                    help="matches to show (default 20; 0 for all); all are counted")
    rt.add_argument("--json", action="store_true", help="one JSON object per matching item")
    rl = rules.add_parser("list", help="the config's rules, how they read, their alerts")
    rl.add_argument("--json", action="store_true", help="one JSON object per line")

    alerts = sub.add_parser("alerts", help="stored alerts").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    al = alerts.add_parser("list", help="alerts, newest first")
    al.add_argument("--json", action="store_true", help="one JSON object per line")
    al.add_argument("--rule", metavar="NAME", help="only this rule's alerts")
    al.add_argument("--unsent", action="store_true", help="only alerts no digest carried yet")
    al.add_argument("--since", metavar="DURATION", help="only alerts of the last DURATION (7d)")
    al.add_argument("--limit", type=int, metavar="N", help="at most N alerts")

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
    from monitor.duplicates import Deduplicator
    from monitor.pipeline import load_seeds
    from monitor.service import utcnow

    engine = db.make_engine(settings.database.url)
    try:
        db.upgrade(engine)
        counts = load_seeds(db.session_factory(engine), settings,
                            Deduplicator.from_settings(settings), utcnow())
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


def _ref_json(ref: store.Ref | None) -> dict[str, Any] | None:
    if ref is None:
        return None
    d: dict[str, Any] = {"kind": ref.kind, "id": ref.id, "url": ref.url}
    if ref.kind == "seed":
        d["seed"] = ref.seed
    return d


def _ref_text(ref: store.Ref) -> str:
    return f"{ref.kind} {ref.seed or ref.id}"


def _item_json(r: store.ItemRow, with_text: bool, copies: list[store.Copy]) -> dict[str, Any]:
    d = asdict(r)
    d["duplicate_of"] = _ref_json(r.duplicate_of)
    d["also_reported_by"] = [asdict(c) for c in copies]
    if not with_text:
        del d["text"]
    return d


def cmd_items_list(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    engine = _ready_engine(settings)
    try:
        with db.session_factory(engine)() as s:
            rows = store.list_items(s, with_text=args.text, status=args.status, feed=args.feed,
                                    limit=args.limit)
            copies = store.also_reported_by(s, (r.id for r in rows if r.status == "new"))
    finally:
        engine.dispose()
    for r in rows:
        if args.json:
            _dump(_item_json(r, args.text, copies.get(r.id, [])), out)
            continue
        mark = ""
        if r.duplicate_of is not None:
            score = f" {r.similarity:.2f}" if r.similarity is not None else ""
            mark = f"  [duplicate of {_ref_text(r.duplicate_of)} by {r.dedup_method}{score}]"
        published = r.published_at.isoformat() if r.published_at else "-"
        out.write(f"{r.id:>6} {published:<25} {r.feed}: {r.title or '(untitled)'}"
                  f"{mark}\n       {r.canonical_url or r.url or '(no link)'} [{r.text_source}]\n")
        if copies.get(r.id):
            outlets = ", ".join(dict.fromkeys(c.feed for c in copies[r.id]))
            out.write(f"       also reported by: {outlets}\n")
        if args.text and r.text:
            out.write("\n" + r.text + "\n\n")
    return EXIT_OK


def _read_source(source: str, settings: Settings) -> tuple[str, str | None]:
    """(text, canonical URL) of what ``dedup check`` was given. Raises InputError,
    FetchError or ExtractionError."""
    if source.startswith(("http://", "https://")):
        from monitor.articles import extract_article
        from monitor.fetcher import PAGE_ACCEPT, Fetcher
        from monitor.urls import choose_canonical

        async def fetch() -> tuple[bytes, str]:
            async with Fetcher(settings.fetch) as fetcher:
                page = await fetcher.fetch(source, max_bytes=settings.fetch.max_page_bytes,
                                           accept=PAGE_ACCEPT)
            return page.body, page.final_url

        body, final_url = asyncio.run(fetch())
        article = extract_article(body, final_url)
        return article.text, choose_canonical(final_url, article.canonical_url)
    try:
        raw = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {source}: {exc.strerror or exc}") from exc
    head = raw[:1024].lstrip().lower()
    if source.endswith((".html", ".htm")) or head.startswith((b"<!doctype html", b"<html")):
        from monitor.articles import extract_article  # trafilatura: slow to import

        return extract_article(raw, Path(source).resolve().as_uri()).text, None
    return raw.decode("utf-8", errors="replace"), None


def _scores_json(m: NearMatch) -> dict[str, Any]:
    c = m.candidate
    return {"matched": _ref_json(c.ref), "original": _ref_json(c.original), "feed": c.feed,
            "title": c.title, "band_hits": c.hits, "jaccard": round(m.scores.jaccard, 4),
            "containment": round(m.scores.containment, 4), "duplicate": m.duplicate}


def cmd_dedup_check(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    from monitor.duplicates import Deduplicator

    text, canonical = _read_source(args.source, settings)
    dedup = Deduplicator.from_settings(settings)
    engine = _ready_engine(settings)
    try:
        with db.session_factory(engine)() as s:
            ex = dedup.explain(s, text, canonical)
    finally:
        engine.dispose()
    method, ref = ex.verdict
    t = dedup.thresholds
    shown = ex.matches[:max(args.top, 0)]
    if args.json:
        _dump({"source": args.source, "verdict": method, "duplicate_of": _ref_json(ref),
               "words": ex.words, "boilerplate_lines": list(ex.boilerplate),
               "band_keys": ex.band_keys,
               "thresholds": {"jaccard": t.jaccard, "containment": t.containment,
                              "min_words": t.min_words},
               "matches": [_scores_json(m) for m in shown]}, out)
        return EXIT_OK
    out.write(f"{args.source}: {ex.words} words after dropping {len(ex.boilerplate)} "
              f"boilerplate lines; {ex.band_keys} band keys\n")
    for line in ex.boilerplate:
        out.write(f"  dropped: {line[:100]}\n")
    out.write(f"thresholds: jaccard >= {t.jaccard} or containment >= {t.containment}, "
              f"both texts >= {t.min_words} words\n")
    if ex.by_url:
        out.write(f"same canonical URL as {_ref_text(ex.by_url)} <{ex.by_url.url}>\n")
    if ex.by_text_hash:
        out.write(f"same normalized text as {_ref_text(ex.by_text_hash)}\n")
    if not shown:
        out.write("no stored text shares a band key with it\n")
    for i, m in enumerate(shown, 1):
        c = m.candidate
        via = "" if c.original == c.ref else f" (a copy of {_ref_text(c.original)})"
        out.write(f"{i:>2}. {'DUPLICATE' if m.duplicate else 'different'}  jaccard "
                  f"{m.scores.jaccard:.3f}  containment {m.scores.containment:.3f}  "
                  f"{c.hits} bands  {_ref_text(c.ref)}{via}"
                  f"{' [' + c.feed + ']' if c.feed else ''}: {c.title or '(untitled)'}\n")
    verdict = "new (no duplicate)" if ref is None else (
        f"duplicate of {_ref_text(ref)} by {method}" + (f" <{ref.url}>" if ref.url else ""))
    out.write(f"verdict: {verdict}\n")
    return EXIT_OK


def cmd_dedup_reindex(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    from monitor.duplicates import Deduplicator

    engine = _ready_engine(settings)
    try:
        with db.session_factory(engine).begin() as s:
            n = Deduplicator.from_settings(settings).rebuild_index(s)
    except SQLAlchemyError as exc:
        raise StoreError(f"{db.describe(engine)}: reindexing failed: {exc}") from exc
    finally:
        engine.dispose()
    out.write(f"near-duplicate index rebuilt: {n} items and the seeds\n")
    return EXIT_OK


def _since(value: str | None, now: datetime) -> datetime | None:
    """``--since`` as a point in time: None for no bound. Raises InputError."""
    if value is None or value.strip().lower() == "all":
        return None
    try:
        return now - timedelta(seconds=parse_duration(value))
    except ValueError as exc:
        raise InputError(f"--since: {exc}") from None


def cmd_rules_test(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    from monitor.rules import Document, hit, parse
    from monitor.service import utcnow

    query = parse(args.query)
    since = _since(args.since, utcnow())
    engine = _ready_engine(settings)
    checked, shown = 0, 0
    matched: list[dict[str, Any]] = []
    try:
        with db.session_factory(engine)() as s:
            for item in store.items_to_match(s, since):
                checked += 1
                doc = Document(item.title, item.text)
                if not query.matches(doc):
                    continue
                h = hit("test", query, doc)
                matched.append({"item_id": item.id, "feed": item.feed, "url": item.url,
                                "title": item.title, "created_at": item.created_at,
                                "terms": list(h.terms), "snippet": h.snippet})
    except SQLAlchemyError as exc:
        raise StoreError(f"{db.describe(engine)}: reading items failed: {exc}") from exc
    finally:
        engine.dispose()
    shown_matches = matched if args.limit <= 0 else matched[:args.limit]
    if args.json:
        for m in shown_matches:
            _dump(m, out)
        return EXIT_OK
    window = "all stored items" if since is None else (
        f"items stored since {since:%Y-%m-%d %H:%M} UTC ({args.since})")
    out.write(f"query: {args.query}\nreads: {query}\n"
              f"{len(matched)} of {checked} {window} match (duplicates are never matched)\n")
    for m in shown_matches:
        shown += 1
        out.write(f"\n{m['item_id']:>6} {m['created_at']:%Y-%m-%d %H:%M} {m['feed']}: "
                  f"{m['title'] or '(untitled)'}\n       {m['url'] or '(no link)'}\n"
                  f"       terms: {', '.join(m['terms'])}\n       {m['snippet']}\n")
    if shown < len(matched):
        out.write(f"\n... and {len(matched) - shown} more (--limit 0 shows all)\n")
    return EXIT_OK


def cmd_rules_list(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    engine = _ready_engine(settings)
    try:
        with db.session_factory(engine)() as s:
            counts = store.count_alerts(s)
    finally:
        engine.dispose()
    for r in settings.rules:
        total, unsent = counts.get(r.name, (0, 0))
        if args.json:
            _dump({"name": r.name, "query": r.query, "reads": str(r.parsed),
                   "recipients": list(r.recipients), "alerts": total, "unsent": unsent}, out)
        else:
            out.write(f"{r.name}: {r.query}\n    reads: {r.parsed}\n    to: "
                      f"{', '.join(r.recipients)}; {total} alerts, {unsent} not yet sent\n")
    return EXIT_OK


def cmd_alerts_list(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    from monitor.service import utcnow

    since = _since(args.since, utcnow())
    engine = _ready_engine(settings)
    try:
        with db.session_factory(engine)() as s:
            rows = store.list_alerts(s, rule=args.rule, unsent=args.unsent, since=since,
                                     limit=args.limit)
    finally:
        engine.dispose()
    for r in rows:
        if args.json:
            _dump(asdict(r), out)
            continue
        sent = f"sent {r.sent_at:%Y-%m-%d %H:%M}" if r.sent_at else "not sent"
        out.write(f"{r.created_at:%Y-%m-%d %H:%M} [{r.rule}] item {r.item_id} {r.feed}: "
                  f"{r.title or '(untitled)'} ({sent})\n       {r.url or '(no link)'}\n"
                  f"       terms: {', '.join(r.terms)}\n       {r.snippet}\n")
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
    ("dedup", "check"): cmd_dedup_check,
    ("dedup", "reindex"): cmd_dedup_reindex,
    ("rules", "test"): cmd_rules_test,
    ("rules", "list"): cmd_rules_list,
    ("alerts", "list"): cmd_alerts_list,
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
    except QueryError as exc:
        log.error("query error: %s\n%s\n(%s)", exc, exc.pointer(), exc.hint)
        return EXIT_CONFIG
    except InputError as exc:
        log.error("%s (%s)", exc, exc.hint)
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
