"""The one decision of what a text is among everything stored: a copy of a seed or an
item (by GUID, canonical URL, normalized text, or near-duplicate text), a fuller copy
that takes over as its story's original, or new. The pipeline stores by it, inside the
transaction that stores the item; ``monitor dedup check`` explains it. One function, so
the two never disagree.

The order: exact keys first (a GUID that means one article everywhere, the canonical
URL, the text hash; seeds before items), then near-duplicates (LSH band keys, verified
by the exact shingle scores). Where other workers may store copies of the same story at
the same moment, the caller passes ``lock``: it holds the story's keys until the
transaction ends, and the exact keys are looked up again once it holds them (see
docs/storing.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from monitor import store
from monitor.dedup.fingerprint import Fingerprint, Normalized, normalized, story_key, text_hash
from monitor.dedup.index import Deduplicator, NearMatch, pick
from monitor.dedup.verdict import is_fuller


@dataclass(frozen=True)
class Keys:
    """What a text is known by, besides its text."""

    feed_id: int = 0  # the feed it comes from (0: none): its own GUIDs are not copies
    guid: str | None = None  # only a GUID that means the same article in any feed
    canonical: str | None = None
    norm: Normalized | None = None  # None: too little text to call anything a copy
    text_hash: str | None = None  # of ``norm`` (see :meth:`of`)

    @classmethod
    def of(cls, norm: Normalized | None, *, feed_id: int = 0, guid: str | None = None,
           canonical: str | None = None) -> Keys:
        return cls(feed_id, guid, canonical, norm,
                   text_hash(norm) if norm is not None else None)


@dataclass(frozen=True)
class Decision:
    ref: store.Ref | None = None  # what it duplicates (its story's original); None: new
    method: str | None = None  # "guid" | "url" | "exact" | "near"
    similarity: float | None = None
    fingerprint: Fingerprint | None = None  # computed when exact keys found nothing
    matches: tuple[NearMatch, ...] = ()  # verified near candidates, best first
    near: NearMatch | None = None  # the near-duplicate match recorded (or taken over)
    replaces: store.Ref | None = None  # the original this fuller copy takes over from

    @property
    def new(self) -> bool:
        return self.ref is None


class DecideAgain(Exception):
    """Another worker changed what this decision rests on (the original it would take
    over from stopped being one): roll back and decide again."""


def story_keys(keys: Keys, fp: Fingerprint | None) -> list[int]:
    """The keys under which another copy of this story could be found: its GUID (when
    global), canonical URL, text hash and near-duplicate band keys. Two texts whose
    decisions could depend on each other share one, so locking them serializes exactly
    those."""
    exact = [story_key(kind, value) for kind, value in (
        ("guid", keys.guid), ("url", keys.canonical), ("hash", keys.text_hash)) if value]
    return exact + list(fp.band_keys if fp is not None else ())


def exact(session: Session, keys: Keys, exclude: int = 0) -> Decision:
    """What the text duplicates by GUID, canonical URL or text hash (or nothing),
    the item ``exclude`` and its copies left out."""
    thash = keys.text_hash
    known = store.lookup_known(session, keys.feed_id,
                               guids=[keys.guid] if keys.guid else [],
                               urls=[keys.canonical] if keys.canonical else [],
                               hashes=[thash] if thash else [], exclude=exclude)
    for key, found, method, similarity in ((keys.guid, known.by_guid, "guid", None),
                                           (keys.canonical, known.by_url, "url", None),
                                           (thash, known.by_hash, "exact", 1.0)):
        ref = found.get(key) if key else None
        # A copy of ``exclude`` resolves to it: the only item holding the key, since a
        # story has one original per canonical URL and per text.
        if ref is not None and not _is_item(ref, exclude):
            return Decision(ref, method, similarity)
    return Decision()


def _is_item(ref: store.Ref, item_id: int) -> bool:
    return ref.kind == "item" and ref.id == item_id


def decide(session: Session, dedup: Deduplicator, keys: Keys, *,
           known: Decision | None = None,
           lock: Callable[[Iterable[int]], bool] | None = None,
           exclude: int = 0) -> Decision:
    """What the text known by ``keys`` is, in ``session``'s view of the store.

    ``known``: a verdict found before (by GUID or URL, before the page was fetched).
    ``lock``: takes the story's keys for the rest of the transaction and says whether
    other writers may have stored items meanwhile (then the exact keys are looked up
    again). The original a fuller copy takes over from is locked too; raises
    :class:`DecideAgain` when it has stopped being one. ``exclude``: a stored item
    whose text is decided again (``monitor items refetch``): it and its copies are not
    candidates (its own band keys must be gone from the index already)."""
    d = known if known is not None and not known.new else exact(session, keys, exclude)
    if not d.new:
        return d  # exact and URL copies are not fingerprinted: they add nothing
    fp = dedup.fingerprint(keys.norm) if keys.norm is not None else None
    if lock is not None and lock(story_keys(keys, fp)):
        d = exact(session, keys, exclude)
        if not d.new:
            return d
    if fp is None:
        return Decision()
    matches = tuple(m for m in dedup.matches(session, fp)
                    if not _is_item(m.candidate.original, exclude)) \
        if fp.words >= dedup.thresholds.min_words else ()  # none could qualify otherwise
    near = pick(list(matches))
    if near is None:
        return Decision(fingerprint=fp, matches=matches)
    original = near.candidate.original
    if original.kind == "item" and near.candidate.ref == original \
            and is_fuller(fp, near, dedup.thresholds):
        if lock is not None and not store.lock_original(session, original.id):
            raise DecideAgain(f"item {original.id} stopped being an original")
        return Decision(fingerprint=fp, matches=matches, near=near, replaces=original)
    return Decision(original, "near", round(near.scores.similarity, 4), fp, matches, near)


@dataclass(frozen=True)
class Explanation:
    """Why a text is, or is not, a duplicate: for ``monitor dedup check``."""

    words: int  # after boilerplate lines are dropped
    boilerplate: tuple[str, ...]  # the lines dropped
    band_keys: int
    decision: Decision  # the daemon's, by :func:`decide`
    matches: tuple[NearMatch, ...]  # verified near candidates, best first

    @property
    def verdict(self) -> str:
        """ "url" | "exact" | "near" | "fuller" (new, taking over from an original) | "new"."""
        d = self.decision
        return d.method or ("fuller" if d.replaces is not None else "new")


def explain(session: Session, dedup: Deduplicator, text: str,
            canonical: str | None = None) -> Explanation:
    """What the daemon would decide for ``text`` (from a page at ``canonical``), with the
    near candidates' scores, shown even where an exact key decides."""
    norm = normalized(text)
    d = decide(session, dedup, Keys.of(norm, canonical=canonical))
    fp = d.fingerprint or dedup.fingerprint(norm)
    matches = d.matches or tuple(dedup.matches(session, fp))
    boiler = dedup.fingerprinter.boilerplate
    dropped = tuple(line.strip() for line in text.splitlines()
                    if boiler.is_boilerplate(line) and line.strip())
    return Explanation(fp.words, dropped, len(fp.band_keys), d, matches)
