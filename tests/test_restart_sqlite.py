"""After a crash on SQLite, the next start does not wait out the dead process's claims:
the lock on the database file proves that no other worker lives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import LocalServer, Route
from helpers import ROOT, Entry, cli, json_lines, rss, write_config
from sqlalchemy import create_engine, select

from monitor.models import Feed


def test_run_once_after_kill_9_polls_the_feeds_the_dead_process_held(
        server: LocalServer, tmp_path: Path) -> None:
    body = rss("Slow", [Entry("A story", None, guid="s-1",
                              content="A story told at length for the test. " * 10)])
    server.routes["/slow.rss"] = Route(body=body, delay=30.0)
    db_file = tmp_path / "m.db"
    config = write_config(tmp_path / "m.toml", db_url=f"sqlite:///{db_file}",
                          feeds=[{"name": "Slow", "url": server.url("/slow.rss")}],
                          daemon={"lease": "10m"})
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "--config", str(config), "run",
                             "--once"], cwd=ROOT, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    engine = create_engine(f"sqlite:///{db_file}")
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not server.in_flight:
            time.sleep(0.1)
        with engine.connect() as c:
            assert c.scalar(select(Feed.lease_owner)) is not None  # it holds the feed
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        engine.dispose()

    server.routes["/slow.rss"] = Route(body=body)
    started = time.monotonic()
    code, out = cli(config, "run", "--once")
    assert code == 0, out
    assert "polled 1 feeds: 1 parsed" in out, out
    assert time.monotonic() - started < 60  # not the 10-minute lease
    assert [i["guid"] for i in json_lines(config, "items", "list")] == ["s-1"]
