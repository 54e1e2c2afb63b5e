"""Digest delivery: compose digests when the schedule says so, send what is pending.

Two steps, each with its own transactions, so nothing is lost and nothing doubles:

1. **Compose** (one transaction): for each recipient of the config's rules, the
   alerts no digest to them carries yet are rendered into one email, stored
   whole with its Message-ID, and linked to the alerts. The schedule's next
   slot advances in the same transaction, so a crash leaves either both or
   neither. Missed slots (the daemon was down) become one catch-up digest.
2. **Send** each pending digest whose attempt is due. Only after the server has
   accepted it is it marked sent (and its alerts with it). A failure keeps it
   pending with the reason and a retry time, backing off 1m, 2m, 4m … up to
   ``[digest] retry_max``; a refusal for good (see :func:`give_up`) makes it failed,
   and its alerts go into the recipient's next digest, once. A crash between acceptance and the commit sends
   it again at the next run: one repeat at most, with the same Message-ID, which
   mail clients show as one message.

Only this module, the CLI and the service call it; SMTP is behind a
:class:`monitor.digest.mailer.Mailer` and the clock is passed in.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from email.message import EmailMessage
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor import db, store
from monitor.clock import Clock
from monitor.config import RuleSettings, Settings
from monitor.digest.mailer import Mailer
from monitor.digest.render import (
    Digest,
    Entry,
    Report,
    assemble,
    new_message_id,
    render,
    subject,
)
from monitor.digest.schedule import CronSchedule
from monitor.errors import MailError, StoreError

log = logging.getLogger(__name__)

SCHEDULE_KEY = "digest.schedule"  # meta row: the schedule and its next slot
FIRST_RETRY_SECONDS = 60
# Reviewers' verdicts counted in a recipient's first digest: those of the last week.
FEEDBACK_WINDOW = timedelta(days=7)



def recipients(rules: Sequence[RuleSettings]) -> dict[str, list[str]]:
    """Each recipient's rules, by name, in config order; recipients in order of appearance."""
    out: dict[str, list[str]] = {}
    for rule in rules:
        for addr in rule.recipients:
            out.setdefault(addr, []).append(rule.name)
    return out


def retry_delay(attempts: int, cap_seconds: int) -> timedelta:
    """The wait after the ``attempts``-th failed attempt: 1m, 2m, 4m … at most the cap."""
    return timedelta(seconds=min(cap_seconds, FIRST_RETRY_SECONDS * 2 ** min(attempts - 1, 20)))


# --- the schedule ------------------------------------------------------------------------------

@dataclass(frozen=True)
class SlotState:
    schedule: str
    timezone: str
    next_at: datetime

    def follows(self, settings: Settings) -> bool:
        """Whether this slot was set for the config's schedule (a changed one starts over)."""
        return (self.schedule, self.timezone) == (settings.digest.schedule,
                                                  settings.digest.timezone)


def _read_slot(session: Session, *, lock: bool = False) -> SlotState | None:
    raw = store.get_meta(session, SCHEDULE_KEY, lock=lock)
    if not raw:
        return None
    try:
        d = json.loads(raw)
        return SlotState(d["schedule"], d["timezone"], datetime.fromisoformat(d["next_at"]))
    except (ValueError, KeyError, TypeError):
        log.warning("digest schedule state %r is unreadable; starting it again", raw)
        return None


def _write_slot(session: Session, state: SlotState) -> None:
    store.set_meta(session, SCHEDULE_KEY, json.dumps(
        {"schedule": state.schedule, "timezone": state.timezone,
         "next_at": state.next_at.isoformat()}))


def next_digest_at(session: Session, settings: Settings) -> datetime | None:
    """When the next digests are due, or None before the first check has set a slot."""
    state = _read_slot(session)
    return state.next_at if state is not None and state.follows(settings) else None


def upcoming_digest_at(session: Session, settings: Settings, now: datetime) -> datetime:
    """When the next digests are due, for people to read: the slot the workers keep, or,
    before a worker has set one for this schedule (none has run since it changed, or
    only ``run --once`` has), the schedule's next slot after ``now``."""
    stored = next_digest_at(session, settings)
    if stored is not None:
        return stored
    d = settings.digest
    return CronSchedule(d.schedule, ZoneInfo(d.timezone)).next_after(now)


def _claim_slot(session: Session, settings: Settings, now: datetime) -> bool:
    """Whether a slot has come (and advance to the next one after ``now``). The first
    check, or a changed schedule, only sets the next slot: digests start on schedule.
    The slot's row stays locked until the transaction ends: of several workers
    checking at once, one composes and the others then find the slot advanced."""
    d = settings.digest
    schedule = CronSchedule(d.schedule, ZoneInfo(d.timezone))
    state = _read_slot(session, lock=True)
    fresh = SlotState(d.schedule, d.timezone, schedule.next_after(now))
    if state is None or not state.follows(settings):
        _write_slot(session, fresh)
        log.info("digests scheduled %r (%s); the next at %s", d.schedule, d.timezone,
                 fresh.next_at.isoformat())
        return False
    if now < state.next_at:
        return False
    _write_slot(session, fresh)
    return True


