"""All SQL lives here. Every function takes a Session; the caller owns the transaction.

Results leave this module as plain frozen dataclasses, never as ORM objects,
so nothing outside touches a lazy load or a detached instance.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
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
    update,
)
from sqlalchemy.orm import Session, aliased, defer

from monitor.config import FeedSettings, RuleSettings
from monitor.models import Feed, Item, ItemBand, Meta, Rule, Seed, SeedBand


@dataclass(frozen=True)
class FeedState:
    id: int
    name: str
    url: str
    fetch_url: str | None
    enabled: bool
    interval_seconds: int
    etag: str | None
    last_modified: str | None
    body_hash: str | None
    consecutive_failures: int
    next_poll_at: datetime | None

    @property
    def effective_url(self) -> str:
        return self.fetch_url or self.url


@dataclass(frozen=True)
class Ref:
    """What a duplicate duplicates: a seed or a stored item."""

    kind: str  # "seed" | "item"
    id: int
    url: str | None
    seed: str | None = None  # file name, for a seed


@dataclass(frozen=True)
class NewItem:
    feed_id: int
    guid: str
    url: str | None
    final_url: str | None
    canonical_url: str | None
    title: str | None
    author: str | None
    published_at: datetime | None
    fetched_at: datetime | None
    language: str | None
    site_name: str | None
    text: str
    text_source: str
    text_hash: str | None
    page_status: int | None
    page_error: str | None
    duplicate_of: Ref | None = None
    dedup_method: str | None = None
    similarity: float | None = None


# --- feeds ----------------------------------------------------------------------------------

def sync_feeds(session: Session, feeds: Sequence[FeedSettings], now: datetime) -> None:
    """Make the feeds table match the config. Feeds gone from the config are disabled,
    not deleted: their items stay, and re-adding the URL resumes their state."""
    rows = {f.url: f for f in session.scalars(select(Feed))}
    for fs in feeds:
        row = rows.pop(fs.url, None)
        if row is None:
            session.add(Feed(url=fs.url, name=fs.name, enabled=fs.enabled,
                             interval_seconds=fs.interval, consecutive_failures=0,
                             created_at=now))
        else:
            row.name, row.enabled, row.interval_seconds = fs.name, fs.enabled, fs.interval
    for row in rows.values():
        row.enabled = False
    session.flush()


def _feed_state(f: Feed) -> FeedState:
    return FeedState(
        id=f.id, name=f.name, url=f.url, fetch_url=f.fetch_url, enabled=f.enabled,
        interval_seconds=f.interval_seconds, etag=f.etag, last_modified=f.last_modified,
        body_hash=f.body_hash, consecutive_failures=f.consecutive_failures,
        next_poll_at=f.next_poll_at,
    )


def due_feeds(session: Session, now: datetime | None) -> list[FeedState]:
    """Enabled feeds whose next poll is due at ``now`` (all enabled feeds when ``now`` is None)."""
    q = select(Feed).where(Feed.enabled.is_(True)).order_by(Feed.id)
    if now is not None:
        q = q.where(or_(Feed.next_poll_at.is_(None), Feed.next_poll_at <= now))
    return [_feed_state(f) for f in session.scalars(q)]


def next_due_at(session: Session) -> datetime | None:
    """When the next enabled feed falls due (None if none is scheduled)."""
    return session.scalar(select(func.min(Feed.next_poll_at)).where(Feed.enabled.is_(True)))


def record_feed_success(
    session: Session,
    feed_id: int,
    *,
    now: datetime,
    status: int,
    next_poll_at: datetime,
    etag: str | None,
    last_modified: str | None,
    body_hash: str | None = None,
    title: str | None = None,
    parse_warning: str | None = None,
    parsed: bool = False,
) -> None:
    """A poll that worked. ``parsed`` says whether the body was read this time: only
    then do the body hash, title and parse warning change."""
    values: dict[str, object] = dict(
        last_attempt_at=now, last_success_at=now, last_status=status, last_error=None,
        consecutive_failures=0, next_poll_at=next_poll_at,
    )
    # A 304 may omit validators; keep the ones we have rather than lose them.
    if etag is not None:
        values["etag"] = etag
    if last_modified is not None:
        values["last_modified"] = last_modified
    if parsed:
        values.update(body_hash=body_hash, parse_warning=parse_warning)
        if title:
            values["title"] = title
    session.execute(update(Feed).where(Feed.id == feed_id).values(**values))


def record_feed_failure(
    session: Session, feed_id: int, *, now: datetime, status: int | None, error: str,
    next_poll_at: datetime,
) -> None:
    session.execute(
        update(Feed).where(Feed.id == feed_id).values(
            last_attempt_at=now, last_status=status, last_error=error,
            consecutive_failures=Feed.consecutive_failures + 1, next_poll_at=next_poll_at,
        )
    )


def record_permanent_redirect(session: Session, feed_id: int, new_url: str) -> None:
    session.execute(update(Feed).where(Feed.id == feed_id).values(fetch_url=new_url))


@dataclass(frozen=True)
class FeedRow:
    name: str
    url: str
    fetch_url: str | None
    title: str | None
    enabled: bool
    interval_seconds: int
    last_attempt_at: datetime | None
    last_success_at: datetime | None
    last_status: int | None
    last_error: str | None
    consecutive_failures: int
    parse_warning: str | None
    next_poll_at: datetime | None
    items: int


def list_feeds(session: Session) -> list[FeedRow]:
    counts = (select(Item.feed_id, func.count().label("n")).group_by(Item.feed_id).subquery())
    q = (select(Feed, func.coalesce(counts.c.n, 0))
         .outerjoin(counts, counts.c.feed_id == Feed.id).order_by(Feed.id))
    return [
        FeedRow(
            name=f.name, url=f.url, fetch_url=f.fetch_url, title=f.title, enabled=f.enabled,
            interval_seconds=f.interval_seconds, last_attempt_at=f.last_attempt_at,
            last_success_at=f.last_success_at, last_status=f.last_status,
            last_error=f.last_error, consecutive_failures=f.consecutive_failures,
            parse_warning=f.parse_warning, next_poll_at=f.next_poll_at, items=n,
        )
        for f, n in session.execute(q)
    ]


# --- rules ----------------------------------------------------------------------------------

def sync_rules(session: Session, rules: Sequence[RuleSettings], now: datetime) -> None:
    """Store the config's rules; rules gone from the config are kept but disabled."""
    rows = {r.name: r for r in session.scalars(select(Rule))}
    for rs in rules:
        row = rows.pop(rs.name, None)
        if row is None:
            session.add(Rule(name=rs.name, query=rs.query, recipients=list(rs.recipients),
                             enabled=True, updated_at=now))
        elif (row.query, row.recipients, row.enabled) != (rs.query, list(rs.recipients), True):
            row.query, row.recipients, row.enabled, row.updated_at = (
                rs.query, list(rs.recipients), True, now)
    for row in rows.values():
        if row.enabled:
            row.enabled, row.updated_at = False, now
    session.flush()


