"""Polling feeds that have not changed: every request answered 304 Not Modified.

A local server (benchsite.py, its own process) serves FEEDS feeds on HOSTS loopback
addresses. A first ``monitor run --once`` stores each feed's ETag; then:

1. ``monitor run --once`` again: every feed is fetched with If-None-Match, answered
   304, and its next poll recorded. Timed from the server's first feed request to
   the process's exit.
2. ``monitor run`` (the daemon): every feed is made due at once, and the daemon is
   timed from its first feed request until every feed's poll is recorded.

Prints feeds/s for both, the daemon's CPU seconds and peak RSS.

    .venv/bin/python benchmarks/poll_unchanged.py [--feeds 5000] [--hosts 50]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchsite import ROOT, Site, Spec, cpu_seconds, rss_mb, write_config
from sqlalchemy import create_engine, text

from monitor.config import FetchSettings


def monitor(cfg: Path, *args: str, log: Path, prefix: tuple[str, ...] = ()
            ) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [*prefix, sys.executable, "-m", "monitor", "--config", str(cfg), *args],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)


def polled_since(url: str, since: datetime) -> int:
    engine = create_engine(url)
    with engine.connect() as c:
        n = c.execute(text("SELECT count(*) FROM feeds WHERE last_attempt_at >= :t"),
                      {"t": since.replace(tzinfo=None)}).scalar_one()
    engine.dispose()
    return int(n)


def make_all_due(url: str) -> datetime:
    engine = create_engine(url)
    now = datetime.now(UTC)
    with engine.begin() as c:
        c.execute(text("UPDATE feeds SET next_poll_at = :t"), {"t": now.replace(tzinfo=None)})
    engine.dispose()
    return now


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--feeds", type=int, default=5000)
    ap.add_argument("--hosts", type=int, default=50)
    ap.add_argument("--concurrency", type=int, default=FetchSettings().concurrency)
    ap.add_argument("--per-host", type=int, default=FetchSettings().per_host)
    ap.add_argument("--py-spy", metavar="FILE", help="profile step 1 with py-spy: "
                    "collapsed stacks into FILE")
    args = ap.parse_args()
    prefix = ("py-spy", "record", "--nonblocking", "--format", "raw", "--rate", "200", "-o",
              args.py_spy, "--") if args.py_spy else ()

    work = Path(tempfile.mkdtemp(prefix="monitor-poll-"))
    db_url = f"sqlite:///{work / 'poll.db'}"
    cfg = work / "poll.toml"
    log = work / "run.log"
    spec = Spec(feeds=args.feeds, per_feed=1, hosts=args.hosts)
    print(f"{args.feeds} feeds on {args.hosts} hosts, [fetch] concurrency "
          f"{args.concurrency}, per_host {args.per_host}; SQLite; {os.cpu_count()} cores",
          flush=True)
    with Site(spec) as site:
        write_config(cfg, db_url, site.feed_urls(), interval="1h", poll={"jitter": 0},
                     fetch={"concurrency": args.concurrency, "per_host": args.per_host})
        t0 = time.monotonic()
        first = monitor(cfg, "run", "--once", log=log)
        if first.wait() != 0:
            print(f"the first run failed; see {log}", file=sys.stderr)
            return 1
        print(f"first run (parse every feed, store its ETag and entry): "
              f"{time.monotonic() - t0:.1f}s", flush=True)

        # 1. run --once: all 304.
        before = site.stats()
        site.restart_timing()
        started = time.time()
        proc = monitor(cfg, "run", "--once", log=log, prefix=prefix)
        peak = cpu = 0.0
        while proc.poll() is None:
            peak, cpu = max(peak, rss_mb(proc.pid)), max(cpu, cpu_seconds(proc.pid))
            time.sleep(0.1)
        ended = time.time()
        after = site.stats()
        n304 = after["not_modified"] - before["not_modified"]
        first = after["first_feed_request"] or ended
        print(f"run --once: {n304} of {args.feeds} answered 304 in {ended - first:.2f}s from "
              f"the first request to exit = {n304 / (ended - first):.0f} feeds/s (start-up "
              f"before it: {first - started:.2f}s, config of {args.feeds} feeds included); "
              f"CPU {cpu:.1f}s in all; peak RSS {peak:.0f} MB", flush=True)

        # 2. the daemon, every feed due at once.
        since = make_all_due(db_url)
        before = site.stats()
        proc = monitor(cfg, "run", log=log)
        t_first = None
        peak = cpu = 0.0
        deadline = time.monotonic() + 600
        done = 0
        while time.monotonic() < deadline:
            st = site.stats()
            if t_first is None and st["not_modified"] > before["not_modified"]:
                t_first = time.monotonic()
            peak, cpu = max(peak, rss_mb(proc.pid)), max(cpu, cpu_seconds(proc.pid))
            done = polled_since(db_url, since)
            if done >= args.feeds:
                break
            time.sleep(0.05)
        t_done = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        n304 = site.stats()["not_modified"] - before["not_modified"]
        if t_first is None or done < args.feeds:
            print(f"the daemon recorded {done} of {args.feeds} polls in 600s; see {log}",
                  file=sys.stderr)
            return 1
        seconds = t_done - t_first
        print(f"daemon: {done} polls recorded ({n304} answered 304) in {seconds:.2f}s from its "
              f"first request = {done / seconds:.0f} feeds/s; CPU {cpu:.1f}s "
              f"({cpu / done * 1000:.2f} ms/feed, start-up included); peak RSS {peak:.0f} MB",
              flush=True)
    print(f"work directory: {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
