"""The review page at 100k stored items: each page's time to the last byte, p50 and p95.

    .venv/bin/python benchmarks/web_render.py [--items 100000] [--backends sqlite,postgresql]
        [--pg postgresql://postgres@127.0.0.1:5432/test] [--requests 60] [--warmup 3]
        [--keep DIR] [--pages REGEX] [--analyze]

Goal (issue 23): p95 < 200 ms for every page, measured as a user meets it: a real
``monitor web`` process serving a real database, requests over HTTP on 127.0.0.1, timed
from sending the request to the last byte of the response.

**The database.** A fresh one per backend (SQLite: a file; PostgreSQL: the database
``monitor_webbench``, dropped at the end unless ``--keep``), schema by monitor's own
migrations, then filled in bulk:

- items: search.py's loader (real corpus sentences, the full-text index filled), spread
  over the last 90 days; ~30% of them then made copies (status ``duplicate``, by guid,
  url, exact text or near text with its similarity, of an earlier original: a copy
  carries its original's title and text, and the index follows);
- 200 feeds, item counts skewed, 10 of them failing (HTTP 500, 404 or no answer) since a
  day they stopped yielding items, the others polled a few minutes ago;
- ~0.4 stories per item: most of one item, some of 2-10, a few of 50-300 spread over
  ten days; times, counts and titles consistent with their items; their terms indexed
  for the last 10 days;
- 6 rules and ~5% alerts per item over the last 30 days: the matches monitor's own
  search finds for each rule (terms and snippets as a rule match stores them);
- daily digests for 30 days to two recipients (sent) and 3 pending ones (the SMTP
  server answering 451), linked to their alerts.

A config names the database, the 200 feeds and the 6 rules. ``--keep DIR`` keeps the
SQLite file (and the PostgreSQL database) and, run again, measures it without filling.
On SQLite the statistics the bulk load's ANALYZE left are dropped, since monitor never
runs ANALYZE (``--analyze``: measure with fresh statistics instead); PostgreSQL gets
``VACUUM ANALYZE``, as autovacuum would.

**Serving and measuring.** ``monitor --config CONFIG web --listen 127.0.0.1:0`` is
started; its start time is exec to its "serving http://…/healthz" log line. Then, per
page (ids picked from the database: the largest story, a mid-size one, one of a single
item; the item with most alerts, a near copy), ``--warmup`` untimed requests and
``--requests`` timed ones, one at a time on one keep-alive connection, each checked for
status 200. Printed per page: p50, p95, max and the response's size; then the server's
RSS (and peak) after the run, read from /proc.
"""

from __future__ import annotations

import argparse
import bisect
import http.client
import json
import math
import os
import platform
import random
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks import search as loader  # noqa: E402
from benchmarks.retention import fresh  # noqa: E402
from benchmarks.search import _kept, _loaded, _pct, load  # noqa: E402
from monitor import __version__, db, store  # noqa: E402
from monitor.dedup.fingerprint import text_hash  # noqa: E402
from monitor.digest.render import new_message_id  # noqa: E402
from monitor.models import (  # noqa: E402
    Alert,
    Digest,
    DigestAlert,
    Feed,
    Rule,
    Story,
    StoryTerm,
    UTCDateTime,
    Worker,
)
from monitor.rules import parse  # noqa: E402
from monitor.rules.fulltext import IndexedText  # noqa: E402
from monitor.rules.text import words_of  # noqa: E402
from monitor.search import search  # noqa: E402

NAME = "monitor_webbench"
FILLED = "webbench.filled"  # meta: this database was filled completely (JSON)
GOAL_MS = 200.0
VENV_MONITOR = ROOT / ".venv" / "bin" / "monitor"
SERVING = re.compile(r"serving (http://127\.0\.0\.1:\d+)/healthz")
DAY = timedelta(days=1)

DESK, ANALYST, EDITOR = "desk@example.org", "analyst@example.org", "editor@example.org"
# name, query, recipients, share of the alerts (the editor was added yesterday)
RULES: list[tuple[str, str, list[str], float]] = [
    ("North Korea", '"North Korea"', [DESK, ANALYST], 1.0),
    ("Trump", "Trump", [DESK], 2.0),
    ("Climate", "climate change", [DESK, EDITOR], 0.7),
    ("China headlines", "title:China", [DESK, ANALYST], 0.8),
    ("Refugees", "refugees", [DESK, EDITOR], 0.6),
    ("Vaccines", "vaccin*", [DESK], 0.7),
]
OUTLETS = ["Daily", "Morning", "Evening", "National", "Global", "Metro", "Northern", "Coastal",
           "Capital", "Valley", "Harbour", "Union", "Free", "Continental", "Pacific", "Atlantic",
           "Prairie", "Mountain", "Lakeside", "Central"]
PAPERS = ["Herald", "Times", "Post", "Tribune", "Gazette", "Observer", "Chronicle", "Journal",
          "Courier", "Independent", "Standard", "Ledger", "Sentinel", "Dispatch", "Express"]
SECTIONS = ["World", "Politics", "Business", "Science", "Health", "Top stories"]
AUTHORS = ["Ana Ruiz", "Li Wei", "John Carter", "Amira Haddad", "Olga Petrova", "Sam Okafor",
           "Marta Silva", "Tom Becker", "Priya Nair", "Kenji Sato"]


def log(msg: str) -> None:
    print(msg, flush=True)


# --- the plan: what every row holds, decided before anything is written ----------------------

