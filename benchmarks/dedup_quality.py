"""Precision and recall of near-duplicate detection on the labelled evaluation set.

    .venv/bin/python benchmarks/dedup_quality.py [--sweep]

The set (tests/fixtures/dedup/eval_set.json.gz, built by make_eval_set.py there)
holds real originals and syndication variants of them. Every original is
indexed with the real fingerprints and LSH band keys; every variant and every
original is then looked up the way the pipeline looks up a new item: band-key
candidates (at most ``max_candidates``, most shared bands first), verified by
exact Jaccard and containment, best duplicate taken as the verdict.

  * a variant found as a duplicate of its own original: true positive;
  * a variant missed: false negative;
  * any verdict naming the wrong original (for a variant, or for an original
    looked up against all the others): false positive.

--sweep prints the same for a grid of thresholds (the defaults come from it).
"""

from __future__ import annotations

import gzip
import json
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from monitor.config import Thresholds
from monitor.dedup.fingerprint import Fingerprint, Fingerprinter
from monitor.dedup.verdict import compare, rank

ROOT = Path(__file__).resolve().parent.parent
EVAL_SET = ROOT / "tests" / "fixtures" / "dedup" / "eval_set.json.gz"


@dataclass
class Report:
    positives: int = 0
    true_positives: int = 0
    false_positives: int = 0
    misses: Counter[str] = field(default_factory=Counter)  # by variant kind
    per_kind: Counter[str] = field(default_factory=Counter)
    wrong: list[str] = field(default_factory=list)
    candidate_misses: int = 0  # positives whose original LSH did not even propose

    @property
    def precision(self) -> float:
        flagged = self.true_positives + self.false_positives
        return self.true_positives / flagged if flagged else 1.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.positives if self.positives else 1.0


def load_eval_set(path: Path = EVAL_SET) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(gzip.decompress(path.read_bytes()))
    return data


class MemoryIndex:
    """The band-key table as a dict; the same candidate rule as the store's."""

    def __init__(self) -> None:
        self.bands: dict[int, list[str]] = defaultdict(list)
        self.fps: dict[str, Fingerprint] = {}

    def add(self, key: str, fp: Fingerprint) -> None:
        self.fps[key] = fp
        for k in fp.band_keys:
            self.bands[k].append(key)

    def candidates(self, fp: Fingerprint, limit: int, exclude: str | None) -> list[str]:
        hits: Counter[str] = Counter()
        for k in fp.band_keys:
            hits.update(d for d in self.bands.get(k, ()) if d != exclude)
        return [d for d, _ in hits.most_common(limit)]


def evaluate(data: dict[str, Any], t: Thresholds) -> Report:
    fpr = Fingerprinter()
    index = MemoryIndex()
    for o in data["originals"]:
        index.add(o["id"], fpr.fingerprint(o["text"]))
    report = Report()

    def verdict(fp: Fingerprint, exclude: str | None) -> tuple[str | None, list[str]]:
        cands = index.candidates(fp, t.max_candidates, exclude)
        best = rank(fp, ((c, index.fps[c]) for c in cands), t)
        return (str(best[0].candidate) if best and best[0].duplicate else None), cands

    for v in data["variants"]:
        report.positives += 1
        report.per_kind[v["kind"]] += 1
        found, cands = verdict(fpr.fingerprint(v["text"]), None)
        if v["of"] not in cands:
            report.candidate_misses += 1
        if found == v["of"]:
            report.true_positives += 1
        else:
            report.misses[v["kind"]] += 1
            if found is not None:
                report.false_positives += 1
                report.wrong.append(f"{v['kind']} of {v['of']} -> {found}")
    for o in data["originals"]:
        found, _ = verdict(index.fps[o["id"]], o["id"])
        if found is not None:
            report.false_positives += 1
            report.wrong.append(f"original {o['id']} -> {found}")
    return report


def margins(data: dict[str, Any]) -> None:
    """The scores the thresholds must separate: the closest negatives, the weakest positives."""
    fpr = Fingerprinter()
    fps = {o["id"]: fpr.fingerprint(o["text"]) for o in data["originals"]}
    ids = sorted(fps)
    neg = sorted(((compare(fps[a], fps[b]), a, b) for i, a in enumerate(ids) for b in ids[i + 1:]),
                 key=lambda x: x[0].containment, reverse=True)
    print("closest negatives (different articles):")
    for s, a, b in neg[:3]:
        print(f"  containment {s.containment:.3f} jaccard {s.jaccard:.3f}  {a} / {b}")
    seeds = [(s, a, b) for s, a, b in neg if a.endswith(".txt") and b.endswith(".txt")]
    s, a, b = seeds[0]
    print(f"closest seed pair: containment {s.containment:.3f} jaccard {s.jaccard:.3f}  {a} / {b}")
    print("weakest positives by kind (containment, jaccard):")
    by_kind: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for v in data["variants"]:
        sc = compare(fpr.fingerprint(v["text"]), fps[v["of"]])
        by_kind[v["kind"]].append((sc.containment, sc.jaccard))
    for kind, scores in sorted(by_kind.items()):
        c, j = min(scores)
        print(f"  {kind:<11} lowest containment {c:.3f} (jaccard {j:.3f}); "
              f"lowest jaccard {min(x[1] for x in scores):.3f}")


def show(r: Report, t: Thresholds) -> None:
    print(f"jaccard>={t.jaccard} containment>={t.containment} min_words={t.min_words}: "
          f"precision {r.precision:.4f} recall {r.recall:.4f} "
          f"({r.true_positives}/{r.positives} found, {r.false_positives} false positives, "
          f"{r.candidate_misses} not proposed by LSH)")


def main() -> None:
    data = load_eval_set()
    n_neg = len(data["originals"]) * (len(data["originals"]) - 1)
    print(f"eval set: {len(data['originals'])} originals, {len(data['variants'])} variants, "
          f"{n_neg} negative pairs")
    start = time.perf_counter()
    t = Thresholds()
    r = evaluate(data, t)
    elapsed = time.perf_counter() - start
    show(r, t)
    for kind, n in sorted(r.per_kind.items()):
        print(f"  {kind:<11} recall {1 - r.misses[kind] / n:.3f} ({n - r.misses[kind]}/{n})")
    for w in r.wrong:
        print(f"  wrong: {w}")
    print(f"  {elapsed:.2f} s for {len(data['variants']) + len(data['originals'])} lookups")
    fpr = Fingerprinter()
    texts = [o["text"] for o in data["originals"]] + [v["text"] for v in data["variants"]]
    start = time.perf_counter()
    for t_ in texts:
        fpr.fingerprint(t_)
    per = (time.perf_counter() - start) / len(texts)
    words = sum(len(t_.split()) for t_ in texts) / len(texts)
    print(f"  fingerprint: {per * 1e3:.2f} ms per text (mean {words:.0f} words), one core")
    margins(data)
    if "--sweep" in sys.argv:
        for j in (0.3, 0.4, 0.5, 0.6, 0.7):
            for c in (0.5, 0.6, 0.7, 0.8, 0.9):
                show(evaluate(data, replace(t, jaccard=j, containment=c)),
                     replace(t, jaccard=j, containment=c))


if __name__ == "__main__":
    main()
