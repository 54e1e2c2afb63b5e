"""The exact-dedup lookup (one UNION ALL for one entry's keys, as each storing
transaction asks; many statements for a feed's batch) answers the same for one key as
within a batch of hundreds, across its chunks: seeds before items, an original before a
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


def test_one_key_is_looked_up_as_within_a_batch(server: LocalServer, db_url: str,
                                               tmp_path: Path) -> None:
    seed = read_seeds(SEEDS)[0]
    server.routes["/a.rss"] = Route(content_type="application/rss+xml", body=rss("A", [
        Entry("Strike", "https://news.example/strike", guid="https://news.example/strike",
              content=STORY),
        Entry("Seed copy", "https://a.example/seed", guid="a-seed", content=seed.text)]))
    server.routes["/b.rss"] = Route(content_type="application/rss+xml", body=rss("B", [
        Entry("Strike again", "https://b.example/strike", guid="https://news.example/strike",
              content=STORY)]))
    config = write_config(tmp_path / "m.toml", db_url=db_url, feeds=[
        {"name": "A", "url": server.url("/a.rss")}, {"name": "B", "url": server.url("/b.rss")}])
    assert cli(config, "run", "--once")[0] == 0
    # A and B are polled together: either may store the story first.
    strike = [i for i in json_lines(config, "items", "list")
              if i["guid"] == "https://news.example/strike"]
    (original,) = [i for i in strike if i["duplicate_of"] is None]
    (copy,) = [i for i in strike if i["duplicate_of"] is not None]
    assert copy["duplicate_of"]["id"] == original["id"]
    engine = db.make_engine(db_url)
    try:
        with db.session_factory(engine)() as s:
            rows = s.execute(select(Item.id, Item.feed_id, Item.guid, Item.canonical_url,
                                    Item.text_hash)).all()
            a_id = next(r.feed_id for r in rows if r.id == original["id"])
            b_id = next(r.feed_id for r in rows if r.id == copy["id"])
            seed_copy_feed = next(r.feed_id for r in rows if r.guid == "a-seed")
            # Known answers: a seed's URL and text are the seed's; the copy's URL and its
            # text (the same as the original's) are the original's; a GUID counts only in
            # another feed.
            known = store.lookup_known(s, b_id, guids=["https://news.example/strike"],
                                       urls=[seed.source_url, copy["canonical_url"]],
                                       hashes=[text_hash(seed.text), text_hash(STORY)])
            assert known.by_url[seed.source_url].kind == "seed"
            assert known.by_hash[text_hash(seed.text)].seed == seed.name
            assert known.by_url[copy["canonical_url"]].id == original["id"]
            assert known.by_hash[text_hash(STORY)].id == original["id"]
            assert known.by_guid["https://news.example/strike"].id == original["id"]
            assert store.lookup_known(s, a_id, guids=["https://news.example/strike"]) \
                .by_guid["https://news.example/strike"].id == original["id"]  # via the copy
            assert not store.lookup_known(s, seed_copy_feed, guids=["a-seed"]).by_guid  # own

            # One batch of hundreds of keys (several chunks, several statements) answers
            # each key as it is answered alone.
            noise = [f"https://nowhere.example/{i}" for i in range(700)]
            guids = [r.guid for r in rows] + noise
            urls = [r.canonical_url for r in rows if r.canonical_url] + [seed.source_url, *noise]
            hashes = [r.text_hash for r in rows if r.text_hash] + [text_hash(seed.text),
                                                                   *(f"{i:064x}" for i in range(700))]
            for feed_id in sorted({a_id, b_id, seed_copy_feed, 0}):
                batch = store.lookup_known(s, feed_id, guids=guids, urls=urls, hashes=hashes)
                found = 0
                for kind, arg, values in (("guid", "guids", guids), ("url", "urls", urls),
                                          ("hash", "hashes", hashes)):
                    for value in itertools.islice(values, 0, len(values) - 690):
                        one = store.lookup_known(s, feed_id, **{arg: [value]})
                        assert getattr(one, f"by_{kind}").get(value) == \
                            getattr(batch, f"by_{kind}").get(value), (feed_id, kind, value)
                        found += value in getattr(one, f"by_{kind}")
                assert found >= 5  # the comparison is not between two empty answers
    finally:
        engine.dispose()
