"""Stories: the write-ups of one event, their index of heaviest terms, the document
frequencies of terms, and which story each item and seed reports."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from monitor.models import Feed, Item, Seed, Story, StoryTerm, TermFrequency
from monitor.store.items import Ref
from monitor.store.meta import get_meta, set_meta

ALL, NAMES = 0, 1  # TermFrequency.space
_STORIES = cast(Table, Story.__table__)  # for Core statements (see create_story)
_TERMS = cast(Table, StoryTerm.__table__)
_CHUNK = 500


def term_frequencies(session: Session, all_terms: Iterable[str],
                     names: Iterable[str]) -> tuple[int, dict[str, int], dict[str, int]]:
    """How many articles the stored frequencies count, and the stored frequencies of
    ``all_terms`` (the all space) and ``names`` (the names space): one statement with
    one value per space, whatever the number of terms (it runs for most articles
    stored; an IN list of hundreds of bound values cost milliseconds to build)."""
    dialect = session.get_bind().dialect.name
    wanted_all, wanted_names = ["", *sorted(set(all_terms))], sorted(set(names))
    if dialect == "postgresql":
        values: dict[str, object] = {"all": wanted_all, "names": wanted_names}
    else:
        values = {"all": json.dumps(wanted_all, ensure_ascii=False),
                  "names": json.dumps(wanted_names, ensure_ascii=False)}
    docs = 0
    found: dict[int, dict[str, int]] = {ALL: {}, NAMES: {}}
    for space, term, n in session.connection().execute(_frequencies(dialect), values):
        if space == ALL and term == "":
            docs = int(n)
        else:
            found[space][term] = int(n)
    return docs, found[ALL], found[NAMES]


_FREQUENCIES = {  # space 0: ALL, 1: NAMES
    "postgresql":
        "SELECT space, term, docs FROM term_frequencies "
        "WHERE space = 0 AND term = ANY(CAST(:all AS text[])) "
        "UNION ALL SELECT space, term, docs FROM term_frequencies "
        "WHERE space = 1 AND term = ANY(CAST(:names AS text[]))",
    "sqlite":
        "SELECT space, term, docs FROM term_frequencies "
        "WHERE space = 0 AND term IN (SELECT value FROM json_each(:all)) "
        "UNION ALL SELECT space, term, docs FROM term_frequencies "
        "WHERE space = 1 AND term IN (SELECT value FROM json_each(:names))",
}


@functools.cache
def _frequencies(dialect: str) -> Any:
    """:func:`term_frequencies`'s statement: the terms of each space bound as one array
    (PostgreSQL) or one JSON list (SQLite), each looked up by the primary key."""
    return text(_FREQUENCIES[dialect])


def add_term_frequencies(session: Session, docs: int,
                         counts: Mapping[int, Mapping[str, int]]) -> None:
    """Add ``docs`` articles and, per space, each term's count of them. Rows are written
    in one order (space, term), so that workers adding at once never wait for each other
    in a circle."""
    rows = [{"space": ALL, "term": "", "docs": docs}] + [
        {"space": space, "term": term, "docs": n}
        for space in sorted(counts) for term, n in sorted(counts[space].items()) if n]
    # One statement executed for many rows (the driver's executemany): building a
    # VALUES list of thousands of rows cost seconds in SQLAlchemy's compiler.
    session.connection().execute(_upsert_frequencies(session.get_bind().dialect.name), rows)


@functools.cache
def _upsert_frequencies(dialect: str) -> Any:
    insert_ = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert_(TermFrequency)
    return stmt.on_conflict_do_update(
        index_elements=[TermFrequency.space, TermFrequency.term],
        set_={"docs": TermFrequency.docs + stmt.excluded.docs})


@dataclass(frozen=True)
class StoryRow:
    id: int
    title: str | None
    language: str | None
    first_at: datetime
    last_at: datetime
    items: int
    centroid: str


def _row_columns() -> tuple[Any, ...]:
    """The columns of a :class:`StoryRow`, in its order."""
    c = _STORIES.c
    return (c.id, c.title, c.language, c.first_at, c.last_at, c["items"], c.centroid)


PER_TERM = 64  # stories read per term: the ones started last that have it among their heaviest


def story_candidates(session: Session, terms: Sequence[str], since: datetime,
                     language: str | None, limit: int) -> list[StoryRow]:
    """The stories last reported at ``since`` or later (in ``language``, or of none)
    that share the most of ``terms`` among their heaviest ones, most first: an indexed
    lookup, never a scan of the stories. Of each term, only the ``PER_TERM`` stories
    started last are read: a term a hundred stories share (a year, a president) finds
    the recent ones, and the cost stays the same however many are stored."""
    wanted = list(dict.fromkeys(terms))
    if not wanted:
        return []
    values: dict[str, object] = {f"t{i}": t for i, t in enumerate(wanted)}
    values.update(since=since, language=language, limit=limit, per_term=PER_TERM)
    rows = session.connection().execute(_candidates(len(wanted)), values)
    return [StoryRow(*r) for r in rows]


@functools.cache
def _candidates(terms: int) -> Any:
    """:func:`story_candidates`'s statement for ``terms`` terms, built once, its values
    bound by name: per term, the latest stories by the index's primary key (term,
    story_id), then counted per story."""
    st, s = _TERMS, _STORIES
    per_term = [select(st.c.story_id).where(st.c.term == bindparam(f"t{i}"))
                .order_by(st.c.story_id.desc()).limit(bindparam("per_term")).subquery()
                for i in range(terms)]
    found = union_all(*(select(q.c.story_id) for q in per_term)).subquery()
    hits = func.count().label("hits")
    matched = select(found.c.story_id, hits).group_by(found.c.story_id).subquery()
    language = bindparam("language", type_=s.c.language.type)
    return (select(*_row_columns())
            .join(matched, matched.c.story_id == s.c.id)
            .where(s.c.last_at >= bindparam("since", type_=s.c.last_at.type),
                   or_(language.is_(None), s.c.language.is_(None), s.c.language == language))
            .order_by(matched.c.hits.desc(), s.c.id).limit(bindparam("limit")))


def lock_story(session: Session, story_id: int) -> StoryRow | None:
    """The story, its row locked until the transaction ends (``FOR UPDATE`` on
    PostgreSQL): another worker joining it at the same moment waits, then reads what
    this one wrote."""
    q = select(*_row_columns()).where(_STORIES.c.id == story_id)
    if session.get_bind().dialect.name == "postgresql":
        q = q.with_for_update()
    # Core, like the writes below: no ORM object of the story is ever held, so none can
    # be stale after them.
    row = session.connection().execute(q).one_or_none()
    return StoryRow(*row) if row is not None else None


def create_story(session: Session, *, title: str | None, language: str | None,
                 at: datetime, centroid: str, terms: Sequence[str], now: datetime) -> int:
    # Core statements on the session's connection: the ORM's bulk paths cost more than
    # the statements themselves here (one story per article stored).
    story_id: int = session.connection().execute(
        insert(_STORIES).values(title=title, language=language, first_at=at, last_at=at,
                                items=1, created_at=now, centroid=centroid)
        .returning(_STORIES.c.id)).scalar_one()
    _index(session, story_id, (), terms)
    return story_id


def grow_story(session: Session, story: StoryRow, *, at: datetime,
               centroid: str | None = None, terms: Sequence[str] = (),
               old_terms: Sequence[str] = ()) -> None:
    """One more article in ``story`` (locked by :func:`lock_story`): its times and count,
    and, for an original, its new centroid and heaviest terms."""
    values: dict[str, object] = {"items": _STORIES.c["items"] + 1,
                                 "first_at": min(story.first_at, at),
                                 "last_at": max(story.last_at, at)}
    if centroid is not None:
        values["centroid"] = centroid
        _index(session, story.id, old_terms, terms)
    session.connection().execute(update(_STORIES).where(_STORIES.c.id == story.id)
                                 .values(**values))


def _index(session: Session, story_id: int, old: Iterable[str], new: Iterable[str]) -> None:
    gone, added = set(old) - set(new), set(new) - set(old)
    table, conn = _TERMS, session.connection()
    if gone:
        conn.execute(delete(table).where(table.c.story_id == story_id,
                                         table.c.term.in_(sorted(gone))))
    if added:
        conn.execute(insert(table), [{"term": t, "story_id": story_id} for t in sorted(added)])


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
                 limit: int | None = None, ids: Sequence[int] = (),
                 before: tuple[datetime, int] | None = None) -> list[StoryListing]:
    """Stories, last reported first, with their outlets (those with at least
    ``min_outlets``); only those after ``before`` (the last one of a page: its
    ``last_at`` and id) in that order."""
    q = select(Story).order_by(Story.last_at.desc(), Story.id.desc())
    if since is not None:
        q = q.where(Story.last_at >= since)
    if before is not None:
        q = q.where(or_(Story.last_at < before[0],
                        and_(Story.last_at == before[0], Story.id < before[1])))
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


@dataclass(frozen=True)
class StoryReport:
    """One stored article of a story, as a digest names it."""

    item_id: int
    feed: str
    url: str | None
    title: str | None
    at: datetime  # published, else first seen
    stored_at: datetime


def story_reports(session: Session, story_ids: Iterable[int],
                  limit: int = 500) -> dict[int, list[StoryReport]]:
    """Each story's stored articles (copies included), earliest first; at most
    ``limit`` per story, the latest ones (a story of thousands is named by its
    latest reports)."""
    wanted = list(dict.fromkeys(story_ids))
    out: dict[int, list[StoryReport]] = {i: [] for i in wanted}
    at = func.coalesce(Item.published_at, Item.created_at)
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        q = (select(Item.story_id, Item.id, Feed.name, Item.canonical_url, Item.url,
                    Item.title, Item.published_at, Item.created_at)
             .join(Feed, Feed.id == Item.feed_id)
             .where(Item.story_id.in_(chunk))
             .order_by(Item.story_id, at.desc(), Item.id.desc()))
        for story_id, item_id, feed, canonical, url, title, published, created in (
                session.execute(q)):
            if story_id is None:  # never, by the filter; this tells the type checker
                continue
            reports = out[story_id]
            if len(reports) < limit:
                reports.append(StoryReport(item_id, feed, canonical or url, title,
                                           published or created, created))
    for reports in out.values():
        reports.reverse()
    return out


INDEX_PRUNED_KEY = "retention.story_index"  # meta: (last_at, id) of the last story done


def prune_story_index(session: Session, before: datetime, limit: int) -> int:
    """Drop the index rows of up to ``limit`` stories last reported before ``before``,
    oldest first, from where the last call stopped (kept in ``meta``, its row locked
    until the transaction ends: workers pruning at once go one after the other), so
    each round reads only the stories that aged since. Such a story is no longer a
    candidate. Returns how many stories were done."""
    raw = get_meta(session, INDEX_PRUNED_KEY, lock=True)
    q = (select(_STORIES.c.id, _STORIES.c.last_at).where(_STORIES.c.last_at < before)
         .order_by(_STORIES.c.last_at, _STORIES.c.id).limit(limit))
    done_at, done_id = _progress(raw)
    if done_at is not None:
        q = q.where(or_(_STORIES.c.last_at > done_at,
                        and_(_STORIES.c.last_at == done_at, _STORIES.c.id > done_id)))
    rows = session.connection().execute(q).all()
    if not rows:
        return 0
    ids = [r.id for r in rows]
    session.connection().execute(delete(_TERMS).where(_TERMS.c.story_id.in_(ids)))
    last = rows[-1]
    set_meta(session, INDEX_PRUNED_KEY, json.dumps({"at": last.last_at.isoformat(),
                                                    "id": last.id}))
    return len(rows)


def story_index_due(session: Session, before: datetime) -> int:
    """How many stories :func:`prune_story_index` would still go through."""
    done_at, done_id = _progress(get_meta(session, INDEX_PRUNED_KEY))
    q = select(func.count()).select_from(_STORIES).where(_STORIES.c.last_at < before)
    if done_at is not None:
        q = q.where(or_(_STORIES.c.last_at > done_at,
                        and_(_STORIES.c.last_at == done_at, _STORIES.c.id > done_id)))
    return int(session.scalar(q) or 0)


def _progress(raw: str | None) -> tuple[datetime | None, int]:
    if not raw:
        return None, 0
    try:
        data = json.loads(raw)
        return datetime.fromisoformat(data["at"]), int(data["id"])
    except (ValueError, KeyError, TypeError):
        return None, 0  # unreadable: start again from the oldest (deleting twice is harmless)
