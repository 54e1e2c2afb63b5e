"""Extraction quality and speed of monitor.articles on real pages, in both modes.

For ``[extract] mode`` "default" and "fast", prints the token precision, recall and F1
of the extracted text against the human-labelled article body (mean and median over
pages), the worst pages, single-process CPU ms per page, and the pages where the two
modes differ by more than 0.02 in F1.

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


def scores(truth: str, got: str) -> tuple[float, float, float]:
    """(precision, recall, F1) of ``got``'s word tokens against the ground truth's,
    as multisets."""
    want = Counter(TOKEN.findall(truth.lower()))
    have = Counter(TOKEN.findall(got.lower()))
    common = sum(min(n, have[t]) for t, n in want.items())
    precision = common / sum(have.values()) if have else 0.0
    recall = common / sum(want.values()) if want else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def run(pages: list[tuple[str, str, str, bytes]], fast: bool
        ) -> tuple[list[tuple[float, float, float]], int, float]:
    """Each page's scores, the extraction failures, CPU seconds per page."""
    extract_article(pages[0][3], pages[0][1], fast=fast)  # warm imports and lazy tables
    out: list[tuple[float, float, float]] = []
    failures = 0
    start = time.process_time()
    for i, (_key, url, body, html) in enumerate(pages, 1):
        try:
            text = extract_article(html, url, fast=fast).text
        except ExtractionError:
            text, failures = "", failures + 1
        out.append(scores(body, text))
        if i % 25 == 0:
            reset_caches()
    return out, failures, (time.process_time() - start) / len(pages)


def main() -> None:
    default = ROOT.parent / "shared" / "corpus" / "pages"
    pages_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else (
        default if default.is_dir() else ROOT / "tests" / "fixtures" / "pages")
    truth = json.loads((pages_dir / "ground-truth.json").read_text(encoding="utf-8"))
    pages = [(k, v["url"], v["articleBody"], gzip.decompress((pages_dir / f"{k}.html.gz").read_bytes()))
             for k, v in sorted(truth.items())]
    print(f"machine: {platform.node()} {platform.machine()}, Python {platform.python_version()}")
    print(f"pages: {len(pages)} from {pages_dir}")
    results = {}
    for mode in ("default", "fast"):
        per_page, failures, cpu = run(pages, fast=mode == "fast")
        results[mode] = per_page
        p, r, f = (list(col) for col in zip(*per_page, strict=True))
        worst = sorted(zip(f, (k for k, *_ in pages), strict=True))[:5]
        print(f"{mode:>7}: F1 mean {statistics.mean(f):.4f}, median {statistics.median(f):.4f}; "
              f"precision {statistics.mean(p):.4f}, recall {statistics.mean(r):.4f} (means); "
              f"pages with F1 >= 0.9: {sum(v >= 0.9 for v in f)}/{len(f)}; failures "
              f"{failures}; {cpu * 1000:.1f} ms CPU/page on one core")
        print("         worst: " + ", ".join(f"{k[:12]} {v:.3f}" for v, k in worst))
    for name, sign in (("fast worse", -1), ("fast better", 1)):
        pages_ = [(k[:12], round(b[2] - a[2], 3)) for (k, *_), a, b
                  in zip(pages, results["default"], results["fast"], strict=True)
                  if sign * (b[2] - a[2]) > 0.02]
        print(f"{name} by more than 0.02 F1: {len(pages_)} pages {pages_}")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")

if __name__ == "__main__":
    main()
