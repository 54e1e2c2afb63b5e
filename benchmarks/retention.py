"""Retention at scale: the database's size per 10k items before and after pruning, and
what a prune batch costs while the daemon ingests.

    .venv/bin/python benchmarks/retention.py [--items 10000] [--backends sqlite,postgresql]
        [--pg postgresql://postgres@127.0.0.1:5432/test] [--feeds 20 --per-feed 40]

1. **Size.** A fresh database with monitor's schema gets N items stored the way the
   pipeline stores them (``store.add_item`` and the band keys of
   ``Deduplicator.index_item``), 120 days old: real article texts (the corpus pages'
   ground-truth bodies, their letters scrambled per copy, so every text is distinct and
   of real length), 70% originals, 15% near copies (indexed), 15% exact copies. Then
   ``monitor.service.retention.prune`` with the defaults (duplicates' text after 90 days,
   originals kept), then with originals' text pruned too. After each: the size the
   database takes (SQLite: its pages, and a compact copy by ``VACUUM INTO``;
   PostgreSQL: ``pg_database_size`` after ``VACUUM FULL`` of the items), per 10k items.
2. **While ingesting.** ``monitor run --once`` (the real CLI) polls FEEDS x PER_FEED
   pages from a local site (benchsite.py) into a copy of that database, twice: alone,
   and with this process pruning another N texts of it in batches meanwhile. Prints
   pages/s both ways and the prune batches' durations (p50, p95).

Everything is printed; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchsite import CORPUS, Site, Spec, write_config
from sqlalchemy import Engine, text

from monitor import db, store
from monitor.config import FeedSettings, RetentionSettings
from monitor.dedup.index import INDEX_VERSION_KEY, Deduplicator
from monitor.service import retention

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=120)


def texts() -> list[str]:
    truth = json.loads((CORPUS / "ground-truth.json").read_text(encoding="utf-8"))
    return [t["articleBody"] for t in truth.values() if len(t["articleBody"]) > 500]


def scrambled(base: list[str], i: int) -> str:
    """Text ``i``: a corpus body with its letters permuted by a table drawn for ``i``."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    perm = list(letters)
    random.Random(i).shuffle(perm)
    table = str.maketrans(letters + letters.upper(), "".join(perm) + "".join(perm).upper())
    return base[i % len(base)].translate(table)


