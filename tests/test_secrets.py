"""Secrets never show: the SMTP password and the database password are absent from every
command's output and log (at debug level, as text and as JSON), errors included.

The commands run as processes, the way an operator runs them, against a database that
answers (the local PostgreSQL, which trusts the password it is given), one that does not
(port 1), URLs written wrongly, and a real SMTP server that refuses the login. Each check
also looks for what proves the code path ran (the host, the SMTP reply code), so it
cannot pass by printing nothing.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import ROOT, write_config
from mailserver import USER, MailServer, free_port, start
from sqlalchemy.engine import make_url
from test_digest_delivery import KREMLIN, LEADERS, setup

from monitor.config import load_settings

SECRET = "S3cret-Pa55-x7Q"
PW_ENV = "TEST_SECRETS_SMTP_PW"
UNREACHABLE = f"postgresql+psycopg://postgres:{SECRET}@127.0.0.1:1/test"
SHOWN_UNREACHABLE = "postgresql+psycopg://postgres:***@127.0.0.1:1/test"
FEEDS = [{"name": "F", "url": "http://127.0.0.1:9/f.rss"}]
SMTP = {"host": "127.0.0.1", "username": USER, "password_env": PW_ENV, "timeout": "5s"}

# aiosmtpd warns about AUTH without TLS: on 127.0.0.1, as [smtp] allows for local hosts.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


def monitor(config: Path, *args: str, log_format: str = "text", secret: str = SECRET,
            env: dict[str, str] | None = None) -> tuple[int, str]:
    """``monitor --log-level DEBUG --config CONFIG ARGS`` as a process: (exit code, its
    standard output and error together). The SMTP password is in the environment."""
    environ = {k: v for k, v in os.environ.items()
               if k not in ("MONITOR_DATABASE_URL", "MONITOR_CONFIG")}
    environ.update({PW_ENV: secret, "PYTHONUNBUFFERED": "1", **(env or {})})
    proc = subprocess.run(
        [sys.executable, "-m", "monitor", "--log-level", "DEBUG", "--log-format", log_format,
         "--config", str(config), *args],
        cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def assert_hidden(output: str, secret: str = SECRET) -> None:
    """Neither the password, nor its URL-encoded or base64 forms (SMTP AUTH sends those)."""
    encoded = {secret, secret.replace("-", "%2D"),
               base64.b64encode(secret.encode()).decode(),
               base64.b64encode(f"\0{USER}\0{secret}".encode()).decode()}
    for form in encoded:
        assert form not in output, f"{form!r} shows in:\n{output}"


def with_password(url: str) -> tuple[str, str]:
    """``url`` with the password to look for: its own, else SECRET (the local PostgreSQL
    trusts whatever it is given)."""
    parsed = make_url(url)
    if parsed.password:
        return url, str(parsed.password)
    return parsed.set(password=SECRET).render_as_string(hide_password=False), SECRET


def shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


# --- config show and the settings themselves ----------------------------------------------------

@pytest.mark.parametrize("log_format", ["text", "json"])
def test_config_show_hides_both_passwords(tmp_path: Path, log_format: str) -> None:
    config = write_config(tmp_path / "monitor.toml", db_url=UNREACHABLE, feeds=FEEDS, smtp=SMTP)
    code, out = monitor(config, "config", "show", log_format=log_format)
    assert code == 0, out
    assert_hidden(out)
    shown_settings = json.loads(out)
    assert shown_settings["database"]["url"] == SHOWN_UNREACHABLE
    assert shown_settings["smtp"]["password"] == "(hidden)"
    assert shown_settings["smtp"]["password_env"] == PW_ENV


def test_config_show_hides_a_database_url_from_the_environment(tmp_path: Path) -> None:
    config = write_config(tmp_path / "monitor.toml", db_url="sqlite:///x.db", feeds=FEEDS)
    code, out = monitor(config, "config", "show", env={"MONITOR_DATABASE_URL": UNREACHABLE})
    assert code == 0, out
    assert_hidden(out)
    assert json.loads(out)["database"] == {"url": SHOWN_UNREACHABLE, "from_env": True}


def test_the_settings_repr_hides_both_passwords(tmp_path: Path) -> None:
    """A settings object in a log line or a traceback (repr) shows no password; the
    settings do hold both (what the connections need)."""
    config = write_config(tmp_path / "monitor.toml", db_url=UNREACHABLE, feeds=FEEDS, smtp=SMTP)
    settings = load_settings(config, environ={PW_ENV: SECRET}, base_dir=tmp_path)
    assert settings.smtp.password == SECRET and SECRET in settings.database.url
    text = repr(settings)
    assert_hidden(text)
    assert "postgres:***@127.0.0.1:1" in text and "DatabaseSettings" in text
    assert_hidden(repr(settings.database) + str(settings.smtp) + str(settings.redacted()))


@pytest.mark.parametrize(("url", "fragments"), [
    # No host: the password is read as the port, which is no number.
    (f"postgresql+psycopg://postgres:{SECRET}/test", [SECRET]),
    # An '@' in the password not written %40: the rest of it is read as the host.
    ("postgresql+psycopg://postgres:S3cret-Pa55@x7Q@127.0.0.1:5432/test", ["S3cret", "x7Q"]),
])
@pytest.mark.parametrize("source", ["file", "environment"])
def test_a_malformed_database_url_is_refused_without_showing_it(tmp_path: Path, url: str,
                                                                 fragments: list[str],
                                                                 source: str) -> None:
    in_file = source == "file"
    config = write_config(tmp_path / "monitor.toml", db_url=url if in_file else "sqlite:///x.db",
                          feeds=FEEDS)
    code, out = monitor(config, "config", "show",
                        env={} if in_file else {"MONITOR_DATABASE_URL": url})
    assert code == 2, out  # a config error, not a crash
    assert str(config) in out and ("database.url" if in_file else "MONITOR_DATABASE_URL") in out
    assert "not a database URL" in out and "Traceback" not in out
    for fragment in fragments:
        assert fragment not in out, out


# --- a database that does not answer ------------------------------------------------------------

@pytest.mark.parametrize(("args", "log_format"), [
    *[(args, "text") for args in [("db", "upgrade"), ("status",), ("status", "--json"),
                                  ("run", "--once"), ("digest", "send"), ("seeds", "load")]],
    # JSON logs take the same path to the same message: two commands are enough.
    (("db", "upgrade"), "json"), (("run", "--once"), "json"),
])
def test_an_unreachable_database_is_named_without_its_password(tmp_path: Path, args: tuple[str, ...],
                                                               log_format: str) -> None:
    config = write_config(tmp_path / "monitor.toml", db_url=UNREACHABLE, feeds=FEEDS, smtp=SMTP)
    code, out = monitor(config, *args, log_format=log_format)
    assert code == 3, out  # the database cannot be reached
    assert_hidden(out)
    assert f"cannot connect to {SHOWN_UNREACHABLE}" in out, out
    assert "port 1 failed" in out  # the driver's own reason, after the URL


# --- a database that answers --------------------------------------------------------------------

@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_working_database_is_named_without_its_password(tmp_path: Path, db_url: str) -> None:
    url, secret = with_password(db_url)
    config = write_config(tmp_path / "monitor.toml", db_url=url, feeds=[], smtp=SMTP)
    for args, evidence in [(("db", "upgrade"), f"{shown(url)}: upgraded from empty"),
                           (("status",), f"database: {shown(url)}"),
                           (("status", "--json"), f'"database": "{shown(url)}"'),
                           (("run", "--once"), "polled 0 feeds"),
                           (("config", "show"), f'"url": "{shown(url)}"')]:
        code, out = monitor(config, *args, secret=secret)
        assert code == 0, out
        assert_hidden(out, secret)
        assert ":***@" in shown(url) and evidence in out, (args, out)


# --- an SMTP server that refuses the login, and one that is not there --------------------------

@pytest.fixture
def auth_mail() -> Iterator[MailServer]:
    server = MailServer()
    controller = start(server, auth=True)  # the login is USER/PASSWORD: SECRET is refused
    try:
        yield server
    finally:
        controller.stop()


def test_a_refused_smtp_login_hides_the_password(tmp_path: Path, db_url: str,
                                                 auth_mail: MailServer) -> None:
    url, db_secret = with_password(db_url)
    config = setup(tmp_path, url, auth_mail, [KREMLIN], rules=[LEADERS], smtp=SMTP)
    for log_format in ("text", "json"):
        code, out = monitor(config, "digest", "send", "--now", log_format=log_format)
        assert code == 5, out  # a digest could not be sent
        assert_hidden(out)
        assert_hidden(out, db_secret)
        assert f"127.0.0.1:{auth_mail.port}" in out and "535" in out, out  # auth failed
    assert auth_mail.received == []
    code, out = monitor(config, "digest", "list", "--json")
    assert code == 0, out
    [pending] = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert pending["sent_at"] is None and "535" in pending["last_error"]
    assert_hidden(out)
    assert_hidden(out, db_secret)


def test_an_unreachable_smtp_server_hides_the_password(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'monitor.db'}"
    closed = MailServer(port=free_port())  # nothing listens there
    config = setup(tmp_path, db_url, closed, [KREMLIN], rules=[LEADERS], smtp=SMTP)
    code, out = monitor(config, "digest", "send", "--now")
    assert code == 5, out
    assert_hidden(out)
    assert f"127.0.0.1:{closed.port}" in out and "cannot connect" in out, out
