"""Hostile and broken input, served by a real local server to `monitor run --once`.

Each case is a feed of its own. A first run stores one good entry from every feed;
then every feed turns bad in its own way, and a second run must record each case on
its feed with a clear reason (or, where the input is odd but usable, store it
correctly), go on with the others, and lose nothing stored by the first run.
Runs on SQLite and on the local PostgreSQL.
"""

from __future__ import annotations

import functools
import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from conftest import LocalServer, Route
from helpers import Entry, cli, json_lines, rss, write_config

RSS = "application/rss+xml"
BOMB_BYTES = 64 * 1024 * 1024  # decoded; ~64 KB on the wire
CAP = 1024 * 1024  # [fetch] max_feed_bytes in these tests


@functools.cache
def bomb() -> bytes:
    return gzip.compress(b"\0" * BOMB_BYTES, compresslevel=9)


def item(title: str, guid: str, extra: str = "", link: str | None = None) -> str:
    link_tag = f"<link>{link}</link>" if link else ""
    return (f"<item><title>{title}</title>{link_tag}<guid isPermaLink=\"false\">{guid}</guid>"
            f"<description>{title}: the full text of this story, long enough to be kept. "
            f"{'Some more words about the events of the day. ' * 6}</description>{extra}</item>")


def channel(items: str, prolog: str = '<?xml version="1.0" encoding="utf-8"?>',
            doctype: str = "") -> str:
    return f'{prolog}{doctype}<rss version="2.0"><channel><title>Hostile</title>{items}</channel></rss>'


LAUGHS = ('<!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa">'
          + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
          + "]>")


def bad_routes(server: LocalServer) -> dict[str, Route]:
    """The second round: every case's route. The good feed gains an entry."""
    xxe = (f'<!DOCTYPE rss [<!ENTITY file SYSTEM "file:///etc/passwd">'
           f'<!ENTITY remote SYSTEM "{server.url("/evil.dtd")}">]>')
    return {
        "good": Route(content_type=RSS, body=rss("Good", [
            Entry("Good first", None, guid="good-1", content="The first good story. " * 20),
            Entry("Good second", None, guid="good-2", content="The second good story. " * 20)])),
        "malformed": Route(content_type=RSS, body=b'<?xml version="1.0"?>\x00\x01<<rss <<< &&& >'),
        "html": Route(body=b"<!doctype html><html><head><title>Home</title></head>"
                           b"<body><h1>Welcome</h1><p>Not a feed at all.</p></body></html>"),
        "empty": Route(content_type=RSS, body=b""),
        "over_cap": Route(content_type=RSS, body=channel(item("Big", "big", "x" * (2 * CAP))).encode()),
        "gzip_bomb": Route(content_type=RSS, body=bomb(), headers={"Content-Encoding": "gzip"}),
        "laughs": Route(content_type=RSS, body=channel(item("Laugh &j;", "laugh"), doctype=LAUGHS).encode()),
        "xxe": Route(content_type=RSS, body=channel(
            item("Entities &file; &remote;", "xxe-2")).replace(
                '<?xml version="1.0" encoding="utf-8"?>',
                '<?xml version="1.0" encoding="utf-8"?>' + xxe).encode()),
        "cp1251": Route(content_type=RSS, body=channel(
            item("Москва ответила Каракасу", "ru-2"),
            prolog='<?xml version="1.0" encoding="windows-1251"?>').encode("cp1251")),
        # The charset only in the HTTP header, none in the document.
        "koi8r": Route(content_type=f"{RSS}; charset=koi8-r", body=channel(
            item("Заявление МИД России", "koi-2"), prolog='<?xml version="1.0"?>').encode("koi8-r")),
        "shift_jis": Route(content_type=RSS, body=channel(
            item("東京で会談", "jp-2"),
            prolog='<?xml version="1.0" encoding="Shift_JIS"?>').encode("shift_jis")),
        "bom": Route(content_type=RSS, body=b"\xef\xbb\xbf" + channel(item("Après la crise", "bom-2"))
                     .encode()),
        "utf16": Route(content_type=RSS, body=channel(
            item("Ünïcödé sixteen", "u16-2"),
            prolog='<?xml version="1.0" encoding="utf-16"?>').encode("utf-16")),
        # Declared UTF-8, really windows-1251: usable, but the words come out wrong.
        "wrong_charset": Route(content_type=f"{RSS}; charset=utf-8", body=channel(
            item("Москва", "wrong-2"), prolog='<?xml version="1.0" encoding="utf-8"?>')
            .encode("cp1251")),
        "dates": Route(content_type=RSS, body=channel(
            item("Bad date", "date-bad", "<pubDate>not a date at all</pubDate>")
            + item("Impossible date", "date-imp", "<pubDate>Mon, 31 Feb 2025 99:99:99 +9999</pubDate>")
            + item("Future date", "date-future", "<pubDate>Fri, 01 Jan 2100 00:00:00 GMT</pubDate>")
            + item("Good date", "date-good", "<pubDate>Tue, 06 Jan 2026 10:00:00 GMT</pubDate>")).encode()),
        "no_link_title": Route(content_type=RSS, body=channel(
            "<item><description>An entry with no title, no link and no guid, "
            + "only words about the day. " * 8 + "</description></item>"
            + "<item><title>Only a title</title></item>").encode()),
        "dup_guids": Route(content_type=RSS, body=channel(
            item("First with the guid", "same-guid") + item("Second with the guid", "same-guid")
            + item("Third with the guid", "same-guid")).encode()),
        "redirect_loop": Route(status=302, headers={"Location": "/feeds/redirect_loop"}),
        "not_found": Route(status=404, body=b"gone"),
        "server_error": Route(status=500, body=b"oops"),
        "rate_limited": Route(status=429, headers={"Retry-After": "3600"}),
        "never_answers": Route(content_type=RSS, body=rss("Late", []), delay=6),
        "trickle": Route(content_type=RSS, body=rss("Trickle", []), trickle=0.05),
    }


