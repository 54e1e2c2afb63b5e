"""OPML: reading what feed readers export (nested folders, OPML 1.0 and 2.0, odd
encodings, attribute names in any case; fixtures in tests/fixtures/opml made from the
corpus's real feeds), refusing what is no OPML or would expand entities, writing the
config's feeds, and ``feeds import`` / ``feeds export`` round trips through a config."""

from __future__ import annotations

import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers import FIXTURES, cli, write_config

from monitor import opml
from monitor.config import load_settings
from monitor.errors import OpmlError

NESTED = FIXTURES / "opml" / "reader-nested.opml"


def outlines(name: str) -> list[tuple[str, str, str | None]]:
    return [(o.title, o.url, o.category)
            for o in opml.read((FIXTURES / "opml" / name).read_bytes())]


def test_a_readers_nested_export() -> None:
    assert outlines("reader-nested.opml") == [
        ("Al Jazeera – Breaking News, World News and Video from Al Jazeera",
         "https://www.aljazeera.com/xml/rss/all.xml", "News/World"),
        ("World – TIME", "https://time.com/world/feed/", "News/World"),
        ("Tech – TIME", "https://time.com/tech/feed/", "News"),
        ("Spoon & Tamago", "https://spoon-tamago.com/feed/", "Blogs & craft"),
        ("Raccoon’s Trash Can", "https://racc.blog/feed/", "Blogs & craft"),
        ("The blog of Csaba Kopiás", "/blog/index.xml", "Blogs & craft"),
        ("Science &amp; technology experiments", "http://localhost:4000/atom.xml",
         "Blogs & craft"),
        ("Rémi Mercier", "https://remimercier.com/feed.xml", None),
        ("World – TIME (again)", "https://time.com/world/feed/", None),
        ("", "https://blog.thecaptain.dev/feed/", None),
        ("javascript", "javascript:alert(1)", None),
    ]


def test_windows_1251_and_utf_16_exports() -> None:
    assert outlines("windows-1251.opml") == [
        ("Радио Свобода", "https://www.svoboda.org/api/zrqiteuuir", "Новости"),
        ("Новая газета «Европа»", "https://novayagazeta.eu/feed/rss", "Новости"),
        ("ninaklose.de — блог & кофе", "https://ninaklose.de/feed/", None),
    ]
    # OPML 1.0 in UTF-16: attribute names in any case, `category` paths, `url` for rss.
    assert outlines("utf-16.opml") == [
        ("Aivars Kalvāns", "http://aivarsk.com/atom.xml", "Engineering/Databases"),
        ("J-F Gagné's MySQL Blog",
         "https://www.blogger.com/feeds/9188714267863327820/posts/default", None),
        ("David duChemin", "https://davidduchemin.com/feed/", None),
    ]


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "not XML"),
    (b"<html><body><p>Home</p></body></html>", "not OPML: the document is <html>"),
    (b'<?xml version="1.0"?><rss version="2.0"><channel/></rss>', "the document is <rss>"),
    (b'<opml version="2.0"><head/></opml>', "OPML without a <body>"),
    (b"<opml><body><outline", "not XML"),
])
def test_what_is_no_opml_is_refused_with_the_reason(data: bytes, reason: str) -> None:
    with pytest.raises(OpmlError, match=reason):
        opml.read(data)


def test_entity_bombs_and_external_entities_are_refused() -> None:
    laughs = "".join(f'<!ENTITY l{k} "{f"&l{k - 1};" * 10}">' for k in range(1, 10))
    bomb = (f'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY l0 "ha">{laughs}]>'
            '<opml version="2.0"><body>'
            '<outline text="&l9;" type="rss" xmlUrl="https://a.example/feed"/>'
            "</body></opml>").encode()
    start = time.monotonic()
    with pytest.raises(OpmlError, match="amplification"):
        opml.read(bomb)
    assert time.monotonic() - start < 2
    secret = (b'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY s SYSTEM "file:///etc/passwd">]>'
              b'<opml version="2.0"><body>'
              b'<outline text="&s;" type="rss" xmlUrl="https://b.example/feed"/></body></opml>')
    with pytest.raises(OpmlError, match="external entity"):
        opml.read(secret)


def test_written_opml_reads_back_with_its_folders() -> None:
    listed = [opml.Listed("Wire <&> \"quotes\"", "https://w.example/rss?a=1&b=2", "News/World"),
              opml.Listed("Desk", "https://d.example/feed", None),
              opml.Listed("Blog\u0007", "https://b.example/atom", "Blogs"),
              opml.Listed("Europe", "https://e.example/feed", "News/World/Europe")]
    data = opml.write(listed, "monitor feeds", datetime(2026, 12, 7, tzinfo=UTC))
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<opml version="2.0">')
    back = {(o.title, o.url, o.category) for o in opml.read(data)}
    assert back == {("Wire <&> \"quotes\"", "https://w.example/rss?a=1&b=2", "News/World"),
                    ("Desk", "https://d.example/feed", None),
                    ("Blog", "https://b.example/atom", "Blogs"),
                    ("Europe", "https://e.example/feed", "News/World/Europe")}
    # One "News" folder holding one "World" folder, not a folder per feed.
    assert data.count(b'text="News"') == 1 and data.count(b'text="World"') == 1


