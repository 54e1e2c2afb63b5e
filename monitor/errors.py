"""The one error hierarchy of monitor.

Every error the package raises on purpose derives from :class:`MonitorError`.
Library errors (aiohttp, SQLAlchemy, feedparser, trafilatura) are wrapped at
the edge with ``raise ... from exc`` so callers only ever catch ours::

    MonitorError
    ├── ConfigError            bad config file/value: names file, key, reason
    ├── QueryError             a rule query that does not parse: names the position
    ├── StoreError             the database cannot be reached or used
    │   ├── MigrationError     the schema could not be brought up to date
    │   └── DaemonRunning      another daemon holds the SQLite file (one per file)
    ├── SeedError              a seed file cannot be read
    ├── FetchError             an HTTP fetch failed (names the URL)
    │   ├── NetworkError       DNS, connect, TLS, reset
    │   ├── FetchTimeout       connect/read timeout
    │   ├── HTTPStatusError    a non-success status (carries status, Retry-After)
    │   ├── TooLargeError      body over the configured cap
    │   ├── RedirectError      too many redirects, or a loop
    │   └── BlockedError       an article link to a non-public address (SSRF guard)
    ├── FeedParseError         a body that is no usable feed
    ├── ExtractionError        article extraction failed
    ├── MailError              the SMTP server could not be reached, or refused a digest
    ├── InputError             a file or URL given on the command line cannot be read
    │   └── OpmlError          a file given as OPML is none
    └── UsageError             a command-line argument that means nothing here (a typo)

Each class has a ``hint`` telling the user what to do about it, shown by the CLI; an
error may carry one of its own (``hint=``) where the class's would not apply, or none
where its message says it all.
"""

from __future__ import annotations

from typing import Any


class MonitorError(Exception):
    """Root of every error monitor raises on purpose."""

    hint: str = ""

    def __init__(self, *args: object, hint: str | None = None) -> None:
        super().__init__(*args)
        if hint is not None:
            self.hint = hint

    def with_hint(self) -> str:
        """The message, and the hint in parentheses when there is one."""
        return f"{self} ({self.hint})" if self.hint else str(self)


class ConfigError(MonitorError):
    """A config file is missing, unreadable or invalid."""

    hint = "fix the config file; `monitor config show` prints the effective settings"

    def __init__(self, file: str, key: str, reason: str, *, about: str | None = None) -> None:
        self.file = file
        self.key = key
        self.reason = reason
        where = f"{file}: {key}" if key else file
        if about:  # what the key belongs to: "feed 'Reuters'" (an index alone says little)
            where += f" ({about})"
        super().__init__(f"{where}: {reason}")


class QueryError(MonitorError):
    """A rule query does not parse. ``position`` is 0-based; messages show it 1-based."""

    hint = "see \"Alert rules\" in the README; `monitor rules test QUERY` shows how a query reads"

    def __init__(self, query: str, position: int, reason: str) -> None:
        self.query = query
        self.position = position
        self.reason = reason
        super().__init__(f"{reason} (at position {position + 1})")

    def pointer(self) -> str:
        """The query and a caret under the position, as two lines."""
        return f"{self.query}\n{' ' * self.position}^"


class StoreError(MonitorError):
    """The database cannot be reached or a statement failed."""

    hint = "check [database] url / MONITOR_DATABASE_URL and that the server is running"


class MigrationError(StoreError):
    """The schema could not be upgraded."""

    hint = "run `monitor db upgrade` and read its error"


class DaemonRunning(StoreError):
    """Another ``monitor run`` holds the SQLite database file's lock (``pid``: as it
    wrote it, or "unknown")."""

    hint = ("`monitor status` lists the workers; stop that one, or point [database] url "
            "at another file")

    def __init__(self, database: str, pid: str) -> None:
        self.database = database
        self.pid = pid
        super().__init__(
            f"another monitor process (pid {pid}) is already running on {database}: "
            "SQLite allows one daemon per database file. Stop it first, or use PostgreSQL "
            "to run several workers")


