"""The near-duplicate index: LSH band keys of seeds and items, and their lookup."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BindParameter,
    Select,
    bindparam,
    delete,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session, aliased, sessionmaker

from monitor.models import Feed, Item, ItemBand, ItemSketch, Seed, SeedBand
from monitor.store.items import Ref


@dataclass(frozen=True)
class NearCandidate:
    """A stored text that shares LSH band keys with the one being checked."""

    ref: Ref  # the stored seed or item that matched
    original: Ref  # what it duplicates, if it is itself a copy; else the same as ref
    hits: int  # band keys shared
    text: str
    title: str | None
    feed: str | None  # the item's feed name; None for a seed
    # An item whose text was pruned: (words, shingle sketch), what near-dedup kept.
    sketch: tuple[int, bytes] | None = None


# Any constant, distinct from db.py's migration lock.
_PG_NEAR_INDEX_LOCK = 0x6D6F6E6E  # "monn"


def lock_near_index(session: Session, *, shared: bool = False) -> None:
    """Serialize index rebuilds between workers starting together on PostgreSQL (held
    until the transaction ends); ``shared``: for work that may run beside itself but not
    beside a rebuild (pruning copies' keys). SQLite allows one writer anyway."""
    if session.get_bind().dialect.name == "postgresql":
        take = func.pg_advisory_xact_lock_shared if shared else func.pg_advisory_xact_lock
        session.execute(select(take(_PG_NEAR_INDEX_LOCK)))


def add_item_bands(session: Session, item_id: int, keys: Sequence[int]) -> None:
    if keys:
        session.execute(insert(ItemBand), [{"key": k, "item_id": item_id} for k in keys])


def replace_seed_bands(session: Session, seed_id: int, keys: Sequence[int]) -> None:
    session.execute(delete(SeedBand).where(SeedBand.seed_id == seed_id))
    if keys:
        session.execute(insert(SeedBand), [{"key": k, "seed_id": seed_id} for k in keys])


def replace_item_bands(session: Session, keys: Mapping[int, Sequence[int]]) -> None:
    """Make the band keys of each item in ``keys`` exactly these."""
    ids = list(keys)
    for start in range(0, len(ids), 500):
        session.execute(delete(ItemBand).where(ItemBand.item_id.in_(ids[start:start + 500])))
    rows = [{"key": k, "item_id": item_id} for item_id, ks in keys.items() for k in ks]
    if rows:
        session.execute(insert(ItemBand), rows)


@contextmanager
def near_index_rebuild(sessions: sessionmaker[Session]) -> Iterator[None]:
    """Held while the near-duplicate index is rebuilt, across the rebuild's many
    transactions: on PostgreSQL a session-level advisory lock, on a connection of its
    own, which workers loading the seeds at start (:func:`lock_near_index`) wait for.
    SQLite has one writer at a time and one daemon per database anyway."""
    engine = sessions.kw["bind"]
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        conn.execute(select(func.pg_advisory_lock(_PG_NEAR_INDEX_LOCK)))
        conn.commit()
        try:
            yield
        finally:
            conn.execute(select(func.pg_advisory_unlock(_PG_NEAR_INDEX_LOCK)))
            conn.commit()


def seed_texts(session: Session) -> list[tuple[int, str]]:
    return [(i, t) for i, t in session.execute(select(Seed.id, Seed.text).order_by(Seed.id))]


def indexable_items(session: Session, after_id: int, limit: int) -> list[tuple[int, str]]:
    """(id, text) of items the near-duplicate index should hold, in id order: originals
    and near duplicates (exact, URL and GUID copies add nothing to find)."""
    q = (select(Item.id, Item.text)
         .where(Item.id > after_id, Item.text_pruned_at.is_(None),  # their keys cannot be
                or_(Item.status == "new", Item.dedup_method == "near"))  # computed again
         .order_by(Item.id).limit(limit))
    return [(i, t) for i, t in session.execute(q)]


def _near_candidates_query() -> Select[tuple[Any, ...]]:
    """One statement for both seeds and items: band-key hits, ranked, joined to the
    texts and to what each candidate duplicates. Built once; ``:keys`` and ``:limit``
    are bound per call."""
    keys: BindParameter[list[int]] = bindparam("keys", expanding=True)
    limit: BindParameter[int] = bindparam("limit")
    hits = func.count().label("hits")
    item_hits = (select(ItemBand.item_id.label("id"), hits).where(ItemBand.key.in_(keys))
                 .group_by(ItemBand.item_id).order_by(hits.desc(), ItemBand.item_id)
                 .limit(limit).subquery())
    seed_hits = (select(SeedBand.seed_id.label("id"), hits).where(SeedBand.key.in_(keys))
                 .group_by(SeedBand.seed_id).order_by(hits.desc(), SeedBand.seed_id)
                 .limit(limit).subquery())
    orig, orig_seed = aliased(Item), aliased(Seed)
    items = (
        select(literal("item").label("kind"), Item.id, item_hits.c.hits, Item.text, Item.title,
               Feed.name.label("feed"), func.coalesce(Item.canonical_url, Item.url).label("url"),
               orig.id.label("orig_item"), func.coalesce(orig.canonical_url, orig.url)
               .label("orig_item_url"), orig_seed.id.label("orig_seed"),
               orig_seed.source_url.label("orig_seed_url"), orig_seed.name.label("orig_seed_name"),
               ItemSketch.words.label("sketch_words"), ItemSketch.shingles.label("sketch"))
        .join(item_hits, item_hits.c.id == Item.id)
        .join(Feed, Feed.id == Item.feed_id)
        .outerjoin(ItemSketch, ItemSketch.item_id == Item.id)
        .outerjoin(orig, orig.id == Item.duplicate_of_item_id)
        .outerjoin(orig_seed, orig_seed.id == Item.duplicate_of_seed_id)
    )
    seeds = (
        select(literal("seed").label("kind"), Seed.id, seed_hits.c.hits, Seed.text, Seed.title,
               null().label("feed"), Seed.source_url.label("url"), null(), null(), null(), null(),
               Seed.name.label("seed_name"), null(), null())
        .join(seed_hits, seed_hits.c.id == Seed.id)
    )
    return union_all(items, seeds).subquery().select()


_NEAR_CANDIDATES = _near_candidates_query()


def near_candidates(session: Session, keys: Sequence[int], limit: int) -> list[NearCandidate]:
    """Seeds and items sharing band keys with ``keys``, most shared keys first (seeds
    before items on a tie). A candidate that is itself a copy names its original."""
    if not keys:
        return []
    found: list[NearCandidate] = []
    for row in session.execute(_NEAR_CANDIDATES, {"keys": list(keys), "limit": limit}):
        if row.kind == "seed":
            ref = Ref("seed", row.id, row.url, row.orig_seed_name)
            original = ref
        else:
            ref = Ref("item", row.id, row.url)
            if row.orig_item is not None:
                original = Ref("item", row.orig_item, row.orig_item_url)
            elif row.orig_seed is not None:
                original = Ref("seed", row.orig_seed, row.orig_seed_url, row.orig_seed_name)
            else:
                original = ref
        kept = (row.sketch_words, row.sketch) if row.sketch is not None else None
        found.append(NearCandidate(ref, original, row.hits, row.text, row.title, row.feed,
                                   kept))
    found.sort(key=lambda c: (-c.hits, c.ref.kind != "seed", c.ref.id))
    return found[:limit]
