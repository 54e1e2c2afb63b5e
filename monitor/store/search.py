"""The full-text index of items: written in the item's own transaction, read by search.

SQLite keeps it in the FTS5 table ``items_fts`` (rowid = item id; a trigger drops a
deleted item's row), PostgreSQL in ``item_search`` (item id, ``tsvector``, GIN
index; deleted with its item). Both hold the words as rules fold them
(:class:`monitor.rules.fulltext.IndexedText`), written here, never by the database.
The tables are created by the migration ``20261207_0300`` and are not models:
neither SQLAlchemy nor ``alembic check`` knows an FTS5 table or a tsvector.

Items stored before the index existed (or before ``monitor db reindex-search``) are
indexed in batches by :func:`fill_index`, which records its progress in ``meta`` so
that an interrupted fill resumes where it stopped.
"""

# The SQL here is put together from fixed pieces (the filters' conditions, the dialect's
# table): every value, the query included, is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import TextClause, bindparam, func, select, text
from sqlalchemy.orm import Session

from monitor.models import Feed, Item, UTCDateTime
from monitor.rules.fulltext import Dialect, IndexedText
from monitor.store.meta import delete_meta, get_meta, set_meta

# meta: items with ids in (FILLED, FILL_BELOW) are still to be indexed by fill_index.
FILL_BELOW = "search.fill_below"
FILLED = "search.filled_through"

Status = Literal["new", "duplicate", "all"]


def search_dialect(session: Session) -> Dialect:
    return "postgresql" if session.get_bind().dialect.name == "postgresql" else "sqlite"


def index_texts(session: Session, rows: Sequence[tuple[int, IndexedText]], *,
                fresh: bool = False) -> None:
    """Index (or index again) items whose words are already folded; ``fresh``: items
    just inserted, never indexed (nothing to replace)."""
    if not rows:
        return
    if search_dialect(session) == "postgresql":
        session.execute(text(
            "INSERT INTO item_search (item_id, status, created_at, doc) "
            "SELECT id, status, created_at, CAST(:doc AS tsvector) FROM items WHERE id = :id"
            + ("" if fresh else " ON CONFLICT (item_id) DO UPDATE SET doc = excluded.doc, "
               "status = excluded.status")),
            [{"id": i, "doc": t.tsvector()} for i, t in rows])
        return
    if not fresh:
        session.execute(text("DELETE FROM items_fts WHERE rowid = :id"),
                        [{"id": i} for i, _ in rows])
    params = []
    for i, t in rows:
        title, body = t.fts5()
        params.append({"id": i, "title": title, "body": body})
    session.execute(text("INSERT INTO items_fts (rowid, title, body) "
                         "VALUES (:id, :title, :body)"), params)


def index_status(session: Session, ids: Iterable[int]) -> None:
    """The items ``ids`` changed status (an original became a copy, or one): PostgreSQL's
    index repeats it (SQLite's reads it from items)."""
    wanted = list(dict.fromkeys(ids))
    if wanted and search_dialect(session) == "postgresql":  # created_at never changes
        session.execute(text("UPDATE item_search s SET status = i.status FROM items i "
                             "WHERE i.id = s.item_id AND s.item_id = ANY(CAST(:ids AS bigint[])) "
                             "AND s.status <> i.status"), {"ids": wanted})


def reindex_items(session: Session, ids: Iterable[int]) -> int:
    """Index the items ``ids`` again from their stored title and text (after a
    refetch or a prune changed them). Returns how many were indexed."""
    wanted = list(dict.fromkeys(ids))
    done = 0
    for at in range(0, len(wanted), 500):
        rows = session.execute(select(Item.id, Item.title, Item.text)
                               .where(Item.id.in_(wanted[at:at + 500]))).all()
        index_texts(session, [(i, IndexedText.of(t, b)) for i, t, b in rows])
        done += len(rows)
    return done


# --- filling ------------------------------------------------------------------------------

def mark_unindexed(session: Session, drop: bool) -> int:
    """Make every stored item one :func:`fill_index` will index; with ``drop``, empty
    the index first (``monitor db reindex-search``). Returns the number to index."""
    if drop:
        session.execute(text("DELETE FROM item_search" if search_dialect(session) == "postgresql"
                             else "DELETE FROM items_fts"))
    top = int(session.scalar(select(func.max(Item.id))) or 0)
    if top == 0:
        delete_meta(session, FILL_BELOW)
        delete_meta(session, FILLED)
        return 0
    set_meta(session, FILL_BELOW, str(top + 1))
    set_meta(session, FILLED, "0")
    return int(session.scalar(select(func.count()).select_from(Item)) or 0)


@dataclass(frozen=True)
class FillProgress:
    indexed: int  # by this call
    left: int  # at most this many still to index after it (ids, not rows); 0: done


