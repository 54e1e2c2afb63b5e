"""A real SMTP server for tests: aiosmtpd on 127.0.0.1, plain, STARTTLS or TLS, with
optional AUTH, and switchable misbehaviour (refuse, drop the connection in DATA)."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

USER, PASSWORD = "monitor", "s3cret-pass"


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        msg = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


@dataclass
class MailServer:
    """``mode``: "accept"; "refuse" (451 at the end of DATA: try again later);
    "reject" (554: refused outright); "no_such_user" (550 to every RCPT); "drop" (close
    the connection at the end of DATA, before any reply: the client cannot know whether
    the message was taken).
    ``delay``: seconds the server takes to take a message at the end of DATA (a client
    that hangs up meanwhile has it discarded); ``hold``: seconds between taking it and
    answering (a client that dies then cannot know it was taken)."""

    mode: str = "accept"
    delay: float = 0.0
    hold: float = 0.0
    received: list[Received] = field(default_factory=list)
    attempts: int = 0  # DATA commands seen, whatever the mode
    port: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if self.mode == "no_such_user":
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self.attempts += 1
            mode = self.mode
        if mode == "refuse":
            return "451 4.3.0 Mailbox temporarily unavailable, try again later"
        if mode == "reject":
            return "554 5.7.1 Message rejected"
        if mode == "drop":
            server.transport.close()
            return "421 closing"  # never reaches the client: the transport is gone
        if self.delay:
            await asyncio.sleep(self.delay)  # cancelled when the client hangs up
        with self._lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                          bytes(envelope.original_content or envelope.content)))
        if self.hold:
            await asyncio.sleep(self.hold)
        return "250 2.0.0 OK queued"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost: (cert, key). The cert is
    its own CA, so the client trusts it with ``[smtp] ca_file``."""
    cert, key = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True)
    return cert, key


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str,
                  data: Any) -> AuthResult:
    ok = (isinstance(data, LoginPassword)
          and (data.login, data.password) == (USER.encode(), PASSWORD.encode()))
    return AuthResult(success=ok, handled=False)


def start(mail: MailServer, *, security: str = "none", cert: tuple[Path, Path] | None = None,
          auth: bool = False) -> Controller:
    """Start ``mail`` on a free port; ``security`` as in ``[smtp]``."""
    mail.port = free_port()
    kwargs: dict[str, Any] = {}
    server_kwargs: dict[str, Any] = {}
    if security != "none":
        assert cert is not None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert[0]), str(cert[1]))
        if security == "tls":
            kwargs["ssl_context"] = context
        else:
            server_kwargs.update(tls_context=context, require_starttls=True)
    if auth:
        # With implicit TLS aiosmtpd does not know the session is encrypted (it tracks
        # STARTTLS only), so it would withhold AUTH: require TLS only for STARTTLS.
        server_kwargs.update(authenticator=_authenticate, auth_required=True,
                             auth_require_tls=security == "starttls")
    controller = Controller(mail, hostname="127.0.0.1", port=mail.port, **kwargs,
                            **server_kwargs)
    controller.start()
    return controller
