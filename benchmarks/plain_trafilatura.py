"""The bound for ingest.py's cold mode: plain trafilatura over a folder of pages.

Every ``*.html`` file in PAGES_DIR goes through ``trafilatura.extract(html,
with_metadata=True)`` in WORKERS processes (multiprocessing, spawn), and the process
exits. Nothing of monitor is imported: this is what the machine does with the same
pages when nothing but the extractor runs, and ingest.py times it from exec to exit
as it times ``monitor run --once``.

    .venv/bin/python benchmarks/plain_trafilatura.py PAGES_DIR WORKERS
"""

from __future__ import annotations

import multiprocessing
import sys
from pathlib import Path


def _extract(path: str) -> int:
    import trafilatura

    html = Path(path).read_bytes()
    text = trafilatura.extract(html, url=f"http://bench.invalid/{Path(path).name}",
                               with_metadata=True)
    return 0 if text is None else 1


def main() -> int:
    pages = sorted(str(p) for p in Path(sys.argv[1]).glob("*.html"))
    workers = int(sys.argv[2])
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        extracted = sum(pool.imap_unordered(_extract, pages, chunksize=1))
    print(f"{extracted} of {len(pages)} pages extracted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
