"""Retention: the bulk of what is stored, removed once ``[retention]`` says it has been
kept long enough, a batch per transaction: item texts (the row and its hash stay; an
original keeps its band keys and a shingle sketch), the bodies of digests sent or
failed, the rows of workers long stopped. Seeds are never pruned. Batches are claimed
with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so workers pruning at once take
different rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, delete, func, insert, or_, select, text, update
from sqlalchemy.orm import Session

from monitor.models import Digest, Item, ItemBand, ItemSketch, Worker
from monitor.store.channels import channel_messages_due
from monitor.store.leases import rowcount
from monitor.store.search import reindex_items
from monitor.store.stories import story_index_due


@dataclass(frozen=True)
class Cutoffs:
    """Before when each kind of thing goes (None: kept for ever)."""

    duplicate_text: datetime | None
    original_text: datetime | None
    digest_bodies: datetime | None
    stopped_workers: datetime | None
    story_index: datetime | None = None  # stories last reported before: no longer candidates
    channel_messages: datetime | None = None  # delivered or dead channel messages made before


def _texts_due(c: Cutoffs) -> ColumnElement[bool] | None:
    kinds = []
    if c.duplicate_text is not None:
        kinds.append(and_(Item.status == "duplicate", Item.created_at < c.duplicate_text))
    if c.original_text is not None:
        kinds.append(and_(Item.status == "new", Item.created_at < c.original_text))
    return and_(Item.text_pruned_at.is_(None), Item.text != "", or_(*kinds)) if kinds else None


@dataclass(frozen=True)
class TextToPrune:
    id: int
    text: str
    original: bool  # an original keeps a sketch; a copy's band keys go with its text


def texts_to_prune(session: Session, cutoffs: Cutoffs, limit: int) -> list[TextToPrune]:
    """Up to ``limit`` items whose text is due to go, oldest first, locked (PostgreSQL:
    skipping those another worker is pruning)."""
    due = _texts_due(cutoffs)
    if due is None:
        return []
    q = (select(Item.id, Item.text, Item.status).where(due)
         .order_by(Item.id).limit(limit).with_for_update(skip_locked=True))
    return [TextToPrune(i, t, status == "new") for i, t, status in session.execute(q)]


def prune_texts(session: Session, sketches: Mapping[int, tuple[int, bytes] | None],
                now: datetime) -> int:
    """Remove the texts of the items ``sketches`` names, keeping for each its sketch
    (words, shingles) when given; an item given none loses its band keys too (a copy:
    its original carries the story's). Returns the bytes of text removed."""
    ids = list(sketches)
    if not ids:
        return 0
    freed = session.scalar(select(func.sum(func.length(Item.text))).where(Item.id.in_(ids)))
    session.execute(update(Item).where(Item.id.in_(ids)).values(text="", text_pruned_at=now))
    reindex_items(session, ids)  # searchable by the title only, as rules now see it
    bare = [i for i, k in sketches.items() if k is None]
    if bare:
        session.execute(delete(ItemBand).where(ItemBand.item_id.in_(bare)))
    rows = [{"item_id": i, "words": k[0], "shingles": k[1]}
            for i, k in sketches.items() if k is not None]
    if rows:
        session.execute(delete(ItemSketch).where(ItemSketch.item_id.in_([r["item_id"]
                                                                         for r in rows])))
        session.execute(insert(ItemSketch), rows)
    return int(freed or 0)


def prune_digest_bodies(session: Session, before: datetime | None, limit: int) -> tuple[int, int]:
    """Empty the stored message of up to ``limit`` digests sent or failed before
    ``before`` (their row, subject and alerts stay). Returns (digests, bytes freed)."""
    if before is None:
        return 0, 0
    done = or_(Digest.sent_at < before, Digest.failed_at < before)
    pick = (select(Digest.id, func.length(Digest.message))
            .where(done, func.length(Digest.message) > 0).order_by(Digest.id).limit(limit)
            .with_for_update(skip_locked=True))
    rows = session.execute(pick).all()
    if rows:
        session.execute(update(Digest).where(Digest.id.in_([r[0] for r in rows]))
                        .values(message=b""))
    return len(rows), sum(int(r[1] or 0) for r in rows)


def prune_workers(session: Session, before: datetime | None) -> int:
    """Delete the rows of workers stopped, or silent (lost), since before ``before``.
    Returns how many."""
    if before is None:
        return 0
    gone = or_(Worker.stopped_at < before,
               and_(Worker.stopped_at.is_(None), Worker.heartbeat_at < before))
    return rowcount(session.execute(delete(Worker).where(gone)))


@dataclass(frozen=True)
class Prunable:
    """What pruning would remove now (``db prune --dry-run``)."""

    texts: int
    text_bytes: int
    digests: int
    digest_bytes: int
    workers: int
    stories: int = 0  # stories whose index rows would go
    channel_messages: int = 0


def prunable(session: Session, cutoffs: Cutoffs) -> Prunable:
    due = _texts_due(cutoffs)
    texts, text_bytes = (0, 0) if due is None else session.execute(
        select(func.count(), func.coalesce(func.sum(func.length(Item.text)), 0))
        .where(due)).one()
    digests = digest_bytes = workers = 0
    if cutoffs.digest_bodies is not None:
        digests, digest_bytes = session.execute(
            select(func.count(), func.coalesce(func.sum(func.length(Digest.message)), 0))
            .where(or_(Digest.sent_at < cutoffs.digest_bodies,
                       Digest.failed_at < cutoffs.digest_bodies),
                   func.length(Digest.message) > 0)).one()
    if cutoffs.stopped_workers is not None:
        before = cutoffs.stopped_workers
        workers = session.scalar(select(func.count()).where(or_(
            Worker.stopped_at < before,
            and_(Worker.stopped_at.is_(None), Worker.heartbeat_at < before)))) or 0
    stories = (story_index_due(session, cutoffs.story_index)
               if cutoffs.story_index is not None else 0)
    messages = (channel_messages_due(session, cutoffs.channel_messages)
                if cutoffs.channel_messages is not None else 0)
    return Prunable(int(texts), int(text_bytes), int(digests), int(digest_bytes), int(workers),
                    stories, messages)


def database_size(session: Session) -> int | None:
    """The database's size on disk in bytes (SQLite: its pages; PostgreSQL: the
    database's), or None when it cannot be told."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        pages = session.execute(text("PRAGMA page_count")).scalar()
        size = session.execute(text("PRAGMA page_size")).scalar()
        return int(pages) * int(size) if pages is not None and size is not None else None
    if dialect == "postgresql":
        value = session.execute(text("SELECT pg_database_size(current_database())")).scalar()
        return int(value) if value is not None else None
    return None
