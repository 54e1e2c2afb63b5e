"""Which story an article joins, in the transaction that stores it: the pure signals
(:mod:`monitor.stories.signals`) joined to the store.

- A copy (of a stored item or a seed) joins its original's story: it reports what its
  original reports. It counts in the story, but its text does not move the centroid.
- An original is compared with the stories last reported within ``[stories] window``
  of its time (published, else first seen) that share one of its heaviest terms (an
  indexed lookup), and joins the one it resembles most, if enough, else starts one.

Race-free across workers: the caller locks the article's heaviest terms (with the dedup
keys, in one acquisition: :meth:`Stories.lock_terms`), so two workers storing two
write-ups of one new event decide one after the other and the second finds the first's
story; the story joined is locked (``FOR UPDATE``) and read again before it grows.

Document frequencies are counted per worker and added to the shared table in batches
(:meth:`Stories.flush`): adding them in every article's transaction would make every
worker wait for every other on the common words' rows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from monitor import store
from monitor.config import StorySettings
from monitor.dedup.fingerprint import story_key
from monitor.stories import signals

log = logging.getLogger(__name__)

CANDIDATES = 20  # stories compared with an article, most shared heavy terms first
FLUSH_DOCS = 200  # articles counted before their frequencies are written …
FLUSH_SECONDS = 10.0  # … or this long after the first of them
CACHE_SECONDS = 60.0  # stored frequencies read are used this long (others' counts come late)
CACHE_TERMS = 300_000  # terms whose stored frequency is kept, per space, at most
CENTROIDS_CACHED = 4096  # candidates' decoded centroids kept (about 10 KB each)


@dataclass(frozen=True)
class Joined:
    story_id: int
    new: bool  # it started the story
    resemblance: signals.Resemblance | None = None  # to the story joined (None: a copy)
    candidates: tuple[tuple[int, signals.Resemblance], ...] = ()  # best first


def lock_terms(t: signals.Terms) -> list[int]:
    """The lock keys of an article's heaviest terms, weighed with the shipped prior only
    (known before its transaction starts; two write-ups of one event share their
    heaviest names whatever else is stored)."""
    docs, prior_df = signals.prior()
    freq = signals.Frequencies(docs, lambda term: prior_df.get(term, 0))
    profile = signals.Profile.of(t, freq, freq)
    return [story_key("term", term) for term in profile.heaviest(signals.LOCK_TERMS)]


class Stories:
    """Joins articles to stories, and counts their terms for the shared frequencies.
    One per process; called from one thread at a time (the store thread)."""

    def __init__(self, settings: StorySettings) -> None:
        self.settings = settings
        self._pending: dict[int, Counter[str]] = {store.ALL: Counter(), store.NAMES: Counter()}
        self._pending_docs = 0
        self._since = 0.0
        self._lock = threading.Lock()
        # The stored frequencies as last read, this worker's flushes added since: common
        # terms are read once a minute, not for every article.
        self._cached: dict[int, dict[str, int]] = {store.ALL: {}, store.NAMES: {}}
        self._cached_docs: int | None = None
        self._cached_at = 0.0
        self._centroids: OrderedDict[int, tuple[str, signals.Centroid]] = OrderedDict()

    # --- joining ---------------------------------------------------------------------

    def join(self, s: Session, t: signals.Terms | None, *, title: str | None,
             language: str | None, at: datetime, now: datetime,
             copy_of: store.Ref | None = None) -> Joined:
        """The story of an article being stored in ``s``'s transaction (its terms ``t``,
        None for one with no text), joined or started; a copy of ``copy_of`` joins
        that one's story (if it has one, else it is treated as an original)."""
        if copy_of is not None:
            story_id = store.story_of(s, copy_of)
            row = store.lock_story(s, story_id) if story_id is not None else None
            if row is not None:
                store.grow_story(s, row, at=at)
                return Joined(row.id, new=False)
        if t is None or not self.settings.enabled:
            return self._start(s, None, title=title, language=language, at=at, now=now)
        self._count(t)
        profile = self.profile(s, t)
        chosen, scored = self._choose(s, profile, language, at)
        if chosen is not None:
            row = store.lock_story(s, chosen)  # read again: another worker may have grown it
            if row is not None:
                centroid = self._centroid(row.id, row.centroid).copy()
                old = centroid.heaviest()
                centroid.add(profile)
                raw, kept = centroid.stored()
                store.grow_story(s, row, at=at, centroid=raw, terms=centroid.heaviest(),
                                 old_terms=old)
                self._remember(row.id, raw, kept)
                return Joined(row.id, False, scored[0][1], tuple(scored))
        started = self._start(s, profile, title=title, language=language, at=at, now=now)
        return Joined(started.story_id, True, None, tuple(scored))

    def _start(self, s: Session, profile: signals.Profile | None, *, title: str | None,
               language: str | None, at: datetime, now: datetime) -> Joined:
        centroid = signals.Centroid()
        if profile is not None:
            centroid.add(profile)
        raw, kept = centroid.stored()
        story_id = store.create_story(s, title=title, language=language, at=at,
                                      centroid=raw,
                                      terms=centroid.heaviest() if self.settings.enabled
                                      else (), now=now)
        if profile is not None:
            self._remember(story_id, raw, kept)
        return Joined(story_id, new=True)

    def profile(self, s: Session, t: signals.Terms) -> signals.Profile:
        """``t`` weighted with the stored frequencies, and this worker's not yet stored."""
        self._read_frequencies(s, t)
        with self._lock:
            cached_all, cached_names = self._cached[store.ALL], self._cached[store.NAMES]
            docs = (self._cached_docs or 0) + self._pending_docs
            df_all = {term: cached_all.get(term, 0) + self._pending[store.ALL][term]
                      for term in t.all}
            df_names = {term: cached_names.get(term, 0) + self._pending[store.NAMES][term]
                        for term in t.names}
        return signals.Profile.of(t, signals.combined(docs, df_all),
                                  signals.combined(docs, df_names, with_prior=False))

    def _read_frequencies(self, s: Session, t: signals.Terms) -> None:
        """Read the stored frequencies of ``t``'s terms that are not cached (all of them
        once the cache is ``CACHE_SECONDS`` old): every worker's counts, as of now."""
        with self._lock:
            if (time.monotonic() - self._cached_at > CACHE_SECONDS
                    or max(len(c) for c in self._cached.values()) > CACHE_TERMS):
                self._cached = {store.ALL: {}, store.NAMES: {}}
                self._cached_docs = None
                self._cached_at = time.monotonic()
            cached_all, cached_names = self._cached[store.ALL], self._cached[store.NAMES]
            missing_all = [term for term in t.all if term not in cached_all]
            missing_names = [term for term in t.names if term not in cached_names]
            if self._cached_docs is not None and not missing_all and not missing_names:
                return
        docs, found_all, found_names = store.term_frequencies(s, missing_all, missing_names)
        with self._lock:
            self._cached_docs = docs
            for cached, missing, found in ((self._cached[store.ALL], missing_all, found_all),
                                           (self._cached[store.NAMES], missing_names,
                                            found_names)):
                for term in missing:
                    cached[term] = found.get(term, 0)

    def explain(self, s: Session, t: signals.Terms, *, language: str | None,
                at: datetime) -> Joined | None:
        """What :meth:`join` would decide for an original with terms ``t``, changing
        nothing: the story it would join (None: it would start one) and the candidates."""
        chosen, scored = self._choose(s, self.profile(s, t), language, at, explain=True)
        if chosen is None:
            return Joined(0, True, None, tuple(scored))
        return Joined(chosen, False, scored[0][1], tuple(scored))

    def _choose(self, s: Session, profile: signals.Profile, language: str | None,
                at: datetime, *, explain: bool = False,
                ) -> tuple[int | None, list[tuple[int, signals.Resemblance]]]:
        """The candidate stories (reported within the window before ``at``, sharing a
        heavy term: an indexed lookup) and the one ``profile`` joins, if any."""
        since = at - timedelta(seconds=self.settings.window)
        candidates = store.story_candidates(s, profile.heaviest(signals.INDEX_TERMS), since,
                                            language, CANDIDATES)
        return signals.best_story(
            profile, ((c.id, self._centroid(c.id, c.centroid)) for c in candidates),
            self.settings.threshold, explain=explain)

    def _centroid(self, story_id: int, raw: str) -> signals.Centroid:
        """A story's centroid as stored (``raw``), decoded once while it stays so (the
        stories of the day are everyone's candidates). Shared: never changed in place
        (:meth:`join` grows a copy)."""
        hit = self._centroids.get(story_id)
        if hit is not None and hit[0] == raw:
            self._centroids.move_to_end(story_id)
            return hit[1]
        centroid = signals.Centroid.from_json(raw)
        self._remember(story_id, raw, centroid)
        return centroid

    def _remember(self, story_id: int, raw: str, centroid: signals.Centroid) -> None:
        """``centroid`` is what ``raw``, stored for the story, decodes to (a story this
        worker started or grew is not decoded again). If the transaction rolls back, the
        stored one differs, and the next read decodes that."""
        self._centroids[story_id] = (raw, centroid)
        self._centroids.move_to_end(story_id)
        if len(self._centroids) > CENTROIDS_CACHED:
            self._centroids.popitem(last=False)

    # --- document frequencies ----------------------------------------------------------

    def _count(self, t: signals.Terms) -> None:
        with self._lock:
            if not self._pending_docs:
                self._since = time.monotonic()
            self._pending_docs += 1
            self._pending[store.ALL].update(t.all.keys())
            self._pending[store.NAMES].update(t.names.keys())

    def due(self) -> bool:
        """Whether the counted frequencies should be written now."""
        with self._lock:
            return self._pending_docs >= FLUSH_DOCS or (
                self._pending_docs > 0 and time.monotonic() - self._since >= FLUSH_SECONDS)

    def flush(self, sessions: sessionmaker[Session]) -> int:
        """Add the frequencies counted since the last flush to the shared table, in a
        transaction of their own. Returns the articles they were counted over. Raises
        SQLAlchemyError (the counts are kept, for the next flush)."""
        with self._lock:
            docs, pending = self._pending_docs, self._pending
            self._pending = {store.ALL: Counter(), store.NAMES: Counter()}
            self._pending_docs = 0
        if not docs:
            return 0
        try:
            with sessions.begin() as s:
                store.add_term_frequencies(s, docs, pending)
        except Exception:
            with self._lock:  # not lost: added back for the next flush
                self._pending_docs += docs
                for space, counts in pending.items():
                    self._pending[space].update(counts)
            raise
        with self._lock:  # stored now: the cache holds them instead of the pending counts
            if self._cached_docs is not None:
                self._cached_docs += docs
            for space, counts in pending.items():
                cached = self._cached[space]
                for term, n in counts.items():
                    if term in cached:
                        cached[term] += n
        return docs


