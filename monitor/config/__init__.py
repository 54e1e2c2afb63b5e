"""Settings: load the TOML config once, validate everything, return frozen values.

Nothing else in the package reads files or the environment for settings; the
CLI calls :func:`load_settings` once and passes the result down.

Relative paths (the ``[seeds] path`` and a relative SQLite file in
``[database] url``) resolve against the working directory the command runs in,
the way ``sqlite:///data/monitor.db`` reads: run from the project root, or use
absolute paths (a service manager should set the working directory).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from monitor import __version__, shipped
from monitor.config.channels import ChannelSettings, parse_channels
from monitor.config.cron import cron_problem
from monitor.config.values import (
    EMAIL_RE,
    Table,
    duration,
    positive,
    seconds,
    size,
    type_name,
)
from monitor.errors import ConfigError, QueryError
from monitor.rules import Query
from monitor.rules import parse as parse_query

DEFAULT_CONFIG_PATH = Path("config/monitor.toml")
ENV_CONFIG = "MONITOR_CONFIG"
ENV_DATABASE_URL = "MONITOR_DATABASE_URL"

DEFAULT_USER_AGENT = (
    f"monitor/{__version__} (media-monitoring feed reader)"
)



@dataclass(frozen=True)
class DatabaseSettings:
    url: str  # with the password: for connecting, never to show (use shown_url)
    from_env: bool = False

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @property
    def shown_url(self) -> str:
        """The URL with its password as ``***``: what output, logs and errors may show."""
        try:
            return make_url(self.url).render_as_string(hide_password=True)
        except (ArgumentError, ValueError):
            return "(not a database URL)"

    def __repr__(self) -> str:  # in a log line or a traceback, the password stays hidden
        return f"DatabaseSettings(url={self.shown_url!r}, from_env={self.from_env!r})"


@dataclass(frozen=True)
class FeedSettings:
    name: str
    url: str
    interval: int  # seconds: the most often it is polled (the adaptive floor)
    enabled: bool = True
    max_interval: int = 0  # seconds: the adaptive ceiling (at least interval; 0: interval)
    alert_backlog: bool = True  # False: what its first poll finds does not alert
    category: str | None = None  # a folder of the user's ("World/Europe"), from OPML



@dataclass(frozen=True)
class RuleSettings:
    name: str
    query: str  # as written
    recipients: tuple[str, ...]  # whose digest its alerts go into (may be none: notify)
    parsed: Query = field(compare=False, repr=False)  # parsed once, at load
    # Seconds: once, alert on what was stored this long before the rule (and again when
    # the query or this changes); None: only what is stored from now on.
    backfill: int | None = None
    notify: tuple[str, ...] = ()  # [[channels]] told of each alert at once

    def backfill_key(self) -> str | None:
        """What a backfill of this rule covers: applied once per key (see Rule.backfill_key)."""
        return None if self.backfill is None else f"{self.backfill}s {self.query}"


@dataclass(frozen=True)
class DigestSettings:
    schedule: str = "0 7 * * *"  # cron, in ``timezone``
    timezone: str = "UTC"
    sender: str = "monitor@localhost"
    sender_name: str = "monitor"
    send_empty: bool = False  # mail a "nothing new" digest to recipients with no alerts
    full_entries: int = 20  # new stories per rule, shown with snippet; the rest one line each
    retry_max: int = 3600  # seconds: failed sends are retried after 1m, 2m, 4m … up to this
    # A digest the server answers with a 5xx this many times is given up (failed); a
    # refused recipient, at once. Its alerts go into the next digest, once.
    give_up_after: int = 5
    max_alerts: int = 200  # stories listed in one digest; the rest are counted, per rule


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "localhost"
    port: int = 25
    security: str = "none"  # none | starttls | tls
    username: str = ""
    password_env: str = "MONITOR_SMTP_PASSWORD"  # noqa: S105 (a variable name, not a secret)
    timeout: float = 30.0  # seconds, for the connection and each command
    ca_file: str = ""  # extra CA certificates (PEM) to trust, e.g. an intranet relay's
    # Read from the environment variable named by password_env, at load; never shown.
    password: str = field(default="", repr=False, compare=False)


@dataclass(frozen=True)
class FetchSettings:
    user_agent: str = DEFAULT_USER_AGENT
    timeout: float = 30.0  # whole request, seconds
    connect_timeout: float = 10.0
    max_feed_bytes: int = 10 * 1024 * 1024
    max_page_bytes: int = 5 * 1024 * 1024
    max_redirects: int = 5
    concurrency: int = 16  # requests in flight, all hosts together
    per_host: int = 2  # requests in flight to one host
    host_delay: float = 1.0  # seconds between the starts of two requests to one host
    default_interval: int = 15 * 60
    # An article page that fails for a reason that may pass (a timeout, a reset, 429 or
    # 5xx, its extraction's worker dying) is tried again after page_retry, doubling up
    # to page_retry_max, page_attempts times in all; then the feed's text is kept.
    page_attempts: int = 4
    page_retry: int = 60  # seconds
    page_retry_max: int = 3600  # seconds; a Retry-After asking for longer is not waited
    # Addresses, networks and host names article links may point to although they are not
    # public (see monitor.ingest.netguard). Feeds in the config are trusted and never checked.
    allow_private: tuple[str, ...] = ()


@dataclass(frozen=True)
class PollSettings:
    """``[poll]``: when feeds are polled again (see :mod:`monitor.ingest.cadence`)."""

    jitter: float = 0.1  # each wait is stretched or shrunk by up to this fraction, at random
    max_interval: int = 4 * 3600  # ceiling for a feed that rarely changes; = interval: off
    backoff_base: int = 60  # the wait after a first failure; doubled after each further one
    backoff_max: int = 6 * 3600  # the longest wait after failures; a feed is never given up


@dataclass(frozen=True)
class StorySettings:
    """``[stories]``: grouping the write-ups of one event (see monitor.stories)."""

    enabled: bool = True
    # An article joins only a story last reported this long before it (by published
    # time, else first seen) at most: the same kind of event months apart is another.
    window: int = 3 * 86400
    # 0.5 x cosine(all words) + 0.5 x cosine(names and numbers) with the story's
    # centroid, at least this: docs/stories.md has the numbers behind it.
    threshold: float = 0.33


@dataclass(frozen=True)
class RetentionSettings:
    """``[retention]``: how long stored things are kept (seconds; 0: for ever). What
    goes is the bulk (article texts, digest bodies, old worker rows); what dedup and the
    listings need stays (see monitor.service.retention)."""

    duplicate_text: int = 90 * 86400  # a duplicate's text, after it was stored
    original_text: int = 0  # an original's text (0: kept for ever)
    digest_bodies: int = 30 * 86400  # a sent or failed digest's message bytes
    stopped_workers: int = 30 * 86400  # the row of a worker stopped or lost this long
    # An alert channel's message delivered or dead this long ago (its alerts stay).
    channel_messages: int = 30 * 86400
    # A story no article joined for this long is no longer a candidate: its index rows go
    # (the lookup then costs what the recent stories cost, however many are stored).
    # At least [stories] window; an article published longer ago starts a story.
    story_index: int = 10 * 86400
    every: int = 3600  # seconds between the daemon's pruning rounds
    batch: int = 500  # items or digests per transaction


@dataclass(frozen=True)
class AlertSettings:
    """``[alerts]``: which stored originals a matching rule alerts for."""

    # An article published longer ago than this (seconds; 0: no limit) is stored and
    # matched but does not alert: a new feed's backlog, a page that resurfaces.
    max_age: int = 3 * 86400


@dataclass(frozen=True)
class DaemonSettings:
    """``[daemon]``: how ``monitor run`` serves, reloads, shares work and stops."""

    listen: str = "127.0.0.1:9464"  # /healthz and /metrics; "" for none; port 0: any free one
    config_check: int = 5  # seconds between looks at the config file for changes
    shutdown_timeout: int = 20  # seconds in-flight work may take to finish on SIGTERM
    lease: int = 120  # seconds a claim on a feed or digest holds unless renewed


@dataclass(frozen=True)
class WebSettings:
    """``[web]``: who may use the review page and its API (monitor.web). ``auth`` as
    written: "" (nobody signs in: only on a loopback address), "env:NAME" (a token, read
    from that environment variable into ``token``) or an argon2/bcrypt password hash."""

    auth: str = ""
    token: str = field(default="", repr=False)

    @property
    def kind(self) -> str:
        """"none", "token" or "password"."""
        return "none" if not self.auth else "token" if self.auth.startswith("env:") else "password"


WEB_TOKEN_MIN_CHARS = 16
_PASSWORD_HASH = re.compile(r"^(\$argon2(id|i|d)\$v=\d+\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+"
                            r"|\$2[aby]\$\d\d\$[./A-Za-z0-9]{53})$")


@dataclass(frozen=True)
class ExtractSettings:
    workers: int = 0  # 0 = one per CPU core
    min_text_chars: int = 250  # shorter page text counts as a failed extraction
    worker_max_tasks: int = 2000  # replace the workers after this many pages each (memory)
    timeout: int = 60  # seconds one page's extraction or one feed's parse may take
    mode: str = "default"  # EXTRACT_MODES: "fast" skips trafilatura's fallback extractors


@dataclass(frozen=True)
class Thresholds:
    """When a verified near-duplicate candidate counts as a duplicate (see
    :func:`monitor.dedup.verdict.is_duplicate`)."""

    # Chosen from benchmarks/dedup_quality.py (docs/dedup.md): on the labelled set,
    # different articles reach at most 0.27 containment / 0.14 Jaccard; copies reach
    # containment 0.61 at the lowest, most 0.8 or more (teasers: Jaccard down to 0.01).
    jaccard: float = 0.5
    containment: float = 0.7
    min_words: int = 30  # texts shorter than this are never near-duplicates
    max_candidates: int = 20  # candidates verified per text, most band hits first


@dataclass(frozen=True)
class DedupSettings:
    """``[dedup]``: the thresholds (defaults and meaning in Thresholds) and extra
    boilerplate line patterns (regular expressions)."""

    thresholds: Thresholds = field(default_factory=Thresholds)
    boilerplate: tuple[str, ...] = ()


@dataclass(frozen=True)
class Settings:
    path: Path
    database: DatabaseSettings
    seeds_path: Path
    feeds: tuple[FeedSettings, ...] = ()
    rules: tuple[RuleSettings, ...] = ()
    alerts: AlertSettings = field(default_factory=AlertSettings)
    digest: DigestSettings = field(default_factory=DigestSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    fetch: FetchSettings = field(default_factory=FetchSettings)
    extract: ExtractSettings = field(default_factory=ExtractSettings)
    dedup: DedupSettings = field(default_factory=DedupSettings)
    poll: PollSettings = field(default_factory=PollSettings)
    daemon: DaemonSettings = field(default_factory=DaemonSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    stories: StorySettings = field(default_factory=StorySettings)
    web: WebSettings = field(default_factory=WebSettings)
    channels: tuple[ChannelSettings, ...] = ()
    log_level: str = "INFO"
    log_format: str = "text"  # text | json

    def redacted(self) -> dict[str, Any]:
        """The effective settings as plain data, with secrets shown as "(hidden)"."""
        return {
            "config_file": str(self.path),
            "database": {"url": self.database.shown_url, "from_env": self.database.from_env},
            "seeds": {"path": str(self.seeds_path)},
            "log_level": self.log_level,
            "log_format": self.log_format,
            "fetch": _asdict(self.fetch),
            "poll": _asdict(self.poll),
            "daemon": _asdict(self.daemon),
            "extract": _asdict(self.extract),
            "dedup": {**_asdict(self.dedup.thresholds),
                      "boilerplate": list(self.dedup.boilerplate)},
            "feeds": [_asdict(f) for f in self.feeds],
            "rules": [{"name": r.name, "query": r.query, "reads": str(r.parsed),
                       "recipients": list(r.recipients), "backfill": r.backfill,
                       "notify": list(r.notify)}
                      for r in self.rules],
            "channels": [c.redacted() for c in self.channels],
            "alerts": _asdict(self.alerts),
            "retention": _asdict(self.retention),
            "stories": _asdict(self.stories),
            "digest": _asdict(self.digest),
            "smtp": {**_asdict(self.smtp),
                     "password": "(hidden)" if self.smtp.password else "(not set)"},
            "web": {"auth": self.web.kind if self.web.kind != "token" else self.web.auth,
                    "token": "(hidden)" if self.web.token else "(not set)"},
        }


    def shared_fingerprint(self) -> str:
        """A hash of what workers sharing a database must agree on: the feeds and rules
        the config sync writes to the shared tables, and the alerting, polling and digest
        settings. Two workers whose configs differ only in their own concerns (where
        they listen, how many extraction processes) have the same."""
        shared = {"feeds": [_asdict(f) for f in self.feeds],
                  "rules": [[r.name, r.query, list(r.recipients), r.backfill, list(r.notify)]
                            for r in self.rules],
                  "channels": [c.shared() for c in self.channels],
                  "alerts": _asdict(self.alerts), "poll": _asdict(self.poll),
                  "digest": _asdict(self.digest), "stories": _asdict(self.stories)}
        return hashlib.sha256(json.dumps(shared, sort_keys=True, default=str)
                              .encode()).hexdigest()


def _asdict(obj: Any) -> dict[str, Any]:
    return {k: getattr(obj, k) for k in obj.__dataclass_fields__}


def config_path(explicit: str | None, environ: Mapping[str, str]) -> Path:
    """Which config file to read: ``--config``, else ``$MONITOR_CONFIG``, else the default."""
    if explicit:
        return Path(explicit)
    if environ.get(ENV_CONFIG):
        return Path(environ[ENV_CONFIG])
    return DEFAULT_CONFIG_PATH


def load_settings(
    path: Path, environ: Mapping[str, str] | None = None, base_dir: Path | None = None
) -> Settings:
    """Read and validate ``path``.

    Returns the frozen :class:`Settings`. Raises :class:`ConfigError` naming
    the file, the key and the reason for the first problem found.
    """
    environ = os.environ if environ is None else environ
    base = Path.cwd() if base_dir is None else base_dir
    file = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(file, "", "no such file (use --config PATH or MONITOR_CONFIG)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(file, "", f"cannot read: {exc}") from exc
    except ValueError as exc:  # TOMLDecodeError; also a number too long to convert
        raise ConfigError(file, "", f"invalid TOML: {exc}") from exc
    return _parse(raw, file, environ, base, path)


def _database(doc: Table, environ: Mapping[str, str], base: Path) -> DatabaseSettings:
    t = doc.section("database")
    url = t.get("url", str, "sqlite:///data/monitor.db")
    t.finish()
    from_env = bool(environ.get(ENV_DATABASE_URL))
    if from_env:
        url = environ[ENV_DATABASE_URL]
    key = ENV_DATABASE_URL if from_env else "database.url"
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(doc.file, key, f"not a database URL: {exc}") from None
    except ValueError:  # the port is no number; its text may be a password: not shown
        raise ConfigError(doc.file, key, "not a database URL: what follows the host's ':' is "
                          "not a port number") from None
    if parsed.host and "@" in parsed.host:  # the rest of a password: not shown
        raise ConfigError(doc.file, key, "not a database URL: an '@' in the user name or "
                          "password must be written %40")
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:" and not Path(parsed.database).is_absolute():
            parsed = parsed.set(database=str(base / parsed.database))
    elif backend == "postgresql":
        # Only psycopg 3 is shipped (the `postgres` extra); plain postgresql:// means psycopg2.
        if parsed.drivername in ("postgresql", "postgresql+psycopg2"):
            parsed = parsed.set(drivername="postgresql+psycopg")
    else:
        raise ConfigError(doc.file, key, f"unsupported database {backend!r}: use sqlite or postgresql")
    return DatabaseSettings(url=parsed.render_as_string(hide_password=False), from_env=from_env)


def _fetch(doc: Table) -> FetchSettings:
    t = doc.section("fetch")
    d = FetchSettings()
    ua = t.check("user_agent", t.get("user_agent", str, d.user_agent),
                 lambda s: bool(s.strip()) and "\n" not in s and "\r" not in s,
                 "must be a non-empty single line")
    timeout = duration(t, "timeout", int(d.timeout))
    connect = duration(t, "connect_timeout", int(d.connect_timeout))
    s = FetchSettings(
        user_agent=ua,
        timeout=float(timeout),
        connect_timeout=float(connect),
        max_feed_bytes=size(t, "max_feed_bytes", d.max_feed_bytes),
        max_page_bytes=size(t, "max_page_bytes", d.max_page_bytes),
        max_redirects=positive(t, "max_redirects", d.max_redirects, 0),
        concurrency=positive(t, "concurrency", d.concurrency),
        per_host=positive(t, "per_host", d.per_host),
        host_delay=seconds(t, "host_delay", d.host_delay),
        default_interval=duration(t, "default_interval", d.default_interval, minimum=30),
        allow_private=_allow_private(t),
        page_attempts=positive(t, "page_attempts", d.page_attempts),
        page_retry=duration(t, "page_retry", d.page_retry),
        page_retry_max=duration(t, "page_retry_max", d.page_retry_max),
    )
    t.check("page_retry_max", s.page_retry_max, lambda v: v >= s.page_retry,
            f"must be at least page_retry ({s.page_retry}s)")
    t.finish()
    return s


def _allow_private(t: Table) -> tuple[str, ...]:
    entries = t.get("allow_private", list, [])
    for j, entry in enumerate(entries):
        if not isinstance(entry, str):
            raise t.fail(f"allow_private[{j}]", f"must be a string, not {type_name(entry)}")
        try:
            allow_entry(entry)
        except ValueError as exc:
            raise t.fail(f"allow_private[{j}]", f"{entry!r} {exc}") from None
    return tuple(entries)


# A host name pattern in the allow-list: "intranet.example.org" or "*.example.org".
_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_HOST_PATTERN = re.compile(rf"^(\*\.)?({_LABEL}\.)*{_LABEL}$")


def allow_entry(entry: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | str:
    """An ``[fetch] allow_private`` entry read: an IP network (an address is a network
    of one), or a host name pattern in lower case without a trailing dot. Raises
    ValueError saying what an entry must be."""
    try:
        return ipaddress.ip_network(entry.strip(), strict=False)
    except ValueError:
        pass
    host = entry.strip().lower().rstrip(".")
    if _HOST_PATTERN.match(host):
        return host
    raise ValueError("must be an IP address, a network such as 10.0.0.0/8, or a host name "
                     "such as *.example.org")


def _extract(doc: Table) -> ExtractSettings:
    t = doc.section("extract")
    d = ExtractSettings()
    s = ExtractSettings(
        workers=positive(t, "workers", d.workers, 0),
        min_text_chars=positive(t, "min_text_chars", d.min_text_chars, 0),
        worker_max_tasks=positive(t, "worker_max_tasks", d.worker_max_tasks),
        timeout=duration(t, "timeout", d.timeout),
        mode=t.check("mode", t.get("mode", str, d.mode), lambda v: v in EXTRACT_MODES,
                     f"must be one of: {', '.join(EXTRACT_MODES)}"),
    )
    t.finish()
    return s


def _fraction(t: Table, k: str, default: float) -> float:
    return t.check(k, t.get(k, float, default), lambda v: 0.0 < v <= 1.0,
                   "must be a number greater than 0 and at most 1")


def _dedup(doc: Table) -> DedupSettings:
    t = doc.section("dedup")
    d = Thresholds()
    patterns = t.get("boilerplate", list, [])
    for i, pattern in enumerate(patterns):
        key = f"boilerplate[{i}]"
        if not isinstance(pattern, str) or not pattern.strip():
            raise t.fail(key, "must be a non-empty string (a regular expression)")
        try:
            re.compile(pattern)
        except (re.error, OverflowError, RecursionError) as exc:
            raise t.fail(key, f"invalid regular expression: {exc}") from None
    try:  # the way they are used: alternatives of one expression (dedup.fingerprint)
        re.compile("|".join(f"(?:{p})" for p in patterns))
    except (re.error, OverflowError, RecursionError) as exc:
        raise t.fail("boilerplate", f"the patterns cannot be combined into one expression: "
                     f"{exc}") from None
    s = DedupSettings(
        Thresholds(
            jaccard=_fraction(t, "jaccard", d.jaccard),
            containment=_fraction(t, "containment", d.containment),
            min_words=positive(t, "min_words", d.min_words),
            max_candidates=positive(t, "max_candidates", d.max_candidates),
        ),
        boilerplate=tuple(patterns),
    )
    t.finish()
    return s


def _poll(doc: Table) -> PollSettings:
    t = doc.section("poll")
    d = PollSettings()
    jitter = t.check("jitter", t.get("jitter", float, d.jitter), lambda v: 0.0 <= v <= 0.5,
                     "must be a number from 0 to 0.5")
    s = PollSettings(
        jitter=jitter,
        max_interval=duration(t, "max_interval", d.max_interval, minimum=30),
        backoff_base=duration(t, "backoff_base", d.backoff_base),
        backoff_max=duration(t, "backoff_max", d.backoff_max),
    )
    t.check("backoff_max", s.backoff_max, lambda v: v >= s.backoff_base,
            f"must be at least backoff_base ({s.backoff_base}s)")
    t.finish()
    return s


def _alerts(doc: Table) -> AlertSettings:
    t = doc.section("alerts")
    s = AlertSettings(max_age=duration(t, "max_age", AlertSettings().max_age, minimum=0))
    t.finish()
    return s


def _stories(doc: Table) -> StorySettings:
    t = doc.section("stories")
    d = StorySettings()
    s = StorySettings(enabled=t.get("enabled", bool, d.enabled),
                      window=duration(t, "window", d.window, minimum=60),
                      threshold=_fraction(t, "threshold", d.threshold))
    t.finish()
    return s


def _retention(doc: Table, stories: StorySettings) -> RetentionSettings:
    t = doc.section("retention")
    d = RetentionSettings()
    story_index = duration(t, "story_index", d.story_index, minimum=0)
    if story_index and story_index < stories.window:
        raise t.fail("story_index", f"{story_index}s is shorter than [stories] window "
                     f"({stories.window}s): a story would lose its index while articles "
                     "may still join it; make it at least the window, or 0 to keep it")
    s = RetentionSettings(
        duplicate_text=duration(t, "duplicate_text", d.duplicate_text, minimum=0),
        original_text=duration(t, "original_text", d.original_text, minimum=0),
        digest_bodies=duration(t, "digest_bodies", d.digest_bodies, minimum=0),
        stopped_workers=duration(t, "stopped_workers", d.stopped_workers, minimum=0),
        channel_messages=duration(t, "channel_messages", d.channel_messages, minimum=0),
        story_index=story_index,
        every=duration(t, "every", d.every),
        batch=positive(t, "batch", d.batch),
    )
    t.finish()
    return s


def _daemon(doc: Table) -> DaemonSettings:
    t = doc.section("daemon")
    d = DaemonSettings()
    listen = t.get("listen", str, d.listen)
    if listen:
        problem = listen_problem(listen)
        if problem:
            raise t.fail("listen", problem)
    s = DaemonSettings(
        listen=listen,
        config_check=duration(t, "config_check", d.config_check),
        shutdown_timeout=duration(t, "shutdown_timeout", d.shutdown_timeout),
        lease=duration(t, "lease", d.lease, minimum=5),
    )
    t.finish()
    return s


def listen_problem(listen: str) -> str | None:
    """Why ``listen`` is not ``HOST:PORT`` (an IPv6 host in brackets), or None."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        return f"{listen!r} is not HOST:PORT, e.g. \"127.0.0.1:9464\" (port 0: any free port)"
    return None


