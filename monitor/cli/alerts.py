"""rules test, rules list and alerts list."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any, TextIO

from monitor import store
from monitor.cli.common import EXIT_OK, at, dump, pick_name, since_arg, stored
from monitor.config import Settings
from monitor.errors import UsageError


def cmd_rules_test(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    from monitor.clock import utcnow
    from monitor.rules import Matcher, parse, why_not

    if len(args.query) > 1:
        joined = " ".join(args.query)
        raise UsageError(f"the query is {len(args.query)} arguments: put it in quotes, as one "
                         f"(monitor rules test '{joined}'), so that its quotes and words stay "
                         "as written")
    written = args.query[0]
    query = parse(written)
    now = utcnow()
    since = since_arg(args.since, now)
    matcher = Matcher([("test", query)])  # exactly what the pipeline runs
    checked = 0
    matched: list[dict[str, Any]] = []
    muted = {f.url for f in settings.feeds if not f.alert_backlog}
    with stored(settings) as s:
        for item in store.items_to_match(s, since):
            checked += 1
            for h in matcher.match(item.title, item.text):
                # Whether an article like it arriving now would alert.
                old = why_not(item.published_at, now, settings.alerts.max_age,
                              muted_backlog=item.backlog and item.feed_url in muted)
                matched.append({"item_id": item.id, "feed": item.feed, "url": item.url,
                                "title": item.title, "created_at": item.created_at,
                                "published_at": item.published_at,
                                "terms": list(h.terms), "snippet": h.snippet,
                                "would_alert": old is None, "why_not": old})
    limit = args.limit if args.limit is not None else (0 if args.json else 20)
    shown_matches = matched if limit <= 0 else matched[:limit]
    if args.json:
        for m in shown_matches:
            dump(m, out)
        return EXIT_OK
    window = "stored items" if since is None else (
        f"items stored since {at(since)} ({args.since})")
    out.write(f"query: {written}\nreads: {query}\n"
              f"{len(matched)} of {checked} {window} match (duplicates are never matched)\n")
    for m in shown_matches:
        out.write(f"\n{m['item_id']:>6} {at(m['created_at'])} {m['feed']}: "
                  f"{m['title'] or '(untitled)'}\n       {m['url'] or '(no link)'}\n"
                  f"       terms: {', '.join(m['terms'])}\n       {m['snippet']}\n"
                  + ("" if m["would_alert"] else f"       would alert: no, {m['why_not']}\n"))
    if len(shown_matches) < len(matched):
        out.write(f"\n... and {len(matched) - len(shown_matches)} more (--limit 0 shows all)\n")
    return EXIT_OK


def cmd_rules_list(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    with stored(settings) as s:
        counts = store.count_alerts(s)
    for r in settings.rules:
        total, unsent = counts.get(r.name, (0, 0))
        if args.json:
            dump({"name": r.name, "query": r.query, "reads": str(r.parsed),
                   "recipients": list(r.recipients), "alerts": total, "unsent": unsent}, out)
        else:
            out.write(f"{r.name}: {r.query}\n    reads: {r.parsed}\n    to: "
                      f"{', '.join(r.recipients)}; {total} alerts, {unsent} not yet sent\n")
    return EXIT_OK


def cmd_alerts_list(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    from monitor.clock import utcnow

    since = since_arg(args.since, utcnow())
    with stored(settings) as s:
        rule = None if args.rule is None else pick_name(
            args.rule, [*(r.name for r in settings.rules), *store.rule_names(s)],
            flag="--rule", what="rule")
        rows = store.list_alerts(s, rule=rule, unsent=args.unsent, since=since,
                                 limit=args.limit)
    for r in rows:
        if args.json:
            dump(asdict(r), out)
            continue
        sent = f"sent {at(r.sent_at)}" if r.sent_at else "not sent"
        out.write(f"{at(r.created_at)} [{r.rule}] item {r.item_id} {r.feed}: "
                  f"{r.title or '(untitled)'} ({sent})\n       {r.url or '(no link)'}\n"
                  f"       terms: {', '.join(r.terms)}\n       {r.snippet}\n")
    return EXIT_OK
