"""Story clustering quality on ECB+ (../shared/corpus/events): 982 real articles
labelled with the event they report (86 events, two of one kind in each of 43 topics).

    .venv/bin/python benchmarks/stories_quality.py [--orders 3] [--sweep]

Articles arrive one at a time in a random order (ECB+ has no dates: every article has
the same time, so the time window never separates anything), and each joins a story
or starts one, as monitor's pipeline does: the same pure code
(:mod:`monitor.stories.signals`), the candidates found the same way (the stories that
share one of the article's heaviest terms, by an inverted index of each story's
heaviest terms), the document frequencies counted as articles arrive, on top of the
shipped prior. Reports, averaged over ``--orders`` arrival orders:

- **copies only**: an article joins the story of a stored text it near-duplicates
  (monitor's dedup verdict), else starts one: what grouping by copies gives;
- **TF-IDF baseline**: one space (all words), no prior, centroid cosine, its threshold
  the best on these answers (an upper bound for the plain method);
- **monitor's defaults** ([stories] threshold), and with ``--sweep`` other thresholds.

Each with BCubed precision, recall and F1, and pairwise precision and recall.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from monitor.config import StorySettings, Thresholds  # noqa: E402
from monitor.dedup.fingerprint import Fingerprinter  # noqa: E402
from monitor.dedup.verdict import compare, is_duplicate  # noqa: E402
from monitor.stories import signals  # noqa: E402

EVENTS = ROOT.parent / "shared" / "corpus" / "events" / "ecbplus.jsonl"


def load(path: Path = EVENTS) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def bcubed(pred: Sequence[object], gold: Sequence[object]) -> tuple[float, float, float]:
    by_p: dict[object, set[int]] = defaultdict(set)
    by_g: dict[object, set[int]] = defaultdict(set)
    for i, (p, g) in enumerate(zip(pred, gold, strict=True)):
        by_p[p].add(i)
        by_g[g].add(i)
    precision = recall = 0.0
    for i in range(len(pred)):
        both = len(by_p[pred[i]] & by_g[gold[i]])
        precision += both / len(by_p[pred[i]])
        recall += both / len(by_g[gold[i]])
    precision, recall = precision / len(pred), recall / len(pred)
    return precision, recall, 2 * precision * recall / (precision + recall)


def pairwise(pred: Sequence[object], gold: Sequence[object]) -> tuple[float, float]:
    def pairs(labels: Sequence[object]) -> set[tuple[int, int]]:
        groups: dict[object, list[int]] = defaultdict(list)
        for i, label in enumerate(labels):
            groups[label].append(i)
        return {p for members in groups.values() for p in combinations(members, 2)}

    p, g = pairs(pred), pairs(gold)
    return (len(p & g) / len(p) if p else 1.0), (len(p & g) / len(g) if g else 1.0)


class Stream:
    """Stories built one article at a time, candidates by an inverted term index."""

    def __init__(self, threshold: float, *, prior: bool = True, names: bool = True) -> None:
        self.threshold = threshold
        self.prior = prior
        self.names = names
        self.df: Counter[str] = Counter()
        self.names_df: Counter[str] = Counter()
        self.docs = 0
        self.stories: list[signals.Centroid] = []
        self.index: dict[str, set[int]] = defaultdict(set)
        self.indexed: list[list[str]] = []

    def add(self, title: str | None, text: str) -> int:
        t = signals.terms(title, text)
        self.docs += 1
        self.df.update(t.all.keys())
        self.names_df.update(t.names.keys())
        profile = signals.Profile.of(
            t, signals.combined(self.docs, self.df, with_prior=self.prior),
            signals.combined(self.docs, self.names_df, with_prior=False))
        if not self.names:
            profile = signals.Profile(profile.all, profile.all)
        hits: Counter[int] = Counter()
        for term in profile.heaviest(signals.INDEX_TERMS):
            hits.update(self.index.get(term, ()))
        candidates = [(sid, self.stories[sid]) for sid, _ in hits.most_common(20)]
        chosen, _ = signals.best_story(profile, candidates, self.threshold)
        if chosen is None:
            chosen = len(self.stories)
            self.stories.append(signals.Centroid())
            self.indexed.append([])
        story = self.stories[chosen]
        story.add(profile)
        for term in self.indexed[chosen]:
            self.index[term].discard(chosen)
        self.indexed[chosen] = story.heaviest()
        for term in self.indexed[chosen]:
            self.index[term].add(chosen)
        return chosen


def copies_only(docs: list[dict[str, str]], order: list[int]) -> list[int]:
    fingerprinter, t = Fingerprinter(), Thresholds()
    seen: list[tuple[int, object]] = []
    pred = [0] * len(docs)
    for i in order:
        fp = fingerprinter.fingerprint(docs[i]["text"])
        story = next((s for s, other in seen
                      if is_duplicate(fp, other, compare(fp, other), t)), None)  # type: ignore[arg-type]
        pred[i] = story if story is not None else i
        seen.append((pred[i], fp))
    return pred


def evaluate(docs: list[dict[str, str]], orders: int,
             method: Callable[[list[int]], list[int]]) -> dict[str, float]:
    gold = [d["event_id"] for d in docs]
    runs = []
    for seed in range(orders):
        order = list(range(len(docs)))
        random.Random(seed).shuffle(order)
        pred = method(order)
        runs.append((*bcubed(pred, gold), *pairwise(pred, gold)))
    keys = ("P", "R", "F1", "pair P", "pair R")
    return {k: statistics.mean(r[i] for r in runs) for i, k in enumerate(keys)}


def streamed(docs: list[dict[str, str]], threshold: float,
             **kw: bool) -> Callable[[list[int]], list[int]]:
    def method(order: list[int]) -> list[int]:
        s = Stream(threshold, **kw)
        pred = [0] * len(docs)
        for i in order:
            pred[i] = s.add(docs[i]["title"], docs[i]["text"])
        return pred
    return method


def line(label: str, r: dict[str, float]) -> str:
    return (f"{label:<40} BCubed P {r['P']:.3f} R {r['R']:.3f} F1 {r['F1']:.3f}   "
            f"pairwise P {r['pair P']:.3f} R {r['pair R']:.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--orders", type=int, default=3, help="random arrival orders averaged")
    p.add_argument("--sweep", action="store_true", help="also other thresholds")
    args = p.parse_args()
    docs = load()
    default = StorySettings().threshold
    print(f"ECB+: {len(docs)} articles, {len({d['event_id'] for d in docs})} events; "
          f"{args.orders} arrival orders")
    print(line("copies only (near-duplicates)",
               evaluate(docs, args.orders, lambda order: copies_only(docs, order))))
    baseline = max(((thr, evaluate(docs, args.orders,
                                   streamed(docs, thr, prior=False, names=False)))
                    for thr in (0.15, 0.2, 0.25, 0.3, 0.35)), key=lambda tr: tr[1]["F1"])
    print(line(f"TF-IDF baseline (best threshold {baseline[0]})", baseline[1]))
    print(line(f"monitor, threshold {default} (default)",
               evaluate(docs, args.orders, streamed(docs, default))))
    if args.sweep:
        for thr in (0.25, 0.28, 0.3, 0.32, 0.35, 0.38, 0.4):
            print(line(f"monitor, threshold {thr}", evaluate(docs, args.orders,
                                                             streamed(docs, thr))))


if __name__ == "__main__":
    main()
