"""How long a digest takes to render, and how large it gets, by number of alerts.

    .venv/bin/python benchmarks/digest_render.py [--repeat N]

Entries come from the real article texts of tests/fixtures/dedup/eval_set.json.gz:
the first line as the title, a snippet of about 240 characters cut around a word of
the text the way the matcher cuts it, one "also reported by" outlet on every third
entry, spread over 3 rules. With the default ``[digest] full_entries`` (25 per rule in full,
the rest one line each) and with every entry in full. Prints, per size: milliseconds per digest (render and
serialise, median of N), the whole message's bytes, and the HTML part's decoded
bytes, the figure Gmail clips at about 102 KB ("[Message clipped] View entire
message").
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from monitor.config import DigestSettings
from monitor.digest.render import Entry, Outlet, assemble, render
from monitor.rules import Document, parse, snippet, terms_labelled

ROOT = Path(__file__).resolve().parent.parent
EVAL_SET = ROOT / "tests" / "fixtures" / "dedup" / "eval_set.json.gz"
RULES = ["Venezuela leadership", "Russia and Latin America", "Energy"]
SIZES = (10, 50, 100, 200, 500)


def entries(n: int) -> list[Entry]:
    data = json.loads(gzip.decompress(EVAL_SET.read_bytes()))
    now = datetime(2026, 11, 24, 11, tzinfo=UTC)
    out: list[Entry] = []
    for i, doc in enumerate([*data["originals"], *data["variants"]][:n]):
        title, _, body = doc["text"].strip().partition("\n")
        words = [w for w in body.split() if w.isalpha() and len(w) > 6]
        word = words[len(words) // 2] if words else "the"
        query = parse(word)
        terms = terms_labelled(query, [word])
        out.append(Entry(
            alert_id=i + 1, rule=RULES[i % 3], title=title.strip("# "),
            url=f"https://news.example/{i}", feed=f"Feed {i % 7}",
            published_at=now - timedelta(minutes=7 * i), created_at=now, query=word,
            terms=(word,), snippet=snippet(Document(title, body), terms),
            also=(Outlet("Wire", f"https://wire.example/{i}", None),) if i % 3 == 0 else ()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    print(f"machine: {platform.node()} {platform.machine()}, Python {platform.python_version()}")
    default = DigestSettings(sender="monitor@example.org", timezone="America/Caracas")
    for settings in (default, DigestSettings(sender=default.sender, timezone=default.timezone,
                                             full_entries=10**6)):
        print(f"\nfull_entries = {settings.full_entries}")
        measure(settings, args.repeat)


def measure(settings: DigestSettings, repeat: int) -> None:
    tz = ZoneInfo(settings.timezone)
    print(f"{'alerts':>7} {'ms/digest':>10} {'message KB':>11} {'HTML KB':>8}")
    for n in SIZES:
        es = entries(n)
        if len(es) < n:
            break
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            digest = assemble("desk@example.org", es, RULES)
            message = render(digest, settings, tz, datetime.now(UTC), "<digest.bench@example.org>")
            raw = message.as_bytes()
            times.append(time.perf_counter() - start)
        html = message.get_body(("html",)).get_content().encode()  # type: ignore[union-attr]
        print(f"{n:>7} {statistics.median(times) * 1000:>10.1f} {len(raw) / 1024:>11.1f} "
              f"{len(html) / 1024:>8.1f}")


if __name__ == "__main__":
    main()
