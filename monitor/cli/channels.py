"""channels list, channels retry, channels send, channels test: the alert channels and
their messages."""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, TextIO

from monitor.cli.common import EXIT_FAILURE, EXIT_OK, ago, at, dump, session_factory, stored
from monitor.config import Settings
from monitor.config.channels import require_secrets
from monitor.errors import FetchError, UsageError
from monitor.store import channels as chstore


def cmd_channels_list(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    now = datetime.now(UTC)
    names = [c.name for c in settings.channels]
    with stored(settings) as s:
        counts = chstore.channel_counts(s)
        limit = args.messages or (20 if args.name else 0)
        messages = chstore.list_messages(s, channel=args.name, limit=limit) if limit else []
    if args.name and args.name not in names and args.name not in counts:
        raise UsageError(f"no channel is called {args.name!r}: the config has "
                         f"{', '.join(names) or 'none'}")
    # Channels since removed from the config whose messages are still stored.
    gone = [n for n in sorted(set(counts) - set(names)) if args.name in (None, n)]
    shown = [c for c in settings.channels if args.name in (None, c.name)]
    if args.json:
        for c in shown:
            dump({**c.redacted(), **asdict(counts.get(c.name, chstore.ChannelCounts())),
                  "in_config": True}, out)
        for name in gone:
            dump({"name": name, **asdict(counts[name]), "in_config": False}, out)
        for m in messages:
            dump({"message": asdict(m)}, out)
        return EXIT_OK
    if not shown and not gone:
        out.write("no channels: add [[channels]] to the config and name them in a rule's "
                  "notify\n")
    notified = {c.name: [r.name for r in settings.rules if c.name in r.notify]
                for c in settings.channels}
    for c in shown:
        n = counts.get(c.name, chstore.ChannelCounts())
        out.write(f"{c.name} ({c.kind} {c.shown_url}): rules {', '.join(notified[c.name]) or '-'}"
                  + ("" if not c.missing else
                     f"; NOT READY: {', '.join('$' + v for v in c.missing)} unset") + "\n")
        out.write(_counts(n, now))
    for name in gone:
        out.write(f"{name} (no longer in the config: not delivered)\n{_counts(counts[name], now)}")
    if messages:
        out.write("messages, newest first:\n")
        for m in messages:
            out.write(_message(m, now))
    return EXIT_OK


def _counts(n: chstore.ChannelCounts, now: datetime) -> str:
    line = (f"  {n.delivered} delivered (last {ago(n.last_delivered_at, now)}), "
            f"{n.pending} pending ({n.retrying} retrying), {n.dead} dead, "
            f"{n.waiting} alerts waiting for a story's follow-up\n")
    if n.paused_until is not None and n.paused_until > now:
        line += f"  paused until {at(n.paused_until, seconds=True)} (the channel asked: 429)\n"
    if n.last_error and (n.pending or n.dead):
        line += f"  last error: {n.last_error}\n"
    if n.dead:
        line += "  dead messages are not tried again: mend the channel, then `monitor " \
                "channels retry NAME`\n"
    return line


def _message(m: chstore.MessageRow, now: datetime) -> str:
    what = "follow-up" if m.follow_up else "first news"
    story = f"story {m.story_id}" if m.story_id is not None else "no story"
    line = (f"  {m.id:>6} {m.channel} {m.state:<9} {what}, {m.alerts} alerts, {story}: "
            f"{m.story_title or '(untitled)'}\n"
            f"         made {at(m.created_at, seconds=True)}; {m.attempts} attempts; key {m.key}")
    if m.state == chstore.DELIVERED and m.delivered_at is not None:
        line += f"; delivered {at(m.delivered_at, seconds=True)} ({m.last_status})"
    elif m.state == chstore.PENDING and m.attempts:
        line += f"; next attempt {ago(m.next_attempt_at, now)}"
    if m.last_error and m.state != chstore.DELIVERED:
        line += f"\n         last error: {m.last_error}"
    return line + "\n"


def cmd_channels_retry(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    if args.name not in [c.name for c in settings.channels]:
        raise UsageError(f"no channel is called {args.name!r} in {settings.path}")
    with stored(settings, write=True) as s:
        n = chstore.retry_dead(s, args.name, datetime.now(UTC))
    out.write(f"{n} dead messages of {args.name!r} will be sent again (by a running daemon, "
              "or `monitor channels send`)\n")
    return EXIT_OK


def cmd_channels_send(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    """One delivery round now: what is due, on every channel (beside a daemon or not:
    the claims keep them apart)."""
    from monitor.clock import utcnow
    from monitor.identity import worker_id
    from monitor.ingest.fetcher import Fetcher
    from monitor.service.channel_job import ChannelJob

    require_secrets(str(settings.path), settings.channels)

    async def round_() -> Any:
        async with Fetcher(settings.fetch) as fetcher:
            with session_factory(settings) as sessions:
                return await ChannelJob(sessions, settings, fetcher, utcnow,
                                        worker_id("channels")).run()

    out.write(asyncio.run(round_()).render() + "\n")
    return EXIT_OK


def cmd_channels_test(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    """Send one sample message to a channel now (nothing is read or stored): whether its
    URL, token and secret work, before an alert depends on them."""
    import secrets

    from monitor.channels.payloads import Notice, Report, build
    from monitor.ingest.fetcher import Fetcher
    from monitor.service.channel_job import answer_error, hide

    channel = next((c for c in settings.channels if c.name == args.name), None)
    if channel is None:
        raise UsageError(f"no channel is called {args.name!r} in {settings.path}")
    require_secrets(str(settings.path), (channel,))
    now = datetime.now(UTC)
    notice = Notice(channel.name, f"monitor-test-{secrets.token_hex(8)}", None,
                    "monitor test message", False,
                    (Report(0, "(test)", 0, f"A test from monitor: channel {channel.name!r} "
                            "works", None, "monitor", None, now,
                            "If you can read this, alerts of the rules that notify this "
                            "channel will arrive here."),), now)
    request = build(channel, notice, int(now.timestamp()))

    async def send() -> Any:
        async with Fetcher(settings.fetch) as fetcher:
            return await fetcher.send(request.method, request.url, request.body,
                                      dict(request.headers), timeout=channel.timeout)

    try:
        answer = asyncio.run(send())
    except FetchError as exc:
        out.write(f"{channel.name}: not delivered: {hide(channel, exc.reason)}\n")
        return EXIT_FAILURE
    if 200 <= answer.status < 300:
        out.write(f"{channel.name}: delivered ({answer.status}) to {channel.kind} "
                  f"{channel.shown_url}\n")
        return EXIT_OK
    out.write(f"{channel.name}: not delivered: {answer_error(channel, answer)}\n")
    return EXIT_FAILURE
