"""Search at 10k, 100k and 1M stored items: query latency, index size, cost per item.

    .venv/bin/python benchmarks/search.py [--sizes 10000,100000,1000000]
        [--backends sqlite,postgresql] [--pg postgresql://postgres@127.0.0.1:5432/test]
        [--runs 3] [--added 2000] [--keep DIR]

Items: real article text, scrambled the way the ingest benchmark scrambles pages, but
by sentence, so that the index sees a real vocabulary with a real spread: every
stored item is 15 to 45 sentences drawn at random from the corpus pages' bodies
(``../shared/corpus/pages``), each sentence left as written (70%) or with its letters
permuted by one of 1,000 tables (30%: the long tail of rare words a real store
grows); its title is another sentence's first 12 words. Stored times spread over
the last 90 days. Loaded in bulk: items by batch insert, the index rows that
monitor writes (``IndexedText``, folded in two processes) by batch insert (SQLite) or
COPY with the GIN index built after (PostgreSQL).

Queries: 20 a user would type (names, phrases, prefixes, a field, NOT, OR; from rare
to very common), each run ``--runs`` times through :func:`monitor.search.search` as
``monitor search`` runs it (ranked, 20 results, every result verified by the query);
per query the median, then p50 and p95 over the 20. Plus the whole ``monitor search``
process for two of them (start to exit), and what ``monitor rules test`` runs for each
(the newest 20 matches stored in the last 7 days, verified, and the count of all).

Size: the index's bytes per item (SQLite: the FTS5 tables from dbstat; PostgreSQL:
``item_search`` with its GIN and primary key). Added cost: on a fresh database,
``--added`` items stored one per transaction through ``store.add_item`` (as the
pipeline stores them), alternating blocks with and without the index write, so the
difference is what indexing adds per stored item.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, insert, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.retention import fresh, texts  # noqa: E402
from monitor import db, store  # noqa: E402
from monitor.config import FeedSettings  # noqa: E402
from monitor.models import Item  # noqa: E402
from monitor.rules import parse  # noqa: E402
from monitor.rules.fulltext import IndexedText  # noqa: E402
from monitor.search import count_matches, search  # noqa: E402

NOW = datetime.now(UTC)
LETTERS = "abcdefghijklmnopqrstuvwxyz"
TABLES = 1000
QUERIES = [
    "hurricane", "Trump", '"White House"', '"North Korea"', "title:China",
    "vaccin*", '"climate change"', "Twitter -Trump", "Google OR Facebook",
    '"Supreme Court"', "Washington China", "electi*", '"New York" -Trump',
    "police shooting", "title:(Apple OR Google)", "refugees", '"prime minister"',
    "NASA", "tariffs OR trade", "Obama NOT Trump",
]
CLI_QUERIES = ['"North Korea"', "Trump"]
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def sentences() -> list[str]:
    out = []
    for body in texts():
        out += [s.strip() for s in _SENTENCE.split(" ".join(body.split())) if len(s) > 30]
    return out


_POOL: list[str] = []
_TABLES: list[dict[int, int]] = []


def _init() -> None:
    global _POOL, _TABLES
    _POOL = sentences()
    _TABLES = []
    for k in range(TABLES):
        perm = list(LETTERS)
        random.Random(k).shuffle(perm)
        _TABLES.append(str.maketrans(LETTERS + LETTERS.upper(),
                                     "".join(perm) + "".join(perm).upper()))


def document(i: int) -> tuple[str, str]:
    rng = random.Random(i)
    parts = []
    for _ in range(rng.randrange(15, 46)):
        s = rng.choice(_POOL)
        parts.append(s if rng.random() < 0.7 else s.translate(rng.choice(_TABLES)))
    title = " ".join(rng.choice(_POOL).split()[:12])
    return title, " ".join(parts)


_DIALECT = "sqlite"


def _built(i: int) -> tuple[int, str, str, tuple[str, ...]]:
    """Item ``i`` and its index row as monitor writes it: FTS5 columns or a tsvector."""
    title, body = document(i)
    words = IndexedText.of(title, body)
    return i, title, body, (words.fts5() if _DIALECT == "sqlite" else (words.tsvector(),))


def _batches(first: int, n: int, size: int, dialect: str) -> Iterator[
        list[tuple[int, str, str, tuple[str, ...]]]]:
    """Items ``first``..``n``, built in two processes, ``size`` at a time; at most one
    block of 20,000 waits in memory (imap alone has no back-pressure: the builders ran
    10 GB ahead of the database)."""
    global _DIALECT
    _DIALECT = dialect
    with multiprocessing.get_context("fork").Pool(2, initializer=_init) as pool:
        for block in range(first, n + 1, 20_000):
            batch = []
            for row in pool.imap(_built, range(block, min(n + 1, block + 20_000)),
                                 chunksize=200):
                batch.append(row)
                if len(batch) >= size:
                    yield batch
                    batch = []
            if batch:
                yield batch


def load(engine: Engine, n: int) -> float:
    """N items, indexed; a load stopped half-way resumes after the last item stored.
    On PostgreSQL the GIN index is built once at the end (as a bulk load would), not
    item by item."""
    started = time.perf_counter()
    sessions = db.session_factory(engine)
    pg = engine.dialect.name == "postgresql"
    with sessions.begin() as s:
        store.sync_feeds(s, [FeedSettings(name="bench", url="http://127.0.0.1:9/feed.rss",
                                          interval=900)], NOW)
        feed_id = s.execute(text("SELECT id FROM feeds")).scalar_one()
        have = int(s.execute(text("SELECT coalesce(max(id), 0) FROM items")).scalar_one())
        if pg:
            s.execute(text("DROP INDEX IF EXISTS ix_item_search_doc"))
    span = timedelta(days=90).total_seconds()

    def at(i: int) -> datetime:
        return NOW - timedelta(seconds=span * (n - i) / n)

    done = have
    for batch in _batches(have + 1, n, 2000, engine.dialect.name):
        with sessions.begin() as s:
            s.execute(insert(Item), [
                {"id": i, "feed_id": feed_id, "guid": f"g{i}", "url": f"https://x.test/{i}",
                 "canonical_url": f"https://x.test/{i}", "title": title, "text": body,
                 "text_source": "page", "status": "new", "created_at": at(i)}
                for i, title, body, _ in batch])
            if pg:
                raw = s.connection().connection.driver_connection
                with raw.cursor().copy(
                        "COPY item_search (item_id, status, created_at, doc) FROM STDIN",
                ) as copy:
                    for i, _, _, (vec,) in batch:
                        copy.write_row((i, "new", at(i), vec))
            else:
                s.execute(text("INSERT INTO items_fts (rowid, title, body) "
                               "VALUES (:id, :title, :body)"),
                          [{"id": i, "title": t, "body": b} for i, _, _, (t, b) in batch])
        done += len(batch)
        if done % 100_000 < 2000:
            print(f"  loaded {done:,} items in {time.perf_counter() - started:.0f}s",
                  flush=True)
    with engine.begin() as conn:
        if pg:
            conn.execute(text("SET maintenance_work_mem = '1GB'"))
            conn.execute(text("CREATE INDEX IF NOT EXISTS ix_item_search_doc ON item_search "
                              "USING gin (doc)"))
            conn.execute(text("SELECT setval(pg_get_serial_sequence('items', 'id'), :n)"),
                         {"n": n})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if pg:
            conn.execute(text("VACUUM ANALYZE"))
        else:
            conn.exec_driver_sql("ANALYZE")
    return time.perf_counter() - started


def index_bytes(engine: Engine, n: int) -> float:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            total = conn.execute(text("SELECT pg_total_relation_size('item_search')")).scalar_one()
        else:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            total = conn.exec_driver_sql(
                "SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'items_fts%'").scalar_one()
    return float(total) / n


def query_times(engine: Engine, runs: int, *, rules_test: bool = False,
                ) -> dict[str, tuple[float, int]]:
    """Per query: the median seconds of ``runs`` searches, and how many results. With
    ``rules_test``: what `monitor rules test` runs instead (the newest 20 matches stored
    in the last 7 days, verified, and how many there are in all)."""
    sessions = db.session_factory(engine)
    out = {}
    for q in QUERIES:
        query = parse(q)
        took = []
        for _ in range(runs):
            with sessions() as s:
                started = time.perf_counter()
                if rules_test:
                    week = store.SearchFilters(since=NOW - timedelta(days=7))
                    r = search(s, query, week, limit=20, ranked=False, by_story=False)
                    found = count_matches(s, query, week) if r.more else len(r.matches)
                else:
                    r = search(s, query, store.SearchFilters(), limit=20)
                    found = len(r.matches)
                took.append(time.perf_counter() - started)
        out[q] = (statistics.median(took), found)
    return out


def cli_times(url: str, workdir: Path) -> dict[str, float]:
    config = workdir / "search-bench.toml"
    config.write_text(f'[database]\nurl = "{url}"\n[seeds]\npath = "{ROOT / "seeds"}"\n'
                      '[[feeds]]\nname = "bench"\nurl = "http://127.0.0.1:9/feed.rss"\n',
                      encoding="utf-8")
    out = {}
    for q in CLI_QUERIES:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "monitor", "--config", str(config), "search", q],
                       check=True, capture_output=True)
        out[q] = time.perf_counter() - started
    return out


def added_cost(backend: str, args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    """Median milliseconds to store one item: without the index write ("none"), with it
    folding the words ("fold": a copy, which no rule reads), and with the words the
    rules already folded ("given": an original, as the pipeline stores it)."""
    import monitor.store.items as items_module

    url = fresh(backend, args.pg, workdir, "monitor_bench_search_add")
    engine = db.make_engine(url)
    _init()
    real = items_module.index_texts
    modes = ("none", "fold", "given")
    try:
        db.upgrade(engine)
        sessions = db.session_factory(engine)
        with sessions.begin() as s:
            store.sync_feeds(s, [FeedSettings(name="bench", url="http://127.0.0.1:9/f.rss",
                                              interval=900)], NOW)
            feed_id = s.execute(text("SELECT id FROM feeds")).scalar_one()
        timed: dict[str, list[float]] = {m: [] for m in modes}
        for k in range(args.added):
            mode = modes[(k // 50) % 3]
            items_module.index_texts = (  # type: ignore[assignment]
                real if mode != "none" else (lambda *a, **kw: None))
            title, body = document(5_000_000 + k)
            words = IndexedText.of(title, body) if mode == "given" else None
            new = store.NewItem(
                feed_id=feed_id, guid=f"a{k}", url=f"https://y.test/{k}", final_url=None,
                canonical_url=f"https://y.test/{k}", title=title, author=None,
                published_at=None, fetched_at=NOW, language="en", site_name=None, text=body,
                text_source="page", text_hash=None, page_status=200, page_error=None,
                words=words)
            started = time.perf_counter()
            with sessions.begin() as s:
                store.add_item(s, new, NOW)
            timed[mode].append(time.perf_counter() - started)
    finally:
        items_module.index_texts = real
        engine.dispose()
    return {m: 1000 * statistics.median(t) for m, t in timed.items()}


def _kept(backend: str, args: argparse.Namespace, name: str) -> str | None:
    """The URL of a database an earlier run with ``--keep`` left, if it is there."""
    if backend == "sqlite":
        path = args.keep / f"{name}.db"
        return f"sqlite:///{path}" if path.exists() else None
    import psycopg

    with psycopg.connect(args.pg, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return args.pg.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://",
                                                     1) + f"/{name}"
    return None


def _loaded(engine: Engine, n: int) -> bool:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM items")).scalar_one() == n


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--added", type=int, default=2000)
    ap.add_argument("--json", metavar="FILE", help="also write the numbers to FILE")
    ap.add_argument("--keep", type=Path, metavar="DIR",
                    help="keep each size's database (SQLite files in DIR; PostgreSQL: "
                         "monitor_bench_search_N) and, run again, measure it without "
                         "loading it again")
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, SQLite {__import__('sqlite3').sqlite_version}",
          flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="search-bench-") as tmp:
        workdir = Path(tmp)
        for backend in args.backends.split(","):
            add = {"none": 0.0, "given": 0.0, "fold": 0.0}
            if args.added > 0:
                add = added_cost(backend, args, workdir)
                print(f"{backend}: storing an item (median of {args.added // 3}) "
                      f"{add['none']:.2f} ms without the index; with it {add['given']:.2f} ms "
                      f"for an original (the rules' words), {add['fold']:.2f} ms for a copy "
                      f"(folded for the index): {add['given'] - add['none']:.2f} / "
                      f"{add['fold'] - add['none']:.2f} ms added per stored item", flush=True)
            for n in (int(x) for x in args.sizes.split(",") if x):
                name = f"monitor_bench_search_{n}"
                url = _kept(backend, args, name) if args.keep else None
                took = 0.0
                if url is None:
                    url = fresh(backend, args.pg, args.keep or workdir, name)
                engine = db.make_engine(url)
                try:
                    db.upgrade(engine)
                    if not _loaded(engine, n):
                        took = load(engine, n)
                    size = index_bytes(engine, n)
                    times = query_times(engine, args.runs)
                    tests = query_times(engine, args.runs, rules_test=True)
                finally:
                    engine.dispose()
                cli = cli_times(url, workdir)
                ms = [t * 1000 for t, _ in times.values()]
                print(f"{backend} {n:>9,} items (loaded in {took:.0f}s): query p50 "
                      f"{_pct(ms, 0.5):.1f} ms, p95 {_pct(ms, 0.95):.1f} ms, max "
                      f"{max(ms):.1f} ms; index {size:,.0f} bytes per item; whole "
                      "`monitor search` process: "
                      + ", ".join(f"{q} {t:.2f}s" for q, t in cli.items()), flush=True)
                for q, (t, found) in times.items():
                    print(f"    {t * 1000:8.1f} ms  {found:>3} results  {q}")
                rt = [t * 1000 for t, _ in tests.values()]
                print(f"  rules test (last 7 days: 20 shown, all counted): p50 "
                      f"{_pct(rt, 0.5):.1f} ms, p95 {_pct(rt, 0.95):.1f} ms; matches "
                      + ", ".join(f"{q} {found}" for q, (_, found) in tests.items()),
                      flush=True)
                results.append({"backend": backend, "items": n, "load_s": took,
                                "index_bytes_per_item": size, "p50_ms": _pct(ms, 0.5),
                                "p95_ms": _pct(ms, 0.95),
                                "queries_ms": {q: t * 1000 for q, (t, _) in times.items()},
                                "rules_test_ms": {q: t * 1000 for q, (t, _) in tests.items()},
                                "cli_s": cli, "add_ms": add})
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
