"""The near-duplicate index at scale: lookup latency, insert cost, bytes per item.

    .venv/bin/python benchmarks/dedup_index.py [--sizes 10000,100000,1000000]
        [--backends sqlite,postgresql] [--pg postgresql://postgres@127.0.0.1:5432/test]

For each backend and size N it builds a fresh database with monitor's schema
(``db.upgrade``), then:

1. bulk-loads N background items with their band keys (the loader writes rows
   directly, COPY on PostgreSQL, to keep a 1M run short; it is not what is
   measured). Unrelated texts have unrelated band keys, so background keys are
   random 64-bit values: the benchmark measures the index, and the rate of
   false candidates on real text is measured by dedup_quality.py instead;
2. stores the 186 real originals of the evaluation set the way the pipeline
   does (``store.add_item`` + ``Deduplicator.index_item``, one transaction per
   20 items, as a feed poll would) and times that per item: the insert cost;
3. looks up the 1,033 evaluation texts (variants and originals) through
   ``store.near_candidates`` (the indexed band-key query) and through
   ``Deduplicator.find`` (query + fingerprinting candidates + verification),
   reporting p50 and p99 of each;
4. reports the bytes per item of the band-key table with its index
   (PostgreSQL: pg_total_relation_size; SQLite: the dbstat table).

Prints one line per (backend, N). Needs a few GB of disk for N = 1M.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlalchemy import Engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.dedup_quality import load_eval_set  # noqa: E402
from monitor import db, store  # noqa: E402
from monitor.config import FeedSettings  # noqa: E402
from monitor.dedup.fingerprint import LSH  # noqa: E402
from monitor.dedup.index import Deduplicator  # noqa: E402

KEYS_PER_ITEM = LSH.bands + LSH.lead_bands
NOW = datetime(2026, 11, 23, tzinfo=UTC)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def fresh_database(backend: str, pg_admin: str, workdir: Path) -> str:
    if backend == "sqlite":
        path = workdir / "bench.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{path}"
    import psycopg

    with psycopg.connect(pg_admin, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS monitor_bench_dedup")
        conn.execute("CREATE DATABASE monitor_bench_dedup")
    base = pg_admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/monitor_bench_dedup"


def bulk_load(engine: Engine, n: int, feed_id: int) -> float:
    """N placeholder items and N x KEYS_PER_ITEM random band keys, inserted in key
    order (a bulk load, not the per-item path measured later). Returns seconds."""
    rng = np.random.default_rng(42)
    started = time.perf_counter()
    keys = rng.integers(-(2**63), 2**63 - 1, size=n * KEYS_PER_ITEM, dtype=np.int64)
    owners = np.repeat(np.arange(1, n + 1, dtype=np.int64), KEYS_PER_ITEM)
    order = np.argsort(keys, kind="stable")
    keys, owners = keys[order], owners[order]
    pg = engine.dialect.name == "postgresql"
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        created = NOW.replace(tzinfo=None).isoformat(sep=" ")
        chunk = 100_000
        for start in range(1, n + 1, chunk):
            ids = range(start, min(n, start + chunk - 1) + 1)
            if pg:
                with cur.copy("COPY items (id, feed_id, guid, created_at, text, text_source, "  # type: ignore[attr-defined]
                              "status) FROM STDIN") as cp:
                    for i in ids:
                        cp.write_row((i, feed_id, f"bg-{i}", NOW, "", "none", "new"))
            else:
                cur.executemany(
                    "INSERT INTO items (id, feed_id, guid, created_at, text, text_source, status)"
                    " VALUES (?, ?, ?, ?, '', 'none', 'new')",
                    [(i, feed_id, f"bg-{i}", created) for i in ids])
        raw.commit()
        chunk = 1_000_000
        for start in range(0, len(keys), chunk):
            rows = list(zip(keys[start:start + chunk].tolist(), owners[start:start + chunk].tolist(),
                            strict=True))
            if pg:
                with cur.copy("COPY item_bands (key, item_id) FROM STDIN") as cp:  # type: ignore[attr-defined]
                    for row in rows:
                        cp.write_row(row)
            else:
                cur.executemany("INSERT INTO item_bands (key, item_id) VALUES (?, ?)", rows)
            raw.commit()
        if pg:
            cur.execute("SELECT setval(pg_get_serial_sequence('items', 'id'), %s)", (n,))
            cur.execute("ANALYZE items")
            cur.execute("ANALYZE item_bands")
        else:
            cur.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
    return time.perf_counter() - started


def band_bytes(engine: Engine) -> int:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            return int(conn.execute(text("SELECT pg_total_relation_size('item_bands')")).scalar_one())
        try:
            return int(conn.execute(text(
                "SELECT sum(pgsize) FROM dbstat WHERE name = 'item_bands'")).scalar_one())
        except Exception:  # dbstat not compiled in: fall back to the page count of the file
            return -1


def run(backend: str, n: int, pg_admin: str, workdir: Path) -> None:
    url = fresh_database(backend, pg_admin, workdir)
    engine = db.make_engine(url)
    db.upgrade(engine)
    sessions = db.session_factory(engine)
    dedup = Deduplicator()
    with sessions.begin() as s:
        store.sync_feeds(s, [FeedSettings("bench", "http://127.0.0.1/feed", 900)], NOW)
        feed_id = store.claim_feeds(s, "bench", NOW, NOW, 1, everything=True)[0].id
        store.set_meta(s, "near_dedup_index", dedup.fingerprinter.version)
    load_s = bulk_load(engine, n, feed_id)

    data = load_eval_set()
    originals = data["originals"]
    fps = [dedup.fingerprint(o["text"]) for o in originals]
    insert_times: list[float] = []
    for start in range(0, len(originals), 20):
        t0 = time.perf_counter()
        with sessions.begin() as s:
            for o, fp in zip(originals[start:start + 20], fps[start:start + 20], strict=True):
                item_id = store.add_item(s, store.NewItem(
                    feed_id=feed_id, guid=o["id"], url=o["url"] or None, final_url=None,
                    canonical_url=None, title=None, author=None, published_at=None,
                    fetched_at=None, language=None, site_name=None, text=o["text"],
                    text_source="page", text_hash=None, page_status=None, page_error=None,
                ), NOW)
                dedup.index_item(s, item_id, fp)
        insert_times.append((time.perf_counter() - t0) / len(originals[start:start + 20]))

    queries = [v["text"] for v in data["variants"]] + [o["text"] for o in originals]
    qfps = [dedup.fingerprint(q) for q in queries]
    lookup: list[float] = []
    full: list[float] = []
    candidates = 0
    found = 0
    with sessions() as s:
        for fp in qfps[:50]:  # warm the cache
            store.near_candidates(s, fp.band_keys, dedup.thresholds.max_candidates)
        for fp in qfps:
            t0 = time.perf_counter()
            cands = store.near_candidates(s, fp.band_keys, dedup.thresholds.max_candidates)
            lookup.append(time.perf_counter() - t0)
            candidates += len(cands)
            t0 = time.perf_counter()
            found += dedup.find(s, fp) is not None
            full.append(time.perf_counter() - t0)
    size = band_bytes(engine)
    engine.dispose()
    per_item = f"{size / (n + len(originals)):.0f} B" if size > 0 else "n/a"
    insert_ms = statistics.mean(insert_times) * 1e3
    print(f"{backend:<10} N={n:>9,}  bulk load {load_s:7.1f} s | insert {insert_ms:5.2f} ms/item"
          f" | band lookup p50 {pct(lookup, 50) * 1e3:.2f} ms p99 {pct(lookup, 99) * 1e3:.2f} ms"
          f" | find (lookup+verify) p50 {pct(full, 50) * 1e3:.2f} ms p99 {pct(full, 99) * 1e3:.2f} ms"
          f" | {candidates / len(qfps):.2f} candidates/lookup, {found}/{len(qfps)} found"
          f" | index {per_item}/item", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--pg", default=os.environ.get("MONITOR_TEST_PG",
                                                   "postgresql://postgres@127.0.0.1:5432/test"))
    ap.add_argument("--workdir", default=None, help="where the SQLite file goes (default: a temp dir)")
    args = ap.parse_args()
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, SQLite {__import__('sqlite3').sqlite_version}; "
          f"{KEYS_PER_ITEM} band keys per item ({LSH.version})", flush=True)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for backend in args.backends.split(","):
            for n in (int(x) for x in args.sizes.split(",")):
                run(backend, n, args.pg, Path(tmp))


if __name__ == "__main__":
    main()
