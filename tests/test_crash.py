"""Crash safety: `kill -9` at random moments during `monitor run --once` and during
`monitor digest send`, several times over, then one run to completion. The final state
equals a clean run's: no entry lost, no item or alert stored twice, every digest sent
(at most once more per crash that struck between the SMTP server taking it and the
database recording it, with the same Message-ID). On SQLite and on PostgreSQL.

The kill moments come from a seeded random generator; the assertion messages name the
seed, and MONITOR_CRASH_SEED=<seed> makes the same choices again."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import PG_ADMIN_URL, LocalServer, Route
from helpers import ROOT, Entry, Page, page_html, pages, rss, store_stories, write_config
from mailserver import MailServer
from sqlalchemy import Engine, func, inspect, or_, select, text, update
from test_digest_delivery import (
    DELEGATION,
    DELEGATION_COPY,
    FEEDS,
    HAVANA,
    KREMLIN,
    LATER,
    LEADERS,
    RUSSIA,
    STORED_AT,
)

from monitor import db
from monitor.config import load_settings
from monitor.digest import delivery
from monitor.models import Alert, Digest, DigestAlert, Feed, Item, Rule, Seed

SEED = int(os.environ.get("MONITOR_CRASH_SEED") or random.SystemRandom().randrange(10**6))
RUN_KILLS = 3  # random kills of `run --once` per database, after one in the migration
SEND_KILLS = 4  # kills of `digest send` per database, before the send to completion
LEASE = 5  # [daemon] lease, seconds: the shortest the config allows

SEED_URL = ("https://www.themoscowtimes.com/2026/01/06/"
            "russia-backs-venezuelas-interim-leader-after-us-ousts-maduro-a91620")
BRIEF = ("Brief: officials in Caracas said Maduro's former ministers would appear before "
         "prosecutors next week, according to a statement read on state television. ") * 4
RULES = [
    {"name": "WeWork", "query": "WeWork", "recipients": ["desk@example.org"]},
    {"name": "Cars", "query": '"electric vehicles" OR Volkswagen',
     "recipients": ["desk@example.org", "analyst@example.org"]},
    {"name": "Delhi", "query": "Delhi", "recipients": ["editor@example.org"]},
    {"name": "Russia", "query": "Russia OR Russian", "recipients": ["analyst@example.org"]},
    {"name": "Venezuela leadership", "query": 'Maduro OR "Delcy Rodriguez"',
     "recipients": ["desk@example.org", "chief@example.org"]},
]


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    """One generator per test, seeded from SEED and the test's id."""
    return random.Random(f"{SEED}:{request.node.name}")


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = db.make_engine(db_url)
    try:
        yield engine
    finally:
        engine.dispose()


# --- processes -----------------------------------------------------------------------------

def start(config: Path, *args: str, log: Path) -> subprocess.Popen[bytes]:
    """``monitor --config CONFIG ARGS`` as a process of its own session (so that its
    worker processes can be found and reaped after a kill)."""
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "monitor", "--config", str(config), *args],
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})


def finish(config: Path, *args: str, log: Path, mark: str = "",
           timeout: float = 60) -> tuple[float, float]:
    """Run the command to completion; it must succeed. Returns how long it took, and
    how long until ``mark`` first showed in its log (its start-up)."""
    began = time.monotonic()
    size = log.stat().st_size if log.exists() else 0
    proc = start(config, *args, log=log)
    marked = 0.0
    try:
        while proc.poll() is None and time.monotonic() < began + timeout:
            if mark and not marked and mark.encode() in log.read_bytes()[size:]:
                marked = time.monotonic() - began
            time.sleep(0.02)
        code = proc.wait(1)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, f"seed {SEED}: {' '.join(args)} exited {code}:\n{log.read_text()}"
    return time.monotonic() - began, marked


@dataclass(frozen=True)
class Kill:
    after: float  # seconds after the start (after ``ready()``, when given)
    label: str = ""  # why then
    running: bool = True  # whether the process was still running

    def __repr__(self) -> str:
        return f"{self.label}{self.after:.3f}s{'' if self.running else ' (had ended)'}"


