"""What joining a story adds to storing an article, with N stories stored, and the
stories' size on disk.

    .venv/bin/python benchmarks/stories_speed.py [--sizes 10000,100000]
        [--backends sqlite,postgresql] [--pg postgresql://postgres@127.0.0.1:5432/test]

For each backend and N: a fresh database with monitor's schema gets N stories, all
reported within the window (the worst case: every one is a candidate by time). Their
centroids are real: 1,000 article texts (the corpus pages' bodies, scrambled per copy)
made into stories by the pure code, then copied with every term's letters permuted per
copy, so that N stories have N distinct vocabularies sharing the corpus's shape (the
index fans out as much as real stories would). Then 1,000 new articles (other scrambled
copies: a third of them write-ups of stored stories, the rest new) each join a story
through :meth:`monitor.stories.joining.Stories.join` in a transaction of its own, as
the pipeline calls it (frequencies read, candidates looked up, compared, the story
grown or started), timed per article: median and p99 of the join itself (what it adds
to the item's transaction), and of a transaction holding only the join (its commit
included). Prints the bytes per story of
``stories`` plus ``story_terms`` with their indexes.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, insert, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.retention import fresh, scrambled, texts  # noqa: E402
from monitor import db  # noqa: E402
from monitor.config import StorySettings  # noqa: E402
from monitor.models import Story, StoryTerm  # noqa: E402
from monitor.stories import signals  # noqa: E402
from monitor.stories.joining import Stories  # noqa: E402

NOW = datetime.now(UTC)
LETTERS = "abcdefghijklmnopqrstuvwxyz"
JOINS = 1000  # articles timed (the first ones read the frequencies' cache cold)


def permuted(copy: int) -> dict[int, int]:
    if copy == 0:
        return {}  # the corpus's own (scrambled) vocabulary: what the joining articles use
    perm = list(LETTERS)
    random.Random(10_000 + copy).shuffle(perm)
    return str.maketrans(LETTERS, "".join(perm))


def base_centroids(n: int) -> list[signals.Centroid]:
    bodies = texts()
    freq = signals.combined(0, {})
    out = []
    for i in range(n):
        t = signals.terms(None, scrambled(bodies, i))
        c = signals.Centroid()
        c.add(signals.Profile.of(t, freq, freq))
        out.append(c)
    return out


def load(engine: Engine, n: int, bases: list[signals.Centroid]) -> float:
    started = time.perf_counter()
    stories, terms = [], []
    with engine.begin() as conn:
        for i in range(1, n + 1):
            base = bases[i % len(bases)]
            table = permuted(i // len(bases))
            c = signals.Centroid({t.translate(table): w for t, w in base.all.items()},
                                 {t.translate(table): w for t, w in base.names.items()})
            stories.append({"id": i, "title": f"story {i}", "language": None, "first_at": NOW,
                            "last_at": NOW, "items": 1, "created_at": NOW,
                            "centroid": c.to_json()})
            terms += [{"term": t, "story_id": i} for t in c.heaviest()]
            if len(stories) >= 5000:
                conn.execute(insert(Story), stories)
                conn.execute(insert(StoryTerm), terms)
                stories, terms = [], []
        if stories:
            conn.execute(insert(Story), stories)
            conn.execute(insert(StoryTerm), terms)
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT setval(pg_get_serial_sequence('stories', 'id'), :n)"),
                         {"n": n})
            conn.execute(text("ANALYZE stories"))
            conn.execute(text("ANALYZE story_terms"))
    return time.perf_counter() - started


def size_per_story(engine: Engine, n: int) -> float:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            total = conn.execute(text("SELECT pg_total_relation_size('stories') + "
                                      "pg_total_relation_size('story_terms')")).scalar_one()
        else:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            total = conn.exec_driver_sql(
                "SELECT sum(pgsize) FROM dbstat WHERE name IN ('stories', 'story_terms', "
                "'ix_story_terms_story_id', 'ix_stories_last_at')").scalar_one()
    return float(total) / n


def run(backend: str, n: int, args: argparse.Namespace, workdir: Path,
        bases: list[signals.Centroid]) -> None:
    url = fresh(backend, args.pg, workdir, "monitor_bench_stories")
    engine = db.make_engine(url)
    try:
        db.upgrade(engine)
        took = load(engine, n, bases)
        sessions = db.session_factory(engine)
        stories = Stories(StorySettings())
        bodies = texts()
        times, whole, joined = [], [], 0
        for k in range(JOINS):
            # a third: write-ups of stored stories (copy 0's vocabulary); the rest new
            source = k if k % 3 == 0 else 500_000 + k
            t = signals.terms(f"title {k}", scrambled(bodies, source))
            began = time.perf_counter()
            with sessions.begin() as s:
                s.connection()  # the item's transaction is open when the join comes
                started = time.perf_counter()
                result = stories.join(s, t, title=f"title {k}", language=None, at=NOW, now=NOW)
                times.append(time.perf_counter() - started)
            whole.append(time.perf_counter() - began)
            joined += not result.new
            stories.flush(sessions) if stories.due() else None
        print(f"{backend} {n:>9,} stories (loaded in {took:.0f}s): join per article "
              f"{_spread(times)}; in a transaction of its own {_spread(whole)}; "
              f"{joined} of {JOINS} joined a story; {size_per_story(engine, n):,.0f} bytes "
              "per story", flush=True)
    finally:
        engine.dispose()


def _spread(times: list[float]) -> str:
    ordered = sorted(times)
    return (f"median {statistics.median(ordered) * 1000:.2f} ms, "
            f"p99 {ordered[int(0.99 * len(ordered)) - 1] * 1000:.2f} ms")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="10000,100000")
    p.add_argument("--backends", default="sqlite,postgresql")
    p.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = p.parse_args()
    print(f"# {platform.node()}, Python {platform.python_version()}; "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    bases = base_centroids(1000)
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            for n in (int(x) for x in args.sizes.split(",")):
                run(backend, n, args, Path(tmp), bases)


if __name__ == "__main__":
    main()