class SeedError(MonitorError):
    """A seed file cannot be read or decoded."""

    hint = "seed files must be UTF-8 text; check [seeds] path"


class FetchError(MonitorError):
    """An HTTP fetch failed. ``kind`` is a short, stable label for counters;
    ``transient``: the same request may well work later (worth a retry)."""

    kind = "fetch"
    transient = False

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"{url}: {reason}")


class NetworkError(FetchError):
    kind = "network"

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(url, reason)
        self.transient = not reason.startswith("invalid URL")  # a reset, DNS, TLS …


class FetchTimeout(FetchError):
    kind = "timeout"
    transient = True


# HTTP statuses that say "not now" rather than "never": asked again later (a page, a
# feed, an alert channel's message); any other failure status is final.
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class HTTPStatusError(FetchError):
    kind = "http"

    def __init__(self, url: str, status: int, retry_after: str | None = None) -> None:
        self.status = status
        self.retry_after = retry_after
        self.kind = "rate_limited" if status == 429 else f"http_{status // 100}xx"
        self.transient = status in TRANSIENT_STATUSES
        reason = f"HTTP {status}"
        if retry_after:
            reason += f" (Retry-After: {retry_after})"
        super().__init__(url, reason)


class TooLargeError(FetchError):
    kind = "too_large"


class RedirectError(FetchError):
    kind = "redirect"


class BlockedError(FetchError):
    """An article link (or a redirect from one) points at a loopback, private,
    link-local or metadata address that ``[fetch] allow_private`` does not admit."""

    kind = "blocked"
    hint = "add the address, network or host to [fetch] allow_private if it is a trusted source"


class FeedParseError(MonitorError):
    """The body could not be read as a feed at all."""

    kind = "parse"

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"{url}: not a usable feed: {reason}")

    def __reduce__(self) -> tuple[type[FeedParseError], tuple[str, str]]:
        # Raised inside worker processes: must survive pickling back to the parent.
        return (type(self), (self.url, self.reason))


class ExtractionError(MonitorError):
    """trafilatura could not extract an article. ``transient``: not the page's fault
    (its worker timed out or died), worth a retry."""

    def __init__(self, url: str, reason: str, *, transient: bool = False) -> None:
        self.url = url
        self.reason = reason
        self.transient = transient
        super().__init__(f"{url}: extraction failed: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_extraction_error, (self.url, self.reason, self.transient))


def _extraction_error(url: str, reason: str, transient: bool) -> ExtractionError:
    return ExtractionError(url, reason, transient=transient)


class MailError(MonitorError):
    """A digest could not be handed to the SMTP server. ``refused`` when the server
    answered with a rejection (a 4xx/5xx code), not when it could not be reached or
    dropped the connection; ``code``: its reply code; ``recipient_refused``: it refused
    the recipient (RCPT). The digest stays pending and is retried, unless the refusal
    is permanent (see :mod:`monitor.digest.delivery`)."""

    hint = "check [smtp] and the mail server's log; pending digests are retried with backoff"

    def __init__(self, server: str, reason: str, *, refused: bool = False,
                 code: int | None = None, recipient_refused: bool = False) -> None:
        self.server = server
        self.reason = reason
        self.refused = refused
        self.code = code
        self.recipient_refused = recipient_refused
        super().__init__(f"SMTP {server}: {reason}")

    @property
    def permanent(self) -> bool:
        """A 5xx reply: the server says the same message will never be taken."""
        return self.code is not None and 500 <= self.code < 600


class InputError(MonitorError):
    """A file or URL named on the command line cannot be read."""

    hint = "check the path or URL"


class OpmlError(InputError):
    """A file given as a feed list (OPML) is no OPML: not XML, or XML of another kind."""

    hint = "export the feed list from your reader as OPML"


class UsageError(MonitorError):
    """A command-line argument names nothing that exists or means nothing here: its
    message says what was meant (the close matches) or what is expected."""
