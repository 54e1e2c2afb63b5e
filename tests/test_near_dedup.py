"""Near-duplicates end to end: local HTTP server -> `monitor run --once` -> the band-key
index in the database -> verdicts, provenance and "also reported by" in the CLI.

Runs on SQLite and on the local PostgreSQL (the ``db_url`` fixture)."""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import LocalServer, Route
from helpers import SEEDS, Entry, cli, json_lines, page_html, pages, rss, write_config
from sqlalchemy import select as sql_select
from sqlalchemy import text as sql

from monitor import db
from monitor.dedup.fingerprint import Fingerprinter
from monitor.dedup.seeds import read_seeds

SEED_TEXTS = {doc.name[:3]: doc for doc in read_seeds(SEEDS)}


def items(config: Path) -> dict[str, dict[str, Any]]:
    return {i["guid"]: i for i in json_lines(config, "items", "list")}


def paragraphs(body: str) -> list[str]:
    return [p.strip() for p in body.splitlines() if p.strip()]


def other_site(title: str, paras: list[str]) -> bytes:
    """Another outlet's template: navigation, a share bar, a "most read" box, a footer."""
    body = "".join(f"<p>{html.escape(p)}</p>" for p in paras)
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}"
        "</title></head><body><nav><a href='/'>Home</a> <a href='/world'>World</a></nav>"
        f"<main><article><h1>{html.escape(title)}</h1><p class='byline'>By Wire Staff</p>"
        f"{body}</article></main><aside><h3>Most read</h3><ul><li><a href='/x'>Markets rally"
        "</a></li><li><a href='/y'>Storm warning</a></li></ul></aside>"
        "<footer>Copyright 2026 Mirror Media. All rights reserved.</footer></body></html>"
    ).encode()


@pytest.fixture
def story() -> Any:
    # A real prose article from the fixtures: the most paragraphs of 20 words or more.
    return max(pages(), key=lambda p: sum(len(x.split()) >= 20 for x in paragraphs(p.body)))


def test_syndicated_copies_across_outlets(server: LocalServer, db_url: str, tmp_path: Path,
                                          story: Any) -> None:
    paras = paragraphs(story.body)
    assert len(paras) >= 6
    server.routes["/wire/story.html"] = Route(body=page_html(story))
    server.routes["/wire.rss"] = Route(body=rss("Wire", [
        Entry("Original headline", server.url("/wire/story.html"), guid="wire-1")]))
    # Another outlet: new headline, another template, one paragraph cut, a feed footer.
    mirror = [*paras[:3], *paras[4:], "From Wire via This RSS Feed."]
    server.routes["/mirror/copy.html"] = Route(body=other_site("A different headline", mirror))
    server.routes["/mirror.rss"] = Route(body=rss("Mirror", [
        Entry("A different headline", server.url("/mirror/copy.html"), guid="mirror-1")]))
    # A teaser: the page is gone, the feed carries the first paragraphs only.
    lead = [p for p in paras if len(p.split()) >= 20]
    teaser = " ".join(lead[:2])
    server.routes["/teasers.rss"] = Route(body=rss("Teasers", [
        Entry("Teaser", server.url("/gone.html"), guid="teaser-1", summary=teaser)]))
    # A different article on another subject: must stay new.
    other = next(p for p in pages() if p.key != story.key)
    server.routes["/other.html"] = Route(body=page_html(other))
    server.routes["/other.rss"] = Route(body=rss("Other", [
        Entry("Unrelated", server.url("/other.html"), guid="other-1")]))

    feeds = [{"name": "Wire", "url": server.url("/wire.rss")},
             {"name": "Other", "url": server.url("/other.rss")}]
    config = write_config(tmp_path / "monitor.toml", db_url=db_url, feeds=feeds)
    code, out = cli(config, "run", "--once")
    assert code == 0, out
    # The copies arrive later, from other outlets.
    feeds += [{"name": "Mirror", "url": server.url("/mirror.rss")},
              {"name": "Teasers", "url": server.url("/teasers.rss")}]
    config = write_config(tmp_path / "monitor.toml", db_url=db_url, feeds=feeds)
    code, out = cli(config, "run", "--once")
    assert code == 0, out

    got = items(config)
    original = got["wire-1"]
    assert original["status"] == "new"
    assert got["other-1"]["status"] == "new"
    for guid, source in (("mirror-1", "page"), ("teaser-1", "feed_summary")):
        copy = got[guid]
        assert copy["text_source"] == source
        assert copy["status"] == "duplicate", guid
        assert copy["dedup_method"] == "near"
        assert copy["duplicate_of"] == {"kind": "item", "id": original["id"],
                                        "url": original["canonical_url"]}
        assert 0.7 <= copy["similarity"] <= 1.0
    assert got["teaser-1"]["similarity"] == 1.0  # wholly contained in the original
    reported = sorted((c["feed"], c["item_id"], c["dedup_method"])
                      for c in original["also_reported_by"])
    assert reported == [("Mirror", got["mirror-1"]["id"], "near"),
                        ("Teasers", got["teaser-1"]["id"], "near")]
    assert got["other-1"]["also_reported_by"] == []
    assert got["mirror-1"]["also_reported_by"] == []  # copies list nothing themselves

    code, out = cli(config, "items", "list")
    assert code == 0
    assert ("also reported by: Mirror, Teasers" in out) != ("also reported by: Teasers, Mirror" in out)
    published = datetime.fromisoformat(original["published_at"]).astimezone(UTC)
    assert f"{original['id']:>6} {published:%Y-%m-%d %H:%M} UTC Wire: Original headline" in out
    assert f"[duplicate of item {original['id']} by near" in out