def fill_index(session: Session, batch: int = 500) -> FillProgress:
    """Index the next ``batch`` items the index lacks (see :func:`mark_unindexed`),
    holding the progress row locked so that two workers never index the same batch.
    The caller commits; call until ``left`` is 0."""
    below = get_meta(session, FILL_BELOW, lock=True)
    if below is None:
        return FillProgress(0, 0)
    after = int(get_meta(session, FILLED) or 0)
    rows = session.execute(
        select(Item.id, Item.title, Item.text)
        .where(Item.id > after, Item.id < int(below)).order_by(Item.id).limit(batch)).all()
    if rows:
        index_texts(session, [(i, IndexedText.of(t, b)) for i, t, b in rows])
    if len(rows) < batch:
        delete_meta(session, FILL_BELOW)
        delete_meta(session, FILLED)
        return FillProgress(len(rows), 0)
    last = rows[-1][0]
    set_meta(session, FILLED, str(last))
    return FillProgress(len(rows), int(below) - 1 - last)


@dataclass(frozen=True)
class IndexCounts:
    indexed: int  # rows in the index
    stored: int  # items stored
    pending: int  # items a fill is still to index


def index_counts(session: Session) -> IndexCounts:
    table = "item_search" if search_dialect(session) == "postgresql" else "items_fts"
    indexed = int(session.scalar(text(f"SELECT count(*) FROM {table}")) or 0)
    stored = int(session.scalar(select(func.count()).select_from(Item)) or 0)
    below = get_meta(session, FILL_BELOW)
    pending = 0
    if below is not None:
        after = int(get_meta(session, FILLED) or 0)
        pending = int(session.scalar(select(func.count()).select_from(Item).where(
            Item.id > after, Item.id < int(below))) or 0)
    return IndexCounts(indexed, stored, pending)


# --- reading --------------------------------------------------------------------------------

@dataclass(frozen=True)
class SearchFilters:
    since: datetime | None = None  # stored at or after
    until: datetime | None = None  # stored before
    feeds: tuple[int, ...] = ()  # feed ids; empty: every feed
    story_id: int | None = None
    status: Status = "new"


def _where(f: SearchFilters, params: dict[str, Any], at: str = "i") -> str:
    """The filters as SQL conditions on ``items i`` (the status and time on the table
    ``at``: PostgreSQL's ``item_search s`` repeats them), their values added to
    ``params``."""
    parts = []
    if f.status != "all":
        parts.append(f"{at}.status = :status")
        params["status"] = f.status
    if f.since is not None:
        parts.append(f"{at}.created_at >= :since")
        params["since"] = f.since
    if f.until is not None:
        parts.append(f"{at}.created_at < :until")
        params["until"] = f.until
    if f.feeds:
        names = [f"feed{k}" for k in range(len(f.feeds))]
        parts.append(f"i.feed_id IN ({', '.join(':' + n for n in names)})")
        params.update(zip(names, f.feeds, strict=True))
    if f.story_id is not None:
        parts.append("i.story_id = :story")
        params["story"] = f.story_id
    return "".join(f" AND {p}" for p in parts)


def _sql(sql: str, params: dict[str, Any]) -> TextClause:
    """``sql`` with times bound as the items table stores them (naive UTC on SQLite)."""
    return text(sql).bindparams(*(bindparam(k, type_=UTCDateTime())
                                  for k in ("since", "until") if k in params))


# Ranked search scores the newest this many matches within the filters (and takes the
# best of them), so that a word in every third article costs what a rare one costs.
RANK_WINDOW = 1000


@dataclass(frozen=True)
class Candidates:
    ids: list[tuple[int, float]]  # (item id, score: higher is better; 0 unranked)
    windowed: bool  # ranked among the newest RANK_WINDOW matches only: there are more


