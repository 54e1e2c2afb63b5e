"""The bound for poll_unchanged.py: a naive poller, not monitor's code.

``feedparser.parse(url, etag=, modified=)`` for every feed URL in URLS_FILE (one per
line) over 16 threads, each feed's validators kept in a SQLite file (stdlib sqlite3,
one transaction at the end), the way a small script would poll. Run it once to store
the validators; poll_unchanged.py times the second run, from exec to exit.

    .venv/bin/python benchmarks/naive_poll.py URLS_FILE STATE.sqlite [THREADS]
"""

from __future__ import annotations

import sqlite3
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import feedparser


def main() -> int:
    urls = Path(sys.argv[1]).read_text().split()
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 16
    db = sqlite3.connect(sys.argv[2])
    db.execute("CREATE TABLE IF NOT EXISTS feeds (url TEXT PRIMARY KEY, etag TEXT, "
               "modified TEXT, entries INTEGER)")
    known = {url: (etag, modified) for url, etag, modified
             in db.execute("SELECT url, etag, modified FROM feeds")}

    def poll(url: str) -> tuple[str, str | None, str | None, int, int]:
        etag, modified = known.get(url, (None, None))
        parsed = feedparser.parse(url, etag=etag, modified=modified)
        return (url, parsed.get("etag", etag), parsed.get("modified", modified),
                len(parsed.entries), int(parsed.get("status", 0)))

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(poll, urls))
    with db:
        db.executemany("INSERT INTO feeds VALUES (?, ?, ?, ?) ON CONFLICT (url) DO UPDATE "
                       "SET etag = excluded.etag, modified = excluded.modified",
                       [r[:4] for r in results])
    statuses: dict[int, int] = {}
    for r in results:
        statuses[r[4]] = statuses.get(r[4], 0) + 1
    print(f"{len(urls)} feeds polled: status {statuses}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
