"""Digests: composed once per recipient, stored whole, pending until SMTP accepts them
(or refuses them for good: failed).

``digest_alerts`` is unique per (alert, recipient), so an alert joins at most one
digest per recipient, however many workers compose at once: the second insert
fails and its transaction rolls back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, exists, func, insert, or_, select, update
from sqlalchemy.orm import Session

from monitor.models import Alert, Digest, DigestAlert, FreedAlert, Item, Rule
from monitor.store.rules import AlertRow, alert_rows


def undelivered_alerts(session: Session, recipient: str, rules: Sequence[str]) -> list[AlertRow]:
    """Alerts of the rules named ``rules`` that no digest to ``recipient`` carries yet,
    oldest first."""
    if not rules:
        return []
    return alert_rows(session, *_undelivered(recipient, rules), newest_first=False)


def _undelivered(recipient: str, rules: Sequence[str]) -> tuple[ColumnElement[bool], ...]:
    """An alert of one of ``rules`` that no digest to ``recipient`` carries yet."""
    carried = exists().where(DigestAlert.alert_id == Alert.id,
                             DigestAlert.recipient == recipient)
    return Rule.name.in_(list(rules)), ~carried


def waiting_for_digest(session: Session, recipient: str,
                       rules: Sequence[str]) -> tuple[int, int]:
    """How many alerts :func:`undelivered_alerts` would give, and about how many
    stories they make (an item without a story counts as one), counted in the
    database: for a page that shows the numbers, not the digest."""
    if not rules:
        return 0, 0
    story = func.coalesce(Item.story_id, -Item.id)
    row = session.execute(
        select(func.count(), func.count(func.distinct(story)))
        .select_from(Alert).join(Rule, Rule.id == Alert.rule_id)
        .join(Item, Item.id == Alert.item_id)
        .where(*_undelivered(recipient, rules))).one()
    return int(row[0]), int(row[1])


def stories_mailed(session: Session, recipient: str,
                   story_ids: Sequence[int]) -> dict[int, datetime]:
    """Of ``story_ids``, those a digest to ``recipient`` (sent or still to be, not failed)
    already carried, with when the latest such digest was composed: a later digest
    shows only what the story gained since."""
    out: dict[int, datetime] = {}
    wanted = list(dict.fromkeys(story_ids))
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        q = (select(Item.story_id, func.max(Digest.created_at))
             .select_from(DigestAlert)
             .join(Digest, Digest.id == DigestAlert.digest_id)
             .join(Alert, Alert.id == DigestAlert.alert_id)
             .join(Item, Item.id == Alert.item_id)
             .where(DigestAlert.recipient == recipient, Digest.failed_at.is_(None),
                    Item.story_id.in_(chunk))
             .group_by(Item.story_id))
        for story_id, at in session.execute(q):
            if story_id is not None:
                out[story_id] = at
    return out


@dataclass(frozen=True)
class NewDigest:
    recipient: str
    message_id: str
    subject: str
    message: bytes
    alert_ids: tuple[int, ...]


def add_digest(session: Session, d: NewDigest, now: datetime) -> int:
    """Store a composed digest, due for sending at once. Returns its id. Raises
    IntegrityError when one of its alerts is already in a digest to this recipient."""
    row = Digest(recipient=d.recipient, message_id=d.message_id, subject=d.subject,
                 message=d.message, alerts=len(d.alert_ids), created_at=now, attempts=0,
                 last_error=None, next_attempt_at=now, sent_at=None)
    session.add(row)
    session.flush()
    if d.alert_ids:
        session.execute(insert(DigestAlert), [
            {"digest_id": row.id, "alert_id": a, "recipient": d.recipient} for a in d.alert_ids])
    return row.id


@dataclass(frozen=True)
class DigestRow:
    id: int
    recipient: str
    message_id: str
    subject: str
    alerts: int
    created_at: datetime
    attempts: int
    last_error: str | None
    next_attempt_at: datetime
    sent_at: datetime | None
    failed_at: datetime | None = None

    @property
    def state(self) -> str:
        """sent | failed | pending"""
        return "sent" if self.sent_at else "failed" if self.failed_at else "pending"


def _row(d: Digest) -> DigestRow:
    return DigestRow(d.id, d.recipient, d.message_id, d.subject, d.alerts, d.created_at,
                     d.attempts, d.last_error, d.next_attempt_at, d.sent_at, d.failed_at)


def _pending() -> Any:
    return and_(Digest.sent_at.is_(None), Digest.failed_at.is_(None))


def claim_digests(session: Session, owner: str, due_by: datetime | None, now: datetime,
                  lease_until: datetime) -> list[DigestRow]:
    """Claim the pending digests due by ``due_by`` (all pending ones if None) that no
    live lease holds, for ``owner`` until ``lease_until``; oldest first. With
    ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL, so each is sent by one worker.
    ``owner``'s own claims count as free (a round that failed to record its sends)."""
    free = or_(Digest.lease_until.is_(None), Digest.lease_until <= now,
               Digest.lease_owner == owner)
    pick = select(Digest.id).where(_pending(), free)
    if due_by is not None:
        pick = pick.where(Digest.next_attempt_at <= due_by)
    claimed = session.scalars(
        update(Digest).where(Digest.id.in_(pick.with_for_update(skip_locked=True)
                                           .scalar_subquery()), free)
        .values(lease_owner=owner, lease_until=lease_until)
        .returning(Digest)
        .execution_options(synchronize_session=False))
    return sorted((_row(d) for d in claimed), key=lambda d: d.id)


