"""Text fingerprints for deduplication (pure: no database, network or clock).

Exact dedup compares a hash of the *normalized* text, so that a copy differing
only in case, accents, punctuation or whitespace still counts as the same text.

Near dedup compares word shingles:

    text -> drop boilerplate lines -> normalize -> words -> k-word shingles (64-bit hashes)
         -> MinHash signatures -> LSH band keys        (stored, indexed: finds candidates)
         -> exact Jaccard and containment on shingles  (verifies a candidate)

Two signatures are banded: one over the whole text, which finds copies with
edits spread through them, and one over the *lead* (the first shingles), which
finds teasers, truncations and copies with paragraphs added at the end, whose
whole-text resemblance is low. A candidate is a duplicate when its shingle sets
resemble each other (Jaccard) or when one text is nearly contained in the other
(containment), and the smaller text is long enough for containment to mean
something.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

# numpy is imported by the functions that use it: a daemon whose polls find nothing new
# never needs it, and importing it took 0.05 s of the way to the first request.

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)

# Minimum normalized length for a text hash to mean anything: two empty or
# one-line texts are not "the same article".
MIN_HASHABLE_CHARS = 80


class _DropCombining(dict[int, int | None]):
    """A :meth:`str.translate` table that deletes combining characters (accents) and
    keeps the rest, filled in as characters are met: translate runs in C, where a
    character-by-character generator took most of the time near-dedup spends."""

    def __missing__(self, codepoint: int) -> int | None:
        kept = None if unicodedata.combining(chr(codepoint)) else codepoint
        if len(self) < 200_000:  # every script there is fits; a hostile text cannot grow it
            self[codepoint] = kept
        return kept


_DROP_COMBINING = _DropCombining()


def normalize_text(text: str) -> str:
    """Case-folded, accent-free words separated by single spaces.

    "Delcy Rodríguez,  said:" -> "delcy rodriguez said"

    Stored text hashes and band keys depend on this exact output: a change here needs
    a new :attr:`LshParams.version` and a re-hash of stored items.
    """
    if text.isascii():  # nothing to decompose: the common case, done faster
        return _NON_WORD.sub(" ", text.casefold()).strip()
    stripped = unicodedata.normalize("NFKD", text).translate(_DROP_COMBINING)
    return _NON_WORD.sub(" ", stripped.casefold()).strip()


@dataclass(frozen=True)
class Normalized:
    """A text's lines, as they are and normalized (:func:`normalize_text`): what both
    the text hash and the near-dedup fingerprint are computed from, so that the work,
    most of the daemon's CPU per article, is done once."""

    lines: tuple[str, ...]  # text.splitlines()
    normalized: tuple[str, ...]  # each of them normalized; "" for a line without words


def normalized(text: str) -> Normalized:
    """Normalize ``text`` once, line by line. The same as :func:`normalize_text` on each
    line: decomposition, accent removal and case folding act on each character alone
    and never add or remove a line break, so they run over the whole text at once."""
    lines = text.splitlines()
    if text.isascii():
        folded = text.casefold()
    else:
        folded = unicodedata.normalize("NFKD", text).translate(_DROP_COMBINING).casefold()
    parts = folded.splitlines()
    if len(parts) != len(lines):  # not expected; stay exact whatever the text holds
        return Normalized(tuple(lines), tuple(normalize_text(line) for line in lines))
    return Normalized(tuple(lines), tuple(_NON_WORD.sub(" ", p).strip() for p in parts))


def text_hash(text: str | Normalized) -> str | None:
    """SHA-256 (hex) of the normalized text, or None when it is too short to identify.
    (The normalized lines joined by spaces are :func:`normalize_text` of the whole.)"""
    norm = text if isinstance(text, Normalized) else normalized(text)
    joined = " ".join(line for line in norm.normalized if line)
    if len(joined) < MIN_HASHABLE_CHARS:
        return None
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()


# --- near-duplicates -------------------------------------------------------------------------

# Lines that say where a text came from rather than what it says. A copy that only
# adds one of these is the same article; on a short text they would otherwise
# weigh in the score. Matched case-insensitively against each stripped line.
DEFAULT_BOILERPLATE: tuple[str, ...] = (
    r"original (url|link|article|source)\s*:.*",
    r"from .{1,80} via (this )?rss feed\.?",
    r"the post .{1,300} appeared first on .{1,120}",
    r"this (article|story|post) (was )?(originally|first) (published|appeared) .{0,200}",
    r"(read|see) (more|also|the full (story|article))\b.{0,120}",
    r"(related|related articles?|related stories|recommended|more on this)\s*:?.{0,120}",
    r"(follow|like) us on .{0,120}",
    r"(share|subscribe|sign up|click here|advertisement)\b.{0,80}",
    r"(©|\(c\)|copyright)\s.{0,160}",
    r"(all rights reserved|reporting by|editing by|writing by)\b.{0,160}",
    r"https?://\S+",
)
_MAX_BOILERPLATE_WORDS = 40  # a longer line is content, whatever it starts with
_MAX_LEADING_LINES = 4  # at most this many short lines are skipped before the first paragraph


