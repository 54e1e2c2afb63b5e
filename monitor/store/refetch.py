"""Items fetched again (``monitor items refetch``): which ones, and what changes when a
stored item gets a new text: its text and page fields, its place in its story (an
original, or a copy of another one), its band keys."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from monitor.models import Feed, Item, ItemBand, ItemSketch
from monitor.store.items import Ref
from monitor.store.search import index_status, reindex_items


@dataclass(frozen=True)
class StoredItem:
    """What fetching an item's page again starts from."""

    id: int
    feed_id: int
    feed: str
    guid: str
    url: str | None
    canonical_url: str | None
    title: str | None
    author: str | None
    published_at: datetime | None
    language: str | None
    text: str
    text_source: str
    text_hash: str | None
    status: str
    duplicate_of: Ref | None
    dedup_method: str | None
    page_error: str | None
    backlog: bool  # found by its feed's first parse


def items_to_refetch(session: Session, *, ids: Sequence[int] = (), feed: str | None = None,
                     since: datetime | None = None, failed: bool = False,
                     limit: int | None = None) -> list[int]:
    """The ids of the items with a link that match every criterion given (``ids``; of
    the feeds named ``feed``; stored since ``since``; whose page failed, ``failed``),
    oldest first."""
    q = select(Item.id).where(Item.url.is_not(None)).order_by(Item.id)
    if ids:
        q = q.where(Item.id.in_(list(ids)))
    if feed is not None:
        q = q.where(Item.feed_id.in_(select(Feed.id).where(Feed.name == feed)))
    if since is not None:
        q = q.where(Item.created_at >= since)
    if failed:
        q = q.where(Item.page_error.is_not(None))
    if limit:
        q = q.limit(limit)
    return list(session.scalars(q))


def stored_item(session: Session, item_id: int, *, lock: bool = False) -> StoredItem | None:
    """The item ``item_id`` (None if it is gone); ``lock``: its row stays locked until the
    transaction ends (``FOR UPDATE`` on PostgreSQL)."""
    q = (select(Item, Feed.name).join(Feed, Feed.id == Item.feed_id)
         .where(Item.id == item_id))
    if lock and session.get_bind().dialect.name == "postgresql":
        q = q.with_for_update(of=Item)
    row = session.execute(q).one_or_none()
    if row is None:
        return None
    item, feed = row
    ref = None
    if item.duplicate_of_item_id is not None:
        ref = Ref("item", item.duplicate_of_item_id, None)
    elif item.duplicate_of_seed_id is not None:
        ref = Ref("seed", item.duplicate_of_seed_id, None)
    return StoredItem(item.id, item.feed_id, feed, item.guid, item.url, item.canonical_url,
                      item.title, item.author, item.published_at, item.language, item.text,
                      item.text_source, item.text_hash, item.status, ref, item.dedup_method,
                      item.page_error, item.backlog)


def item_band_keys(session: Session, item_id: int) -> list[int]:
    return list(session.scalars(select(ItemBand.key).where(ItemBand.item_id == item_id)))


def drop_item_bands(session: Session, item_id: int) -> None:
    session.execute(delete(ItemBand).where(ItemBand.item_id == item_id))


@dataclass(frozen=True)
class PageFields:
    """What a fetch of an item's page sets, whatever its text becomes."""

    final_url: str | None
    fetched_at: datetime | None
    page_status: int | None


@dataclass(frozen=True)
class NewText:
    text: str
    text_source: str
    text_hash: str | None
    canonical_url: str | None
    language: str | None
    site_name: str | None


def record_page(session: Session, item_id: int, page: PageFields,
                text: NewText | None = None) -> None:
    """The page fetched again worked: its fields, the error of the last fetch cleared,
    and, with ``text``, the item's new text. The caller has made the item an original
    or a copy first where the new text needs it (one original per text and URL)."""
    values: dict[str, object] = dict(final_url=page.final_url, fetched_at=page.fetched_at,
                                     page_status=page.page_status, page_error=None)
    if text is not None:
        values.update(text=text.text, text_source=text.text_source, text_hash=text.text_hash,
                      canonical_url=text.canonical_url, language=text.language,
                      site_name=text.site_name, text_pruned_at=None)
        # A text again: what retention kept in place of the old one goes.
        session.execute(delete(ItemSketch).where(ItemSketch.item_id == item_id))
    session.execute(update(Item).where(Item.id == item_id).values(**values))
    if text is not None:
        reindex_items(session, [item_id])


def make_original(session: Session, item_id: int) -> None:
    """Item ``item_id`` is an original (new) from now on."""
    session.execute(update(Item).where(Item.id == item_id).values(
        status="new", duplicate_of_item_id=None, duplicate_of_seed_id=None,
        dedup_method=None, similarity=None))
    index_status(session, [item_id])


def make_copy(session: Session, item_id: int, of: Ref, method: str,
              similarity: float | None) -> None:
    """Item ``item_id`` is a copy of ``of`` from now on, and so is every copy of it (a
    copy points at its story's original, never at another copy)."""
    target = (dict(duplicate_of_item_id=of.id, duplicate_of_seed_id=None) if of.kind == "item"
              else dict(duplicate_of_item_id=None, duplicate_of_seed_id=of.id))
    session.execute(update(Item).where(Item.id == item_id).values(
        status="duplicate", dedup_method=method, similarity=similarity, **target))
    session.execute(update(Item).where(Item.duplicate_of_item_id == item_id).values(**target))
    index_status(session, [item_id])
