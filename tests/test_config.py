from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from helpers import ROOT

from monitor.config import Thresholds, load_settings
from monitor.config.cron import cron_problem
from monitor.config.values import parse_duration
from monitor.errors import ConfigError

REPO = Path(__file__).parent.parent
MINIMAL_FEED = '[[feeds]]\nname = "A"\nurl = "https://a.example/rss"\n'


def write(tmp_path: Path, text: str, name: str = "monitor.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_repo_config_loads(tmp_path: Path) -> None:
    s = load_settings(REPO / "config" / "monitor.toml", environ={}, base_dir=tmp_path)
    assert [f.name for f in s.feeds] == ["teleSUR English", "The Moscow Times", "RFE/RL"]
    assert [f.url for f in s.feeds] == [
        "https://www.telesurenglish.net/rss/",
        "https://www.themoscowtimes.com/rss/news",
        "https://www.rferl.org/api/epiqq",
    ]
    assert all(f.interval == 900 and f.enabled for f in s.feeds)
    assert [r.name for r in s.rules] == ["Venezuela leadership", "Russia and Latin America"]
    assert s.rules[1].recipients == ("desk@example.org", "analyst@example.org")
    assert s.rules[0].query == 'Maduro OR "Delcy Rodriguez"'
    assert str(s.rules[1].parsed) == "russia AND (venezuela OR cuba OR nicaragua)"
    assert s.digest.timezone == "America/Caracas"
    assert s.digest.schedule == "0 7 * * *"
    assert s.digest.sender == "monitor@example.org"
    assert s.fetch.max_feed_bytes == 10 * 1024 * 1024
    assert s.fetch.max_page_bytes == 5 * 1024 * 1024
    assert s.fetch.timeout == 30.0
    assert s.database.url == f"sqlite:///{tmp_path / 'data' / 'monitor.db'}"
    assert s.database.from_env is False
    assert s.seeds_path == tmp_path / "seeds"


def test_minimal_config_gets_defaults(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, MINIMAL_FEED), environ={}, base_dir=tmp_path)
    assert len(s.feeds) == 1
    feed = s.feeds[0]
    assert (feed.name, feed.url, feed.interval, feed.enabled) == ("A", "https://a.example/rss", 900, True)
    assert s.rules == ()
    assert s.log_level == "INFO"
    assert s.digest.schedule == "0 7 * * *"
    assert s.digest.timezone == "UTC"
    assert s.smtp.port == 25
    assert s.smtp.security == "none"
    assert s.fetch.concurrency == 16
    assert s.fetch.per_host == 2
    assert s.fetch.default_interval == 900
    assert s.extract.min_text_chars == 250
    assert s.extract.mode == "default"
    assert s.database.is_sqlite
    # No [seeds] path: the corpus that comes with monitor (the checkout's, here).
    assert s.seeds_path == ROOT / "seeds"


def test_default_interval_applies_to_feeds_without_interval(tmp_path: Path) -> None:
    path = write(tmp_path, '[fetch]\ndefault_interval = "2h"\n' + MINIMAL_FEED)
    assert load_settings(path, environ={}, base_dir=tmp_path).feeds[0].interval == 7200


def test_relative_paths_resolve_against_base_dir(tmp_path: Path) -> None:
    base = tmp_path / "project"
    path = write(tmp_path, """
        [database]
        url = "sqlite:///var/db.sqlite"
        [seeds]
        path = "my/seeds"
    """)
    s = load_settings(path, environ={}, base_dir=base)
    assert s.database.url == f"sqlite:///{base / 'var' / 'db.sqlite'}"
    assert s.seeds_path == base / "my" / "seeds"


def test_absolute_paths_are_kept(tmp_path: Path) -> None:
    db = tmp_path / "abs.db"
    seeds = tmp_path / "abs-seeds"
    path = write(tmp_path, f'[database]\nurl = "sqlite:///{db}"\n[seeds]\npath = "{seeds}"\n')
    s = load_settings(path, environ={}, base_dir=tmp_path / "elsewhere")
    assert s.database.url == f"sqlite:///{db}"
    assert s.seeds_path == seeds