def first_routes(names: list[str]) -> dict[str, Route]:
    """The first round: every feed serves one good entry."""
    routes = {n: Route(content_type=RSS, body=channel(item(f"{n} first", f"{n}-1")).encode())
              for n in names}
    routes["good"] = Route(content_type=RSS, body=rss("Good", [
        Entry("Good first", None, guid="good-1", content="The first good story. " * 20)]))
    return routes


def state(config: Path) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in json_lines(config, "feeds", "list")}


def stored(config: Path) -> list[dict[str, Any]]:
    return json_lines(config, "items", "list", "--limit", "1000")


def test_bad_input_matrix(server: LocalServer, db_url: str, tmp_path: Path) -> None:
    names = [*bad_routes(server)]
    extra = {"tls": "https://127.0.0.1:{port}/feeds/tls", "dns": "http://no-such-host.invalid/feed"}
    config = write_config(
        tmp_path / "m.toml", db_url=db_url,
        feeds=[{"name": n, "url": server.url(f"/feeds/{n}")} for n in names]
        + [{"name": n, "url": u.format(port=server.port)} for n, u in extra.items()],
        fetch={"timeout": "2s", "connect_timeout": "2s", "max_feed_bytes": CAP, "concurrency": 32,
               "per_host": 32})
    for name, route in first_routes(names).items():
        server.routes[f"/feeds/{name}"] = route
    code, out = cli(config, "run", "--once")
    assert code == 0, out
    before = {(i["feed"], i["title"]) for i in stored(config)}
    assert len(before) == len(names), out

    for name, route in bad_routes(server).items():
        server.routes[f"/feeds/{name}"] = route
    started = datetime.now(UTC)
    code, out = cli(config, "run", "--once")
    assert code == 0, out
    feeds = state(config)
    items = stored(config)
    titles = {(i["feed"], i["title"]) for i in items}

    # Nothing stored by the first run is lost, and the good feed went on.
    assert before <= titles
    assert ("good", "Good second") in titles
    assert feeds["good"]["last_error"] is None

    def failed(name: str, *reason: str, times: int = 1) -> None:
        f = feeds[name]
        assert f["consecutive_failures"] == times, (name, f)
        assert f["last_error"] and all(r in f["last_error"] for r in reason), (name, f["last_error"])
        assert f["next_poll_at"], name  # never given up

    failed("malformed", "not well-formed")
    failed("html", "HTML page, not a feed")
    failed("empty", "empty body")
    failed("over_cap", "cap")
    failed("gzip_bomb", f"over the {CAP}-byte cap")
    failed("laughs", "entity-expansion")
    failed("redirect_loop", "redirects")
    failed("not_found", "HTTP 404")
    failed("server_error", "HTTP 500")
    failed("rate_limited", "HTTP 429", "Retry-After: 3600")
    failed("never_answers", "within 2s")
    failed("trickle", "within 2s")  # a deadline on the whole answer, not per read
    failed("tls", "TLS", times=2)  # these two failed in the first run too
    failed("dns", "DNS", times=2)
    assert feeds["not_found"]["last_status"] == 404
    assert feeds["server_error"]["last_status"] == 500
    # Retry-After: the next attempt waits the hour the server asked for (and its jitter).
    retry = datetime.fromisoformat(feeds["rate_limited"]["next_poll_at"])
    assert retry - started >= timedelta(seconds=3600 * 0.9), retry

    # Odd but usable input is stored, and stored right.
    for name, title in [("cp1251", "Москва ответила Каракасу"), ("koi8r", "Заявление МИД России"),
                        ("shift_jis", "東京で会談"), ("bom", "Après la crise"),
                        ("utf16", "Ünïcödé sixteen")]:
        assert (name, title) in titles, (name, sorted(t for f, t in titles if f == name))
        assert feeds[name]["last_error"] is None
    wrong = [t for f, t in titles if f == "wrong_charset" and t != "wrong_charset first"]
    assert len(wrong) == 1 and "Москва" not in wrong[0]  # stored, if garbled: nothing crashed
    assert feeds["wrong_charset"]["last_error"] is None

    # External entities are neither read from disk nor fetched.
    xxe = [i for i in items if i["feed"] == "xxe" and i["title"] != "xxe first"]
    assert len(xxe) == 1 and xxe[0]["title"].startswith("Entities"), xxe
    assert "root:" not in json.dumps(items)
    assert not server.hits("/evil.dtd")

    # Invalid and future dates are dropped; a good one is kept.
    dated = {i["title"]: i["published_at"] for i in items if i["feed"] == "dates"}
    assert dated["Bad date"] is None and dated["Impossible date"] is None
    assert dated["Future date"] is None  # 2100 would sit atop every digest
    assert datetime.fromisoformat(dated["Good date"]) == datetime(2026, 1, 6, 10, tzinfo=UTC)

    # Entries with no link or title, and duplicate GUIDs, are stored once each.
    untitled = [i for i in items if i["feed"] == "no_link_title" and i["title"] != "no_link_title first"]
    assert sorted(i["title"] or "" for i in untitled) == ["", "Only a title"], untitled
    dups = [i for i in items if i["feed"] == "dup_guids" and i["title"] != "dup_guids first"]
    assert [i["title"] for i in dups] == ["First with the guid"], dups

    # A third run changes nothing: each feed's stored items stay as they are.
    server.routes["/feeds/good"] = bad_routes(server)["good"]
    assert cli(config, "run", "--once")[0] == 0
    assert {(i["feed"], i["title"]) for i in stored(config)} == titles
