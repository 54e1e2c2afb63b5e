"""End-to-end ingest throughput against the extraction-only bound, in one run.

A local server (benchsite.py, its own process) serves FEEDS feeds of PER_FEED entries
each, spread over HOSTS loopback addresses, linking to real pages (../shared/corpus/pages,
or generated ones). Every article is distinct (see benchsite.variant).

1. Extraction-only bound: the same pages through monitor's extraction task, in the
   same number of worker processes with the same recycling, with no network and no
   database. Pool start-up is inside the timing, as it is in step 2.
2. End to end: ``monitor run --once`` (the real CLI, pipeline and database: a fresh
   SQLite file, or --database-url) polls every feed, fetches, extracts, dedups, matches
   rules and stores. Timed from the server's first feed request to the process's exit.

Prints articles/s for both, their ratio, and the peak RSS of each process tree
(the daemon and its workers; the bound's workers).

    .venv/bin/python benchmarks/ingest.py [--feeds 50] [--per-feed 40] [--workers 0]

**Cold mode** (``--cold 500,2000``) measures as a user meets it: both sides timed from
exec to exit, on the same pages in the same run, alternating.

1. The bound: ``plain_trafilatura.py``, plain ``trafilatura.extract(html,
   with_metadata=True)`` in as many spawned processes as ``[extract] workers``, over
   the pages written to a folder. Not monitor's code.
2. ``monitor run --once`` on a fresh SQLite file (or --postgres), from exec to exit,
   with a timeline sampled every 0.25 s (pages served, items stored, CPU of the daemon
   and of its workers) written to ``timeline-N-R.csv`` in the work directory, and its
   milestones printed: first feed request, first page, first item stored, last page,
   last item, exit.

    .venv/bin/python benchmarks/ingest.py --cold 500,2000 --rounds 3 [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchsite import (
    ROOT,
    Pages,
    Site,
    Spec,
    cpu_seconds,
    tree_cpu_seconds,
    tree_rss_mb,
    write_config,
)
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from monitor.config import ExtractSettings, FetchSettings
from monitor.errors import ExtractionError
from monitor.ingest.extract_pool import Processor


class Sampler:
    """Peak RSS of a process tree, sampled every 0.2 s in a thread."""

    def __init__(self, measure: Callable[[], tuple[float, float]]) -> None:
        self.measure = measure
        self.peak_own = self.peak_total = 0.0
        self.samples: list[tuple[float, float, float]] = []  # (t, own, total)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._t0 = time.monotonic()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            own, total = self.measure()
            self.samples.append((time.monotonic() - self._t0, own, total))
            self.peak_own = max(self.peak_own, own)
            self.peak_total = max(self.peak_total, total)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def _extract_all(pages: list[bytes], workers: int, max_tasks: int) -> tuple[int, int]:
    processor = Processor(workers, max_tasks)
    window = asyncio.Semaphore(4 * processor.workers)
    failed = 0

    async def one(j: int) -> None:
        nonlocal failed
        async with window:
            try:
                await processor.extract(pages[j], f"http://bench.invalid/page/{j}.html")
            except ExtractionError:
                failed += 1

    try:
        await asyncio.gather(*(one(j) for j in range(len(pages))))
    finally:
        processor.close()
    return len(pages) - failed, failed


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def extraction_bound(pages: list[bytes], workers: int, max_tasks: int,
                     exclude: int) -> tuple[float, int, int, float, float]:
    """(seconds, extracted, failed, peak RSS MB of the workers, CPU seconds of the workers)."""
    me = os.getpid()
    cpu0 = _children_cpu()
    with Sampler(lambda: tree_rss_mb(me, exclude=exclude)) as s:
        t0 = time.perf_counter()
        ok, failed = asyncio.run(_extract_all(pages, workers, max_tasks))
        seconds = time.perf_counter() - t0
    workers_rss = s.peak_total - s.peak_own  # the workers only: this process holds every page
    return seconds, ok, failed, workers_rss, _children_cpu() - cpu0


@dataclass
class Run:
    seconds: float  # from the server's first feed request to the process's exit
    startup: float  # from exec to the first feed request
    rss_main: float  # peak, MB
    rss_tree: float  # peak of the daemon and its workers together, MB
    cpu_main: float  # CPU seconds of the daemon process
    cpu_tree: float  # CPU seconds of the daemon and its workers
    code: int


def end_to_end(site: Site, cfg: Path, log: Path, prefix: list[str]) -> Run:
    site.restart_timing()
    started = time.time()
    main_cpu = 0.0
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "monitor", "--config", str(cfg), "run", "--once"],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)

        def measure() -> tuple[float, float]:
            nonlocal main_cpu
            main_cpu = max(main_cpu, cpu_seconds(proc.pid))
            return tree_rss_mb(proc.pid)

        with Sampler(measure) as s:
            _, status, usage = os.wait4(proc.pid, 0)
            ended = time.time()
        proc.returncode = os.waitstatus_to_exitcode(status)
    first = site.stats()["first_feed_request"] or ended
    return Run(ended - first, first - started, s.peak_own, s.peak_total, main_cpu,
               usage.ru_utime + usage.ru_stime, proc.returncode)


def fresh_database(url: str | None, work: Path, round_: int | str) -> str:
    """A new, empty database for one end-to-end round: a SQLite file, or a database
    created on the PostgreSQL server ``url`` names."""
    if url is None:
        return f"sqlite:///{work / f'ingest-{round_}.db'}"
    name = f"monitor_ingest_{round_}"
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        c.execute(text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def stored(url: str) -> dict[str, int]:
    engine = create_engine(url)
    with engine.connect() as c:
        rows = c.execute(text("SELECT status || '/' || text_source, count(*) FROM items "
                              "GROUP BY 1 ORDER BY 1"))
        counts = {str(k): int(n) for k, n in rows}
    engine.dispose()
    return counts


def finish(work: Path, *, keep: bool) -> int:
    """Keep the work directory (saying where) or remove it."""
    if keep:
        print(f"kept {work}")
    else:
        shutil.rmtree(work)
    return 0


def timed(cmd: list[str], log: Path, sample: Callable[[int, float], None] | None = None,
          exclude: int | None = None) -> tuple[float, float, float, float, float, int]:
    """Run ``cmd`` from exec to exit: (seconds, CPU of the process itself, CPU of it
    and its children, peak RSS of itself, peak RSS with its children, exit code).
    ``sample(pid, t)`` is called every 0.25 s while it runs."""
    own_cpu = 0.0
    with log.open("w") as out:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)

        def measure() -> tuple[float, float]:
            nonlocal own_cpu
            own_cpu = max(own_cpu, cpu_seconds(proc.pid))
            return tree_rss_mb(proc.pid, exclude=exclude)

        stop = threading.Event()

        def sampler() -> None:
            while not stop.wait(0.25):
                if sample is not None:
                    sample(proc.pid, time.monotonic() - started)

        t = threading.Thread(target=sampler, daemon=True)
        t.start()
        with Sampler(measure) as s:
            _, status, usage = os.wait4(proc.pid, 0)
            seconds = time.monotonic() - started
        stop.set()
        t.join()
    code = os.waitstatus_to_exitcode(status)
    return (seconds, own_cpu, usage.ru_utime + usage.ru_stime, s.peak_own, s.peak_total,
            code)


class Timeline:
    """Samples of one cold run: (seconds since exec, pages served, items stored, CPU
    seconds of the daemon, CPU seconds of the daemon and its workers)."""

    def __init__(self, site: Site, url: str) -> None:
        self.site = site
        self.site.restart_timing()
        self.pages_before = int(site.stats()["pages"])
        self.reader = create_engine(url) if url.startswith("sqlite") else None
        self.rows: list[tuple[float, int, int, float, float]] = []

    def sample(self, pid: int, t: float) -> None:
        served = int(self.site.stats()["pages"]) - self.pages_before
        items = 0
        if self.reader is not None:
            try:
                with self.reader.connect() as c:
                    items = int(c.execute(text("SELECT count(*) FROM items")).scalar_one())
            except Exception:  # the schema is not there yet
                items = 0
        self.rows.append((t, served, items, cpu_seconds(pid), tree_cpu_seconds(pid)))

    def close(self) -> None:
        if self.reader is not None:
            self.reader.dispose()

    def first(self, column: int, at_least: int) -> str:
        """When ``column`` first reached ``at_least``."""
        return next((f"{row[0]:.2f}s" for row in self.rows if row[column] >= at_least), "-")

    def write(self, path: Path) -> None:
        with path.open("w") as f:
            f.write("seconds,pages_served,items_stored,daemon_cpu,tree_cpu\n")
            f.writelines(f"{t:.2f},{p},{i},{d:.2f},{c:.2f}\n" for t, p, i, d, c in self.rows)


def cold(args: argparse.Namespace, workers: int) -> int:
    """Cold mode: see the module's docstring."""
    sizes = [int(n) for n in args.cold.split(",")]
    work = Path(tempfile.mkdtemp(prefix="monitor-cold-"))
    pages_src = Pages()
    per_feed = args.per_feed or 20
    results: dict[int, list[float]] = {}
    print(f"cold mode: {sizes} pages, {per_feed} per feed, {args.hosts} hosts, {workers} "
          f"extraction processes on {os.cpu_count()} cores; database: "
          f"{'PostgreSQL' if args.postgres else 'SQLite'}; work directory {work}", flush=True)
    for n in sizes:
        folder = work / f"pages-{n}"
        folder.mkdir()
        for j in range(n):
            (folder / f"{j}.html").write_bytes(pages_src.get(j))
        spec = Spec(feeds=max(1, n // per_feed), per_feed=per_feed, hosts=args.hosts,
                    pregenerate=n)
        with Site(spec) as site:
            for round_ in range(1, args.rounds + 1):
                b = timed([sys.executable, str(ROOT / "benchmarks" / "plain_trafilatura.py"),
                           str(folder), str(workers)], work / f"bound-{n}-{round_}.log",
                          exclude=site.pid)
                if b[5] != 0:
                    print(f"the bound failed; see {work}/bound-{n}-{round_}.log",
                          file=sys.stderr)
                    return 1
                print(f"[{n} pages, round {round_}] plain trafilatura, {workers} processes: "
                      f"{b[0]:.2f}s exec to exit = {n / b[0]:.1f} pages/s; CPU {b[2]:.1f}s "
                      f"({b[2] / n * 1000:.1f} ms/page); peak RSS {b[4]:.0f} MB", flush=True)

                url = fresh_database(args.postgres, work, f"{n}_{round_}")
                cfg = work / f"cold-{n}-{round_}.toml"
                write_config(
                    cfg, url, site.feed_urls(), interval="1h", level="INFO",
                    fetch={"concurrency": args.concurrency, "per_host": args.per_host,
                           "allow_private": ["127.0.0.0/8"]},
                    extract={"workers": workers, "worker_max_tasks": args.max_tasks,
                             **({"mode": args.mode} if args.mode else {})},
                    rules={"Venezuela leadership": 'Maduro OR "Delcy Rodriguez"',
                           "Russia": "Russia OR Moscow OR Kremlin"},
                    stories={"enabled": args.stories == "on"})
                # --gil: samples of the thread holding the GIL, the daemon's CPU work
                prefix = ["py-spy", "record", "--nonblocking", "--gil", "--format", "raw",
                          "--rate", "100", "-o", f"{args.py_spy}.{n}.{round_}", "--"] \
                    if args.py_spy else []
                tl = Timeline(site, url)
                started = time.time()
                m = timed([*prefix, sys.executable, "-m", "monitor", "--config", str(cfg),
                           "run", "--once"], work / f"cold-{n}-{round_}.log", tl.sample,
                          exclude=site.pid)
                tl.close()
                st = site.stats()
                fetched = st["pages"] - tl.pages_before
                if m[5] != 0:
                    print(f"monitor run --once exited {m[5]}; see {work}/cold-{n}-{round_}.log",
                          file=sys.stderr)
                    return 1
                counts = stored(url)
                tl.write(work / f"timeline-{n}-{round_}.csv")
                total = sum(counts.values())
                first_feed = (st["first_feed_request"] or started) - started
                cpu_daemon = max(m[1], max((r[3] for r in tl.rows), default=0.0))
                busy = (m[2] - cpu_daemon) / (workers * m[0])
                ratio = b[0] / m[0]
                results.setdefault(n, []).append(ratio)
                print(f"[{n} pages, round {round_}] monitor run --once: {m[0]:.2f}s exec to "
                      f"exit = {fetched / m[0]:.1f} articles/s ({fetched} pages, "
                      f"{sum(counts.values())} items {counts}); ratio to the bound "
                      f"{ratio:.3f}; CPU: daemon {cpu_daemon:.1f}s "
                      f"({cpu_daemon / max(1, fetched) * 1000:.1f} ms/article), its "
                      f"workers {m[2] - cpu_daemon:.1f}s (busy {busy:.0%} of {workers} x "
                      f"{m[0]:.1f}s); peak RSS daemon {m[3]:.0f} MB, with its workers "
                      f"{m[4]:.0f} MB", flush=True)
                print(f"    timeline: first feed request {first_feed:.2f}s, first page "
                      f"{tl.first(1, 1)}, first item stored {tl.first(2, 1)}, last page "
                      f"{tl.first(1, fetched)}, last item {tl.first(2, total)}, exit "
                      f"{m[0]:.2f}s", flush=True)
    for n, ratios in results.items():
        print(f"{n} pages: ratio to plain trafilatura over {len(ratios)} rounds: median "
              f"{statistics.median(ratios):.3f}, min {min(ratios):.3f}, max {max(ratios):.3f}")
    return finish(work, keep=args.keep)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--feeds", type=int, default=50)
    ap.add_argument("--per-feed", type=int, help="entries per feed (default 40; 20 in "
                    "cold mode)")
    ap.add_argument("--hosts", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=2,
                    help="alternate the two measurements this many times (the machine is shared)")
    ap.add_argument("--workers", type=int, default=0, help="extraction processes; 0 = cores")
    ap.add_argument("--max-tasks", type=int, default=ExtractSettings().worker_max_tasks)
    ap.add_argument("--concurrency", type=int, default=FetchSettings().concurrency)
    ap.add_argument("--per-host", type=int, default=FetchSettings().per_host)
    ap.add_argument("--postgres", metavar="URL", help="a PostgreSQL server to create the "
                    "databases on, e.g. postgresql+psycopg://postgres@127.0.0.1/test "
                    "(default: SQLite files)")
    ap.add_argument("--stories", choices=("on", "off"), default="on",
                    help="[stories] enabled: off measures what joining stories costs")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--py-spy", metavar="FILE", help="profile the end-to-end runs with py-spy "
                    "(collapsed stacks of the daemon process into FILE)")
    ap.add_argument("--cold", metavar="N,N", help="cold mode at these page counts (see "
                    "the docstring), e.g. 500,2000")
    ap.add_argument("--mode", choices=("default", "fast"), help="[extract] mode")
    args = ap.parse_args()
    if args.cold:
        return cold(args, args.workers or os.cpu_count() or 1)

    args.per_feed = args.per_feed or 40
    n = args.feeds * args.per_feed
    workers = args.workers or os.cpu_count() or 1
    pages_src = Pages()
    t0 = time.perf_counter()
    pages = [pages_src.get(j) for j in range(n)]
    print(f"{n} articles ({len(pages_src)} base pages, "
          f"{sum(map(len, pages)) / n / 1024:.0f} KiB mean) built in "
          f"{time.perf_counter() - t0:.1f}s; {args.feeds} feeds on {args.hosts} hosts; "
          f"{workers} extraction processes on {os.cpu_count()} cores; "
          f"database: {'PostgreSQL' if args.postgres else 'SQLite'}", flush=True)

    spec = Spec(feeds=args.feeds, per_feed=args.per_feed, hosts=args.hosts, pregenerate=n)
    work = Path(tempfile.mkdtemp(prefix="monitor-ingest-"))
    ratios: list[float] = []
    with Site(spec) as site:
        server_pid = site.pid
        for round_ in range(1, args.rounds + 1):
            b_sec, b_ok, b_failed, b_rss, b_cpu = extraction_bound(
                pages, workers, args.max_tasks, server_pid)
            bound = b_ok / b_sec
            print(f"[{round_}] extraction only: {b_ok} pages ({b_failed} without text) in "
                  f"{b_sec:.1f}s = {bound:.1f} pages/s; CPU {b_cpu:.1f}s "
                  f"({b_cpu / b_ok * 1000:.1f} ms/page); peak RSS of the workers "
                  f"{b_rss:.0f} MB", flush=True)

            url = fresh_database(args.postgres, work, round_)
            cfg = work / f"ingest-{round_}.toml"
            write_config(
                cfg, url, site.feed_urls(), interval="1h", level="INFO",
                fetch={"concurrency": args.concurrency, "per_host": args.per_host,
                       "allow_private": ["127.0.0.0/8"]},
                extract={"workers": workers, "worker_max_tasks": args.max_tasks},
                rules={"Venezuela leadership": 'Maduro OR "Delcy Rodriguez"',
                       "Russia": "Russia OR Moscow OR Kremlin"},
                stories={"enabled": args.stories == "on"})
            prefix = ["py-spy", "record", "--nonblocking", "--format", "raw", "--rate", "100",
                      "-o", f"{args.py_spy}.{round_}", "--"] if args.py_spy else []
            before = site.stats()["pages"]
            run = end_to_end(site, cfg, work / f"run-{round_}.log", prefix)
            fetched = site.stats()["pages"] - before
            if run.code != 0:
                print(f"monitor run --once exited {run.code}; see {work}/run-{round_}.log",
                      file=sys.stderr)
                return 1
            counts = stored(url)
            rate = fetched / run.seconds
            print(f"[{round_}] end to end: {fetched} pages fetched, {sum(counts.values())} items "
                  f"stored {counts} in {run.seconds:.1f}s = {rate:.1f} articles/s; start-up to "
                  f"the first feed request {run.startup:.2f}s; CPU: daemon {run.cpu_main:.1f}s "
                  f"({run.cpu_main / fetched * 1000:.1f} ms/article), with its workers "
                  f"{run.cpu_tree:.1f}s; peak RSS: daemon {run.rss_main:.0f} MB, with its "
                  f"workers {run.rss_tree:.0f} MB", flush=True)
            ratios.append(rate / bound)
            print(f"[{round_}] ratio end-to-end / extraction-only = {ratios[-1]:.3f}", flush=True)
    print(f"ratio over {len(ratios)} rounds: median {statistics.median(ratios):.3f}, "
          f"min {min(ratios):.3f}, max {max(ratios):.3f}")
    return finish(work, keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
