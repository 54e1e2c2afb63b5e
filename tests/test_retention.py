"""[retention] and `monitor db prune`: texts, digest bodies and old worker rows go after
their time; what dedup needs stays, so a late copy of a pruned item, exact or edited,
is still recognised as its copy; seeds are never pruned. The daemon prunes by itself.
On SQLite and PostgreSQL."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import LocalServer, Route
from helpers import Daemon, Entry, article, cli, json_lines, rss, write_config
from mailserver import MailServer
from sqlalchemy import func, select

from monitor import db, store
from monitor.config import load_settings
from monitor.models import Digest, Item, ItemBand, ItemSketch, Seed

TEXT = article(1, paragraphs=6)


def edited(html: bytes) -> bytes:
    """Another outlet's copy: a paragraph cut, a few words changed."""
    body = html.decode()
    paragraphs = body.split("</p>")
    return ("</p>".join(paragraphs[:3] + paragraphs[4:])
            .replace("<h1>Story 1</h1>", "<h1>Wire: story one</h1>")).encode()


def rows(config: Path, *columns: object, where: object = None) -> list[tuple[object, ...]]:
    engine = db.make_engine(load_settings(config).database.url)
    try:
        with engine.connect() as conn:
            q = select(*columns)  # type: ignore[call-overload]
            if where is not None:
                q = q.where(where)
            return [tuple(r) for r in conn.execute(q)]
    finally:
        engine.dispose()


def setup(server: LocalServer, db_url: str, tmp_path: Path, **retention: object) -> Path:
    server.routes["/a.html"] = Route(body=TEXT)
    server.routes["/b.html"] = Route(body=TEXT)  # the same article elsewhere: exact copy
    server.routes["/c.html"] = Route(body=edited(TEXT))  # an edited copy: near
    server.routes["/other.html"] = Route(body=article(2))
    # The original first, then its copies (stored in one poll, which would come first
    # is not told).
    server.routes["/f.rss"] = Route(body=rss("F", [
        Entry("Story one", server.url("/a.html"), guid="a")]))
    server.routes["/f2.rss"] = Route(body=rss("F", [
        Entry("Story one", server.url("/a.html"), guid="a"),
        Entry("Story one again", server.url("/b.html"), guid="b"),
        Entry("Story one, edited", server.url("/c.html"), guid="c"),
        Entry("Another story", server.url("/other.html"), guid="o")]))
    return write_config(tmp_path / "m.toml", db_url=db_url,
                        feeds=[{"name": "F", "url": server.url("/f.rss")}],
                        rules=[{"name": "Harbour", "query": "harbour*",
                                "recipients": ["desk@example.org"]}],
                        extra={"retention": {"duplicate_text": "1s", "original_text": "1s",
                                             **retention}})


def test_pruned_texts_keep_what_dedup_needs_and_late_copies_are_recognised(
        server: LocalServer, db_url: str, tmp_path: Path) -> None:
    config = setup(server, db_url, tmp_path)
    assert cli(config, "run", "--once")[0] == 0
    server.routes["/f.rss"] = server.routes["/f2.rss"]
    assert cli(config, "run", "--once")[0] == 0
    items = {i["guid"]: i for i in json_lines(config, "items", "list")}
    a = items["a"]
    assert [items[g]["dedup_method"] for g in "abco"] == [None, "exact", "near", None], items
    alerts_before = json_lines(config, "alerts", "list")
    time.sleep(1.2)

    code, out = cli(config, "db", "prune", "--dry-run")
    assert code == 0 and "would prune: 4 texts" in out and "nothing changed" in out, out
    assert all(i["text"] for i in json_lines(config, "items", "list", "--text"))
    code, out = cli(config, "db", "prune")
    assert code == 0 and re.search(r"pruned 4 texts \(\d", out), out
    pruned = {i["guid"]: i for i in json_lines(config, "items", "list", "--text")}
    assert all(i["text"] == "" for i in pruned.values())
    # The rows, their verdicts, alerts and hashes stay; the originals keep their band
    # keys and a sketch of their shingles; the copies' band keys go with their text.
    assert {g: (i["status"], i["dedup_method"]) for g, i in pruned.items()} \
        == {g: (i["status"], i["dedup_method"]) for g, i in items.items()}
    assert json_lines(config, "alerts", "list") == alerts_before
    sketched = {r[0] for r in rows(config, ItemSketch.item_id)}
    assert sketched == {items[g]["id"] for g in ("a", "o")}
    assert {r[0] for r in rows(config, ItemBand.item_id)} == sketched
    assert all(h for (h,) in rows(config, Item.text_hash))
    assert rows(config, func.count(), where=Seed.text == "") == [(0,)]  # seeds: never
    assert cli(config, "db", "prune")[1].startswith("pruned 0 texts")  # nothing left

    # Late copies of the pruned original, from another feed: the same text (its hash),
    # and an edited one (band keys, verified on the sketch), both its copies.
    server.routes["/late-exact.html"] = Route(body=TEXT)
    server.routes["/late-near.html"] = Route(body=edited(TEXT).replace(b"Wire:", b"Late:"))
    server.routes["/g.rss"] = Route(body=rss("G", [
        Entry("Late copy", server.url("/late-exact.html"), guid="le"),
        Entry("Late edited copy", server.url("/late-near.html"), guid="ln")]))
    settings = load_settings(config)
    write_config(config, db_url=settings.database.url,
                 feeds=[{"name": "F", "url": server.url("/f.rss")},
                        {"name": "G", "url": server.url("/g.rss")}],
                 rules=[{"name": "Harbour", "query": "harbour*",
                         "recipients": ["desk@example.org"]}])
    code, out = cli(config, "run", "--once")
    assert code == 0 and "0 new, 2 duplicates" in out, out
    late = {i["guid"]: i for i in json_lines(config, "items", "list")}
    assert (late["le"]["dedup_method"], late["le"]["duplicate_of"]["id"]) == ("exact", a["id"])
    assert (late["ln"]["dedup_method"], late["ln"]["duplicate_of"]["id"]) == ("near", a["id"])
    assert late["ln"]["similarity"] > 0.7

    code, out = cli(config, "status")
    assert re.search(r"database: .*, [\d.]+ (KB|MB)\n", out), out
    assert "retention: pruning has freed" in out and "pruned 4 texts" in out, out


