"""Stories: the write-ups of one event, their index of heaviest terms, the document
frequencies of terms, and which story each item and seed reports."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from monitor.models import Feed, Item, Seed, Story, StoryTerm, TermFrequency
from monitor.store.items import Ref

ALL, NAMES = 0, 1  # TermFrequency.space
_CHUNK = 500


def term_frequencies(session: Session, space: int, terms: Iterable[str]) -> dict[str, int]:
    """The stored document frequencies of ``terms`` in ``space`` (absent: 0)."""
    wanted = sorted(set(terms))
    found: dict[str, int] = {}
    for start in range(0, len(wanted), _CHUNK):
        for term, docs in session.execute(
                select(TermFrequency.term, TermFrequency.docs)
                .where(TermFrequency.space == space,
                       TermFrequency.term.in_(wanted[start:start + _CHUNK]))):
            found[term] = int(docs)
    return found


def stored_documents(session: Session) -> int:
    """How many articles the stored frequencies count."""
    return int(session.scalar(select(TermFrequency.docs).where(
        TermFrequency.space == ALL, TermFrequency.term == "")) or 0)


def add_term_frequencies(session: Session, docs: int,
                         counts: Mapping[int, Mapping[str, int]]) -> None:
    """Add ``docs`` articles and, per space, each term's count of them. Rows are written
    in one order (space, term), so that workers adding at once never wait for each other
    in a circle."""
    insert_ = (postgresql.insert if session.get_bind().dialect.name == "postgresql"
               else sqlite.insert)
    rows = [{"space": ALL, "term": "", "docs": docs}] + [
        {"space": space, "term": term, "docs": n}
        for space in sorted(counts) for term, n in sorted(counts[space].items()) if n]
    for start in range(0, len(rows), _CHUNK):
        stmt = insert_(TermFrequency).values(rows[start:start + _CHUNK])
        session.execute(stmt.on_conflict_do_update(
            index_elements=[TermFrequency.space, TermFrequency.term],
            set_={"docs": TermFrequency.docs + stmt.excluded.docs}))


@dataclass(frozen=True)
class StoryRow:
    id: int
    title: str | None
    language: str | None
    first_at: datetime
    last_at: datetime
    items: int
    centroid: str


def _row(s: Story) -> StoryRow:
    return StoryRow(s.id, s.title, s.language, s.first_at, s.last_at, s.items, s.centroid)


def story_candidates(session: Session, terms: Sequence[str], since: datetime,
                     language: str | None, limit: int) -> list[StoryRow]:
    """The stories last reported at ``since`` or later (in ``language``, or of none)
    that share the most of ``terms`` among their heaviest ones, most first: an indexed
    lookup, never a scan of the stories."""
    if not terms:
        return []
    hits = func.count().label("hits")
    matched = (select(StoryTerm.story_id, hits).where(StoryTerm.term.in_(list(terms)))
               .group_by(StoryTerm.story_id).subquery())
    q = (select(Story).join(matched, matched.c.story_id == Story.id)
         .where(Story.last_at >= since)
         .order_by(matched.c.hits.desc(), Story.id).limit(limit))
    if language:
        q = q.where(or_(Story.language.is_(None), Story.language == language))
    return [_row(s) for s in session.scalars(q)]


def lock_story(session: Session, story_id: int) -> StoryRow | None:
    """The story, its row locked until the transaction ends (``FOR UPDATE`` on
    PostgreSQL): another worker joining it at the same moment waits, then reads what
    this one wrote."""
    q = select(Story).where(Story.id == story_id)
    if session.get_bind().dialect.name == "postgresql":
        q = q.with_for_update()
    s = session.scalar(q)
    return _row(s) if s is not None else None


def create_story(session: Session, *, title: str | None, language: str | None,
                 at: datetime, centroid: str, terms: Sequence[str], now: datetime) -> int:
    row = Story(title=title, language=language, first_at=at, last_at=at, items=1,
                created_at=now, centroid=centroid)
    session.add(row)
    session.flush()
    _index(session, row.id, (), terms)
    return row.id


def grow_story(session: Session, story: StoryRow, *, at: datetime,
               centroid: str | None = None, terms: Sequence[str] = (),
               old_terms: Sequence[str] = ()) -> None:
    """One more article in ``story`` (locked by :func:`lock_story`): its times and count,
    and, for an original, its new centroid and heaviest terms."""
    values: dict[str, object] = {"items": Story.items + 1, "first_at": min(story.first_at, at),
                                 "last_at": max(story.last_at, at)}
    if centroid is not None:
        values["centroid"] = centroid
        _index(session, story.id, old_terms, terms)
    session.execute(update(Story).where(Story.id == story.id).values(**values))


def _index(session: Session, story_id: int, old: Iterable[str], new: Iterable[str]) -> None:
    gone, added = set(old) - set(new), set(new) - set(old)
    if gone:
        session.execute(delete(StoryTerm).where(StoryTerm.story_id == story_id,
                                                StoryTerm.term.in_(sorted(gone))))
    if added:
        session.execute(insert(StoryTerm), [{"term": t, "story_id": story_id}
                                            for t in sorted(added)])


def story_of(session: Session, ref: Ref) -> int | None:
    """The story of a stored item or seed."""
    model = Item if ref.kind == "item" else Seed
    return session.scalar(select(model.story_id).where(model.id == ref.id))


def set_story(session: Session, ref: Ref, story_id: int) -> None:
    model = Item if ref.kind == "item" else Seed
    session.execute(update(model).where(model.id == ref.id).values(story_id=story_id))


@dataclass(frozen=True)
class Unstoried:
    """A stored item or seed with no story yet (stored before stories existed)."""

    ref: Ref
    title: str | None
    text: str
    language: str | None
    at: datetime
    duplicate_of: Ref | None


def seeds_without_story(session: Session) -> list[Unstoried]:
    q = select(Seed).where(Seed.story_id.is_(None)).order_by(
        func.coalesce(Seed.published_at, Seed.loaded_at), Seed.id)
    return [Unstoried(Ref("seed", s.id, s.source_url, s.name), s.title, s.text, None,
                      s.published_at or s.loaded_at, None) for s in session.scalars(q)]


def items_without_story(session: Session, limit: int) -> list[Unstoried]:
    """Up to ``limit`` items with no story, in the order they were stored."""
    q = select(Item).where(Item.story_id.is_(None)).order_by(Item.id).limit(limit)
    out = []
    for i in session.scalars(q):
        dup = (Ref("item", i.duplicate_of_item_id, None) if i.duplicate_of_item_id
               else Ref("seed", i.duplicate_of_seed_id, None) if i.duplicate_of_seed_id
               else None)
        out.append(Unstoried(Ref("item", i.id, i.canonical_url or i.url), i.title, i.text,
                             i.language, i.published_at or i.created_at, dup))
    return out


def count_without_story(session: Session) -> int:
    return int(session.scalar(select(func.count()).where(Item.story_id.is_(None))) or 0)


@dataclass(frozen=True)
class StoryListing:
    id: int
    title: str | None
    language: str | None
    first_at: datetime
    last_at: datetime
    items: int
    outlets: list[str]  # the feeds that carried it, first reporter first
    seeds: list[str]  # the seed files in it


def list_stories(session: Session, *, since: datetime | None = None, min_outlets: int = 0,
                 limit: int | None = None, ids: Sequence[int] = ()) -> list[StoryListing]:
    """Stories, last reported first, with their outlets (those with at least
    ``min_outlets``)."""
    q = select(Story).order_by(Story.last_at.desc(), Story.id.desc())
    if since is not None:
        q = q.where(Story.last_at >= since)
    if ids:
        q = q.where(Story.id.in_(list(ids)))
    out: list[StoryListing] = []
    batch = 200
    offset = 0
    while True:
        rows = list(session.scalars(q.limit(batch).offset(offset)))
        if not rows:
            return out
        offset += batch
        wanted = [r.id for r in rows]
        outlets: dict[int, list[str]] = {i: [] for i in wanted}
        for story_id, feed in session.execute(
                select(Item.story_id, Feed.name).join(Feed, Feed.id == Item.feed_id)
                .where(Item.story_id.in_(wanted))
                .group_by(Item.story_id, Feed.name)
                .order_by(Item.story_id, func.min(Item.id))):
            if story_id is not None:  # always, by the filter; this tells the type checker
                outlets[story_id].append(feed)
        seeds: dict[int, list[str]] = {i: [] for i in wanted}
        for story_id, name in session.execute(select(Seed.story_id, Seed.name)
                                              .where(Seed.story_id.in_(wanted))):
            if story_id is not None:
                seeds[story_id].append(name)
        for r in rows:
            if len(outlets[r.id]) < min_outlets:
                continue
            out.append(StoryListing(r.id, r.title, r.language, r.first_at, r.last_at,
                                    r.items, outlets[r.id], sorted(seeds[r.id])))
            if limit and len(out) >= limit:
                return out
