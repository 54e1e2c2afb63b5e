"""Three `monitor run` workers sharing the local PostgreSQL, polling 200 feeds on a
local HTTP server over several intervals: every feed is fetched once per interval,
with no double fetches and no gaps; every recipient gets exactly one digest; and
when one worker is killed with SIGKILL mid-poll, the others take its feeds over as
soon as its leases lapse."""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import LocalServer, Route
from helpers import Daemon, Entry, cli, json_lines, rss, write_config
from mailserver import MailServer
from sqlalchemy import func, select, union

from monitor import db, store
from monitor.config import load_settings
from monitor.digest.delivery import SCHEDULE_KEY
from monitor.models import Feed, Item, Seed, Story

FEEDS = 200
SLOW = 30  # feeds 0..29 take 2 s to answer, so a worker is often mid-poll
INTERVAL = 30.0
JITTER = 0.1
LEASE = 6.0
RUN_FOR = 100.0  # seconds: the first round and three more intervals
STORIES = {  # feed index -> (title, text): the only entries that match a rule
    7: ("Maduro meets envoys", "Maduro met the envoys in Caracas on Monday. "),
    70: ("Havana talks", "Officials in Cuba discussed the grain deal on Tuesday. "),
    170: ("Maduro and Cuba", "Maduro flew to Cuba for a summit with regional leaders. "),
}


def feed_body(i: int) -> bytes:
    title, text = STORIES.get(i, (f"Bulletin {i}", f"Weather bulletin number {i} for the "
                                                     f"region, issued on schedule. "))
    return rss(f"Feed {i}", [Entry(title, None, guid=f"feed{i}-1", content=text * 12)])


