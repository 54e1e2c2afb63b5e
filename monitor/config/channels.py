"""``[[channels]]``: where a rule's alerts go at once, beside the digest (``notify`` in a
rule names them). Validated here; delivered by :mod:`monitor.service.channel_job`.

A channel's URL, header values, HMAC secret and access token can all be secrets (a Slack
incoming-webhook URL *is* one): they never reach ``repr``, logs or ``config show``, which
print the URL's scheme and host only. Secrets come from the environment (``url_env``,
``secret_env``, ``token_env``, a header written ``"env:NAME"``), read once at load;
:func:`require_secrets` refuses a start or a reload while one is unset.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from monitor.config.values import Table, duration, positive, seconds, type_name
from monitor.errors import ConfigError

CHANNEL_KINDS = ("webhook", "slack", "mattermost", "matrix", "ntfy")
MAX_CHANNEL_NAME = 100
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an RFC 9110 token
# Set by monitor for every webhook request; a [[channels]] header may not replace them.
RESERVED_HEADERS = frozenset({"content-type", "content-length", "host", "idempotency-key",
                              "x-monitor-signature", "x-monitor-timestamp", "x-monitor-event"})
_MATRIX_ROOM = re.compile(r"^![^:\s]+:[^\s]+$")
_NTFY_TOPIC = re.compile(r"^[-_A-Za-z0-9]{1,64}$")


@dataclass(frozen=True)
class ChannelSettings:
    """One ``[[channels]]`` table. ``url``, ``headers``, ``secret`` and ``token`` hold
    secrets: not in repr, never logged (see :attr:`shown_url`)."""

    name: str
    kind: str  # CHANNEL_KINDS
    url: str = field(default="", repr=False)  # where to send (Matrix: the homeserver)
    url_env: str = ""  # the environment variable the URL was read from ("": written)
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # webhook
    secret_env: str = ""  # webhook: the HMAC-SHA256 key's variable ("": unsigned)
    token_env: str = ""  # matrix (required), ntfy (optional): the access token's variable
    room: str = ""  # matrix: the room's id, "!id:server" (its settings show it)
    topic: str = ""  # ntfy
    timeout: float = 10.0  # seconds per request
    attempts: int = 8  # failed deliveries before a message is dead (a dead letter)
    retry: int = 30  # seconds before the first retry; doubled each time up to retry_max
    retry_max: int = 3600
    per_minute: int = 20  # messages sent at most in one minute (across all workers)
    # Seconds: a story notifies once; its later reports wait at least this long after the
    # story's last message on the channel, and go together in one follow-up.
    batch: int = 900
    max_alerts: int = 10  # reports listed in one message; the rest are counted
    # Read from the environment at load, never shown.
    secret: str = field(default="", repr=False, compare=False)
    token: str = field(default="", repr=False, compare=False)
    missing: tuple[str, ...] = field(default=(), compare=False)  # unset variables

    @property
    def shown_url(self) -> str:
        """What output and logs may show of the URL: its scheme and host."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname or '?'}{'/…' if parts.path.strip('/') else ''}"

    def redacted(self) -> dict[str, Any]:
        hidden = "(hidden)"
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "url": self.shown_url}
        if self.url_env:
            out["url_env"] = self.url_env
        if self.headers:
            out["headers"] = {k: hidden for k, _ in self.headers}
        if self.secret_env:
            out["secret_env"] = self.secret_env
            out["secret"] = hidden if self.secret else "(not set)"
        if self.token_env:
            out["token_env"] = self.token_env
            out["token"] = hidden if self.token else "(not set)"
        for k in ("room", "topic"):
            if getattr(self, k):
                out[k] = getattr(self, k)
        out.update({k: getattr(self, k) for k in ("timeout", "attempts", "retry", "retry_max",
                                                   "per_minute", "batch", "max_alerts")})
        return out

    def shared(self) -> list[Any]:
        """What workers sharing a database must agree on (no secret, no URL)."""
        return [self.name, self.kind, self.attempts, self.retry, self.retry_max,
                self.per_minute, self.batch, self.max_alerts]


def require_secrets(file: str, channels: tuple[ChannelSettings, ...]) -> None:
    """Raises ConfigError naming every channel whose environment variables are unset:
    what sends to channels (a start, a reload, ``channels send``) checks this first."""
    gaps = [f"{c.name!r} needs {', '.join('$' + v for v in c.missing)}"
            for c in channels if c.missing]
    if gaps:
        raise ConfigError(file, "channels", f"unset environment variables: {'; '.join(gaps)}")


def parse_channels(doc: Table, environ: Mapping[str, str]) -> tuple[ChannelSettings, ...]:
    doc.used.add("channels")
    raw = doc.data.get("channels", [])
    if not isinstance(raw, list):
        raise ConfigError(doc.file, "channels", "must be an array of tables ([[channels]])")
    out: list[ChannelSettings] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(raw):
        t = Table(doc.file, f"channels[{i}]", item)
        name = t.get("name", str, required=True).strip()
        t.check("name", name, lambda n: bool(_NAME.match(n)) and len(n) <= MAX_CHANNEL_NAME,
                f"{name!r} must be letters, digits, '-', '_' or '.' (at most "
                f"{MAX_CHANNEL_NAME}), starting with a letter or digit")
        t.about = f"channel {name!r}"
        if name in seen:
            raise t.fail("name", f"duplicate channel name {name!r}, already used by "
                         f"channels[{seen[name]}]")
        seen[name] = i
        out.append(_channel(t, name, environ))
        t.finish()
    return tuple(out)


