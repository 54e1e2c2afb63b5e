"""Entries are claimed the way feeds are: any worker may take an entry another worker's
poll recorded, so the pages of one big feed are shared among the workers, each fetched
by one of them; and an entry whose page is to be tried again is taken by a worker's
dispatcher when it falls due, without a poll of its feed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import LocalServer, Route
from helpers import Daemon, Entry, article, cli, json_lines, rss, write_config


@pytest.mark.timeout(180)
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_workers_share_one_big_feeds_pages_each_fetched_once(
        server: LocalServer, db_url: str, tmp_path: Path) -> None:
    n = 60
    server.routes["/f.rss"] = Route(body=rss("Big", [
        Entry(f"Story {i}", server.url(f"/a/{i}"), guid=f"s{i}") for i in range(n)]))
    for i in range(n):
        # 0.4 s a page, two at a time per worker: about 12 s for one worker alone.
        server.routes[f"/a/{i}"] = Route(body=article(i), delay=0.4)
    config = write_config(tmp_path / "m.toml", db_url=db_url,
                          feeds=[{"name": "Big", "url": server.url("/f.rss"),
                                  "interval": "1h"}],
                          fetch={"per_host": 2}, poll={"jitter": 0})
    assert cli(config, "db", "upgrade")[0] == 0
    workers = [Daemon(config, log=tmp_path / f"w{k}.log") for k in range(2)]
    try:
        assert workers[0].wait_for(lambda: len(json_lines(config, "items", "list")) == n,
                                   120), workers[0].log() + workers[1].log()
    finally:
        codes = [w.stop() for w in workers]
    assert codes == [0, 0]
    logs = [w.log() for w in workers]
    # One worker polled the feed (its lease); the other claimed some of its entries.
    pollers = [k for k, log in enumerate(logs) if "feed 'Big' <" in log and ": polling" in log]
    assert len(pollers) == 1, logs
    helper = logs[1 - pollers[0]]
    shared = sum(int(m) for m in re.findall(r"claimed (\d+) entries of 'Big'", helper))
    assert 0 < shared < n, helper
    # Every page was fetched once, by one worker or the other; every entry stored once.
    fetched = [h.path for h in server.hits("/a/")]
    assert sorted(fetched) == sorted(f"/a/{i}" for i in range(n))
    items = json_lines(config, "items", "list")
    assert sorted(i["guid"] for i in items) == sorted(f"s{i}" for i in range(n))
    assert {i["text_source"] for i in items} == {"page"}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_a_page_retry_falls_due_without_a_poll_of_its_feed(
        server: LocalServer, db_url: str, tmp_path: Path) -> None:
    server.routes["/f.rss"] = Route(body=rss("F", [Entry("Story", server.url("/a"),
                                                         guid="a")]), etag='"v1"')
    server.routes["/a"] = Route(status=503)
    config = write_config(tmp_path / "m.toml", db_url=db_url,
                          feeds=[{"name": "F", "url": server.url("/f.rss"),
                                  "interval": "1h"}],
                          fetch={"page_attempts": 3, "page_retry": "1s"}, poll={"jitter": 0})
    daemon = Daemon(config, log=tmp_path / "d.log")
    try:
        assert daemon.wait_for(lambda: len(server.hits("/a")) == 1, 30), daemon.log()
        server.routes["/a"] = Route(body=article(1))
        assert daemon.wait_for(lambda: bool(json_lines(config, "items", "list")), 30), \
            daemon.log()
    finally:
        assert daemon.stop() == 0
    item, = json_lines(config, "items", "list")
    assert item["text_source"] == "page" and item["page_error"] is None
    assert [h.status for h in server.hits("/a")] == [503, 200]
    assert len(server.hits("/f.rss")) == 1  # the retry needed no poll of the feed
    assert "claimed 1 entries of 'F'" in daemon.log()
