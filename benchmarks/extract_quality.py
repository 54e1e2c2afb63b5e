"""Extraction quality and speed of monitor.articles on real pages.

Prints the token recall of the extracted text against the human-labelled article
body (mean, median, worst pages), single-process pages/s and peak RSS.

    .venv/bin/python benchmarks/extract_quality.py [PAGES_DIR]

PAGES_DIR holds <sha256>.html.gz files and ground-truth.json; it defaults to
../shared/corpus/pages when present, else tests/fixtures/pages.
"""

from __future__ import annotations

import gzip
import json
import platform
import re
import resource
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

from monitor.errors import ExtractionError
from monitor.ingest.articles import extract_article, reset_caches

ROOT = Path(__file__).resolve().parent.parent
TOKEN = re.compile(r"\w+")


def token_recall(truth: str, got: str) -> float:
    """Share of the ground truth's word tokens (as a multiset) found in ``got``."""
    want = Counter(TOKEN.findall(truth.lower()))
    have = Counter(TOKEN.findall(got.lower()))
    total = sum(want.values())
    return sum(min(n, have[t]) for t, n in want.items()) / total if total else 0.0


def main() -> None:
    default = ROOT.parent / "shared" / "corpus" / "pages"
    pages_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else (
        default if default.is_dir() else ROOT / "tests" / "fixtures" / "pages")
    truth = json.loads((pages_dir / "ground-truth.json").read_text(encoding="utf-8"))
    pages = [(k, v["url"], v["articleBody"], gzip.decompress((pages_dir / f"{k}.html.gz").read_bytes()))
             for k, v in sorted(truth.items())]
    extract_article(pages[0][3], pages[0][1])  # warm imports and lazy tables
    scores: list[tuple[float, str]] = []
    failures = 0
    start = time.perf_counter()
    for i, (key, url, body, html) in enumerate(pages, 1):
        try:
            text = extract_article(html, url).text
        except ExtractionError:
            text, failures = "", failures + 1
        scores.append((token_recall(body, text), key))
        if i % 25 == 0:
            reset_caches()
    elapsed = time.perf_counter() - start
    values = [s for s, _ in scores]
    print(f"machine: {platform.node()} {platform.machine()}, Python {platform.python_version()}")
    print(f"pages: {len(pages)} from {pages_dir}")
    print(f"token recall: mean {statistics.mean(values):.4f}, median {statistics.median(values):.4f}, "
          f"pages >= 0.9: {sum(v >= 0.9 for v in values)}/{len(values)}, extraction failures: {failures}")
    print("worst: " + ", ".join(f"{k[:12]} {s:.3f}" for s, k in sorted(scores)[:5]))
    per_page_ms = elapsed * 1000 / len(pages)
    print(f"speed: {len(pages) / elapsed:.1f} pages/s on one core ({per_page_ms:.1f} ms/page)")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
