"""Builders shared by tests: config files and feeds in the documented formats."""

from __future__ import annotations

import gzip
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from sqlalchemy import select

from monitor.cli import main

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SEEDS = ROOT / "seeds"
PAGES = FIXTURES / "pages"


def cli(config: Path, *args: str) -> tuple[int, str]:
    """Run ``monitor --config CONFIG ARGS...`` in-process: (exit code, standard output)."""
    out = io.StringIO()
    code = main(["--config", str(config), *args], out=out)
    return code, out.getvalue()


def run_daemon(config: Path, until: Callable[[], bool], timeout: float,
               linger: float = 0.0) -> tuple[int, str, bool]:
    """Start ``monitor run`` as a process, wait until ``until()`` holds (at most
    ``timeout`` seconds) and ``linger`` seconds more, then send SIGTERM. Returns its exit
    code, its stderr, and whether it was still running when the signal was sent."""
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "--config", str(config), "run"],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not until() and proc.poll() is None:
            time.sleep(0.1)
        time.sleep(linger)
        running = proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, err, running


class Daemon:
    """A ``monitor run`` process whose log (stderr) goes to a file that tests can read
    while it runs."""

    def __init__(self, config: Path, *args: str, log: Path) -> None:
        self.log_path = log
        self._log = log.open("w", encoding="utf-8")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "--config", str(config), "run", *args],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self._log, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8")

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Poll ``predicate`` until it holds or ``timeout`` passes (or the process ends)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            if self.proc.poll() is not None:
                return predicate()
            time.sleep(0.1)
        return False

    def wait_for_log(self, text: str, timeout: float) -> bool:
        return self.wait_for(lambda: text in self.log(), timeout)

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then wait for the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self._log.close()


def healthz(base: str) -> tuple[int, dict[str, Any]]:
    """A daemon's /healthz at ``base``: its status code and its JSON."""
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def json_lines(config: Path, *args: str) -> list[dict[str, Any]]:
    """The objects a ``--json`` listing printed, one per line; the command must succeed."""
    code, out = cli(config, *args, "--json")
    assert code == 0, out
    return [json.loads(line) for line in out.splitlines()]


