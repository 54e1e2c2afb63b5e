"""Polling feeds that have not changed: every request answered 304 Not Modified.

A local server (benchsite.py, its own process) serves FEEDS feeds on HOSTS loopback
addresses. A first ``monitor run --once`` stores each feed's ETag, and a first run of
the naive poller (naive_poll.py: feedparser over 16 threads, validators in SQLite)
stores its own; then, alternating for ROUNDS rounds:

1. ``monitor run --once`` again: every feed is fetched with If-None-Match, answered
   304, and its next poll recorded. Timed from exec to exit (and from the server's
   first feed request to exit), with the CPU seconds of the whole process.
2. The naive poller again, the same way.

Then once, 3. ``monitor run`` (the daemon): every feed is made due at once, and the
daemon is timed from its first feed request until every feed's poll is recorded.

Prints feeds/s, start-up (exec to the first feed request), CPU seconds per 1,000
feeds and peak RSS for each.

    .venv/bin/python benchmarks/poll_unchanged.py [--feeds 2000] [--hosts 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
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


def exec_to_exit(cmd: list[str], log: Path) -> tuple[float, float, float]:
    """Run ``cmd``: (seconds from exec to exit, CPU seconds of it and its children,
    peak RSS MB of the process itself)."""
    with log.open("ab") as out:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        peak = 0.0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, rss_mb(proc.pid))
            time.sleep(0.02)
        seconds = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:4]} exited {proc.returncode}; see {log}")
    return seconds, usage.ru_utime + usage.ru_stime, peak


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
    ap.add_argument("--feeds", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--log-level", default="INFO", help="[logging] level (INFO: the default "
                    "config's, one or two lines per poll)")
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
                     level=args.log_level,
                     fetch={"concurrency": args.concurrency, "per_host": args.per_host})
        t0 = time.monotonic()
        first = monitor(cfg, "run", "--once", log=log)
        if first.wait() != 0:
            print(f"the first run failed; see {log}", file=sys.stderr)
            return 1
        print(f"first run (parse every feed, store its ETag and entry): "
              f"{time.monotonic() - t0:.1f}s", flush=True)

        urls = work / "urls.txt"
        urls.write_text("\n".join(site.feed_urls()) + "\n")
        naive = [sys.executable, str(ROOT / "benchmarks" / "naive_poll.py"), str(urls),
                 str(work / "naive.sqlite")]
        t0 = time.monotonic()
        subprocess.run(naive, check=True, capture_output=True)
        print(f"naive poller's first run: {time.monotonic() - t0:.1f}s", flush=True)

        # 1. and 2., alternating: every feed answered 304.
        rows: dict[str, list[tuple[float, float, float, float]]] = {"monitor": [], "naive": []}
        for round_ in range(1, args.rounds + 1):
            for name, cmd in (("monitor", [sys.executable, "-m", "monitor", "--config",
                                           str(cfg), "run", "--once"]), ("naive", naive)):
                before = site.stats()
                site.restart_timing()
                launched = time.time()
                seconds, cpu, peak = exec_to_exit(
                    [*(prefix if name == "monitor" else ()), *cmd], log)
                after = site.stats()
                n304 = after["not_modified"] - before["not_modified"]
                startup = (after["first_feed_request"] or launched) - launched
                rows[name].append((seconds, startup, cpu, peak))
                print(f"[{round_}] {name}: {n304} of {args.feeds} answered 304; exec to exit "
                      f"{seconds:.2f}s = {args.feeds / seconds:.0f} feeds/s; start-up to the "
                      f"first request {startup:.2f}s; first request to exit "
                      f"{args.feeds / (seconds - startup):.0f} feeds/s; CPU {cpu:.2f}s = "
                      f"{cpu / args.feeds * 1000:.2f} CPU s per 1,000 feeds; peak RSS "
                      f"{peak:.0f} MB", flush=True)
        for name, runs in rows.items():
            sec, up, cpu, _ = (statistics.median(col) for col in zip(*runs, strict=True))
            print(f"{name}, median of {len(runs)}: {args.feeds / sec:.0f} feeds/s exec to exit, "
                  f"start-up {up:.2f}s, {cpu / args.feeds * 1000:.2f} CPU s per 1,000 feeds",
                  flush=True)

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
