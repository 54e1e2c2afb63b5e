"""Near-duplicate verdicts (pure): two fingerprints compared, candidates ranked.

A candidate is a duplicate when both texts are long enough and either their
shingle sets resemble each other (Jaccard) or the smaller one is nearly
contained in the larger one (containment). The thresholds are settings
(:class:`monitor.config.Thresholds`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from monitor.config import Thresholds
from monitor.dedup.fingerprint import Fingerprint


@dataclass(frozen=True)
class Scores:
    jaccard: float  # |A and B| / |A or B|
    containment: float  # |A and B| / min(|A|, |B|): how much of the smaller text is in the other
    shared: int
    smaller: int  # shingles in the smaller text

    @property
    def similarity(self) -> float:
        """The score recorded on a near-duplicate: the larger of the two."""
        return max(self.jaccard, self.containment)


def compare(a: Fingerprint, b: Fingerprint) -> Scores:
    """Exact resemblance and containment of two texts' shingle sets."""
    if not len(a.shingles) or not len(b.shingles):
        return Scores(0.0, 0.0, 0, 0)
    import numpy as np  # imported where texts are compared (see fingerprint.py)

    shared = int(np.intersect1d(a.shingles, b.shingles, assume_unique=True).size)
    union = len(a.shingles) + len(b.shingles) - shared
    smaller = min(len(a.shingles), len(b.shingles))
    return Scores(shared / union, shared / smaller, shared, smaller)


def is_duplicate(a: Fingerprint, b: Fingerprint, scores: Scores, t: Thresholds) -> bool:
    """The verdict: both texts long enough, and either they resemble each other or
    the smaller one is (nearly) contained in the larger one."""
    if min(a.words, b.words) < t.min_words:
        return False
    return scores.jaccard >= t.jaccard or scores.containment >= t.containment


K = TypeVar("K")


@dataclass(frozen=True)
class Match(Generic[K]):
    candidate: K  # whatever the caller identifies candidates by
    scores: Scores
    duplicate: bool


def rank(query: Fingerprint, candidates: Iterable[tuple[K, Fingerprint]],
         t: Thresholds) -> list[Match[K]]:
    """Verified candidates, best first (duplicates first, then by similarity)."""
    matches: list[Match[K]] = []
    for key, fp in candidates:
        s = compare(query, fp)
        matches.append(Match(key, s, is_duplicate(query, fp, s, t)))
    matches.sort(key=lambda m: (m.duplicate, m.scores.similarity), reverse=True)
    return matches


# A copy this much longer than the original it contains is the fuller telling of the
# story (the article after its teaser, the page after a feed summary): it becomes the
# original.
FULLER = 1.25


def is_fuller(query: Fingerprint, match: Match[K], t: Thresholds) -> bool:
    """Whether ``query`` is a fuller copy of ``match``'s text: a duplicate of it that
    contains it (containment counts the smaller text, here the matched one) and has at
    least FULLER times its shingles."""
    s = match.scores
    return (match.duplicate and s.containment >= t.containment
            and len(query.shingles) >= FULLER * s.smaller)