# --- seeds ----------------------------------------------------------------------------------

def upsert_seed(
    session: Session, *, name: str, file_sha256: str, title: str | None, text: str,
    text_hash: str | None, source_url: str | None, published_at: datetime | None, now: datetime,
) -> tuple[str, int]:
    """Insert or refresh one seed. Returns ("added" | "updated" | "unchanged", its id)."""
    row = session.scalar(select(Seed).where(Seed.name == name))
    if row is not None and row.file_sha256 == file_sha256:
        return "unchanged", row.id
    if row is None:
        row = Seed(name=name)
        session.add(row)
        outcome = "added"
    else:
        outcome = "updated"
    row.file_sha256, row.title, row.text, row.text_hash = file_sha256, title, text, text_hash
    row.source_url, row.published_at, row.loaded_at = source_url, published_at, now
    session.flush()
    return outcome, row.id



# --- items: lookups for exact dedup -----------------------------------------------------------

def known_guids(session: Session, feed_id: int, guids: Iterable[str]) -> set[str]:
    """Which of ``guids`` this feed has stored already."""
    wanted = list(dict.fromkeys(guids))
    found: set[str] = set()
    for start in range(0, len(wanted), 500):  # stay under bind-parameter limits
        chunk = wanted[start:start + 500]
        found.update(session.scalars(
            select(Item.guid).where(Item.feed_id == feed_id, Item.guid.in_(chunk))))
    return found


def _original(session: Session, item: Item) -> Ref:
    """Follow a duplicate to what it duplicates, so every copy points at the original."""
    if item.duplicate_of_seed_id is not None:
        seed = session.get_one(Seed, item.duplicate_of_seed_id)
        return Ref("seed", seed.id, seed.source_url, seed.name)
    if item.duplicate_of_item_id is not None:
        orig = session.get_one(Item, item.duplicate_of_item_id)
        return Ref("item", orig.id, orig.canonical_url or orig.url)
    return Ref("item", item.id, item.canonical_url or item.url)


