"""Near-duplicate quality on the labelled evaluation set (tests/fixtures/dedup).

The set: 186 real originals (181 human-labelled article bodies and the five
seeds) and 901 syndication variants of 95 of them; see make_eval_set.py there.
The measured numbers are in docs/dedup.md (benchmarks/dedup_quality.py prints
them); the floors here sit just under what the defaults reach, so a change that
costs precision or recall fails.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from benchmarks.dedup_quality import Report, evaluate, load_eval_set
from monitor.config import Thresholds
from monitor.dedup.fingerprint import Fingerprinter
from monitor.dedup.verdict import compare

# Reached with the default thresholds: precision 1.0000, recall 0.9978 (899/901).
PRECISION_FLOOR = 0.995
RECALL_FLOOR = 0.995
KIND_RECALL_FLOOR = 0.98


@pytest.fixture(scope="module")
def report() -> Report:
    return evaluate(load_eval_set(), Thresholds())


def test_eval_set_is_what_it_claims() -> None:
    data = load_eval_set()
    originals = {o["id"]: o for o in data["originals"]}
    assert len(originals) == 186
    assert sum(o["source"] == "seed" for o in originals.values()) == 5
    kinds = {v["kind"] for v in data["variants"]}
    assert kinds == {"real_page", "template", "headline", "added", "dropped", "truncated",
                     "teaser", "teaser_byline", "copyedit", "syndicated"}
    assert all(v["of"] in originals for v in data["variants"])
    assert all(v["text"] != originals[v["of"]]["text"] for v in data["variants"])
    assert len(data["variants"]) >= 800


def test_precision_and_recall_floors(report: Report) -> None:
    assert report.precision >= PRECISION_FLOOR, report.wrong
    assert report.recall >= RECALL_FLOOR, dict(report.misses)


@pytest.mark.parametrize("kind", ["real_page", "template", "headline", "added", "dropped",
                                  "truncated", "teaser", "teaser_byline", "copyedit",
                                  "syndicated"])
def test_every_kind_of_copy_is_found(report: Report, kind: str) -> None:
    n = report.per_kind[kind]
    assert n > 0
    assert 1 - report.misses[kind] / n >= KIND_RECALL_FLOOR, (kind, report.misses[kind], n)


def test_the_evaluation_can_fail() -> None:
    # Identity-only thresholds: every edited copy is missed, so the floors above mean something.
    strict = evaluate(load_eval_set(), replace(Thresholds(), jaccard=1.0, containment=1.0))
    assert strict.recall < 0.8
    assert strict.misses["copyedit"] >= 0.9 * strict.per_kind["copyedit"]
    assert strict.misses["syndicated"] >= 0.9 * strict.per_kind["syndicated"]


def test_different_articles_stay_far_below_the_thresholds_without_lsh() -> None:
    # LSH rarely even proposes a different article, so precision above owes much to it.
    # Verified exhaustively, every pair of different originals (the seeds among them)
    # must still fall well short of the defaults.
    fpr = Fingerprinter()
    fps = [fpr.fingerprint(o["text"]) for o in load_eval_set()["originals"]]
    t = Thresholds()
    worst = max((compare(a, b) for i, a in enumerate(fps) for b in fps[i + 1:]),
                key=lambda s: s.containment)
    assert worst.containment < t.containment - 0.3
    assert worst.jaccard < t.jaccard - 0.3
