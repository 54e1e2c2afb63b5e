from __future__ import annotations

import pytest

from monitor.ingest.html_text import html_to_text


def test_paragraphs_become_separate_lines() -> None:
    text = html_to_text("<p>First paragraph.</p><p>Second <b>bold</b> one.</p><div>Third</div>")
    assert text.split("\n\n") == ["First paragraph.", "Second bold one.", "Third"]


def test_list_items_and_breaks_split_lines() -> None:
    assert html_to_text("<ul><li>one</li><li>two</li></ul>").splitlines() == ["one", "", "two"]
    assert [line for line in html_to_text("a<br>b").splitlines() if line] == ["a", "b"]


def test_script_style_noscript_dropped_but_tail_kept() -> None:
    text = html_to_text(
        "<div>before<script>var secret = 1;</script> middle<style>p { color: red }</style> after"
        "<noscript>enable js</noscript></div>"
    )
    assert text == "before middle after"


def test_entities_decoded_inside_markup() -> None:
    assert html_to_text("<p>Caf&eacute; &amp; bar &#8212; &lt;b&gt;</p>") == "Café & bar — <b>"


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ("AT&amp;T &#8217;s deal", "AT&T ’s deal"),  # feedparser hands escaped titles over like this
        ("Caf&eacute; &amp; bar", "Café & bar"),
        ("Tom & Jerry", "Tom & Jerry"),  # a bare ampersand is just text
    ],
)
def test_entities_decoded_without_markup(fragment: str, expected: str) -> None:
    assert html_to_text(fragment) == expected


def test_plain_text_passes_through_with_whitespace_tidied() -> None:
    assert html_to_text("Plain words") == "Plain words"
    assert html_to_text("  spaced \t  out \u00a0 words \n\n\n\n\nnext   ") == "spaced out words\n\nnext"
    assert html_to_text("") == ""


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ("<p>unclosed <b>bold <i>italic", "unclosed bold italic"),
        ("</p></div>", ""),
        ("<!-- only a comment -->", ""),
        ("text <with> <broken attr='x tags", "text"),
        ("<<<>>>", "<<<>>>"),
        ("<p>\x00nul</p>", "\ufffdnul"),
    ],
)
def test_broken_html_does_not_raise(fragment: str, expected: str) -> None:
    assert html_to_text(fragment) == expected