def test_copies_of_seeds_and_same_topic_articles(server: LocalServer, db_url: str,
                                                 tmp_path: Path) -> None:
    # teleSUR's own page for seed 003, without the RSS footer the seed file carries.
    telesur = [p for p in paragraphs(SEED_TEXTS["003"].text) if "RSS Feed" not in p]
    server.routes["/telesur.html"] = Route(body=other_site("Russia urges US", telesur))
    # A reprint of seed 000 (The Moscow Times) under another headline and URL. Seed 002
    # reports the same statement independently: the reprint must name 000, not 002.
    mt = paragraphs(SEED_TEXTS["000"].text)
    server.routes["/reprint.html"] = Route(body=other_site("Kremlin backs Rodríguez", mt[1:]))
    server.routes["/feed.rss"] = Route(body=rss("Desk", [
        Entry("Russia urges US", server.url("/telesur.html"), guid="t-1"),
        Entry("Kremlin backs Rodríguez", server.url("/reprint.html"), guid="r-1"),
    ]))
    config = write_config(tmp_path / "monitor.toml", db_url=db_url,
                          feeds=[{"name": "Desk", "url": server.url("/feed.rss")}])
    code, out = cli(config, "run", "--once")
    assert code == 0, out
    got = items(config)
    for guid, seed in (("t-1", SEED_TEXTS["003"].name), ("r-1", SEED_TEXTS["000"].name)):
        assert got[guid]["status"] == "duplicate", guid
        assert got[guid]["dedup_method"] == "near", guid
        assert got[guid]["duplicate_of"]["kind"] == "seed"
        assert got[guid]["duplicate_of"]["seed"] == seed


def _index_rows(db_url: str) -> tuple[int, int, str | None]:
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as c:
            return (c.execute(sql("SELECT count(*) FROM item_bands")).scalar_one(),
                    c.execute(sql("SELECT count(*) FROM seed_bands")).scalar_one(),
                    c.execute(sql("SELECT value FROM meta WHERE name = 'near_dedup_index'"))
                    .scalar_one_or_none())
    finally:
        engine.dispose()


def test_index_lives_in_the_database_and_is_rebuilt_when_stale(
        server: LocalServer, db_url: str, tmp_path: Path, story: Any) -> None:
    server.routes["/a.html"] = Route(body=page_html(story))
    server.routes["/feed.rss"] = Route(body=rss("Wire", [
        Entry("A", server.url("/a.html"), guid="a-1")]))
    config = write_config(tmp_path / "monitor.toml", db_url=db_url,
                          feeds=[{"name": "Wire", "url": server.url("/feed.rss")}])
    assert cli(config, "run", "--once")[0] == 0
    item_keys, seed_keys, version = _index_rows(db_url)
    assert item_keys > 0
    assert seed_keys > 0
    assert version == Fingerprinter().version

    # A database from before the index (or with other parameters): keys gone, version old.
    engine = db.make_engine(db_url)
    with engine.begin() as c:
        c.execute(sql("DELETE FROM item_bands"))
        c.execute(sql("DELETE FROM seed_bands"))
        c.execute(sql("UPDATE meta SET value = 'minhash-v0' WHERE name = 'near_dedup_index'"))
    engine.dispose()
    code, out = cli(config, "seeds", "load")  # start-up work: rebuilds the stale index
    assert code == 0, out
    assert _index_rows(db_url) == (item_keys, seed_keys, version)

    code, out = cli(config, "dedup", "reindex")
    assert code == 0, out
    assert "rebuilt: 1 items" in out
    assert _index_rows(db_url) == (item_keys, seed_keys, version)

    # The copy is found through the stored index by a fresh process's lookup.
    copy = tmp_path / "copy.txt"
    copy.write_text("Headline of the copy\n\n" + story.body + "\nOriginal url: https://x.example/1",
                    encoding="utf-8")
    code, out = cli(config, "dedup", "check", str(copy), "--json")
    assert code == 0, out
    verdict = json.loads(out)
    assert verdict["verdict"] == "near"
    assert verdict["duplicate_of"]["kind"] == "item"
    assert verdict["boilerplate_lines"] == ["Original url: https://x.example/1"]
    assert verdict["matches"][0]["duplicate"] is True
    assert verdict["matches"][0]["containment"] >= 0.95


