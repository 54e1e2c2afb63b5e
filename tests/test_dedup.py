from __future__ import annotations

import hashlib

import pytest

from monitor.dedup import MIN_HASHABLE_CHARS, normalize_text, text_hash

BASE = (
    "Russia voiced support for Venezuela's acting president Delcy Rodríguez after the "
    "United States seized Nicolás Maduro in a military raid on Caracas."
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Delcy Rodríguez,  said:", "delcy rodriguez said"),
        ("DELCY RODRIGUEZ", "delcy rodriguez"),
        ("  Straße\t—\n“quoted”_under_score  ", "strasse quoted under score"),
        ("Ça va? Oui!", "ca va oui"),
        ("", ""),
    ],
)
def test_normalize_text(text: str, expected: str) -> None:
    assert normalize_text(text) == expected


def test_accent_and_case_variants_normalize_equal() -> None:
    assert normalize_text("Delcy Rodríguez") == normalize_text("DELCY RODRIGUEZ")


@pytest.mark.parametrize(
    "variant",
    [
        BASE.upper(),
        BASE.replace("í", "i").replace("á", "a"),
        BASE.replace(" ", "   \n\t "),
        BASE.replace(",", "").replace(".", " !!! ").replace("'", "’"),
        "   " + BASE + "\n\n",
    ],
)
def test_text_hash_ignores_case_accents_punctuation_whitespace(variant: str) -> None:
    expected = text_hash(BASE)
    assert expected is not None
    assert expected == hashlib.sha256(normalize_text(BASE).encode()).hexdigest()
    assert text_hash(variant) == expected


def test_different_texts_have_different_hashes() -> None:
    other = BASE.replace("Russia", "China")
    assert text_hash(BASE) is not None
    assert text_hash(other) is not None
    assert text_hash(BASE) != text_hash(other)


def test_short_text_has_no_hash() -> None:
    short = "x" * (MIN_HASHABLE_CHARS - 1)
    assert text_hash(short) is None
    assert text_hash("") is None
    # punctuation does not count towards the length
    assert text_hash("!" * 500 + "short text") is None
    exact = "y" * MIN_HASHABLE_CHARS
    assert text_hash(exact) == hashlib.sha256(exact.encode()).hexdigest()
