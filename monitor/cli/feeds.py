"""The feeds: list them, forget one the config dropped, poll one now."""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import TextIO

from sqlalchemy import Engine

from monitor import db, store
from monitor.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    ago,
    dump,
    duration,
    pick_name,
    session_factory,
    stored,
)
from monitor.config import FeedSettings, Settings
from monitor.errors import DaemonRunning, UsageError

# How often `feeds poll` looks whether a running worker has polled the feed.
POLL_WAIT_STEP = 0.25


def cmd_feeds_list(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    now = datetime.now(UTC)
    with stored(settings) as s:
        every = store.list_feeds(s)
    rows = every if args.all else [r for r in every if r.enabled]
    for r in rows:
        if args.json:
            dump({**asdict(r), "state": r.state(now)}, out)
        else:
            out.write(feed_text(r, now))
    hidden = len(every) - len(rows)
    if not args.json and hidden:
        out.write(f"({hidden} disabled feed{'s' if hidden > 1 else ''} not shown: "
                  f"`feeds list --all` shows {'them' if hidden > 1 else 'it'}, "
                  "`feeds forget NAME` removes one)\n")
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


def cmd_feeds_forget(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    """Remove the feeds the config no longer lists that ``args.feed`` names (a name can
    have several: the twins a changed URL left before feeds moved with their name)."""
    listed = {f.url: f for f in settings.feeds}
    now = datetime.now(UTC)
    with session_factory(settings) as sessions:
        with sessions() as s:
            rows = store.list_feeds(s)
        by_url = {r.url: r for r in rows}
        if args.feed in by_url:
            urls = [args.feed]
        else:
            name = pick_name(args.feed, (r.name for r in rows), flag="feed", what="feed")
            urls = [r.url for r in rows if r.name == name]
        kept = [u for u in urls if u in listed]
        if kept and len(kept) == len(urls):
            raise UsageError(
                f"feed {by_url[kept[0]].name!r} <{kept[0]}> is in {settings.path}: remove its "
                "[[feeds]] table there first (a running daemon disables it within "
                f"{duration(settings.daemon.config_check)}), then forget it")
        for url in urls:
            if url in listed:
                continue
            with sessions.begin() as s:
                try:
                    done = store.forget_feed(s, url, now)
                except ValueError:
                    raise UsageError(
                        f"feed {by_url[url].name!r} <{url}> is still enabled in the database: "
                        "a daemon with an older config may be running; restart it, or wait "
                        "for it to re-read the config, then forget the feed") from None
            if done.deleted:
                out.write(f"forgot feed {done.name!r} <{done.url}>: it had no items\n")
            else:
                out.write(f"forgot feed {done.name!r} <{done.url}>: its {done.items} items "
                          "stay and still name it\n")
            if done.entries:
                out.write(f"  dropped {done.entries} entries that waited for their page\n")
    return EXIT_OK


def cmd_feeds_poll(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    """Poll one feed of the config now: here, or, when a daemon is running, by making
    the feed due so that the daemon polls it (and waiting for its outcome)."""
    feed = _configured_feed(settings, args.feed)
    if not feed.enabled:
        raise UsageError(f"feed {feed.name!r} has enabled = false in {settings.path}")
    try:
        with db.hold_sqlite_lock(settings.database.url):  # nothing on PostgreSQL
            engine = db.make_engine(settings.database.url)
            try:
                db.upgrade(engine)
                if not settings.database.is_sqlite and _workers_running(engine, settings):
                    return _poll_by_daemon(settings, feed, args.wait, out)
                return _poll_here(settings, engine, feed, out)
            finally:
                engine.dispose()
    except DaemonRunning:
        return _poll_by_daemon(settings, feed, args.wait, out)


def _workers_running(engine: Engine, settings: Settings) -> bool:
    now = datetime.now(UTC)
    with db.session_factory(engine)() as s:
        return any(w.state(now, settings.daemon.lease) == "running"
                   for w in store.list_workers(s, now - timedelta(days=1)))


def _configured_feed(settings: Settings, given: str) -> FeedSettings:
    for f in settings.feeds:
        if given == f.url:
            return f
    name = pick_name(given, (f.name for f in settings.feeds), flag="feed", what="feed")
    return next(f for f in settings.feeds if f.name == name)


def _poll_here(settings: Settings, engine: Engine, feed: FeedSettings, out: TextIO) -> int:
    from monitor.clock import utcnow
    from monitor.service.once import run_once
    from monitor.service.startup import prepare

    prepare(settings, engine)
    summary = asyncio.run(run_once(settings, engine, utcnow, urls=[feed.url]))
    if not summary.reports:
        out.write(f"feed {feed.name!r} is being polled by a worker right now; its outcome is "
                  "in `monitor feeds list` shortly\n")
        return EXIT_OK
    out.write(summary.render() + "\n")
    return EXIT_FAILURE if summary.count("failed") else EXIT_OK


def _poll_by_daemon(settings: Settings, feed: FeedSettings, wait: float,
                    out: TextIO) -> int:
    now = datetime.now(UTC)
    with session_factory(settings) as sessions:
        with sessions.begin() as s:
            try:
                last = store.make_due(s, feed.url, now)
            except LookupError:
                raise UsageError(
                    f"feed {feed.name!r} is not yet known to the running daemon: it re-reads "
                    f"{settings.path} every {duration(settings.daemon.config_check)}; try "
                    "again then") from None
        out.write(f"feed {feed.name!r} is due now: a running daemon polls it within seconds\n")
        if wait <= 0:
            return EXIT_OK
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            time.sleep(POLL_WAIT_STEP)
            with sessions() as s:
                row = next(iter(store.list_feeds(s, url=feed.url)), None)
            polled = row is not None and row.last_attempt_at != last \
                and row.state(datetime.now(UTC)) != "polling"
            if row is not None and polled:
                out.write(feed_text(row, datetime.now(UTC)))
                return EXIT_FAILURE if row.consecutive_failures else EXIT_OK
    out.write(f"no worker polled it within {duration(wait)}; `monitor status` shows whether "
              "one is running and how far behind it is\n")
    return EXIT_FAILURE