def kill(config: Path, *args: str, at: float, log: Path,
         ready: Callable[[], bool] | None = None, early: Callable[[], bool] | None = None,
         label: str = "") -> Kill:
    """Start the command and SIGKILL it (the process alone, as ``kill -9 PID`` does)
    ``at`` seconds later, or sooner once ``early()`` holds; with ``ready``, count from
    when ``ready()`` first holds. Then see that nothing it started outlives it."""
    proc = start(config, *args, log=log)
    started = time.monotonic()
    began = started if ready is None else None
    while (code := proc.poll()) is None:
        now = time.monotonic()
        if began is None and ready is not None and (ready() or now > started + 30):
            began = now
        if began is not None and (now - began >= at or (early is not None and early())):
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            break
        time.sleep(0.001 if began is None else 0.005)
    done = Kill(time.monotonic() - (began or started), label, code is None)
    with log.open("a") as f:
        f.write(f"---- SIGKILL at {done!r}\n")
    with_children_gone(proc.pid)
    return done


def with_children_gone(pgid: int, timeout: float = 10) -> None:
    """Wait until the killed process's worker processes have exited (they notice
    their parent is gone): fail, killing them, if they linger."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive_in_group(pgid):
            return
        time.sleep(0.05)
    left = alive_in_group(pgid)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    pytest.fail(f"seed {SEED}: processes {left} outlived the killed process {pgid} by "
                f"{timeout}s")


def alive_in_group(pgid: int) -> list[int]:
    """Processes of the session ``pgid`` (the killed process's: it was started in a
    session of its own, and its workers leave its process group but not its session)
    that still run (not zombies: an orphan waits for whoever adopted it to reap it)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[3]) == pgid:
            pids.append(int(stat.parent.name))
    return pids


def claims_held(engine: Engine) -> bool:
    """Whether a running process holds feeds or digests (the killed ones' claims were
    made to lapse)."""
    if not migrated(engine):
        return False
    now = datetime.now(UTC)
    with engine.connect() as c:
        return any(c.scalar(select(func.count()).where(t.lease_until > now))
                   for t in (Feed, Digest))


def first_table(engine: Engine) -> bool:
    """Whether the first table of the first revision shows (a quick look: made every
    millisecond)."""
    catalog = ("sqlite_master WHERE name = 'feeds'" if engine.dialect.name == "sqlite"
               else "pg_tables WHERE tablename = 'feeds'")
    with engine.connect() as c:
        return c.execute(text(f"SELECT 1 FROM {catalog}")).first() is not None


def migrated(engine: Engine) -> bool:
    """Whether a killed process got as far as creating the schema."""
    return inspect(engine).has_table("digests")


def lapse_leases(engine: Engine) -> None:
    """What waiting LEASE seconds would do: the claims of the killed process lapse."""
    if not migrated(engine):
        return
    past = datetime.now(UTC) - timedelta(seconds=1)
    with engine.begin() as c:
        for table in (Feed, Digest):
            c.execute(update(table).where(table.lease_until.is_not(None))
                      .values(lease_until=past))


def wait_for_leases(engine: Engine) -> float:
    """Sleep until every claim in the database has lapsed; returns how long."""
    if not migrated(engine):
        return 0.0
    with engine.connect() as c:
        until = max((u for t in (Feed, Digest)
                     if (u := c.scalar(select(func.max(t.lease_until)))) is not None),
                    default=None)
    if until is None:
        return 0.0
    if until.tzinfo is None:
        until = until.replace(tzinfo=UTC)
    pause = max(0.0, (until - datetime.now(UTC)).total_seconds() + 0.2)
    time.sleep(pause)
    return pause


# --- run --once ----------------------------------------------------------------------------

def serve_feeds(server: LocalServer) -> list[dict[str, object]]:
    """Four feeds over eight real pages, slow enough for a run to last a few seconds,
    with copies across feeds: the same page under other tracking parameters, the same
    global GUID, the same text without a link, and a seed's article."""
    def link(page: Page, source: str) -> str:
        return server.url(f"/articles/{page.key[:16]}.html?utm_source={source}")

    chosen = pages()[:8]
    for i, page in enumerate(chosen):
        server.routes[f"/articles/{page.key[:16]}.html"] = Route(
            body=page_html(page), gzip=i % 2 == 0, delay=0.1 + 0.05 * (i % 4))
    entries: dict[str, list[Entry]] = {f"f{n}": [] for n in range(4)}
    for i, page in enumerate(chosen):
        feed = f"f{i % 4}"
        entries[feed].append(Entry(f"Story {i}", link(page, feed), guid=f"{feed}-{i}",
                                   summary=page.body[:200]))
    entries["f1"].append(Entry("Story 0 again", link(chosen[0], "copy"), guid="f1-copy-0"))
    entries["f2"].append(Entry("Story 1, wire", link(chosen[1], "wire"),
                               guid="https://wire.example.org/story/1"))
    entries["f3"].append(Entry("Story 1, syndicated", link(chosen[1], "syndicated"),
                               guid="https://wire.example.org/story/1"))
    entries["f2"].append(Entry("Brief", None, guid="f2-brief", content=BRIEF))
    entries["f3"].append(Entry("BRIEF", None, guid="f3-brief",
                               content=BRIEF.upper().replace(",", " ;")))
    entries["f0"].append(Entry("Russia backs Venezuela's interim leader",
                               SEED_URL + "?utm_source=telegram", guid="f0-seed",
                               summary="Russia has voiced support for Venezuela's interim leader."))
    feeds = []
    for n, (name, feed_entries) in enumerate(entries.items()):
        server.routes[f"/{name}.rss"] = Route(body=rss(name.upper(), feed_entries),
                                              content_type="application/rss+xml",
                                              delay=0.15 * n)
        feeds.append({"name": name.upper(), "url": server.url(f"/{name}.rss")})
    return feeds