def search_candidates(session: Session, expr: str, filters: SearchFilters, limit: int,
                      offset: int = 0, *, ranked: bool = True,
                      lookup: str | None = None) -> Candidates:
    """Item ids the index finds for ``expr`` (an FTS5 MATCH expression or a tsquery,
    see :func:`monitor.rules.fulltext.compile_query`) within ``filters``.

    ``ranked``: the newest :data:`RANK_WINDOW` matches, best first (bm25 on SQLite,
    title words weighing 4 times the text's; ``ts_rank_cd`` on PostgreSQL, where the
    title's weight A counts 10 times the text's D), newest first on ties; the page at
    ``offset`` of them. Else every match, newest first, unscored, the page below the
    item id ``offset`` (0: from the newest). PostgreSQL: ``lookup`` (see
    :attr:`monitor.rules.fulltext.Compiled.lookup`) asks the GIN index, ``expr``
    filters what it found."""
    params: dict[str, Any] = {"q": expr, "limit": limit, "lookup": lookup or expr}
    pg = search_dialect(session) == "postgresql"
    where = _where(filters, params, "s" if pg else "i")
    if not ranked:
        if offset:
            where += f" AND {'s.item_id' if pg else 'i.id'} < :before"
            params["before"] = offset
        if pg:
            sql = (f"SELECT s.item_id FROM {_pg_tables(filters)} "
                   f"WHERE {_pg_match(lookup)}{where} "
                   "ORDER BY s.item_id DESC LIMIT :limit")
            found = _planned(session, _sql(sql, params), params)
        else:
            sql = ("SELECT i.id FROM items_fts JOIN items i ON i.id = items_fts.rowid "
                   f"WHERE items_fts MATCH :q{where} ORDER BY items_fts.rowid DESC LIMIT :limit")
            found = list(session.execute(_sql(sql, params), params).all())
        return Candidates([(int(r[0]), 0.0) for r in found], False)
    params.update(offset=offset, window=RANK_WINDOW)
    if pg:
        return _ranked_postgresql(session, _pg_tables(filters), where, params, lookup)
    # FTS5 yields matches newest first natively; bm25 is computed for those read.
    sql = ("WITH m AS MATERIALIZED (SELECT i.id AS id, bm25(items_fts, 4.0, 1.0) AS score "
           "FROM items_fts JOIN items i ON i.id = items_fts.rowid "
           f"WHERE items_fts MATCH :q{where} "
           "ORDER BY items_fts.rowid DESC LIMIT :window) "
           "SELECT id, score, (SELECT count(*) FROM m) AS n FROM m "
           "ORDER BY score, id DESC LIMIT :limit OFFSET :offset")
    rows = list(session.execute(_sql(sql, params), params).all())
    return Candidates([(int(i), -float(score)) for i, score, _ in rows],  # bm25: lower wins
                      bool(rows) and rows[0][2] >= RANK_WINDOW)


# PostgreSQL looks for the newest matches among the newest this many item ids first,
# then among 4 times as many, and so on, until it has RANK_WINDOW of them.
RANK_SPAN = 20_000


def _pg_tables(filters: SearchFilters) -> str:
    """``item_search s``, joined to ``items i`` only where a filter needs more than the
    status and time it repeats: at 1M items the join cost more than the search."""
    if not filters.feeds and filters.story_id is None:
        return "item_search s"
    return "item_search s JOIN items i ON i.id = s.item_id"


def _pg_match(lookup: str | None) -> str:
    """The match condition: the GIN lookup, then (where the query has phrases or
    weights) the whole query on each row the lookup found, after the cheaper filters
    (as COALESCE, so that the planner does not take it to the index, which would
    read every candidate's vector to recheck it)."""
    if lookup is None:
        return "s.doc @@ CAST(:q AS tsquery)"
    return ("s.doc @@ CAST(:lookup AS tsquery)"
            " AND COALESCE(s.doc @@ CAST(:q AS tsquery), false)")


def _ranked_postgresql(session: Session, tables: str, where: str,
                       params: dict[str, Any], lookup: str | None) -> Candidates:
    """The ranked page on PostgreSQL. A GIN index yields matches in no order: taking
    the newest RANK_WINDOW means reading every match (a word in a third of 1M articles:
    340k rows), and a phrase's matches are each read again to check positions. So the
    newest ids are searched first, widening the range only while it holds too few
    matches: what is read again (a phrase, a weight) and sorted is the range's."""
    top = session.scalar(text("SELECT max(item_id) FROM item_search"))
    if top is None:
        return Candidates([], False)
    # One row at least: the number of matches in the range (n), with the page's rows.
    # item_id + 0: not a condition the primary key can serve. Offered the key's range,
    # the planner reads every document in it to test the query (20,000 vectors, 280
    # ms at 100k items) rather than ask GIN and drop what is out of range (40 ms).
    sql = (f"WITH m AS MATERIALIZED (SELECT s.item_id AS id, s.doc AS doc FROM {tables} "
           f"WHERE s.item_id + 0 > :low{where} AND {_pg_match(lookup)} "
           "ORDER BY s.item_id DESC LIMIT :window) "
           "SELECT p.id, p.score, c.n FROM (SELECT count(*) AS n FROM m) AS c "
           "LEFT JOIN LATERAL (SELECT id, ts_rank_cd(doc, CAST(:q AS tsquery)) AS score "
           "FROM m ORDER BY score DESC, id DESC LIMIT :limit OFFSET :offset) AS p ON true")
    span = RANK_SPAN
    while True:
        params["low"] = max(0, int(top) - span)
        rows = _planned(session, _sql(sql, params), params)
        found = int(rows[0][2])
        if found >= RANK_WINDOW or params["low"] == 0:
            break
        span *= 4
    return Candidates([(int(i), float(score)) for i, score, _ in rows if i is not None],
                      found >= RANK_WINDOW)