def test_dedup_check_explains(server: LocalServer, db_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path / "monitor.toml", db_url=db_url, feeds=[])
    assert cli(config, "seeds", "load")[0] == 0

    # A URL, fetched and extracted as the daemon would: seed 003 on another site.
    paras = [p for p in paragraphs(SEED_TEXTS["003"].text) if "RSS Feed" not in p]
    server.routes["/copy.html"] = Route(body=other_site("Russia urges US", paras))
    code, out = cli(config, "dedup", "check", server.url("/copy.html"))
    assert code == 0, out
    assert f"verdict: duplicate of seed {SEED_TEXTS['003'].name} by near" in out
    assert " 1. DUPLICATE  jaccard " in out

    # The independent write-up (seed 002) against the others: shown, scored, not a copy.
    own = tmp_path / "002.txt"
    own.write_text(SEED_TEXTS["002"].text, encoding="utf-8")
    code, out = cli(config, "dedup", "check", str(own), "--json")
    assert code == 0
    verdict = json.loads(out)
    assert verdict["verdict"] == "exact"  # it is seed 002 itself
    assert verdict["duplicate_of"]["seed"] == SEED_TEXTS["002"].name
    others = [m for m in verdict["matches"] if m["matched"]["seed"] != SEED_TEXTS["002"].name]
    assert all(not m["duplicate"] and m["containment"] < 0.5 for m in others)

    # Something new.
    new = tmp_path / "new.txt"
    new.write_text(" ".join(f"word{i}" for i in range(200)), encoding="utf-8")
    code, out = cli(config, "dedup", "check", str(new))
    assert code == 0
    assert "no stored text shares a band key with it" in out
    assert "verdict: new (no duplicate)" in out

    code, _ = cli(config, "dedup", "check", str(tmp_path / "missing.txt"))
    assert code == 2  # a file that cannot be read is bad usage


