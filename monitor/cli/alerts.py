"""rules list and alerts list."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import TextIO

from monitor import store
from monitor.cli.common import EXIT_OK, at, dump, pick_name, since_arg, stored
from monitor.config import Settings


def cmd_rules_list(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    with stored(settings) as s:
        counts = store.count_alerts(s)
    for r in settings.rules:
        total, unsent = counts.get(r.name, (0, 0))
        if args.json:
            dump({"name": r.name, "query": r.query, "reads": str(r.parsed),
                   "recipients": list(r.recipients), "notify": list(r.notify),
                   "alerts": total, "unsent": unsent}, out)
        else:
            mailed = (f"to: {', '.join(r.recipients)}; {total} alerts, {unsent} not yet "
                      "in a digest" if r.recipients else f"no digest; {total} alerts")
            told = f"\n    notifies: {', '.join(r.notify)}" if r.notify else ""
            out.write(f"{r.name}: {r.query}\n    reads: {r.parsed}\n    {mailed}{told}\n")
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
        marks = store.feedback_of(s, [r.id for r in rows])
    for r in rows:
        f = marks.get(r.id)
        if args.json:
            dump({**asdict(r), "feedback": None if f is None else {
                "relevant": f.relevant, "by": f.by, "at": f.at}}, out)
            continue
        sent = f"sent {at(r.sent_at)}" if r.sent_at else "not sent"
        if f is not None:
            sent += (f"; marked {'relevant' if f.relevant else 'not relevant'} by {f.by} "
                     f"{at(f.at)}")
        out.write(f"{at(r.created_at)} [{r.rule}] item {r.item_id} {r.feed}: "
                  f"{r.title or '(untitled)'} ({sent})\n       {r.url or '(no link)'}\n"
                  f"       terms: {', '.join(r.terms)}\n       {r.snippet}\n")
    return EXIT_OK