@dataclass(frozen=True)
class DigestCounts:
    pending: int
    failed: int  # given up for good (see mark_digest_given_up)
    last_sent_at: datetime | None


def digest_counts(session: Session) -> DigestCounts:
    """How many digests are pending and failed, and when the last one was sent."""
    pending, failed, last = session.execute(select(
        func.count().filter(_pending()), func.count().filter(Digest.failed_at.is_not(None)),
        func.max(Digest.sent_at))).one()
    return DigestCounts(pending or 0, failed or 0, last)


def recipients_waiting(session: Session) -> set[str]:
    """The recipients with a digest pending."""
    return set(session.scalars(select(Digest.recipient).where(_pending()).distinct()))


def next_digest_attempt_at(session: Session) -> datetime | None:
    """When the soonest pending digest is due to be tried (again), or None."""
    return session.scalar(select(func.min(Digest.next_attempt_at)).where(_pending()))


def list_digests(session: Session, *, pending: bool = False, failed: bool = False,
                 limit: int | None = None) -> list[DigestRow]:
    """Digests, newest first (only the pending ones, only the failed ones)."""
    q = select(Digest).order_by(Digest.id.desc())
    if pending:
        q = q.where(_pending())
    if failed:
        q = q.where(Digest.failed_at.is_not(None))
    if limit:
        q = q.limit(limit)
    return [_row(d) for d in session.scalars(q)]


def digest_message(session: Session, digest_id: int) -> bytes:
    """The stored message, byte for byte as composed."""
    return session.execute(select(Digest.message).where(Digest.id == digest_id)).scalar_one()


def mark_digest_sent(session: Session, digest_id: int, now: datetime) -> None:
    """The server accepted the digest: it is sent, and so are its alerts (the first
    time any digest carries them)."""
    session.execute(update(Digest).where(Digest.id == digest_id).values(
        sent_at=now, attempts=Digest.attempts + 1, last_error=None, lease_owner=None,
        lease_until=None))
    carried = select(DigestAlert.alert_id).where(DigestAlert.digest_id == digest_id)
    session.execute(update(Alert)
                    .where(Alert.id.in_(carried), Alert.sent_at.is_(None))
                    .values(sent_at=now)
                    .execution_options(synchronize_session=False))


def mark_digest_failed(session: Session, digest_id: int, error: str,
                       retry_at: datetime) -> None:
    """A send failed: keep the digest pending, say why, and when to try again."""
    session.execute(update(Digest).where(Digest.id == digest_id).values(
        attempts=Digest.attempts + 1, last_error=error[:2000], next_attempt_at=retry_at,
        lease_owner=None, lease_until=None))


def mark_digest_given_up(session: Session, digest_id: int, error: str, now: datetime) -> int:
    """The server refused the digest for good: it is failed (never tried again), with
    why, and its alerts go to the recipient's next digest: each once only, so those a
    failed digest gave back before stay with this one. Returns how many were given
    back."""
    digest = session.execute(update(Digest).where(Digest.id == digest_id).values(
        failed_at=now, attempts=Digest.attempts + 1, last_error=error[:2000],
        lease_owner=None, lease_until=None).returning(Digest.recipient)).one()
    freed_before = select(FreedAlert.alert_id).where(FreedAlert.recipient == digest.recipient)
    alert_ids = list(session.scalars(
        select(DigestAlert.alert_id).where(DigestAlert.digest_id == digest_id,
                                           DigestAlert.alert_id.not_in(freed_before))))
    for start in range(0, len(alert_ids), 500):  # under every driver's bind limit
        chunk = alert_ids[start:start + 500]
        session.execute(delete(DigestAlert).where(DigestAlert.digest_id == digest_id,
                                                  DigestAlert.alert_id.in_(chunk)))
        session.execute(insert(FreedAlert), [{"alert_id": a, "recipient": digest.recipient}
                                             for a in chunk])
    return len(alert_ids)
