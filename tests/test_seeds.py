from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.dedup.seeds import SeedDoc, parse_seed, read_seeds
from monitor.errors import SeedError

SEEDS_DIR = Path(__file__).parent.parent / "seeds"


@pytest.fixture(scope="module")
def seeds() -> dict[str, SeedDoc]:
    docs = read_seeds(SEEDS_DIR)
    return {doc.name[:3]: doc for doc in docs}


def test_real_seed_files_are_all_read(seeds: dict[str, SeedDoc]) -> None:
    assert sorted(seeds) == ["000", "001", "002", "003", "004"]
    for doc in seeds.values():
        assert len(doc.text) > 500
        assert len(doc.file_sha256) == 64
    assert len({doc.file_sha256 for doc in seeds.values()}) == 5


def test_seed_000_heading_date_and_original_url(seeds: dict[str, SeedDoc]) -> None:
    doc = seeds["000"]
    assert doc.name == "000_eb13740ee894f634.txt"
    assert doc.title == "Russia Backs Venezuela's Interim Leader After U.S. Ousts Maduro"
    assert doc.source_url == (
        "https://www.themoscowtimes.com/2026/01/06/"
        "russia-backs-venezuelas-interim-leader-after-us-ousts-maduro-a91620"
    )
    assert doc.published_at == datetime(2026, 1, 6, tzinfo=UTC)
    assert "Original url" not in doc.text
    assert "themoscowtimes.com" not in doc.text
    assert "January 06, 2026" not in doc.text
    assert doc.title not in doc.text
    assert doc.text.startswith("Venezuela's acting president Delcy Rodríguez")
    assert doc.text.endswith("*AFP contributed reporting.*")


def test_seed_001_plain_headline_no_date(seeds: dict[str, SeedDoc]) -> None:
    doc = seeds["001"]
    assert doc.title == "Russia Offers Support To Embattled Venezuelan Leader, Condemns Bid To 'Usurp Power'"
    assert doc.published_at is None
    assert doc.source_url is None
    assert "Condemns Bid To 'Usurp Power'" not in doc.text


def test_seed_002_date_prefix(seeds: dict[str, SeedDoc]) -> None:
    doc = seeds["002"]
    assert doc.published_at == datetime(2026, 1, 6, tzinfo=UTC)
    assert not doc.text.lower().startswith("date")
    assert doc.text.startswith("Russia on Tuesday voiced solidarity")
    assert doc.title is None


def test_seed_003_lede_is_not_a_title(seeds: dict[str, SeedDoc]) -> None:
    doc = seeds["003"]
    assert doc.title is None
    assert doc.text.startswith("The Kremlin’s call adds geopolitical dimension to ongoing events.")
    assert doc.published_at is None


def test_seed_004_dateline(seeds: dict[str, SeedDoc]) -> None:
    doc = seeds["004"]
    assert doc.published_at == datetime(2026, 1, 4, tzinfo=UTC)
    assert doc.title == (
        "Russia Condemns U.S. Military Operation in Venezuela and Demands Release of President Maduro"
    )
    # a dateline is part of the article's first paragraph: it stays in the text
    assert doc.text.startswith("MOSCOW, Jan. 4, 2026 – Russia has issued")


BODY = (
    "Russia has voiced support for the interim leader after the raid on the capital, officials said "
    "on Tuesday in a statement.\n\nSecond paragraph of the article."
)


def test_original_url_on_next_line_in_angle_brackets() -> None:
    doc = parse_seed("x.txt", f"{BODY}\n\nOriginal url:\n\n<https://Example.com/story?utm_source=x>\n")
    assert doc.source_url == "https://example.com/story"
    assert doc.text == BODY
    assert "example" not in doc.text.lower()


@pytest.mark.parametrize(
    "trailer",
    [
        "Original url: https://example.com/story",
        "original URL: <https://example.com/story>",
        "Source: https://example.com/story#frag",
        "Source URL:https://example.com/story",
    ],
)
def test_original_url_on_same_line(trailer: str) -> None:
    doc = parse_seed("x.txt", f"{BODY}\n\n{trailer}\n")
    assert doc.source_url == "https://example.com/story"
    assert doc.text == BODY


def test_markdown_heading_becomes_title() -> None:
    doc = parse_seed("x.md", f"## A Short Headline ##\n\n{BODY}")
    assert doc.title == "A Short Headline"
    assert doc.text == BODY


def test_date_line_and_month_abbreviation() -> None:
    doc = parse_seed("x.txt", f"# Title Of The Piece\n\nSept. 3, 2025\n\n{BODY}")
    assert doc.title == "Title Of The Piece"
    assert doc.published_at == datetime(2025, 9, 3, tzinfo=UTC)
    assert doc.text == BODY


def test_plain_text_has_no_metadata() -> None:
    doc = parse_seed("x.txt", BODY)
    assert (doc.title, doc.source_url, doc.published_at) == (None, None, None)
    assert doc.text == BODY


def test_crlf_line_endings() -> None:
    doc = parse_seed("x.txt", f"# Heading Here\r\n\r\n{BODY}\r\n".replace("\n\n", "\r\n\r\n"))
    assert doc.title == "Heading Here"
    assert "\r" not in doc.text


def test_read_seeds_missing_directory(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    with pytest.raises(SeedError, match="does not exist") as info:
        read_seeds(missing)
    assert str(missing) in str(info.value)


def test_read_seeds_non_utf8_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "a_good.txt").write_text(BODY, encoding="utf-8")
    bad = tmp_path / "b_bad.txt"
    bad.write_bytes("Caf\xe9 au lait, a latin-1 file".encode("latin-1"))
    with pytest.raises(SeedError) as info:
        read_seeds(tmp_path)
    assert str(bad) in str(info.value)
    assert "cannot read seed" in str(info.value)


def test_read_seeds_skips_other_suffixes_and_sorts(tmp_path: Path) -> None:
    (tmp_path / "b.md").write_text("# Bee Heading Title\n\n" + BODY, encoding="utf-8")
    (tmp_path / "a.txt").write_text(BODY, encoding="utf-8")
    (tmp_path / "notes.json").write_bytes(b"\xff\xfe not a seed")
    (tmp_path / "dir.txt").mkdir()
    docs = read_seeds(tmp_path)
    assert [d.name for d in docs] == ["a.txt", "b.md"]
    assert docs[1].title == "Bee Heading Title"
