"""A big first poll, as a user meets it: one feed listing ENTRIES articles never seen,
``monitor run --once`` on a fresh SQLite file, from process start to exit.

A local server (benchsite.py, its own process) serves the feed and its pages (real
pages from ../shared/corpus/pages, each copy a distinct article), spread over HOSTS
loopback addresses. The script samples, every second, the items stored so far and the
RSS of the daemon and of its whole process tree (its extraction workers too), and
prints: when the first item was stored, the samples at every tenth of the items, the
peak RSS, and the growth per 1,000 items over the second half (memory that grows with
the backlog shows there; start-up does not).

    .venv/bin/python benchmarks/first_poll_memory.py [--entries 5000] [--hosts 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchsite import ROOT, Site, Spec, tree_rss_mb, write_config
from daemon_memory import slope
from sqlalchemy import create_engine, text

from monitor.config import FetchSettings


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=5000)
    ap.add_argument("--hosts", type=int, default=20)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the database and the log")
    args = ap.parse_args()

    workers = args.workers or os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="monitor-first-poll-"))
    db_url = f"sqlite:///{work / 'first.db'}"
    cfg = work / "first.toml"
    spec = Spec(feeds=1, per_feed=args.entries, hosts=args.hosts)
    print(f"one feed of {args.entries} new entries over {args.hosts} hosts, {workers} "
          f"extraction processes, `monitor run --once`, fresh SQLite", flush=True)
    engine = create_engine(db_url)
    samples: list[tuple[int, float, float, float]] = []  # items, seconds, main MB, tree MB
    first_item: float | None = None
    with Site(spec) as site:
        write_config(cfg, db_url, site.feed_urls(), interval="1h", poll={"jitter": 0},
                     fetch={"concurrency": FetchSettings().concurrency,
                            "allow_private": ["127.0.0.0/8"], "max_feed_bytes": "50MB"},
                     extract={"workers": workers},
                     rules={"Russia": "Russia OR Moscow OR Kremlin"})
        t0 = time.monotonic()
        with (work / "run.log").open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "monitor", "--config", str(cfg),
                                     "run", "--once"], stdout=out, stderr=subprocess.STDOUT,
                                    cwd=ROOT)
        step, next_mark, items = max(args.entries // 10, 1), max(args.entries // 10, 1), 0
        while proc.poll() is None:
            time.sleep(1)
            try:
                main_mb, tree_mb = tree_rss_mb(proc.pid)
                with engine.connect() as c:
                    items = int(c.execute(text("SELECT count(*) FROM items")).scalar_one())
            except Exception:  # the process ended, or the schema is not there yet
                continue
            if main_mb == 0:  # it has just exited
                continue
            now = time.monotonic() - t0
            if items and first_item is None:
                first_item = now
            samples.append((items, now, main_mb, tree_mb))
            if items >= next_mark:
                print(f"{items:>6} items  {now:6.0f}s  daemon {main_mb:5.0f} MB  "
                      f"with workers {tree_mb:5.0f} MB", flush=True)
                next_mark += step
        seconds = time.monotonic() - t0
        with engine.connect() as c:
            items = int(c.execute(text("SELECT count(*) FROM items")).scalar_one())
    engine.dispose()
    if proc.returncode != 0 or not samples:
        print(f"`monitor run --once` exited {proc.returncode}; see {work}/run.log",
              file=sys.stderr)
        return 1
    half = [(i, m) for i, _, m, _ in samples if i >= args.entries // 2]
    half_tree = [(i, t) for i, _, _, t in samples if i >= args.entries // 2]
    print(f"{items} items in {seconds:.0f}s, process start to exit ({items / seconds:.1f}/s); "
          f"first item stored after {first_item if first_item is not None else float('nan'):.0f}s")
    print(f"RSS peak: daemon {max(m for _, _, m, _ in samples):.0f} MB, with workers "
          f"{max(t for *_, t in samples):.0f} MB")
    if len(half) > 2:
        print(f"growth over the second half: daemon {slope(half):+.2f} MB per 1,000 items, "
              f"with workers {slope(half_tree):+.2f} MB per 1,000 items")
    if args.keep:
        print(f"kept in {work}")
    else:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