@pytest.mark.timeout(400)
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_three_workers_share_200_feeds_and_survive_a_kill(
        server: LocalServer, mail: MailServer, db_url: str, tmp_path: Path) -> None:
    for i in range(FEEDS):
        server.routes[f"/feed/{i}.rss"] = Route(body=feed_body(i), etag=f'"f{i}"',
                                                delay=2.0 if i < SLOW else 0.0)
    config = write_config(
        tmp_path / "m.toml", db_url=db_url,
        feeds=[{"name": f"Feed {i}", "url": server.url(f"/feed/{i}.rss"), "interval": "30s",
                "max_interval": "30s"} for i in range(FEEDS)],
        rules=[{"name": "Maduro", "query": "Maduro",
                "recipients": ["desk@example.org", "analyst@example.org"]},
               {"name": "Cuba", "query": "Cuba", "recipients": ["cuba@example.org"]}],
        digest={"schedule": "0 0 1 1 *", "timezone": "UTC"},
        smtp={"host": "127.0.0.1", "port": mail.port},
        fetch={"per_host": 16, "concurrency": 16},
        poll={"jitter": JITTER}, daemon={"lease": f"{LEASE:.0f}s"})
    assert cli(config, "db", "upgrade")[0] == 0
    settings = load_settings(config)
    engine = db.make_engine(settings.database.url)
    sessions = db.session_factory(engine)
    # One digest slot, 25 s in: after the first round has stored the stories.
    with sessions.begin() as s:
        store.set_meta(s, SCHEDULE_KEY, json.dumps({
            "schedule": "0 0 1 1 *", "timezone": "UTC",
            "next_at": (datetime.now(UTC) + timedelta(seconds=25)).isoformat()}))

    start = time.monotonic()
    workers = [Daemon(config, log=tmp_path / f"w{n}.log") for n in range(3)]
    held: list[str] = []
    chosen: list[Daemon] = []
    try:
        # After the first interval, kill with SIGKILL a worker that holds leases
        # (whichever: the workers race for due feeds, and one may hold none for a while).
        def holds(worker: Daemon) -> bool:
            with sessions() as s:
                held[:] = s.scalars(select(Feed.name).where(
                    Feed.lease_owner.like(f"%:{worker.pid}:%"))).all()
            return bool(held)

        def holds_slow(worker: Daemon) -> bool:
            # A slow feed takes 2 s to answer: still held when the kill comes a moment
            # later (a fast one may be recorded, and its lease released, in between).
            return holds(worker) and any(int(name.split()[1]) < SLOW for name in held)

        def pick() -> bool:
            if time.monotonic() - start > 35:
                chosen[:] = [w for w in workers if holds_slow(w)][:1]
            return bool(chosen)

        assert workers[0].wait_for(pick, 60), [w.log() for w in workers]
        victim = chosen[0]
        survivors = [w for w in workers if w is not victim]
        os.kill(victim.pid, signal.SIGKILL)
        killed = time.monotonic()
        victim.wait(30)
        holds(victim)  # what it held when it died (it may have claimed more meanwhile)
        assert all(w.proc.poll() is None for w in survivors)
        assert survivors[0].wait_for(
            lambda: time.monotonic() - start > RUN_FOR and len(mail.received) >= 3,
            RUN_FOR + 30)
        end = time.monotonic()
    finally:
        codes = [w.stop() for w in workers if w not in chosen]
        for w in chosen:
            w.kill()
        engine.dispose()
    assert codes == [0, 0], [w.log() for w in survivors]

    hits: dict[int, list[float]] = defaultdict(list)
    for h in server.hits("/feed/"):
        hits[int(h.path.split("/")[2].split(".")[0])].append(h.at)
    taken_over = {int(name.split()[1]) for name in held}
    assert len(hits) == FEEDS
    # Hits are timed when they reach the server, polls are scheduled from when they
    # began: up to a second apart when requests queue for a connection; and a due feed
    # waits for the dispatcher's next claim. Alone the longest gap is 34.7-35.0 s (this
    # code and the code before issue 22 alike); under the suite's load (2 cores, 4 test
    # processes) once 36.04 s. Still far from a missed round (60 s) or a double fetch.
    low, high = INTERVAL * (1 - JITTER) - 1.5, INTERVAL * (1 + JITTER) + 5.0
    # The first round reaches every feed before the first poll's next one can come due
    # (an interval, less its jitter): no feed waits a round. Counted from the first
    # poll, not the launch: starting three interpreters takes what the machine gives.
    # Alone the first poll comes 3.9 s after the launch and the round spans 6.4 s;
    # under the suite's load (2 cores, 4 test processes) the round spanned 14.4 s once.
    first = min(min(times) for times in hits.values())
    assert first - start < 30, "no worker polled"
    for i in range(FEEDS):
        times = sorted(hits[i])
        assert times[0] - first < INTERVAL * (1 - JITTER), (i, "first poll late",
                                                           times[0] - first)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        # The gap around the kill may run late by up to a lease lapse and the idle tick:
        # a poll the victim had claimed but not yet sent waits for its lease to lapse,
        # and a claim it was making when it died is rolled back and picked up at the
        # next look. Every other gap keeps the strict bounds.
        spanning = [g for a, g in zip(times, gaps, strict=False) if a < killed < a + g]
        gaps = [g for a, g in zip(times, gaps, strict=False) if not a < killed < a + g]
        assert all(g <= high + LEASE + 5 for g in spanning), (i, spanning)
        if i in taken_over:
            # The poll the victim had started never finished: another worker fetches the
            # feed again once the lease lapses (at most LEASE, plus the 5 s idle tick).
            retry = [t for t in times if killed < t]
            assert retry and retry[0] - killed <= LEASE + 5 + 1, (i, retry, killed)
        else:
            assert all(low <= g for g in spanning), (i, spanning)
        # No double fetch (a gap shorter than the interval) and no gap (a longer one).
        assert all(low <= g <= high for g in gaps), (i, gaps)
        assert end - times[-1] <= high, (i, "stopped being polled")
        assert len(times) >= 3  # over several intervals
    # The survivors did take the dead worker's feeds.
    assert taken_over and all(any(t > killed for t in hits[i]) for i in taken_over)
    all_gaps = [b - a for i in range(FEEDS) if i not in taken_over
                for a, b in itertools.pairwise(sorted(hits[i]))]
    takeover = [min(t for t in hits[i] if t > killed) - killed for i in taken_over]
    print(f"\nscale-out: {sum(map(len, hits.values()))} fetches of {FEEDS} feeds in "
          f"{end - start:.0f}s; gaps {min(all_gaps):.1f}-{max(all_gaps):.1f}s "
          f"(interval {INTERVAL:.0f}s ±{JITTER:.0%}); {len(taken_over)} feeds held by the "
          f"killed worker, taken over after {min(takeover):.1f}-{max(takeover):.1f}s "
          f"(lease {LEASE:.0f}s)")

    # Each recipient got exactly one digest, and every story is in one.
    by = defaultdict(list)
    for received in mail.received:
        for rcpt in received.recipients:
            by[rcpt].append(received.message["Subject"])
    assert {r: len(s) for r, s in by.items()} == {
        "desk@example.org": 1, "analyst@example.org": 1, "cuba@example.org": 1}
    assert by["desk@example.org"] == ["2 new stories: Maduro (2)"]
    assert by["cuba@example.org"] == ["2 new stories: Cuba (2)"]
    assert cli(config, "digest", "list", "--pending")[1] == "no pending digests\n"
    # Every entry stored once; the workers are listed, the dead one as lost later on.
    assert len(json_lines(config, "items", "list")) == FEEDS
    # The three gave the seeds their stories at once: every story has an article or a
    # seed in it (a worker that gave a seed a story another had just given leaves one
    # with none), and the two write-ups of one statement share theirs.
    engine = db.make_engine(settings.database.url)
    try:
        with db.session_factory(engine)() as s:
            members = union(select(Item.story_id), select(Seed.story_id)).subquery()
            empty = s.scalar(select(func.count()).select_from(Story).where(
                Story.id.not_in(select(members.c.story_id).where(
                    members.c.story_id.is_not(None)))))
            seeds = dict(s.execute(select(Seed.name, Seed.story_id)).tuples().all())
    finally:
        engine.dispose()
    assert empty == 0
    first, second = sorted(name for name in seeds if name.startswith(("000", "002")))
    assert seeds[first] == seeds[second] is not None
    status = json.loads(cli(config, "status", "--json")[1])
    assert len(status["workers"]) == 3
    assert sorted(w["state"] for w in status["workers"]) in (
        ["running", "stopped", "stopped"], ["lost", "stopped", "stopped"])
    assert status["backlog"]["polling"] == 0  # the survivors released their leases
