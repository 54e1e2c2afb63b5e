"""The feeds as a user manages them: a feed whose URL is fixed keeps its row and its items
(no disabled twin), ``feeds list`` shows the disabled ones only with ``--all``, ``feeds
forget`` removes one the config dropped (its items stay), and ``feeds poll`` polls one
feed now: here, or through the running daemon. On SQLite and PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import LocalServer, Route
from helpers import Daemon, Entry, cli, json_lines, rss, write_config


def entries(*guids: str) -> bytes:
    return rss("Wire", [Entry(f"Story {g}", None, guid=g, content=f"The text of story {g}. " * 8)
                        for g in guids])


def stored(config: Path) -> int:
    """How many items are stored (0 while the daemon has not made the schema yet)."""
    code, out = cli(config, "items", "list", "--json")
    return len(out.splitlines()) if code == 0 else 0


def config_with(tmp_path: Path, db_url: str, feeds: list[dict[str, object]],
                **kw: object) -> Path:
    return write_config(tmp_path / "m.toml", db_url=db_url, feeds=feeds, **kw)  # type: ignore[arg-type]


def test_a_fixed_url_moves_the_feed_with_its_items_and_leaves_no_twin(
        server: LocalServer, db_url: str, tmp_path: Path) -> None:
    server.routes["/old.rss"] = Route(body=entries("a", "b"))
    config = config_with(tmp_path, db_url, [{"name": "Wire", "url": server.url("/old.rss")},
                                            {"name": "Other", "url": server.url("/typo.rss")}])
    assert cli(config, "run", "--once")[0] == 0
    # The feed moved (and the other's typo is fixed): same names, new URLs; the new
    # one lists what the old one did, and one more.
    server.routes["/new.rss"] = Route(body=entries("a", "b", "c"))
    server.routes["/fixed.rss"] = Route(body=entries("x"))
    config_with(tmp_path, db_url, [{"name": "Wire", "url": server.url("/new.rss")},
                                   {"name": "Other", "url": server.url("/fixed.rss")}])
    code, out = cli(config, "run", "--once")
    assert code == 0 and "0 failed" in out and "1 new" not in out, out
    feeds = json_lines(config, "feeds", "list", "--all")
    assert [(f["name"], f["url"], f["state"], f["items"]) for f in feeds] == [
        ("Wire", server.url("/new.rss"), "ok", 3),
        ("Other", server.url("/fixed.rss"), "ok", 1)]
    # a and b were known by their GUIDs: stored once, not again from the new URL.
    assert sorted(i["guid"] for i in json_lines(config, "items", "list")) == ["a", "b", "c", "x"]


def test_disabled_feeds_are_listed_with_all_and_can_be_forgotten(
        server: LocalServer, db_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    server.routes["/a.rss"] = Route(body=entries("a1", "a2"))
    server.routes["/b.rss"] = Route(body=entries("b1"))
    a = {"name": "Alpha", "url": server.url("/a.rss")}
    b = {"name": "Beta", "url": server.url("/b.rss")}
    empty = {"name": "Empty", "url": server.url("/none.rss")}  # fails: never stores an item
    config = config_with(tmp_path, db_url, [a, b, empty])
    assert cli(config, "run", "--once")[0] == 0
    config_with(tmp_path, db_url, [b])
    assert cli(config, "run", "--once")[0] == 0  # the config sync disables Alpha and Empty

    code, out = cli(config, "feeds", "list")
    assert code == 0 and "Beta <" in out and "Alpha" not in out, out
    assert "(2 disabled feeds not shown: `feeds list --all` shows them" in out, out
    assert [(f["name"], f["state"]) for f in json_lines(config, "feeds", "list", "--all")] \
        == [("Alpha", "disabled"), ("Beta", "ok"), ("Empty", "disabled")]

    # A feed the config lists cannot be forgotten; a typo names the close match.
    capsys.readouterr()
    assert cli(config, "feeds", "forget", "Beta") == (2, "")
    assert "is in " in capsys.readouterr().err
    assert cli(config, "feeds", "forget", "Alpah") == (2, "")
    assert "did you mean 'Alpha'?" in capsys.readouterr().err

    code, out = cli(config, "feeds", "forget", "alpha")
    assert code == 0 and "its 2 items stay and still name it" in out, out
    code, out = cli(config, "feeds", "forget", server.url("/none.rss"))
    assert code == 0 and "it had no items" in out, out
    assert [f["name"] for f in json_lines(config, "feeds", "list", "--all")] == ["Beta"]
    items = json_lines(config, "items", "list", "--feed", "Alpha")
    assert sorted(i["guid"] for i in items) == ["a1", "a2"] and {i["feed"] for i in items} \
        == {"Alpha"}
    capsys.readouterr()
    assert cli(config, "feeds", "forget", "Alpha")[0] == 2  # gone already
    assert "no feed has that name" in capsys.readouterr().err

    # Listed again, a forgotten feed comes back with what it knew: nothing is stored twice.
    config_with(tmp_path, db_url, [a, b])
    code, out = cli(config, "run", "--once")
    assert code == 0 and ", 0 new," in out, out
    assert [(f["name"], f["items"]) for f in json_lines(config, "feeds", "list")] \
        == [("Alpha", 2), ("Beta", 1)]


def test_feeds_poll_polls_one_feed_here_when_no_daemon_runs(
        server: LocalServer, db_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    server.routes["/a.rss"] = Route(body=entries("a1"))
    server.routes["/b.rss"] = Route(body=entries("b1"))
    config = config_with(tmp_path, db_url, [{"name": "Alpha", "url": server.url("/a.rss")},
                                            {"name": "Beta", "url": server.url("/b.rss")}])
    code, out = cli(config, "feeds", "poll", "beta")
    assert code == 0 and "polled 1 feeds: 1 parsed" in out and ", 1 new," in out, out
    assert [h.path for h in server.hits()] == ["/b.rss"]
    assert [i["feed"] for i in json_lines(config, "items", "list")] == ["Beta"]
    # A feed that fails says so in the exit code.
    server.routes["/b.rss"] = Route(status=500)
    code, out = cli(config, "feeds", "poll", "Beta")
    assert code == 1 and "failed: Beta" in out and "HTTP 500" in out, out
    capsys.readouterr()
    assert cli(config, "feeds", "poll", "Gamma")[0] == 2
    assert "the feeds are 'Alpha', 'Beta'" in capsys.readouterr().err


def test_feeds_poll_makes_a_running_daemon_poll_the_feed_now(
        server: LocalServer, db_url: str, tmp_path: Path) -> None:
    server.routes["/a.rss"] = Route(body=entries("a1"))
    config = config_with(tmp_path, db_url, [{"name": "Alpha", "url": server.url("/a.rss"),
                                             "interval": "1h"}])
    daemon = Daemon(config, log=tmp_path / "daemon.log")
    try:
        assert daemon.wait_for(lambda: stored(config) == 1, 60), daemon.log()
        server.routes["/a.rss"] = Route(body=entries("a1", "a2"))
        code, out = cli(config, "feeds", "poll", "Alpha", "--wait", "30")
        assert code == 0, out
        assert "is due now: a running daemon polls it" in out and "Alpha <" in out, out
        assert re.search(r"ok; \d items; every 1h", out), out
        assert len(server.hits("/a.rss")) == 2
        assert daemon.wait_for(lambda: stored(config) == 2, 30)
    finally:
        assert daemon.stop() == 0, daemon.log()
