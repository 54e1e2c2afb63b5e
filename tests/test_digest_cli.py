"""SMTP security and authentication against a real aiosmtpd, and the digest commands
that do not send: preview and list. Secrets never show in output or errors."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from helpers import cli, write_config
from mailserver import PASSWORD, USER, MailServer, make_certificate, start
from test_digest_delivery import DELEGATION, FEEDS, KREMLIN, LATER, LEADERS, RUSSIA, digests, setup

from monitor.config import load_settings
from monitor.digest.mailer import SmtpMailer
from monitor.errors import MailError

# aiosmtpd warns about AUTH without STARTTLS; with implicit TLS the session is encrypted.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


def serve(security: str, cert: tuple[Path, Path], auth: bool) -> Iterator[MailServer]:
    server = MailServer()
    controller = start(server, security=security, cert=cert, auth=auth)
    try:
        yield server
    finally:
        controller.stop()


@pytest.fixture(params=["starttls", "tls"])
def secure_mail(request: pytest.FixtureRequest,
                certificate: tuple[Path, Path]) -> Iterator[tuple[str, MailServer]]:
    for server in serve(request.param, certificate, auth=True):
        yield request.param, server


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/monitor.db"


def test_starttls_and_tls_with_login(tmp_path: Path, certificate: tuple[Path, Path],
                                     secure_mail: tuple[str, MailServer],
                                     monkeypatch: pytest.MonkeyPatch,
                                     caplog: pytest.LogCaptureFixture) -> None:
    security, server = secure_mail
    smtp = {"security": security, "username": USER, "password_env": "TEST_SMTP_PW",
            "ca_file": str(certificate[0])}
    monkeypatch.setenv("TEST_SMTP_PW", "wrong-password")
    config = setup(tmp_path, sqlite_url(tmp_path), server, [KREMLIN], rules=[LEADERS], smtp=smtp)
    caplog.set_level(logging.DEBUG)
    code, out = cli(config, "digest", "send", "--now")
    assert code == 5, out
    [pending] = digests(config, "--pending")
    assert "535" in pending["last_error"]  # authentication failed: refused, kept
    assert "wrong-password" not in out + caplog.text + pending["last_error"]

    monkeypatch.setenv("TEST_SMTP_PW", PASSWORD)
    code, out = cli(config, "digest", "send", "--now")
    assert code == 0, out
    [received] = server.received
    assert received.message["Message-ID"] == pending["message_id"]
    assert PASSWORD not in out + caplog.text


def test_tls_refuses_a_server_it_cannot_verify(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    for server in serve("tls", certificate, auth=False):
        config = write_config(tmp_path / "monitor.toml", db_url=sqlite_url(tmp_path), feeds=FEEDS,
                              smtp={"host": "127.0.0.1", "port": server.port, "security": "tls"})
        mailer = SmtpMailer(load_settings(config).smtp, str(config))  # no ca_file: not trusted
        with pytest.raises(MailError, match="CERTIFICATE_VERIFY_FAILED"):
            mailer.send(b"Subject: x\r\n\r\nx\r\n", "monitor@example.org", ["desk@example.org"])
        assert server.attempts == 0


def test_a_security_setting_that_does_not_fit_the_port_names_the_fix(
        tmp_path: Path, certificate: tuple[Path, Path], mail: MailServer) -> None:
    def error(port: int, security: str) -> str:
        config = write_config(tmp_path / "monitor.toml", db_url=sqlite_url(tmp_path),
                              feeds=FEEDS, smtp={"host": "127.0.0.1", "port": port,
                                                 "security": security, "timeout": 1})
        mailer = SmtpMailer(load_settings(config).smtp, str(config))
        with pytest.raises(MailError) as caught:
            mailer.send(b"Subject: x\r\n\r\nx\r\n", "monitor@example.org",
                        ["desk@example.org"])
        return str(caught.value)

    # TLS spoken to a plain port: the greeting is no TLS record.
    message = error(mail.port, "tls")
    assert f'port {mail.port} does not start with TLS' in message, message
    assert 'security = "starttls"' in message and "465" in message
    # Plain (or STARTTLS) spoken to a port that expects TLS at once: no greeting comes.
    for server in serve("tls", certificate, auth=False):
        for security in ("none", "starttls"):
            message = error(server.port, security)
            assert "sent no greeting" in message and 'security = "tls"' in message, message
    # STARTTLS asked of a server that offers none.
    message = error(mail.port, "starttls")
    assert "offers no STARTTLS" in message, message
    assert mail.attempts == 0


def test_a_username_without_its_password_is_a_config_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("MONITOR_SMTP_PASSWORD", raising=False)
    config = write_config(tmp_path / "monitor.toml", db_url=sqlite_url(tmp_path), feeds=FEEDS,
                          smtp={"username": "monitor"})
    code, _ = cli(config, "digest", "send")
    assert code == 2
    assert "smtp.password_env" in caplog.text and "$MONITOR_SMTP_PASSWORD" in caplog.text
    assert str(config) in caplog.text


# --- preview and list ----------------------------------------------------------------------------

def test_preview_renders_without_sending_or_marking(tmp_path: Path, mail: MailServer) -> None:
    config = setup(tmp_path, sqlite_url(tmp_path), mail, [DELEGATION, KREMLIN, LATER])
    code, out = cli(config, "digest", "preview")
    assert code == 0, out
    # Story first: the desk's three stories all matched its first rule.
    assert "To: desk@example.org\nSubject: 3 new stories: Venezuela leadership (3)\n" in out
    assert "To: analyst@example.org\nSubject: 2 new stories: Russia and Latin America (2)" in out
    assert "* Maduro's ministers questioned" in out

    code, out = cli(config, "digest", "preview", "--recipient", "analyst@example.org")
    assert code == 0 and "desk@example.org" not in out

    html = tmp_path / "desk.html"
    code, out = cli(config, "digest", "preview", "--recipient", "desk@example.org", "--out", str(html))
    assert code == 0 and f"wrote {html}" in out
    assert html.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    eml = tmp_path / "desk.eml"
    assert cli(config, "digest", "preview", "--recipient", "desk@example.org", "--out", str(eml))[0] == 0
    message = message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert message["To"] == "desk@example.org"
    assert message.get_content_type() == "multipart/alternative"

    # Nothing was sent, stored or marked.
    assert not mail.received and mail.attempts == 0
    assert digests(config) == []
    assert cli(config, "digest", "send", "--now")[0] == 0
    assert len(mail.received) == 2


@pytest.mark.parametrize(("args", "message"), [
    (["--recipient", "nobody@example.org"],
     "--recipient 'nobody@example.org': no recipient has that name; the recipients are"),
    (["--out", "x.html"], "--out writes one digest: choose a recipient"),
    (["--recipient", "desk@example.org", "--out", "x.pdf"], "name a .eml or an .html file"),
])
def test_preview_usage_errors(tmp_path: Path, mail: MailServer, caplog: pytest.LogCaptureFixture,
                              args: list[str], message: str) -> None:
    config = setup(tmp_path, sqlite_url(tmp_path), mail, [], rules=[LEADERS, RUSSIA])
    code, _ = cli(config, "digest", "preview", *args)
    assert code == 2
    assert message in caplog.text


def test_list_shows_pending_digests_and_why(tmp_path: Path, mail: MailServer) -> None:
    config = setup(tmp_path, sqlite_url(tmp_path), mail, [KREMLIN], rules=[LEADERS])
    code, out = cli(config, "digest", "list")
    assert (code, out) == (0, "no digests yet\n")
    mail.mode = "refuse"
    assert cli(config, "digest", "send", "--now")[0] == 5
    code, out = cli(config, "digest", "list", "--pending")
    assert code == 0
    assert "desk@example.org  1 alerts  PENDING, attempt 2 at" in out
    assert "last error: SMTP 127.0.0.1:" in out and "451 4.3.0" in out
    mail.mode = "accept"
    assert cli(config, "digest", "send", "--now")[0] == 0
    assert cli(config, "digest", "list", "--pending")[1] == "no pending digests\n"
    assert " sent " in cli(config, "digest", "list")[1]


def test_beyond_full_entries_a_rule_lists_the_rest_one_line_each(tmp_path: Path,
                                                                 mail: MailServer) -> None:
    config = setup(tmp_path, sqlite_url(tmp_path), mail, [DELEGATION, KREMLIN, LATER],
                   rules=[LEADERS], digest={"full_entries": 1})
    code, out = cli(config, "digest", "preview")
    assert code == 0, out
    assert out.count("Matched: ") == 1  # only the newest in full
    assert "* Maduro's ministers questioned" in out
    assert ("  2 more:\n  - Kremlin on Maduro (The Moscow Times · 23 Nov 2026, 05:30)\n"
            "    https://www.themoscowtimes.com/kremlin\n") in out
    assert "  - Delcy Rodríguez receives Russian delegation (teleSUR English · " in out
    html = tmp_path / "d.html"
    assert cli(config, "digest", "preview", "--out", str(html))[0] == 0
    page = html.read_text(encoding="utf-8")
    assert "2 more</div>" in page
    assert ('<a href="https://www.themoscowtimes.com/kremlin" style="color:#1d4ed8;">'
            "Kremlin on Maduro</a>") in page
