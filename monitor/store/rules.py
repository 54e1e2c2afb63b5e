"""Rules and the alerts they raise."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Insert, func, select, update
from sqlalchemy.orm import Session

from monitor.config import RuleSettings
from monitor.models import Alert, Feed, Item, Rule
from monitor.store import channels
from monitor.store.sql import insert


def sync_rules(session: Session, rules: Sequence[RuleSettings], now: datetime) -> None:
    """Store the config's rules; rules gone from the config are kept (their alerts stay)
    but disabled. A rule is known by its name: renaming one starts a new rule."""
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


def rule_ids(session: Session, names: Sequence[str]) -> dict[str, int]:
    """Ids of the stored rules called ``names`` (those not stored are left out)."""
    if not names:
        return {}
    return {n: i for n, i in session.execute(
        select(Rule.name, Rule.id).where(Rule.name.in_(list(names))))}


def rule_names(session: Session) -> list[str]:
    """Every stored rule's name (those the config no longer has too: their alerts stay)."""
    return list(session.scalars(select(Rule.name).order_by(Rule.name)))


@dataclass(frozen=True)
class NewAlert:
    rule_id: int
    query: str
    terms: tuple[str, ...]
    snippet: str
    channels: tuple[str, ...] = ()  # the rule's notify: told of the alert at once


def _insert_ignoring_duplicates(session: Session) -> Insert:
    """INSERT ... ON CONFLICT (rule_id, item_id) DO NOTHING, in the session's dialect."""
    return insert(session, Alert).on_conflict_do_nothing(  # type: ignore[no-any-return]
        index_elements=[Alert.rule_id, Alert.item_id])


def add_alerts(session: Session, item_id: int, alerts: Sequence[NewAlert],
               now: datetime, *, backfilled: bool = False) -> int:
    """Store each rule's alert for the item once: an alert already stored for that rule
    and item is left as it is (sent or not). ``backfilled``: raised by a backfill on an
    item stored before. A new alert is queued for its rule's channels in the same
    transaction (monitor.store.channels). Returns how many were new."""
    stmt = _insert_ignoring_duplicates(session).returning(Alert.id)
    added = 0
    for a in alerts:
        # RETURNING, not rowcount: the ORM's insert path does not report a reliable one.
        new = session.execute(stmt.values(
            rule_id=a.rule_id, item_id=item_id, query=a.query, terms=list(a.terms),
            snippet=a.snippet, created_at=now, sent_at=None, backfilled=backfilled)).all()
        for (alert_id,) in new:
            channels.enqueue(session, alert_id, a.channels, now)
        added += len(new)
    return added


@dataclass(frozen=True)
class AlertRow:
    id: int
    rule: str
    item_id: int
    url: str | None
    title: str | None
    feed: str
    published_at: datetime | None
    query: str
    terms: list[str]
    snippet: str
    created_at: datetime
    sent_at: datetime | None
    story_id: int | None = None  # the item's story (None: stories off when it was stored)
    backfilled: bool = False  # raised by a backfill on an item stored before the rule


def list_alerts(
    session: Session, *, rule: str | None = None, unsent: bool = False,
    since: datetime | None = None, limit: int | None = None, before_id: int | None = None,
    item_ids: Sequence[int] | None = None,
) -> list[AlertRow]:
    """Alerts, newest first, with their rule's name and the item they point at; only
    those older than ``before_id`` (a page after another), only those on ``item_ids``."""
    criteria: list[ColumnElement[bool]] = []
    if before_id is not None:
        criteria.append(Alert.id < before_id)
    if item_ids is not None:
        criteria.append(Alert.item_id.in_(list(item_ids)))
    if rule is not None:
        criteria.append(Rule.name == rule)
    if unsent:
        criteria.append(Alert.sent_at.is_(None))
    if since is not None:
        criteria.append(Alert.created_at >= since)
    return alert_rows(session, *criteria, newest_first=True, limit=limit)