def public_listen_problem(listen: str, web: WebSettings) -> str | None:
    """Why the review page may not be served on ``listen``: an address other machines
    can reach, with no ``[web] auth`` to keep strangers out. None when it may."""
    if not listen or web.kind != "none":
        return None
    host, _ = split_listen(listen)
    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass
    return (f"{listen} can be reached from other machines, and the review page and its API "
            "would be open to anyone there: set [web] auth (a token: auth = \"env:NAME\", "
            "or a password hash from `monitor web --hash-password`), or listen on "
            "127.0.0.1")


def split_listen(listen: str) -> tuple[str, int]:
    """``"127.0.0.1:9464"`` -> ("127.0.0.1", 9464); ``"[::1]:9464"`` -> ("::1", 9464)."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def _web(doc: Table, environ: Mapping[str, str]) -> WebSettings:
    t = doc.section("web")
    auth = t.get("auth", str, "").strip()
    token = ""
    if auth.startswith("env:"):
        name = auth[4:]
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            raise t.fail("auth", f"{auth!r}: {name!r} is not the name of an environment variable")
        token = environ.get(name, "")
        if len(token) < WEB_TOKEN_MIN_CHARS:
            raise t.fail("auth", f"the environment variable {name} is "
                         + ("not set" if not token else f"only {len(token)} characters long")
                         + f": set it to a random token of at least {WEB_TOKEN_MIN_CHARS} "
                         "characters (python3 -c 'import secrets; print(secrets.token_urlsafe())')")
    elif auth and not _PASSWORD_HASH.match(auth):
        raise t.fail("auth", "must be \"\" (no sign-in, loopback only), \"env:NAME\" (a token "
                     "from an environment variable) or an argon2 or bcrypt password hash "
                     "(`monitor web --hash-password` makes one); never the password itself")
    t.finish()
    return WebSettings(auth=auth, token=token)


MAX_CATEGORY_CHARS = 100
FEED_URL = re.compile(r"^https?://[^/\s]+")  # what a [[feeds]] url must look like
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def _feeds(doc: Table, default_interval: int,
           default_max: int) -> tuple[FeedSettings, ...]:
    doc.used.add("feeds")
    raw = doc.data.get("feeds", [])
    if not isinstance(raw, list):
        raise ConfigError(doc.file, "feeds", "must be an array of tables ([[feeds]])")
    feeds: list[FeedSettings] = []
    seen_urls: dict[str, int] = {}
    seen_names: dict[str, int] = {}
    for i, item in enumerate(raw):
        t = Table(doc.file, f"feeds[{i}]", item)
        name = t.check("name", t.get("name", str, required=True), lambda s: bool(s.strip()),
                       "must not be empty")
        t.about = f"feed {name.strip()!r}"
        url = t.get("url", str, required=True).strip()
        t.check("url", url, lambda u: FEED_URL.match(u) is not None,
                f"{url!r} is not an http(s) URL")
        interval = duration(t, "interval", default_interval, minimum=30)
        enabled = t.get("enabled", bool, True)
        alert_backlog = t.get("alert_backlog", bool, True)
        max_interval = duration(t, "max_interval", max(default_max, interval), minimum=30)
        category = " ".join(t.get("category", str, "").split()) or None
        if category is not None:
            t.check("category", category, lambda c: len(c) <= MAX_CATEGORY_CHARS
                    and not _CONTROL_CHARS.search(c),
                    f"at most {MAX_CATEGORY_CHARS} characters, no control characters")
        if max_interval < interval:
            raise t.fail("max_interval", f"must be at least the feed's interval ({interval}s)")
        t.finish()
        if url in seen_urls:
            raise t.fail("url", f"duplicate feed URL {url!r}, already used by feeds[{seen_urls[url]}]")
        name = name.strip()
        if name in seen_names:
            raise t.fail("name", f"duplicate feed name {name!r}, already used by feeds[{seen_names[name]}]")
        seen_urls[url], seen_names[name] = i, i
        feeds.append(FeedSettings(name=name, url=url, interval=interval, enabled=enabled,
                                  max_interval=max_interval, alert_backlog=alert_backlog,
                                  category=category))
    return tuple(feeds)


def _rules(doc: Table, channels: tuple[ChannelSettings, ...]) -> tuple[RuleSettings, ...]:
    doc.used.add("rules")
    raw = doc.data.get("rules", [])
    if not isinstance(raw, list):
        raise ConfigError(doc.file, "rules", "must be an array of tables ([[rules]])")
    rules: list[RuleSettings] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(raw):
        t = Table(doc.file, f"rules[{i}]", item)
        name = t.check("name", t.get("name", str, required=True), lambda s: bool(s.strip()),
                       "must not be empty")
        name = name.strip()
        t.about = f"rule {name!r}"
        query = t.get("query", str, required=True)
        try:
            parsed = parse_query(query)
        except QueryError as exc:
            raise t.fail("query", f"rule {name!r} does not parse: {exc.reason} "
                         f"(at position {exc.position + 1} of {query!r})") from None
        recipients = t.get("recipients", list, [])
        for j, addr in enumerate(recipients):
            if not isinstance(addr, str) or not EMAIL_RE.match(addr):
                raise t.fail(f"recipients[{j}]", f"{addr!r} is not an email address")
        notify = t.get("notify", list, [])
        known = [c.name for c in channels]
        for j, channel in enumerate(notify):
            if not isinstance(channel, str) or channel not in known:
                raise t.fail(f"notify[{j}]", f"no [[channels]] named {channel!r} (known: "
                             f"{', '.join(known) or 'none'})")
        if len(set(notify)) != len(notify):
            raise t.fail("notify", "lists a channel twice")
        if not recipients and not notify:
            raise t.fail("recipients", "must list at least one address (or the rule must "
                         "notify a channel)")
        backfill = duration(t, "backfill", 0, minimum=60) if "backfill" in t.data else None
        t.finish()
        if name in seen:
            raise t.fail("name", f"duplicate rule name {name!r}, already used by rules[{seen[name]}]")
        seen[name] = i
        rules.append(RuleSettings(name=name, query=query, recipients=tuple(recipients),
                                  parsed=parsed, backfill=backfill, notify=tuple(notify)))
    return tuple(rules)


def _digest(doc: Table) -> DigestSettings:
    t = doc.section("digest")
    d = DigestSettings()
    schedule = t.get("schedule", str, d.schedule)
    problem = cron_problem(schedule)
    if problem:
        raise t.fail("schedule", problem)
    tz = t.get("timezone", str, d.timezone)
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "America", a directory
        raise t.fail("timezone", f"unknown IANA time zone {tz!r}") from None
    sender = t.check("sender", t.get("sender", str, d.sender), lambda s: bool(EMAIL_RE.match(s)),
                     "is not an email address")
    sender_name = t.check("sender_name", t.get("sender_name", str, d.sender_name),
                          lambda s: s.isprintable(), "must be one line of printable text")
    send_empty = t.get("send_empty", bool, d.send_empty)
    full_entries = positive(t, "full_entries", d.full_entries)
    retry_max = duration(t, "retry_max", d.retry_max, minimum=60)
    give_up_after = positive(t, "give_up_after", d.give_up_after)
    max_alerts = positive(t, "max_alerts", d.max_alerts)
    t.finish()
    return DigestSettings(schedule=schedule, timezone=tz, sender=sender, sender_name=sender_name,
                          send_empty=send_empty, full_entries=full_entries, retry_max=retry_max,
                          give_up_after=give_up_after, max_alerts=max_alerts)


def _smtp(doc: Table, environ: Mapping[str, str], base: Path) -> SmtpSettings:
    t = doc.section("smtp")
    d = SmtpSettings()
    s = SmtpSettings(
        host=t.check("host", t.get("host", str, d.host), lambda s: bool(s.strip()), "must not be empty"),
        port=t.check("port", t.get("port", int, d.port), lambda p: 0 < p < 65536,
                     "must be between 1 and 65535"),
        security=t.check("security", t.get("security", str, d.security),
                         lambda s: s in ("none", "starttls", "tls"),
                         "must be one of: none, starttls, tls"),
        username=t.get("username", str, d.username),
        password_env=t.check("password_env", t.get("password_env", str, d.password_env),
                             lambda s: re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", s) is not None,
                             "must be the name of an environment variable"),
        timeout=float(duration(t, "timeout", int(d.timeout))),
        ca_file=t.get("ca_file", str, d.ca_file),
    )
    if s.ca_file:
        ca = Path(s.ca_file) if Path(s.ca_file).is_absolute() else base / s.ca_file
        t.check("ca_file", ca, Path.is_file, f"{str(ca)!r} is not a readable file")
        s = replace(s, ca_file=str(ca))
    if s.username and s.security == "none" and s.host not in ("localhost", "127.0.0.1", "::1"):
        raise t.fail("username", f"would send the password to {s.host!r} unencrypted: "
                     "set security = \"starttls\" or \"tls\"")
    s = replace(s, password=environ.get(s.password_env, ""))
    t.finish()
    return s


EXTRACT_MODES = ("default", "fast")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")


def _parse(raw: dict[str, Any], file: str, environ: Mapping[str, str], base: Path,
           path: Path) -> Settings:
    doc = Table(file, "", raw)
    database = _database(doc, environ, base)
    seeds_t = doc.section("seeds")
    given = seeds_t.get("path", str, "")
    seeds_t.finish()
    # Unset: the seed corpus that comes with monitor (in the wheel, or the checkout's).
    seeds_path = Path(given) if given else shipped.folder("seeds", "seeds") or base / "seeds"
    if not seeds_path.is_absolute():
        seeds_path = base / seeds_path
    log_t = doc.section("logging")
    level = log_t.check("level", log_t.get("level", str, "INFO").upper(),
                        lambda v: v in _LOG_LEVELS, f"must be one of: {', '.join(_LOG_LEVELS)}")
    log_format = log_t.check("format", log_t.get("format", str, "text"),
                             lambda v: v in LOG_FORMATS, f"must be one of: {', '.join(LOG_FORMATS)}")
    log_t.finish()
    fetch = _fetch(doc)
    poll = _poll(doc)
    stories = _stories(doc)
    channels = parse_channels(doc, environ)
    settings = Settings(
        path=path,
        database=database,
        seeds_path=seeds_path,
        feeds=_feeds(doc, fetch.default_interval, poll.max_interval),
        rules=_rules(doc, channels),
        alerts=_alerts(doc),
        digest=_digest(doc),
        smtp=_smtp(doc, environ, base),
        fetch=fetch,
        extract=_extract(doc),
        dedup=_dedup(doc),
        poll=poll,
        daemon=_daemon(doc),
        retention=_retention(doc, stories),
        stories=stories,
        web=_web(doc, environ),
        channels=channels,
        log_level=level,
        log_format=log_format,
    )
    doc.finish()
    problem = public_listen_problem(settings.daemon.listen, settings.web)
    if problem:
        raise ConfigError(file, "daemon.listen", problem)
    return settings
