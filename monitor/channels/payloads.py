"""What each kind of channel is sent (pure): a :class:`Notice` in, one HTTP request out.

A notice is one message: the first news of a story (or of one article, with stories
off), or a follow-up with the story's later reports. Its articles are listed once each,
with the rules that matched them; past ``max_alerts`` they are counted, not listed.

* ``webhook``: our JSON (see :func:`webhook_body`), signed when a secret is set:
  ``X-Monitor-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>`` with
  the Unix time in ``X-Monitor-Timestamp`` (a receiver refuses old timestamps: no replay).
* ``slack``: an incoming webhook's Block Kit message (``text`` is the notification line).
* ``mattermost``: an incoming webhook's Markdown ``text``.
* ``matrix``: ``m.notice`` with HTML, PUT to the room's send endpoint with the
  idempotency key as the transaction id: the homeserver drops a repeated attempt.
* ``ntfy``: a JSON publish (title, message, the first article as the click action).

Every request carries ``Idempotency-Key``, the same on every attempt of a message.
Everything from a feed is untrusted: escaped for each format, cut to one line and a
length, and only http(s) URLs become links.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from monitor.config.channels import ChannelSettings

TITLE_MAX = 200
SNIPPET_MAX = 300
HEADER_MAX = 150  # Slack's header block limit
EVENT = "alerts"


@dataclass(frozen=True)
class Report:
    """One alert: a rule matching an article."""

    alert_id: int
    rule: str
    item_id: int
    title: str | None
    url: str | None
    feed: str
    category: str | None
    published_at: datetime | None
    snippet: str
    terms: tuple[str, ...] = ()


@dataclass(frozen=True)
class Notice:
    """One message to one channel."""

    channel: str
    key: str  # the idempotency key: the same on every attempt
    story_id: int | None
    story_title: str | None
    follow_up: bool
    reports: tuple[Report, ...]
    created_at: datetime


@dataclass(frozen=True)
class Article:
    """A notice's article, once, with every rule that matched it."""

    item_id: int
    title: str
    url: str | None
    outlet: str  # "Feed (Category)"
    published_at: datetime | None
    rules: tuple[str, ...]
    terms: tuple[str, ...]
    snippet: str
    alert_ids: tuple[int, ...]


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


def idempotency_key(channel: str, alert_id: int) -> str:
    """The key of the message that first carries ``alert_id`` to ``channel``."""
    digest = hashlib.sha256(f"{channel}\0{alert_id}".encode()).hexdigest()[:32]
    return f"monitor-{digest}"


def articles(notice: Notice) -> list[Article]:
    """The notice's articles, in the order their first alert was raised."""
    by_item: dict[int, list[Report]] = {}
    for r in sorted(notice.reports, key=lambda r: r.alert_id):
        by_item.setdefault(r.item_id, []).append(r)
    out = []
    for item_id, reports in by_item.items():
        first = reports[0]
        outlet = _line(first.feed, 100)
        if first.category:
            outlet += f" ({_line(first.category, 100)})"
        terms = tuple(dict.fromkeys(t for r in reports for t in r.terms))
        out.append(Article(item_id=item_id, title=_line(first.title or "", TITLE_MAX) or
                           "(untitled)", url=_http(first.url), outlet=outlet,
                           published_at=first.published_at,
                           rules=tuple(dict.fromkeys(r.rule for r in reports)), terms=terms,
                           snippet=_line(first.snippet, SNIPPET_MAX),
                           alert_ids=tuple(r.alert_id for r in reports)))
    return out


def headline(notice: Notice, listed: Sequence[Article]) -> str:
    """"New story: …" or "More on: …", the story's title (else the first article's)."""
    title = _line(notice.story_title or "", TITLE_MAX) or (
        listed[0].title if listed else "(untitled)")
    return f"{'More on' if notice.follow_up else 'New story'}: {title}"


def build(channel: ChannelSettings, notice: Notice, timestamp: int) -> Request:
    """The request that delivers ``notice`` to ``channel``; ``timestamp`` (Unix seconds)
    goes into a webhook's signature."""
    every = articles(notice)
    listed, more = every[:channel.max_alerts], max(0, len(every) - channel.max_alerts)
    headers: list[tuple[str, str]] = [("Idempotency-Key", notice.key)]
    method, url = "POST", channel.url
    if channel.kind == "webhook":
        body = _json(webhook_body(notice, listed, more))
        headers += [("Content-Type", "application/json"), ("X-Monitor-Event", EVENT),
                    *channel.headers]
        if channel.secret:
            headers += [("X-Monitor-Timestamp", str(timestamp)),
                        ("X-Monitor-Signature", sign(channel.secret, timestamp, body))]
    elif channel.kind == "slack":
        body = _json(slack_body(notice, listed, more))
        headers.append(("Content-Type", "application/json"))
    elif channel.kind == "mattermost":
        body = _json({"text": mattermost_text(notice, listed, more)})
        headers.append(("Content-Type", "application/json"))
    elif channel.kind == "matrix":
        method = "PUT"
        url = (f"{channel.url.rstrip('/')}/_matrix/client/v3/rooms/{quote(channel.room, safe='')}"
               f"/send/m.room.message/{quote(notice.key, safe='')}")
        body = _json(matrix_body(notice, listed, more))
        headers += [("Content-Type", "application/json"),
                    ("Authorization", f"Bearer {channel.token}")]
    elif channel.kind == "ntfy":
        url = channel.url.rstrip("/") + "/"
        body = _json(ntfy_body(channel.topic, notice, listed, more))
        headers.append(("Content-Type", "application/json"))
        if channel.token:
            headers.append(("Authorization", f"Bearer {channel.token}"))
    else:  # pragma: no cover - config refuses other kinds
        raise ValueError(f"unknown channel kind {channel.kind!r}")
    return Request(method, url, tuple(headers), body)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of ``"<timestamp>." + body`` under ``secret``."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def webhook_body(notice: Notice, listed: Sequence[Article], more: int) -> dict[str, Any]:
    return {
        "type": "monitor.alerts",
        "version": 1,
        "id": notice.key,
        "channel": notice.channel,
        "follow_up": notice.follow_up,
        "story": None if notice.story_id is None else {
            "id": notice.story_id, "title": _line(notice.story_title or "", TITLE_MAX) or None},
        "headline": headline(notice, listed),
        "articles": [{
            "item_id": a.item_id, "title": a.title, "url": a.url, "outlet": a.outlet,
            "published_at": _iso(a.published_at), "rules": list(a.rules),
            "terms": list(a.terms), "snippet": a.snippet, "alert_ids": list(a.alert_ids),
        } for a in listed],
        "more": more,
        "created_at": _iso(notice.created_at),
    }


