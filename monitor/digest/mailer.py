"""SMTP delivery: the only user of smtplib.

One connection per message: open (plain, STARTTLS or implicit TLS), log in when a
username is set, send, quit. A message counts as delivered once the server has
answered the end of DATA with 250; a failure after that (a dropped QUIT) does not
make it undelivered. Every library error becomes :class:`MailError`.
"""

from __future__ import annotations

import contextlib
import logging
import smtplib
import ssl
from collections.abc import Sequence
from typing import Protocol

from monitor.config import SmtpSettings
from monitor.errors import ConfigError, MailError

log = logging.getLogger(__name__)


class Mailer(Protocol):
    def send(self, message: bytes, sender: str, recipients: Sequence[str]) -> None:
        """Hand ``message`` to the mail system. Raises MailError."""


class SmtpMailer:
    """Sends through the ``[smtp]`` server."""

    def __init__(self, settings: SmtpSettings, config_file: str) -> None:
        """Raises ConfigError when a username is set but its password is missing."""
        if settings.username and not settings.password:
            raise ConfigError(config_file, "smtp.password_env",
                              f"smtp.username is set but ${settings.password_env} is empty "
                              "or not set in the environment")
        self.settings = settings
        self.server = f"{settings.host}:{settings.port}"

    def _tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if self.settings.ca_file:
            context.load_verify_locations(cafile=self.settings.ca_file)
        return context

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.security == "tls":
            return smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=self._tls())
        smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        if s.security == "starttls":
            try:
                smtp.starttls(context=self._tls())
            except BaseException:
                smtp.close()
                raise
        return smtp

    def send(self, message: bytes, sender: str, recipients: Sequence[str]) -> None:
        try:
            smtp = self._connect()
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(self.server, f"cannot connect: {_describe(exc)}"
                            + self._security_hint(exc),
                            refused=isinstance(exc, smtplib.SMTPResponseException)) from exc
        try:
            if self.settings.username:
                smtp.login(self.settings.username, self.settings.password)
            smtp.sendmail(sender, list(recipients), message)
        except (OSError, smtplib.SMTPException) as exc:
            refused = isinstance(exc, smtplib.SMTPResponseException | smtplib.SMTPRecipientsRefused)
            smtp.close()
            raise MailError(self.server, _describe(exc), refused=refused, code=_code(exc),
                            recipient_refused=isinstance(exc, smtplib.SMTPRecipientsRefused)
                            ) from exc
        # Accepted. The server may still drop the connection before QUIT: no matter.
        with contextlib.suppress(OSError, smtplib.SMTPException):
            smtp.quit()
        smtp.close()


    def _security_hint(self, exc: BaseException) -> str:
        """What to change in ``[smtp]`` when the failure looks like a security setting
        that does not fit the port: TLS spoken to a plain port (its greeting is no TLS
        record), plain spoken to an implicit-TLS port (it waits for a TLS hello, so no
        greeting comes), STARTTLS asked of a server that offers none."""
        s = self.settings
        if s.security == "tls" and isinstance(exc, ssl.SSLError) and any(
                m in str(exc) for m in ("WRONG_VERSION_NUMBER", "record layer failure",
                                        "UNEXPECTED_RECORD", "HTTP_REQUEST")):
            return (f"; port {s.port} does not start with TLS: if the server offers "
                    'STARTTLS there, set [smtp] security = "starttls" (usually port 587), '
                    "else use its TLS port (usually 465)")
        if s.security != "tls" and isinstance(exc, smtplib.SMTPServerDisconnected):
            return (f"; the server sent no greeting on port {s.port}: a port that expects "
                    'TLS at once (usually 465) needs [smtp] security = "tls"')
        if s.security == "starttls" and isinstance(exc, smtplib.SMTPNotSupportedError):
            return ('; the server offers no STARTTLS on this port: use security = "tls" with '
                    'its TLS port (usually 465), or security = "none" on a trusted network')
        return ""


def _code(exc: BaseException) -> int | None:
    """The server's reply code: the lowest of the refused recipients' (a 4xx among them
    may pass), else the one reply's."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused) and exc.recipients:
        return min(code for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code
    return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "; ".join(f"{rcpt} refused: {code} {_text(msg)}"
                         for rcpt, (code, msg) in exc.recipients.items())
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{exc.smtp_code} {_text(exc.smtp_error)}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def _text(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return " ".join(text.split())