@dataclass(frozen=True)
class Stored:
    """What runs stored, in terms that do not depend on the order feeds were polled in
    (which of two copies is the original depends on it)."""

    entries: tuple[tuple[str, str], ...]  # (feed, guid), sorted: a repeat would show
    stories: frozenset[frozenset[str]]  # "feed/guid" of an original and its copies
    alerts: tuple[tuple[str, tuple[str, ...]], ...]  # (rule, story), sorted
    originals: int


def stored(engine: Engine) -> Stored:
    """Read the state back, checking on the way that nothing is stored twice."""
    with engine.connect() as c:
        rows = {r.id: r for r in c.execute(
            select(Item.id, Feed.name.label("feed"), Item.guid, Item.status,
                   Item.canonical_url, Item.text_hash, Item.duplicate_of_item_id,
                   Seed.name.label("seed"))
            .join(Feed, Item.feed_id == Feed.id)
            .outerjoin(Seed, Item.duplicate_of_seed_id == Seed.id))}
        alerts = c.execute(select(Rule.name, Alert.item_id)
                           .join(Rule, Alert.rule_id == Rule.id)).all()
        seed_urls = set(c.scalars(select(Seed.source_url)))

    def story_of(item_id: int) -> str:
        r = rows[item_id]
        if r.status == "new":
            return f"{r.feed}/{r.guid}"
        if r.seed is not None:
            return f"seed {r.seed}"
        assert r.duplicate_of_item_id is not None, r
        return story_of(r.duplicate_of_item_id)

    stories: dict[str, set[str]] = {}
    for item_id, r in rows.items():
        stories.setdefault(story_of(item_id), set()).add(f"{r.feed}/{r.guid}")
    originals = [r for r in rows.values() if r.status == "new"]
    # No article is stored twice as an original, by URL or by text, nor a seed's again.
    urls = Counter(r.canonical_url for r in originals if r.canonical_url)
    texts = Counter(r.text_hash for r in originals if r.text_hash)
    assert max(urls.values()) == 1, f"seed {SEED}: originals share a URL: {urls}"
    assert max(texts.values()) == 1, f"seed {SEED}: originals share a text: {texts}"
    assert not set(urls) & seed_urls, f"seed {SEED}: a seed's article stored as new"
    assert all(rows[item].status == "new" for _, item in alerts), \
        f"seed {SEED}: an alert on a copy"
    return Stored(
        entries=tuple(sorted((r.feed, r.guid) for r in rows.values())),
        stories=frozenset(frozenset(s) for s in stories.values()),
        alerts=tuple(sorted((rule, tuple(sorted(stories[story_of(item)])))
                            for rule, item in alerts)),
        originals=len(originals),
    )


def feeds_polled(engine: Engine) -> int:
    """How many feeds have a successful poll stored."""
    if not migrated(engine):
        return 0
    with engine.connect() as c:
        return c.scalar(select(func.count()).where(Feed.last_success_at.is_not(None))) or 0


def feeds_unsettled(engine: Engine) -> list[tuple[str, int, str | None]]:
    """Feeds never polled, failing, or still claimed."""
    with engine.connect() as c:
        return [(r.name, r.consecutive_failures, r.lease_owner) for r in c.execute(
            select(Feed.name, Feed.consecutive_failures, Feed.lease_owner)
            .where(or_(Feed.last_success_at.is_(None), Feed.consecutive_failures > 0,
                       Feed.lease_owner.is_not(None))))]


