from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest
from helpers import SEEDS

from monitor.config import Thresholds
from monitor.dedup.fingerprint import (
    MIN_HASHABLE_CHARS,
    Boilerplate,
    Fingerprinter,
    normalize_text,
    text_hash,
)
from monitor.dedup.seeds import read_seeds
from monitor.dedup.verdict import compare, is_duplicate, rank

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


# --- near-duplicates (pure) -------------------------------------------------------------------

FP = Fingerprinter()
SEED_TEXTS = {doc.name[:3]: doc.text for doc in read_seeds(SEEDS)}
PARAGRAPHS = [p for p in SEED_TEXTS["000"].split("\n") if len(p.split()) > 12]


def test_boilerplate_lines_are_dropped_and_content_kept() -> None:
    b = Boilerplate()
    text = ("Original url: https://example.org/a\nRussia urged the US to release Maduro.\n"
            "From teleSUR English via This RSS Feed.\n"
            "The post Russia reacts appeared first on Example News.\nhttps://t.co/xyz\n"
            "Read more: what we know\n© 2026 Example Media. All rights reserved.")
    assert b.remove(text) == "Russia urged the US to release Maduro."
    # A long line is content even when it starts like boilerplate.
    long_line = "Related " + "words " * 60
    assert b.remove(long_line) == long_line
    assert Boilerplate([r"listen to this article.*"]).remove("Listen to this article 4 min\nBody") \
        == "Body"


def test_seed_footer_does_not_change_the_fingerprint() -> None:
    with_footer = SEED_TEXTS["003"]
    assert "via This RSS Feed" in with_footer
    without = "\n".join(line for line in with_footer.splitlines() if "RSS Feed" not in line)
    assert with_footer != without
    a, b = FP.fingerprint(with_footer), FP.fingerprint(without)
    assert a.band_keys == b.band_keys
    assert compare(a, b).jaccard == 1.0


def test_independent_write_ups_of_one_statement_are_not_duplicates() -> None:
    # Seeds 000 and 002 report the same Russian statement, written independently.
    a, b = FP.fingerprint(SEED_TEXTS["000"]), FP.fingerprint(SEED_TEXTS["002"])
    scores = compare(a, b)
    assert scores.containment < 0.2
    assert not is_duplicate(a, b, scores, Thresholds())
    for x in SEED_TEXTS:
        for y in SEED_TEXTS:
            if x < y:
                fx, fy = FP.fingerprint(SEED_TEXTS[x]), FP.fingerprint(SEED_TEXTS[y])
                assert not is_duplicate(fx, fy, compare(fx, fy), Thresholds()), (x, y)


def test_teaser_and_truncation_are_contained() -> None:
    full = FP.fingerprint(SEED_TEXTS["000"])
    teaser = FP.fingerprint("\n".join(PARAGRAPHS[:2]))
    s = compare(full, teaser)
    assert s.containment == 1.0
    assert s.jaccard < 0.5  # resemblance alone would miss it
    assert is_duplicate(full, teaser, s, Thresholds())
    # ...and the lead signature makes LSH propose it.
    assert set(full.band_keys) & set(teaser.band_keys)


def test_scores_are_symmetric_and_exact() -> None:
    a = FP.fingerprint(" ".join(f"w{i}" for i in range(100)))  # 96 shingles
    b = FP.fingerprint(" ".join(f"w{i}" for i in range(50)))  # 46 shingles, all in a
    s = compare(a, b)
    assert (s.shared, s.smaller) == (46, 46)
    assert s.containment == 1.0
    assert s.jaccard == 46 / 96
    assert compare(b, a) == s


def test_short_texts_are_never_near_duplicates() -> None:
    t = Thresholds(min_words=30)
    short = FP.fingerprint("Russia urges the United States to release Maduro now")
    assert short.words < t.min_words
    assert not is_duplicate(short, short, compare(short, short), t)
    tiny = FP.fingerprint("Maduro")
    assert tiny.band_keys == ()  # below LshParams.min_words: not indexed


def test_thresholds_decide() -> None:
    full = FP.fingerprint(SEED_TEXTS["000"])
    half = FP.fingerprint("\n".join(PARAGRAPHS[: len(PARAGRAPHS) // 2]))
    s = compare(full, half)
    assert is_duplicate(full, half, s, Thresholds(jaccard=1.0, containment=0.9))
    assert not is_duplicate(full, half, s, Thresholds(jaccard=1.0, containment=1.0 + 1e-9))


def test_rank_puts_duplicates_first() -> None:
    full = FP.fingerprint(SEED_TEXTS["000"])
    other = FP.fingerprint(SEED_TEXTS["002"])
    teaser = FP.fingerprint("\n".join(PARAGRAPHS[:3]))
    ranked = rank(teaser, [("other", other), ("full", full)], Thresholds())
    assert [m.candidate for m in ranked] == ["full", "other"]
    assert ranked[0].duplicate and not ranked[1].duplicate


def test_band_keys_are_stable_across_processes() -> None:
    # Stored keys must mean the same in every worker and after a restart (no hash seed).
    code = ("from monitor.dedup.fingerprint import Fingerprinter; import sys; "
            "print(Fingerprinter().fingerprint(sys.stdin.read()).band_keys)")
    out = subprocess.run([sys.executable, "-c", code], input=SEED_TEXTS["001"], text=True,
                         capture_output=True, check=True, env={"PYTHONHASHSEED": "123"}).stdout
    assert out.strip() == str(FP.fingerprint(SEED_TEXTS["001"]).band_keys)


def test_fingerprint_version_changes_with_boilerplate_patterns() -> None:
    assert Fingerprinter().version == FP.version
    assert Fingerprinter(Boilerplate(["x+"])).version != FP.version