def _first_item(session: Session, *conditions: object) -> Item | None:
    # Prefer an original ("new") over a copy, then the oldest.
    return session.scalars(
        select(Item).where(*conditions)  # type: ignore[arg-type]
        .order_by((Item.status == "new").desc(), Item.id).limit(1)
    ).first()


def find_by_guid_elsewhere(session: Session, feed_id: int, guid: str) -> Ref | None:
    """An item with the same GUID in another feed (for GUIDs that are globally unique)."""
    item = _first_item(session, Item.guid == guid, Item.feed_id != feed_id)
    return _original(session, item) if item else None


def find_by_url(session: Session, canonical: str) -> Ref | None:
    """A seed whose source URL, or an item whose canonical URL, is ``canonical``."""
    seed = session.scalars(select(Seed).where(Seed.source_url == canonical)
                           .order_by(Seed.id).limit(1)).first()
    if seed is not None:
        return Ref("seed", seed.id, seed.source_url, seed.name)
    item = _first_item(session, Item.canonical_url == canonical)
    return _original(session, item) if item else None


def find_by_text_hash(session: Session, text_hash: str) -> Ref | None:
    """A seed or item whose normalized text hashes to ``text_hash``."""
    seed = session.scalars(select(Seed).where(Seed.text_hash == text_hash)
                           .order_by(Seed.id).limit(1)).first()
    if seed is not None:
        return Ref("seed", seed.id, seed.source_url, seed.name)
    item = _first_item(session, Item.text_hash == text_hash)
    return _original(session, item) if item else None


def add_item(session: Session, new: NewItem, now: datetime) -> int:
    """Insert one item (new, or a duplicate of ``new.duplicate_of``). Returns its id."""
    dup = new.duplicate_of
    row = Item(
        feed_id=new.feed_id, guid=new.guid, url=new.url, final_url=new.final_url,
        canonical_url=new.canonical_url, title=new.title, author=new.author,
        published_at=new.published_at, fetched_at=new.fetched_at, created_at=now,
        language=new.language, site_name=new.site_name, text=new.text,
        text_source=new.text_source, text_hash=new.text_hash, page_status=new.page_status,
        page_error=new.page_error,
        status="duplicate" if dup else "new",
        duplicate_of_item_id=dup.id if dup and dup.kind == "item" else None,
        duplicate_of_seed_id=dup.id if dup and dup.kind == "seed" else None,
        dedup_method=new.dedup_method if dup else None,
        similarity=new.similarity if dup else None,
    )
    session.add(row)
    session.flush()
    return row.id


# --- near-duplicate index -------------------------------------------------------------------

@dataclass(frozen=True)
class NearCandidate:
    """A stored text that shares LSH band keys with the one being checked."""

    ref: Ref  # the stored seed or item that matched
    original: Ref  # what it duplicates, if it is itself a copy; else the same as ref
    hits: int  # band keys shared
    text: str
    title: str | None
    feed: str | None  # the item's feed name; None for a seed


def get_meta(session: Session, name: str) -> str | None:
    return session.scalar(select(Meta.value).where(Meta.name == name))


def set_meta(session: Session, name: str, value: str) -> None:
    row = session.get(Meta, name)
    if row is None:
        session.add(Meta(name=name, value=value))
    else:
        row.value = value
    session.flush()


# Any constant, distinct from db.py's migration lock.
_PG_NEAR_INDEX_LOCK = 0x6D6F6E6E  # "monn"


