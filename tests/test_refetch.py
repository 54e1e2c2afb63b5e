"""``monitor items refetch``: items stored without their page (it failed, or a guard
refused it) get its text when fetched again; dedup runs again (an item can become a
copy of another original) and so do the rules, with no rule alerting twice for a story.
A page that fails again changes nothing. On SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import LocalServer, Route
from helpers import Entry, article, cli, json_lines, rss, write_config

SUMMARY = "Grain tariff talks resumed in the capital on Monday, officials said. " * 2


def alerts(config: Path) -> list[tuple[str, str]]:
    guids = {i["id"]: i["guid"] for i in json_lines(config, "items", "list")}
    return sorted((a["rule"], guids[a["item_id"]]) for a in json_lines(config, "alerts", "list"))


@pytest.fixture
def config(server: LocalServer, db_url: str, tmp_path: Path) -> Path:
    # Feed A carries the article; feed B carries a syndicated copy of it (b) and a story
    # of its own (c), but B's pages fail: both are stored from B's summaries.
    server.routes["/a.rss"] = Route(body=rss("A", [Entry("Harbour story", server.url("/a.html"),
                                                         guid="a", summary=SUMMARY)]))
    server.routes["/b.rss"] = Route(body=rss("B", [
        Entry("Grain talks", server.url("/b.html"), guid="b", summary=SUMMARY + " (B)"),
        Entry("Grain talks, day two", server.url("/c.html"), guid="c",
              summary=SUMMARY + " Day two.")]))
    server.routes["/a.html"] = Route(body=article(1))
    server.routes["/b.html"] = Route(status=503)
    server.routes["/c.html"] = Route(status=503)
    path = write_config(tmp_path / "m.toml", db_url=db_url,
                        feeds=[{"name": "A", "url": server.url("/a.rss")},
                               {"name": "B", "url": server.url("/b.rss")}],
                        rules=[{"name": "Grain", "query": "grain",
                                "recipients": ["desk@example.org"]},
                               {"name": "Harbour", "query": "harbour*",
                                "recipients": ["desk@example.org"]}])
    code, out = cli(path, "run", "--once")
    assert code == 0, out
    items = {i["guid"]: i for i in json_lines(path, "items", "list")}
    assert {g: (i["status"], i["text_source"], i["page_error"]) for g, i in items.items()} == {
        "a": ("new", "page", None),
        "b": ("new", "feed_summary", "HTTP 503"),
        "c": ("new", "feed_summary", "HTTP 503")}
    assert alerts(path) == [("Grain", "b"), ("Grain", "c"), ("Harbour", "a")]
    return path


def test_refetch_stores_the_page_text_dedups_again_and_never_alerts_twice(
        server: LocalServer, config: Path) -> None:
    server.routes["/b.html"] = Route(body=article(1))  # the same article as a.html
    server.routes["/c.html"] = Route(body=article(2))  # an article of its own
    code, out = cli(config, "items", "refetch", "--failed")
    assert code == 0, out
    assert "fetched 2 items again: 2 with a new text, 0 unchanged, 0 failed; 1 new alerts" \
        in out, out
    items = {i["guid"]: i for i in json_lines(config, "items", "list")}
    a, b, c = items["a"], items["b"], items["c"]
    # b's page is a's article: b is now a copy of a (by its text), and says so.
    assert (b["status"], b["text_source"], b["page_error"]) == ("duplicate", "page", None)
    assert b["duplicate_of"]["id"] == a["id"] and b["dedup_method"] == "exact"
    assert f"item {b['id']} (B)" in out and f"now a copy of item {a['id']} (by exact)" in out
    # c is an original with its page's text: Harbour matches it now and alerts; Grain
    # (its title) alerted already and does not again.
    assert (c["status"], c["text_source"], c["page_error"]) == ("new", "page", None)
    assert "an original; alerted 'Harbour'" in out, out
    assert alerts(config) == [("Grain", "b"), ("Grain", "c"), ("Harbour", "a"), ("Harbour", "c")]
    assert [x["feed"] for x in items["a"]["also_reported_by"]] == ["B"]

    # Again: the same texts, nothing changes, nothing alerts.
    code, out = cli(config, "items", "refetch", str(b["id"]), str(c["id"]))
    assert code == 0 and "0 with a new text, 2 unchanged" in out and "0 new alerts" in out, out
    assert alerts(config) == [("Grain", "b"), ("Grain", "c"), ("Harbour", "a"), ("Harbour", "c")]


def test_a_copy_whose_page_turns_out_its_own_becomes_an_original(
        server: LocalServer, config: Path) -> None:
    server.routes["/b.html"] = Route(body=article(1))
    assert cli(config, "items", "refetch", "--feed", "B", "--failed")[0] == 1  # c failed again
    # Then b's page changes to an article of its own (a correction, a wrong page before).
    server.routes["/b.html"] = Route(body=article(3))
    b_id = next(i["id"] for i in json_lines(config, "items", "list") if i["guid"] == "b")
    code, out = cli(config, "items", "refetch", str(b_id), "--json")
    assert code == 0, out
    b = next(i for i in json_lines(config, "items", "list") if i["guid"] == "b")
    assert (b["status"], b["duplicate_of"]) == ("new", None)
    # Harbour matches its new text and alerts; Grain alerted for it before: not again.
    assert alerts(config) == [("Grain", "b"), ("Grain", "c"), ("Harbour", "a"), ("Harbour", "b")]


def test_a_page_that_fails_again_changes_nothing(server: LocalServer, config: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    before = json_lines(config, "items", "list", "--text")
    server.routes["/b.html"] = Route(status=404)
    code, out = cli(config, "items", "refetch", "--failed")
    assert code == 1, out
    assert "page failed again: HTTP 404; nothing changed" in out
    assert "page failed again: HTTP 503; nothing changed" in out
    assert json_lines(config, "items", "list", "--text") == before
    capsys.readouterr()
    assert cli(config, "items", "refetch") == (2, "")
    assert "say which items to fetch again" in capsys.readouterr().err
    assert cli(config, "items", "refetch", "999") == (2, "")
    assert "no item with a link has the id 999" in capsys.readouterr().err


def test_a_fuller_copy_found_by_a_refetch_takes_its_story_over_without_a_second_alert(
        server: LocalServer, config: Path) -> None:
    # A teaser of an article is stored from its own page (Harbour alerts on it); B's copy
    # of the whole article was stored from its summary, its page having failed.
    server.routes["/t.rss"] = Route(body=rss("T", [Entry("Teaser", server.url("/t.html"),
                                                         guid="t")]))
    server.routes["/t.html"] = Route(body=article(4, paragraphs=2))
    server.routes["/b.html"] = Route(body=article(4, paragraphs=5))
    write_config(config, db_url=_db_url(config),
                 feeds=[{"name": "A", "url": server.url("/a.rss")},
                        {"name": "B", "url": server.url("/b.rss")},
                        {"name": "T", "url": server.url("/t.rss")}],
                 rules=[{"name": "Grain", "query": "grain", "recipients": ["desk@example.org"]},
                        {"name": "Harbour", "query": "harbour*",
                         "recipients": ["desk@example.org"]}])
    assert cli(config, "run", "--once")[0] == 0
    assert ("Harbour", "t") in alerts(config)
    code, out = cli(config, "items", "refetch", "--feed", "B", "--failed")
    assert code == 1, out  # c failed again
    items = {i["guid"]: i for i in json_lines(config, "items", "list")}
    b, t = items["b"], items["t"]
    assert (b["status"], b["text_source"]) == ("new", "page"), out
    assert (t["status"], t["duplicate_of"]["id"]) == ("duplicate", b["id"]), out
    assert f"taking over its story from item {t['id']}" in out, out
    # Harbour alerted for the story (on the teaser): not again on its fuller copy.
    assert alerts(config) == [("Grain", "b"), ("Grain", "c"), ("Harbour", "a"), ("Harbour", "t")]


def _db_url(config: Path) -> str:
    from monitor.config import load_settings

    return load_settings(config).database.url