def test_digest_bodies_and_old_worker_rows_go(tmp_path: Path, db_url: str,
                                              mail: MailServer) -> None:
    from helpers import Story, store_stories

    config = write_config(tmp_path / "m.toml", db_url=db_url,
                          feeds=[{"name": "F", "url": "http://127.0.0.1:9/f.rss"}],
                          smtp={"host": "127.0.0.1", "port": mail.port},
                          extra={"retention": {"digest_bodies": "1s", "stopped_workers": "1d"}})
    store_stories(config, [Story("m", "F", "Maduro speaks", "http://example.org/m",
                                 "Maduro spoke at length about the economy. " * 10)],
                  datetime.now(UTC))
    assert cli(config, "digest", "send", "--now")[0] == 0
    settings = load_settings(config)
    engine = db.make_engine(settings.database.url)
    try:
        with db.session_factory(engine).begin() as s:
            old = datetime.now(UTC) - timedelta(days=2)
            store.register_worker(s, "h:1:old", "h", 1, "0", old)
            store.worker_stopped(s, "h:1:old", old)
            store.register_worker(s, "h:2:new", "h", 2, "0", datetime.now(UTC))
    finally:
        engine.dispose()
    time.sleep(1.2)
    code, out = cli(config, "db", "prune")
    assert code == 0 and "1 digest bodies" in out and "1 worker rows" in out, out
    [(subject, size)] = rows(config, Digest.subject, func.length(Digest.message))
    assert subject.startswith("1 new story") and size == 0  # type: ignore[union-attr]
    assert [d["state"] for d in json_lines(config, "digest", "list")] == ["sent"]
    assert [w["id"] for w in json_lines(config, "status")[0]["workers"]] == ["h:2:new"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_daemon_prunes_by_itself(server: LocalServer, db_url: str, tmp_path: Path) -> None:
    config = setup(server, db_url, tmp_path, every="2s")
    server.routes["/f.rss"] = server.routes["/f2.rss"]
    daemon = Daemon(config, log=tmp_path / "d.log")
    try:
        assert daemon.wait_for_log("retention: pruned 4 texts", 60), daemon.log()
    finally:
        assert daemon.stop() == 0, daemon.log()
    assert all(i["text"] == "" for i in json_lines(config, "items", "list", "--text"))


def test_a_quiet_story_loses_its_index_and_is_no_longer_a_candidate(
        tmp_path: Path, db_url: str) -> None:
    from helpers import Story, store_stories

    from monitor.models import StoryTerm

    config = write_config(tmp_path / "m.toml", db_url=db_url,
                          feeds=[{"name": "F", "url": "http://127.0.0.1:9/f.rss"}])
    now = datetime.now(UTC)
    old_at, new_at = now - timedelta(days=20), now - timedelta(days=1)
    kremlin = ("Kremlin spokesman Dmitry Peskov said Russia would respect the choice of "
               "Venezuelans after Nicolás Maduro was removed, and expected Caracas to honor "
               "its oil agreements with Rosneft.")
    havana = ("A Russian tanker carrying crude docked in Havana, easing blackouts across Cuba; "
              "officials said a second vessel from Novorossiysk was expected in December.")
    ids = store_stories(config, [
        Story("old", "F", "Peskov on Venezuela", "http://example.org/old", kremlin,
              published_at=old_at.isoformat()),
        Story("new", "F", "Tanker in Havana", "http://example.org/new", havana,
              published_at=new_at.isoformat())], now)
    story = {i["id"]: i["story"] for i in json_lines(config, "items", "list")}
    article = tmp_path / "late.txt"
    article.write_text(kremlin.replace("Peskov said", "Peskov told reporters"), encoding="utf-8")
    late = (old_at + timedelta(hours=6)).isoformat()

    def joins() -> object:
        [out] = json_lines(config, "stories", "check", str(article), "--at", late, "--json")
        return out["joins"]

    assert joins() == story[ids["old"]]  # a late write-up finds the old story …
    code, out = cli(config, "db", "prune", "--dry-run")
    assert code == 0 and "the index of 1 stories" in out, out
    code, out = cli(config, "db", "prune")
    assert code == 0 and "the index of 1 stories" in out, out
    # … until it has been quiet for [retention] story_index (10 days): only the recent
    # story is still indexed, and the late write-up starts a story of its own.
    assert {r[0] for r in rows(config, StoryTerm.story_id)} == {story[ids["new"]]}
    assert joins() is None
    code, out = cli(config, "db", "prune")  # from where it stopped: nothing again
    assert code == 0 and "the index of 0 stories" in out, out


def test_a_story_index_shorter_than_the_window_is_a_config_error(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = write_config(tmp_path / "m.toml", db_url=f"sqlite:///{tmp_path}/m.db",
                          feeds=[{"name": "F", "url": "http://127.0.0.1:9/f.rss"}],
                          extra={"retention": {"story_index": "1d"}})
    code, _ = cli(config, "db", "prune")
    assert code == 2
    assert "retention.story_index" in caplog.text and "[stories] window" in caplog.text
    assert str(config) in caplog.text
