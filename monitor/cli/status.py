"""``monitor status``: the workers, the backlog, failing feeds, the digests and the alert
channels, at a glance."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from monitor import store
from monitor.cli.common import EXIT_OK, ago, dump, stored
from monitor.cli.feeds import feed_text
from monitor.config import Settings
from monitor.store import channels as chstore

# Workers seen this recently are listed (running, stopped or lost).
WORKERS_SINCE = timedelta(days=1)


def cmd_status(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    from monitor.digest import delivery  # Jinja2, through the renderer: only here
    from monitor.service import retention  # numpy, through the fingerprints: only here

    now = datetime.now(UTC)
    with stored(settings) as s:
        workers = store.list_workers(s, now - WORKERS_SINCE)
        feeds = store.list_feeds(s)
        backlog = store.backlog(s, now)
        digests = store.digest_counts(s)
        next_slot = delivery.upcoming_digest_at(s, settings, now)
        live = store.live_configs(s, now, settings.daemon.lease)
        kept = retention.report(s)
        index = store.index_counts(s)
        channels = chstore.channel_counts(s)
    newest = live[0].config_hash if live else None
    this_file = settings.shared_fingerprint()
    config = {"newest": newest, "this_file": this_file,
              "drift": len({w.config_hash for w in live}) > 1,
              "older": sorted(w.id for w in live if w.config_hash != newest)}
    states: dict[str, int] = {}
    for f in feeds:
        states[f.state(now)] = states.get(f.state(now), 0) + 1
    failing = [f for f in feeds if f.enabled and f.consecutive_failures]
    lease = settings.daemon.lease
    status: dict[str, Any] = {
        "database": settings.database.shown_url,
        "workers": [{**asdict(w), "state": w.state(now, lease)} for w in workers],
        "feeds": states,
        "backlog": asdict(backlog),
        "failing": [{"name": f.name, "url": f.url, "consecutive_failures": f.consecutive_failures,
                     "last_error": f.last_error, "last_status": f.last_status,
                     "next_attempt_at": f.next_poll_at} for f in failing],
        "config": config,
        "search_index": asdict(index),
        "storage": {"database_bytes": kept.database_bytes, "pruned_bytes": kept.freed_bytes,
                    "last_pruned_at": kept.last_at,
                    "last_pruned": asdict(kept.last) if kept.last else None},
        "digests": {"next_slot_at": next_slot, "pending": digests.pending,
                    "failed": digests.failed, "last_sent_at": digests.last_sent_at,
                    "schedule": settings.digest.schedule, "timezone": settings.digest.timezone},
        "channels": {c.name: asdict(channels.get(c.name, chstore.ChannelCounts()))
                     for c in settings.channels},
    }
    if args.json:
        dump(status, out)
        return EXIT_OK
    running = [w for w in status["workers"] if w["state"] == "running"]
    size = "" if kept.database_bytes is None else f", {retention.size(kept.database_bytes)}"
    out.write(f"database: {status['database']}{size}\n")
    if kept.last is not None and kept.last_at is not None:
        out.write(f"retention: pruning has freed {retention.size(kept.freed_bytes)} in all; the "
                  f"last round {ago(kept.last_at, now)} pruned {kept.last.render()}\n")
    out.write(f"workers: {len(running)} running\n")
    for w in status["workers"]:
        runs = ""
        if w["state"] == "running" and w["config_hash"]:
            runs = f", config {w['config_hash'][:12]}" + (
                " (OLDER than the newest: its feeds and rules are not written)"
                if w["config_hash"] != newest else "")
        out.write(f"  {w['id']} ({w['state']}): started {ago(w['started_at'], now)}, "
                  f"last heartbeat {ago(w['heartbeat_at'], now)}{runs}\n")
    if config["drift"]:
        out.write(f"config DRIFT: running workers run {len({w.config_hash for w in live})} "
                  f"different configs; the shared feeds and rules follow the newest, "
                  f"{(newest or '')[:12]}; deploy one config everywhere\n")
    if newest and this_file != newest:
        out.write(f"note: {settings.path} ({this_file[:12]}) is not the config the "
                  "running workers follow\n")
    pending = (f"; {index.pending} still to index (at the next start, or `monitor db "
               "upgrade`)" if index.pending else "")
    out.write(f"search index: {index.indexed} of {index.stored} stored items{pending}\n")
    counts = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    out.write(f"feeds: {counts or 'none'}\n")
    out.write(f"backlog: {backlog.due} due and waiting, {backlog.polling} being polled; "
              f"the most overdue is {backlog.oldest_overdue_seconds:.0f}s late\n")
    if backlog.entries_found or backlog.entries_retrying:
        out.write(f"entries not yet stored: {backlog.entries_found} found, their page not yet "
                  f"tried; {backlog.entries_retrying} waiting to try their page again; "
                  f"{backlog.entries_claimed} of them being worked on\n")
    if failing:
        out.write(f"failing feeds ({len(failing)}):\n")
        for f in failing:
            out.write("  " + feed_text(f, now).replace("\n    ", "\n      "))
    out.write(f"digests: schedule {settings.digest.schedule!r} ({settings.digest.timezone}), "
              f"next slot {ago(next_slot, now)}; {digests.pending} pending; last sent "
              f"{ago(digests.last_sent_at, now)}\n")
    if digests.failed:
        out.write(f"  {digests.failed} digests FAILED for good (the server refused them): "
                  "`monitor digest list --failed` says why\n")
    for c in settings.channels:
        n = channels.get(c.name, chstore.ChannelCounts())
        dead = f", {n.dead} DEAD (`monitor channels list {c.name}` says why)" if n.dead else ""
        out.write(f"channel {c.name} ({c.kind}): {n.delivered} delivered, last "
                  f"{ago(n.last_delivered_at, now)}; {n.pending} pending ({n.retrying} "
                  f"retrying){dead}\n")
    return EXIT_OK
