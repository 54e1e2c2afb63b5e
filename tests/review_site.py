"""A review page over a real database: feeds on a local server carrying real articles
(ECB+ write-ups of the same events by different outlets, tests/fixtures/events), an
exact copy, a copy of a seed, a hostile title and a broken feed, stored by a real
``monitor run --once``; then ``monitor web`` serving it. For the web tests, the
browser tests and ``make screenshots`` (scripts/screenshots.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape
from pathlib import Path
from typing import Any

from conftest import LocalServer, Route
from helpers import FIXTURES, SEEDS, Entry, cli, rss, write_config

HOSTILE = "<script>alert('owned')</script> \"Quoted\" & <b>bold</b> claims"
EVENTS = {  # event id -> how many of its write-ups, spread over the feeds
    "24_ecb": 4, "20_ecb": 3, "35_ecb": 3, "4_ecbplus": 3, "1_ecb": 2, "29_ecb": 2,
}
FEEDS = ("Wire", "Courier", "Herald")
RULES = [
    {"name": "Heists", "query": "diamond OR jewel* OR heist", "recipients": ["desk@example.org"],
     "notify": ["desk-room"]},
    {"name": "Earthquakes", "query": "earthquake OR quake", "recipients": ["desk@example.org"]},
    {"name": "Arrests", "query": '"suspicion of DUI" OR arrested',
     "recipients": ["sports@example.org"]},
]
# The Heists rule's chat room: nothing listens on port 9, so its messages wait to be
# retried, with the reason, on the Digests page.
CHANNELS = [{"name": "desk-room", "kind": "slack", "url": "http://127.0.0.1:9/hooks/T0/SECRET"}]


def _title(text: str) -> str:
    first = text.strip().split("\n", 1)[0]
    words = first.split()
    return " ".join(words[:12]) + ("…" if len(words) > 12 else "")


def _page(title: str, text: str) -> bytes:
    paras = "".join(f"<p>{escape(p)}</p>" for p in text.split("\n") if p.strip())
    return (f"<html><head><title>{escape(title)}</title></head><body><article>"
            f"<h1>{escape(title)}</h1>{paras}</article></body></html>").encode()


def build(server: LocalServer, tmp: Path, db_url: str, *, now: datetime | None = None,
          web: dict[str, object] | None = None, listen: str = "") -> Path:
    """Serve the feeds, write the config, run ``run --once``. Returns the config."""
    now = now or datetime.now(UTC)
    docs = [json.loads(line) for line in
            (FIXTURES / "events" / "ecbplus_sample.jsonl").read_text("utf-8").splitlines()]
    by_event: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        by_event.setdefault(d["event_id"], []).append(d)
    entries: dict[str, list[Entry]] = {f: [] for f in FEEDS}
    n = 0
    for event, count in EVENTS.items():
        for k, d in enumerate(by_event[event][:count]):
            feed = FEEDS[k % len(FEEDS)]
            title = _title(d["text"])
            path = f"/{feed.lower()}/{d['doc_id']}.html"
            server.routes[path] = Route(body=_page(title, d["text"]))
            when = now - timedelta(hours=2 + n * 3)
            n += 1
            entries[feed].append(Entry(title=title, link=server.url(path), guid=d["doc_id"],
                                       published=format_datetime(when, usegmt=True)))
    # Herald runs Wire's first heist report word for word: an exact copy.
    first = entries["Wire"][0]
    assert first.link is not None
    copy_path = "/herald/copy.html"
    server.routes[copy_path] = server.routes[first.link.removeprefix(server.url(""))]
    entries["Herald"].append(Entry(title=first.title, link=server.url(copy_path),
                                   guid="herald-copy", published=first.published))
    # A copy of seed 000, and a title written to break a page that does not escape.
    seed_title, _, seed_text = (SEEDS / "000_eb13740ee894f634.txt").read_text(
        encoding="utf-8").strip().partition("\n")
    entries["Courier"].append(Entry(title=seed_title.strip("# "), link=None, guid="seed-copy",
                                    content=seed_text, published=format_datetime(
                                        now - timedelta(hours=1), usegmt=True)))
    hostile_path = "/herald/hostile.html"
    hostile_text = ("A jewel theft was reported overnight, the police said; " * 8).strip()
    server.routes[hostile_path] = Route(body=_page("hostile", hostile_text))
    # Feeds' titles are HTML (monitor keeps their text): escaped once more, it is stored
    # as written, tags and all.
    entries["Herald"].append(Entry(title=escape(HOSTILE, quote=False),
                                   link=server.url(hostile_path), guid="hostile",
                                   published=format_datetime(now - timedelta(minutes=30),
                                                             usegmt=True)))
    feeds = []
    for feed in FEEDS:
        server.routes[f"/{feed.lower()}.rss"] = Route(body=rss(feed, entries[feed]),
                                                      content_type="application/rss+xml")
        feeds.append({"name": feed, "url": server.url(f"/{feed.lower()}.rss"),
                      **({"category": "Wires"} if feed == "Wire" else {})})
    server.routes["/broken.rss"] = Route(body=b"upstream exploded", status=500)
    feeds.append({"name": "Broken Gazette", "url": server.url("/broken.rss")})
    config = write_config(tmp / "monitor.toml", db_url=db_url, feeds=feeds, rules=RULES,
                          channels=CHANNELS,
                          extract={"workers": 1}, daemon={"listen": listen},
                          digest={"timezone": "UTC"}, extra={"web": web} if web else None)
    code, out = cli(config, "run", "--once")
    assert code == 0, out
    return config


@contextmanager
def serving(config: Path, log: Path, *args: str, env: dict[str, str] | None = None,
            listen: str = "127.0.0.1:0", timeout: float = 60) -> Iterator[str]:
    """``monitor web`` on a free port of ``listen``'s address: yields its base URL (on
    127.0.0.1); stopped after."""
    import os

    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "--config", str(config), "web",
             "--listen", listen, *args],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + timeout
        while True:
            found = re.findall(r"serving http://[^/\s]+:(\d+)/healthz", log.read_text())
            if found:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"monitor web did not start:\n{log.read_text()}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{found[0]}"
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
