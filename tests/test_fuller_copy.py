"""When a fuller copy of a stored story arrives (the article after its teaser), it
becomes the story's original: its text is what the story holds, the rules are matched
on it, and a rule that alerted for the story already does not alert again.
Runs on SQLite and on the local PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import LocalServer, Route
from helpers import Entry, cli, json_lines, rss, write_config

LEAD = ("Russia's Foreign Ministry said on Monday that Caracas and Washington must resume "
        "talks under the United Nations Charter, and that Moscow was ready to help the "
        "parties find a way out of the crisis around Venezuela's leadership. ")
BODY = ("The ministry's spokeswoman told reporters that sanctions had only deepened the "
        "hardship of ordinary Venezuelans and that the opposition leader Guaido had no "
        "mandate to speak for the country. Diplomats in the capital expect a new round "
        "of consultations within weeks, after the envoys return from their visits. ")


def test_the_full_article_after_its_teaser_becomes_the_original(
        server: LocalServer, db_url: str, tmp_path: Path) -> None:
    server.routes["/teasers.rss"] = Route(content_type="application/rss+xml", body=rss(
        "Teasers", [Entry("Moscow urges talks", None, guid="teaser", summary=LEAD)]))
    server.routes["/wire.rss"] = Route(content_type="application/rss+xml", body=rss(
        "Wire", []))
    config = write_config(
        tmp_path / "m.toml", db_url=db_url,
        feeds=[{"name": "Teasers", "url": server.url("/teasers.rss")},
               {"name": "Wire", "url": server.url("/wire.rss")}],
        rules=[{"name": "Venezuela", "query": "Venezuela", "recipients": ["a@example.org"]},
               {"name": "Guaido", "query": "Guaido", "recipients": ["a@example.org"]}])
    assert cli(config, "run", "--once")[0] == 0
    assert [a["rule"] for a in json_lines(config, "alerts", "list")] == ["Venezuela"]

    # The full article, on another outlet: the teaser's text and the rest of the story.
    server.routes["/wire.rss"] = Route(content_type="application/rss+xml", body=rss(
        "Wire", [Entry("Moscow urges talks on Venezuela", None, guid="full",
                       content=LEAD + BODY * 3)]))
    code, out = cli(config, "run", "--once")
    assert code == 0, out

    items = {i["guid"]: i for i in json_lines(config, "items", "list", "--text")}
    full, teaser = items["full"], items["teaser"]
    assert full["status"] == "new" and full["duplicate_of"] is None
    assert BODY.strip() in full["text"]
    assert teaser["status"] == "duplicate" and teaser["dedup_method"] == "near"
    assert teaser["duplicate_of"]["id"] == full["id"]
    # One alert per rule and story: the body-only rule alerts on the full text, once;
    # the rule the teaser matched already does not alert again.
    alerts = sorted((a["rule"], a["item_id"]) for a in json_lines(config, "alerts", "list"))
    assert alerts == [("Guaido", full["id"]), ("Venezuela", teaser["id"])]
    # The story lists the teaser's outlet as another that carried it.
    assert [c["feed"] for c in full["also_reported_by"]] == ["Teasers"]


def test_dedup_check_gives_the_daemons_verdict_for_a_fuller_copy(
        server: LocalServer, db_url: str, tmp_path: Path) -> None:
    """`dedup check` decides by the daemon's function: it says that a fuller copy would
    take over from the teaser, and then that the teaser is a copy of it, as stored."""
    server.routes["/teasers.rss"] = Route(content_type="application/rss+xml", body=rss(
        "Teasers", [Entry("Moscow urges talks", None, guid="teaser", summary=LEAD)]))
    config = write_config(tmp_path / "m.toml", db_url=db_url,
                          feeds=[{"name": "Teasers", "url": server.url("/teasers.rss")}])
    assert cli(config, "run", "--once")[0] == 0
    teaser_id = json_lines(config, "items", "list")[0]["id"]
    full = tmp_path / "full.txt"
    full.write_text(LEAD + BODY * 3, encoding="utf-8")

    code, out = cli(config, "dedup", "check", str(full), "--json")
    assert code == 0, out
    verdict = json.loads(out)
    assert verdict["verdict"] == "fuller" and verdict["duplicate_of"] is None
    assert verdict["replaces"]["id"] == teaser_id
    code, out = cli(config, "dedup", "check", str(full))
    assert f"verdict: new: a fuller copy of item {teaser_id}, which it would replace" in out

    # The daemon does what the check said.
    server.routes["/teasers.rss"] = Route(content_type="application/rss+xml", body=rss(
        "Teasers", [Entry("Moscow urges talks on Venezuela", None, guid="full",
                          content=LEAD + BODY * 3)]))
    assert cli(config, "run", "--once")[0] == 0
    items = {i["guid"]: i for i in json_lines(config, "items", "list")}
    assert items["full"]["status"] == "new"
    assert items["teaser"]["duplicate_of"]["id"] == items["full"]["id"]
    # Now the same text is the story's original itself, and the teaser a copy of it.
    verdict = json.loads(cli(config, "dedup", "check", str(full), "--json")[1])
    assert (verdict["verdict"], verdict["duplicate_of"]["id"]) == ("exact", items["full"]["id"])
    teaser = tmp_path / "teaser.txt"
    teaser.write_text(LEAD, encoding="utf-8")
    verdict = json.loads(cli(config, "dedup", "check", str(teaser), "--json")[1])
    assert verdict["duplicate_of"]["id"] == items["full"]["id"]