def test_environment_database_url_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, '[database]\nurl = "sqlite:///file.db"\n')
    env = {"MONITOR_DATABASE_URL": "postgresql+psycopg://u@db.example/mon"}
    s = load_settings(path, environ=env, base_dir=tmp_path)
    assert s.database.url == "postgresql+psycopg://u@db.example/mon"
    assert s.database.from_env is True
    assert not s.database.is_sqlite


def test_empty_environment_database_url_is_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, '[database]\nurl = "sqlite:///file.db"\n')
    s = load_settings(path, environ={"MONITOR_DATABASE_URL": ""}, base_dir=tmp_path)
    assert s.database.from_env is False
    assert s.database.url == f"sqlite:///{tmp_path / 'file.db'}"


@pytest.mark.parametrize("url", ["postgresql://u:pw@h:5432/db", "postgresql+psycopg2://u:pw@h:5432/db"])
def test_plain_postgresql_is_rewritten_to_psycopg(tmp_path: Path, url: str) -> None:
    path = write(tmp_path, f'[database]\nurl = "{url}"\n')
    s = load_settings(path, environ={}, base_dir=tmp_path)
    assert s.database.url == "postgresql+psycopg://u:pw@h:5432/db"


def test_bad_environment_database_url_names_the_variable(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL_FEED)
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={"MONITOR_DATABASE_URL": "mysql://u@h/db"}, base_dir=tmp_path)
    assert info.value.key == "MONITOR_DATABASE_URL"
    assert "unsupported database 'mysql'" in info.value.reason


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400), (" 45 m ", 2700)]
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("text", "seconds"), [('"90s"', 90), ('"15m"', 900), ('"2h"', 7200),
                                              ("900", 900), ('"900"', 900)])
def test_feed_interval_durations(tmp_path: Path, text: str, seconds: int) -> None:
    path = write(tmp_path, MINIMAL_FEED + f"interval = {text}\n")
    assert load_settings(path, environ={}, base_dir=tmp_path).feeds[0].interval == seconds


@pytest.mark.parametrize("value", ["0", '"0"', '"0s"', "0.5", '"2s"'])
def test_host_delay_takes_a_duration_or_seconds_zero_included(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, f"[fetch]\nhost_delay = {value}\n")
    expected = {"0": 0.0, '"0"': 0.0, '"0s"': 0.0, "0.5": 0.5, '"2s"': 2.0}[value]
    assert load_settings(path, environ={}, base_dir=tmp_path).fetch.host_delay == expected


