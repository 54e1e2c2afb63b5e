"""Search: the full-text index narrows, the query decides.

A query (the rule language, :mod:`monitor.rules`) is compiled for the database's index
(:func:`monitor.rules.fulltext.compile_query`); the items the index finds are read
in rank order and each is verified with the query itself, exactly as the pipeline
matches rules, so ``monitor search``, ``monitor rules test`` and the alerts a rule
raises (or backfills) always agree. Where the index cannot narrow a query, the newest
:data:`SCAN_LIMIT` items within the filters are verified one by one instead, and the
result says so (:attr:`Result.scanned`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor import db, store
from monitor.config import RuleSettings
from monitor.errors import StoreError
from monitor.rules import Document, Query, hit
from monitor.rules.fulltext import Compiled, compile_query

log = logging.getLogger(__name__)

SCAN_LIMIT = 20_000  # items verified one by one when the index cannot narrow a query
_PAGE = 500  # candidates read and verified at a time, at most


@dataclass(frozen=True)
class Match:
    """An item the query matches, with the terms that matched and a snippet."""

    item: store.Found
    score: float  # the index's rank (higher is better); 0 when scanned
    terms: tuple[str, ...]
    snippet: str


@dataclass
class Group:
    """The matches of one story (or one item, where it has none), best first."""

    story_id: int | None
    matches: list[Match] = field(default_factory=list)

    @property
    def lead(self) -> Match:
        return self.matches[0]


@dataclass(frozen=True)
class Result:
    query: Query
    compiled: Compiled
    groups: list[Group]  # in rank order (newest first when ``ranked`` is False)
    more: bool  # stopped at the limit: further candidates were not read
    scanned: int | None  # the index could not narrow the query: items verified instead
    windowed: bool = False  # ranked among the newest store.RANK_WINDOW matches only

    @property
    def matches(self) -> list[Match]:
        return [m for g in self.groups for m in g.matches]


def search(session: Session, query: Query, filters: store.SearchFilters, *,
           limit: int | None = 20, ranked: bool = True, by_story: bool = True) -> Result:
    """Items matching ``query`` within ``filters``: up to ``limit`` groups (None: all),
    best first when ``ranked``, else newest first. With ``by_story`` an item's group is
    its story (one line per story), else the item alone."""
    compiled = compile_query(query.node, store.search_dialect(session))
    groups: dict[int, Group] = {}
    more = False
    scanned: int | None = None
    windowed: list[bool] = []
    if compiled.expr is None:
        ids = store.newest_items(session, filters, SCAN_LIMIT)
        scanned = len(ids)
        pages: Iterator[list[tuple[int, float]]] = (
            [(i, 0.0) for i in ids[at:at + _PAGE]] for at in range(0, len(ids), _PAGE))
    else:
        first = _PAGE if limit is None else min(_PAGE, limit + 5)
        pages = _pages(session, compiled, filters, ranked, first, windowed)
    for page in pages:
        items = store.found_items(session, [i for i, _ in page])
        for item_id, score in page:
            item = items.get(item_id)
            if item is None:  # deleted since the index was read
                continue
            doc = Document(item.title, item.text)
            if not query.matches(doc):
                continue
            h = hit("search", query, doc)
            key = item.story_id if by_story and item.story_id is not None else -item.id
            group = groups.get(key)
            if group is None:
                if limit is not None and len(groups) >= limit:
                    more = True
                    break
                group = groups[key] = Group(item.story_id)
            group.matches.append(Match(item, score, h.terms, h.snippet))
        if more:
            break
    return Result(query, compiled, list(groups.values()), more, scanned, any(windowed))


def count_matches(session: Session, query: Query, filters: store.SearchFilters) -> int:
    """How many items within ``filters`` ``query`` matches. Where the index answers the
    query exactly (:attr:`Compiled.exact`; the property tests hold it to that), the
    index counts; else every candidate is verified."""
    compiled = compile_query(query.node, store.search_dialect(session))
    if compiled.expr is not None and compiled.exact:
        return store.count_candidates(session, compiled.expr, filters, compiled.lookup)
    return len(search(session, query, filters, limit=None, ranked=False,
                      by_story=False).matches)


@dataclass(frozen=True)
class Tested:
    """What a rule with a query would match: the newest ``result``, ``total`` matches of
    the ``checked`` items within the filters."""

    result: Result
    total: int
    checked: int


def test_rule(session: Session, query: Query, filters: store.SearchFilters,
              limit: int | None) -> Tested:
    """The stored originals within ``filters`` a rule with ``query`` would alert for
    (``limit`` of them, newest first; None: all), and how many in all."""
    result = search(session, query, filters, limit=limit, ranked=False, by_story=False)
    total = len(result.matches) if not result.more else count_matches(session, query, filters)
    return Tested(result, total, store.count_items(session, filters))


def _pages(session: Session, compiled: Compiled, filters: store.SearchFilters, ranked: bool,
           size: int, windowed: list[bool]) -> Iterator[list[tuple[int, float]]]:
    """Candidates a page at a time: ``size`` first (what a limit needs, so that a
    search for 20 reads about 20 texts), then larger pages up to :data:`_PAGE`.
    Appends to ``windowed`` whether ranking met the window."""
    offset = 0  # ranked: candidates read so far; else the last id read
    while True:
        assert compiled.expr is not None
        found = store.search_candidates(session, compiled.expr, filters, size, offset,
                                        ranked=ranked, lookup=compiled.lookup)
        windowed.append(found.windowed)
        page = found.ids
        if not page:
            return
        yield page
        if len(page) < size:
            return
        offset = offset + len(page) if ranked else page[-1][0]
        size = min(_PAGE, size * 4)


def fill_index(sessions: sessionmaker[Session], batch: int = 500) -> int:
    """Index the stored items the index lacks (after the upgrade that created it, or
    ``monitor db reindex-search``), a batch per transaction, logging progress every
    few seconds; an interrupted fill resumes at the next call. Returns how many were
    indexed."""
    total = 0
    said = time.monotonic()
    while True:
        with sessions.begin() as s:
            step = store.fill_index(s, batch)
        total += step.indexed
        if not step.left:
            if total:
                log.info("search index: %d stored items indexed", total)
            return total
        if time.monotonic() - said >= 5:
            said = time.monotonic()
            log.info("search index: %d stored items indexed, at most %d to go", total, step.left)


# --- backfill -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Backfilled:
    """What a backfill of one rule found and stored."""

    rule: str
    since: datetime
    matched: list[Match]  # originals stored in the window that the rule matches, newest first
    alerted_before: int  # of them, those the rule had alerted for already
    added: int  # alerts stored now (0 on a dry run)
    scanned: int | None  # the index could not narrow the query: items verified instead


def backfill(session: Session, rule: RuleSettings, rule_id: int, since: datetime,
             now: datetime, *, dry_run: bool = False) -> Backfilled:
    """Store the alerts ``rule`` would have raised on the originals stored since
    ``since`` (never on a duplicate; never twice: an item the rule alerted for, or whose
    story's earlier original it alerted for, is left alone), each marked backfilled so
    the next digest says so. The caller commits."""
    result = search(session, rule.parsed, store.SearchFilters(since=since, status="new"),
                    limit=None, ranked=False, by_story=False)
    matched = result.matches
    done = store.alerted_for(session, rule_id, [m.item.id for m in matched])
    added = 0
    if not dry_run:
        for m in matched:
            if m.item.id not in done:
                added += store.add_alerts(
                    session, m.item.id,
                    [store.NewAlert(rule_id, rule.query, m.terms, m.snippet)], now,
                    backfilled=True)
    return Backfilled(rule.name, since, matched, sum(m.item.id in done for m in matched),
                      added, result.scanned)


def apply_backfills(sessions: sessionmaker[Session], rules: Sequence[RuleSettings],
                    now: datetime) -> list[Backfilled]:
    """The config's ``backfill`` of each rule, once: a rule's row is locked while its
    backfill runs and records what was applied (its window and query), so workers
    starting together, and every later start, apply it once. Raises StoreError."""
    done: list[Backfilled] = []
    for rule in rules:
        key = rule.backfill_key()
        if key is None or rule.backfill is None:
            continue
        try:
            with sessions.begin() as s:
                rule_id = store.rule_ids(s, [rule.name]).get(rule.name)
                if rule_id is None or store.lock_rule(s, rule_id) == key:
                    continue
                result = backfill(s, rule, rule_id, now - timedelta(seconds=rule.backfill), now)
                store.set_backfill_key(s, rule_id, key)
        except SQLAlchemyError as exc:
            raise StoreError(f"backfilling rule {rule.name!r} failed: {db.reason(exc)}") from exc
        log.info("rule %r: backfilled %d alerts on items stored since %s (%d matched, %d "
                 "alerted before)", rule.name, result.added, result.since.isoformat(),
                 len(result.matched), result.alerted_before)
        done.append(result)
    return done
