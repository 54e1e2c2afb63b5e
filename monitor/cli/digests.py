"""Digest commands: digest send, digest preview, digest list."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import TextIO

from monitor import store
from monitor.cli.common import EXIT_MAIL, EXIT_OK, at, dump, pick_name, session_factory, stored
from monitor.config import Settings
from monitor.errors import InputError, UsageError

PREVIEW_MESSAGE_ID = "<digest.preview@{domain}>"


def cmd_digest_send(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    from monitor.digest.delivery import run_round  # smtplib and the templates: only needed here
    from monitor.digest.mailer import SmtpMailer
    from monitor.identity import worker_id

    mailer = SmtpMailer(settings.smtp, str(settings.path))
    with session_factory(settings) as sessions:
        result = run_round(sessions, settings, mailer, lambda: datetime.now(UTC),
                           owner=worker_id("cli"), immediately=args.now)
    out.write(result.render() + "\n")
    return EXIT_MAIL if result.failed else EXIT_OK


def cmd_digest_preview(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    from monitor.digest.delivery import build, recipients

    by_recipient = recipients(settings.rules)
    if not by_recipient:
        raise UsageError(f"{settings.path}: no rule has recipients: there is no digest to "
                         "preview", hint="add `recipients` to a rule")
    if args.recipient is not None:
        chosen = [pick_name(args.recipient, by_recipient, flag="--recipient",
                            what="recipient")]
    elif args.out is not None and len(by_recipient) > 1:
        raise UsageError(f"--out writes one digest: choose a recipient with --recipient "
                         f"({', '.join(by_recipient)})")
    else:
        chosen = list(by_recipient)
    out_path = Path(args.out) if args.out is not None else None
    if out_path is not None and out_path.suffix.lower() not in (".eml", ".html"):
        raise UsageError(f"--out {args.out}: name a .eml or an .html file")
    domain = settings.digest.sender.rpartition("@")[2]
    now = datetime.now(UTC)
    with stored(settings) as s:
        rendered = [build(s, settings, r, by_recipient[r], now,
                          PREVIEW_MESSAGE_ID.format(domain=domain)) for r in chosen]
    if out_path is not None:
        digest, message = rendered[0]
        try:
            if out_path.suffix.lower() == ".eml":
                out_path.write_bytes(message.as_bytes())
            else:
                out_path.write_text(_part(message, "html"), encoding="utf-8")
        except OSError as exc:
            raise InputError(f"--out {args.out}: {exc.strerror or exc}") from exc
        out.write(f"{digest.recipient}: {digest.count} alerts; wrote {out_path}\n")
        return EXIT_OK
    for i, (_, message) in enumerate(rendered):
        if i:
            out.write("\n" + "=" * 76 + "\n\n")
        out.write(f"To: {message['To']}\nSubject: {message['Subject']}\n\n")
        out.write(_part(message, "plain"))
    return EXIT_OK


def _part(message: EmailMessage, subtype: str) -> str:
    part = message.get_body((subtype,))
    assert part is not None  # render() always makes both parts
    content: str = part.get_content()
    return content


def cmd_digest_list(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:


    with stored(settings) as s:
        rows = store.list_digests(s, pending=args.pending, failed=args.failed,
                                  limit=args.limit)
    for d in rows:
        if args.json:
            dump({"id": d.id, "recipient": d.recipient, "message_id": d.message_id,
                  "subject": d.subject, "alerts": d.alerts, "created_at": d.created_at,
                  "attempts": d.attempts, "last_error": d.last_error, "state": d.state,
                  "next_attempt_at": d.next_attempt_at if d.state == "pending" else None,
                  "sent_at": d.sent_at, "failed_at": d.failed_at}, out)
            continue
        state = digest_state(d)
        out.write(f"{d.id:>6}  {at(d.created_at)}  {d.recipient}  {d.alerts} alerts  "
                  f"{state}\n")
        if d.last_error and not d.sent_at:
            out.write(f"        {'why' if d.failed_at else 'last error'}: {d.last_error}\n")
    if not rows and not args.json:
        out.write("no pending digests\n" if args.pending else "no failed digests\n"
                  if args.failed else "no digests yet\n")
    return EXIT_OK


def digest_state(d: store.DigestRow) -> str:
    """A digest's state as ``digest list`` shows it."""
    if d.sent_at is not None:
        return f"sent {at(d.sent_at)}"
    if d.failed_at is not None:
        return f"FAILED {at(d.failed_at)} after {d.attempts} attempts, not tried again"
    return f"PENDING, attempt {d.attempts + 1} at {at(d.next_attempt_at)}"