def _config(tmp: Path, feeds: list[dict[str, object]]) -> Path:
    path = write_config(tmp / "monitor.toml", db_url=f"sqlite:///{tmp / 'm.db'}", feeds=feeds)
    # A comment of the user's, which --write must keep.
    path.write_text("# my feeds, my comments\n" + path.read_text())
    return path


EXISTING = [{"name": "Al Jazeera", "url": "https://www.aljazeera.com/xml/rss/all.xml"},
            {"name": "World – TIME", "url": "https://example.org/another-time-feed"}]


def test_import_prints_the_tables_the_config_lacks(tmp_path: Path) -> None:
    config = _config(tmp_path, EXISTING)
    before = config.read_text()
    code, out = cli(config, "feeds", "import", str(NESTED))
    assert code == 0, out
    assert config.read_text() == before  # printed, not written
    assert out.splitlines()[0] == (
        "# 7 new feeds from reader-nested.opml, 1 already in the config, 1 listed twice in "
        "the file, 2 left out "
        "('/blog/index.xml' is not an http(s) URL; 'javascript:alert(1)' is not an http(s) "
        "URL)")
    tables = tomllib.loads(out)["feeds"]
    assert [(t["name"], t["url"], t.get("category")) for t in tables] == [
        ("World – TIME (2)", "https://time.com/world/feed/", "News/World"),
        ("Tech – TIME", "https://time.com/tech/feed/", "News"),
        ("Spoon & Tamago", "https://spoon-tamago.com/feed/", "Blogs & craft"),
        ("Raccoon’s Trash Can", "https://racc.blog/feed/", "Blogs & craft"),
        ("Science &amp; technology experiments", "http://localhost:4000/atom.xml",
         "Blogs & craft"),
        ("Rémi Mercier", "https://remimercier.com/feed.xml", None),
        ("blog.thecaptain.dev", "https://blog.thecaptain.dev/feed/", None),
    ]


def test_import_write_appends_keeps_comments_and_is_idempotent(tmp_path: Path) -> None:
    config = _config(tmp_path, EXISTING)
    before = config.read_text()
    code, out = cli(config, "feeds", "import", "--write", str(NESTED))
    assert code == 0 and "added to" in out, out
    after = config.read_text()
    assert after.startswith(before) and "# my feeds, my comments" in after
    settings = load_settings(config)
    assert len(settings.feeds) == 2 + 7
    assert {f.name: f.category for f in settings.feeds}["Spoon & Tamago"] == "Blogs & craft"
    code, out = cli(config, "feeds", "import", "--write", str(NESTED))
    assert code == 0 and "0 new feeds" in out and "unchanged" in out, out
    assert config.read_text() == after


def test_import_of_a_file_that_is_no_opml_names_it(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    config = _config(tmp_path, EXISTING)
    page = tmp_path / "page.opml"
    page.write_text("<html><body>not a feed list</body></html>")
    code, _ = cli(config, "feeds", "import", str(page))
    assert code != 0
    assert f"{page}: not OPML: the document is <html>" in caplog.text
    code, _ = cli(config, "feeds", "import", str(tmp_path / "missing.opml"))
    assert code != 0 and "missing.opml: No such file or directory" in caplog.text


def test_export_then_import_into_an_empty_config(tmp_path: Path) -> None:
    """Every feed, its name and category, survives export → import."""
    source = tmp_path / "a"
    source.mkdir()
    feeds: list[dict[str, object]] = [
        {"name": "Радио Свобода", "url": "https://www.svoboda.org/api/zrqiteuuir",
         "category": "Новости/Россия"},
        {"name": "Spoon & Tamago", "url": "https://spoon-tamago.com/feed/?a=1&b=2"},
        {"name": "Wire \"quoted\"", "url": "https://w.example/rss", "category": "News"}]
    code, exported = cli(_config(source, feeds), "feeds", "export")
    assert code == 0 and exported.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    opml_file = tmp_path / "feeds.opml"
    opml_file.write_text(exported, encoding="utf-8")
    target = tmp_path / "b"
    target.mkdir()
    config = _config(target, [])
    code, out = cli(config, "feeds", "import", "--write", str(opml_file))
    assert code == 0, out
    got = {(f.name, f.url, f.category) for f in load_settings(config).feeds}
    assert got == {(str(f["name"]), str(f["url"]), f.get("category")) for f in feeds}


@pytest.mark.parametrize(("category", "problem"), [
    ("x" * 101, "at most 100 characters"), ("News\x07", "no control characters"), (3, "")])
def test_a_bad_category_is_refused_at_start(tmp_path: Path, category: object,
                                            problem: str) -> None:
    from monitor.errors import ConfigError

    config = _config(tmp_path, [{"name": "A", "url": "https://a.example/rss",
                                 "category": category}])
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert info.value.key == "feeds[0].category" and problem in info.value.reason
    assert str(config) in str(info.value)
