from __future__ import annotations

import pytest

from monitor.ingest.urls import canonical_url, choose_canonical


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.com/a?utm_source=rss&utm_medium=feed&utm_campaign=x", "https://example.com/a"),
        ("https://example.com/a?fbclid=IwAR0abc", "https://example.com/a"),
        ("https://example.com/a?gclid=Cj0KCQ", "https://example.com/a"),
        ("https://example.com/a?rss=1&cmpid=abc", "https://example.com/a"),  # our extra trackers
        ("https://example.com/a#comments", "https://example.com/a"),
        ("HTTPS://WWW.Example.COM/Path/Story", "https://www.example.com/Path/Story"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://example.com:8443/a", "https://example.com:8443/a"),
        ("https://example.com", "https://example.com/"),
        ("https://example.com/news?id=3&page=2", "https://example.com/news?id=3&page=2"),
        ("  https://example.com/news?id=3&utm_source=x&page=2#top  ", "https://example.com/news?id=3&page=2"),
    ],
)
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


@pytest.mark.parametrize(
    ("url", "base", "expected"),
    [
        ("/news/1", "https://example.com/section/index.html", "https://example.com/news/1"),
        ("2.html", "https://example.com/section/index.html", "https://example.com/section/2.html"),
        ("../x?id=3", "https://example.com/a/b/c.html", "https://example.com/a/x?id=3"),
        ("//cdn.example.org/p", "https://example.com/", "https://cdn.example.org/p"),
        ("https://other.org/abs", "https://example.com/", "https://other.org/abs"),
    ],
)
def test_relative_url_resolved_against_base(url: str, base: str, expected: str) -> None:
    assert canonical_url(url, base=base) == expected


@pytest.mark.parametrize(
    "url",
    ["mailto:desk@example.org", "ftp://example.com/file", "javascript:alert(1)", "", "   ", "/relative/only",
     "data:text/plain,hi"],
)
def test_non_http_returns_none(url: str) -> None:
    assert canonical_url(url) is None


def test_choose_canonical_ignores_cross_site_declaration() -> None:
    final = "https://www.example.com/news/story-1?utm_source=feed"
    assert choose_canonical(final, "https://aggregator.net/news/story-1") == (
        "https://www.example.com/news/story-1"
    )


def test_choose_canonical_ignores_home_page_declaration() -> None:
    final = "https://www.example.com/news/story-1"
    assert choose_canonical(final, "https://www.example.com/") == final
    assert choose_canonical(final, "/") == final


def test_choose_canonical_uses_same_site_declaration() -> None:
    final = "https://example.com/news/story-1?ref=home"
    # www. vs bare host count as the same site
    assert choose_canonical(final, "https://www.example.com/news/story-one#x") == (
        "https://www.example.com/news/story-one"
    )
    # relative declarations resolve against the final URL
    assert choose_canonical(final, "/news/story-one") == "https://example.com/news/story-one"


def test_choose_canonical_home_page_may_declare_home_page() -> None:
    assert choose_canonical("https://example.com/?utm_source=x", "https://www.example.com/") == (
        "https://www.example.com/"
    )


@pytest.mark.parametrize("declared", [None, "", "mailto:x@example.com"])
def test_choose_canonical_without_usable_declaration(declared: str | None) -> None:
    assert choose_canonical("https://example.com/a?gclid=1#f", declared) == "https://example.com/a"
