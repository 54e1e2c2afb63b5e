"""An article page that fails for a reason that may pass is tried again, with backoff,
at the feed's later polls, even when the feed itself has not changed (304); after
``[fetch] page_attempts`` the feed's text is kept with the reason. A page that fails for
good is not retried. Runs on SQLite and on the local PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path

from conftest import LocalServer, Route
from helpers import Entry, cli, json_lines, page_html, pages, rss, write_config

SUMMARY = "The feed's own summary of the story, shorter than the article. " * 2


def setup(server: LocalServer, db_url: str, tmp_path: Path, attempts: int,
          retry: str = "1s") -> Path:
    server.routes["/f.rss"] = Route(content_type="application/rss+xml", etag='"v1"',
                                    body=rss("F", [Entry("Story", server.url("/a.html"),
                                                         guid="a", summary=SUMMARY),
                                                   Entry("Gone", server.url("/gone.html"),
                                                         guid="g", summary=SUMMARY)]))
    server.routes["/gone.html"] = Route(status=404)
    return write_config(tmp_path / "m.toml", db_url=db_url,
                        feeds=[{"name": "F", "url": server.url("/f.rss")}],
                        fetch={"page_attempts": attempts, "page_retry": retry,
                               "page_retry_max": "1m"}, poll={"jitter": 0})


def test_a_page_that_fails_twice_then_works_is_stored_from_the_page(
        server: LocalServer, db_url: str, tmp_path: Path) -> None:
    # Retries after 2 s, then 4 s: a run --once under load (up to ~3 s) stays inside
    # the window in which the second is not due yet.
    config = setup(server, db_url, tmp_path, attempts=4, retry="2s")
    server.routes["/a.html"] = Route(status=503)
    code, out = cli(config, "run", "--once")
    assert code == 0, out
    assert "1 entries wait to try their pages again" in out, out
    # The 404 is final: stored at once with the feed's text.
    assert [(i["guid"], i["page_error"]) for i in json_lines(config, "items", "list")] \
        == [("g", "HTTP 404")]

    time.sleep(2.2)  # the first retry waits 2 s
    server.routes["/a.html"] = Route(status=500)
    code, out = cli(config, "run", "--once")
    assert code == 0 and "0 parsed, 1 not modified" in out, out  # a 304: retried all the same
    assert "1 entries wait" in out, out

    time.sleep(0.5)  # the second waits 4 s: not due yet
    server.clear_log()
    assert cli(config, "run", "--once")[0] == 0
    assert server.hits("/a.html") == []

    time.sleep(3.8)
    page = pages()[0]
    server.routes["/a.html"] = Route(body=page_html(page))
    code, out = cli(config, "run", "--once")
    assert code == 0, out
    items = {i["guid"]: i for i in json_lines(config, "items", "list")}
    assert items["a"]["text_source"] == "page" and items["a"]["page_error"] is None
    assert [h.status for h in server.hits("/a.html")] == [200]
    assert "wait" not in out


def test_after_the_last_attempt_the_feeds_text_is_kept_with_the_reason(
        server: LocalServer, db_url: str, tmp_path: Path) -> None:
    config = setup(server, db_url, tmp_path, attempts=2)
    server.routes["/a.html"] = Route(status=429, headers={"Retry-After": "1"})
    assert cli(config, "run", "--once")[0] == 0
    assert [i["guid"] for i in json_lines(config, "items", "list")] == ["g"]
    time.sleep(1.2)
    server.routes["/a.html"] = Route(status=503)
    code, out = cli(config, "run", "--once")
    assert code == 0, out
    items = {i["guid"]: i for i in json_lines(config, "items", "list")}
    assert items["a"]["text_source"] == "feed_summary"
    assert items["a"]["page_error"] == "HTTP 503" and items["a"]["page_status"] == 503
    assert len(server.hits("/a.html")) == 2


def test_a_retry_after_longer_than_page_retry_max_is_not_waited_for(
        server: LocalServer, db_url: str, tmp_path: Path) -> None:
    config = setup(server, db_url, tmp_path, attempts=4)
    server.routes["/a.html"] = Route(status=429, headers={"Retry-After": "86400"})
    code, out = cli(config, "run", "--once")
    assert code == 0 and "wait" not in out, out
    items = {i["guid"]: i for i in json_lines(config, "items", "list")}
    assert items["a"]["page_error"] == "HTTP 429 (Retry-After: 86400)"