@contextlib.contextmanager
def another_database(db_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of the same kind as ``db_url``'s, for the clean run."""
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'clean.db'}"
        return
    base, _, name = db_url.rpartition("/")
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}_clean"')
    try:
        yield f"{base}/{name}_clean"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}_clean" WITH (FORCE)')


@pytest.mark.timeout(120)
def test_kill_9_during_run_once_loses_and_doubles_nothing(
        server: LocalServer, db_url: str, engine: Engine, tmp_path: Path,
        rng: random.Random) -> None:
    feeds = serve_feeds(server)
    settings: dict[str, Any] = {"feeds": feeds, "rules": RULES,
                                "daemon": {"lease": f"{LEASE}s"}, "extract": {"workers": 1}}

    with another_database(db_url, tmp_path) as clean_url:
        clean_config = write_config(tmp_path / "clean.toml", db_url=clean_url, **settings)
        took, startup = finish(clean_config, "run", "--once", log=tmp_path / "clean.log",
                               mark="polling")
        clean_engine = db.make_engine(clean_url)
        try:
            clean = stored(clean_engine)
        finally:
            clean_engine.dispose()
    assert (len(clean.entries), len(clean.stories), clean.originals) == (14, 10, 9), clean
    assert len(clean.alerts) >= 5, clean

    # Kill -9 first as soon as the schema shows, while the migration may still be
    # under way; then at random moments of what a run has left to do (start-up, the
    # feeds not yet stored); the last time while it holds feeds. A killed run's claims
    # are made to lapse before the next (as if LEASE seconds had passed); before the
    # final run they lapse by themselves.
    config = write_config(tmp_path / "monitor.toml", db_url=db_url, **settings)
    log = tmp_path / "crash.log"
    kills = [kill(config, "run", "--once", at=0, log=log, label="schema+",
                  ready=lambda: first_table(engine))]
    for i in range(RUN_KILLS):
        lapse_leases(engine)
        work = (took - startup) * (1 - feeds_polled(engine) / len(feeds))
        if i < RUN_KILLS - 1:  # at any moment before it stores the last feed
            kills.append(kill(config, "run", "--once", at=rng.uniform(0, startup + work),
                              early=lambda: feeds_polled(engine) >= len(feeds) - 1, log=log))
        else:  # while it holds feeds, which the final run has to wait out
            kills.append(kill(config, "run", "--once", at=rng.uniform(0, work), log=log,
                              ready=lambda: claims_held(engine), label="claims+",
                              early=lambda: feeds_polled(engine) >= len(feeds) - 1))
    waited = wait_for_leases(engine)
    finish(config, "run", "--once", log=log)
    summary = (f"seed {SEED}: clean run {took:.2f}s (start-up {startup:.2f}s); killed at "
               f"{kills}; waited {waited:.1f}s for the claims to lapse")
    print("\n" + summary)
    context = f"{summary}\n{log.read_text()}"

    crashed = stored(engine)
    assert crashed.entries == clean.entries, context
    assert crashed.stories == clean.stories, context
    assert crashed.alerts == clean.alerts, context
    assert crashed.originals == clean.originals, context
    assert feeds_unsettled(engine) == [], context


# --- digest send ---------------------------------------------------------------------------

DIGEST_RULES = [
    {**LEADERS, "recipients": ["desk@example.org", "chief@example.org",
                               "caracas@example.org"]},
    {**RUSSIA, "recipients": ["desk@example.org", "analyst@example.org",
                              "moscow@example.org"]},
]
SMTP_DELAY = 0.4  # seconds the SMTP server takes to take each message
SMTP_HOLD = 0.5  # seconds from taking one to answering, in the run killed in between


def digest_rows(engine: Engine) -> list[Any]:
    if not migrated(engine):
        return []
    with engine.connect() as c:
        return list(c.execute(select(Digest.id, Digest.recipient, Digest.message_id,
                                     Digest.alerts, Digest.attempts, Digest.sent_at,
                                     Digest.lease_owner).order_by(Digest.id)))


def copies(mail: MailServer) -> Counter[str]:
    return Counter(str(r.message["Message-ID"]) for r in list(mail.received))


