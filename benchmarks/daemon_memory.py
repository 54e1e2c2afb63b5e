"""The daemon's memory over a long ingest: RSS after every ARTICLES/10 articles.

A local server (benchsite.py, rolling mode) serves FEEDS feeds that list PER_FEED
articles never listed before on every request, so ``monitor run`` (the daemon, as in
production: dispatch loop, worker pool with its recycling, SQLite) ingests without
end. The script samples the daemon's RSS, and that of its worker processes, until
ARTICLES items are stored, then prints the samples and the growth per 1,000 articles
over the second half (a leak shows there; start-up and the first pages do not).

    .venv/bin/python benchmarks/daemon_memory.py [--articles 20000] [--feeds 50]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchsite import ROOT, Site, Spec, tree_rss_mb, write_config
from sqlalchemy import create_engine, text

from monitor.config import FetchSettings


def slope(points: list[tuple[int, float]]) -> float:
    """Least-squares MB per 1,000 articles."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    sxy = sum((x - mx) * (y - my) for x, y in points)
    return sxy / sxx * 1000 if sxx else 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--articles", type=int, default=20_000)
    ap.add_argument("--feeds", type=int, default=50)
    ap.add_argument("--per-feed", type=int, default=20)
    ap.add_argument("--hosts", type=int, default=20)
    ap.add_argument("--workers", type=int, default=0)
    args = ap.parse_args()

    workers = args.workers or os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="monitor-memory-"))
    db_url = f"sqlite:///{work / 'memory.db'}"
    cfg = work / "memory.toml"
    spec = Spec(feeds=args.feeds, per_feed=args.per_feed, hosts=args.hosts, mode="rolling")
    print(f"{args.feeds} feeds x {args.per_feed} new articles per poll (30 s interval), "
          f"{workers} extraction processes, SQLite; until {args.articles} items", flush=True)
    engine = create_engine(db_url)
    samples: list[tuple[int, float, float, float]] = []  # items, seconds, main MB, tree MB
    with Site(spec) as site:
        write_config(cfg, db_url, site.feed_urls(), interval="30s", poll={"jitter": 0},
                     fetch={"concurrency": FetchSettings().concurrency,
                            "allow_private": ["127.0.0.0/8"]},
                     extract={"workers": workers},
                     rules={"Russia": "Russia OR Moscow OR Kremlin"})
        with (work / "run.log").open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "monitor", "--config", str(cfg),
                                     "run"], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        t0 = time.monotonic()
        step = args.articles // 10
        next_mark = step
        items = 0
        try:
            while items < args.articles:
                time.sleep(2)
                if proc.poll() is not None:
                    print(f"the daemon exited ({proc.returncode}); see {work}/run.log",
                          file=sys.stderr)
                    return 1
                try:
                    with engine.connect() as c:
                        items = int(c.execute(text("SELECT count(*) FROM items")).scalar_one())
                except Exception:  # the schema is not there yet
                    continue
                main_mb, tree_mb = tree_rss_mb(proc.pid)
                samples.append((items, time.monotonic() - t0, main_mb, tree_mb))
                if items >= next_mark:
                    print(f"{items:>6} items  {time.monotonic() - t0:6.0f}s  daemon "
                          f"{main_mb:5.0f} MB  with workers {tree_mb:5.0f} MB", flush=True)
                    next_mark += step
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    engine.dispose()
    half = [(i, m) for i, _, m, _ in samples if i >= args.articles // 2]
    half_tree = [(i, t) for i, _, _, t in samples if i >= args.articles // 2]
    seconds = samples[-1][1]
    print(f"{items} items in {seconds:.0f}s ({items / seconds:.1f}/s); daemon RSS peak "
          f"{max(m for _, _, m, _ in samples):.0f} MB, last {samples[-1][2]:.0f} MB; "
          f"with workers peak {max(t for *_, t in samples):.0f} MB, last {samples[-1][3]:.0f} MB")
    print(f"growth over the second half: daemon {slope(half):+.2f} MB per 1,000 articles, "
          f"with workers {slope(half_tree):+.2f} MB per 1,000 articles")
    shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