# --- composing ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Composed:
    digest_id: int
    recipient: str
    alerts: int
    subject: str


def build(session: Session, settings: Settings, recipient: str, rules: Sequence[str],
          now: datetime, message_id: str) -> tuple[Digest, EmailMessage]:
    """The digest ``recipient`` would get now, rendered; reads only. Alerts are grouped
    by their item's story; an item without one (stored with stories off) is a story of
    its own, its copies in other feeds its other reports."""
    rows = store.undelivered_alerts(session, recipient, rules)
    # An outlet is named with its category where the config gives one: "Wire (World)".
    labels = {f.name: f"{f.name} ({f.category})" for f in settings.feeds if f.category}
    stories = sorted({r.story_id for r in rows if r.story_id is not None})
    reports: dict[int, list[Report]] = {
        story: [Report(p.item_id, labels.get(p.feed, p.feed), p.url, p.title, p.at,
                       p.stored_at) for p in found]
        for story, found in store.story_reports(session, stories).items()}
    alone = [r for r in rows if r.story_id is None]
    for item_id, copies in store.also_reported_by(session, [r.item_id for r in alone]).items():
        reports[-item_id] = [Report(c.item_id, labels.get(c.feed, c.feed), c.url, c.title, c.at,
                                    c.stored_at) for c in copies]
    entries = [
        Entry(alert_id=r.id, rule=r.rule, item_id=r.item_id, title=r.title, url=r.url,
              feed=labels.get(r.feed, r.feed), published_at=r.published_at,
              created_at=r.created_at,
              query=r.query, terms=tuple(r.terms), snippet=r.snippet,
              story=r.story_id if r.story_id is not None else -r.item_id,
              backfilled=r.backfilled)
        for r in rows
    ]
    mailed = store.stories_mailed(session, recipient, stories)
    digest = assemble(recipient, entries, [r.name for r in settings.rules], reports, mailed)
    previous = store.last_digest_to(session, recipient)
    marks = store.feedback_counts(session, previous or now - FEEDBACK_WINDOW)
    digest = replace(digest, feedback={r: marks[r] for r in rules if r in marks})
    tz = ZoneInfo(settings.digest.timezone)
    return digest, render(digest, settings.digest, tz, now, message_id)


def compose(sessions: sessionmaker[Session], settings: Settings, now: datetime, *,
            scheduled: bool = True) -> list[Composed]:
    """Compose and store a digest for each recipient with something new (or for
    every recipient with ``[digest] send_empty``). With ``scheduled``, only when a
    slot of the schedule has come. Raises StoreError."""
    domain = settings.digest.sender.rpartition("@")[2]
    try:
        with sessions.begin() as s:
            if scheduled and not _claim_slot(s, settings, now):
                return []
            composed = []
            waiting = store.recipients_waiting(s) if settings.digest.send_empty else set()
            for recipient, rules in recipients(settings.rules).items():
                message_id = new_message_id(domain, secrets.token_hex(12))
                digest, message = build(s, settings, recipient, rules, now, message_id)
                # "Nothing new" says nothing a digest still waiting to go out does not:
                # a server down for a while gets one, not one per slot or `send --now`.
                if not digest.count and (not settings.digest.send_empty
                                         or recipient in waiting):
                    continue
                title = subject(digest)
                digest_id = store.add_digest(s, store.NewDigest(
                    recipient, message_id, title, message.as_bytes(), tuple(digest.alert_ids)),
                    now)
                composed.append(Composed(digest_id, recipient, digest.count, title))
    except IntegrityError:
        # Another worker composed the same alerts into its digests first: they are theirs.
        log.info("digests were composed by another worker at the same time; nothing to add")
        return []
    except SQLAlchemyError as exc:
        raise StoreError(f"composing digests failed: {db.reason(exc)}") from exc
    for c in composed:
        log.info("digest %d for %s composed: %d alerts", c.digest_id, c.recipient, c.alerts)
    return composed


# --- sending -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Delivery:
    digest_id: int
    recipient: str
    alerts: int
    error: str | None = None  # None: accepted by the server
    retry_at: datetime | None = None  # None with an error: given up (failed for good)
    freed: int = 0  # given up: alerts given to the recipient's next digest


