"""Row leases on feeds, entries and digests, on SQLite and PostgreSQL: each due feed,
each due entry and each pending digest is claimed by one worker at a time, and a dead
worker's claims lapse."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers import Story, store_stories, write_config
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session, sessionmaker

from monitor import db, store
from monitor.config import FeedSettings, load_settings
from monitor.digest import delivery
from monitor.models import Feed

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = db.make_engine(db_url)
    db.upgrade(engine)
    try:
        yield db.session_factory(engine)
    finally:
        engine.dispose()


def add_feeds(sessions: sessionmaker[Session], n: int) -> None:
    with sessions.begin() as s:
        store.sync_feeds(s, [FeedSettings(f"f{i}", f"http://127.0.0.1/{i}.rss", 60)
                             for i in range(n)], NOW)


def claim(sessions: sessionmaker[Session], owner: str, now: datetime,
          limit: int = 100) -> list[store.FeedState]:
    with sessions.begin() as s:
        return store.claim_feeds(s, owner, now, now + LEASE, limit)


def test_a_claimed_feed_is_nobody_elses_until_recorded_or_lapsed(
        sessions: sessionmaker[Session]) -> None:
    add_feeds(sessions, 3)
    a = claim(sessions, "a", NOW, limit=2)
    assert [f.name for f in a] == ["f0", "f1"]
    assert [f.name for f in claim(sessions, "b", NOW)] == ["f2"]
    assert claim(sessions, "c", NOW) == []  # all held

    # Recording the poll releases the lease and schedules the next one.
    with sessions.begin() as s:
        assert store.record_feed_success(s, a[0].id, now=NOW, status=200, owner="a",
                                         next_poll_at=NOW + timedelta(seconds=60),
                                         poll_interval=60, etag=None, last_modified=None)
        # Not the holder: nothing recorded.
        assert not store.record_feed_failure(s, a[1].id, now=NOW, status=500, error="x",
                                             next_poll_at=NOW, owner="b")
    assert claim(sessions, "c", NOW + timedelta(seconds=30)) == []  # f0 not due yet
    # "a" died holding f1: its lease lapses and another worker takes the feed.
    later = NOW + LEASE + timedelta(seconds=1)
    assert {f.name for f in claim(sessions, "c", later)} == {"f0", "f1", "f2"}


def test_renewal_keeps_a_lease_and_release_gives_it_back(sessions: sessionmaker[Session]) -> None:
    add_feeds(sessions, 2)
    claim(sessions, "a", NOW)
    with sessions.begin() as s:
        assert store.renew_leases(s, "a", NOW + 3 * LEASE) == 2
    assert claim(sessions, "b", NOW + 2 * LEASE) == []  # renewed: still a's
    with sessions.begin() as s:
        assert store.release_leases(s, "a") == (2, 0, 0)
    assert len(claim(sessions, "b", NOW)) == 2  # released: due again, at once


def test_backlog_counts_due_polling_and_overdue(sessions: sessionmaker[Session]) -> None:
    add_feeds(sessions, 4)
    [f0] = claim(sessions, "a", NOW, limit=1)
    with sessions.begin() as s:
        store.record_feed_success(s, f0.id, now=NOW, status=200, owner="a", poll_interval=60,
                                  next_poll_at=NOW + timedelta(seconds=60), etag=None,
                                  last_modified=None)
    # f1 being polled (never-polled feeds come first), under a lease until +120s
    assert [f.name for f in claim(sessions, "a", NOW + LEASE, limit=1)] == ["f1"]
    with sessions() as s:
        b = store.backlog(s, NOW + timedelta(seconds=90))
    assert (b.enabled, b.due, b.polling) == (4, 3, 1)  # f0 (due again), f2, f3; f1
    assert b.oldest_overdue_seconds == 30.0  # f0, due at +60 (never-polled feeds have no time)


def test_concurrent_claims_never_overlap(sessions: sessionmaker[Session]) -> None:
    """Eight threads, each its own connection, claim five at a time until nothing is
    left: on PostgreSQL with SKIP LOCKED, on SQLite one writer at a time."""
    add_feeds(sessions, 120)
    got: dict[str, list[int]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def worker(owner: str) -> None:
        try:
            start.wait()
            mine: list[int] = []
            while batch := claim(sessions, owner, NOW, limit=5):
                mine += [f.id for f in batch]
            got[owner] = mine
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    claimed = [i for ids in got.values() for i in ids]
    assert len(claimed) == len(set(claimed)) == 120


def test_each_pending_digest_is_claimed_by_one_worker(tmp_path: Path, db_url: str) -> None:
    config = write_config(tmp_path / "m.toml", db_url=db_url,
                          feeds=[{"name": "Desk", "url": "http://127.0.0.1/desk.rss"}],
                          rules=[{"name": "All", "query": "Maduro",
                                  "recipients": [f"r{i}@example.org" for i in range(6)]}])
    store_stories(config, [Story("s", "Desk", "Maduro speaks", "https://x.example/s",
                                 "Maduro spoke today about the talks. " * 20)], NOW)
    settings = load_settings(config)
    engine = db.make_engine(settings.database.url)
    sessions = db.session_factory(engine)
    try:
        assert len(delivery.compose(sessions, settings, NOW, scheduled=False)) == 6
        with sessions.begin() as s:
            a = store.claim_digests(s, "a", NOW, NOW, NOW + LEASE)
        assert len(a) == 6
        with sessions.begin() as s:
            assert store.claim_digests(s, "b", NOW, NOW, NOW + LEASE) == []
            assert len(store.claim_digests(s, "a", NOW, NOW, NOW + LEASE)) == 6  # its own
        with sessions.begin() as s:
            store.mark_digest_sent(s, a[0].id, NOW)
            assert store.release_leases(s, "a") == (0, 0, 5)
            assert store.digest_counts(s) == store.DigestCounts(5, 0, NOW)  # pending, failed, last sent
        with sessions.begin() as s:
            b = store.claim_digests(s, "b", NOW, NOW, NOW + LEASE)
        assert [d.id for d in b] == [d.id for d in a[1:]]  # the sent one is done
    finally:
        engine.dispose()


def test_workers_compose_a_slot_once(tmp_path: Path, db_url: str) -> None:
    """Four workers reach the slot at the same moment: the slot's row lock lets one
    compose; the others find the slot advanced. With send_empty every recipient gets
    a digest, so a second composition would show as a second digest."""
    config = write_config(tmp_path / "m.toml", db_url=db_url, feeds=[],
                          rules=[{"name": "All", "query": "Maduro",
                                  "recipients": ["a@example.org", "b@example.org"]}],
                          digest={"send_empty": True, "schedule": "0 7 * * *",
                                  "timezone": "UTC"})
    store_stories(config, [], NOW)
    settings = load_settings(config)
    engine = db.make_engine(settings.database.url)
    sessions = db.session_factory(engine)
    try:
        assert delivery.compose(sessions, settings, NOW) == []  # sets the first slot
        slot = NOW.replace(hour=7) + timedelta(days=1)
        barrier = threading.Barrier(4)
        results: list[int] = []
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                barrier.wait()
                results.append(len(delivery.compose(sessions, settings, slot)))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors
        assert sorted(results) == [0, 0, 0, 2]
        with sessions() as s:
            assert sorted(d.recipient for d in store.list_digests(s)) == [
                "a@example.org", "b@example.org"]
    finally:
        engine.dispose()


def record(sessions: sessionmaker[Session], feed_id: int, guids: list[str]) -> None:
    with sessions.begin() as s:
        store.record_entries(s, feed_id, [
            store.WaitingEntry(g, f"http://127.0.0.1/{g}", g, None, None, None, None, None, 0,
                               NOW, None) for g in guids], now=NOW)


def claim_entries(sessions: sessionmaker[Session], owner: str, now: datetime, limit: int = 100,
                  feed_id: int | None = None) -> list[str]:
    with sessions.begin() as s:
        return sorted(e.guid for _, e in store.claim_entries(s, owner, now, now + LEASE, limit,
                                                              feed_id=feed_id))


def test_an_entry_is_claimed_by_one_worker_until_it_waits_is_released_or_lapses(
        sessions: sessionmaker[Session]) -> None:
    add_feeds(sessions, 2)
    with sessions() as s:
        f0, f1 = (f.id for f in sorted(store.claim_feeds(s, "x", NOW, NOW, 2, everything=True),
                                       key=lambda f: f.name))
    record(sessions, f0, ["a", "b", "c"])
    record(sessions, f1, ["d"])
    assert claim_entries(sessions, "poller", NOW, limit=2, feed_id=f0) == ["a", "b"]
    assert claim_entries(sessions, "other", NOW) == ["c", "d"]  # any feed's, not held ones
    assert claim_entries(sessions, "third", NOW) == []
    # "a" failed for a reason that may pass: it waits, unleased, until its retry is due.
    with sessions.begin() as s:
        store.wait_entry(s, f0, store.WaitingEntry("a", None, None, None, None, None, None,
                                                   None, 1, NOW + timedelta(seconds=30),
                                                   "HTTP 503"), last_status=503, now=NOW)
        assert store.release_entry_leases(s, "other", [(f1, "d")]) == 1
    assert claim_entries(sessions, "third", NOW) == ["d"]
    assert claim_entries(sessions, "third", NOW + timedelta(seconds=31)) == ["a"]
    # The heartbeats keep "poller"'s lease on "b" and "third"'s on "a" and "d"; "other"
    # died holding "c".
    with sessions.begin() as s:
        store.renew_leases(s, "poller", NOW + 3 * LEASE)
        store.renew_leases(s, "third", NOW + 3 * LEASE)
        assert store.next_entry_due_at(s, NOW + 2 * LEASE) == NOW  # "c", lapsed
    assert claim_entries(sessions, "fourth", NOW + 2 * LEASE) == ["c"]
    with sessions.begin() as s:
        assert store.release_leases(s, "poller") == (0, 1, 0)
    assert claim_entries(sessions, "fourth", NOW + 2 * LEASE) == ["b"]


def test_a_sync_that_changes_nothing_loads_no_row_and_every_difference_is_found(
        sessions: sessionmaker[Session]) -> None:
    """sync_feeds reads plain columns first and loads rows only to change them: the same
    config again is no change; any difference (an interval, a name, a feed gone from the
    config, a row enabled behind its back) is still found."""
    feeds = [FeedSettings(f"f{i}", f"http://127.0.0.1/{i}.rss", 60) for i in range(3)]
    with sessions.begin() as s:
        assert store.sync_feeds(s, feeds, NOW).added == ["f0", "f1", "f2"]
    loaded: list[str] = []

    def on_load(feed: Feed, _context: object) -> None:
        loaded.append(feed.name)

    event.listen(Feed, "load", on_load)
    try:
        with sessions.begin() as s:
            assert store.sync_feeds(s, feeds, NOW) == store.SyncResult()
        assert loaded == []  # not one Feed row loaded into the session
        changed = [feeds[0], FeedSettings("f1", feeds[1].url, 120),
                   FeedSettings("F2", feeds[2].url, 60)]
        with sessions.begin() as s:
            result = store.sync_feeds(s, changed, NOW)
        assert sorted(loaded) == ["f0", "f1", "f2"]  # a change loads the rows to change
    finally:
        event.remove(Feed, "load", on_load)
    assert sorted(result.changed) == ["F2", "f1"]
    with sessions.begin() as s:
        assert store.sync_feeds(s, changed[:2], NOW).disabled == ["F2"]
    with sessions.begin() as s:  # enabled again behind the config's back
        s.execute(update(Feed).where(Feed.name == "F2").values(enabled=True))
    with sessions.begin() as s:
        assert store.sync_feeds(s, changed[:2], NOW).disabled == ["F2"]
    with sessions() as s:
        assert {f.name: (f.enabled, f.interval_seconds) for f in s.scalars(select(Feed))} == \
            {"f0": (True, 60), "f1": (True, 120), "F2": (False, 60)}


def test_work_waits_while_a_feed_was_never_parsed_or_an_entry_waits(
        sessions: sessionmaker[Session]) -> None:
    """What makes a start launch the extraction workers at once (store.work_waiting)."""
    add_feeds(sessions, 2)
    with sessions() as s:
        assert store.work_waiting(s)  # never parsed: their first polls list a backlog
    with sessions.begin() as s:
        s.execute(update(Feed).values(body_hash="0" * 64))
    with sessions() as s:
        assert not store.work_waiting(s)
    with sessions.begin() as s:
        feed = s.scalars(select(Feed)).first()
        assert feed is not None
        store.record_entries(s, feed.id, [store.WaitingEntry(
            "g1", "http://127.0.0.1/a", "A", None, None, None, None, None, 0, NOW, None)],
            now=NOW)
    with sessions() as s:
        assert store.work_waiting(s)
