"""Every real feed in ../shared/corpus/feeds through monitor's feed parser.

None may crash: each feed must give a ParsedFeed or raise FeedParseError (our error,
with a reason). Prints what was parsed, what was refused and why, warnings by kind,
time per feed (median, 95th percentile, max) and peak memory.

    .venv/bin/python benchmarks/corpus_feeds.py [--feeds DIR]
"""

from __future__ import annotations

import argparse
import gzip
import resource
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

from monitor.errors import FeedParseError
from monitor.ingest.feeds import parse_feed

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "feeds"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--feeds", type=Path, default=DEFAULT)
    args = ap.parse_args()
    files = sorted(args.feeds.glob("*.xml.gz"))
    if not files:
        print(f"no *.xml.gz feeds in {args.feeds}", file=sys.stderr)
        return 2
    times: list[float] = []
    entries = 0
    refused: list[str] = []
    warnings: Counter[str] = Counter()
    versions: Counter[str] = Counter()
    crashed: list[str] = []
    no_link = bad_link = 0
    for path in files:
        body = gzip.decompress(path.read_bytes())
        url = f"http://feeds.example/{path.name.removesuffix('.xml.gz')}"
        start = time.perf_counter()
        try:
            parsed = parse_feed(body, url, "application/xml")
        except FeedParseError as exc:
            refused.append(f"{path.name}: {exc.reason}")
            continue
        except Exception as exc:  # the one outcome that must never happen
            crashed.append(f"{path.name}: {type(exc).__name__}: {exc}")
            continue
        finally:
            times.append(time.perf_counter() - start)
        entries += len(parsed.entries)
        versions[parsed.version] += 1
        if parsed.warning:
            warnings[parsed.warning.split(":")[0]] += 1
        for e in parsed.entries:
            if e.link is None:
                no_link += 1
            elif not e.link.startswith(("http://", "https://")):
                bad_link += 1
    times.sort()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"feeds: {len(files)}; parsed {len(files) - len(refused) - len(crashed)}, "
          f"refused {len(refused)}, crashed {len(crashed)}")
    print(f"entries: {entries} ({no_link} without a link, {bad_link} with a non-http(s) link)")
    print("versions: " + ", ".join(f"{v or '?'} {n}" for v, n in versions.most_common()))
    print("warnings (malformed but usable): "
          + (", ".join(f"{k} {n}" for k, n in warnings.most_common()) or "none"))
    print(f"parse time per feed: median {statistics.median(times) * 1000:.0f} ms, "
          f"p95 {times[int(len(times) * 0.95)] * 1000:.0f} ms, max {times[-1] * 1000:.0f} ms, "
          f"total {sum(times):.1f} s")
    print(f"peak RSS: {peak_mb:.0f} MB")
    for line in refused:
        print("refused", line)
    for line in crashed:
        print("CRASHED", line)
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