def send_pending(sessions: sessionmaker[Session], settings: Settings, mailer: Mailer,
                 clock: Clock, *, owner: str, everything: bool = False) -> list[Delivery]:
    """Send the pending digests whose attempt is due (all pending ones with
    ``everything``), oldest first, each claimed by ``owner`` first so that no other
    worker sends it too. A server that cannot be reached fails the rest of the
    round at once instead of timing out on each. Raises StoreError."""
    now = renewed = clock()
    lease = timedelta(seconds=settings.daemon.lease)
    try:
        with sessions.begin() as s:
            pending = store.claim_digests(s, owner, None if everything else now, now, now + lease)
    except SQLAlchemyError as exc:
        raise StoreError(f"claiming pending digests failed: {db.reason(exc)}") from exc
    results: list[Delivery] = []
    unreachable: MailError | None = None
    for d in pending:
        error = unreachable
        if error is None:
            # A slow server can take longer than the lease for the whole batch: keep the
            # claims alive, or another worker (or `digest send`) sends the rest again.
            # (A daemon's heartbeat renews them too; `digest send` has no heartbeat.)
            if (now := clock()) - renewed > lease / 3:
                try:
                    with sessions.begin() as s:
                        store.renew_leases(s, owner, now + lease)
                except SQLAlchemyError as exc:
                    raise StoreError(f"renewing digest claims failed: {db.reason(exc)}") from exc
                renewed = now
            try:
                with sessions() as s:
                    message = store.digest_message(s, d.id)
                mailer.send(message, settings.digest.sender, [d.recipient])
            except MailError as exc:
                error = exc
                if not exc.refused:
                    unreachable = exc
            except SQLAlchemyError as exc:
                raise StoreError(f"reading digest {d.id} failed: {db.reason(exc)}") from exc
        results.append(_record(sessions, settings, d, error, clock()))
    return results


def give_up(error: MailError, attempts: int, settings: Settings) -> bool:
    """Whether a send that failed with ``error``, the ``attempts``-th, ends the digest:
    the server refused its recipient for good (a 5xx to RCPT), or answered with a 5xx
    ``[digest] give_up_after`` times. A server that cannot be reached, or answers 4xx
    (try again later), is tried for ever: that is an outage, not a refusal."""
    if not error.permanent:
        return False
    return error.recipient_refused or attempts >= settings.digest.give_up_after


def _record(sessions: sessionmaker[Session], settings: Settings, d: store.DigestRow,
            error: MailError | None, now: datetime) -> Delivery:
    retry_at = now + retry_delay(d.attempts + 1, settings.digest.retry_max)
    ends = error is not None and give_up(error, d.attempts + 1, settings)
    freed = 0
    try:
        with sessions.begin() as s:
            if error is None:
                store.mark_digest_sent(s, d.id, now)
            elif ends:
                freed = store.mark_digest_given_up(s, d.id, str(error), now)
            else:
                store.mark_digest_failed(s, d.id, str(error), retry_at)
    except SQLAlchemyError as exc:
        # If the server accepted it, the next run sends it again: the one repeat, same
        # Message-ID. Nothing is lost.
        raise StoreError(f"recording digest {d.id} for {d.recipient} failed: {db.reason(exc)}") from exc
    if error is None:
        log.info("digest %d sent to %s (%d alerts)", d.id, d.recipient, d.alerts)
        return Delivery(d.id, d.recipient, d.alerts)
    if ends:
        log.error("digest %d to %s failed for good (attempt %d): %s; %d of its %d alerts go "
                  "into the next digest to %s", d.id, d.recipient, d.attempts + 1, error,
                  freed, d.alerts, d.recipient)
        return Delivery(d.id, d.recipient, d.alerts, str(error), None, freed)
    log.warning("digest %d to %s not sent (attempt %d): %s; retrying at %s", d.id, d.recipient,
                d.attempts + 1, error, retry_at.isoformat())
    return Delivery(d.id, d.recipient, d.alerts, str(error), retry_at)


@dataclass
class Round:
    """What one round of digest work did, for the CLI and the daemon's log."""

    composed: list[Composed] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)

    @property
    def failed(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.error]

    def render(self) -> str:
        sent = [d for d in self.deliveries if not d.error]
        lines = [f"composed {len(self.composed)} digests"
                 + "".join(f"\n  {c.recipient}: {c.alerts} alerts, {c.subject!r}"
                           for c in self.composed),
                 f"sent {len(sent)} digests"
                 + "".join(f"\n  {d.recipient}: digest {d.digest_id}, {d.alerts} alerts"
                           for d in sent)]
        later = [d for d in self.failed if d.retry_at is not None]
        ended = [d for d in self.failed if d.retry_at is None]
        if later:
            lines.append(f"not sent {len(later)} digests (kept, retried later)" + "".join(
                f"\n  {d.recipient}: digest {d.digest_id}: {d.error}; next attempt "
                f"{d.retry_at.isoformat() if d.retry_at else '?'}" for d in later))
        if ended:
            lines.append(f"failed for good {len(ended)} digests (not tried again)" + "".join(
                f"\n  {d.recipient}: digest {d.digest_id}: {d.error}; {d.freed} of its "
                f"{d.alerts} alerts go into the next digest" for d in ended))
        return "\n".join(lines)


def run_round(sessions: sessionmaker[Session], settings: Settings, mailer: Mailer,
              clock: Clock, *, owner: str, immediately: bool = False) -> Round:
    """Compose what is due (everything new, ``immediately``), then send what is pending
    (everything pending, ignoring the backoff, ``immediately``). Raises StoreError."""
    composed = compose(sessions, settings, clock(), scheduled=not immediately)
    return Round(composed, send_pending(sessions, settings, mailer, clock, owner=owner,
                                        everything=immediately))