def fresh(backend: str, pg_admin: str, workdir: Path, name: str) -> str:
    if backend == "sqlite":
        path = workdir / f"{name}.db"
        for suffix in ("", "-wal", "-shm", ".lock"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{path}"
    import psycopg

    with psycopg.connect(pg_admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    return pg_admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) \
        + f"/{name}"


def load(engine: Engine, n: int, dedup: Deduplicator) -> float:
    """N items as described above. Returns seconds."""
    base = texts()
    sessions = db.session_factory(engine)
    started = time.perf_counter()
    with sessions.begin() as s:
        store.sync_feeds(s, [FeedSettings("bench", "http://bench.invalid/f", 900)], NOW)
        # The keys below are the current index's: a daemon starting on it must not
        # rebuild it (an index of another version would be).
        store.set_meta(s, INDEX_VERSION_KEY, dedup.fingerprinter.version)
    originals: list[int] = []
    for start in range(0, n, 500):
        with sessions.begin() as s:
            for i in range(start, min(n, start + 500)):
                kind = "new" if i % 20 < 14 or not originals else ("near" if i % 2 else "exact")
                body = scrambled(base, i)
                fp = dedup.fingerprint(body)
                dup = None if kind == "new" else store.Ref("item", originals[-1], None)
                item_id = store.add_item(s, store.NewItem(
                    feed_id=1, guid=f"g{i}", url=f"http://bench.invalid/{i}", final_url=None,
                    canonical_url=f"http://bench.invalid/{i}", title=f"Item {i}", author=None,
                    published_at=OLD, fetched_at=OLD, language="en", site_name=None,
                    text=body, text_source="page", text_hash=f"{i:064x}", page_status=200,
                    page_error=None, duplicate_of=dup, dedup_method=None if kind == "new"
                    else kind, similarity=None if kind == "new" else 0.9), OLD)
                if kind != "exact":
                    dedup.index_item(s, item_id, fp)
                if kind == "new":
                    originals.append(item_id)
    return time.perf_counter() - started


def size(engine: Engine) -> dict[str, int]:
    """The database's size now, and compacted."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
            free = conn.exec_driver_sql("PRAGMA freelist_count").scalar_one()
            page = conn.exec_driver_sql("PRAGMA page_size").scalar_one()
            path = Path(tempfile.mkdtemp()) / "compact.db"
            conn.exec_driver_sql("VACUUM INTO ?", (str(path),))
            compact = path.stat().st_size
            shutil.rmtree(path.parent)
            return {"bytes": pages * page, "free": free * page, "compact": compact}
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        before = conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
        conn.execute(text("VACUUM FULL items"))
        conn.execute(text("VACUUM FULL item_sketches"))
        after = conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
        return {"bytes": int(before), "free": int(before) - int(after), "compact": int(after)}


def per10k(n: int, value: int) -> str:
    return retention.size(value * 10_000 / n)


def part_size(backend: str, args: argparse.Namespace, workdir: Path) -> str:
    url = fresh(backend, args.pg, workdir, "monitor_bench_retention")
    engine = db.make_engine(url)
    try:
        db.upgrade(engine)
        dedup = Deduplicator()
        took = load(engine, args.items, dedup)
        sessions = db.session_factory(engine)
        before = size(engine)
        print(f"{backend}: {args.items} items loaded in {took:.0f}s; "
              f"{per10k(args.items, before['compact'])} per 10k items")
        for label, settings in (("duplicates' text (the default, 90d)", RetentionSettings()),
                                ("originals' text too",
                                 replace(RetentionSettings(), original_text=90 * 86400))):
            started = time.perf_counter()
            done = retention.prune(sessions, dedup, settings, lambda: NOW)
            took = time.perf_counter() - started
            after = size(engine)
            print(f"  pruned {label}: {done.texts} texts, {retention.size(done.text_bytes)} of "
                  f"text, in {took:.1f}s ({took / max(done.texts, 1) * 1000:.2f} ms a text); "
                  f"size {per10k(args.items, after['bytes'])} per 10k in place "
                  f"({per10k(args.items, after['free'])} of it free for reuse), "
                  f"{per10k(args.items, after['compact'])} per 10k compacted")
    finally:
        engine.dispose()
    return url


def ingest_once(backend: str, args: argparse.Namespace, workdir: Path, site: Site,
                prune: bool) -> tuple[float, list[float], str]:
    """``run --once`` into a fresh database of N old items, pruning them meanwhile when
    ``prune``. Returns (seconds, prune batch durations, the run's summary line)."""
    url = fresh(backend, args.pg, workdir, "monitor_bench_retention_ingest")
    engine = db.make_engine(url)
    db.upgrade(engine)
    dedup = Deduplicator()
    load(engine, args.items, dedup)
    config = workdir / f"{backend}.toml"
    write_config(config, url, site.feed_urls(), interval="1h",
                 fetch={"allow_private": ["127.0.0.0/8"]})
    batches: list[float] = []
    stop = threading.Event()

    def prune_meanwhile() -> None:
        sessions = db.session_factory(engine)
        settings = replace(RetentionSettings(), original_text=90 * 86400, batch=500)
        while not stop.is_set():
            started = time.perf_counter()
            done = retention.prune_batch(sessions, dedup, settings, NOW)
            batches.append(time.perf_counter() - started)
            if not done:
                break

    pruner = threading.Thread(target=prune_meanwhile)
    started = time.perf_counter()
    if prune:
        pruner.start()
    out = subprocess.run([sys.executable, "-m", "monitor", "--config", str(config), "run",
                          "--once"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    took = time.perf_counter() - started
    stop.set()
    if pruner.is_alive():
        pruner.join()
    engine.dispose()
    lines = out.splitlines()
    return took, batches, lines[1] if len(lines) > 1 else out


def part_ingest(backend: str, args: argparse.Namespace, workdir: Path) -> None:
    spec = Spec(feeds=args.feeds, per_feed=args.per_feed, hosts=4)
    pages = args.feeds * args.per_feed
    with Site(spec) as site:
        rates = {}
        for prune in (False, True):
            took, batches, summary = ingest_once(backend, args, workdir, site, prune)
            rates[prune] = pages / took
            line = (f"  ingest {'while pruning' if prune else 'alone'}: {pages} pages in "
                    f"{took:.1f}s, {rates[prune]:.1f} pages/s")
            if batches:
                ordered = sorted(batches)
                p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
                line += (f"; {len(batches)} prune batches of 500, p50 "
                         f"{statistics.median(batches) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms")
            print(f"{line} [{summary}]")
        print(f"  ingest while pruning / alone: {rates[True] / rates[False]:.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--items", type=int, default=10_000)
    p.add_argument("--backends", default="sqlite,postgresql")
    p.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    p.add_argument("--feeds", type=int, default=20)
    p.add_argument("--per-feed", type=int, default=40)
    args = p.parse_args()
    print(f"# {platform.node()}, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            part_size(backend, args, Path(tmp))
            part_ingest(backend, args, Path(tmp))


if __name__ == "__main__":
    main()