@pytest.mark.timeout(120)
def test_kill_9_during_digest_send_loses_nothing_and_repeats_only_the_uncertain(
        mail: MailServer, db_url: str, engine: Engine, tmp_path: Path,
        rng: random.Random) -> None:
    config = write_config(tmp_path / "monitor.toml", db_url=db_url, feeds=FEEDS,
                          rules=DIGEST_RULES, daemon={"lease": f"{LEASE}s"},
                          smtp={"host": "127.0.0.1", "port": mail.port, "timeout": "10s"})
    store_stories(config, [DELEGATION, DELEGATION_COPY, KREMLIN, HAVANA, LATER], STORED_AT)
    with engine.connect() as c:
        alerts = c.execute(select(Alert.id, Rule.name).join(Rule, Alert.rule_id == Rule.id)).all()
    wanted = {addr: {a for a, rule in alerts if rule in rules}
              for addr, rules in delivery.recipients(load_settings(config).rules).items()}
    assert {r: len(a) for r, a in wanted.items()} == {
        "desk@example.org": 6, "chief@example.org": 3, "analyst@example.org": 3,
        "moscow@example.org": 3, "caracas@example.org": 3}
    log = tmp_path / "send.log"
    startup, _ = finish(config, "digest", "list", log=log)  # how long a command takes to start
    mail.delay = SMTP_DELAY

    # Kill -9 at random moments of what is left to do (start-up, composing, sending
    # each pending digest), at the latest while the server is taking the last one
    # (a message it has not taken is discarded); the last time just after the server
    # took one, before it answered, so that the final run has to wait for the killed
    # run's claims to lapse. A delivery is uncertain when the server took the message
    # in a run that died before recording it: the next run sends it again.
    uncertain: Counter[str] = Counter()
    kills: list[Kill] = []
    for i in range(SEND_KILLS):
        if i:
            lapse_leases(engine)
        composed = digest_rows(engine)
        pending = sum(d.sent_at is None for d in composed) if composed else len(wanted)
        before = copies(mail)
        last = mail.attempts + pending  # the DATA of the last pending digest
        if i < SEND_KILLS - 1:
            kills.append(kill(config, "digest", "send", "--now", log=log,
                              at=rng.uniform(0, startup + SMTP_DELAY * pending),
                              early=lambda n=last: mail.attempts >= n))
        else:
            nth = rng.randint(1, pending)
            taken = len(mail.received) + nth
            mail.hold = SMTP_HOLD
            kills.append(kill(config, "digest", "send", "--now", log=log, at=0,
                              ready=lambda n=taken: len(mail.received) >= n,
                              label=f"taken #{nth}+"))
            mail.hold = 0
        time.sleep(0.2)  # the server finishes with what the dead client had sent
        sent = {d.message_id for d in digest_rows(engine) if d.sent_at is not None}
        for message_id, n in (copies(mail) - before).items():
            assert n == 1, f"seed {SEED}: {message_id} sent {n} times in one run"
            if message_id not in sent:
                uncertain[message_id] += 1
    mail.delay = 0
    waited = wait_for_leases(engine)
    before = copies(mail)
    finish(config, "digest", "send", "--now", log=log)
    assert max((copies(mail) - before).values(), default=1) == 1
    summary = (f"seed {SEED}: start-up {startup:.2f}s; killed at {kills}; uncertain "
               f"deliveries {sorted(uncertain.values())}; waited {waited:.1f}s for the "
               "claims to lapse")
    print("\n" + summary)
    context = f"{summary}\n{log.read_text()}"
    assert uncertain, context  # the kill after a take made one

    # The database: one digest per recipient, carrying all its alerts, sent once.
    rows = digest_rows(engine)
    assert sorted(d.recipient for d in rows) == sorted(wanted), context
    assert all(d.sent_at is not None and d.attempts == 1 and d.lease_owner is None
               for d in rows), (rows, context)
    with engine.connect() as c:
        carried = {(a, r) for a, r in c.execute(select(DigestAlert.alert_id,
                                                       DigestAlert.recipient))}
        unsent = c.scalar(select(func.count()).where(Alert.sent_at.is_(None)))
    assert carried == {(a, r) for r, ids in wanted.items() for a in ids}, context
    assert unsent == 0, context
    assert {d.recipient: d.alerts for d in rows} == {r: len(a) for r, a in wanted.items()}

    # The mail server: each recipient got its digest, the stored one byte for byte;
    # once, and once more for each crash between the server taking it and the
    # database recording that.
    received = copies(mail)
    assert set(received) == {d.message_id for d in rows}, context
    for d in rows:
        assert received[d.message_id] == 1 + uncertain[d.message_id], (d, context)
        got = [r for r in mail.received if r.message["Message-ID"] == d.message_id]
        assert {tuple(r.recipients) for r in got} == {(d.recipient,)}, context
        assert len({r.data for r in got}) == 1, context
    assert sum(uncertain.values()) <= SEND_KILLS, context