def slack_body(notice: Notice, listed: Sequence[Article], more: int) -> dict[str, Any]:
    head = headline(notice, listed)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(head, HEADER_MAX)}}]
    for a in listed:
        title = _slack(a.title)
        link = f"*<{_slack_url(a.url)}|{title}>*" if a.url else f"*{title}*"
        lines = [link, f"{_slack(a.outlet)} · {_when(a.published_at)} · "
                 f"rules: {_slack(', '.join(a.rules))}"]
        if a.snippet:
            lines.append(f">{_slack(a.snippet)}")
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}})
    if more:
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"and {plural(more, 'more report')} not listed"}]})
    return {"text": _slack(head), "blocks": blocks}


def mattermost_text(notice: Notice, listed: Sequence[Article], more: int) -> str:
    parts = [f"#### {_md(headline(notice, listed))}"]
    for a in listed:
        title = _md(a.title)
        link = f"**[{title}]({_md_url(a.url)})**" if a.url else f"**{title}**"
        parts.append(f"{link}\n{_md(a.outlet)} · {_when(a.published_at)} · "
                     f"rules: {_md(', '.join(a.rules))}" + (f"\n> {_md(a.snippet)}"
                                                           if a.snippet else ""))
    if more:
        parts.append(f"_and {plural(more, 'more report')} not listed_")
    return "\n\n".join(parts)


def matrix_body(notice: Notice, listed: Sequence[Article], more: int) -> dict[str, Any]:
    head = headline(notice, listed)
    plain = [head]
    rich = [f"<h4>{html.escape(head)}</h4>"]
    for a in listed:
        meta = f"{a.outlet} · {_when(a.published_at)} · rules: {', '.join(a.rules)}"
        plain.append(f"- {a.title}" + (f" <{a.url}>" if a.url else "") + f"\n  {meta}")
        title = html.escape(a.title)
        link = f'<a href="{html.escape(a.url)}">{title}</a>' if a.url else title
        rich.append(f"<p><b>{link}</b><br>{html.escape(meta)}"
                    + (f"<br><i>{html.escape(a.snippet)}</i>" if a.snippet else "") + "</p>")
    if more:
        plain.append(f"and {plural(more, 'more report')} not listed")
        rich.append(f"<p>and {plural(more, 'more report')} not listed</p>")
    return {"msgtype": "m.notice", "body": "\n".join(plain),
            "format": "org.matrix.custom.html", "formatted_body": "".join(rich)}


def ntfy_body(topic: str, notice: Notice, listed: Sequence[Article],
              more: int) -> dict[str, Any]:
    lines = [f"{a.title} ({a.outlet})" for a in listed]
    if more:
        lines.append(f"and {plural(more, 'more report')}")
    body: dict[str, Any] = {"topic": topic, "title": _cut(headline(notice, listed), HEADER_MAX),
                            "message": "\n".join(lines), "tags": ["newspaper"]}
    first = next((a.url for a in listed if a.url), None)
    if first:
        body["click"] = first
    return body


# --- text helpers ------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def _line(text: str, limit: int) -> str:
    return _cut(" ".join(_CONTROL.sub(" ", text).split()), limit)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def _http(url: str | None) -> str | None:
    if not url or any(c.isspace() for c in url):
        return None
    return url if url.lower().startswith(("http://", "https://")) else None


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "date unknown"
    m = moment.astimezone(UTC)
    return f"{m.day} {m:%b %Y, %H:%M} UTC"


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _slack(text: str) -> str:
    """Slack mrkdwn: &, < and > are its only escapes."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_url(url: str | None) -> str:
    return quote(url or "", safe=":/?#[]@!$&'()*+,;=%~")


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|<>~])")


def _md(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", text)


def _md_url(url: str | None) -> str:
    return quote(url or "", safe=":/?#@!$&'*+,;=%~")


def _json(data: dict[str, Any]) -> bytes:
    # A lone surrogate (never valid UTF-8) becomes "?" rather than failing the message.
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")
