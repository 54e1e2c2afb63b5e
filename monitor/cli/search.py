"""search, rules test and rules backfill: the full-text index, verified by the query."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any, TextIO

from monitor import store
from monitor.cli.common import EXIT_OK, at, dump, feed_named, pick_name, since_arg, stored
from monitor.config import Settings
from monitor.errors import UsageError
from monitor.rules import Query, highlight, parse, terms_labelled, why_not
from monitor.search import Match, Result, backfill, search, test_rule


def one_query(args: argparse.Namespace, command: str) -> Query:
    """The query argument, parsed. Raises UsageError for a query given unquoted (as
    several arguments), QueryError for one that does not parse."""
    if len(args.query) > 1:
        joined = " ".join(args.query)
        raise UsageError(f"the query is {len(args.query)} arguments: put it in quotes, as one "
                         f"(monitor {command} '{joined}'), so that its quotes and words stay "
                         "as written")
    return parse(args.query[0])


def cmd_search(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    from monitor.clock import utcnow

    query = one_query(args, "search")
    now = utcnow()
    limit = args.limit if args.limit is not None else 20
    if limit < 0:
        raise UsageError("--limit: give 0 (every match) or more")
    with stored(settings) as s:
        feeds = tuple(store.feed_ids(s, [feed_named(s, f) for f in args.feed or ()]).values())
        filters = store.SearchFilters(
            since=since_arg(args.since, now), until=since_arg(args.until, now, "--until"),
            feeds=feeds, story_id=args.story, status=args.status)
        result = search(s, query, filters, limit=limit or None, by_story=not args.items)
    if args.json:
        for g in result.groups:
            dump({**_match_json(g.lead), "story_matches": len(g.matches),
                  "more_in_story": [m.item.id for m in g.matches[1:]]}, out)
        return EXIT_OK
    out.write(_header(args.query[0], result))
    for n, g in enumerate(result.groups, 1):
        m = g.lead
        out.write(f"\n{n:>3}. {_line(m)}\n")
        if len(g.matches) > 1:
            out.write(f"     story {g.story_id}: {len(g.matches) - 1} more matching report"
                      f"{'s' if len(g.matches) > 2 else ''} "
                      f"({', '.join(sorted({x.item.feed for x in g.matches[1:]}))}); "
                      f"monitor stories show {g.story_id}\n")
        out.write(_body(query, m))
    if result.more:
        out.write(f"\n... more match (--limit {limit * 2}, or 0 for all)\n")
    return EXIT_OK


def _header(written: str, r: Result) -> str:
    groups, items = len(r.groups), len(r.matches)
    what = (f"{groups} stor{'ies' if groups != 1 else 'y'} ({items} item{'s' if items != 1 else ''})"
            if groups != items else f"{items} item{'s' if items != 1 else ''}")
    how = ("best first" + (f" of the newest {store.RANK_WINDOW} matches (narrow with --since, "
                           "--until or --feed to rank older ones)" if r.windowed else "")
           if r.scanned is None else
           f"newest first: the index cannot narrow this query, so the newest {r.scanned} "
           "items were read one by one")
    return (f"query: {written}\nreads: {r.query}\n"
            f"{what}{' shown' if r.more else ''}, {how}\n")


def _line(m: Match) -> str:
    it = m.item
    flag = "" if it.status == "new" else f" [duplicate of item {it.duplicate_of_item_id}]" \
        if it.duplicate_of_item_id else " [duplicate of a seed]"
    return (f"item {it.id} {at(it.created_at)} {it.feed}: {it.title or '(untitled)'}{flag}")


def _body(query: Query, m: Match) -> str:
    marked = "".join(f"*{t}*" if hit else t
                     for t, hit in highlight(m.snippet, terms_labelled(query, m.terms)))
    return (f"     {m.item.url or '(no link)'}\n     terms: {', '.join(m.terms)}\n"
            + (f"     {marked}\n" if marked else ""))


def _match_json(m: Match) -> dict[str, Any]:
    it = m.item
    return {"item_id": it.id, "feed": it.feed, "url": it.url, "title": it.title,
            "status": it.status, "story_id": it.story_id, "created_at": it.created_at,
            "published_at": it.published_at, "score": round(m.score, 6),
            "terms": list(m.terms), "snippet": m.snippet}


def cmd_rules_test(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    """Which stored originals a query matches: the alerts a rule with it would raise
    (newest first), through the same index and verification as search."""
    from monitor.clock import utcnow

    query = one_query(args, "rules test")
    now = utcnow()
    since = since_arg(args.since, now)
    muted = {f.url for f in settings.feeds if not f.alert_backlog}
    limit = args.limit if args.limit is not None else (0 if args.json else 20)
    with stored(settings) as s:
        tested = test_rule(s, query, store.SearchFilters(since=since), limit or None)
    result, total, checked = tested.result, tested.total, tested.checked
    matched: list[dict[str, Any]] = []
    for m in result.matches:
        it = m.item
        # Whether an article like it arriving now would alert.
        old = why_not(it.published_at, now, settings.alerts.max_age,
                      muted_backlog=it.backlog and it.feed_url in muted)
        matched.append({**_match_json(m), "would_alert": old is None, "why_not": old})
    shown = matched
    if args.json:
        for d in shown:
            d.pop("score")
            dump(d, out)
        return EXIT_OK
    window = "stored items" if since is None else (
        f"items stored since {at(since)} ({args.since})")
    how = "" if result.scanned is None else (
        f"; the index cannot narrow this query: the newest {result.scanned} were read")
    out.write(f"query: {args.query[0]}\nreads: {query}\n"
              f"{total} of {checked} {window} match (duplicates are never "
              f"matched{how})\n")
    for d, m in zip(shown, result.matches, strict=False):
        out.write(f"\n{d['item_id']:>6} {at(d['created_at'])} {d['feed']}: "
                  f"{d['title'] or '(untitled)'}\n       {d['url'] or '(no link)'}\n"
                  f"       terms: {', '.join(d['terms'])}\n       {m.snippet}\n"
                  + ("" if d["would_alert"] else f"       would alert: no, {d['why_not']}\n"))
    if len(shown) < total:
        out.write(f"\n... and {total - len(shown)} more (--limit 0 shows all)\n")
    return EXIT_OK


def cmd_rules_backfill(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    from monitor.clock import utcnow

    name = pick_name(args.rule, [r.name for r in settings.rules], flag="rules backfill",
                     what="rule")
    rule = next(r for r in settings.rules if r.name == name)
    now = utcnow()
    since = since_arg(args.since, now)
    if since is None:
        since = datetime.min.replace(tzinfo=now.tzinfo)
    with stored(settings) as s:
        rule_id = store.rule_ids(s, [name]).get(name)
        if rule_id is None:
            raise UsageError(f"rule {name!r} is not stored yet: start the daemon (or "
                             "`monitor run --once`) once with this config, then backfill")
        done = backfill(s, rule, rule_id, since, now, dry_run=args.dry_run)
        if not args.dry_run:
            s.commit()
    new = len(done.matched) - done.alerted_before
    if args.json:
        dump({"rule": name, "since": since, "matched": len(done.matched),
              "alerted_before": done.alerted_before,
              "added": done.added, "would_add": new if args.dry_run else None,
              "dry_run": args.dry_run, "scanned": done.scanned,
              "items": [m.item.id for m in done.matched]}, out)
        return EXIT_OK
    window = "all stored originals" if args.since.strip().lower() == "all" else (
        f"originals stored since {at(since)} ({args.since})")
    out.write(f"rule {name!r}: {len(done.matched)} of the {window} match; "
              f"{done.alerted_before} alerted before\n")
    if args.dry_run:
        out.write(f"dry run: {new} alerts would be stored (marked backfilled) for the next "
                  "digest; nothing was changed\n")
    else:
        out.write(f"{done.added} alerts stored, marked backfilled: the next digest to "
                  f"{', '.join(rule.recipients)} carries them\n")
    return EXIT_OK