def test_configured_thresholds_apply(server: LocalServer, db_url: str, tmp_path: Path,
                                     story: Any) -> None:
    paras = paragraphs(story.body)
    # The first half, with one line of its own: a copy, but never a perfect subset.
    half = [*paras[: len(paras) // 2],
            "Editor's note: this shortened version was prepared by our night desk for readers "
            "who follow the story on mobile devices."]
    server.routes["/a.html"] = Route(body=page_html(story))
    server.routes["/half.html"] = Route(body=other_site("Half", half))
    server.routes["/feed.rss"] = Route(body=rss("Wire", [
        Entry("A", server.url("/a.html"), guid="a-1")]))
    server.routes["/other.rss"] = Route(body=rss("Other", [
        Entry("Half", server.url("/half.html"), guid="h-1")]))
    feeds = [{"name": "Wire", "url": server.url("/feed.rss")}]
    config = write_config(tmp_path / "monitor.toml", db_url=db_url, feeds=feeds)
    assert cli(config, "run", "--once")[0] == 0
    # With the default thresholds the half copy is a near duplicate...
    code, out = cli(config, "dedup", "check", server.url("/half.html"), "--json")
    assert code == 0, out
    default = json.loads(out)
    assert default["verdict"] == "near"
    best = default["matches"][0]
    assert best["jaccard"] < 0.95
    assert best["containment"] < 1.0
    # ...and with thresholds it cannot reach, configured in [dedup], the daemon stores it as new.
    feeds.append({"name": "Other", "url": server.url("/other.rss")})
    config = write_config(tmp_path / "monitor.toml", db_url=db_url, feeds=feeds,
                          dedup={"jaccard": 0.95, "containment": 1.0})
    assert cli(config, "run", "--once")[0] == 0
    stored = items(config)["h-1"]
    assert stored["status"] == "new"
    assert stored["text_source"] == "page"


def test_workers_starting_together_rebuild_the_index_once(db_url: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    config = write_config(tmp_path / "monitor.toml", db_url=db_url, feeds=[])
    assert cli(config, "seeds", "load")[0] == 0
    before = _index_rows(db_url)
    engine = db.make_engine(db_url)
    with engine.begin() as c:
        c.execute(sql("UPDATE meta SET value = 'stale' WHERE name = 'near_dedup_index'"))
    engine.dispose()
    procs = [subprocess.Popen([sys.executable, "-m", "monitor", "--config", str(config),
                               "seeds", "load"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err for _, err in results]
    rebuilt = sum("near-duplicate index: rebuilt" in err for _, err in results)
    # PostgreSQL serializes rebuilds with an advisory lock and the others see the new
    # version. SQLite (one daemon per database) may rebuild more than once, harmlessly.
    assert rebuilt == 1 if db_url.startswith("postgresql") else rebuilt >= 1
    assert _index_rows(db_url) == before


def _texts(n: int, tag: str) -> list[str]:
    words = [f"{tag}{i}word{j}" for i in range(n) for j in range(60)]
    return [" ".join(words[i * 60:(i + 1) * 60]) for i in range(n)]


def test_a_rebuild_runs_while_other_workers_store_items(db_url: str, tmp_path: Path) -> None:
    """`dedup reindex` (or a start after a boilerplate change) while other workers store
    items: every item's keys end up those of the current fingerprint, none is refused,
    and an interrupted rebuild resumes where it stopped."""
    import threading
    from datetime import UTC, datetime

    from monitor import store
    from monitor.config import load_settings
    from monitor.dedup.index import REBUILD_KEY, Deduplicator
    from monitor.models import Feed

    config = write_config(tmp_path / "monitor.toml", db_url=db_url,
                          feeds=[{"name": "F", "url": "http://127.0.0.1:1/f.rss"}])
    assert cli(config, "seeds", "load")[0] == 0
    settings = load_settings(config)
    engine = db.make_engine(settings.database.url)
    sessions = db.session_factory(engine)
    dedup = Deduplicator.from_settings(settings)
    now = datetime.now(UTC)
    with sessions.begin() as s:
        store.sync_feeds(s, settings.feeds, now)
        feed_id = s.scalars(sql_select(Feed.id)).one()

    def add(s: Any, guid: str, text: str) -> int:
        item_id = store.add_item(s, store.NewItem(
            feed_id=feed_id, guid=guid, url=None, final_url=None, canonical_url=None,
            title=guid, author=None, published_at=None, fetched_at=None, language="en",
            site_name=None, text=text, text_source="feed_content", text_hash=None,
            page_status=None, page_error=None), now)
        dedup.index_item(s, item_id, dedup.fingerprint(text))
        return item_id

    with sessions.begin() as s:
        for i, text in enumerate(_texts(300, "old")):
            add(s, f"old-{i}", text)
    errors: list[BaseException] = []
    stop = threading.Event()

    def worker() -> None:  # another worker storing items, one transaction each
        try:
            for i, text in enumerate(_texts(150, "new")):
                if stop.is_set():
                    return
                with sessions.begin() as s:
                    add(s, f"new-{i}", text)
        except BaseException as exc:
            errors.append(exc)

    try:
        thread = threading.Thread(target=worker)
        thread.start()
        try:
            dedup.rebuild_index(sessions, force=True, batch=5)
        finally:
            stop.set()
            thread.join()
        assert errors == []
        expected = {}
        with sessions() as s:
            for item_id, text in store.indexable_items(s, 0, 10_000):
                expected[item_id] = sorted(dedup.fingerprint(text).band_keys)
            got: dict[int, list[int]] = {}
            for key, item_id in s.execute(sql("SELECT key, item_id FROM item_bands")):
                got.setdefault(item_id, []).append(key)
            assert {i: sorted(k) for i, k in got.items()} == expected
            assert store.get_meta(s, REBUILD_KEY) is None

        # Interrupted after item 100 (as by a crash), the next rebuild resumes there.
        with sessions.begin() as s:
            store.set_meta(s, "near_dedup_index", "stale")
            store.set_meta(s, REBUILD_KEY, json.dumps({"version": dedup.fingerprinter.version,
                                                        "after": 100}))
        assert dedup.rebuild_index(sessions) == sum(1 for i in expected if i > 100)
        with sessions() as s:
            assert dedup.index_is_current(s)
    finally:
        engine.dispose()
