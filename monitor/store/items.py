"""Items: exact-dedup lookups, insertion, listing and who else carried a story."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import bindparam, func, literal, null, or_, select, text, union_all, update
from sqlalchemy.orm import Session, aliased, defer

from monitor.models import Alert, Feed, Item, Seed
from monitor.rules.fulltext import IndexedText
from monitor.store.search import index_status, index_texts


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
    backlog: bool = False  # found by its feed's first parse
    story_id: int | None = None  # the story it reports (see monitor.stories.joining)
    # Its title's and text's words as rules fold them, when the caller has them already
    # (the pipeline matched rules on them): the search index takes them as they are.
    words: IndexedText | None = field(default=None, compare=False, repr=False)


def known_guids(session: Session, feed_id: int, guids: Iterable[str]) -> set[str]:
    """Which of ``guids`` this feed has stored already."""
    found: set[str] = set()
    for chunk in _chunks(guids):
        found.update(session.scalars(
            select(Item.guid).where(Item.feed_id == feed_id, Item.guid.in_(chunk))))
    return found


@dataclass(frozen=True)
class Known:
    """What stored seeds and items already carry the given GUIDs, canonical URLs and
    text hashes, each resolved to the original it duplicates (see :func:`lookup_known`)."""

    by_guid: dict[str, Ref]
    by_url: dict[str, Ref]
    by_hash: dict[str, Ref]


V = TypeVar("V", str, int)
_CHUNK = 500  # values per IN (...): under every driver's bind-parameter limit


def _chunks(values: Iterable[V]) -> list[list[V]]:
    """Distinct non-empty values, in chunks of at most _CHUNK."""
    wanted = list(dict.fromkeys(v for v in values if v))
    return [wanted[i:i + _CHUNK] for i in range(0, len(wanted), _CHUNK)]


_Best = dict[str, tuple[bool, int, int | None, int | None, str | None]]
_PARTS_PER_STATEMENT = 5  # SELECTs per UNION ALL: at most 5 x _CHUNK bound values


def _keep_best(best: _Best, key: str, iid: int, status: str, dup_item: int | None,
               dup_seed: int | None, url: str | None) -> None:
    """Per key, the first matching item: an original ("new") before a copy, then the
    oldest."""
    rank = (status != "new", iid)
    if key not in best or rank < best[key][:2]:
        best[key] = (status != "new", iid, dup_item, dup_seed, url)


def _originals(session: Session, best: _Best) -> dict[str, Ref]:
    """Each key's item resolved to the original it duplicates. Copies point at their
    original, so every later copy points there too."""
    orig_items = {i for _, _, i, _, _ in best.values() if i is not None}
    orig_seeds = {s for _, _, i, s, _ in best.values() if i is None and s is not None}
    items: dict[int, Ref] = {}
    for ids in _chunks(orig_items):
        for iid, orig_url in session.execute(
                select(Item.id, func.coalesce(Item.canonical_url, Item.url))
                .where(Item.id.in_(ids))):
            items[iid] = Ref("item", iid, orig_url)
    seeds: dict[int, Ref] = {}
    for ids in _chunks(orig_seeds):
        for sid, seed_url, name in session.execute(
                select(Seed.id, Seed.source_url, Seed.name).where(Seed.id.in_(ids))):
            seeds[sid] = Ref("seed", sid, seed_url, name)
    found: dict[str, Ref] = {}
    for key, (_, iid, dup_item, dup_seed, item_url) in best.items():
        if dup_item is not None:
            found[key] = items[dup_item]
        elif dup_seed is not None:
            found[key] = seeds[dup_seed]
        else:
            found[key] = Ref("item", iid, item_url)
    return found


def lookup_known(session: Session, feed_id: int, *, guids: Iterable[str] = (),
                 urls: Iterable[str] = (), hashes: Iterable[str] = (),
                 exclude: int = 0) -> Known:
    """Exact-dedup lookups for any number of keys, in as few statements as the bound
    values allow (one UNION ALL for one entry's keys: each entry's storing transaction
    asks this, so it goes straight to the connection):

    - ``guids``: items with that GUID in *another* feed (pass only GUIDs that are
      globally unique);
    - ``urls``: a seed whose source URL, else an item whose canonical URL, it is;
    - ``hashes``: a seed, else an item, whose normalized text hashes to it.

    Seeds win over items: they were known first. Among items, an original before a
    copy, then the oldest, each resolved to the original it duplicates. The item
    ``exclude`` (an item whose text is being decided again) is not looked at."""
    wanted = {"guid": _chunks(guids), "url": _chunks(urls), "hash": _chunks(hashes)}
    statements: list[tuple[Any, dict[str, Any]]] = []
    if all(len(chunks) <= 1 and all(len(c) == 1 for c in chunks)
           for chunks in wanted.values()):
        # One value of each kind at most (one entry's keys): a statement built once per
        # shape, its values bound by name.
        values = {kind: chunks[0][0] for kind, chunks in wanted.items() if chunks}
        if values:
            statements.append((_single_lookup(frozenset(values)),
                               {"feed_id": feed_id, "exclude": exclude, **values}))
    else:
        parts: list[Any] = []
        for kind, column, chunks, extra in (
                ("guid", Item.guid, wanted["guid"], [Item.feed_id != feed_id,
                                                     Item.id != exclude]),
                ("url", Item.canonical_url, wanted["url"], [Item.id != exclude]),
                ("hash", Item.text_hash, wanted["hash"], [Item.id != exclude]),
                ("seed_url", Seed.source_url, wanted["url"], []),
                ("seed_hash", Seed.text_hash, wanted["hash"], [])):
            parts += [_lookup_part(kind, column.in_(chunk), *extra) for chunk in chunks]
        for start in range(0, len(parts), _PARTS_PER_STATEMENT):
            group = parts[start:start + _PARTS_PER_STATEMENT]
            statements.append((union_all(*group) if len(group) > 1 else group[0], {}))
    best: dict[str, _Best] = {"guid": {}, "url": {}, "hash": {}}
    seeds: dict[str, dict[str, Ref]] = {"url": {}, "hash": {}}
    conn = session.connection()
    for statement, params in statements:
        row: Any
        for row in conn.execute(statement, params):
            kind, key, iid, status, dup_item, dup_seed, ref_url, name = row
            if status == "seed":  # the lowest id first
                seed = seeds[kind[5:]].get(key)
                if seed is None or iid < seed.id:
                    seeds[kind[5:]][key] = Ref("seed", iid, ref_url, name)
            else:
                _keep_best(best[kind], key, iid, status, dup_item, dup_seed, ref_url)
    by_url = _originals(session, best["url"]) | seeds["url"]
    by_hash = _originals(session, best["hash"]) | seeds["hash"]
    return Known(by_guid=_originals(session, best["guid"]), by_url=by_url, by_hash=by_hash)


def _lookup_part(kind: str, *where: Any) -> Any:
    """One SELECT of :func:`lookup_known`: the rows of one kind of key."""
    if kind.startswith("seed"):
        cols: tuple[Any, ...] = (Seed.source_url if kind == "seed_url" else Seed.text_hash,
                                 Seed.id, literal("seed"), null(), null(), Seed.source_url,
                                 Seed.name)
    else:
        column = {"guid": Item.guid, "url": Item.canonical_url, "hash": Item.text_hash}[kind]
        cols = (column, Item.id, Item.status, Item.duplicate_of_item_id,
                Item.duplicate_of_seed_id, func.coalesce(Item.canonical_url, Item.url), null())
    return select(literal(kind), *cols).where(*where)


@functools.cache
def _single_lookup(kinds: frozenset[str]) -> Any:
    """:func:`lookup_known`'s statement for one value of each of ``kinds``, bound by
    name (``guid``, ``url``, ``hash``, ``feed_id``, ``exclude``). Every stored entry asks this in its
    transaction: building the statement each time cost more than running it (0.6 of
    1.1 ms, measured with py-spy in benchmarks/ingest.py)."""
    parts = []
    if "guid" in kinds:
        parts.append(_lookup_part("guid", Item.guid == bindparam("guid"),
                                  Item.feed_id != bindparam("feed_id"),
                                  Item.id != bindparam("exclude")))
    for kind, column, seed_kind, seed_column in (
            ("url", Item.canonical_url, "seed_url", Seed.source_url),
            ("hash", Item.text_hash, "seed_hash", Seed.text_hash)):
        if kind in kinds:
            parts += [_lookup_part(kind, column == bindparam(kind),
                                   Item.id != bindparam("exclude")),
                      _lookup_part(seed_kind, seed_column == bindparam(kind))]
    return union_all(*parts) if len(parts) > 1 else parts[0]


def find_by_guid_elsewhere(session: Session, feed_id: int, guid: str) -> Ref | None:
    """An item with the same GUID in another feed (for GUIDs that are globally unique)."""
    return lookup_known(session, feed_id, guids=[guid]).by_guid.get(guid)


def find_by_url(session: Session, canonical: str) -> Ref | None:
    """A seed whose source URL, or an item whose canonical URL, is ``canonical``."""
    return lookup_known(session, 0, urls=[canonical]).by_url.get(canonical)


def find_by_text_hash(session: Session, text_hash: str) -> Ref | None:
    """A seed or item whose normalized text hashes to ``text_hash``."""
    return lookup_known(session, 0, hashes=[text_hash]).by_hash.get(text_hash)


def lock_story_keys(session: Session, keys: Iterable[int]) -> bool:
    """Hold ``keys`` (a story's dedup keys, see :func:`monitor.dedup.fingerprint.story_key`)
    until the transaction ends, so that workers storing copies of one story decide one
    after the other: on PostgreSQL, transaction-level advisory locks, taken in ascending
    order (so two workers never wait for each other in a circle). SQLite has one writer
    at a time, and one daemon per database file. Returns whether other workers may have
    stored items since this process last looked (False on SQLite: its only writer of
    items is this process's store thread)."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    wanted = sorted(set(keys))
    if wanted:
        session.execute(text("SELECT pg_advisory_xact_lock(k) FROM "
                             "unnest(CAST(:keys AS bigint[])) AS k"), {"keys": wanted}).all()
    return True


def lock_original(session: Session, item_id: int) -> bool:
    """Lock the item's row until the transaction ends (``FOR UPDATE`` on PostgreSQL)
    and say whether it is still an original: another worker may have made a fuller
    copy the story's original meanwhile."""
    q = select(Item.status).where(Item.id == item_id)
    if session.get_bind().dialect.name == "postgresql":
        q = q.with_for_update()
    return session.scalar(q) == "new"


def promote(session: Session, old_id: int, new_id: int, similarity: float) -> None:
    """Make item ``new_id`` the story's original in place of ``old_id``: the old one,
    and every copy of it, become copies of the new one (the old by "near")."""
    session.execute(update(Item).where(Item.duplicate_of_item_id == old_id)
                    .values(duplicate_of_item_id=new_id))
    session.execute(update(Item).where(Item.id == old_id).values(
        status="duplicate", duplicate_of_item_id=new_id, dedup_method="near",
        similarity=similarity))
    index_status(session, [old_id])


def rules_alerted(session: Session, original_id: int) -> set[int]:
    """The rules that have alerted for the story of ``original_id`` (on it or on an
    earlier original that is now its copy)."""
    story = select(Item.id).where(or_(Item.id == original_id,
                                      Item.duplicate_of_item_id == original_id))
    return set(session.scalars(select(Alert.rule_id).where(Alert.item_id.in_(story))))


def add_item(session: Session, new: NewItem, now: datetime) -> int:
    """Insert one item (new, or a duplicate of ``new.duplicate_of``), and index it for
    search. Returns its id."""
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
        similarity=new.similarity if dup else None, backlog=new.backlog,
        story_id=new.story_id,
    )
    session.add(row)
    session.flush()
    # Searchable once committed.
    index_texts(session, [(row.id, new.words or IndexedText.of(new.title, new.text))],
                fresh=True)
    return row.id


@dataclass(frozen=True)
class Copy:
    """A stored duplicate of an original item: another outlet that carried the story."""

    item_id: int
    feed: str
    url: str | None
    title: str | None
    dedup_method: str
    similarity: float | None
    at: datetime  # published, else first seen
    stored_at: datetime


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
                    item.dedup_method or "", item.similarity,
                    item.published_at or item.created_at, item.created_at))
    return out


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
    story: int | None = None  # its story's id
    feed_id: int = 0


def list_items(
    session: Session, *, with_text: bool = False, status: str | None = None,
    feed: str | None = None, limit: int | None = None, story: int | None = None,
    ids: Sequence[int] = (), before_id: int | None = None, feed_id: int | None = None,
) -> list[ItemRow]:
    """Items, newest first, with what each duplicates resolved to a :class:`Ref`: only
    those of ``ids``, only those older than ``before_id`` (a page after another)."""
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
    if story is not None:
        q = q.where(Item.story_id == story)
    if ids:
        q = q.where(Item.id.in_(list(ids)))
    if before_id is not None:
        q = q.where(Item.id < before_id)
    if feed_id is not None:
        q = q.where(Item.feed_id == feed_id)
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
            text=item.text if with_text else None, story=item.story_id,
            feed_id=item.feed_id,
        ))
    return rows
