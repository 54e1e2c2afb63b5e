"""The one-entry exact lookup (what each entry's storing transaction asks, in one
statement) answers as the batch lookup does: seeds before items, an original before a
copy, a copy resolved to its original, a GUID in the asking feed itself not counted.
Runs on SQLite and on the local PostgreSQL."""

from __future__ import annotations

import itertools
from pathlib import Path

from conftest import LocalServer, Route
from helpers import SEEDS, Entry, cli, json_lines, rss, write_config
from sqlalchemy import select

from monitor import db, store
from monitor.dedup.fingerprint import text_hash
from monitor.dedup.seeds import read_seeds
from monitor.models import Item

STORY = ("A wire story about the harbour strike, told at length so that it is long enough "
         "to be identified by its text and compared with its copies. ") * 6


def test_lookup_one_answers_as_lookup_known(server: LocalServer, db_url: str,
                                            tmp_path: Path) -> None:
    seed = read_seeds(SEEDS)[0]
    server.routes["/a.rss"] = Route(content_type="application/rss+xml", body=rss("A", [
        Entry("Strike", "https://news.example/strike", guid="https://news.example/strike",
              content=STORY),
        Entry("Seed copy", "https://a.example/seed", guid="a-seed", content=seed.text)]))
    server.routes["/b.rss"] = Route(content_type="application/rss+xml", body=rss("B", [
        Entry("Strike again", "https://b.example/strike", guid="https://news.example/strike",
              content=STORY + " Updated.")]))
    config = write_config(tmp_path / "m.toml", db_url=db_url, feeds=[
        {"name": "A", "url": server.url("/a.rss")}, {"name": "B", "url": server.url("/b.rss")}],
        fetch={"allow_private": []})
    assert cli(config, "run", "--once")[0] == 0
    stored = {i["guid"]: i for i in json_lines(config, "items", "list")}
    assert stored["a-seed"]["duplicate_of"]["kind"] == "seed"
    engine = db.make_engine(db_url)
    try:
        with db.session_factory(engine)() as s:
            rows = s.execute(select(Item.feed_id, Item.guid, Item.canonical_url,
                                    Item.text_hash)).all()
            feeds = [*sorted({r.feed_id for r in rows}), 0]
            guids = [*(r.guid for r in rows), "https://nowhere.example/x", None]
            urls = [*(r.canonical_url for r in rows), seed.source_url, "https://no.example/",
                    None]
            hashes = [*(r.text_hash for r in rows), text_hash(seed.text), "0" * 64, None]
            checked = 0
            for feed_id, guid, url, thash in itertools.product(feeds, guids, urls, hashes):
                one = store.lookup_one(s, feed_id, guid=guid, url=url, text_hash=thash)
                batch = store.lookup_known(s, feed_id, guids=[guid] if guid else [],
                                           urls=[url] if url else [],
                                           hashes=[thash] if thash else [])
                assert one == batch, (feed_id, guid, url, thash)
                checked += bool(one.by_guid or one.by_url or one.by_hash)
            assert checked > 50  # most probes found something: the comparison is not empty
    finally:
        engine.dispose()