@dataclass(frozen=True)
class LshParams:
    """How texts are shingled and banded. Changing any of these changes the stored
    band keys, so the index records :attr:`version` and is rebuilt when it differs."""

    shingle_words: int = 5
    bands: int = 20  # whole-text signature: bands x rows MinHash values
    rows: int = 3
    # The lead signature covers the first this-many shingles. Two rows per band, so
    # that a lead shifted by a few words (a dropped first sentence) is still proposed.
    lead_shingles: int = 60
    lead_bands: int = 10
    lead_rows: int = 2
    min_words: int = 10  # shorter texts get no band keys: nothing to find them by
    first_line_words: int = 15  # shorter lines before the first such line are skipped

    @property
    def version(self) -> str:
        return (f"minhash-v1:k={self.shingle_words}:b={self.bands}x{self.rows}:"
                f"lead={self.lead_shingles}/{self.lead_bands}x{self.lead_rows}:"
                f"min={self.min_words}:first={self.first_line_words}")


LSH = LshParams()


@dataclass(frozen=True)
class Fingerprint:
    """What near-dedup knows of one text."""

    words: int  # after boilerplate removal
    shingles: npt.NDArray[np.uint64]  # sorted, unique
    band_keys: tuple[int, ...]  # signed 64-bit, for the database index; () if too short


class Boilerplate:
    """Removes boilerplate lines; built once from the default and configured patterns."""

    def __init__(self, extra: Sequence[str] = ()) -> None:
        self.patterns = (*DEFAULT_BOILERPLATE, *extra)
        joined = "|".join(f"(?:{p})" for p in self.patterns)
        self._line = re.compile(rf"\s*(?:{joined})\s*", re.IGNORECASE)

    def is_boilerplate(self, line: str) -> bool:
        return len(line.split()) <= _MAX_BOILERPLATE_WORDS and bool(self._line.fullmatch(line))

    def remove(self, text: str) -> str:
        return "\n".join(line for line in text.splitlines() if not self.is_boilerplate(line))


def words_of(text: str | Normalized, boilerplate: Boilerplate,
             first_line_words: int) -> list[str]:
    """The words near-dedup compares: boilerplate lines dropped, and the few short lines
    before the first real paragraph (headline, byline, dateline, "Listen to this
    article"), where extraction and feeds disagree most. A text made of short lines
    (a table, a list) is kept whole."""
    norm = text if isinstance(text, Normalized) else normalized(text)
    lines = [n for raw, n in zip(norm.lines, norm.normalized, strict=True)
             if n and not boilerplate.is_boilerplate(raw)]
    start = 0
    for i, line in enumerate(lines[:_MAX_LEADING_LINES + 1]):
        if len(line.split()) >= first_line_words:
            start = i
            break
    return " ".join(lines[start:]).split()


# Multiply-shift hashing (Dietzfelbinger): h_i(x) = (a_i * x + b_i) mod 2^64, top 32 bits.
# Fixed seeds: the stored band keys must come out the same in every process and release.
def _coefficients(n: int, seed: int) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    import numpy as np

    rng = np.random.default_rng(seed)
    a = rng.integers(1, 2**63, size=n, dtype=np.uint64) * np.uint64(2) + np.uint64(1)  # odd
    b = rng.integers(0, 2**63, size=n, dtype=np.uint64)
    return a, b


_MIX = 0x9E3779B97F4A7C15


def shingle_hashes(words: Sequence[str], k: int) -> npt.NDArray[np.uint64]:
    """Sorted unique 64-bit hashes of the k-word shingles (one shingle if fewer words)."""
    import numpy as np

    if not words:
        return np.empty(0, dtype=np.uint64)
    tokens = np.fromiter((zlib.crc32(w.encode("utf-8")) for w in words), dtype=np.uint64,
                         count=len(words))
    k = min(k, len(words))
    n = len(words) - k + 1
    h = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(k):  # polynomial hash of the window, wrapping mod 2^64
            h = h * np.uint64(_MIX) + tokens[j:j + n] + np.uint64(j + 1)
        h ^= h >> np.uint64(29)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(32)
    return h


