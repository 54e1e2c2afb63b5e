"""Normalizing a text once, line by line, gives exactly what the per-line and
whole-text normalization gave before: stored text hashes and band keys depend on it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.dedup.fingerprint import (
    MIN_HASHABLE_CHARS,
    Boilerplate,
    Fingerprinter,
    normalize_text,
    normalized,
    text_hash,
    words_of,
)

PAGES = Path(__file__).parent / "fixtures" / "pages"


def reference_hash(text: str) -> str | None:
    """The text hash as it was first defined: the whole text normalized at once."""
    norm = normalize_text(text)
    if len(norm) < MIN_HASHABLE_CHARS:
        return None
    return hashlib.sha256(norm.encode("utf-8")).hexdigest()


def reference_words(text: str, boilerplate: Boilerplate, first_line_words: int) -> list[str]:
    """Near-dedup's words as first defined: boilerplate removed, then each line normalized."""
    lines = [normalize_text(line) for line in boilerplate.remove(text).splitlines()]
    lines = [line for line in lines if line]
    start = 0
    for i, line in enumerate(lines[:5]):
        if len(line.split()) >= first_line_words:
            start = i
            break
    return " ".join(lines[start:]).split()


# Letters with and without accents, combining marks, Cyrillic, CJK, ligatures and
# compatibility forms (NFKD changes them), every kind of line break, punctuation.
ALPHABET = st.sampled_from(list(
    "abcXYZ éÉüßẞﬁ²½Åå\u0301\u0308\u0327 Жжё 中文 ＡＢ \n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
    " ,.;:!?'\"-_©() 0123456789\t"))
TEXTS = st.lists(ALPHABET, max_size=400).map("".join)


@settings(max_examples=400, deadline=None)
@given(TEXTS)
def test_one_pass_matches_the_reference(text: str) -> None:
    norm = normalized(text)
    assert text_hash(norm) == text_hash(text) == reference_hash(text)
    assert list(norm.normalized) == [normalize_text(line) for line in text.splitlines()]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([
    "Original article: https://example.org/x", "Read more: the full story",
    "Russia urged the US to release Maduro on Tuesday in a statement from Moscow",
    "Délcy Rodríguez spoke to reporters", "© 2026 Wire", "", "   ", "Short line",
    "Жители Каракаса вышли на улицы города в понедельник вечером после заявления",
]), max_size=12).map("\n".join))
def test_words_match_the_reference(text: str) -> None:
    fp = Fingerprinter()
    assert words_of(normalized(text), fp.boilerplate, fp.params.first_line_words) == \
        reference_words(text, fp.boilerplate, fp.params.first_line_words)


def test_real_texts_hash_and_shingle_as_before() -> None:
    truth = json.loads((PAGES / "ground-truth.json").read_text())
    texts = [v["articleBody"] for v in truth.values()]
    assert len(texts) >= 20
    fp = Fingerprinter()  # a fingerprint is a function of these words alone
    for text in texts:
        assert text_hash(text) == reference_hash(text)
        assert words_of(text, fp.boilerplate, fp.params.first_line_words) == \
            reference_words(text, fp.boilerplate, fp.params.first_line_words)
