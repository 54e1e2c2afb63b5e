"""Alerts end to end: feeds on a local server -> `monitor run --once` -> alerts in the
database -> `alerts list`, `rules test`, `rules list`. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import LocalServer, Route
from helpers import SEEDS, Entry, cli, json_lines, rss, write_config
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from monitor import store

ALERT_FIELDS = {"rule", "item_id", "url", "title", "terms", "snippet", "created_at", "sent_at"}

LEADERS = {"name": "Venezuela leadership", "query": 'Maduro OR "Delcy Rodriguez"',
           "recipients": ["desk@example.org"]}
ENERGY = {"name": "Energy", "query": 'oil OR "crude prices"', "recipients": ["energy@example.org"]}
NARCO = {"name": "Narco", "query": "title:cartel OR narco*", "recipients": ["desk@example.org"]}

FILLER = (" Officials in several capitals said they were following the situation closely and "
          "expected further statements later in the week, while analysts cautioned that the "
          "picture remained unclear and that markets would react to any sign of escalation.")
STORIES = {
    "talks": ("Caracas talks resume",
              "Acting president Delcy Rodríguez received a delegation from Moscow on Monday, "
              "her office said, in the first such visit since the change of government." + FILLER),
    "turmoil": ("Political turmoil deepens",
                "Political turmoil deepened in the capital as protesters and police clashed "
                "again outside the legislature for a third night." + FILLER),
    "narco": ("Prosecutors widen inquiry",
              "Prosecutors described the network as the backbone of a narco-state that moved "
              "cocaine through three ports with the help of officials." + FILLER),
    "turmoil-2": ("Turmoil in the markets",
                  "Turmoil spread to the bond markets on Tuesday as investors sold government "
                  "debt for a second day running after the announcement." + FILLER),
    "narco-2": ("Ports under watch",
                "Narcotics seizures at the ports doubled this year, customs officials said, "
                "citing new scanners and better intelligence from abroad." + FILLER),
}


def alerts(config: Path, *extra: str) -> list[dict[str, Any]]:
    return json_lines(config, "alerts", "list", *extra)


def page(title: str, text: str) -> bytes:
    return (f"<html><head><title>{title}</title></head><body><article><h1>{title}</h1>"
            f"<p>{text}</p></article></body></html>").encode()


def serve(server: LocalServer, feed: str, keys: list[str], extra: tuple[Entry, ...] = ()) -> None:
    entries = []
    for key in keys:
        title, text = STORIES[key]
        path = f"/{feed}/{key}.html"
        server.routes[path] = Route(body=page(title, text))
        entries.append(Entry(title=title, link=server.url(path), guid=f"{feed}-{key}",
                             content=text))
    server.routes[f"/{feed}.rss"] = Route(body=rss(feed, [*entries, *extra]),
                                          content_type="application/rss+xml")


@pytest.fixture
def setup(server: LocalServer, db_url: str, tmp_path: Path) -> dict[str, Any]:
    """Two feeds: Wire carries three stories and a copy of seed 000 (it names Delcy
    Rodríguez); Desk carries the first story too."""
    seed_title, _, seed_text = (SEEDS / "000_eb13740ee894f634.txt").read_text(
        encoding="utf-8").strip().partition("\n")
    seed_copy = Entry(title=seed_title.strip("# "), link=None, guid="wire-seed-copy",
                      content=seed_text.replace("January 06, 2026", "6 January 2026"))
    serve(server, "wire", ["talks", "turmoil", "narco"], (seed_copy,))
    serve(server, "desk", ["talks"])
    feeds = [{"name": "Wire", "url": server.url("/wire.rss")},
             {"name": "Desk", "url": server.url("/desk.rss")}]
    config = write_config(tmp_path / "monitor.toml", db_url=db_url, feeds=feeds,
                          rules=[LEADERS, ENERGY, NARCO], extract={"workers": 1})
    code, out = cli(config, "run", "--once")
    assert code == 0, out
    return {"config": config, "feeds": feeds, "db_url": db_url, "tmp": tmp_path, "out": out}


def test_new_items_alert_once_duplicates_never(setup: dict[str, Any]) -> None:
    config = setup["config"]
    assert "2 alerts" in setup["out"]
    got = alerts(config)
    assert {(a["rule"], a["title"]) for a in got} == {
        ("Venezuela leadership", "Caracas talks resume"),  # Rodríguez written with the accent
        ("Narco", "Prosecutors widen inquiry"),  # narco* matches narco-state
    }  # not Energy: "turmoil" holds no word "oil"; no copy of the talks story or the seed
    for a in got:
        assert set(a) >= ALERT_FIELDS
        assert a["sent_at"] is None
        assert a["url"].startswith("http://127.0.0.1:")
    leaders = next(a for a in got if a["rule"] == "Venezuela leadership")
    assert leaders["terms"] == ["Delcy Rodriguez"]
    assert "Acting president Delcy Rodríguez received" in leaders["snippet"]
    assert leaders["query"] == LEADERS["query"]
    narco = next(a for a in got if a["rule"] == "Narco")
    assert narco["terms"] == ["narco*"]

    # The copies were stored as duplicates: that, not chance, is why they did not alert.
    # (Wire and Desk are polled together: either may store the talks story first.)
    code, out = cli(config, "items", "list", "--json")
    stored = [json.loads(line) for line in out.splitlines()]
    talks = {i["status"]: i for i in stored if i["title"] == "Caracas talks resume"}
    assert set(talks) == {"new", "duplicate"}
    assert leaders["item_id"] == talks["new"]["id"]
    assert talks["duplicate"]["duplicate_of"]["id"] == talks["new"]["id"]
    seed_copies = [i for i in stored if i["duplicate_of"] and i["duplicate_of"]["kind"] == "seed"]
    assert len(seed_copies) == 1 and seed_copies[0]["feed"] == "Wire"

    # Polling again stores nothing and alerts nothing.
    code, out = cli(config, "run", "--once")
    assert code == 0 and "0 alerts" in out
    assert len(alerts(config)) == 2

    # Storing the same alerts again (an item processed twice) keeps one per rule and item.
    engine = create_engine(setup["db_url"])
    try:
        with Session(engine) as s, s.begin():
            ids = store.rule_ids(s, ["Venezuela leadership", "Narco"])
            again = [store.NewAlert(ids["Venezuela leadership"], "changed", ("x",), "y"),
                     store.NewAlert(ids["Narco"], "changed", ("x",), "y")]
            added = store.add_alerts(s, leaders["item_id"], again, datetime.now(UTC))
        assert added == 1  # Narco had not alerted on this item: only that one is new
    finally:
        engine.dispose()
    after = alerts(config)
    assert len(after) == 3
    kept = next(a for a in after if a["id"] == leaders["id"])
    assert kept["terms"] == ["Delcy Rodriguez"] and kept["query"] == LEADERS["query"]


def test_changed_rules_apply_to_new_items(setup: dict[str, Any], server: LocalServer) -> None:
    config = setup["config"]
    before = alerts(config)
    # Energy now looks for turmoil; Narco is gone from the config.
    energy = {**ENERGY, "query": "turmoil OR crude"}
    write_config(config, db_url=setup["db_url"], feeds=setup["feeds"],
                 rules=[LEADERS, energy], extract={"workers": 1})
    serve(server, "wire", ["talks", "turmoil", "narco", "turmoil-2", "narco-2"])
    code, out = cli(config, "run", "--once")
    assert code == 0, out

    after = alerts(config)
    new = [a for a in after if a["id"] not in {b["id"] for b in before}]
    assert [(a["rule"], a["title"]) for a in new] == [("Energy", "Turmoil in the markets")]
    assert new[0]["query"] == "turmoil OR crude" and new[0]["terms"] == ["turmoil"]
    # Earlier alerts stay as they were, the removed rule's too.
    assert {a["id"] for a in before} <= {a["id"] for a in after}
    assert any(a["rule"] == "Narco" and a["query"] == NARCO["query"] for a in after)
    # The older turmoil story was stored before the change: rules apply to new items.
    assert ("Energy", "Political turmoil deepens") not in {(a["rule"], a["title"]) for a in after}

    code, out = cli(config, "rules", "list", "--json")
    listed = {r["name"]: r for r in map(json.loads, out.splitlines())}
    assert set(listed) == {"Venezuela leadership", "Energy"}
    assert listed["Energy"]["reads"] == "turmoil OR crude"
    assert (listed["Energy"]["alerts"], listed["Energy"]["unsent"]) == (1, 1)

    code, out = cli(config, "alerts", "list", "--json", "--rule", "Narco")
    assert [json.loads(line)["title"] for line in out.splitlines()] == ["Prosecutors widen inquiry"]


def test_rules_test_previews_a_query_on_stored_items(setup: dict[str, Any],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    config = setup["config"]
    code, out = cli(config, "rules", "test", "turmoil OR narco*", "--since", "all", "--json")
    assert code == 0
    found = {m["title"]: m for m in map(json.loads, out.splitlines())}
    # Only originals: the seed copy and Desk's copy are never matched.
    assert set(found) == {"Political turmoil deepens", "Prosecutors widen inquiry"}
    assert found["Prosecutors widen inquiry"]["terms"] == ["narco*"]
    code, out = cli(config, "rules", "test", "turmoil OR narco*", "--since", "all", "--limit", "1")
    assert code == 0
    assert "2 of 3 stored items match" in out and "... and 1 more (--limit 0 shows all)" in out

    code, out = cli(config, "rules", "test", '"Delcy Rodriguez" -Moscow')
    assert code == 0
    assert 'reads: "delcy rodriguez" AND NOT moscow' in out
    assert "0 of 3 items stored since" in out

    code, out = cli(config, "rules", "test", "Rodriguez", "--since", "1h")
    assert code == 0 and "1 of 3 items stored since" in out and "Caracas talks resume" in out

    capsys.readouterr()
    code, out = cli(config, "rules", "test", "Russia AND (Venezuela OR Cuba")
    assert code == 2 and out == ""
    err = capsys.readouterr().err
    assert "this '(' is never closed (at position 12)" in err
    assert "Russia AND (Venezuela OR Cuba\n           ^" in err

    code, _ = cli(config, "rules", "test", "x", "--since", "soon")
    assert code == 2
    assert "--since" in capsys.readouterr().err


def test_alerts_list_text_output(setup: dict[str, Any]) -> None:
    code, out = cli(setup["config"], "alerts", "list", "--unsent", "--since", "1d")
    assert code == 0
    assert "[Venezuela leadership]" in out and "(not sent)" in out
    assert "terms: Delcy Rodriguez" in out
    code, out = cli(setup["config"], "alerts", "list", "--limit", "1", "--json")
    assert len(out.splitlines()) == 1
