"""Digests: composed once per recipient, stored whole, pending until SMTP accepts them.

``digest_alerts`` is unique per (alert, recipient), so an alert joins at most one
digest per recipient, however many workers compose at once: the second insert
fails and its transaction rolls back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, func, insert, select, update
from sqlalchemy.orm import Session

from monitor.models import Alert, Digest, DigestAlert, Rule
from monitor.store.rules import AlertRow, alert_rows


def undelivered_alerts(session: Session, recipient: str, rules: Sequence[str]) -> list[AlertRow]:
    """Alerts of the rules named ``rules`` that no digest to ``recipient`` carries yet,
    oldest first."""
    if not rules:
        return []
    carried = exists().where(DigestAlert.alert_id == Alert.id,
                             DigestAlert.recipient == recipient)
    return alert_rows(session, Rule.name.in_(list(rules)), ~carried, newest_first=False)


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


def _row(d: Digest) -> DigestRow:
    return DigestRow(d.id, d.recipient, d.message_id, d.subject, d.alerts, d.created_at,
                     d.attempts, d.last_error, d.next_attempt_at, d.sent_at)


def pending_digests(session: Session, due_by: datetime | None) -> list[DigestRow]:
    """Digests not yet accepted by the SMTP server whose next attempt is due by
    ``due_by`` (all of them if None), oldest first."""
    q = select(Digest).where(Digest.sent_at.is_(None)).order_by(Digest.id)
    if due_by is not None:
        q = q.where(Digest.next_attempt_at <= due_by)
    return [_row(d) for d in session.scalars(q)]


def next_digest_attempt_at(session: Session) -> datetime | None:
    """When the soonest pending digest is due to be tried (again), or None."""
    return session.scalar(select(func.min(Digest.next_attempt_at))
                          .where(Digest.sent_at.is_(None)))


def list_digests(session: Session, *, pending: bool = False,
                 limit: int | None = None) -> list[DigestRow]:
    """Digests, newest first."""
    q = select(Digest).order_by(Digest.id.desc())
    if pending:
        q = q.where(Digest.sent_at.is_(None))
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
        sent_at=now, attempts=Digest.attempts + 1, last_error=None))
    carried = select(DigestAlert.alert_id).where(DigestAlert.digest_id == digest_id)
    session.execute(update(Alert)
                    .where(Alert.id.in_(carried), Alert.sent_at.is_(None))
                    .values(sent_at=now)
                    .execution_options(synchronize_session=False))


def mark_digest_failed(session: Session, digest_id: int, error: str,
                       retry_at: datetime) -> None:
    """A send failed: keep the digest pending, say why, and when to try again."""
    session.execute(update(Digest).where(Digest.id == digest_id).values(
        attempts=Digest.attempts + 1, last_error=error[:2000], next_attempt_at=retry_at))
