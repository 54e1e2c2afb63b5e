"""``feeds import`` and ``feeds export``: the config's feeds from and to OPML, the list
every feed reader reads and writes (monitor.opml); ``feeds discover``: a site's feeds,
ready to paste (monitor.ingest.discovery)."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO
from urllib.parse import urlsplit

from monitor import opml
from monitor.cli.common import EXIT_FAILURE, EXIT_OK
from monitor.config import FEED_URL, FeedSettings, Settings, load_settings
from monitor.errors import ConfigError, InputError, OpmlError

if TYPE_CHECKING:
    from monitor.ingest import discovery as discovery_types

MAX_OPML_BYTES = 20 * 1024 * 1024


def cmd_feeds_export(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    """Every feed of the config as OPML 2.0, folders by category."""
    listed = [opml.Listed(f.name, f.url, f.category) for f in settings.feeds]
    out.write(opml.write(listed, f"monitor feeds ({settings.path.name})",
                         datetime.now(UTC)).decode("utf-8"))
    return EXIT_OK


def cmd_feeds_import(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    """The ``[[feeds]]`` tables for the OPML file's feeds the config lacks: printed, or
    with ``--write`` appended to the config (its comments and layout kept)."""
    path = Path(args.file)
    try:
        if path.stat().st_size > MAX_OPML_BYTES:
            raise InputError(f"{path}: over {MAX_OPML_BYTES // 2**20} MiB, no feed list is")
        outlines = opml.read(path.read_bytes())
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from None
    except OpmlError as exc:
        raise OpmlError(f"{path}: {exc}") from None
    plan = plan_import(settings.feeds, outlines)
    tables = "".join(feed_table(f) for f in plan.new)
    head = f"# {plan.summary(path.name)}\n"
    if not args.write:
        out.write(head + ("\n" + tables if tables else ""))
        return EXIT_OK
    if plan.new:
        append_to_config(settings.path, f"\n{head}{tables}")
    out.write(f"{plan.summary(path.name)}; "
              + (f"{len(plan.new)} added to {settings.path}\n" if plan.new
                 else f"{settings.path} unchanged\n"))
    return EXIT_OK


@dataclass
class ImportPlan:
    """What an OPML file adds to the config's feeds."""

    new: list[opml.Listed] = field(default_factory=list)
    present: int = 0  # already in the config
    repeated: int = 0  # a URL the file lists again
    refused: list[str] = field(default_factory=list)  # why each outline was left out

    def summary(self, source: str) -> str:
        parts = [f"{len(self.new)} new feed{'' if len(self.new) == 1 else 's'} from {source}",
                 f"{self.present} already in the config"]
        if self.repeated:
            parts.append(f"{self.repeated} listed twice in the file")
        if self.refused:
            parts.append(f"{len(self.refused)} left out ({'; '.join(self.refused[:5])}"
                         + (", …" if len(self.refused) > 5 else "") + ")")
        return ", ".join(parts)


def plan_import(configured: tuple[FeedSettings, ...],
                outlines: list[opml.Outline]) -> ImportPlan:
    plan = ImportPlan()
    urls = {f.url for f in configured}
    names = {f.name for f in configured}
    imported: set[str] = set()
    for o in outlines:
        if not FEED_URL.match(o.url) or any(c.isspace() for c in o.url):
            plan.refused.append(f"{o.url[:80]!r} is not an http(s) URL")
            continue
        if o.url in urls:
            if o.url in imported:
                plan.repeated += 1
            else:
                plan.present += 1
            continue
        name = _unique(o.title or urlsplit(o.url).hostname or o.url, names)
        urls.add(o.url)
        imported.add(o.url)
        names.add(name)
        plan.new.append(opml.Listed(name, o.url, o.category))
    return plan


def _unique(name: str, taken: set[str]) -> str:
    """``name``, or "name (2)", "name (3)" … when a feed has it already."""
    if name not in taken:
        return name
    n = 2
    while f"{name} ({n})" in taken:
        n += 1
    return f"{name} ({n})"