BACKFILL_KEY = story_key("stories", "backfill")  # held by the worker giving stories


def give_stories(sessions: sessionmaker[Session], stories: Stories,
                 clock: Callable[[], datetime], batch: int = 200) -> int:
    """Give a story to every seed and item that has none (a database from before
    stories; new seeds), seeds first, then items in the order they were stored, a batch
    per transaction. Resumable: what has one keeps it. Workers starting at once take
    turns by batch (one lock), so none gives a story to what another just did. Returns
    how many got one."""
    done = 0
    with sessions.begin() as s:
        store.lock_story_keys(s, [BACKFILL_KEY])
        for u in store.seeds_without_story(s):
            done += _give(s, stories, u, clock())
    while True:
        with sessions.begin() as s:
            store.lock_story_keys(s, [BACKFILL_KEY])
            rows = store.items_without_story(s, batch)
            for u in rows:
                done += _give(s, stories, u, clock())
        stories.flush(sessions)
        if len(rows) < batch:
            break
        log.info("stories: %d stored items given their story so far", done)
    return done


def _give(s: Session, stories: Stories, u: store.Unstoried, now: datetime) -> int:
    t = signals.terms(u.title, u.text) if u.text else None
    joined = stories.join(s, t, title=u.title, language=u.language, at=u.at, now=now,
                          copy_of=u.duplicate_of)
    store.set_story(s, u.ref, joined.story_id)
    return 1


__all__ = ["CANDIDATES", "Joined", "Stories", "give_stories", "lock_terms"]