def lock_near_index(session: Session) -> None:
    """Serialize index rebuilds between workers starting together on PostgreSQL (held
    until the transaction ends). SQLite allows one writer anyway."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(_PG_NEAR_INDEX_LOCK)))


def add_item_bands(session: Session, item_id: int, keys: Sequence[int]) -> None:
    if keys:
        session.execute(insert(ItemBand), [{"key": k, "item_id": item_id} for k in keys])


def replace_seed_bands(session: Session, seed_id: int, keys: Sequence[int]) -> None:
    session.execute(delete(SeedBand).where(SeedBand.seed_id == seed_id))
    if keys:
        session.execute(insert(SeedBand), [{"key": k, "seed_id": seed_id} for k in keys])


def clear_item_bands(session: Session) -> None:
    session.execute(delete(ItemBand))


def seed_texts(session: Session) -> list[tuple[int, str]]:
    return [(i, t) for i, t in session.execute(select(Seed.id, Seed.text).order_by(Seed.id))]


def indexable_items(session: Session, after_id: int, limit: int) -> list[tuple[int, str]]:
    """(id, text) of items the near-duplicate index should hold, in id order: originals
    and near duplicates (exact, URL and GUID copies add nothing to find)."""
    q = (select(Item.id, Item.text)
         .where(Item.id > after_id,
                or_(Item.status == "new", Item.dedup_method == "near"))
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
               orig_seed.source_url.label("orig_seed_url"), orig_seed.name.label("orig_seed_name"))
        .join(item_hits, item_hits.c.id == Item.id)
        .join(Feed, Feed.id == Item.feed_id)
        .outerjoin(orig, orig.id == Item.duplicate_of_item_id)
        .outerjoin(orig_seed, orig_seed.id == Item.duplicate_of_seed_id)
    )
    seeds = (
        select(literal("seed").label("kind"), Seed.id, seed_hits.c.hits, Seed.text, Seed.title,
               null().label("feed"), Seed.source_url.label("url"), null(), null(), null(), null(),
               Seed.name.label("seed_name"))
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
        found.append(NearCandidate(ref, original, row.hits, row.text, row.title, row.feed))
    found.sort(key=lambda c: (-c.hits, c.ref.kind != "seed", c.ref.id))
    return found[:limit]


@dataclass(frozen=True)
class Copy:
    """A stored duplicate of an original item: another outlet that carried the story."""

    item_id: int
    feed: str
    url: str | None
    title: str | None
    dedup_method: str
    similarity: float | None


def also_reported_by(session: Session, item_ids: Iterable[int]) -> dict[int, list[Copy]]:
    """For each original item, its stored duplicates from *other* feeds, oldest first."""
    wanted = list(dict.fromkeys(item_ids))
    out: dict[int, list[Copy]] = {i: [] for i in wanted}
    orig = aliased(Item)
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        q = (select(Item, Feed.name)
             .join(Feed, Feed.id == Item.feed_id)
             .join(orig, orig.id == Item.duplicate_of_item_id)
             .where(Item.duplicate_of_item_id.in_(chunk), Item.feed_id != orig.feed_id)
             .options(defer(Item.text))
             .order_by(Item.id))
        for item, feed_name in session.execute(q):
            original = item.duplicate_of_item_id
            if original is not None:  # always, by the join; this tells the type checker
                out[original].append(Copy(
                    item.id, feed_name, item.canonical_url or item.url, item.title,
                    item.dedup_method or "", item.similarity))
    return out


# --- items: listing ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ItemRow:
    id: int
    guid: str
    url: str | None
    canonical_url: str | None
    final_url: str | None
    title: str | None
    author: str | None
    feed: str
    published_at: datetime | None
    fetched_at: datetime | None
    created_at: datetime
    language: str | None
    site_name: str | None
    text_source: str
    page_status: int | None
    page_error: str | None
    status: str
    duplicate_of: Ref | None
    dedup_method: str | None
    similarity: float | None
    text: str | None


def list_items(
    session: Session, *, with_text: bool = False, status: str | None = None,
    feed: str | None = None, limit: int | None = None,
) -> list[ItemRow]:
    """Items, newest first, with what each duplicates resolved to a :class:`Ref`."""
    orig = aliased(Item)
    q = (
        select(Item, Feed.name, orig.canonical_url, orig.url, Seed.name, Seed.source_url)
        .join(Feed, Feed.id == Item.feed_id)
        .outerjoin(orig, orig.id == Item.duplicate_of_item_id)
        .outerjoin(Seed, Seed.id == Item.duplicate_of_seed_id)
        .order_by(Item.id.desc())
    )
    if status:
        q = q.where(Item.status == status)
    if feed:
        q = q.where(or_(Feed.name == feed, Feed.url == feed))
    if limit:
        q = q.limit(limit)
    if not with_text:
        q = q.options(defer(Item.text))  # article texts are most of the table's bytes
    rows = []
    for item, feed_name, orig_canon, orig_url, seed_name, seed_url in session.execute(q):
        ref = None
        if item.duplicate_of_item_id is not None:
            ref = Ref("item", item.duplicate_of_item_id, orig_canon or orig_url)
        elif item.duplicate_of_seed_id is not None:
            ref = Ref("seed", item.duplicate_of_seed_id, seed_url, seed_name)
        rows.append(ItemRow(
            id=item.id, guid=item.guid, url=item.url, canonical_url=item.canonical_url,
            final_url=item.final_url,
            title=item.title, author=item.author, feed=feed_name,
            published_at=item.published_at, fetched_at=item.fetched_at,
            created_at=item.created_at, language=item.language, site_name=item.site_name,
            text_source=item.text_source, page_status=item.page_status,
            page_error=item.page_error, status=item.status, duplicate_of=ref,
            dedup_method=item.dedup_method, similarity=item.similarity,
            text=item.text if with_text else None,
        ))
    return rows
