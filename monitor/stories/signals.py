"""What a story is recognised by (pure: no database, network or clock): the words of an
article weighted by TF-IDF in two spaces, and the decision which story it joins.

Two write-ups of one event share few sentences (the seeds 000 and 002: 5-shingle
Jaccard 0.02) but many of the same rare words: the people, places, organisations and
numbers they report, and the event's own vocabulary. An article is therefore read as:

- **all**: its words (title included), case and accents folded, stop words dropped;
- **names**: the capitalised words that do not start a line, and the numbers: the
  who, where and how many that tell two events of one kind apart (two earthquakes,
  two celebrities entering rehab);

each weighted by sublinear term frequency times inverse document frequency, the
document frequencies counted over everything stored, in each space (the all space
starts from a prior counted over a general news corpus that ships with monitor, so that
the first articles have sensible weights). A story is the sum of its articles' vectors
(its centroid, cut to its ``CENTROID_TERMS`` heaviest terms per space); an article
joins the story whose centroid it resembles most, ``0.5 x cosine(all) + 0.5 x
cosine(names)`` (the names' cosine halved when they share one name only: two short
articles about two events in Cuba share little else), when that is at least the
threshold, else it starts one. Measured in docs/stories.md.
"""

from __future__ import annotations

import gzip
import hashlib
import heapq
import json
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

CENTROID_TERMS = 128  # terms a story's centroid keeps per space (an article keeps all)
INDEX_TERMS = 12  # a story's heaviest terms, by which candidates are found
LOCK_TERMS = 8  # an article's heaviest terms, locked while it joins a story
ALL_WEIGHT = 0.5  # the rest is the names space's
LEAD_WORDS = 400  # words of an article's text read (its title is read whole)
SHARED_NAMES = 2  # names an article shares with a story before their cosine counts fully

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?|\d+(?:[.,]\d+)*")
_POSSESSIVE = re.compile(r"['’]s$", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?:;]")  # between two words: the second opens a sentence
_COMBINING = {cp: None for cp in range(0x300, 0x370)}
STOP_WORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before
being below between both but by can could did do does doing down during each few for from
further had has have having he her here hers herself him himself his how i if in into is it
its itself just me more most my myself no nor not now of off on once only or other our ours
ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were
what when where which while who whom why will with would you your yours yourself yourselves
said says say told according one two three new like may might must shall also since yet
however would could per mr mrs ms last first next year years week day days time
""".split())


def fold(word: str) -> str:
    """Case- and accent-folded: "Rodríguez" -> "rodriguez" (other scripts kept)."""
    if word.isascii():
        return word.lower()
    return unicodedata.normalize("NFKD", word).translate(_COMBINING).casefold()


@dataclass(frozen=True)
class Terms:
    """An article's term counts in the two spaces."""

    all: Mapping[str, int]
    names: Mapping[str, int]


def terms(title: str | None, text: str) -> Terms:
    """Count the words of ``title`` and of the first ``LEAD_WORDS`` of ``text`` (see the
    module's docstring): news puts the event first, and the cost of an article, stored,
    weighed and compared, is then bounded (ECB+: the same F1 as the whole text, 0.887;
    200 words 0.868)."""
    everything: Counter[str] = Counter()
    names: Counter[str] = Counter()
    opening: Counter[str] = Counter()  # capitalised at a sentence's start: a name only if
    titled = (title or "").splitlines()  # also capitalised inside one
    left = LEAD_WORDS  # of the text's words: a long article costs what its lead costs
    for n, line in enumerate(titled + text.splitlines()):
        if left <= 0:
            break
        start = 0
        for i, m in enumerate(_WORD.finditer(line)):
            if n >= len(titled):
                left -= 1
                if left < 0:
                    break
            raw = m.group()
            word = fold(_POSSESSIVE.sub("", raw))  # "Maduro's" is Maduro
            after_stop = _SENTENCE_END.search(line, start, m.start()) is not None
            start = m.end()
            if len(word) < 2 or word in STOP_WORDS:
                continue
            everything[word] += 1
            if raw[0].isdigit() or (i > 0 and raw[0].isupper() and not after_stop):
                names[word] += 1
            elif i > 0 and raw[0].isupper():
                opening[word] += 1
    for word, n in opening.items():
        if word in names:
            names[word] += n
    return Terms(everything, names)


def term_key(term: str) -> int:
    """A term's signed 64-bit key, for the document-frequency table and the index."""
    digest = hashlib.blake2b(term.encode("utf-8", "surrogatepass"), digest_size=8,
                             person=b"story-term").digest()
    return int.from_bytes(digest, "big", signed=True)


Vector = dict[str, float]


@dataclass(frozen=True)
class Frequencies:
    """Document frequencies: how many of ``docs`` documents hold each term."""

    docs: int
    of: Callable[[str], int]  # a term's document frequency (0: never seen)

    def idf(self, term: str) -> float:
        return math.log((self.docs + 1) / (self.of(term) + 1)) + 1.0


def vector(counts: Mapping[str, int], freq: Frequencies) -> Vector:
    """Sublinear TF x IDF, L2-normalised."""
    weighted = {t: (1.0 + math.log(c)) * freq.idf(t) for t, c in counts.items() if c > 0}
    norm = math.sqrt(sum(w * w for w in weighted.values())) or 1.0
    return {t: w / norm for t, w in weighted.items()}


