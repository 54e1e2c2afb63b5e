"""Items per second matched against 10, 100 and 1,000 alert rules, on one core.

    .venv/bin/python benchmarks/rules_match.py [--seconds S]

Items: the 1,087 texts of tests/fixtures/dedup/eval_set.json.gz (real article
bodies and variants of them, 4.4 KB on average), the first line as the title.
Rules: generated with a fixed seed from the words of those texts, in the shapes
users write (see SHAPES): words, phrases, OR lists, AND with exclusions, prefixes,
title: scopes. Every item is matched the way the pipeline does it
(:meth:`Matcher.match`: fold and split the title and text, test the rules whose
trigger words occur, build terms and a snippet for each hit). "prepare" is the
folding and splitting alone; "no prefilter" tests every rule on every item, to
show what the trigger index saves.
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import random
import sys
import time
from collections import Counter
from pathlib import Path

from monitor.rules import Document, Hit, Matcher, hit, parse, words_of

ROOT = Path(__file__).resolve().parent.parent
EVAL_SET = ROOT / "tests" / "fixtures" / "dedup" / "eval_set.json.gz"

SHAPES = (
    "{a}",
    '"{a} {b}"',
    "{a} OR {b} OR {c}",
    '{a} OR "{b} {c}"',
    "{a} {b} -{c}",
    "{a} AND ({b} OR {c} OR {d})",
    "title:{a} OR {b}*",
    "({a} OR {b}) ({c} OR {d}*)",
    '"{a} {b}" OR "{c} {d}" OR {e}',
    "{a} NOT ({b} OR {c})",
)


def load_items() -> list[tuple[str, str]]:
    data = json.loads(gzip.decompress(EVAL_SET.read_bytes()))
    items = []
    for doc in [*data["originals"], *data["variants"]]:
        text = doc["text"].strip()
        title, _, body = text.partition("\n")
        items.append((title, body))
    return items


def make_rules(items: list[tuple[str, str]], n: int, seed: int = 4) -> list[tuple[str, str]]:
    """``n`` (name, query) pairs over words that occur in 0.1-10 % of the items:
    the names, places and topics people actually set alerts on."""
    df: Counter[str] = Counter()
    for title, body in items:
        df.update(set(words_of(f"{title} {body}")))
    lo, hi = len(items) * 0.001, len(items) * 0.10
    vocab = sorted(w for w, c in df.items() if lo <= c <= hi and len(w) >= 4 and w.isalpha())
    rng = random.Random(seed)
    rules = []
    for i in range(n):
        shape = SHAPES[i % len(SHAPES)]
        words = rng.sample(vocab, 5)
        rules.append((f"rule {i}", shape.format(a=words[0], b=words[1], c=words[2], d=words[3],
                                                e=words[4])))
    return rules


def timed(fn: object, seconds: float) -> tuple[int, float]:
    """Runs ``fn`` (no arguments) repeatedly for about ``seconds``: (runs, elapsed)."""
    assert callable(fn)
    runs, start = 0, time.perf_counter()
    while True:
        fn()
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return runs, elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    args = ap.parse_args()
    items = load_items()
    print(f"python {platform.python_version()} on {platform.machine()}, {len(items)} items, "
          f"{sum(len(t) + len(b) for t, b in items) / len(items) / 1024:.1f} KB of text each")
    parse("warm up")  # the word pattern is built on first use (12 ms); not per item

    def prepare() -> None:
        for title, body in items:
            Document(title, body)

    runs, elapsed = timed(prepare, args.seconds)
    print(f"prepare only: {runs * len(items) / elapsed:,.0f} items/s")
    print(f"{'rules':>6} {'items/s':>9} {'ms/item':>8} {'hits/item':>10} "
          f"{'no prefilter items/s':>21}")
    for n in (10, 100, 1000):
        matcher = Matcher((name, parse(q)) for name, q in make_rules(items, n))
        hits = sum(len(matcher.match(t, b)) for t, b in items)

        def match_all(m: Matcher = matcher) -> None:
            for title, body in items:
                m.match(title, body)

        def match_every_rule(m: Matcher = matcher) -> list[Hit]:
            found = []
            for title, body in items:
                doc = Document(title, body)
                found += [hit(name, q, doc) for name, q in m.rules if q.test(doc)]
            return found

        assert len(match_every_rule()) == hits  # the prefilter loses nothing
        runs, elapsed = timed(match_all, args.seconds)
        rate = runs * len(items) / elapsed
        runs, elapsed = timed(match_every_rule, args.seconds)
        naive = runs * len(items) / elapsed
        print(f"{n:>6} {rate:>9,.0f} {1000 / rate:>8.3f} {hits / len(items):>10.2f} "
              f"{naive:>21,.0f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