def test_an_error_in_a_feed_or_rule_names_it(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL_FEED + '[[feeds]]\nname = "Reuters"\n'
                 'url = "https://r.example/rss"\ninterval = "soon"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={}, base_dir=tmp_path)
    assert info.value.key == "feeds[1].interval"
    assert f"{path}: feeds[1].interval (feed 'Reuters'): 'soon' is not a duration" \
        in str(info.value)
    path = write(tmp_path, RULE + 'recipients = ["nobody"]\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={}, base_dir=tmp_path)
    assert "rules[0].recipients[0] (rule 'r'): 'nobody' is not an email address" \
        in str(info.value)


def test_sizes_accept_strings_and_integers(tmp_path: Path) -> None:
    path = write(tmp_path, '[fetch]\nmax_feed_bytes = "500 KB"\nmax_page_bytes = 2048\n')
    s = load_settings(path, environ={}, base_dir=tmp_path)
    assert s.fetch.max_feed_bytes == 500_000
    assert s.fetch.max_page_bytes == 2048


FEED_B = '[[feeds]]\nname = "B"\nurl = "https://b.example/rss"\n'
RULE = '[[rules]]\nname = "r"\nquery = "x"\n'

BAD_CONFIGS = [
    pytest.param('colour = "blue"\n', "colour", "unknown key", id="unknown-top-level-key"),
    pytest.param('[fetch]\ntimeot = "30s"\n', "fetch.timeot", "unknown key", id="unknown-fetch-key"),
    pytest.param(MINIMAL_FEED + "interval = 15\n", "feeds[0].interval", "must be at least 30s",
                 id="interval-int-too-short"),
    pytest.param(MINIMAL_FEED + "interval = 1.5\n", "feeds[0].interval",
                 'must be a duration like "15m" or a whole number of seconds, not 1.5',
                 id="interval-float"),
    pytest.param(MINIMAL_FEED + "interval = true\n", "feeds[0].interval",
                 "or a whole number of seconds, not a boolean", id="interval-bool"),
    pytest.param('[smtp]\nport = "25"\n', "smtp.port", "must be an integer, not a string", id="port-str"),
    pytest.param("[smtp]\nport = true\n", "smtp.port", "must be an integer, not a boolean", id="port-bool"),
    pytest.param(MINIMAL_FEED + 'enabled = "yes"\n', "feeds[0].enabled",
                 "must be true or false, not a string", id="enabled-str"),
    pytest.param(MINIMAL_FEED + '[[feeds]]\nname = "B"\nurl = "https://a.example/rss"\n', "feeds[1].url",
                 "duplicate feed URL", id="duplicate-url"),
    pytest.param(MINIMAL_FEED + '[[feeds]]\nname = "A"\nurl = "https://b.example/rss"\n', "feeds[1].name",
                 "duplicate feed name", id="duplicate-name"),
    pytest.param(MINIMAL_FEED + 'interval = "15 minutes"\n', "feeds[0].interval", "is not a duration",
                 id="bad-duration"),
    pytest.param(MINIMAL_FEED + 'interval = "10s"\n', "feeds[0].interval", "must be at least 30s",
                 id="interval-too-short"),
    pytest.param('[feeds]\nname = "x"\n', "feeds", "must be an array of tables", id="feeds-not-array"),
    pytest.param('[[feeds]]\nname = "A"\nurl = "ftp://a.example/rss"\n', "feeds[0].url",
                 "is not an http(s) URL", id="feed-url-not-http"),
    pytest.param('[[feeds]]\nname = "A"\n', "feeds[0].url", "is required", id="feed-url-missing"),
    pytest.param('[digest]\nschedule = "0 7 * *"\n', "digest.schedule", "must have 5 fields",
                 id="cron-4-fields"),
    pytest.param('[digest]\nschedule = "61 * * * *"\n', "digest.schedule", "'61' is not in 0-59",
                 id="cron-minute-61"),
    pytest.param('[digest]\ntimezone = "Mars/Olympus_Mons"\n', "digest.timezone", "unknown IANA time zone",
                 id="unknown-timezone"),
    pytest.param('[digest]\nsender = "nobody"\n', "digest.sender", "is not an email address",
                 id="bad-sender"),
    pytest.param('[smtp]\nsecurity = "ssl"\n', "smtp.security", "must be one of: none, starttls, tls",
                 id="bad-security"),
    pytest.param("[smtp]\nport = 70000\n", "smtp.port", "between 1 and 65535", id="port-out-of-range"),
    pytest.param(RULE + 'recipients = ["desk@example.org", "not an email"]\n', "rules[0].recipients[1]",
                 "'not an email' is not an email address", id="bad-recipient"),
    pytest.param(RULE + "recipients = []\n", "rules[0].recipients", "at least one address",
                 id="empty-recipients"),
    pytest.param('[[rules]]\nname = "Russia"\nquery = "Russia AND (Venezuela OR Cuba"\n'
                 'recipients = ["a@example.org"]\n', "rules[0].query",
                 "rule 'Russia' does not parse: this '(' is never closed (at position 12 of "
                 "'Russia AND (Venezuela OR Cuba')", id="rule-unclosed-paren"),
    pytest.param('[[rules]]\nname = "Bare"\nquery = "-Guaido"\nrecipients = ["a@example.org"]\n',
                 "rules[0].query", "rule 'Bare' does not parse: this query matches articles that "
                 "contain none of its words", id="rule-only-excludes"),
    pytest.param('[[rules]]\nname = "Lower"\nquery = "Maduro or Guaido"\n'
                 'recipients = ["a@example.org"]\n', "rules[0].query",
                 'lower-case "or": write OR for the operator', id="rule-lowercase-or"),
    pytest.param('[[rules]]\nname = "Empty"\nquery = "  "\nrecipients = ["a@example.org"]\n',
                 "rules[0].query", "the query is empty", id="rule-empty-query"),
    pytest.param('[logging]\nlevel = "LOUD"\n', "logging.level", "must be one of", id="bad-log-level"),
    pytest.param('[extract]\nmode = "quick"\n', "extract.mode", "must be one of: default, fast",
                 id="bad-extract-mode"),
    pytest.param('[database]\nurl = "mysql://u:p@h/db"\n', "database.url", "unsupported database 'mysql'",
                 id="mysql"),
    pytest.param('[database]\nurl = "not a url"\n', "database.url", "not a database URL", id="not-a-url"),
    pytest.param("[[feeds]\nname = \n", "", "invalid TOML", id="invalid-toml"),
    pytest.param('fetch = "fast"\n', "fetch", "must be a table, not a string", id="fetch-not-table"),
    pytest.param("[dedup]\njaccard = 1.5\n", "dedup.jaccard", "greater than 0 and at most 1",
                 id="jaccard-over-1"),
    pytest.param("[dedup]\ncontainment = 0\n", "dedup.containment", "greater than 0 and at most 1",
                 id="containment-zero"),
    pytest.param('[dedup]\nmin_words = "30"\n', "dedup.min_words", "must be an integer", id="min-words-str"),
    pytest.param('[dedup]\nboilerplate = ["ok", "(unclosed"]\n', "dedup.boilerplate[1]",
                 "invalid regular expression", id="bad-boilerplate-regex"),
    pytest.param('[dedup]\nboilerplate = [""]\n', "dedup.boilerplate[0]", "non-empty string",
                 id="empty-boilerplate"),
    pytest.param("[dedup]\nthreshold = 0.5\n", "dedup.threshold", "unknown key", id="unknown-dedup-key"),
    pytest.param('[digest]\nsend_empty = "no"\n', "digest.send_empty", "must be true or false",
                 id="send-empty-str"),
    pytest.param('[digest]\nretry_max = "10s"\n', "digest.retry_max", "must be at least 60s",
                 id="retry-max-too-short"),
    pytest.param('[digest]\nsender_name = "Monitor\\r\\nBcc: x@evil.example"\n', "digest.sender_name",
                 "one line of printable text", id="sender-name-crlf"),
    pytest.param('[fetch]\nallow_private = ["10.0.0.0/8", "not a host!"]\n', "fetch.allow_private[1]",
                 "must be an IP address, a network", id="allow-private-bad-entry"),
    pytest.param('[fetch]\nallow_private = "10.0.0.0/8"\n', "fetch.allow_private", "must be an array",
                 id="allow-private-not-list"),
    pytest.param('[smtp]\ntimeout = [30]\n', "smtp.timeout", "or a whole number of seconds, not an array",
                 id="smtp-timeout-array"),
    pytest.param('[smtp]\nca_file = "no/such/ca.pem"\n', "smtp.ca_file", "is not a readable file",
                 id="smtp-ca-missing"),
    pytest.param('[smtp]\nhost = "mail.example.org"\nusername = "monitor"\n', "smtp.username",
                 "would send the password to 'mail.example.org' unencrypted", id="smtp-auth-plain"),
]


@pytest.mark.parametrize(("text", "key", "reason"), BAD_CONFIGS)
def test_bad_config(tmp_path: Path, text: str, key: str, reason: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={}, base_dir=tmp_path)
    err = info.value
    assert err.file == str(path)
    assert err.key == key
    assert reason in err.reason
    assert str(path) in str(err)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={}, base_dir=tmp_path)
    assert info.value.file == str(path)
    assert info.value.key == ""
    assert "no such file" in info.value.reason


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('[smtp]\nhost = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={}, base_dir=tmp_path)
    assert info.value.key == ""
    assert "cannot read" in info.value.reason


def test_redacted_hides_database_and_smtp_passwords(tmp_path: Path) -> None:
    path = write(tmp_path, '[database]\nurl = "postgresql://u:s3cret@h/db"\n[smtp]\nusername = "mailer"\n'
                           'security = "starttls"\npassword_env = "SMTP_PW"\n')
    s = load_settings(path, environ={"SMTP_PW": "mail-pa55"}, base_dir=tmp_path)
    assert "s3cret" in s.database.url  # the settings keep it; only the display hides it
    assert s.smtp.password == "mail-pa55"
    shown = s.redacted()
    assert "s3cret" not in repr(shown) and "mail-pa55" not in repr(shown)
    assert "mail-pa55" not in repr(s)  # nor in a settings object that gets logged
    assert shown["database"]["url"] == "postgresql+psycopg://u:***@h/db"
    assert shown["smtp"]["password"] == "(hidden)"
    assert shown["smtp"]["username"] == "mailer"
    unset = load_settings(path, environ={}, base_dir=tmp_path).redacted()
    assert unset["smtp"]["password"] == "(not set)"


def test_redacted_hides_password_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL_FEED)
    env = {"MONITOR_DATABASE_URL": "postgresql://u:s3cret@h/db"}
    shown = load_settings(path, environ=env, base_dir=tmp_path).redacted()
    assert "s3cret" not in repr(shown)
    assert shown["database"]["from_env"] is True
    assert shown["feeds"] == [{"name": "A", "url": "https://a.example/rss", "interval": 900,
                               "enabled": True, "max_interval": 4 * 3600,
                               "alert_backlog": True, "category": None}]


def test_redacted_sqlite_url_is_shown_plainly(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL_FEED)
    shown = load_settings(path, environ={}, base_dir=tmp_path).redacted()
    assert shown["database"]["url"] == f"sqlite:///{tmp_path / 'data' / 'monitor.db'}"
    assert shown["config_file"] == str(path)


@pytest.mark.parametrize(
    "expr", ["*/15 0-6 * jan-mar mon-fri", "0 7 * * 7", "0 7 * * *", "5,35 */2 1-15 * sun", "0 0 31 DEC *"]
)
def test_cron_problem_accepts_valid(expr: str) -> None:
    assert cron_problem(expr) is None


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("0 7 * *", "must have 5 fields"),
        ("61 * * * *", "'61' is not in 0-59"),
        ("0 24 * * *", "'24' is not in 0-23"),
        ("0 7 0 * *", "'0' is not in 1-31"),
        ("0 7 * foo *", "'foo' is not in 1-12"),
        ("0 7 * * 8", "'8' is not in 0-7"),
        ("*/0 * * * *", "bad step"),
        ("0 7 * * fri-mon", "runs backwards"),
        ("0 1-2-3 * * *", "bad range"),
    ],
)
def test_cron_problem_rejects_invalid(expr: str, fragment: str) -> None:
    problem = cron_problem(expr)
    assert problem is not None
    assert fragment in problem


def test_dedup_settings(tmp_path: Path) -> None:
    path = write(tmp_path, '[dedup]\njaccard = 0.6\ncontainment = 1\nmin_words = 50\n'
                           'max_candidates = 5\nboilerplate = ["^Listen to this article.*"]\n')
    s = load_settings(path, environ={}, base_dir=tmp_path)
    t = s.dedup.thresholds
    assert (t.jaccard, t.containment, t.min_words, t.max_candidates) == (0.6, 1.0, 50, 5)
    assert s.dedup.boilerplate == ("^Listen to this article.*",)
    assert s.redacted()["dedup"]["boilerplate"] == ["^Listen to this article.*"]
    default = load_settings(write(tmp_path, "", "empty.toml"), environ={}, base_dir=tmp_path)
    assert default.dedup.thresholds == Thresholds()
