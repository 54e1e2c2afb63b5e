"""Words as rules see them: folding, splitting, and the searchable fields of a document.

A text is split into words at every character that is not a letter, a digit or a
combining mark, in every script (spaces, punctuation, hyphens, apostrophes), after
NFC normalization. Words are compared *folded*: case-folded, compatibility-decomposed,
accents stripped, and a few letters with no accent to strip mapped to their usual
Latin spelling (ø o, ł l, đ d, æ ae, œ oe, þ th, ß ss).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

# Letters that compatibility decomposition leaves alone but readers treat as plain Latin.
_LETTERS = {
    "ø": "o", "đ": "d", "ð": "d", "ł": "l", "ŀ": "l", "æ": "ae", "œ": "oe", "þ": "th",
    "ı": "i", "ħ": "h", "ŧ": "t", "ŋ": "n", "ĸ": "k", "ſ": "s",
}


# --- words -----------------------------------------------------------------------------------

@functools.cache
def word_pattern() -> re.Pattern[str]:
    r"""Runs of letters, digits, "_" (``\w``) and combining marks (which ``\w`` lacks, so
    scripts that write vowels as marks, such as Devanagari, stay whole).

    Marks are taken from the Basic Multilingual Plane only: with the few hundred
    rare ones beyond it the pattern runs 3.5x slower. Built on first use (12 ms here).
    """
    ranges: list[str] = []
    start = prev = -2
    for cp in range(0x10000):
        if unicodedata.category(chr(cp)).startswith("M"):
            if cp != prev + 1:
                if start >= 0:
                    ranges.append(_range(start, prev))
                start = cp
            prev = cp
    ranges.append(_range(start, prev))
    return re.compile(rf"[\w{''.join(ranges)}]+")


def _range(a: int, b: int) -> str:
    return f"\\u{a:04x}" if a == b else f"\\u{a:04x}-\\u{b:04x}"


def fold(s: str) -> str:
    """``s`` compared the way rules compare words: case-folded, accent-free letters
    and digits only. "Rodríguez" -> "rodriguez", "Łódź" -> "lodz", "ǅ" -> "dz"."""
    for _ in range(3):  # NFKD can yield upper case (ℌ -> H), casefold can yield marks (İ)
        decomposed = unicodedata.normalize("NFKD", s.casefold())
        out = "".join(_LETTERS.get(c, c) for c in decomposed if c.isalnum() or c == "_")
        if out == s:
            break
        s = out
    return s


class _FoldTable(dict[int, str]):
    """Per-character :func:`fold`, for :meth:`str.translate`, filled on first sight."""

    def __missing__(self, cp: int) -> str:
        folded = self[cp] = fold(chr(cp))
        return folded


_FOLD_TABLE = _FoldTable({ord(" "): " "})


def words_of(text: str) -> list[str]:
    """The folded words of ``text``, in order (see the module docstring).

    A word that folds to nothing (a lone combining mark) stays as "" so that index
    ``i`` here is the ``i``-th word match in the NFC text (see :class:`Field`).
    """
    raw = word_pattern().findall(_nfc(text))
    if not raw:
        return []
    joined = " ".join(raw)
    # ASCII needs only lower(); everything else goes through the per-character table,
    # word by word, so that the ASCII words of a text with a few curly quotes or
    # accents keep the fast path (3.5x faster on the corpus's English pages).
    if joined.isascii():
        return joined.lower().split(" ")
    return [w.lower() if w.isascii() else w.translate(_FOLD_TABLE) for w in raw]


def _nfc(text: str) -> str:
    if text.isascii() or unicodedata.is_normalized("NFC", text):
        return text
    return unicodedata.normalize("NFC", text)


@dataclass(frozen=True)
class Word:
    """One word of a query, folded; ``prefix`` when written with a trailing ``*``."""

    text: str
    prefix: bool = False

    def matches(self, word: str) -> bool:
        return word.startswith(self.text) if self.prefix else word == self.text

    def __str__(self) -> str:
        return f"{self.text}*" if self.prefix else self.text


class Pattern(Protocol):
    """Words to find in a row (a query term), and those of them that are not prefixes."""

    @property
    def words(self) -> tuple[Word, ...]: ...

    @property
    def required(self) -> frozenset[str]: ...


class Field:
    """One searchable field of a document (title or text), indexed lazily."""

    __slots__ = ("_sorted", "_starts", "source", "word_set", "words")

    def __init__(self, source: str) -> None:
        self.source = _nfc(source)
        self.words = words_of(self.source)
        self.word_set = frozenset(self.words)
        self._sorted: list[str] | None = None
        self._starts: list[int] | None = None

    def has_prefix(self, prefix: str) -> bool:
        if self._sorted is None:
            self._sorted = sorted(self.word_set)
        i = bisect_left(self._sorted, prefix)
        return i < len(self._sorted) and self._sorted[i].startswith(prefix)

    def positions(self, word: str) -> Iterator[int]:
        """Indexes of ``word``, in order (list.index scans in C: no index to build)."""
        i = -1
        try:
            while True:
                i = self.words.index(word, i + 1)
                yield i
        except ValueError:
            return

    def find(self, term: Pattern) -> int | None:
        """Index of the first word where ``term``'s words occur in a row, or None."""
        if not term.required <= self.word_set:
            return None
        words = term.words
        first = words[0]
        if first.prefix:
            if not self.has_prefix(first.text):
                return None
            starts: Iterable[int] = (
                i for i, w in enumerate(self.words) if w.startswith(first.text))
        else:
            starts = self.positions(first.text)
        rest = words[1:]
        last = len(self.words) - len(words)
        for i in starts:
            if i <= last and all(w.matches(self.words[i + 1 + k]) for k, w in enumerate(rest)):
                return i
        return None

    def contains(self, term: Pattern) -> bool:
        if len(term.words) == 1:
            w = term.words[0]
            return self.has_prefix(w.text) if w.prefix else w.text in self.word_set
        return self.find(term) is not None

    def offset(self, index: int) -> int:
        """Character offset in :attr:`source` where word ``index`` starts."""
        if self._starts is None:  # only documents that matched a rule get here
            self._starts = list(map(re.Match.start, word_pattern().finditer(self.source)))
        return self._starts[index]


class Document:
    """What rules match against: an item's title and text."""

    __slots__ = ("text", "title")

    def __init__(self, title: str | None, text: str | None) -> None:
        self.title = Field(title or "")
        self.text = Field(text or "")
