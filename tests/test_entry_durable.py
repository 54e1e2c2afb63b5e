"""Each entry is stored as soon as its own page is ready, not when its feed's last page
is; an entry found but not stored when the worker stops (a shutdown, a crash) is kept
in ``entries`` and stored at the next poll, even if the feed no longer lists it. Runs on
SQLite and on the local PostgreSQL (the crash case on SQLite, whose file lock proves
the dead worker gone)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import LocalServer, Route
from helpers import ROOT, Daemon, Entry, cli, json_lines, page_html, pages, rss, write_config
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import Engine

from monitor.models import Entry as EntryRow
from monitor.models import Item

FAST = 5


def setup(server: LocalServer, db_url: str, tmp_path: Path) -> Path:
    """A feed of FAST quick pages and one that answers after a minute."""
    docs = pages()
    entries = [Entry(f"Story {i}", server.url(f"/p{i}.html"), guid=f"p{i}",
                     summary="The feed's summary of the story, for the test. " * 2)
               for i in range(FAST + 1)]
    for i in range(FAST):
        server.routes[f"/p{i}.html"] = Route(body=page_html(docs[i]))
    server.routes[f"/p{FAST}.html"] = Route(body=page_html(docs[FAST]), delay=60.0)
    server.routes["/f.rss"] = Route(content_type="application/rss+xml", etag='"v1"',
                                    body=rss("F", entries))
    config = write_config(tmp_path / "m.toml", db_url=db_url,
                          feeds=[{"name": "F", "url": server.url("/f.rss")}],
                          fetch={"timeout": "5m"}, poll={"jitter": 0},
                          daemon={"shutdown_timeout": "1s"})
    code, out = cli(config, "db", "upgrade")  # so that the test can count from the start
    assert code == 0, out
    return config


def count(engine: Engine, what: type[Item] | type[EntryRow]) -> int:
    with engine.connect() as c:
        return int(c.scalar(select(func.count()).select_from(what)) or 0)


def stored_after_the_stop(server: LocalServer, config: Path, engine: Engine) -> None:
    """The entry found before the stop is shown as such; the feed no longer lists it,
    and its page answers at once now: the next poll stores it all the same, from its
    page."""
    assert count(engine, EntryRow) == 1
    code, out = cli(config, "status")
    assert "entries not yet stored: 1 found, their page not yet tried; 0 waiting" in out, out
    server.routes["/f.rss"] = Route(content_type="application/rss+xml", body=rss("F", [
        Entry(f"Story {i}", server.url(f"/p{i}.html"), guid=f"p{i}") for i in range(FAST)]))
    server.routes[f"/p{FAST}.html"] = Route(body=page_html(pages()[FAST]))
    code, out = cli(config, "run", "--once")
    assert code == 0, out
    items = {i["guid"]: i for i in json_lines(config, "items", "list")}
    assert sorted(items) == [f"p{i}" for i in range(FAST + 1)]
    assert items[f"p{FAST}"]["text_source"] == "page", items[f"p{FAST}"]
    assert count(engine, EntryRow) == 0


def test_entries_are_stored_before_the_feeds_last_page_and_survive_a_shutdown(
        server: LocalServer, db_url: str, tmp_path: Path) -> None:
    config = setup(server, db_url, tmp_path)
    engine = create_engine(db_url)
    daemon = Daemon(config, log=tmp_path / "daemon.log")
    try:
        # The quick pages are stored while the slow one is still being fetched.
        assert daemon.wait_for(lambda: count(engine, Item) == FAST, 60), daemon.log()
        assert server.in_flight, "the slow page should still be in flight"
        with engine.connect() as c:
            waiting = c.scalars(select(EntryRow.guid)).all()
        assert waiting == [f"p{FAST}"]  # recorded before its page came
        # The daemon holds it under a lease while its page is in flight.
        assert json.loads(cli(config, "status", "--json")[1])["backlog"]["entries_claimed"] == 1
        assert daemon.stop() == 0, daemon.log()
    finally:
        daemon.kill()
    # The shutdown cancelled the slow fetch: what was stored stays, the rest is kept.
    assert count(engine, Item) == FAST
    backlog = json.loads(cli(config, "status", "--json")[1])["backlog"]
    assert (backlog["entries_found"], backlog["entries_retrying"],
            backlog["entries_claimed"]) == (1, 0, 0)  # its lease was given back
    stored_after_the_stop(server, config, engine)
    engine.dispose()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_entry_found_before_a_crash_is_stored_after_it(
        server: LocalServer, db_url: str, tmp_path: Path) -> None:
    config = setup(server, db_url, tmp_path)
    engine = create_engine(db_url)
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "--config", str(config), "run",
                             "--once"], cwd=ROOT, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while count(engine, Item) < FAST and time.monotonic() < deadline \
                and proc.poll() is None:
            time.sleep(0.1)
        assert count(engine, Item) == FAST
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert count(engine, EntryRow) == 1
    stored_after_the_stop(server, config, engine)
    engine.dispose()