@dataclass(frozen=True)
class Profile:
    """An article as stories compare it: its vectors in both spaces."""

    all: Vector
    names: Vector

    @classmethod
    def of(cls, t: Terms, all_freq: Frequencies, names_freq: Frequencies) -> Profile:
        return cls(vector(t.all, all_freq), vector(t.names, names_freq))

    def heaviest(self, n: int) -> list[str]:
        """Its ``n`` heaviest terms, both spaces together (for the index and locks)."""
        merged: dict[str, float] = dict(self.all)
        for t, w in self.names.items():
            if w > merged.get(t, 0.0):
                merged[t] = w
        return [t for t, _ in heapq.nsmallest(n, merged.items(),
                                              key=lambda kv: (-kv[1], kv[0]))]


@dataclass
class Centroid:
    """A story: the sum of its articles' vectors, cut to each space's ``TOP_TERMS``."""

    all: Vector = field(default_factory=dict)
    names: Vector = field(default_factory=dict)
    _norms: tuple[float, float] | None = field(default=None, init=False, repr=False,
                                               compare=False)

    def norms(self) -> tuple[float, float]:
        """Its vectors' lengths (all, names), computed once."""
        if self._norms is None:
            self._norms = (math.sqrt(sum(w * w for w in self.all.values())),
                           math.sqrt(sum(w * w for w in self.names.values())))
        return self._norms

    def copy(self) -> Centroid:
        return Centroid(dict(self.all), dict(self.names))

    def add(self, p: Profile) -> None:
        self._norms = None
        for mine, theirs in ((self.all, p.all), (self.names, p.names)):
            for t, w in theirs.items():
                mine[t] = mine.get(t, 0.0) + w
            if len(mine) > CENTROID_TERMS:
                kept = heapq.nsmallest(CENTROID_TERMS, mine.items(),
                                       key=lambda kv: (-kv[1], kv[0]))
                mine.clear()
                mine.update(kept)

    def heaviest(self, n: int = INDEX_TERMS) -> list[str]:
        return Profile(self.all, self.names).heaviest(n)

    def to_json(self) -> str:
        return self.stored()[0]

    def stored(self) -> tuple[str, Centroid]:
        """Its JSON as stored, and the centroid that JSON decodes to, exactly (weights
        rounded to 5 decimals): a worker that keeps it compares as one that reads it."""
        kept = Centroid(_rounded(self.all), _rounded(self.names))
        return json.dumps({"all": kept.all, "names": kept.names}, separators=(",", ":"),
                          ensure_ascii=False), kept

    @classmethod
    def from_json(cls, raw: str) -> Centroid:
        data = json.loads(raw)
        return cls(dict(data.get("all", {})), dict(data.get("names", {})))


def _rounded(v: Vector) -> Vector:
    return {t: round(w, 5) for t, w in v.items()}


def _cosine(unit: Vector, other: Vector, norm: float) -> float:
    """Cosine of a normalised vector with any other, of length ``norm``."""
    if not unit or not other or not norm:
        return 0.0
    # The shared terms by a set intersection (in C), then a short sum: an article and a
    # story share a few dozen of their hundreds.
    return sum(unit[t] * other[t] for t in unit.keys() & other.keys()) / norm


@dataclass(frozen=True)
class Resemblance:
    """How much an article resembles a story, and the terms that weigh most in it."""

    score: float
    all: float  # cosine in the all space
    names: float  # cosine in the names space
    shared: tuple[str, ...]  # the shared terms that weigh most (only when explaining)


def resemblance(p: Profile, c: Centroid, *, explain: bool = False) -> Resemblance:
    """How much ``p`` resembles ``c``; with ``explain``, the shared terms too."""
    norm_all, norm_names = c.norms()
    a, n = _cosine(p.all, c.all, norm_all), _cosine(p.names, c.names, norm_names)
    shared_names = len(p.names.keys() & c.names.keys())
    if shared_names < SHARED_NAMES:
        n *= shared_names / SHARED_NAMES  # one name in common is two events in one place
    top: tuple[str, ...] = ()
    if explain:
        shared = {t: w * c.all[t] for t, w in p.all.items() if t in c.all}
        top = tuple(t for t, _ in sorted(shared.items(), key=lambda kv: -kv[1])[:8])
    return Resemblance(ALL_WEIGHT * a + (1 - ALL_WEIGHT) * n, a, n, top)


def best_story(p: Profile, candidates: Iterable[tuple[int, Centroid]], threshold: float, *,
               explain: bool = False) -> tuple[int | None, list[tuple[int, Resemblance]]]:
    """The story ``p`` joins among ``candidates`` ((id, centroid)): the one it resembles
    most, if at least ``threshold``; and every candidate's resemblance, best first (with
    ``explain``, each with the terms shared)."""
    scored = sorted(((sid, resemblance(p, c, explain=explain)) for sid, c in candidates),
                    key=lambda sr: (-sr[1].score, sr[0]))
    if scored and scored[0][1].score >= threshold:
        return scored[0][0], scored
    return None, scored


@cache
def prior() -> tuple[int, Mapping[str, int]]:
    """The shipped document frequencies: (documents, term -> frequency), counted over a
    general news corpus (docs/stories.md says which), terms seen at least twice."""
    raw = resources.files("monitor.stories").joinpath("prior_df.json.gz").read_bytes()
    data = json.loads(gzip.decompress(raw))
    return int(data["docs"]), dict(data["df"])


def combined(stored_docs: int, stored: Mapping[str, int], *,
             with_prior: bool = True) -> Frequencies:
    """Frequencies from what is stored (``stored``: at least the terms asked about),
    and the shipped prior's ``with_prior`` (the all space; names have none)."""
    prior_docs, prior_df = prior() if with_prior else (0, {})

    def of(term: str) -> int:
        return prior_df.get(term, 0) + stored.get(term, 0)

    return Frequencies(prior_docs + stored_docs, of)
