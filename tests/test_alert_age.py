"""``[alerts] max_age`` (default 3 days): an article published longer ago is stored and
can be searched, but does not alert, so a new feed's backlog of old stories does not
fill the first digest; an article without a date alerts (it is first seen now).
``rules test`` says which matches would not alert."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from conftest import LocalServer, Route
from helpers import WORDS, Entry, cli, json_lines, rss, write_config


def text(i: int) -> str:
    """Its own text (no two are near-duplicates), naming Maduro."""
    rng = random.Random(i)
    return "Maduro said: " + " ".join(rng.choice(WORDS) + str(rng.randrange(1000))
                                      for _ in range(120)) + "."


def feed(server: LocalServer) -> None:
    now = datetime.now(UTC)
    server.routes["/f.rss"] = Route(body=rss("Wire", [
        Entry("Old story", None, guid="old", content=text(1),
              published=format_datetime(now - timedelta(days=300), usegmt=True)),
        Entry("Recent story", None, guid="recent", content=text(2),
              published=format_datetime(now - timedelta(days=2), usegmt=True)),
        Entry("Undated story", None, guid="undated", content=text(3),
              published="")]))


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_an_old_article_is_stored_but_does_not_alert_by_default(
        server: LocalServer, db_url: str, tmp_path: Path) -> None:
    feed(server)
    config = write_config(tmp_path / "m.toml", db_url=db_url,
                          feeds=[{"name": "Wire", "url": server.url("/f.rss")}],
                          rules=[{"name": "Maduro", "query": "Maduro",
                                  "recipients": ["desk@example.org"]}], alerts={})
    code, out = cli(config, "run", "--once")
    assert code == 0, out
    items = {i["guid"]: i for i in json_lines(config, "items", "list")}
    assert set(items) == {"old", "recent", "undated"}
    assert all(i["status"] == "new" for i in items.values())
    guid_of = {i["id"]: guid for guid, i in items.items()}
    alerted = {guid_of[a["item_id"]] for a in json_lines(config, "alerts", "list")}
    assert alerted == {"recent", "undated"}
    # rules test shows the old one, and that it would not alert.
    code, out = cli(config, "rules", "test", "Maduro", "--since", "all")
    assert code == 0 and "3 of 3" in out, out
    assert out.count("would alert: no, published 300d ago, longer than [alerts] max_age "
                     "(3d)") == 1, out
    matches = {m["title"]: m for m in json_lines(config, "rules", "test", "Maduro",
                                                 "--since", "all")}
    assert [t for t, m in matches.items() if not m["would_alert"]] == ["Old story"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_max_age_0_alerts_on_articles_of_any_age(
        server: LocalServer, db_url: str, tmp_path: Path) -> None:
    feed(server)
    config = write_config(tmp_path / "m.toml", db_url=db_url,
                          feeds=[{"name": "Wire", "url": server.url("/f.rss")}],
                          rules=[{"name": "Maduro", "query": "Maduro",
                                  "recipients": ["desk@example.org"]}],
                          alerts={"max_age": "0"})
    assert cli(config, "run", "--once")[0] == 0
    assert len(json_lines(config, "alerts", "list")) == 3
