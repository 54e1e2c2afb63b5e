"""Several workers on one PostgreSQL database store one story once: three `monitor run`
processes, 50 stories each published on two feeds, the feeds falling due at the same
instant so that the workers poll and store them at the same time. The result must be
what one worker gives: exactly one original per story, its copy a duplicate of it,
and one alert per rule and story."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import LocalServer, Route
from helpers import Daemon, Entry, cli, rss, write_config
from sqlalchemy import func, select, update

from monitor import db, store
from monitor.config import load_settings
from monitor.models import Alert, Feed, Item

STORIES = 50
FEEDS = 6  # story i is on feeds i % 6 and (i + 1) % 6: every worker shares stories


def story_text(i: int) -> str:
    words = " ".join(f"w{i}x{j}" for j in range(70))
    return (f"Maduro answered the question number {i} at the assembly in Caracas. "
            f"{words}. The statement ends here.")


def copy_text(i: int) -> str:
    # Even stories: the same text. Odd ones: another outlet's edit, a near-duplicate.
    if i % 2 == 0:
        return story_text(i)
    return story_text(i) + " Reporting by the wire service; more to follow later today."


@pytest.mark.timeout(240)
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_three_workers_store_each_story_once(server: LocalServer, db_url: str,
                                             tmp_path: Path) -> None:
    entries: dict[int, list[Entry]] = {f: [] for f in range(FEEDS)}
    for i in range(STORIES):
        first, second = i % FEEDS, (i + 1) % FEEDS
        entries[first].append(Entry(f"Story {i}", None, guid=f"f{first}-s{i}",
                                    content=story_text(i)))
        entries[second].append(Entry(f"Story {i} (copy)", None, guid=f"f{second}-s{i}",
                                     content=copy_text(i)))
    for f in range(FEEDS):
        server.routes[f"/f{f}.rss"] = Route(body=rss(f"Feed {f}", entries[f]), delay=0.3,
                                            content_type="application/rss+xml")
    config = write_config(
        tmp_path / "m.toml", db_url=db_url,
        feeds=[{"name": f"Feed {f}", "url": server.url(f"/f{f}.rss"), "interval": "30m"}
               for f in range(FEEDS)],
        rules=[{"name": "Maduro", "query": "Maduro", "recipients": ["desk@example.org"]}],
        fetch={"concurrency": 1, "per_host": 8}, poll={"jitter": 0},
        daemon={"lease": "60s"}, extract={"workers": 1})
    assert cli(config, "seeds", "load")[0] == 0
    settings = load_settings(config)
    engine = db.make_engine(settings.database.url)
    sessions = db.session_factory(engine)
    due = datetime.now(UTC) + timedelta(seconds=8)  # after all three have started
    with sessions.begin() as s:
        store.sync_feeds(s, settings.feeds, datetime.now(UTC))
        s.execute(update(Feed).values(next_poll_at=due))

    workers = [Daemon(config, log=tmp_path / f"w{n}.log") for n in range(3)]

    def stored() -> int:
        with sessions() as s:
            return s.scalar(select(func.count()).select_from(Item)) or 0

    try:
        assert workers[0].wait_for(lambda: stored() == 2 * STORIES, 120), \
            [w.log() for w in workers]
    finally:
        codes = [w.stop() for w in workers]
    assert codes == [0, 0, 0], [w.log() for w in workers]
    logs = [w.log() for w in workers]
    # The six feeds went to at least two workers (each claims at most two at a time).
    assert sum(": polling" in log for log in logs) >= 2, logs

    with sessions() as s:
        rows = s.execute(select(Item.id, Item.guid, Item.status, Item.duplicate_of_item_id,
                                Item.dedup_method)).all()
        alerts = s.execute(select(Alert.item_id)).scalars().all()
    engine.dispose()
    story_of = {item_id: int(guid.split("-s")[1]) for item_id, guid, *_ in rows}
    originals = Counter(story_of[i] for i, _, status, _, _ in rows if status == "new")
    assert originals == Counter(range(STORIES)), logs
    original_of = {story_of[i]: i for i, _, status, _, _ in rows if status == "new"}
    for item_id, _, status, dup_of, method in rows:
        if status == "duplicate":
            assert dup_of == original_of[story_of[item_id]], (item_id, method)
            assert method == ("exact" if story_of[item_id] % 2 == 0 else "near")
    assert sorted(story_of[i] for i in alerts) == list(range(STORIES))


def test_the_upgrade_resolves_originals_stored_twice_before(db_url: str, tmp_path: Path) -> None:
    """A database where the race happened: the upgrade keeps the first original of a
    story, makes the later one its duplicate, and points the later one's copies at it."""
    from sqlalchemy import MetaData, Table, insert

    from alembic import command

    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            cfg = db.alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "7b1e2c9d0a31")  # the revision before the unique indexes
            conn.commit()
        now = datetime.now(UTC)
        with engine.begin() as c:
            c.execute(insert(Feed).values(id=1, url="http://x/f", name="F", enabled=True,
                                          interval_seconds=900, consecutive_failures=0,
                                          created_at=now))
            common = {"feed_id": 1, "created_at": now, "text": "t", "text_source": "page",
                      "canonical_url": None, "text_hash": None, "dedup_method": None,
                      "duplicate_of_item_id": None, "similarity": None}
            # The items table as it was at that revision (the model has columns since).
            items = Table("items", MetaData(), autoload_with=c)
            c.execute(insert(items), [
                {**common, "id": 1, "guid": "a", "canonical_url": "http://x/1", "status": "new"},
                {**common, "id": 2, "guid": "b", "canonical_url": "http://x/1", "status": "new"},
                {**common, "id": 3, "guid": "c", "status": "duplicate", "dedup_method": "near",
                 "duplicate_of_item_id": 2, "similarity": 0.9},
                {**common, "id": 4, "guid": "d", "text_hash": "h" * 64, "status": "new"},
                {**common, "id": 5, "guid": "e", "text_hash": "h" * 64, "status": "new"}])
        db.upgrade(engine)
        with engine.connect() as c:
            got = c.execute(select(Item.id, Item.status, Item.duplicate_of_item_id,
                                   Item.dedup_method).order_by(Item.id)).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in got] == [(1, "new", None, None), (2, "duplicate", 1, "url"),
                                       (3, "duplicate", 1, "near"), (4, "new", None, None),
                                       (5, "duplicate", 4, "exact")]
