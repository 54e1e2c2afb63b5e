from __future__ import annotations

import gzip
import json
import pickle
import re
from pathlib import Path

import pytest

from monitor.errors import ExtractionError, FeedParseError, MonitorError
from monitor.ingest.articles import detect_language, extract_article

PAGES = Path(__file__).parent / "fixtures" / "pages"
GROUND_TRUTH: dict[str, dict[str, str]] = json.loads((PAGES / "ground-truth.json").read_text("utf-8"))

# (page hash, expected title prefix)
REAL_PAGES = [
    ("04a6711caa7c687592777718866e781e976e0fe684faebe8b3cedcef8cd0ea34",
     "Opinion | Republicans Are Following"),
    ("06e5123e4ef7cfb4533250dc45d1e03d0838fc66223f45c583c4d12f48b4da85",
     "New York State Attorney General investigating WeWork"),
]

ENGLISH = ("The president of Venezuela spoke today with reporters about the economic situation "
           "of the country and the coming elections.")
SPANISH = ("El presidente de Venezuela habló hoy con los periodistas sobre la situación económica "
           "del país y las próximas elecciones.")


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


@pytest.mark.parametrize(("page_hash", "title_prefix"), REAL_PAGES)
def test_extract_real_page(page_hash: str, title_prefix: str) -> None:
    truth = GROUND_TRUTH[page_hash]
    html = gzip.decompress((PAGES / f"{page_hash}.html.gz").read_bytes())
    article = extract_article(html, truth["url"])
    assert article.text.strip()
    assert article.title is not None and article.title.startswith(title_prefix)
    assert article.language is not None and re.fullmatch(r"[a-z]{2}", article.language)
    assert article.language == "en"
    assert article.canonical_url == truth["url"]
    # most of the human-labelled body is found
    expected = _words(truth["articleBody"])
    recall = len(expected & _words(article.text)) / len(expected)
    assert recall >= 0.9


@pytest.mark.parametrize(
    "html", [b"<html><body></body></html>", b"", b"<html><head><title>t</title></head></html>"]
)
def test_extract_empty_page_raises(html: bytes) -> None:
    with pytest.raises(ExtractionError) as info:
        extract_article(html, "http://x/")
    assert info.value.url == "http://x/"
    assert info.value.reason == "no main text found"
    assert isinstance(info.value, MonitorError)


@pytest.mark.parametrize(
    "html",
    [
        b'<!DOCTYPE html><html lang="es"><head>',
        b'<html lang="es-VE" class="x">',
        b"<html class='a' LANG=es_ES>",
        b'<html><head><meta http-equiv="Content-Language" content="es"></head>',
        b'<html><head><meta property="og:locale" content="es_VE"></head>',
    ],
)
def test_detect_language_prefers_declared(html: bytes) -> None:
    assert detect_language(ENGLISH, html) == "es"


def test_detect_language_guesses_from_text() -> None:
    assert detect_language(ENGLISH, b"<html><head><title>x</title>") == "en"
    assert detect_language(SPANISH, b"<html>") == "es"
    assert detect_language(SPANISH) == "es"


def test_detect_language_short_text_without_declaration_is_unknown() -> None:
    assert detect_language("Hola", b"<html>") is None
    assert detect_language("Hola", b'<html lang="es">') == "es"


@pytest.mark.parametrize("cls", [ExtractionError, FeedParseError])
def test_errors_survive_pickle(cls: type[ExtractionError] | type[FeedParseError]) -> None:
    err = cls("https://example.com/a", "something broke")
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is cls
    assert copy.url == "https://example.com/a"
    assert copy.reason == "something broke"
    assert str(copy) == str(err)