def write_config(
    path: Path,
    *,
    db_url: str,
    feeds: list[dict[str, object]],
    seeds: Path = SEEDS,
    fetch: dict[str, object] | None = None,
    extract: dict[str, object] | None = None,
    dedup: dict[str, object] | None = None,
    rules: list[dict[str, object]] | None = None,
    alerts: dict[str, object] | None = None,
    digest: dict[str, object] | None = None,
    smtp: dict[str, object] | None = None,
    poll: dict[str, object] | None = None,
    daemon: dict[str, object] | None = None,
    logging: dict[str, object] | None = None,
    extra: dict[str, dict[str, object]] | None = None,
    channels: list[dict[str, object]] | None = None,
) -> Path:
    """Write a config file with the documented keys. Returns its path. Without ``rules``,
    the one rule of the default config: "Venezuela leadership". Every test server is
    127.0.0.1, so there is no pause between requests to one host unless ``fetch`` sets
    ``host_delay``, and article links to it are admitted (the opt-in the SSRF guard asks
    for) unless ``fetch`` sets ``allow_private``; a page that fails is not tried again
    unless ``fetch`` sets ``page_attempts``; the daemon serves no HTTP unless
    ``daemon`` sets ``listen``; articles of any age alert (the fixtures are dated 2026-01)
    unless ``alerts`` is given (``{}``: the default ``max_age``)."""
    digest = {"schedule": "0 7 * * *", "timezone": "America/Caracas",
              "sender": "monitor@example.org", **(digest or {})}
    smtp = {"host": "localhost", "port": 25, "security": "none", "username": "",
            "password_env": "MONITOR_SMTP_PASSWORD", **(smtp or {})}
    fetch = {"timeout": "10s", "connect_timeout": "5s", "host_delay": 0,
             "allow_private": ["127.0.0.1"], "page_attempts": 1, **(fetch or {})}
    daemon = {"listen": "", **(daemon or {})}
    alerts = {"max_age": 0} if alerts is None else alerts
    extract = {"workers": 2, **(extract or {})}
    lines = [
        "[database]", f"url = {_toml(db_url)}", "",
        "[seeds]", f"path = {_toml(str(seeds))}", "",
        "[fetch]", *(f"{k} = {_toml(v)}" for k, v in fetch.items()), "",
        "[extract]", *(f"{k} = {_toml(v)}" for k, v in extract.items()), "",
        "[dedup]", *(f"{k} = {_toml(v)}" for k, v in (dedup or {}).items()), "",
        "[poll]", *(f"{k} = {_toml(v)}" for k, v in (poll or {}).items()), "",
        "[daemon]", *(f"{k} = {_toml(v)}" for k, v in daemon.items()), "",
        "[alerts]", *(f"{k} = {_toml(v)}" for k, v in alerts.items()), "",
        "[logging]", *(f"{k} = {_toml(v)}" for k, v in (logging or {}).items()), "",
    ]
    for f in feeds:
        lines += ["[[feeds]]", *(f"{k} = {_toml(v)}" for k, v in f.items()), ""]
    if rules is None:
        rules = [{"name": "Venezuela leadership", "query": 'Maduro OR "Delcy Rodriguez"',
                  "recipients": ["desk@example.org"]}]
    for r in rules:
        lines += ["[[rules]]", *(f"{k} = {_toml(v)}" for k, v in r.items()), ""]
    for c in channels or []:
        lines += ["[[channels]]", *(f"{k} = {_toml(v)}" for k, v in c.items()), ""]
    lines += ["[digest]", *(f"{k} = {_toml(v)}" for k, v in digest.items()), ""]
    lines += ["[smtp]", *(f"{k} = {_toml(v)}" for k, v in smtp.items()), ""]
    for section, values in (extra or {}).items():  # any other section, as given
        lines += [f"[{section}]", *(f"{k} = {_toml(v)}" for k, v in values.items()), ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _toml(v: object) -> str:
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml(k)} = {_toml(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return json.dumps(str(v))  # a JSON string is a valid TOML basic string


@dataclass
class Entry:
    title: str
    link: str | None
    guid: str | None = None
    summary: str = ""
    content: str = ""
    published: str = "Tue, 06 Jan 2026 10:00:00 GMT"


def rss(title: str, entries: list[Entry], language: str = "en") -> bytes:
    items = []
    for e in entries:
        parts = [f"<title>{escape(e.title)}</title>"]
        if e.link:
            parts.append(f"<link>{escape(e.link)}</link>")
        if e.guid:
            parts.append(f'<guid isPermaLink="false">{escape(e.guid)}</guid>')
        if e.summary:
            parts.append(f"<description>{escape(e.summary)}</description>")
        if e.content:
            parts.append(f"<content:encoded>{escape(e.content)}</content:encoded>")
        parts.append(f"<pubDate>{e.published}</pubDate>")
        items.append("<item>" + "".join(parts) + "</item>")
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">'
        f"<channel><title>{escape(title)}</title><link>http://example.org/</link>"
        f"<description>test feed</description><language>{language}</language>"
        + "".join(items) + "</channel></rss>"
    ).encode("utf-8")


def atom(title: str, entries: list[Entry]) -> bytes:
    out = []
    for i, e in enumerate(entries):
        link = f'<link rel="alternate" href="{escape(e.link)}"/>' if e.link else ""
        out.append(
            f"<entry><title>{escape(e.title)}</title>{link}"
            f"<id>{escape(e.guid or f'urn:test:{title}:{i}')}</id>"
            "<updated>2026-01-06T10:00:00Z</updated>"
            + (f'<summary type="html">{escape(e.summary)}</summary>' if e.summary else "")
            + (f'<content type="html">{escape(e.content)}</content>' if e.content else "")
            + "</entry>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>{escape(title)}</title><id>urn:test:{escape(title)}</id>"
        "<updated>2026-01-06T10:00:00Z</updated>" + "".join(out) + "</feed>"
    ).encode("utf-8")


@dataclass(frozen=True)
class Page:
    key: str  # sha256 of the page, its file name
    url: str  # where the page originally lived
    body: str  # ground-truth article body
    html_gz: bytes


def pages() -> list[Page]:
    truth = json.loads((PAGES / "ground-truth.json").read_text(encoding="utf-8"))
    return [
        Page(key, truth[key]["url"], truth[key]["articleBody"],
             (PAGES / f"{key}.html.gz").read_bytes())
        for key in sorted(truth)
    ]


def page_html(page: Page) -> bytes:
    return gzip.decompress(page.html_gz)


@dataclass(frozen=True)
class Story:
    """An item to store directly (no fetching), for tests of what follows the pipeline:
    rules match it as the pipeline would; ``copy_of`` makes it another outlet's copy."""

    key: str
    feed: str
    title: str
    url: str
    text: str
    published_at: str | None = None  # ISO 8601
    copy_of: str | None = None


def store_stories(config: Path, stories: list[Story], now: datetime) -> dict[str, int]:
    """Store ``stories`` in the config's database (schema, feeds and rules synced
    first) and the alerts the config's rules raise on them, the way the pipeline
    does. Returns item ids by story key."""
    from monitor import db, store
    from monitor.config import load_settings
    from monitor.models import Feed
    from monitor.pipeline.context import RuleBook
    from monitor.stories.joining import Stories, give_stories

    settings = load_settings(config)
    engine = db.make_engine(settings.database.url)
    try:
        db.upgrade(engine)
        with db.session_factory(engine).begin() as s:
            store.sync_feeds(s, settings.feeds, now)
            store.sync_rules(s, settings.rules, now)
            feed_ids = {name: id_ for name, id_ in s.execute(select(Feed.name, Feed.id))}
            book = RuleBook.build(settings.rules, store.rule_ids(s, [r.name for r in settings.rules]))
            ids: dict[str, int] = {}
            for st in stories:
                original = ids.get(st.copy_of) if st.copy_of else None
                new = store.NewItem(
                    feed_id=feed_ids[st.feed], guid=st.url, url=st.url, final_url=st.url,
                    canonical_url=st.url, title=st.title, author=None,
                    published_at=datetime.fromisoformat(st.published_at) if st.published_at else None,
                    fetched_at=now, language="en", site_name=None, text=st.text,
                    text_source="page", text_hash=None, page_status=200, page_error=None,
                    duplicate_of=store.Ref("item", original, None) if original else None,
                    dedup_method="near" if original else None,
                    similarity=0.8 if original else None)
                ids[st.key] = store.add_item(s, new, now)
                if original is None:
                    hits = book.matcher.match(st.title, st.text)
                    store.add_alerts(s, ids[st.key], [book.alert(h) for h in hits], now)
        if settings.stories.enabled:  # as the pipeline would have, in the order stored
            give_stories(db.session_factory(engine), Stories(settings.stories), lambda: now)
        return ids
    finally:
        engine.dispose()


WORDS = ("harbour council grain tariff pipeline envoy ministry ballot drought refinery "
         "court strike senate border railway vaccine budget summit election reactor "
         "currency festival flood cabinet protest treaty quarry orchestra glacier").split()


def article(i: int, paragraphs: int = 5) -> bytes:
    """A page whose text is its own: no two are near-duplicates."""
    rng = random.Random(i)
    body = "".join(
        "<p>" + " ".join(rng.choice(WORDS) + str(rng.randrange(1000)) for _ in range(40))
        + ".</p>" for _ in range(paragraphs))
    return (f"<html><head><title>Story {i}</title></head><body><article><h1>Story {i}</h1>"
            f"{body}</article></body></html>").encode()
