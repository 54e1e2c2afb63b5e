"""The near-duplicate index: the stored seeds' and items' band keys, kept up to date,
and the verified candidates a new text finds in it. Joins the pure fingerprints
(:mod:`monitor.dedup.fingerprint`) and verdicts (:mod:`monitor.dedup.verdict`) to the
store; what a text is, all keys considered, is :mod:`monitor.dedup.decision`.

Every call takes the caller's session: the pipeline runs these inside the
transaction that stores the item, so a verdict and the index it leaves behind
commit together.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor import store
from monitor.config import Settings, Thresholds
from monitor.dedup.fingerprint import (
    Boilerplate,
    Fingerprint,
    Fingerprinter,
    Normalized,
    from_sketch,
    narrowed,
    text_hash,
)
from monitor.dedup.seeds import read_seeds
from monitor.dedup.verdict import Match, rank
from monitor.errors import StoreError

log = logging.getLogger(__name__)

INDEX_VERSION_KEY = "near_dedup_index"


# A verified candidate: its scores and whether they make it a duplicate.
NearMatch = Match[store.NearCandidate]


class Deduplicator:
    """Near-duplicate lookups and index upkeep, with one set of thresholds."""

    def __init__(self, thresholds: Thresholds | None = None,
                 boilerplate: tuple[str, ...] = ()) -> None:
        self.thresholds = thresholds or Thresholds()
        self.fingerprinter = Fingerprinter(Boilerplate(boilerplate))

    @classmethod
    def from_settings(cls, settings: Settings) -> Deduplicator:
        return cls(settings.dedup.thresholds, settings.dedup.boilerplate)

    def fingerprint(self, text: str | Normalized) -> Fingerprint:
        return self.fingerprinter.fingerprint(text)

    def matches(self, session: Session, fp: Fingerprint) -> list[NearMatch]:
        """Verified candidates for ``fp``, best first; duplicates before the rest. A
        candidate whose text was pruned is verified on the sketch kept of it, against
        ``fp`` narrowed the same way."""
        t = self.thresholds
        cands = store.near_candidates(session, fp.band_keys, t.max_candidates)
        whole = rank(fp, ((c, self.fingerprint(c.text)) for c in cands if c.sketch is None), t)
        kept = [(c, from_sketch(*c.sketch)) for c in cands if c.sketch is not None]
        if not kept:
            return whole
        merged = whole + rank(narrowed(fp), kept, t)
        merged.sort(key=lambda m: (m.duplicate, m.scores.similarity), reverse=True)
        return merged

    def find(self, session: Session, fp: Fingerprint) -> NearMatch | None:
        """The stored text ``fp`` near-duplicates, if any."""
        if fp.words < self.thresholds.min_words:
            return None  # no candidate could qualify (is_duplicate): spare the query
        return pick(self.matches(session, fp))

    def index_item(self, session: Session, item_id: int, fp: Fingerprint) -> None:
        store.add_item_bands(session, item_id, fp.band_keys)

    def index_seed(self, session: Session, seed_id: int, fp: Fingerprint) -> None:
        store.replace_seed_bands(session, seed_id, fp.band_keys)

    def index_is_current(self, session: Session) -> bool:
        return store.get_meta(session, INDEX_VERSION_KEY) == self.fingerprinter.version

    def rebuild_index(self, sessions: sessionmaker[Session], *, force: bool = False,
                      batch: int = 500) -> int:
        """Recompute every band key (seeds and items) unless the index is current (or
        whatever its version, with ``force``). Returns the items indexed.

        Needed once after upgrading from a release without the index, and after a
        change to the fingerprint parameters or the configured boilerplate patterns.
        Runs in transactions of ``batch`` items, each replacing those items' keys, so
        workers storing items meanwhile are never in its way, and a rebuild that
        stops (a restart, a crash) resumes after the last batch it committed. Workers
        starting together take turns (:func:`monitor.store.near_index_rebuild`).
        Raises SQLAlchemyError.
        """
        version = self.fingerprinter.version
        with store.near_index_rebuild(sessions):
            with sessions() as s:
                old = store.get_meta(s, INDEX_VERSION_KEY)
                progress = _progress(store.get_meta(s, REBUILD_KEY), version)
            if old == version and not force:
                return 0  # another worker has just rebuilt it
            started = time.monotonic()
            if progress is None:
                log.info("near-duplicate index: rebuilding (stored version %s, current %s)",
                         old or "none", version)
                with sessions.begin() as s:
                    for seed_id, text in store.seed_texts(s):
                        self.index_seed(s, seed_id, self.fingerprint(text))
                    store.set_meta(s, REBUILD_KEY, _progress_value(version, 0))
            else:
                log.info("near-duplicate index: resuming the rebuild after item %d", progress)
            done, last = 0, progress or 0
            while True:
                with sessions.begin() as s:
                    rows = store.indexable_items(s, last, batch)
                    if not rows:
                        store.set_meta(s, INDEX_VERSION_KEY, version)
                        store.delete_meta(s, REBUILD_KEY)
                        break
                    store.replace_item_bands(s, {item_id: self.fingerprint(text).band_keys
                                                 for item_id, text in rows})
                    done, last = done + len(rows), rows[-1][0]
                    store.set_meta(s, REBUILD_KEY, _progress_value(version, last))
                log.info("near-duplicate index: %d items indexed", done)
        log.info("near-duplicate index: rebuilt, %d items in %.1f s", done,
                 time.monotonic() - started)
        return done


REBUILD_KEY = "near_dedup_rebuild"  # a rebuild under way: {"version", "after": last item id}


def _progress_value(version: str, after: int) -> str:
    return json.dumps({"version": version, "after": after})


def _progress(raw: str | None, version: str) -> int | None:
    """The last item a rebuild to ``version`` committed, or None (none under way)."""
    try:
        value = json.loads(raw) if raw else None
        if isinstance(value, dict) and value.get("version") == version:
            return int(value["after"])
    except (ValueError, TypeError, KeyError):
        pass
    return None


def pick(matches: list[NearMatch]) -> NearMatch | None:
    """The duplicate to record. The original itself wins over a copy of it (a teaser of
    it, say) when both qualify, so the recorded similarity means "to the original"."""
    dups = [m for m in matches if m.duplicate]
    originals = [m for m in dups if m.candidate.ref == m.candidate.original]
    best = originals or dups
    return best[0] if best else None


def load_seeds(sessions: sessionmaker[Session], settings: Settings, dedup: Deduplicator,
               now: datetime) -> dict[str, int]:
    """Load (or refresh) the seed corpus, and bring the near-duplicate index up to date
    (rebuilt when its fingerprint version differs). Idempotent. Returns counts per outcome.

    Raises :class:`monitor.errors.SeedError` or :class:`StoreError`.
    """
    docs = read_seeds(settings.seeds_path)
    counts = {"added": 0, "updated": 0, "unchanged": 0}
    try:
        with sessions.begin() as s:
            store.lock_near_index(s)  # workers starting together load the seeds in turn
            for doc in docs:
                outcome, seed_id = store.upsert_seed(
                    s, name=doc.name, file_sha256=doc.file_sha256,
                    title=doc.title, text=doc.text, text_hash=text_hash(doc.text),
                    source_url=doc.source_url, published_at=doc.published_at, now=now,
                )
                counts[outcome] += 1
                if outcome != "unchanged":
                    dedup.index_seed(s, seed_id, dedup.fingerprint(doc.text))
        with sessions() as s:
            current = dedup.index_is_current(s)
        if not current:
            dedup.rebuild_index(sessions)
    except SQLAlchemyError as exc:
        raise StoreError(f"loading seeds failed: {exc}") from exc
    log.info("seeds from %s: %d added, %d updated, %d unchanged", settings.seeds_path,
             counts["added"], counts["updated"], counts["unchanged"])
    return counts
