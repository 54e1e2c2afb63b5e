"""The stored items: list them, fetch their pages again."""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from monitor import db, store
from monitor.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    at,
    dump,
    feed_named,
    ref_json,
    ref_text,
    session_factory,
    since_arg,
    stored,
)
from monitor.config import Settings
from monitor.errors import DaemonRunning, UsageError

if TYPE_CHECKING:
    from monitor.pipeline.refetch import Refetched


def _item_json(r: store.ItemRow, with_text: bool, copies: list[store.Copy]) -> dict[str, Any]:
    d = asdict(r)
    d["duplicate_of"] = ref_json(r.duplicate_of)
    d["also_reported_by"] = [asdict(c) for c in copies]
    if not with_text:
        del d["text"]
    return d


def cmd_items_list(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    with stored(settings) as s:
        feed = feed_named(s, args.feed) if args.feed is not None else None
        rows = store.list_items(s, with_text=args.text, status=args.status, feed=feed,
                                limit=args.limit)
        copies = store.also_reported_by(s, (r.id for r in rows if r.status == "new"))
    for r in rows:
        if args.json:
            dump(_item_json(r, args.text, copies.get(r.id, [])), out)
            continue
        mark = ""
        if r.duplicate_of is not None:
            score = f" {r.similarity:.2f}" if r.similarity is not None else ""
            mark = f"  [duplicate of {ref_text(r.duplicate_of)} by {r.dedup_method}{score}]"
        published = at(r.published_at) if r.published_at else "-"
        out.write(f"{r.id:>6} {published:<20} {r.feed}: {r.title or '(untitled)'}"
                  f"{mark}\n       {r.canonical_url or r.url or '(no link)'} [{r.text_source}]\n")
        if copies.get(r.id):
            outlets = ", ".join(dict.fromkeys(c.feed for c in copies[r.id]))
            out.write(f"       also reported by: {outlets}\n")
        if args.text and r.text:
            out.write("\n" + r.text + "\n\n")
    return EXIT_OK


def cmd_items_refetch(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    """Fetch the chosen items' pages again and store what that changes (see
    :mod:`monitor.pipeline.refetch`)."""
    if not (args.ids or args.feed or args.since or args.failed):
        raise UsageError("say which items to fetch again: item IDs, --feed, --since or "
                         "--failed (items whose page failed)")
    now = datetime.now(UTC)
    since = since_arg(args.since, now)
    try:
        with db.hold_sqlite_lock(settings.database.url):  # nothing on PostgreSQL
            reports = _refetch(settings, args, since)
    except DaemonRunning as exc:
        raise UsageError(
            f"a monitor daemon (pid {exc.pid}) is running on {exc.database}: on SQLite one "
            "process at a time stores items; stop it, run `items refetch`, start it again "
            "(or use PostgreSQL, where this runs beside the workers)") from None
    for r in reports:
        if args.json:
            dump({**asdict(r), "duplicate_of": ref_json(r.duplicate_of)}, out)
        else:
            out.write(refetched_text(r))
    if not args.json:
        counts = {o: sum(1 for r in reports if r.outcome == o)
                  for o in ("retexted", "unchanged", "failed", "gone")}
        out.write(f"fetched {len(reports)} items again: {counts['retexted']} with a new text, "
                  f"{counts['unchanged']} unchanged, {counts['failed']} failed"
                  + (f", {counts['gone']} gone meanwhile" if counts["gone"] else "")
                  + f"; {sum(r.alerts for r in reports)} new alerts\n")
    return EXIT_FAILURE if any(r.outcome == "failed" for r in reports) else EXIT_OK


def _refetch(settings: Settings, args: argparse.Namespace,
             since: datetime | None) -> list[Refetched]:
    from monitor.clock import utcnow
    from monitor.dedup.index import Deduplicator
    from monitor.identity import worker_id
    from monitor.ingest.extract_pool import Processor
    from monitor.ingest.fetcher import Fetcher
    from monitor.pipeline.context import Context, RuleBook
    from monitor.pipeline.refetch import refetch

    with session_factory(settings) as sessions:
        with sessions() as s:
            feed = feed_named(s, args.feed) if args.feed is not None else None
            ids = store.items_to_refetch(s, ids=args.ids, feed=feed, since=since,
                                         failed=args.failed, limit=args.limit)
            rules = RuleBook.build(settings.rules,
                                   store.rule_ids(s, [r.name for r in settings.rules]))
        missing = sorted(set(args.ids) - set(ids)) if args.ids else []
        if missing:
            raise UsageError(f"no item with a link has the id {', '.join(map(str, missing))}")
        if not ids:
            return []

        async def run() -> list[Refetched]:
            processor = Processor.of(settings.extract)
            try:
                async with Fetcher(settings.fetch) as fetcher:
                    ctx = Context(settings, sessions, fetcher, processor, utcnow,
                                  Deduplicator.from_settings(settings), rules,
                                  worker_id("refetch"))
                    try:
                        return await refetch(ctx, ids)
                    finally:
                        ctx.close()
            finally:
                processor.close()

        return asyncio.run(run())


def refetched_text(r: Refetched) -> str:
    """One item fetched again, as a line (two when the rules had something to say)."""
    head = f"item {r.item_id} ({r.feed}) <{r.url}>: "
    if r.outcome == "gone":
        return f"item {r.item_id}: deleted meanwhile\n"
    if r.outcome == "failed":
        return head + f"page failed again: {r.error}; nothing changed\n"
    if r.outcome == "unchanged":
        return head + "page fetched; the same text\n"
    line = (head + f"a new text from {r.source_after}, {r.chars_after:,} chars (was "
            f"{r.chars_before:,} from {r.source_before}); ")
    if r.duplicate_of is not None:
        line += f"now a copy of {ref_text(r.duplicate_of)} (by {r.method})"
    else:
        line += "an original" + (" (was a copy)" if r.status_before != "new" else "")
        if r.took_over is not None:
            line += f", taking over its story from item {r.took_over}"
        if r.alerts:
            line += f"; alerted {', '.join(repr(n) for n in r.matched)}"
        elif r.why_not:
            line += (f"; matched {', '.join(repr(n) for n in r.matched)} but does not "
                     f"alert: {r.why_not}")
    return line + "\n"
