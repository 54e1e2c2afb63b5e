"""Listings of what is stored: feeds and items."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, TextIO

from monitor import store
from monitor.cli.common import (
    EXIT_OK,
    ago,
    at,
    dump,
    duration,
    pick_name,
    ref_json,
    ref_text,
    stored,
)
from monitor.config import Settings


def cmd_feeds_list(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    now = datetime.now(UTC)
    with stored(settings) as s:
        rows = store.list_feeds(s)
    for r in rows:
        if args.json:
            dump({**asdict(r), "state": r.state(now)}, out)
        else:
            out.write(feed_text(r, now))
    return EXIT_OK


def feed_text(r: store.FeedRow, now: datetime) -> str:
    """A feed as two or three lines: name and URL; state, schedule; the last error."""
    state = r.state(now)
    if state == "failing":
        state = f"FAILING ({r.consecutive_failures} in a row)"
    elif state == "polling":
        state = f"being polled by {r.lease_owner}"
    when = "" if r.next_poll_at is None or not r.enabled else (
        f"; next {'attempt' if r.consecutive_failures else 'poll'} "
        f"{ago(r.next_poll_at, now)}")
    interval = r.poll_interval_seconds or r.interval_seconds
    lines = [f"{r.name} <{r.url}>",
             f"    {state}; {r.items} items; every {duration(interval)}"
             + (f" (adaptive {duration(r.interval_seconds)}-"
                f"{duration(r.max_interval_seconds)})"
                if r.max_interval_seconds and r.max_interval_seconds > r.interval_seconds
                else "")
             + f"; last success {ago(r.last_success_at, now)}{when}"]
    if r.last_error and r.consecutive_failures:
        lines.append(f"    last error: {r.last_error}")
    return "\n".join(lines) + "\n"


def _item_json(r: store.ItemRow, with_text: bool, copies: list[store.Copy]) -> dict[str, Any]:
    d = asdict(r)
    d["duplicate_of"] = ref_json(r.duplicate_of)
    d["also_reported_by"] = [asdict(c) for c in copies]
    if not with_text:
        del d["text"]
    return d


def cmd_items_list(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    with stored(settings) as s:
        feed = None
        if args.feed is not None:
            feeds = store.list_feeds(s)
            by_url = {f.url: f.name for f in feeds}
            feed = by_url.get(args.feed) or pick_name(args.feed, (f.name for f in feeds),
                                                      flag="--feed", what="feed")
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