def _signature(shingles: npt.NDArray[np.uint64], a: npt.NDArray[np.uint64],
               b: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    import numpy as np

    with np.errstate(over="ignore"):
        perm = (shingles[:, None] * a[None, :] + b[None, :]) >> np.uint64(32)
    result: npt.NDArray[np.uint64] = perm.min(axis=0)
    return result


def _band_keys(sig: npt.NDArray[np.uint64], rows: int, tag: str) -> list[int]:
    keys = []
    for band in range(len(sig) // rows):
        h = hashlib.blake2b(sig[band * rows:(band + 1) * rows].tobytes(), digest_size=8,
                            person=f"{tag}{band}".encode()[:16])
        keys.append(int.from_bytes(h.digest(), "big", signed=True))
    return keys


class Fingerprinter:
    """Turns texts into :class:`Fingerprint` s. Pure and reusable; build one per process."""

    def __init__(self, boilerplate: Boilerplate | None = None, params: LshParams = LSH) -> None:
        self.boilerplate = boilerplate or Boilerplate()
        self.params = params

    @cached_property
    def _full(self) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
        return _coefficients(self.params.bands * self.params.rows, 0x6D6F6E69)

    @cached_property
    def _lead(self) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
        return _coefficients(self.params.lead_bands * self.params.lead_rows, 0x6C656164)

    @property
    def version(self) -> str:
        """Identifies the band keys this produces: parameters and boilerplate patterns."""
        patterns = hashlib.sha256("\n".join(self.boilerplate.patterns).encode()).hexdigest()
        return f"{self.params.version}:boilerplate={patterns[:12]}"

    def fingerprint(self, text: str | Normalized) -> Fingerprint:
        import numpy as np

        p = self.params
        words = words_of(text, self.boilerplate, p.first_line_words)
        ordered = shingle_hashes(words, p.shingle_words)
        shingles = np.unique(ordered)
        if len(words) < p.min_words:
            return Fingerprint(len(words), shingles, ())
        lead = np.unique(ordered[:p.lead_shingles])
        keys = (_band_keys(_signature(shingles, *self._full), p.rows, "f")
                + _band_keys(_signature(lead, *self._lead), p.lead_rows, "l"))
        return Fingerprint(len(words), shingles, tuple(dict.fromkeys(keys)))


# --- what is kept of a text that is pruned ---------------------------------------------------

SKETCH_SHIFT = 32  # a sketch keeps the top 32 bits of each shingle hash


def narrowed(fp: Fingerprint) -> Fingerprint:
    """``fp`` with its shingles in a sketch's 32-bit space, to be compared with one."""
    import numpy as np

    return Fingerprint(fp.words, np.unique(fp.shingles >> np.uint64(SKETCH_SHIFT)), ())


def sketch(fp: Fingerprint) -> bytes:
    """The shingles of ``fp``, narrowed to 32 bits, sorted, delta-coded and compressed:
    about half of what the text took on real articles (random hashes do not compress;
    the deltas' high bytes do). Comparing sketches gives the exact scores but for collisions of 32-bit
    hashes, 2^-32 per pair of shingles (for two 1,000-shingle texts, one spurious shared
    shingle in about 4,300 comparisons)."""
    import numpy as np

    narrow = narrowed(fp).shingles.astype(np.uint32)
    deltas = np.diff(narrow, prepend=np.uint32(0)).astype("<u4")
    return zlib.compress(deltas.tobytes(), 9)


def from_sketch(words: int, data: bytes) -> Fingerprint:
    """The fingerprint a :func:`sketch` keeps (narrowed: compare it with
    :func:`narrowed` ones). Raises ValueError for bytes that are no sketch."""
    import numpy as np

    try:
        raw = zlib.decompress(data)
    except zlib.error as exc:
        raise ValueError(f"not a shingle sketch: {exc}") from exc
    if len(raw) % 4:
        raise ValueError("not a shingle sketch: a partial value")
    deltas = np.frombuffer(raw, dtype="<u4")
    with np.errstate(over="ignore"):
        values = np.cumsum(deltas, dtype=np.uint32)
    return Fingerprint(words, values.astype(np.uint64), ())


def story_key(kind: str, value: str) -> int:
    """A signed 64-bit key for one of a story's exact keys (``kind`` "guid", "url" or
    "hash"), in the space of the band keys, for locking the story while it is stored."""
    digest = hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=8,
                             person=f"story-{kind}".encode()[:16]).digest()
    return int.from_bytes(digest, "big", signed=True)
