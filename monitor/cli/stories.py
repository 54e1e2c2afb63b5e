"""stories list, stories show, stories check."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, TextIO

from monitor import store
from monitor.cli.common import EXIT_OK, at, dump, ref_text, since_arg, stored
from monitor.cli.dedup import read_source
from monitor.config import Settings
from monitor.errors import UsageError


def cmd_stories_list(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    since = since_arg(args.since, datetime.now(UTC))
    with stored(settings) as s:
        rows = store.list_stories(s, since=since, min_outlets=args.min_outlets,
                                  limit=args.limit)
    for r in rows:
        if args.json:
            dump({**asdict(r), "outlet_count": len(r.outlets)}, out)
            continue
        out.write(f"{r.id:>6}  {r.title or '(untitled)'}\n"
                  f"        {at(r.first_at)} to {at(r.last_at)}; {r.items} items, "
                  f"{len(r.outlets)} outlets: {', '.join(r.outlets) or '-'}"
                  + (f"; seeds: {', '.join(r.seeds)}" if r.seeds else "") + "\n")
    if not rows and not args.json:
        out.write("no stories" + (f" since {at(since)}" if since else "") + "\n")
    return EXIT_OK


def cmd_stories_show(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    with stored(settings) as s:
        found = store.list_stories(s, ids=[args.id])
        if not found:
            raise UsageError(f"no story has the id {args.id}: `monitor stories list` lists them")
        items = store.list_items(s, story=args.id)
    story = found[0]
    items.sort(key=lambda i: (i.published_at or i.created_at, i.id))
    if args.json:
        dump({**asdict(story), "items": [_item(i) for i in items]}, out)
        return EXIT_OK
    out.write(f"story {story.id}: {story.title or '(untitled)'}\n"
              f"reported {at(story.first_at)} to {at(story.last_at)} by "
              f"{len(story.outlets)} outlets ({', '.join(story.outlets) or '-'})"
              + (f"; seeds: {', '.join(story.seeds)}" if story.seeds else "") + "\n")
    for i in items:
        copy = (f"  [copy of {ref_text(i.duplicate_of)} by {i.dedup_method}]"
                if i.duplicate_of is not None else "")
        when = at(i.published_at or i.created_at)
        out.write(f"  {i.id:>6} {when:<20} {i.feed}: {i.title or '(untitled)'}{copy}\n"
                  f"         {i.canonical_url or i.url or '(no link)'}\n")
    return EXIT_OK


def _item(i: store.ItemRow) -> dict[str, Any]:
    return {"id": i.id, "feed": i.feed, "title": i.title, "url": i.canonical_url or i.url,
            "published_at": i.published_at, "created_at": i.created_at, "status": i.status,
            "dedup_method": i.dedup_method}


def cmd_stories_check(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    from monitor.stories import signals
    from monitor.stories.joining import Stories

    text, _ = read_source(args.source, settings)
    when = datetime.now(UTC)
    if args.at:
        try:
            when = datetime.fromisoformat(args.at)
        except ValueError:
            raise UsageError(f"--at {args.at!r}: not a date such as 2026-01-06 or "
                             "2026-01-06T10:00+01:00") from None
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
    t = signals.terms(args.title, text)
    with stored(settings) as s:
        joined = Stories(settings.stories).explain(s, t, language=None, at=when)
        shown = list(joined.candidates[:args.top]) if joined else []
        titles = {r.id: r for r in store.list_stories(s, ids=[sid for sid, _ in shown])}
    threshold = settings.stories.threshold
    if args.json:
        dump({"joins": None if joined is None or joined.new else joined.story_id,
              "threshold": threshold,
              "candidates": [{"story": sid, "title": titles[sid].title if sid in titles
                              else None, "score": round(r.score, 4), "all": round(r.all, 4),
                              "names": round(r.names, 4), "shared": list(r.shared)}
                             for sid, r in shown]}, out)
        return EXIT_OK
    if joined is None or joined.new:
        out.write(f"would start a new story: no story reported in the "
                  f"{settings.stories.window // 3600}h before {at(when)} resembles it by "
                  f"{threshold} or more\n")
    else:
        story = titles.get(joined.story_id)
        out.write(f"would join story {joined.story_id}: "
                  f"{story.title if story else '(untitled)'}\n")
    for sid, r in shown:
        mark = ">=" if r.score >= threshold else "< "
        out.write(f"  story {sid:>6} score {r.score:.3f} {mark} {threshold} "
                  f"(all words {r.all:.3f}, names {r.names:.3f}): "
                  f"{titles[sid].title if sid in titles else '(untitled)'}\n"
                  f"               shared: {', '.join(r.shared) or '-'}\n")
    return EXIT_OK