@dataclass
class FeedPlan:
    id: int
    name: str
    url: str
    site: str
    interval: int
    weight: float
    fail_since: datetime | None = None
    status: int | None = None
    error: str | None = None
    latest: datetime | None = None  # its newest item


@dataclass
class StoryPlan:
    members: list[int] = field(default_factory=list)  # item ids, originals and copies
    size: int = 1  # originals planned


@dataclass
class Plan:
    n: int
    feeds: list[FeedPlan]
    created: list[datetime]  # by item id (index 0 unused)
    published: list[datetime | None]
    feed_of: list[int]
    dup_of: dict[int, tuple[int, str, float | None]]  # copy id -> (original, method, sim)
    story_of: list[int]  # item id -> story index (0-based; ids are index + 1)
    stories: list[StoryPlan]
    titles: dict[int, str]  # originals' titles
    hashes: dict[int, str | None]  # originals' text hashes


def _created(n: int) -> list[datetime]:
    """Item ``i``'s stored time, as search.py's loader stores it."""
    span = timedelta(days=90).total_seconds()
    return [loader.NOW] + [loader.NOW - timedelta(seconds=span * (n - i) / n)
                           for i in range(1, n + 1)]


def _feeds(rng: random.Random, count: int = 200, failing: int = 10) -> list[FeedPlan]:
    names = [(o, p) for o in OUTLETS for p in PAPERS]
    rng.shuffle(names)
    feeds = []
    for k in range(count):
        outlet, paper = names[k // 2]
        section = SECTIONS[(k * 7 + k // 2) % len(SECTIONS)]
        host = f"www.{outlet.lower()}{paper.lower()}.example"
        slug = section.lower().replace(" ", "-")
        feeds.append(FeedPlan(
            id=k + 1, name=f"{outlet} {paper}: {section}", url=f"https://{host}/rss/{slug}.xml",
            site=f"https://{host}", interval=rng.choice([300, 900, 900, 900, 1800, 3600]),
            weight=1 / (k + 3) ** 0.9))
    ws = [f.weight for f in feeds]
    rng.shuffle(ws)  # the big feeds anywhere in the list
    for f, w in zip(feeds, ws, strict=True):
        f.weight = w
    for f in rng.sample(feeds, failing):
        f.fail_since = loader.NOW - timedelta(days=rng.uniform(0.3, 20))
        f.status = rng.choice([500, 500, 503, 404, 404, None, None])
        f.error = (f"{f.url}: HTTP {f.status}" if f.status else rng.choice([
            f"{f.url}: Cannot connect to host {f.site[8:]}:443 ssl:default [Connection refused]",
            f"{f.url}: timed out after 30s"]))
    return feeds


def _sizes(rng: random.Random, n: int, originals: int) -> list[int]:
    """How many originals each story gets: a few big ones (30-180, 50-300 items with
    their copies), some of 2-8, the rest of one; ~0.4 stories per item in all."""
    target = round(0.4 * n)
    big = [rng.randint(30, 180) for _ in range(max(1, round(n * 0.0002)))]
    mids, weights = range(2, 9), [35, 22, 14, 10, 8, 6, 5]
    mean = sum(m * w for m, w in zip(mids, weights, strict=True)) / sum(weights)
    k = max(0, round((originals - sum(big) - (target - len(big))) / (mean - 1)))
    sizes = big + rng.choices(mids, weights, k=k)
    while sum(sizes) > originals:
        sizes.pop()
    return sizes + [1] * (originals - sum(sizes))


def plan(n: int, seed: int = 23) -> Plan:
    rng = random.Random(seed)
    created = _created(n)
    feeds = _feeds(rng)
    dup = [False] + [i > 20 and rng.random() < 0.30 for i in range(1, n + 1)]
    originals = [i for i in range(1, n + 1) if not dup[i]]
    # Stories of originals: each story's members placed around a random start (within
    # 2 days, 10 for the big ones), then the originals handed out in that order.
    sizes = _sizes(rng, n, len(originals))
    o = len(originals)
    spots = []
    for s, q in enumerate(sizes):
        start = rng.uniform(0, o)
        span = o * (10 if q >= 30 else 2) / 90
        spots.append((start, s))
        spots += [(start + rng.uniform(0, span), s) for _ in range(q - 1)]
    spots.sort()
    story_of = [-1] * (n + 1)
    for item, (_, s) in zip(originals, spots, strict=True):
        story_of[item] = s
    in_many = [i for i in originals if sizes[story_of[i]] > 1]
    # Copies: of an original of the last 2 days, 3 times in 4 one of a story of several.
    window = max(50, round(n * 2 / 90))
    dup_of: dict[int, tuple[int, str, float | None]] = {}
    for i in range(1, n + 1):
        if not dup[i]:
            continue
        pool = in_many if rng.random() < 0.75 else originals
        a, b = bisect.bisect_left(pool, i - window), bisect.bisect_left(pool, i)
        if a == b:
            pool = originals
            a, b = bisect.bisect_left(pool, i - window), bisect.bisect_left(pool, i)
        if a == b:
            a = 0
        orig = pool[rng.randrange(a, b)]
        method = rng.choices(["guid", "url", "exact", "near"], [10, 20, 30, 40])[0]
        sim = {"exact": 1.0, "near": round(rng.uniform(0.55, 0.97), 3)}.get(method)
        dup_of[i] = (orig, method, sim)
        story_of[i] = story_of[orig]
    # Feeds: by weight, never a failing feed after it failed; a copy from another feed.
    cum = []
    total = 0.0
    for f in feeds:
        total += f.weight
        cum.append(total)
    feed_of = [0] * (n + 1)
    guids: set[tuple[int, int]] = set()
    for i in range(1, n + 1):
        while True:
            f = feeds[bisect.bisect_left(cum, rng.random() * total)]
            if f.fail_since is not None and created[i] >= f.fail_since:
                continue
            if i in dup_of:
                orig = dup_of[i][0]
                if f.id == feed_of[orig] or (dup_of[i][1] == "guid" and (f.id, orig) in guids):
                    continue
                if dup_of[i][1] == "guid":
                    guids.add((f.id, orig))
            break
        feed_of[i] = f.id
        f.latest = created[i]
    published: list[datetime | None] = [None] + [
        None if rng.random() < 0.06 else created[i] - timedelta(seconds=rng.uniform(60, 6 * 3600))
        for i in range(1, n + 1)]
    stories = [StoryPlan(size=q) for q in sizes]
    for i in range(1, n + 1):
        stories[story_of[i]].members.append(i)
    # Story ids in the order of their first item, as they would have been created.
    order = sorted(range(len(stories)), key=lambda s: stories[s].members[0])
    renumber = {old: new for new, old in enumerate(order)}
    stories = [stories[s] for s in order]
    story_of = [renumber.get(s, -1) for s in story_of]
    titles, hashes = {}, {}
    for i in originals:
        title, body = loader.document(i)
        titles[i], hashes[i] = title, text_hash(body)
    return Plan(n, feeds, created, published, feed_of, dup_of, story_of, stories, titles, hashes)


def _near_copy(body: str, outlet: str) -> str:
    """A near copy's text: its original's without the last sentence, with a credit line."""
    head = body.rsplit(". ", 1)[0]
    return f"{head}.\n\nThis article first appeared on {outlet}."


# --- filling ---------------------------------------------------------------------------------

_TMP = MetaData()
WB_ITEMS = Table(
    "wb_items", _TMP,
    Column("id", Integer, primary_key=True, autoincrement=False), Column("feed_id", Integer),
    Column("guid", Text), Column("url", Text), Column("canonical_url", Text),
    Column("title", Text), Column("text", Text), Column("text_hash", String(64)),
    Column("published_at", UTCDateTime()), Column("fetched_at", UTCDateTime()),
    Column("author", Text), Column("site_name", Text), Column("text_source", String(16)),
    Column("page_status", Integer), Column("page_error", Text), Column("status", String(16)),
    Column("duplicate_of_item_id", Integer), Column("dedup_method", String(16)),
    Column("similarity", Float), Column("story_id", Integer),
    prefixes=["TEMPORARY"])


def _item_rows(p: Plan, rng: random.Random) -> Iterator[list[dict[str, Any]]]:
    feeds = {f.id: f for f in p.feeds}
    batch: list[dict[str, Any]] = []
    urls: list[str] = [""] * (p.n + 1)
    for i in range(1, p.n + 1):
        f = feeds[p.feed_of[i]]
        at = p.created[i]
        urls[i] = f"{f.site}/{at:%Y/%m/%d}/{i}.html"
        source = rng.choices(["page", "feed_content", "feed_summary"], [90, 7, 3])[0]
        row: dict[str, Any] = {
            "id": i, "feed_id": f.id, "guid": urls[i], "url": urls[i], "canonical_url": urls[i],
            "title": None, "text": None, "text_hash": None, "published_at": p.published[i],
            "fetched_at": at if source == "page" else None,
            "author": rng.choice([*AUTHORS, None, None, None]), "site_name": f.name.split(":")[0],
            "text_source": source, "page_status": 200 if source == "page" else (
                403 if source == "feed_summary" else None),
            "page_error": f"{urls[i]}: HTTP 403" if source == "feed_summary" else None,
            "status": "new", "duplicate_of_item_id": None, "dedup_method": None,
            "similarity": None, "story_id": p.story_of[i] + 1}
        copy = p.dup_of.get(i)
        if copy is None:
            row["text_hash"] = p.hashes[i]
        else:
            orig, method, sim = copy
            row.update(status="duplicate", duplicate_of_item_id=orig, dedup_method=method,
                       similarity=sim, title=p.titles[orig], text_hash=p.hashes[orig])
            if method in ("guid", "url"):  # the same link (a URL copy: under its own GUID)
                row.update(url=urls[orig], canonical_url=urls[orig])
            if method == "guid":
                row["guid"] = urls[orig]
            if method == "near":
                body = _near_copy(loader.document(orig)[1], row["site_name"])
                row.update(text=body, text_hash=text_hash(body))
            else:
                row["text"] = loader.document(orig)[1]
        batch.append(row)
        if len(batch) >= 2000:
            yield batch
            batch = []
    if batch:
        yield batch


def _feed_rows(p: Plan, rng: random.Random) -> list[dict[str, Any]]:
    now = loader.NOW
    rows = []
    warnings = set(rng.sample([f.id for f in p.feeds if f.fail_since is None], 2))
    for f in p.feeds:
        row: dict[str, Any] = {
            "id": f.id, "url": f.url, "name": f.name, "enabled": True,
            "interval_seconds": f.interval, "max_interval_seconds": 14400,
            "title": f.name.replace(":", " -"), "created_at": now - timedelta(days=95),
            "last_changed_at": f.latest, "lease_owner": None, "lease_until": None,
            "parse_warning": ("not well-formed (invalid token) at line 212: read what could "
                              "be read" if f.id in warnings else None)}
        if f.fail_since is None:
            poll = rng.choice([f.interval, f.interval, min(14400, int(f.interval * 1.5))])
            last = now - timedelta(seconds=rng.uniform(0, poll))
            row.update(last_attempt_at=last, last_success_at=last,
                       last_status=rng.choice([200, 304, 304, 304]), last_error=None,
                       consecutive_failures=0, next_poll_at=last + timedelta(seconds=poll),
                       poll_interval_seconds=poll, etag=f'"{secrets.token_hex(8)}"',
                       last_modified=format_datetime(last, usegmt=True),
                       body_hash=secrets.token_hex(32))
        else:
            hours = (now - f.fail_since).total_seconds() / 3600
            row.update(last_attempt_at=now - timedelta(minutes=rng.uniform(1, 30)),
                       last_success_at=f.fail_since, last_status=f.status, last_error=f.error,
                       consecutive_failures=min(80, 3 + int(hours / 6)),
                       next_poll_at=now + timedelta(minutes=rng.uniform(1, 360)),
                       poll_interval_seconds=f.interval, etag=None, last_modified=None,
                       body_hash=None)
        rows.append(row)
    return rows


def _story_rows(p: Plan) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows, terms = [], []
    recent = loader.NOW - timedelta(days=10)
    for k, s in enumerate(p.stories):
        times = [p.published[i] or p.created[i] for i in s.members]
        first = s.members[0]
        title = p.titles[first]
        rows.append({"id": k + 1, "title": title, "language": "en", "first_at": min(times),
                     "last_at": max(times), "items": len(s.members), "created_at": p.created[first],
                     "centroid": "{}"})
        if max(times) >= recent:
            words = list(dict.fromkeys(w for w in words_of(title) if len(w) > 3))[:6]
            terms += [{"term": w, "story_id": k + 1} for w in words]
    return rows, terms


def fill(engine: Engine, n: int) -> float:
    """The database as the module docstring describes it. Returns seconds."""
    started = time.perf_counter()
    log(f"  items: search.py's loader, {n:,} items …")
    took = load(engine, n)
    log(f"  … loaded in {took:.0f}s; planning feeds, copies, stories …")
    loader._init()
    rng = random.Random(230)
    p = plan(n)
    pg = engine.dialect.name == "postgresql"
    stories, terms = _story_rows(p)
    with engine.begin() as conn:
        feeds = _feed_rows(p, rng)
        conn.execute(update(Feed).where(Feed.id == 1).values(
            **{k: v for k, v in feeds[0].items() if k != "id"}))
        conn.execute(insert(Feed), feeds[1:])
        for at in range(0, len(stories), 5000):
            conn.execute(insert(Story), stories[at:at + 5000])
        conn.execute(insert(StoryTerm), terms)
        log(f"  {len(feeds)} feeds, {len(stories):,} stories ({len(terms):,} terms) "
            f"in {time.perf_counter() - started:.0f}s; rewriting the items …")
        WB_ITEMS.create(conn)
        for batch in _item_rows(p, rng):
            conn.execute(insert(WB_ITEMS), batch)
        cols = [c.name for c in WB_ITEMS.columns if c.name != "id"]
        conn.execute(text(
            "UPDATE items SET " + ", ".join(
                f"{c} = coalesce(t.{c}, items.{c})" if c in ("title", "text") else f"{c} = t.{c}"
                for c in cols) + " FROM wb_items t WHERE items.id = t.id"))
        _reindex_copies(conn, pg)
        WB_ITEMS.drop(conn)
    log(f"  items rewritten and copies indexed in {time.perf_counter() - started:.0f}s; "
        "rules and alerts …")
    alerts = _rules_and_alerts(engine, p, rng)
    digests = _digests(engine, p, alerts, rng)
    with engine.begin() as conn:
        conn.execute(insert(Worker), [{
            "id": f"bench-host:4242:{secrets.token_hex(4)}", "hostname": "bench-host",
            "pid": 4242, "version": __version__, "started_at": loader.NOW - timedelta(days=3),
            "heartbeat_at": loader.NOW, "stopped_at": None, "config_hash": None,
            "config_since": None}])
        if pg:
            for table in ("feeds", "stories", "rules", "alerts", "digests"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT max(id) FROM {table}))"))
    seconds = time.perf_counter() - started
    with engine.begin() as conn:
        store_meta(conn, {"items": n, "at": f"{loader.NOW:%Y-%m-%d %H:%M} UTC",
                          "fill_s": round(seconds), "alerts": alerts, "digests": digests})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if pg:
            conn.execute(text("VACUUM ANALYZE"))
    return time.perf_counter() - started


def store_meta(conn: Connection, value: dict[str, Any]) -> None:
    conn.execute(text("INSERT INTO meta (name, value) VALUES (:n, :v)"),
                 {"n": FILLED, "v": json.dumps(value)})


def filled(engine: Engine, n: int) -> dict[str, Any] | None:
    """What the fill recorded, if this database was filled with ``n`` items."""
    try:
        with engine.connect() as conn:
            raw = conn.execute(text("SELECT value FROM meta WHERE name = :n"),
                               {"n": FILLED}).scalar()
    except SQLAlchemyError:  # no schema yet
        return None
    info = json.loads(raw) if raw else None
    return info if info and info.get("items") == n and _loaded(engine, n) else None


def _reindex_copies(conn: Connection, pg: bool) -> None:
    """The index rows of the copies: their original's words (the same title and text),
    folded again for near copies; on PostgreSQL their status too."""
    near = conn.execute(text("SELECT id, title, text FROM wb_items "
                             "WHERE dedup_method = 'near'")).all()
    if pg:
        conn.execute(text(
            "UPDATE item_search s SET doc = o.doc FROM wb_items t JOIN item_search o "
            "ON o.item_id = t.duplicate_of_item_id WHERE s.item_id = t.id "
            "AND t.status = 'duplicate' AND t.dedup_method <> 'near'"))
        for at in range(0, len(near), 2000):
            conn.execute(text("UPDATE item_search SET doc = CAST(:doc AS tsvector) "
                              "WHERE item_id = :id"),
                         [{"id": i, "doc": IndexedText.of(t, b).tsvector()}
                          for i, t, b in near[at:at + 2000]])
        conn.execute(text("UPDATE item_search s SET status = i.status FROM items i "
                          "WHERE i.id = s.item_id AND s.status <> i.status"))
        return
    conn.execute(text("DELETE FROM items_fts WHERE rowid IN "
                      "(SELECT id FROM wb_items WHERE status = 'duplicate')"))
    conn.execute(text(
        "INSERT INTO items_fts (rowid, title, body) SELECT t.id, f.title, f.body "
        "FROM wb_items t JOIN items_fts f ON f.rowid = t.duplicate_of_item_id "
        "WHERE t.status = 'duplicate' AND t.dedup_method <> 'near'"))
    for at in range(0, len(near), 2000):
        rows = []
        for i, t, b in near[at:at + 2000]:
            title, body = IndexedText.of(t, b).fts5()
            rows.append({"id": i, "title": title, "body": body})
        conn.execute(text("INSERT INTO items_fts (rowid, title, body) "
                          "VALUES (:id, :title, :body)"), rows)


def _rules_and_alerts(engine: Engine, p: Plan, rng: random.Random) -> int:
    """The 6 rules, and ~5% as many alerts as items over the last 31 days: the matches
    monitor's search finds for each rule in each half day, each rule its share."""
    now = loader.NOW
    with engine.begin() as conn:
        conn.execute(insert(Rule), [
            {"id": k + 1, "name": name, "query": q, "recipients": to, "enabled": True,
             "updated_at": now - (DAY if EDITOR in to else timedelta(days=40))}
            for k, (name, q, to, _) in enumerate(RULES)])
    windows = 62  # half days: 31 days, so that the oldest digest slot has its day too
    target = round(0.05 * p.n)
    shares = sum(share for *_, share in RULES)
    sessions = db.session_factory(engine)
    # Per rule and window, up to 4 times its fair part of the target; then each rule's
    # quota (what the rarer rules cannot fill goes to the others), taken from the
    # windows in turn, so that the alerts spread over the month.
    hits: list[list[list[dict[str, Any]]]] = []
    for k, (_, q, _, share) in enumerate(RULES):
        cap = max(2, math.ceil(4 * target * share / shares / windows))
        query = parse(q)
        hits.append([])
        for w in range(windows):
            until = now - timedelta(hours=12 * w)
            with sessions() as s:
                r = search(s, query, store.SearchFilters(since=until - timedelta(hours=12),
                                                         until=until),
                           limit=cap, ranked=False, by_story=False)
            hits[k].append([{
                "rule_id": k + 1, "item_id": m.item.id, "query": q, "terms": list(m.terms),
                "snippet": m.snippet, "sent_at": None, "backfilled": False,
                "created_at": p.created[m.item.id] + timedelta(seconds=rng.uniform(2, 90))}
                for m in r.matches])
    have = [sum(map(len, h)) for h in hits]
    quota = [0] * len(RULES)
    left, open_ = target, set(range(len(RULES)))
    while left > 0 and open_:
        weight = sum(RULES[k][3] for k in open_)
        for k in sorted(open_):
            quota[k] = min(have[k], quota[k] + max(1, round(left * RULES[k][3] / weight)))
        left = target - sum(quota)
        open_ = {k for k in open_ if quota[k] < have[k]}
    found = []
    for k, per_window in enumerate(hits):
        taken = 0
        while taken < quota[k]:
            for w in per_window:
                if w and taken < quota[k]:
                    found.append(w.pop(0))
                    taken += 1
    found.sort(key=lambda a: a["created_at"])
    for k, a in enumerate(found):
        a["id"] = k + 1
    with engine.begin() as conn:
        for at in range(0, len(found), 2000):
            conn.execute(insert(Alert), found[at:at + 2000])
    per_rule = Counter(RULES[a["rule_id"] - 1][0] for a in found)
    log(f"  {len(found):,} alerts: " + ", ".join(f"{r} {c}" for r, c in per_rule.items()))
    return len(found)


def _digests(engine: Engine, p: Plan, alerts: int, rng: random.Random) -> int:
    """Daily digests (07:00 UTC): sent for the last 30 days to the desk and the analyst;
    the latest slot's digests, the editor's first among them, pending (SMTP 451)."""
    now = loader.NOW
    latest = now.replace(hour=7, minute=0, second=0, microsecond=0)
    if latest > now - timedelta(minutes=5):
        latest -= DAY
    with engine.connect() as conn:
        rows = conn.execute(
            select(Alert.id, Alert.rule_id, Alert.item_id, Alert.created_at)
            .order_by(Alert.created_at)).all()
    stamps = [r.created_at for r in rows]
    digests, links, sent_at = [], [], {}
    for k in range(30, -1, -1):
        slot = latest - k * DAY
        pending = k == 0
        lo, hi = bisect.bisect_right(stamps, slot - DAY), bisect.bisect_right(stamps, slot)
        for to in (DESK, ANALYST, EDITOR):
            if to == EDITOR and not pending:
                continue
            carried = [r for r in rows[lo:hi] if to in RULES[r.rule_id - 1][2]]
            if not carried:
                continue
            did = len(digests) + 1
            by_rule = Counter(RULES[r.rule_id - 1][0] for r in carried)
            subject = f"{len(carried)} new stories: " + ", ".join(
                f"{r} ({c})" for r, c in by_rule.most_common(3)) + (
                f" and {len(by_rule) - 3} more" if len(by_rule) > 3 else "")
            mid = new_message_id("example.org", secrets.token_hex(12))
            digests.append({
                "id": did, "recipient": to, "message_id": mid, "subject": subject,
                "message": _message(to, subject, mid, slot, [p.titles.get(r.item_id, "")
                                                              for r in carried[:20]]),
                "alerts": len(carried), "created_at": slot, "attempts": 3 if pending else 1,
                "last_error": "451 4.3.0 Mail server temporarily rejected message"
                if pending else None,
                "next_attempt_at": now + timedelta(minutes=4) if pending else slot,
                "sent_at": None if pending else slot + timedelta(seconds=rng.uniform(1, 5)),
                "failed_at": None, "lease_owner": None, "lease_until": None})
            links += [{"digest_id": did, "alert_id": r.id, "recipient": to} for r in carried]
            if not pending:
                for r in carried:
                    sent_at.setdefault(r.id, digests[-1]["sent_at"])
    with engine.begin() as conn:
        conn.execute(insert(Digest), digests)
        for at in range(0, len(links), 5000):
            conn.execute(insert(DigestAlert), links[at:at + 5000])
        conn.execute(update(Alert).where(Alert.id == bindparam("b_id"))
                     .values(sent_at=bindparam("b_at")),
                     [{"b_id": i, "b_at": at} for i, at in sent_at.items()])
    pending = sum(1 for d in digests if d["sent_at"] is None)
    log(f"  {len(digests) - pending} digests sent, {pending} pending; {len(sent_at):,} of "
        f"{alerts:,} alerts sent")
    return len(digests)


def _message(to: str, subject: str, message_id: str, at: datetime, titles: Sequence[str]) -> bytes:
    m = EmailMessage()
    m["From"] = "monitor <monitor@example.org>"
    m["To"] = to
    m["Subject"] = subject
    m["Date"] = format_datetime(at)
    m["Message-ID"] = message_id
    m.set_content("\n".join(f"- {t}" for t in titles) + "\n")
    m.add_alternative("<ul>" + "".join(f"<li>{t}</li>" for t in titles) + "</ul>", subtype="html")
    return m.as_bytes()


def write_config(path: Path, url: str, engine: Engine) -> None:
    """The config ``monitor web`` runs with: the database, its feeds and the rules."""
    with engine.connect() as conn:
        feeds = conn.execute(select(Feed.name, Feed.url, Feed.interval_seconds)
                             .order_by(Feed.id)).all()
    q = json.dumps  # a TOML basic string is a JSON string
    lines = ["[database]", f"url = {q(url)}", "", "[seeds]", f"path = {q(str(ROOT / 'seeds'))}",
             "", "[logging]", 'level = "INFO"', "", "[digest]", 'schedule = "0 7 * * *"',
             'timezone = "UTC"', 'sender = "monitor@example.org"', ""]
    for name, feed_url, interval in feeds:
        lines += ["[[feeds]]", f"name = {q(name)}", f"url = {q(feed_url)}",
                  f'interval = "{interval}s"', ""]
    for name, query, to, _ in RULES:
        lines += ["[[rules]]", f"name = {q(name)}", f"query = {q(query)}",
                  f"recipients = {q(to)}", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


# --- serving and measuring -------------------------------------------------------------------

def pages(engine: Engine) -> list[tuple[str, str]]:
    """(name, path) of every page measured, with ids picked from the database."""
    with engine.connect() as conn:
        def one(sql: str) -> int:
            return int(conn.execute(text(sql)).scalar_one())

        big = one("SELECT id FROM stories ORDER BY items DESC, id DESC LIMIT 1")
        mid = one("SELECT id FROM stories WHERE items BETWEEN 5 AND 10 "
                  "ORDER BY abs(items - 7), last_at DESC LIMIT 1")
        single = one("SELECT id FROM stories WHERE items = 1 ORDER BY last_at DESC LIMIT 1")
        alerted = one("SELECT item_id FROM alerts GROUP BY item_id "
                      "ORDER BY count(*) DESC, item_id DESC LIMIT 1")
        copy = one("SELECT id FROM items WHERE status = 'duplicate' AND dedup_method = 'near' "
                   "ORDER BY (duplicate_of_item_id IN (SELECT item_id FROM alerts)) DESC, "
                   "id DESC LIMIT 1")
        sizes = dict(conn.execute(text("SELECT id, items FROM stories WHERE id IN "
                                       f"({big}, {mid}, {single})")).all())
        feed = one("SELECT feed_id FROM items GROUP BY feed_id ORDER BY count(*) DESC, "
                   "feed_id LIMIT 1")
        # The recipient whose next digest is the largest: the most alerts no digest to
        # them carries yet, as the Digests page counts them.
        rules: dict[str, list[str]] = {}
        for name, recipients in conn.execute(select(Rule.name, Rule.recipients)):
            for r in recipients:
                rules.setdefault(r, []).append(name)
        with Session(bind=conn) as s:
            waiting, recipient = max((store.waiting_for_digest(s, r, names)[0], r)
                                     for r, names in rules.items())
    return [
        # The floor, no code of monitor's but the middleware: aiohttp sending a file.
        ("style sheet (the floor)", "/static/style.css"),
        ("today", "/"),
        (f"story, big ({sizes[big]} items)", f"/stories/{big}"),
        (f"story, mid ({sizes[mid]} items)", f"/stories/{mid}"),
        ("story, single item", f"/stories/{single}"),
        ("item with alerts", f"/items/{alerted}"),
        ("item, a near copy", f"/items/{copy}"),
        ("feeds", "/feeds"),
        ('search "North Korea"', "/search?q=%22North+Korea%22"),
        ("search Trump", "/search?q=Trump"),
        ("search vaccin*", "/search?q=vaccin%2A"),
        ("rules", "/rules"),
        ("rules, test refugees", "/rules?test=refugees"),
        ("rules, test trump", "/rules?test=trump"),
        ("feed, the largest", f"/feeds/{feed}"),
        ("digests", "/digests"),
        (f"next digest ({waiting} alerts)", f"/digests/preview?recipient={quote(recipient)}"),
        ("next digest, text", f"/digests/preview?recipient={quote(recipient)}&format=text"),
        ("API stories", "/api/v1/stories"),
        ("API items", "/api/v1/items"),
        ("API alerts", "/api/v1/alerts"),
        ("API feeds", "/api/v1/feeds"),
        ("API search Trump", "/api/v1/search?q=Trump"),
    ]


@dataclass
class Timing:
    name: str
    path: str
    ms: list[float] = field(default_factory=list)
    size: int = 0
    error: str | None = None


def measure(base: str, wanted: Sequence[tuple[str, str]], warmup: int, runs: int) -> list[Timing]:
    """Each page ``warmup`` times untimed, then ``runs`` times timed, one request at a
    time on one keep-alive connection (opened again, untimed, if the server closed it)."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    conn: http.client.HTTPConnection | None = None
    out = []
    for name, path in wanted:
        t = Timing(name, path)
        accept = "application/json" if path.startswith("/api/") else "text/html"
        for k in range(warmup + runs):
            for attempt in (1, 2):
                if conn is None:
                    conn = http.client.HTTPConnection(host, int(port), timeout=120)
                    conn.connect()
                started = time.perf_counter()
                try:
                    conn.request("GET", path, headers={"Accept": accept})
                    resp = conn.getresponse()
                    body = resp.read()
                    break
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()
                    conn = None
                    # A keep-alive connection the server closed meanwhile: once more.
                    if attempt == 2 or not isinstance(exc, (http.client.RemoteDisconnected,
                                                            ConnectionResetError,
                                                            BrokenPipeError)):
                        t.error = f"{type(exc).__name__}: {exc}"
                        break
            if t.error:
                break
            took = time.perf_counter() - started
            if resp.status != 200:
                t.error = f"HTTP {resp.status}: " + body[:300].decode("utf-8", "replace")
                break
            if resp.will_close:
                conn.close()  # type: ignore[union-attr]
                conn = None
            if k >= warmup:
                t.ms.append(took * 1000)
                t.size = len(body)
        out.append(t)
    if conn is not None:
        conn.close()
    return out


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    base: str
    start_s: float
    log: Path


def serve(config: Path, log_path: Path) -> Server:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env["PYTHONUNBUFFERED"] = "1"
    with log_path.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen([str(VENV_MONITOR), "--config", str(config), "web",
                                 "--listen", "127.0.0.1:0"], cwd=ROOT, env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = SERVING.search(log_path.read_text(encoding="utf-8", errors="replace"))
        if found:
            return Server(proc, found.group(1), time.perf_counter() - started, log_path)
        if proc.poll() is not None:
            break
        time.sleep(0.01)
    stop(proc)
    raise SystemExit(f"monitor web did not start (exit {proc.returncode}); its log:\n"
                     + log_path.read_text(encoding="utf-8", errors="replace")[-3000:])


def memory(pid: int) -> tuple[float, float]:
    """(RSS, peak RSS) of ``pid`` in MB, from /proc."""
    fields = dict(line.split(":", 1) for line in
                  Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def stop(proc: subprocess.Popen[bytes]) -> int | None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def report(backend: str, timings: list[Timing]) -> None:
    width = max(len(t.name) for t in timings)
    log(f"  {'page':<{width}}  {'p50 ms':>7}  {'p95 ms':>7}  {'max ms':>7}  {'KB':>7}  path")
    for t in timings:
        if t.error:
            log(f"  {t.name:<{width}}  {'FAILED':>7}  {' '.join(t.error.split())[:150]}  {t.path}")
            continue
        log(f"  {t.name:<{width}}  {_pct(t.ms, 0.5):7.1f}  {_pct(t.ms, 0.95):7.1f}  "
            f"{max(t.ms):7.1f}  {t.size / 1024:7.1f}  {t.path}")
    done = [t for t in timings if not t.error]
    if done:
        worst = max(done, key=lambda t: _pct(t.ms, 0.95))
        p95 = _pct(worst.ms, 0.95)
        log(f"{backend}: worst p95: {p95:.1f} ms ({worst.name}) vs goal {GOAL_MS:.0f} ms"
            f"{'' if p95 < GOAL_MS else '  NOT MET'}")


def _sqlite_stats(engine: Engine, analyze: bool) -> str:
    with engine.connect() as conn:
        if analyze:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
            return "with ANALYZE statistics"
        has = conn.exec_driver_sql(
            "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").first()
        if has:
            conn.exec_driver_sql("DROP TABLE sqlite_stat1")
            conn.commit()
        return "without ANALYZE statistics (as monitor leaves a database)"


def machine(args: argparse.Namespace) -> None:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "?")
    log(f"machine: {platform.node()}, {platform.platform()}, {os.cpu_count()} CPUs ({cpu}), "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"monitor {__version__}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    if "postgresql" in args.backends.split(","):
        import psycopg

        with psycopg.connect(args.pg) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        log(f"PostgreSQL {row[0] if row else '?'} at {args.pg.rsplit('/', 1)[0]}")


def run_backend(backend: str, args: argparse.Namespace, workdir: Path) -> None:
    url = _kept(backend, args, NAME) if args.keep else None
    engine = db.make_engine(url) if url else None
    info = filled(engine, args.items) if engine is not None else None
    if engine is not None:
        engine.dispose()
    if info is None:
        url = fresh(backend, args.pg, args.keep or workdir, NAME)
        engine = db.make_engine(url)
        db.upgrade(engine)
        took = fill(engine, args.items)
        log(f"{backend}: filled {args.items:,} items in {took:.0f}s")
        how = f"filled in {took:.0f}s"
    else:
        assert url is not None
        engine = db.make_engine(url)
        how = f"kept, filled {info['at']} in {info['fill_s']}s"
    try:
        db.upgrade(engine)  # a migration landed since the fill: as `monitor run` would
        stats = _sqlite_stats(engine, args.analyze) if backend == "sqlite" else "VACUUM ANALYZE"
        wanted = [pg for pg in pages(engine)
                  if not args.pages or re.search(args.pages, f"{pg[0]} {pg[1]}")]
        with engine.connect() as conn:
            counts = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                      for t in ("items", "stories", "feeds", "alerts", "digests")}
            dups = conn.execute(text("SELECT count(*) FROM items "
                                     "WHERE status = 'duplicate'")).scalar_one()
        config = (args.keep or workdir) / f"{NAME}-{backend}.toml"
        write_config(config, url, engine)
    finally:
        engine.dispose()
    log(f"{backend}: {how}; {stats}; " + ", ".join(f"{c:,} {t}" for t, c in counts.items())
        + f" ({dups:,} copies); config {config}")
    server = serve(config, (args.keep or workdir) / f"{NAME}-{backend}.log")
    try:
        log(f"  monitor web: {server.start_s:.2f}s from exec to its 'serving' line "
            f"({server.base}); {len(wanted)} pages × {args.warmup} + {args.requests} requests")
        timings = measure(server.base, wanted, args.warmup, args.requests)
        rss, peak = memory(server.proc.pid)
    finally:
        code = stop(server.proc)
    served = server.log.read_text(encoding="utf-8", errors="replace")
    log(f"  server RSS after the run {rss:.0f} MB (peak {peak:.0f} MB); exit {code}; log "
        f"{server.log}: {served.count('Traceback')} tracebacks, "
        f"{len(re.findall(r' ERROR ', served))} ERROR lines")
    report(backend, timings)
    for t in timings:
        if t.error:
            tail = [line for line in served.splitlines() if t.path.split("?")[0] in line
                    or "Traceback" in line or "Error" in line][-8:]
            log(f"  {t.name} failed: {t.error[:300]}\n    server log: "
                + "\n    ".join(tail or ["(nothing about it)"]))


def drop_pg(args: argparse.Namespace) -> None:
    import psycopg

    with psycopg.connect(args.pg, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {NAME} WITH (FORCE)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test",
                    help="an existing database to connect to as an administrator; the "
                         f"benchmark's is {NAME} beside it")
    ap.add_argument("--requests", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--pages", metavar="REGEX", help="only the pages whose name or path "
                    "this matches, e.g. 'search|API'")
    ap.add_argument("--analyze", action="store_true",
                    help="SQLite: run ANALYZE before serving (monitor never does)")
    ap.add_argument("--keep", type=Path, metavar="DIR",
                    help=f"keep the databases (SQLite: DIR/{NAME}.db; PostgreSQL: {NAME}), the "
                         "configs and the server logs in DIR and, run again, measure them "
                         "without filling them again")
    args = ap.parse_args()
    if args.keep:
        args.keep = args.keep.resolve()
        args.keep.mkdir(parents=True, exist_ok=True)
    if not VENV_MONITOR.exists():
        raise SystemExit(f"{VENV_MONITOR} is missing: make install")
    machine(args)
    with tempfile.TemporaryDirectory(prefix="web-bench-") as tmp:
        for backend in args.backends.split(","):
            try:
                run_backend(backend, args, Path(tmp))
            finally:
                if backend == "postgresql" and not args.keep:
                    drop_pg(args)


if __name__ == "__main__":
    main()