def _env_name(t: Table, k: str, required: bool = False) -> str:
    value = t.get(k, str, "" if not required else None, required=required)
    return t.check(k, value, lambda v: not v or bool(_ENV_NAME.match(v)),
                   "must be the name of an environment variable")


def _channel(t: Table, name: str, environ: Mapping[str, str]) -> ChannelSettings:
    kind = t.check("kind", t.get("kind", str, required=True), lambda k: k in CHANNEL_KINDS,
                   f"must be one of: {', '.join(CHANNEL_KINDS)}")
    missing: list[str] = []

    def from_env(var: str) -> str:
        if var and not environ.get(var):
            missing.append(var)
        return environ.get(var, "") if var else ""

    if "url" in t.data and "url_env" in t.data:
        raise t.fail("url_env", "give url or url_env, not both")
    url_env = _env_name(t, "url_env")
    url = from_env(url_env) if url_env else t.get("url", str, "").strip()
    if not url_env:
        if not url:
            raise t.fail("url", "is required (or url_env, naming the environment variable "
                         "that holds it)")
        problem = _url_problem(url)
        if problem:
            raise t.fail("url", problem)
    elif url and _url_problem(url):  # the variable's value is not shown: it may be secret
        raise t.fail("url_env", f"${url_env} does not hold an http(s) URL")
    d = ChannelSettings(name=name, kind=kind)
    allowed = {"webhook": {"headers", "secret_env"}, "matrix": {"room", "token_env"},
               "ntfy": {"topic", "token_env"}}.get(kind, set())
    for k in ("headers", "secret_env", "room", "token_env", "topic"):
        if k in t.data and k not in allowed:
            raise t.fail(k, f"is not a key of a {kind} channel")
    headers = _headers(t, from_env) if kind == "webhook" else ()
    secret_env = _env_name(t, "secret_env") if kind == "webhook" else ""
    token_env = _env_name(t, "token_env", required=kind == "matrix") \
        if kind in ("matrix", "ntfy") else ""
    room = t.check("room", t.get("room", str, required=True).strip(),
                   lambda r: bool(_MATRIX_ROOM.match(r)),
                   "must be a Matrix room id, such as '!abc123:example.org' (an alias "
                   "is not: the room's settings show its id)") \
        if kind == "matrix" else ""
    topic = t.check("topic", t.get("topic", str, required=True).strip(),
                    lambda v: bool(_NTFY_TOPIC.match(v)),
                    "must be 1-64 letters, digits, '-' or '_'") if kind == "ntfy" else ""
    timeout = seconds(t, "timeout", d.timeout)
    t.check("timeout", timeout, lambda v: 0 < v <= 300, "must be more than 0s and at most 300s")
    retry = duration(t, "retry", d.retry)
    retry_max = duration(t, "retry_max", max(d.retry_max, retry))
    t.check("retry_max", retry_max, lambda v: v >= retry, f"must be at least retry ({retry}s)")
    return ChannelSettings(
        name=name, kind=kind, url=url, url_env=url_env, headers=headers,
        secret_env=secret_env, token_env=token_env, room=room, topic=topic, timeout=timeout,
        attempts=positive(t, "attempts", d.attempts), retry=retry, retry_max=retry_max,
        per_minute=positive(t, "per_minute", d.per_minute),
        batch=duration(t, "batch", d.batch, minimum=0),
        max_alerts=t.check("max_alerts", positive(t, "max_alerts", d.max_alerts),
                           lambda v: v <= 40, "must be at most 40 (what chat apps show)"),
        secret=from_env(secret_env), token=from_env(token_env), missing=tuple(missing))


def _url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        return f"is not a URL: {exc}"
    if parts.scheme not in ("http", "https") or not host:
        return "must be an http(s) URL"
    if any(c.isspace() or ord(c) < 32 for c in url):
        return "must not contain spaces or control characters"
    return None


def _headers(t: Table, from_env: Any) -> tuple[tuple[str, str], ...]:
    raw = t.get("headers", dict, {})
    out: list[tuple[str, str]] = []
    for k, v in raw.items():
        key = f"headers.{k}"
        if not _HEADER_NAME.match(k):
            raise t.fail(key, "is not an HTTP header name")
        if k.lower() in RESERVED_HEADERS:
            raise t.fail(key, "is set by monitor itself (use secret_env to sign requests)")
        if not isinstance(v, str):
            raise t.fail(key, f"must be a string, not {type_name(v)}")
        if v.startswith("env:"):
            var = v[4:]
            if not _ENV_NAME.match(var):
                raise t.fail(key, "\"env:\" must be followed by an environment variable's name")
            v = from_env(var)
        if any(c in v for c in "\r\n\0"):
            raise t.fail(key, "must be one line")
        out.append((k, v))
    return tuple(out)
