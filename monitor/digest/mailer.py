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
            raise MailError(self.server, f"cannot connect: {_describe(exc)}",
                            refused=isinstance(exc, smtplib.SMTPResponseException)) from exc
        try:
            if self.settings.username:
                smtp.login(self.settings.username, self.settings.password)
            smtp.sendmail(sender, list(recipients), message)
        except (OSError, smtplib.SMTPException) as exc:
            refused = isinstance(exc, smtplib.SMTPResponseException | smtplib.SMTPRecipientsRefused)
            smtp.close()
            raise MailError(self.server, _describe(exc), refused=refused) from exc
        # Accepted. The server may still drop the connection before QUIT: no matter.
        with contextlib.suppress(OSError, smtplib.SMTPException):
            smtp.quit()
        smtp.close()


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
