"""Stories: the different write-ups of one event grouped as they are stored. Real
labelled articles (an ECB+ sample in tests/fixtures/events); the seeds; copies joining
their original's story; the CLI; two workers storing one new story at once on
PostgreSQL. The quality floor over the sample can fail (copies alone give 0.2)."""

from __future__ import annotations

import multiprocessing
import re
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import LocalServer, Route
from helpers import FIXTURES, Entry, cli, json_lines, rss, write_config

from benchmarks.stories_quality import bcubed, copies_only, load, streamed
from monitor.config import StorySettings

SAMPLE = FIXTURES / "events" / "ecbplus_sample.jsonl"
DOCS = load(SAMPLE)
BY_EVENT: dict[str, list[dict[str, str]]] = defaultdict(list)
for _doc in DOCS:
    BY_EVENT[_doc["event_id"]].append(_doc)


def entry(doc: dict[str, str], guid: str, link: str | None = None) -> Entry:
    title = doc["title"] or doc["text"].split("\n", 1)[0][:80]
    return Entry(title, link, guid=guid, content=doc["text"].replace("\n", "\n\n"),
                 published="Tue, 06 Jan 2026 10:00:00 GMT")


def test_the_quality_floor_on_labelled_articles() -> None:
    gold = [d["event_id"] for d in DOCS]
    order = list(range(len(DOCS)))
    precision, recall, f1 = bcubed(streamed(DOCS, StorySettings().threshold)(order), gold)
    assert precision >= 0.85 and f1 >= 0.75, (precision, recall, f1)
    # What grouping by copies alone gives, for scale: the floor is far above it.
    assert bcubed(copies_only(DOCS, order), gold)[2] < 0.3


@pytest.fixture
def seeded(tmp_path: Path, db_url: str) -> Path:
    config = write_config(tmp_path / "m.toml", db_url=db_url, feeds=[])
    code, out = cli(config, "seeds", "load")
    assert code == 0, out
    return config


def test_seeds_are_stories_000_and_002_share_one(seeded: Path) -> None:
    story = {seed: s["id"] for s in json_lines(seeded, "stories", "list") for seed in s["seeds"]}
    by_number = {name[:3]: sid for name, sid in story.items()}
    assert len(by_number) == 5
    assert by_number["000"] == by_number["002"]  # one statement, two write-ups
    assert by_number["001"] not in (by_number["000"], by_number["004"])  # 2019: another


def test_copies_join_their_originals_story_and_write_ups_of_one_event_share_one(
        server: LocalServer, tmp_path: Path, db_url: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    reid, colts = BY_EVENT["1_ecb"], BY_EVENT["35_ecbplus"]
    server.routes["/a.rss"] = Route(body=rss("A", [entry(reid[0], "a0"), entry(colts[0], "c0")]))
    server.routes["/b.rss"] = Route(body=rss("B", [entry(reid[0], "copy"), entry(reid[1], "a1"),
                                                   entry(colts[1], "c1")]))
    config = write_config(tmp_path / "m.toml", db_url=db_url,
                          feeds=[{"name": "A", "url": server.url("/a.rss")}])
    assert cli(config, "run", "--once")[0] == 0
    write_config(config, db_url=db_url, feeds=[{"name": "A", "url": server.url("/a.rss")},
                                               {"name": "B", "url": server.url("/b.rss")}])
    assert cli(config, "run", "--once")[0] == 0
    items = {i["guid"]: i for i in json_lines(config, "items", "list")}
    assert all(isinstance(i["story"], int) for i in items.values())
    assert items["copy"]["status"] == "duplicate"
    assert items["copy"]["story"] == items["a0"]["story"] == items["a1"]["story"]
    assert items["c0"]["story"] == items["c1"]["story"] != items["a0"]["story"]

    listed = {s["id"]: s for s in json_lines(config, "stories", "list", "--min-outlets", "2")}
    reid_story = listed[items["a0"]["story"]]
    assert reid_story["outlets"] == ["A", "B"] and reid_story["items"] == 3
    code, out = cli(config, "stories", "show", str(reid_story["id"]))
    assert code == 0 and len(re.findall(r"^ +\d+ ", out, re.M)) == 3, out
    assert "[copy of item" in out, out
    # stories check: a third write-up of the event would join that story, and why.
    other = tmp_path / "reid.txt"
    other.write_text(reid[3]["text"], encoding="utf-8")
    code, out = cli(config, "stories", "check", str(other), "--title", reid[3]["title"] or "",
                    "--at", "2026-01-06T12:00+00:00")
    assert code == 0 and f"would join story {reid_story['id']}" in out, out
    assert re.search(r"shared: .*reid", out), out
    capsys.readouterr()
    assert cli(config, "stories", "show", "999999")[0] == 2
    assert "no story has the id 999999" in capsys.readouterr().err


def _store_one(db_url: str, title: str, text: str, barrier: Any, hold: float) -> int:
    """One worker's transaction storing a new article's story: its heaviest terms locked
    (as the pipeline locks them with the dedup keys), then joined, then held open a
    while, so that another worker's transaction overlaps it."""
    from monitor import db, store
    from monitor.stories import signals
    from monitor.stories.joining import Stories, lock_terms

    engine = db.make_engine(db_url)
    try:
        t = signals.terms(title, text)
        barrier.wait(30)
        with db.session_factory(engine).begin() as s:
            store.lock_story_keys(s, lock_terms(t))
            now = datetime.now(UTC)
            joined = Stories(StorySettings()).join(s, t, title=title, language=None, at=now,
                                                   now=now)
            time.sleep(hold)
        return joined.story_id
    finally:
        engine.dispose()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_workers_storing_one_new_story_at_once_make_one(tmp_path: Path,
                                                            db_url: str) -> None:
    config = write_config(tmp_path / "m.toml", db_url=db_url, feeds=[])
    assert cli(config, "db", "upgrade")[0] == 0
    a, b = BY_EVENT["29_ecbplus"][:2]  # two write-ups of one event (one story, any order)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Manager().Barrier(2)
    with ctx.Pool(2) as pool:
        first = pool.apply_async(_store_one, (db_url, a["title"], a["text"], barrier, 1.0))
        second = pool.apply_async(_store_one, (db_url, b["title"], b["text"], barrier, 1.0))
        stories = {first.get(60), second.get(60)}
    assert len(stories) == 1, stories  # without the term locks: two stories (checked)