def alert_rows(session: Session, *criteria: ColumnElement[bool], newest_first: bool,
               limit: int | None = None) -> list[AlertRow]:
    """Alerts meeting every one of ``criteria`` (on alerts, rules, items, feeds), with
    their rule's name and the item they point at, in the order they were raised."""
    q = (select(Alert, Rule.name, Item.canonical_url, Item.url, Item.title, Item.published_at,
                Feed.name, Item.story_id)
         .join(Rule, Rule.id == Alert.rule_id)
         .join(Item, Item.id == Alert.item_id)
         .join(Feed, Feed.id == Item.feed_id)
         .where(*criteria)
         .order_by(Alert.id.desc() if newest_first else Alert.id))
    if limit:
        q = q.limit(limit)
    return [
        AlertRow(id=a.id, rule=name, item_id=a.item_id, url=canonical or url, title=title,
                 feed=feed, published_at=published, query=a.query, terms=list(a.terms),
                 snippet=a.snippet, created_at=a.created_at, sent_at=a.sent_at,
                 story_id=story, backfilled=a.backfilled)
        for a, name, canonical, url, title, published, feed, story in session.execute(q)
    ]


def alerted_for(session: Session, rule_id: int, item_ids: Sequence[int]) -> set[int]:
    """Of the originals ``item_ids``, those the rule alerted for already: on the item or
    on one of its copies (an earlier original that a fuller copy replaced)."""
    out: set[int] = set()
    for at in range(0, len(item_ids), 500):
        chunk = list(item_ids[at:at + 500])
        out.update(session.scalars(select(Alert.item_id).where(
            Alert.rule_id == rule_id, Alert.item_id.in_(chunk))))
        out.update(session.scalars(
            select(Item.duplicate_of_item_id).join(Alert, Alert.item_id == Item.id)
            .where(Alert.rule_id == rule_id, Item.duplicate_of_item_id.in_(chunk))))
    return out


def lock_rule(session: Session, rule_id: int) -> str | None:
    """Lock the rule's row until the transaction ends (PostgreSQL: FOR UPDATE; SQLite
    has one writer) and return the backfill last applied to it."""
    q = select(Rule.backfill_key).where(Rule.id == rule_id)
    if session.get_bind().dialect.name == "postgresql":
        q = q.with_for_update()
    return session.scalar(q)


def set_backfill_key(session: Session, rule_id: int, key: str) -> None:
    session.execute(update(Rule).where(Rule.id == rule_id).values(backfill_key=key))


def count_alerts(session: Session) -> dict[str, tuple[int, int]]:
    """(alerts, of which unsent) by rule name, for every rule that has any."""
    unsent = func.count(Alert.id).filter(Alert.sent_at.is_(None))
    q = (select(Rule.name, func.count(Alert.id), unsent)
         .join(Alert, Alert.rule_id == Rule.id).group_by(Rule.name))
    return {name: (n, u) for name, n, u in session.execute(q)}


@dataclass(frozen=True)
class MatchableItem:
    id: int
    feed: str
    url: str | None
    title: str | None
    text: str
    created_at: datetime
    published_at: datetime | None = None
    backlog: bool = False  # found by its feed's first parse
    feed_url: str = ""


def items_to_match(session: Session, since: datetime | None,
                   batch: int = 500) -> Iterator[MatchableItem]:
    """Items that rules apply to (new, not duplicates) stored since ``since``, newest
    first, read in batches so a large table is never held in memory at once."""
    q = (select(Item.id, Feed.name, Item.canonical_url, Item.url, Item.title, Item.text,
                Item.created_at, Item.published_at, Item.backlog, Feed.url.label("feed_url"))
         .join(Feed, Feed.id == Item.feed_id)
         .where(Item.status == "new")
         .order_by(Item.id.desc()))
    if since is not None:
        q = q.where(Item.created_at >= since)
    for row in session.execute(q.execution_options(yield_per=batch)):
        yield MatchableItem(row.id, row.name, row.canonical_url or row.url, row.title,
                            row.text, row.created_at, row.published_at, row.backlog,
                            row.feed_url)
