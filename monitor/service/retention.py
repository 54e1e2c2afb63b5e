"""Retention: what ``[retention]`` says has been kept long enough is removed, a batch per
transaction, by ``monitor db prune`` or by the daemon at quiet moments.

An item whose text goes keeps its row (title, URLs, feed, dedup verdict, alerts) and its
text hash; an original also keeps its band keys and a sketch of its shingles, so a late
copy of the story is still found (by hash, URL, GUID or band keys) and verified exactly
(:meth:`monitor.dedup.index.Deduplicator.matches`). A copy's band keys go with its
text: with neither text nor sketch they could find nothing, and its original carries
the story's. Digests
sent or failed keep their row and alerts but not their bytes; stopped workers' rows go;
alert channel messages delivered or dead go (their alerts stay).
Seeds are never pruned. A story no article joined for ``story_index`` loses its index
rows: it is no longer a candidate, and the lookup costs what the recent stories cost,
however many are stored. What was freed is recorded in ``meta`` for ``monitor status``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from monitor import store
from monitor.clock import Clock
from monitor.config import RetentionSettings
from monitor.dedup.fingerprint import sketch
from monitor.dedup.index import Deduplicator
from monitor.store.channels import prune_messages

log = logging.getLogger(__name__)

LAST_KEY = "retention.last"  # meta: the last round's Pruned, with its time
TOTAL_KEY = "retention.freed_bytes"  # meta: bytes freed by every round so far


@dataclass(frozen=True)
class Pruned:
    texts: int = 0
    text_bytes: int = 0
    digests: int = 0
    digest_bytes: int = 0
    workers: int = 0
    stories: int = 0  # stories whose index rows went (no longer candidates)
    channel_messages: int = 0  # delivered or dead alert channel messages

    def __add__(self, other: Pruned) -> Pruned:
        return Pruned(*(a + b for a, b in zip(asdict(self).values(), asdict(other).values(),
                                              strict=True)))

    @property
    def freed(self) -> int:
        return self.text_bytes + self.digest_bytes

    def __bool__(self) -> bool:
        return bool(self.texts or self.digests or self.workers or self.stories
                    or self.channel_messages)

    def render(self) -> str:
        return (f"{self.texts} texts ({size(self.text_bytes)}), {self.digests} digest bodies "
                f"({size(self.digest_bytes)}), {self.workers} worker rows, the index of "
                f"{self.stories} stories, {self.channel_messages} channel messages")


def cutoffs(settings: RetentionSettings, now: datetime) -> store.Cutoffs:
    def before(seconds: int) -> datetime | None:
        return now - timedelta(seconds=seconds) if seconds else None

    return store.Cutoffs(before(settings.duplicate_text), before(settings.original_text),
                         before(settings.digest_bodies), before(settings.stopped_workers),
                         before(settings.story_index), before(settings.channel_messages))


def prune_batch(sessions: sessionmaker[Session], dedup: Deduplicator,
                settings: RetentionSettings, now: datetime) -> Pruned:
    """One batch of each kind, each in a transaction of its own. Raises SQLAlchemyError."""
    c = cutoffs(settings, now)
    with sessions.begin() as s:
        # Band keys go with copies' texts: never while the index is being rebuilt
        # (which rewrites every item's keys: the two deadlocked on PostgreSQL, seen in
        # benchmarks/retention.py). Waits for the rebuild, as seed loading does; workers
        # pruning at once share the lock and take different rows (SKIP LOCKED).
        store.lock_near_index(s, shared=True)
        due = store.texts_to_prune(s, c, settings.batch)
        sketches: dict[int, tuple[int, bytes] | None] = {}
        for t in due:
            fp = dedup.fingerprint(t.text) if t.original else None
            sketches[t.id] = (fp.words, sketch(fp)) if fp is not None and fp.band_keys else None
        text_bytes = store.prune_texts(s, sketches, now)
    with sessions.begin() as s:
        digests, digest_bytes = store.prune_digest_bodies(s, c.digest_bodies, settings.batch)
    with sessions.begin() as s:
        workers = store.prune_workers(s, c.stopped_workers)
    stories = 0
    if c.story_index is not None:
        with sessions.begin() as s:
            stories = store.prune_story_index(s, c.story_index, settings.batch)
    with sessions.begin() as s:
        messages = prune_messages(s, c.channel_messages, settings.batch)
    return Pruned(len(due), text_bytes, digests, digest_bytes, workers, stories, messages)


def prune(sessions: sessionmaker[Session], dedup: Deduplicator, settings: RetentionSettings,
          clock: Clock, *, go_on: Callable[[], bool] = lambda: True,
          pause: float = 0.0) -> Pruned:
    """Batches until nothing is due or ``go_on()`` says stop, ``pause`` seconds apart;
    records what was freed. Returns the total. Raises SQLAlchemyError."""
    total = Pruned()
    while True:
        done = prune_batch(sessions, dedup, settings, clock())
        total += done
        if not done or not go_on():
            break
        if pause:
            time.sleep(pause)
    if total:
        record(sessions, total, clock())
    return total


def record(sessions: sessionmaker[Session], pruned: Pruned, now: datetime) -> None:
    with sessions.begin() as s:
        before = store.get_meta(s, TOTAL_KEY, lock=True)
        store.set_meta(s, TOTAL_KEY, str(int(before or 0) + pruned.freed))
        store.set_meta(s, LAST_KEY, json.dumps({"at": now.isoformat(), **asdict(pruned)}))


@dataclass(frozen=True)
class Report:
    """What ``monitor status`` says of retention."""

    database_bytes: int | None
    freed_bytes: int  # by every round so far
    last_at: datetime | None
    last: Pruned | None


def report(session: Session) -> Report:
    total = store.get_meta(session, TOTAL_KEY)
    raw = store.get_meta(session, LAST_KEY)
    last_at, last = None, None
    if raw:
        try:
            data = json.loads(raw)
            last_at = datetime.fromisoformat(data.pop("at"))
            last = Pruned(**data)
        except (ValueError, TypeError, KeyError):
            pass
    return Report(store.database_size(session), int(total or 0), last_at, last)


def size(n: float) -> str:
    """``1536`` -> ``"1.5 KB"``."""
    if n < 1024:
        return f"{int(n):,} bytes"
    units = iter(("KB", "MB", "GB", "TB"))
    unit = next(units)
    n /= 1024
    while n >= 1024 and unit != "TB":
        n, unit = n / 1024, next(units)
    return f"{n:.1f} {unit}"