def toml_string(value: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, but for DEL, which TOML wants
    escaped and JSON does not."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def feed_table(f: opml.Listed) -> str:
    lines = ["[[feeds]]", f"name = {toml_string(f.name)}", f"url = {toml_string(f.url)}"]
    if f.category:
        lines.append(f"category = {toml_string(f.category)}")
    return "\n".join(lines) + "\n\n"


def append_to_config(config: Path, text: str) -> None:
    """Append ``text`` to the config, only if the result still loads: written beside
    it first and checked, then moved over it (a crash leaves the old file whole)."""
    try:
        old = config.read_bytes()
        mode = config.stat().st_mode & 0o7777
    except OSError as exc:
        raise InputError(f"{config}: {exc.strerror or exc}") from None
    sep = b"" if not old or old.endswith(b"\n") else b"\n"
    fd, tmp_name = tempfile.mkstemp(prefix=f".{config.name}.", dir=config.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(old + sep + text.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        tmp.chmod(mode)
        try:
            load_settings(tmp)
        except ConfigError as exc:
            raise ConfigError(str(config), exc.key, f"the imported feeds would break it, so it "
                              f"was left unchanged: {exc.reason}") from None
        tmp.replace(config)
    finally:
        tmp.unlink(missing_ok=True)


DISCOVER_ACCEPT = ("application/rss+xml, application/atom+xml, application/feed+json, "
                   "text/html;q=0.9, application/xml;q=0.8, text/xml;q=0.8, */*;q=0.5")


def cmd_feeds_discover(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    """The feeds found from ``args.url``, as [[feeds]] tables with what each holds."""
    import asyncio


    url = args.url.strip()
    if not FEED_URL.match(url):
        url = "https://" + url  # "example.org": as a browser would
    if not FEED_URL.match(url) or any(c.isspace() for c in url):
        raise InputError(f"{args.url!r} is not a site's address (give https://…)")
    started = time.monotonic()
    result = asyncio.run(_discover(settings, url, args.max_requests, args.timeout))
    took = time.monotonic() - started
    names = {f.name for f in settings.feeds}
    configured = {f.url: f.name for f in settings.feeds}
    out.write(f"# {len(result.found)} feed{'' if len(result.found) == 1 else 's'} found from "
              f"{url} ({result.requests} request{'' if result.requests == 1 else 's'}, "
              f"{took:.1f} s{'; stopped at the limit' if result.out_of_budget else ''})\n")
    for f in result.found:
        latest = f.latest
        what = (f"{_FORMATS.get(f.feed.version, f.feed.version or 'feed')}, "
                f"{len(f.feed.entries)} entr{'y' if len(f.feed.entries) == 1 else 'ies'}, "
                + (f"latest {latest:%Y-%m-%d %H:%M} UTC" if latest else "no dates"))
        out.write(f"\n# {_line(f.feed.title) or '(untitled)'}: {what} ({f.how})\n")
        if f.url in configured:
            out.write(f"# already in the config as {configured[f.url]!r}\n")
            continue
        name = _unique(_line(f.feed.title) or urlsplit(f.url).hostname or f.url, names)
        names.add(name)
        out.write(feed_table(opml.Listed(name, f.url)).rstrip("\n") + "\n")
    if result.tried and (args.verbose or not result.found):
        out.write("\n# tried, no feed:\n")
        for tried, why in result.tried:
            out.write(f"#   {_line(tried)}: {_line(why)}\n")
    return EXIT_OK if result.found else EXIT_FAILURE


def _line(text: str | None) -> str:
    """On one line (a comment of the output must stay one)."""
    return " ".join((text or "").split())


_FORMATS = {"rss20": "RSS 2.0", "rss10": "RSS 1.0", "rss090": "RSS 0.90", "rss091u": "RSS 0.91",
            "rss091n": "RSS 0.91", "rss092": "RSS 0.92", "rss093": "RSS 0.93",
            "rss094": "RSS 0.94", "atom10": "Atom 1.0", "atom03": "Atom 0.3",
            "json1": "JSON Feed 1.0", "json11": "JSON Feed 1.1", "json": "JSON Feed"}


async def _discover(settings: Settings, url: str, max_requests: int,
                    seconds: float) -> discovery_types.Discovered:
    from monitor.ingest import discovery
    from monitor.ingest.fetcher import Fetcher

    async with Fetcher(settings.fetch) as fetcher:
        async def fetch(target: str, trusted: bool) -> tuple[str, bytes, str | None]:
            got = await fetcher.fetch(target, max_bytes=settings.fetch.max_feed_bytes,
                                      accept=DISCOVER_ACCEPT, trusted=trusted)
            return got.final_url, got.body, got.content_type

        return await discovery.discover(fetch, url, max_requests=max_requests,
                                        seconds=seconds)