def count_candidates(session: Session, expr: str, filters: SearchFilters,
                     lookup: str | None = None) -> int:
    """How many items within ``filters`` the index finds for ``expr`` (``lookup``: see
    :func:`search_candidates`)."""
    params: dict[str, Any] = {"q": expr, "lookup": lookup or expr}
    if search_dialect(session) == "postgresql":
        where = _where(filters, params, "s")
        sql = (f"SELECT count(*) FROM {_pg_tables(filters)} "
               f"WHERE {_pg_match(lookup)}{where}")
        return int(_planned(session, _sql(sql, params), params)[0][0])
    where = _where(filters, params)
    if filters.status != "all" and not filters.feeds and filters.story_id is None:
        # `rules test`'s count (and the Rules page's, over every stored item): the
        # items of the status (and window) from the covering index on (status,
        # created_at), each looked up in the set of matches. Joining each match to its
        # row instead reads past the row's text to its status (SQLite keeps a row's
        # columns in order): 2 s for a common word at 1M items, 0.2 s so; at 100k
        # items without a window, 2.8 s against 16 ms.
        sql = ("SELECT count(*) FROM items i INDEXED BY ix_items_status_created_at "
               f"WHERE i.id IN (SELECT rowid FROM items_fts WHERE items_fts MATCH :q){where}")
    else:
        sql = ("SELECT count(*) FROM items_fts JOIN items i ON i.id = items_fts.rowid "
               f"WHERE items_fts MATCH :q{where}")
    return int(session.execute(_sql(sql, params), params).scalar_one())


def _planned(session: Session, stmt: TextClause, params: dict[str, Any]) -> list[Any]:
    """Run a PostgreSQL search through the GIN index, whatever the planner estimates.

    The planner counts a tsvector kept out of line (TOAST) as nearly free to read, so
    it prefers scanning the table, or walking the primary key backwards and testing
    every document, to the GIN index: measured at 10k items, 70 ms where the index
    takes 3.6 ms. Without plain and index scans for this statement, only bitmap scans
    (the GIN index's way) are left."""
    session.execute(text("SET LOCAL enable_seqscan = off"))
    session.execute(text("SET LOCAL enable_indexscan = off"))
    try:
        return list(session.execute(stmt, params).all())
    finally:
        session.execute(text("RESET enable_seqscan"))
        session.execute(text("RESET enable_indexscan"))


def count_items(session: Session, filters: SearchFilters) -> int:
    """How many items are within ``filters``."""
    params: dict[str, Any] = {}
    where = _where(filters, params)
    return int(session.scalar(_sql(f"SELECT count(*) FROM items i WHERE 1 = 1{where}", params),
                              params) or 0)


def newest_items(session: Session, filters: SearchFilters, limit: int) -> list[int]:
    """The newest ``limit`` item ids within ``filters``, newest first: what is verified
    one by one when the index cannot narrow a query."""
    params: dict[str, Any] = {"limit": limit}
    where = _where(filters, params)
    sql = f"SELECT i.id FROM items i WHERE 1 = 1{where} ORDER BY i.id DESC LIMIT :limit"
    return [int(i) for (i,) in session.execute(_sql(sql, params), params)]


@dataclass(frozen=True)
class Found:
    """A stored item, as search shows and verifies it."""

    id: int
    feed: str
    feed_url: str
    url: str | None
    title: str | None
    text: str
    status: str
    story_id: int | None
    created_at: datetime
    published_at: datetime | None
    backlog: bool
    duplicate_of_item_id: int | None


def found_items(session: Session, ids: Sequence[int]) -> dict[int, Found]:
    """The items ``ids``, with their feed's name, by id."""
    out: dict[int, Found] = {}
    for at in range(0, len(ids), 500):
        q = (select(Item.id, Feed.name, Feed.url, Item.canonical_url, Item.url, Item.title,
                    Item.text, Item.status, Item.story_id, Item.created_at, Item.published_at,
                    Item.backlog, Item.duplicate_of_item_id)
             .join(Feed, Feed.id == Item.feed_id).where(Item.id.in_(ids[at:at + 500])))
        for r in session.execute(q):
            out[r[0]] = Found(r[0], r[1], r[2], r[3] or r[4], r[5], r[6], r[7], r[8], r[9],
                              r[10], r[11], r[12])
    return out


def feed_ids(session: Session, names: Iterable[str]) -> dict[str, int]:
    wanted = list(names)
    return {n: i for n, i in session.execute(select(Feed.name, Feed.id)
                                             .where(Feed.name.in_(wanted)))}
